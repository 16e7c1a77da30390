//! `flowsentry train`: fit an Isolation Forest from flow CSVs and write the model file.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use flowsentry::features::{Feature, dataset};
use flowsentry::forest::fit;
use flowsentry::forest::train::{self, Params};
use flowsentry::forest::{self, Model, TrainingFile, Transform, sets};
use sha2::{Digest, Sha256};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransformArg {
    #[default]
    None,
    Log1p,
    /// Every feature twice: as it is and signed-log1p scaled.
    Both,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Flow CSVs (flowsentry's, original CIC-IDS2017, or CICFlowMeter-4 / improved layout).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Comma-separated feature names (either spelling), each optionally with `:log1p` or `:none`
    /// to fix its transform; overrides --feature-set.
    #[arg(long)]
    pub features: Option<String>,
    /// Named feature set: default (= shape, the shipped model's), shape, cic2017, cic2017-nonzero,
    /// cic2017+port, all.
    #[arg(long, default_value = "default")]
    pub feature_set: String,
    /// Input transform for every feature (`both`: each feature as it is and log1p-scaled).
    #[arg(long, value_enum, default_value_t = TransformArg::None)]
    pub transform: TransformArg,
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    #[arg(long, default_value_t = 256)]
    pub sample_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train only on rows with this label (the honest protocol: the model never sees attacks).
    #[arg(long)]
    pub benign_label: Option<String>,
    /// Label column name (needed with --benign-label).
    #[arg(long, default_value = "Label")]
    pub label_column: String,
    /// "auto" (scikit-learn's threshold: score > 0.5) or the expected share of anomalies in the
    /// training data (threshold at that quantile of training scores).
    #[arg(long, default_value = "auto")]
    pub contamination: String,
    /// Alert threshold from a false-alarm budget: the share of benign flows allowed to alert
    /// (e.g. 0.005), counted on the --calibrate rows, or on a held-out share (--holdout) of the
    /// training rows when no --calibrate file is given. Needs no labels.
    #[arg(long, conflicts_with = "contamination")]
    pub fpr_budget: Option<f64>,
    /// Benign flows (same formats as the inputs) the --fpr-budget threshold is set on; with
    /// --benign-label only their rows with that label are used.
    #[arg(long, requires = "fpr_budget")]
    pub calibrate: Vec<PathBuf>,
    /// With --fpr-budget and no --calibrate: the share of training rows (chosen with --seed) held
    /// out of training to set the threshold on.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Train on a uniform random sample (chosen with --seed) of at most this many rows of the
    /// inputs (and of the --calibrate files), so a week of flow events fits in memory.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: usize,
}

pub fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.trees >= 1 && a.trees <= forest::MAX_TREES,
        "--trees must be 1..={}",
        forest::MAX_TREES
    );
    anyhow::ensure!(a.sample_size >= 2, "--sample-size must be at least 2");
    let contamination = match a.contamination.as_str() {
        "auto" => None,
        s => {
            let c: f64 = s
                .parse()
                .with_context(|| format!("--contamination {s:?}: expected auto or a number"))?;
            anyhow::ensure!(c > 0.0 && c < 0.5, "--contamination must be in (0, 0.5)");
            Some(c)
        }
    };
    if let Some(b) = a.fpr_budget {
        anyhow::ensure!(
            b > 0.0 && b < 0.5,
            "--fpr-budget must be in (0, 0.5), e.g. 0.005"
        );
        anyhow::ensure!(
            a.holdout > 0.0 && a.holdout < 1.0,
            "--holdout must be in (0, 1)"
        );
    }
    let first = &a.inputs[0];
    let available = dataset::features_available(first)?;
    let features = match &a.features {
        Some(list) => sets::parse_list(list).map_err(anyhow::Error::msg)?,
        None => sets::feature_set(&a.feature_set, &available).map_err(anyhow::Error::msg)?,
    };
    if features.is_empty() {
        bail!("no features selected");
    }
    // Model inputs: a feature whose transform the list fixes appears once; the others once per
    // --transform (twice for `both`: all as they are, then all log-scaled).
    let global: &[Transform] = match a.transform {
        TransformArg::None => &[Transform::None],
        TransformArg::Log1p => &[Transform::Log1p],
        TransformArg::Both => &[Transform::None, Transform::Log1p],
    };
    let (features, transforms): (Vec<Feature>, Vec<Transform>) = global
        .iter()
        .enumerate()
        .flat_map(|(pass, g)| {
            features.iter().filter_map(move |(f, t)| match t {
                Some(t) => (pass == 0).then_some((*f, *t)),
                None => Some((*f, *g)),
            })
        })
        .unzip();
    anyhow::ensure!(
        features.len() <= forest::MAX_INPUTS,
        "{} model inputs; at most {}",
        features.len(),
        forest::MAX_INPUTS
    );
    let started = Instant::now();
    let label = a.benign_label.as_ref().map(|_| a.label_column.as_str());
    let benign = a.benign_label.clone();
    let keep = move |l: &str| benign.as_deref().is_none_or(|b| l.eq_ignore_ascii_case(b));
    anyhow::ensure!(a.max_rows >= 2, "--max-rows must be at least 2");
    let sample = |salt: u64| Some(dataset::Sample::new(a.max_rows, a.seed ^ salt));
    let ds = dataset::read_sampled(&a.inputs, &features, label, &keep, sample(0))?;
    let sampled = (ds.rows() as u64) < ds.rows_read;
    if sampled {
        eprintln!(
            "sampled {} of {} rows (--max-rows {}, seed {})",
            ds.rows(),
            ds.rows_read,
            a.max_rows,
            a.seed
        );
    }
    let (ds, calibration) = match a.fpr_budget {
        None => (ds, None),
        Some(_) if !a.calibrate.is_empty() => {
            let cal = dataset::read_sampled(&a.calibrate, &features, label, &keep, sample(0xCA1))?;
            let what = format!(
                "{} rows of {}",
                cal.rows(),
                a.calibrate
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (ds, Some((cal.values, what)))
        }
        Some(_) => {
            let (kept, held) = train::hold_out(&ds.values, features.len(), a.holdout, a.seed);
            let what = format!(
                "{} training rows held out of training (seed {})",
                held.len() / features.len(),
                a.seed
            );
            (
                dataset::Dataset {
                    values: kept,
                    labels: Vec::new(),
                    ..ds
                },
                Some((held, what)),
            )
        }
    };
    let rows = ds.rows();
    if rows < 2 {
        bail!("only {rows} training rows after filtering; need at least 2");
    }
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| indicatif::ProgressBar::new(a.trees as u64));
    let mut file = fit::fit(
        &ds.values,
        &features,
        &transforms,
        Params {
            trees: a.trees,
            sample_size: a.sample_size,
            seed: a.seed,
        },
        &format!("flowsentry {} train", env!("CARGO_PKG_VERSION")),
        |t| {
            if let Some(b) = &bar {
                b.set_position(t as u64);
            }
        },
    )
    .map_err(anyhow::Error::msg)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for (p, n) in &ds.files {
        file.provenance.training_files.push(TrainingFile {
            path: p.display().to_string(),
            sha256: sha256(p)?,
            rows: *n,
        });
    }
    let params = &mut file.provenance.params;
    params.insert(
        "feature_set".into(),
        a.features.clone().unwrap_or(a.feature_set.clone()).into(),
    );
    params.insert(
        "transform".into(),
        format!("{:?}", a.transform).to_lowercase().into(),
    );
    params.insert("benign_label".into(), a.benign_label.clone().into());
    params.insert("contamination".into(), a.contamination.clone().into());
    if let Some(b) = a.fpr_budget {
        params.insert("fpr_budget".into(), b.into());
    }
    if sampled {
        params.insert("max_rows".into(), a.max_rows.into());
    }
    if let Some(c) = contamination {
        let model = Model::from_file(file.clone()).map_err(anyhow::Error::msg)?;
        let mut scores = vec![0.0; rows];
        model.score_rows(&ds.values, &mut scores);
        file.threshold = train::quantile_threshold(&scores, c);
        file.offset = -file.threshold;
    }
    if let (Some(budget), Some((values, what))) = (a.fpr_budget, &calibration) {
        let n = values.len() / features.len();
        anyhow::ensure!(
            n >= 1,
            "no calibration rows for --fpr-budget ({what}); give --calibrate files with benign flows"
        );
        if (budget * n as f64) < 1.0 {
            eprintln!(
                "warning: {n} calibration rows are too few for a {budget} budget (not one row may alert); the threshold is the highest calibration score"
            );
        }
        let over = fit::calibrate(&mut file, values, budget).map_err(anyhow::Error::msg)?;
        file.provenance.notes = format!(
            "threshold from a false-alarm budget of {budget}: {over} of {what} score above it"
        );
    }
    Model::from_file(file.clone()).map_err(anyhow::Error::msg)?;
    Model::save(&file, &a.output)?;
    eprintln!(
        "trained {} trees on {rows} rows x {} features in {:.2} s -> {} (threshold {:.6})",
        a.trees,
        features.len(),
        started.elapsed().as_secs_f64(),
        a.output.display(),
        file.threshold
    );
    Ok(ExitCode::SUCCESS)
}
