//! `flowsentry train` as a site runs it: from the daemon's own flow events (JSON lines), with
//! the alert threshold set from a false-alarm budget on held-out or given benign rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flowsentry::features::dataset;
use flowsentry::forest::Model;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flowsentry")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

const FEATURES: &str = "Flow Duration,Total Fwd Packet,Total Bwd packets";

fn train(args: &[&str], out: &Path) -> Output {
    Command::new(bin())
        .arg("train")
        .args(args)
        .arg("-o")
        .arg(out)
        .args([
            "--features",
            FEATURES,
            "--trees",
            "20",
            "--sample-size",
            "16",
        ])
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Scores of every flow event in `path` under `model`.
fn scores(model: &Model, path: &Path) -> Vec<f64> {
    let ds = dataset::read(&[path.into()], model.features(), None, &|_| true).unwrap();
    let mut s = vec![0.0; ds.rows()];
    model.score_rows(&ds.values, &mut s);
    s
}

#[test]
fn trains_from_flow_events_with_a_budget_on_held_out_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site.json");
    let events = data("flow_events.jsonl");
    let o = train(&[events.to_str().unwrap(), "--fpr-budget", "0.25"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Model::load(&out).unwrap();
    let f = m.file();
    // 20 flow events (the alert line is skipped), 20% held out for the threshold.
    assert_eq!(f.provenance.rows_used, 16, "{:?}", f.provenance);
    assert_eq!(f.provenance.training_files[0].rows, 20);
    assert_eq!(f.provenance.params["fpr_budget"], 0.25);
    assert!(
        f.provenance.notes.contains("4 training rows held out"),
        "{}",
        f.provenance.notes
    );
    assert!(f.threshold != 0.5 && f.offset == -f.threshold);
    // The same command gives the same model (the held-out rows are chosen by the seed).
    let again = dir.path().join("again.json");
    assert!(
        train(&[events.to_str().unwrap(), "--fpr-budget", "0.25"], &again)
            .status
            .success()
    );
    assert_eq!(Model::load(&again).unwrap().file().trees, f.trees);
}

#[test]
fn budget_on_calibration_rows_bounds_their_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let events = data("flow_events.jsonl");
    let ev = events.to_str().unwrap();
    let o = train(&[ev, "--fpr-budget", "0.1", "--calibrate", ev], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Model::load(&out).unwrap();
    assert_eq!(m.file().provenance.rows_used, 20);
    let s = scores(&m, &events);
    let over = s.iter().filter(|x| **x > m.threshold()).count();
    // 10% of 20 calibration rows: exactly 2 above the threshold, and the threshold is a score.
    assert_eq!(over, 2, "threshold {} scores {s:?}", m.threshold());
    assert!(s.contains(&m.threshold()));
    assert!(m.file().provenance.notes.contains("2 of 20 rows"));
}

#[test]
fn flow_events_without_features_fail_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    let good = std::fs::read_to_string(data("flow_events.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        &old,
        format!(
            "{first}\n{{\"event_type\":\"flow\",\"src_ip\":\"10.0.0.9\",\"flow\":{{\"pkts_toserver\":3}}}}\n"
        ),
    )
    .unwrap();
    let o = train(&[old.to_str().unwrap()], &dir.path().join("m.json"));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("old.json:2:") && e.contains("flowsentry.features"),
        "{e}"
    );
    // Labels cannot filter events: the error says so instead of training on nothing.
    let o = train(
        &[
            data("flow_events.jsonl").to_str().unwrap(),
            "--benign-label",
            "BENIGN",
        ],
        &dir.path().join("m.json"),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("no labels"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn max_rows_trains_on_a_seeded_sample() {
    let dir = tempfile::tempdir().unwrap();
    let events = data("flow_events.jsonl");
    let ev = events.to_str().unwrap();
    let out = dir.path().join("m.json");
    let o = train(&[ev, "--max-rows", "8"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sampled 8 of 20 rows"),
        "{}",
        stderr(&o)
    );
    let f = Model::load(&out).unwrap().file().clone();
    assert_eq!(f.provenance.rows_used, 8);
    assert_eq!(f.provenance.training_files[0].rows, 20);
    assert_eq!(f.provenance.params["max_rows"], 8);
    // Under the cap: every row, and no max_rows in the provenance.
    let o = train(&[ev], &out);
    assert!(o.status.success() && !stderr(&o).contains("sampled"));
    let f = Model::load(&out).unwrap().file().clone();
    assert_eq!(f.provenance.rows_used, 20);
    assert!(!f.provenance.params.contains_key("max_rows"));
}

#[test]
fn score_refuses_flow_events_with_a_clear_error() {
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json");
    let o = Command::new(bin())
        .args(["score", "--model"])
        .arg(&m)
        .arg(data("flow_events.jsonl"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("flow events"), "{}", stderr(&o));
}

#[test]
fn budget_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ev = data("flow_events.jsonl");
    let ev = ev.to_str().unwrap();
    let out = dir.path().join("m.json");
    for bad in [
        vec![ev, "--fpr-budget", "0"],
        vec![ev, "--fpr-budget", "0.7"],
        vec![ev, "--fpr-budget", "0.01", "--contamination", "0.1"],
        vec![ev, "--calibrate", ev],
    ] {
        let o = train(&bad, &out);
        assert!(!o.status.success(), "{bad:?} was accepted");
    }
}

#[test]
fn learns_from_the_flow_events_a_replay_writes() {
    // The whole loop a site runs: the sensor writes flow events, train reads them back with the
    // shipped feature set, the new model loads.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("flows.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json");
    let cfg = dir.path().join("flowsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {model:?}\n[alerts]\nflow_events = true\n[[alerts.sinks]]\ntype = \"json\"\npath = {events:?}\n"
        ),
    )
    .unwrap();
    let o = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(data("nfstream__WebattackSQLinj.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("site.json");
    let ev = events.to_str().unwrap();
    let o = Command::new(bin())
        .args(["train", ev, "-o"])
        .arg(&out)
        .args(["--fpr-budget", "0.25", "--calibrate", ev])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Model::load(&out).unwrap();
    // 9 flows in the capture, each one flow event; the shipped set's 11 inputs.
    assert_eq!(m.file().provenance.rows_used, 9);
    assert_eq!(m.features().len(), 11);
    assert_eq!(scores(&m, &events).len(), 9);
}
