//! Reading labeled flow CSVs — flowsentry's own `flows` output, the original CIC-IDS2017 CSVs
//! (leading spaces, duplicated `Fwd Header Length`, `Infinity`/`NaN`) and CICFlowMeter-4 /
//! improved CIC-IDS2017 files — through the schema table, and the daemon's flow events (JSON
//! lines, see [`super::events`]). Feeds `train`, `score`, `evaluate`.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Feature;

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: the file is empty (no header line)")]
    Empty { path: PathBuf },
    #[error(
        "{path}: missing column {column:?} (needed by the model/feature set); the header has {have} columns"
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        have: usize,
    },
    #[error("{path}: no label column {column:?} in the header (use --label-column)")]
    MissingLabel { path: PathBuf, column: String },
    #[error("{path}:{line}: column {column:?}: {value:?} is not a number")]
    NotNumeric {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}: no data rows")]
    NoRows { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a JSON event: {msg}")]
    NotJson {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error(
        "{path}:{line}: flow event without flowsentry.features (the feature vector); collect flow events with a flowsentry that writes it ([alerts] flow_events = true)"
    )]
    EventWithoutFeatures { path: PathBuf, line: u64 },
    #[error(
        "{path}:{line}: flow event has no feature {feature:?} in flowsentry.features (needed by the model/feature set)"
    )]
    EventMissingFeature {
        path: PathBuf,
        line: u64,
        feature: String,
    },
    #[error("{path}: no flow events (lines with \"event_type\": \"flow\")")]
    NoFlowEvents { path: PathBuf },
    #[error(
        "{path}: flow events carry no labels; drop --benign-label (train) or give labeled CSVs (evaluate)"
    )]
    EventsHaveNoLabel { path: PathBuf },
}

/// Where each wanted feature sits in one file.
#[derive(Clone, Debug)]
pub struct Columns {
    pub features: Vec<(Feature, usize)>,
    pub label: Option<usize>,
}

/// Resolves `wanted` features (and the label) in a header. Duplicate columns (the original
/// layout's second `Fwd Header Length`) resolve to the first.
pub fn resolve(
    path: &Path,
    header: &csv::StringRecord,
    wanted: &[Feature],
    label: Option<&str>,
) -> Result<Columns, DatasetError> {
    let mut features = Vec::with_capacity(wanted.len());
    for f in wanted {
        let at = header
            .iter()
            .position(|h| Feature::from_name(h) == Some(*f));
        match at {
            Some(i) => features.push((*f, i)),
            None => {
                return Err(DatasetError::MissingColumn {
                    path: path.into(),
                    column: f.name().into(),
                    have: header.len(),
                });
            }
        }
    }
    let label = match label {
        Some(l) => Some(
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(l.trim()))
                .ok_or_else(|| DatasetError::MissingLabel {
                    path: path.into(),
                    column: l.into(),
                })?,
        ),
        None => None,
    };
    Ok(Columns { features, label })
}

/// Every schema feature present in a header (identifier numbers included), in schema order.
pub fn features_in(header: &csv::StringRecord) -> Vec<Feature> {
    let mut v: Vec<Feature> = header.iter().filter_map(Feature::from_name).collect();
    v.sort();
    v.dedup();
    v
}

/// Every schema feature a training file provides: a CSV's columns, or the names in the first
/// flow event's `flowsentry.features`.
pub fn features_available(path: &Path) -> Result<Vec<Feature>, DatasetError> {
    if super::events::looks_like_events(path)? {
        return super::events::features_in(path);
    }
    let header = reader(path)?
        .headers()
        .map_err(|e| DatasetError::Csv {
            path: path.into(),
            source: e,
        })?
        .clone();
    Ok(features_in(&header))
}

/// Parses a cell: surrounding spaces ignored; `Infinity`, `-Infinity`, `NaN` accepted; an empty
/// cell reads as NaN.
pub fn parse_cell(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(f64::NAN);
    }
    t.parse().ok()
}

