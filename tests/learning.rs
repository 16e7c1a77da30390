//! The learning period (`[learning]`, `src/learn/`) as a user runs it: `replay` of nmap's real
//! SYN scan (tests/data/nfstream__synscan.pcap, 1,994 flows) learns a site model, saves it,
//! swaps it in at a fixed point, and the next start scores with it; a source the host detector
//! names does not teach the model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let model = root().join("model/forest.json");
    let p = dir.join("flowsentry.toml");
    let body = format!(
        "[model]\npath = {model:?}\n[alerts]\nflow_events = true\naggregate_window_s = 0\n\
         [learning]\nenabled = true\nflows = 1000\nmin_flows = 1000\nsample = 1000\n\
         output = \"site-forest.json\"\n{extra}"
    );
    std::fs::write(&p, body).unwrap();
    p
}

fn replay(cfg: &Path) -> (Vec<serde_json::Value>, String) {
    common::replay(Some(cfg), &root().join("tests/data/nfstream__synscan.pcap"))
}

fn model_of(e: &serde_json::Value) -> &str {
    e["flowsentry"]["model"].as_str().unwrap_or("")
}

#[test]
fn learns_the_site_then_scores_with_the_learned_model() {
    let dir = tempfile::tempdir().unwrap();
    // The host detector off: here the scan is the "site" (the next test keeps it on).
    let cfg = config(dir.path(), "[host]\nenabled = false\n");
    let learned = dir.path().join("site-forest.json");
    let (events, err) = replay(&cfg);
    assert!(
        err.contains("learning period over: trained on 700 of 1000 flows"),
        "{err}"
    );
    assert!(learned.is_file(), "{err}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&learned).unwrap()).unwrap();
    assert_eq!(file["provenance"]["rows_used"], 700);
    assert!(
        file["provenance"]["notes"]
            .as_str()
            .unwrap()
            .contains("of 300 held-out flows score above it")
    );
    // On this capture every flow ends at the end of input (the scan is shorter than the 2 s
    // TCP linger): the shipped model scores them all, the learned one is saved for next time.
    let flows: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event_type"] == "flow")
        .collect();
    assert_eq!(flows.len(), 1994, "{err}");
    assert!(flows.iter().all(|e| model_of(e) == "forest.json"));
    // The next start uses the learned model throughout and does not learn again.
    let saved = std::fs::read_to_string(&learned).unwrap();
    let (again, err2) = replay(&cfg);
    assert!(
        err2.contains("scoring with the site model") && !err2.contains("sampling up to"),
        "{err2}"
    );
    let flows2: Vec<_> = again.iter().filter(|e| e["event_type"] == "flow").collect();
    assert_eq!(flows2.len(), 1994);
    assert!(flows2.iter().all(|e| model_of(e) == "site-forest.json"));
    assert_eq!(std::fs::read_to_string(&learned).unwrap(), saved);
    // The learned threshold is the one alerts are judged by.
    let t = file["threshold"].as_f64().unwrap();
    assert!(
        flows2
            .iter()
            .all(|e| (e["flowsentry"]["threshold"].as_f64().unwrap() - t).abs() < 1e-12)
    );
}

#[test]
fn a_source_named_by_the_host_detector_does_not_teach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (events, err) = replay(&cfg);
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "alert" && e["flowsentry"]["detector"] == "host"),
        "the scan is named"
    );
    // The scanner's flows are dropped from the sample and no more are taken: the period never
    // reaches its 1,000 flows and nothing is learned.
    assert!(
        err.contains("the learning period is not over, no model learned"),
        "{err}"
    );
    assert!(!dir.path().join("site-forest.json").exists());
}

#[test]
fn learning_refuses_settings_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[capture]\nworkers = 2\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[model]\n", "[model]\nthreshold = 0.6\n")
        .replace("site-forest.json", "no-such-dir/site-forest.json");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowsentry"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "learning.enabled needs capture.workers = 1",
        "remove model.threshold",
        "learning.output: folder",
    ] {
        assert!(all.contains(want), "{want:?} missing from: {all}");
    }
}

#[test]
fn the_learned_model_takes_over_at_the_end_of_the_period_in_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("udp.pcap");
    // 1,500 flows, one every 50 ms: each ends on a 5 s idle timeout while later ones
    // still arrive, so the period ends mid-capture.
    let packets: Vec<(i64, u16)> = (0..1500u16)
        .map(|i| (1_700_000_000_000_000 + i64::from(i) * 50_000, 10_000 + i))
        .collect();
    common::udp_pcap(&pcap, &packets);
    let cfg = config(dir.path(), "[flow]\nflow_timeout_s = 5\n");
    let (events, err) = common::replay(Some(&cfg), &pcap);
    let flows: Vec<serde_json::Value> = events
        .into_iter()
        .filter(|e| e["event_type"] == "flow")
        .collect();
    assert_eq!(flows.len(), 1500, "{err}");
    // The shipped model scores up to the end of the period, the learned one after it, never
    // mixed; the switch point is fixed by the capture, not by timing.
    let switch = flows
        .iter()
        .position(|e| model_of(e) == "site-forest.json")
        .expect("flows scored by the learned model");
    assert!((1000..1100).contains(&switch), "switched at flow {switch}");
    assert!(flows[..switch].iter().all(|e| model_of(e) == "forest.json"));
    assert!(
        flows[switch..]
            .iter()
            .all(|e| model_of(e) == "site-forest.json")
    );
    assert!(dir.path().join("site-forest.json").is_file());
}
