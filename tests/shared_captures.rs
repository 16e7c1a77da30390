//! Runs every capture under `../shared/pcaps/` (the captures others made, not committed here)
//! through the pipeline. Ignored by default because a fresh clone has no `../shared`; `.ci/run`
//! runs it with `cargo test -- --ignored`, and it fails naming the path when the input is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flowsentry::features::{Feature, FlowRecord};
use flowsentry::flow::FlowConfig;
use flowsentry::pipeline;

fn shared_pcaps() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
    assert!(
        p.is_dir(),
        "missing input: {} (the shared captures; see README)",
        p.display()
    );
    p
}

fn manifest(root: &Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let packets = cols.get(6)?.parse().ok()?;
            Some((cols[0].to_string(), packets))
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/pcaps; run by .ci/run with --ignored"]
fn every_shared_capture_is_read_without_panic_and_conserves_packets() {
    let root = shared_pcaps();
    let expected = manifest(&root);
    assert!(
        expected.len() > 100,
        "MANIFEST.tsv lists {} captures",
        expected.len()
    );
    let mut checked = 0;
    let mut report = Vec::new();
    for (rel, want_packets) in &expected {
        let path = root.join(rel);
        let mut flow_packets = 0.0;
        let mut flows = 0u64;
        let res = pipeline::run_file(
            &path,
            FlowConfig::default(),
            &mut |_, _| {},
            &mut |r: FlowRecord| {
                flows += 1;
                flow_packets += r.get(Feature::TotalFwdPackets) + r.get(Feature::TotalBwdPackets);
            },
        );
        match res {
            Ok(s) => {
                let c = s.counters;
                // Every decoded packet lands in exactly one flow.
                assert_eq!(
                    flow_packets as u64, c.decoded,
                    "{rel}: packets in flows vs decoded"
                );
                assert_eq!(c.decoded + c.skipped.total(), c.frames, "{rel}");
                if s.damaged.is_none() {
                    assert_eq!(c.frames, *want_packets, "{rel}: frames vs MANIFEST");
                } else {
                    assert!(
                        c.frames <= *want_packets,
                        "{rel}: more frames than the MANIFEST"
                    );
                }
                report.push(format!("{rel}: {} frames, {} flows", c.frames, flows));
            }
            // Files libpcap cannot open at all (empty file, unsupported link type) must say so
            // with the file name.
            Err(e) => {
                assert!(
                    e.to_string().contains(rel.rsplit('/').next().unwrap()),
                    "{e}"
                );
                report.push(format!("{rel}: refused: {e}"));
            }
        }
        checked += 1;
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(checked, expected.len());
}

#[test]
#[ignore = "needs ../shared/pcaps; run by .ci/run with --ignored"]
fn flood_memory_is_bounded_by_the_cap() {
    let root = shared_pcaps();
    let path = root.join("attack/stopddos__pkt.TCP.synflood.spoofed.pcap");
    let cfg = FlowConfig {
        max_flows: 1000,
        ..FlowConfig::default()
    };
    let mut flows = 0u64;
    let s = pipeline::run_file(&path, cfg, &mut |_, _| {}, &mut |_| flows += 1).unwrap();
    assert!(s.flows.evicted > 30_000, "evicted {}", s.flows.evicted);
    assert_eq!(
        flows, s.flows.created,
        "every flow created is emitted exactly once"
    );
}

/// A worker's rows, as CSV text.
struct Rows(flowsentry::features::csv_out::CsvWriter<Vec<u8>>);

impl flowsentry::flow::FlowSink for Rows {
    fn ended(&mut self, r: FlowRecord) {
        self.0.write(&r).unwrap();
    }
}
impl flowsentry::shard::ShardSink for Rows {}

fn csv_rows() -> Rows {
    Rows(flowsentry::features::csv_out::CsvWriter::rows_only(
        Vec::new(),
        flowsentry::features::ColumnSet::Cic2017,
        None,
        None,
    ))
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Two workers (the block reader, two flow tables) find the flows of one table, as a set of
/// CSV rows, and stop at the same damage with the same error, on every shared capture.
#[test]
#[ignore = "needs ../shared/pcaps; run by .ci/run with --ignored"]
fn two_workers_find_the_flows_of_one_on_every_shared_capture() {
    let root = shared_pcaps();
    let expected = manifest(&root);
    let mut compared = 0;
    for rel in expected.keys() {
        let path = root.join(rel);
        let mut one = csv_rows();
        let Ok(single) = pipeline::run_file(&path, FlowConfig::default(), &mut |_, _| {}, &mut one)
        else {
            continue; // refused files: the test above
        };
        let mut src = flowsentry::capture::BlockSource::open(&path).unwrap();
        let all = std::sync::Mutex::new(Vec::new());
        let s = flowsentry::shard::run(
            &mut src,
            FlowConfig::default(),
            2,
            None,
            &|_| csv_rows(),
            &|r: Rows| all.lock().unwrap().extend(r.0.finish().unwrap()),
            &mut |_, _| {},
        );
        assert_eq!(s.counters, single.counters, "{rel}");
        assert_eq!(
            s.damaged.as_ref().map(|e| e.to_string()),
            single.damaged.as_ref().map(|e| e.to_string()),
            "{rel}"
        );
        let two = sorted_lines(&all.into_inner().unwrap());
        assert_eq!(two.len() as u64, single.flows.created, "{rel}");
        assert!(
            two == sorted_lines(&one.0.finish().unwrap()),
            "{rel}: rows differ"
        );
        compared += 1;
    }
    assert!(compared > 150, "{compared}");
}