/// Labeled rows: values in `features` order, row-major.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub features: Vec<Feature>,
    pub values: Vec<f64>,
    pub labels: Vec<String>,
    /// (file, rows read) for provenance.
    pub files: Vec<(PathBuf, u64)>,
    /// Rows read and kept by the filter, before any sampling ([`Sample`]).
    pub rows_read: u64,
}

/// A uniform random sample of at most `cap` rows of everything read (reservoir sampling with a
/// seeded generator), so that a week of a site's flow events trains in bounded memory.
#[derive(Clone, Debug)]
pub struct Sample {
    cap: usize,
    rng: crate::forest::train::Rng,
}

impl Sample {
    pub fn new(cap: usize, seed: u64) -> Sample {
        Sample {
            cap: cap.max(1),
            rng: crate::forest::train::Rng::new(seed),
        }
    }

    /// Called right after a row was appended to `ds`: keeps it, or drops it, or lets it replace
    /// an older row, so that every row read so far is kept with the same probability.
    pub(crate) fn admit(&mut self, ds: &mut Dataset) {
        ds.rows_read += 1;
        let rows = ds.rows();
        if rows <= self.cap {
            return;
        }
        let d = ds.features.len();
        let last = rows - 1;
        let j = self
            .rng
            .below(usize::try_from(ds.rows_read).unwrap_or(usize::MAX));
        let labeled = ds.labels.len() == rows;
        if j < self.cap {
            ds.values.copy_within(last * d..rows * d, j * d);
            if labeled {
                ds.labels.swap(j, last);
            }
        }
        ds.values.truncate(last * d);
        if labeled {
            ds.labels.truncate(last);
        }
    }
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.values
            .len()
            .checked_div(self.features.len())
            .unwrap_or(0)
    }
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.features.len();
        &self.values[i * d..(i + 1) * d]
    }
}

/// Opens a CSV reader that keeps surrounding spaces (they are part of the original names).
pub fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, DatasetError> {
    csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| DatasetError::Csv {
            path: path.into(),
            source: e,
        })
}

