//! `flowsentry evaluate`: metrics of a model on labeled flow CSVs, report.json and plots.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use flowsentry::eval::{self, plot};
use flowsentry::features::dataset;
use flowsentry::forest::Model;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Tune {
    F1,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled flow CSVs.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long, default_value = "Label")]
    pub label_column: String,
    /// Label of benign rows; every other label is an attack.
    #[arg(long, default_value = "BENIGN")]
    pub benign_label: String,
    /// Write report.json, roc.svg, pr.svg and confusion.svg here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Find the F1-optimal threshold on these (validation) rows and write it into the model.
    /// Evaluate on different rows afterwards.
    #[arg(long, value_enum)]
    pub tune_threshold: Option<Tune>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let ds = dataset::read(&a.inputs, model.features(), Some(&a.label_column), &|_| {
        true
    })?;
    let mut scores = vec![0.0; ds.rows()];
    model.score_rows(&ds.values, &mut scores);
    let mut threshold = model.threshold();
    if a.tune_threshold.is_some() {
        let attack: Vec<bool> = ds
            .labels
            .iter()
            .map(|l| !l.eq_ignore_ascii_case(&a.benign_label))
            .collect();
        threshold = eval::best_f1_threshold(&scores, &attack);
        let mut file = model.file().clone();
        file.threshold = threshold;
        file.offset = -threshold;
        file.provenance.notes = format!(
            "threshold tuned for F1 on {} (evaluate on other rows)",
            a.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Model::save(&file, &a.model)?;
        eprintln!(
            "wrote F1-tuned threshold {threshold:.6} into {}; the metrics below are on the tuning rows, evaluate on a different file",
            a.model.display()
        );
    }
    let r = eval::report(&scores, &ds.labels, &a.benign_label, threshold);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let attack: Vec<bool> = ds
            .labels
            .iter()
            .map(|l| !l.eq_ignore_ascii_case(&a.benign_label))
            .collect();
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
        };
        write("report.json", serde_json::to_string_pretty(&r)?)?;
        write(
            "roc.svg",
            plot::roc_svg(&eval::roc_curve(&scores, &attack), r.roc_auc),
        )?;
        write(
            "pr.svg",
            plot::pr_svg(&eval::pr_curve(&scores, &attack), r.pr_auc),
        )?;
        write(
            "confusion.svg",
            plot::confusion_svg(&r.confusion, threshold),
        )?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", text_report(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn text_report(r: &eval::Report) -> String {
    let c = &r.confusion;
    let mut s = format!(
        "rows {} (attacks {})\nthreshold {:.6}\nprecision {:.4}\nrecall    {:.4}\nF1        {:.4}\nROC AUC   {:.4}\nPR AUC    {:.4}\nconfusion TP {} FP {} TN {} FN {}\n\nlabel                              rows  flagged   rate  ROC AUC\n",
        r.rows,
        r.attacks,
        r.threshold,
        r.precision,
        r.recall,
        r.f1,
        r.roc_auc,
        r.pr_auc,
        c.tp,
        c.fp,
        c.tn,
        c.fn_
    );
    for (l, st) in &r.per_label {
        let auc = st.roc_auc.map_or("-".to_string(), |v| format!("{v:.4}"));
        s.push_str(&format!(
            "{l:<32} {:>7} {:>8} {:>6.3} {auc:>8}\n",
            st.rows, st.flagged, st.rate
        ));
    }
    s
}
