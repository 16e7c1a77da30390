//! The `flowsentry` binary as a user runs it: the README's main job (`replay` on the shipped
//! config and model prints alerts), bad config and bad model refuse to start, SIGTERM during a
//! replay still scores the open flows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flowsentry")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sqlinj() -> PathBuf {
    root().join("tests/data/nfstream__WebattackSQLinj.pcap")
}

fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn main_job_replay_prints_alerts_with_shipped_config_and_model() {
    let out = Command::new(bin())
        .arg("replay")
        .arg(sqlinj())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    assert!(
        !ev.is_empty(),
        "no alerts; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for e in &ev {
        assert_eq!(e["event_type"], "anomaly");
        assert_eq!(e["dest_ip"], "192.168.10.50");
        assert!(
            e["anomaly"]["score"].as_f64().unwrap() > e["anomaly"]["threshold"].as_f64().unwrap()
        );
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("94 packets"), "{err}");
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("flowsentry.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn bad_config_line_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!("[model]\npath = {:?}\n[flow]\nmax_flow = 10\n", model),
    );
    let out = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no alerts from a refused start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:1", cfg.display())), "{err}");
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn corrupt_model_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken.json");
    std::fs::write(
        &model,
        "{\"format\": \"flowsentry-isolation-forest\", \"version\": 1, \"trees\": [",
    )
    .unwrap();
    let cfg = write_config(dir.path(), "[model]\npath = \"broken.json\"\n");
    let out = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json"), "{err}");
}

#[test]
fn unwritable_json_sink_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[model]\npath = {model:?}\n[[alerts.sinks]]\ntype = \"json\"\npath = \"/nonexistent-dir/a.json\"\n"
        ),
    );
    let out = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/a.json"));
}

#[test]
fn sigterm_during_replay_scores_open_flows() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!("[model]\npath = {model:?}\n[alerts]\nflow_events = true\n"),
    );
    // The capture spans ~2 minutes; at 1x speed it is still running when SIGTERM comes.
    let child = Command::new(bin())
        .args(["replay", "--speed", "1x", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let rc = unsafe_free_kill(child.id(), "TERM");
    assert!(rc, "kill -TERM failed");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    // The first flow (13:40:07, 5 s long) had started; it ends as "shutdown", scored.
    assert!(!ev.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ev.iter().all(|e| e["flow"]["end_reason"] == "shutdown"));
    assert!(ev.iter().any(|e| e["src_port"] == 36196));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("94 packets"),
        "the replay should have been cut short: {err}"
    );
}

fn unsafe_free_kill(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
