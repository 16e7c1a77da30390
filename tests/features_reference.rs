//! Feature parity with the dataset itself: the improved CIC-IDS2017 rows for the flows of a real
//! excerpt of the CIC-IDS2017 Thursday capture must equal what flowsentry extracts, feature by
//! feature (integers and times exactly; real numbers to 1e-6 relative).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use flowsentry::features::csv_out::CicTimestamp;
use flowsentry::features::{Feature, FlowRecord, Kind};
use flowsentry::flow::FlowConfig;
use flowsentry::pipeline;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn extract(pcap: &Path) -> Vec<FlowRecord> {
    let mut flows = Vec::new();
    let s = pipeline::run_file(pcap, FlowConfig::default(), &mut |_, _| {}, &mut |r| {
        flows.push(r)
    })
    .unwrap();
    assert!(s.damaged.is_none());
    flows
}

#[test]
fn every_feature_equals_the_dataset_rows() {
    let flows = extract(&data("nfstream__WebattackSQLinj.pcap"));
    let by_id: HashMap<(String, String), &FlowRecord> = flows
        .iter()
        .map(|f| ((f.flow_id(), CicTimestamp(f.start_us).to_string()), f))
        .collect();

    let mut rdr = csv::Reader::from_path(data("WebattackSQLinj_matching_rows.csv")).unwrap();
    let header = rdr.headers().unwrap().clone();
    let columns: Vec<(usize, Feature)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Feature::from_name(h).map(|f| (i, f)))
        .collect();
    // Every feature of the cfm4 layout is in the reference file.
    assert_eq!(columns.len(), 3 + 81, "columns resolved: {}", columns.len());

    let mut rows = 0;
    let mut mismatches = Vec::new();
    for row in rdr.records() {
        let row = row.unwrap();
        rows += 1;
        let key = (row[1].to_string(), row[7].to_string());
        let ours = by_id
            .get(&key)
            .unwrap_or_else(|| panic!("flow {key:?} not extracted"));
        for (i, f) in &columns {
            let want: f64 = row[*i].parse().unwrap();
            let got = ours.get(*f);
            let ok = match f.def().kind {
                Kind::Integer => got == want,
                Kind::Real => (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            };
            if !ok {
                mismatches.push(format!("{} {}: dataset {want} ours {got}", key.0, f.name()));
            }
        }
    }
    assert_eq!(rows, 9);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn packets_are_conserved() {
    let flows = extract(&data("nfstream__WebattackSQLinj.pcap"));
    let total: f64 = flows
        .iter()
        .map(|f| f.get(Feature::TotalFwdPackets) + f.get(Feature::TotalBwdPackets))
        .sum();
    assert_eq!(total, 94.0);
}
