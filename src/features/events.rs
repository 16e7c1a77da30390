//! Reading the daemon's own flow events back as feature rows, so `flowsentry train` can learn a
//! site from what its sensor saw. Input: JSON lines (the json sink's file with
//! `[alerts] flow_events = true`); every line with `"event_type": "flow"` must carry the flow's
//! feature vector as `flowsentry.features`, an object {feature name → number} (either CSV
//! spelling of a name is accepted). Other event types (alerts, stats) are skipped. Feeds
//! [`super::dataset::read`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::dataset::{Dataset, DatasetError, Sample};
use super::{Feature, NUM_FEATURES};

/// The part of an event line we read; every other field is ignored.
#[derive(Deserialize)]
struct EventLine {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    flowsentry: Option<Extension>,
}

#[derive(Deserialize)]
struct Extension {
    #[serde(default)]
    features: Option<serde_json::Map<String, serde_json::Value>>,
}

/// True when a file starts (after white space) with `{`: JSON lines, not a CSV header.
pub fn looks_like_events(path: &Path) -> Result<bool, DatasetError> {
    let io = |e| DatasetError::Io {
        path: path.into(),
        source: e,
    };
    let mut r = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    loop {
        let buf = r.fill_buf().map_err(io)?;
        let Some(&b) = buf.first() else {
            return Ok(false);
        };
        if b.is_ascii_whitespace() {
            r.consume(1);
            continue;
        }
        return Ok(b == b'{');
    }
}

/// Every schema feature named in the first flow event of `path` (schema order).
pub fn features_in(path: &Path) -> Result<Vec<Feature>, DatasetError> {
    let mut found = Vec::new();
    each_flow(path, |_, values| {
        found = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .filter_map(|(i, _)| crate::features::FEATURES.get(i).map(|d| d.id))
            .collect();
        Ok(false)
    })?;
    Ok(found)
}

/// Appends the `features` of every flow event in `path` to `ds` (row-major, `features` order),
/// through `sample` when one is given. Returns the number of flow events read.
pub fn read(
    path: &Path,
    features: &[Feature],
    ds: &mut Dataset,
    mut sample: Option<&mut Sample>,
) -> Result<u64, DatasetError> {
    let mut n = 0u64;
    each_flow(path, |line, values| {
        for f in features {
            let v = values[*f as usize].ok_or_else(|| DatasetError::EventMissingFeature {
                path: path.into(),
                line,
                feature: f.name().into(),
            })?;
            ds.values.push(v);
        }
        match sample.as_deref_mut() {
            Some(s) => s.admit(ds),
            None => ds.rows_read += 1,
        }
        n += 1;
        Ok(true)
    })?;
    if n == 0 {
        return Err(DatasetError::NoFlowEvents { path: path.into() });
    }
    Ok(n)
}

/// Calls `row(line, values)` for every flow event, values indexed by schema position (`None`
/// where the event has no such feature), until it returns `Ok(false)`.
fn each_flow(
    path: &Path,
    mut row: impl FnMut(u64, &[Option<f64>; NUM_FEATURES]) -> Result<bool, DatasetError>,
) -> Result<(), DatasetError> {
    let io = |e| DatasetError::Io {
        path: path.into(),
        source: e,
    };
    let r = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    // Feature names repeat on every line: look each spelling up once.
    let mut names: HashMap<String, Option<Feature>> = HashMap::new();
    let mut values = [None; NUM_FEATURES];
    for (i, text) in r.lines().enumerate() {
        let line = i as u64 + 1;
        let text = text.map_err(io)?;
        if text.trim().is_empty() {
            continue;
        }
        let ev: EventLine = serde_json::from_str(&text).map_err(|e| DatasetError::NotJson {
            path: path.into(),
            line,
            msg: e.to_string(),
        })?;
        if ev.event_type.as_deref() != Some("flow") {
            continue;
        }
        let Some(map) = ev.flowsentry.and_then(|x| x.features) else {
            return Err(DatasetError::EventWithoutFeatures {
                path: path.into(),
                line,
            });
        };
        values.fill(None);
        for (k, v) in &map {
            let f = *names
                .entry(k.clone())
                .or_insert_with(|| Feature::from_name(k));
            let Some(f) = f else { continue };
            let x = v.as_f64().ok_or_else(|| DatasetError::NotNumeric {
                path: path.into(),
                line,
                column: format!("flowsentry.features.{k}"),
                value: v.to_string(),
            })?;
            values[f as usize] = Some(x);
        }
        if !row(line, &values)? {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::dataset;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    const FLOW: &str = r#"{"event_type":"flow","src_ip":"10.0.0.1","flowsentry":{"features":{"Dst Port":443,"Flow Duration":1200,"Total Fwd Packet":3,"Flow Bytes/s":0.5}}}"#;

    #[test]
    fn reads_flow_events_and_skips_other_types() {
        let text = format!(
            "{FLOW}\n\n{{\"event_type\":\"alert\",\"flowsentry\":{{}}}}\n{}\n",
            FLOW.replace("1200", "7")
        );
        let f = file(&text);
        assert!(looks_like_events(f.path()).unwrap());
        // Either spelling of a name in the wanted list: the model's names are cfm4 or cic2017.
        let feats = [
            Feature::FlowDuration,
            Feature::DstPort,
            Feature::TotalFwdPackets,
        ];
        let ds = dataset::read(&[f.path().into()], &feats, None, &|_| true).unwrap();
        assert_eq!(ds.rows(), 2);
        assert_eq!(ds.row(0), [1200.0, 443.0, 3.0]);
        assert_eq!(ds.row(1), [7.0, 443.0, 3.0]);
        assert_eq!(
            features_in(f.path()).unwrap(),
            [
                Feature::DstPort,
                Feature::FlowDuration,
                Feature::TotalFwdPackets,
                Feature::FlowBytesPerSec
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let old = file(&format!(
            "{FLOW}\n{{\"event_type\":\"flow\",\"src_ip\":\"10.0.0.2\"}}\n"
        ));
        let e = dataset::read(
            &[old.path().into()],
            &[Feature::FlowDuration],
            None,
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(":2:") && e.contains("flowsentry.features"),
            "{e}"
        );

        let e = dataset::read(
            &[file(FLOW).path().into()],
            &[Feature::IdleMax],
            None,
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":1:") && e.contains("Idle Max"), "{e}");

        let bad = file(&format!("{FLOW}\n{{\"event_type\":\"flow\",\n"));
        let e = dataset::read(
            &[bad.path().into()],
            &[Feature::FlowDuration],
            None,
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":2:") && e.contains("JSON"), "{e}");

        let text = FLOW.replace("1200", "\"long\"");
        let e = dataset::read(
            &[file(&text).path().into()],
            &[Feature::FlowDuration],
            None,
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":1:") && e.contains("long"), "{e}");

        let alerts_only = file("{\"event_type\":\"alert\"}\n");
        let e = dataset::read(
            &[alerts_only.path().into()],
            &[Feature::FlowDuration],
            None,
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no flow events"), "{e}");

        let e = dataset::read(
            &[file(FLOW).path().into()],
            &[Feature::FlowDuration],
            Some("Label"),
            &|_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no labels"), "{e}");
    }
}
