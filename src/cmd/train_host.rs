//! `flowsentry train-host`: fit the host detector's forest on benign captures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;

use flowsentry::flow::FlowConfig;
use flowsentry::forest::train::Params;
use flowsentry::forest::{Model, Provenance, TrainingFile};
use flowsentry::host::HostConfig;
use flowsentry::host::train::{HostTraining, collect, fit};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Benign capture files (pcap/pcapng): every host vector they produce is a training row.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    /// Output model file.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    #[arg(long, default_value_t = 256)]
    pub sample_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How far past the largest benign value of a feature a split may fall, in multiples of
    /// the feature's benign range (0 = the standard Isolation Forest).
    #[arg(long, default_value_t = 0.25)]
    pub range_pad: f64,
    /// Share of rows a first forest finds most anomalous, dropped before the final forest is
    /// grown (benign captures from the wild hold the odd scan).
    #[arg(long, default_value_t = 0.12)]
    pub trim: f64,
    /// Share of the (kept) benign training rows allowed above the threshold.
    #[arg(long, default_value_t = 0.001)]
    pub fpr_budget: f64,
    /// The threshold is never set below this score.
    #[arg(long, default_value_t = 0.5)]
    pub min_threshold: f64,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..0.5).contains(&a.trim),
        "--trim must be in [0, 0.5), got {}",
        a.trim
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&a.fpr_budget),
        "--fpr-budget must be in [0, 1), got {}",
        a.fpr_budget
    );
    let mut rows = Vec::new();
    let mut files = Vec::new();
    for c in &a.captures {
        let r = match collect(c, FlowConfig::default(), HostConfig::default()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: {e}");
                continue;
            }
        };
        eprintln!("{}: {} host rows", c.display(), r.len());
        files.push(TrainingFile {
            path: c.display().to_string(),
            sha256: super::train::sha256(c)?,
            rows: r.len() as u64,
        });
        rows.extend(r);
    }
    let mut params = serde_json::Map::new();
    params.insert("trees".into(), a.trees.into());
    params.insert("sample_size".into(), a.sample_size.into());
    params.insert("seed".into(), a.seed.into());
    params.insert("fpr_budget".into(), a.fpr_budget.into());
    params.insert("range_pad".into(), a.range_pad.into());
    params.insert("trim".into(), a.trim.into());
    params.insert("min_threshold".into(), a.min_threshold.into());
    params.insert("transform".into(), "log1p".into());
    let provenance = Provenance {
        trainer: format!("flowsentry {} train-host", env!("CARGO_PKG_VERSION")),
        created: String::new(),
        training_files: files,
        rows_used: rows.len() as u64,
        params,
        notes: "host detector: benign captures only".into(),
    };
    let (file, kept) = fit(
        &rows,
        HostTraining {
            params: Params {
                trees: a.trees,
                sample_size: a.sample_size,
                seed: a.seed,
            },
            range_pad: a.range_pad,
            trim: a.trim,
            fpr_budget: a.fpr_budget,
            min_threshold: a.min_threshold,
        },
        provenance,
    )
    .map_err(anyhow::Error::msg)?;
    Model::save(&file, &a.output)?;
    eprintln!(
        "wrote {} ({} rows, {kept} kept after trimming, threshold {:.4})",
        a.output.display(),
        rows.len(),
        file.threshold
    );
    Ok(ExitCode::SUCCESS)
}
