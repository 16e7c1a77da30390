//! `flowsentry score`: copy every input column and append `anomaly_score` and `is_anomaly`.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use flowsentry::features::dataset;
use flowsentry::forest::Model;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Flow CSV to score.
    pub input: PathBuf,
    /// Output CSV (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let model = Model::load(&a.model)?;
    anyhow::ensure!(
        !flowsentry::features::events::looks_like_events(&a.input)?,
        "{}: flow events (JSON lines) are not a flow CSV; score reads CSVs (flowsentry flows), and flow events already carry their score (flowsentry.score)",
        a.input.display()
    );
    let mut rdr = dataset::reader(&a.input)?;
    let header = rdr
        .headers()
        .with_context(|| a.input.display().to_string())?
        .clone();
    let cols = dataset::resolve(&a.input, &header, model.features(), None)?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(io::BufWriter::new(out));
    let mut h = header.clone();
    h.push_field("anomaly_score");
    h.push_field("is_anomaly");
    w.write_record(&h)?;
    let mut x = vec![0.0; cols.features.len()];
    let (mut rows, mut flagged) = (0u64, 0u64);
    for rec in rdr.records() {
        let mut rec = rec.with_context(|| a.input.display().to_string())?;
        let line = rec.position().map_or(0, |p| p.line());
        for (k, (f, i)) in cols.features.iter().enumerate() {
            let cell = rec.get(*i).unwrap_or("");
            x[k] = dataset::parse_cell(cell).ok_or_else(|| dataset::DatasetError::NotNumeric {
                path: a.input.clone(),
                line,
                column: f.name().into(),
                value: cell.into(),
            })?;
        }
        let s = model.score_values(&x);
        let anomalous = model.is_anomaly(s);
        rows += 1;
        flagged += u64::from(anomalous);
        rec.push_field(&format!("{s:?}"));
        rec.push_field(if anomalous { "1" } else { "0" });
        w.write_record(&rec)?;
    }
    w.flush()?;
    eprintln!(
        "scored {rows} rows, {flagged} above the threshold {}",
        model.threshold()
    );
    Ok(ExitCode::SUCCESS)
}