/// Reads files into one dataset. `keep(label)` filters rows (e.g. benign only); a label column
/// is required when `label` is given.
pub fn read(
    paths: &[PathBuf],
    features: &[Feature],
    label: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Dataset, DatasetError> {
    read_sampled(paths, features, label, keep, None)
}

/// [`read`], keeping at most a [`Sample`] of the rows when one is given.
pub fn read_sampled(
    paths: &[PathBuf],
    features: &[Feature],
    label: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
    mut sample: Option<Sample>,
) -> Result<Dataset, DatasetError> {
    let mut ds = Dataset {
        features: features.to_vec(),
        ..Dataset::default()
    };
    for path in paths {
        if super::events::looks_like_events(path)? {
            if label.is_some() {
                return Err(DatasetError::EventsHaveNoLabel { path: path.clone() });
            }
            let n = super::events::read(path, features, &mut ds, sample.as_mut())?;
            ds.files.push((path.clone(), n));
            continue;
        }
        let mut rdr = reader(path)?;
        let header = rdr
            .headers()
            .map_err(|e| DatasetError::Csv {
                path: path.clone(),
                source: e,
            })?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].trim().is_empty()) {
            return Err(DatasetError::Empty { path: path.clone() });
        }
        let cols = resolve(path, &header, features, label)?;
        let mut n = 0u64;
        let mut rec = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    return Err(DatasetError::Csv {
                        path: path.clone(),
                        source: e,
                    });
                }
            }
            let line = rec.position().map_or(0, |p| p.line());
            let lab = cols.label.and_then(|i| rec.get(i)).unwrap_or("").trim();
            if !keep(lab) {
                continue;
            }
            for (f, i) in &cols.features {
                let cell = rec.get(*i).unwrap_or("");
                let v = parse_cell(cell).ok_or_else(|| DatasetError::NotNumeric {
                    path: path.clone(),
                    line,
                    column: header.get(*i).unwrap_or(f.name()).trim().to_string(),
                    value: cell.to_string(),
                })?;
                ds.values.push(v);
            }
            if label.is_some() {
                ds.labels.push(lab.to_string());
            }
            match sample.as_mut() {
                Some(s) => s.admit(&mut ds),
                None => ds.rows_read += 1,
            }
            n += 1;
        }
        if n == 0 && ds.rows_read == 0 && paths.len() == 1 {
            return Err(DatasetError::NoRows { path: path.clone() });
        }
        ds.files.push((path.clone(), n));
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_the_original_layout() {
        let f = file(
            " Destination Port, Flow Duration,Flow Bytes/s, Fwd Header Length, Fwd Header Length, Label\n80,10,Infinity,20,20,BENIGN\n443, 7 ,NaN,40,40,DoS Hulk\n",
        );
        let feats = [
            Feature::DstPort,
            Feature::FlowDuration,
            Feature::FlowBytesPerSec,
            Feature::FwdHeaderLength,
        ];
        let ds = read(&[f.path().into()], &feats, Some("Label"), &|_| true).unwrap();
        assert_eq!(ds.rows(), 2);
        assert_eq!(ds.row(1)[..2], [443.0, 7.0]);
        assert!(ds.row(0)[2].is_infinite() && ds.row(1)[2].is_nan());
        assert_eq!(ds.labels, ["BENIGN", "DoS Hulk"]);
        let benign = read(&[f.path().into()], &feats, Some("Label"), &|l| {
            l == "BENIGN"
        })
        .unwrap();
        assert_eq!(benign.rows(), 1);
    }

    #[test]
    fn a_sample_keeps_rows_from_the_whole_input_in_bounded_memory() {
        let mut text = String::from("Flow Duration,Label\n");
        for i in 0..1000 {
            text.push_str(&format!(
                "{i},{}\n",
                if i % 2 == 0 { "BENIGN" } else { "X" }
            ));
        }
        let f = file(&text);
        let p: Vec<PathBuf> = vec![f.path().into()];
        let take = |seed| {
            read_sampled(
                &p,
                &[Feature::FlowDuration],
                Some("Label"),
                &|_| true,
                Some(Sample::new(100, seed)),
            )
            .unwrap()
        };
        let ds = take(1);
        assert_eq!((ds.rows(), ds.rows_read, ds.labels.len()), (100, 1000, 100));
        assert_eq!(ds.files[0].1, 1000);
        let mut v = ds.values.clone();
        v.sort_by(f64::total_cmp);
        v.dedup();
        assert_eq!(v.len(), 100, "rows are distinct");
        // Rows from all over the file, each still with its own label.
        assert!(v.iter().filter(|x| **x >= 500.0).count() > 20, "{v:?}");
        for (x, l) in ds.values.iter().zip(&ds.labels) {
            assert_eq!(l == "BENIGN", (*x as u64).is_multiple_of(2));
        }
        assert_eq!(take(1).values, ds.values);
        assert_ne!(take(2).values, ds.values);
        // Under the cap nothing is dropped.
        let all = read_sampled(
            &p,
            &[Feature::FlowDuration],
            None,
            &|_| true,
            Some(Sample::new(5000, 1)),
        )
        .unwrap();
        assert_eq!(all.rows(), 1000);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let f = file("Flow Duration,Label\n10,BENIGN\nabc,BENIGN\n");
        let e = read(
            &[f.path().into()],
            &[Feature::FlowDuration],
            Some("Label"),
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":3:") && e.contains("Flow Duration") && e.contains("abc"),
            "{e}"
        );
        let e = read(&[f.path().into()], &[Feature::IdleMax], None, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing column") && e.contains("Idle Max"),
            "{e}"
        );
        let e = read(
            &[f.path().into()],
            &[Feature::FlowDuration],
            Some("Class"),
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Class"), "{e}");
        let empty = file("");
        assert!(
            read(
                &[empty.path().into()],
                &[Feature::FlowDuration],
                None,
                &|_| true
            )
            .is_err()
        );
    }
}
