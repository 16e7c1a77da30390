//! The `flowsentry` binary as a user runs it: the README's main job (`replay` on the shipped
//! config and model; a lowered threshold prints alerts), bad config and bad model refuse to start, SIGTERM during a
//! replay still scores the open flows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

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
fn main_job_replay_scores_every_flow_with_shipped_config_and_model() {
    let out = Command::new(bin())
        .arg("replay")
        .arg(sqlinj())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("94 packets") && err.contains("9 flows scored"),
        "{err}"
    );
    // The shipped threshold lets 0.5% of benign flows alert; these SQL-injection requests look
    // like ordinary web flows and stay under it (model/README.md). Whatever is printed is an
    // alert above the threshold.
    for e in &events(&out.stdout) {
        assert_eq!(e["event_type"], "alert");
        assert!(
            e["flowsentry"]["score"].as_f64().unwrap()
                > e["flowsentry"]["threshold"].as_f64().unwrap()
        );
    }
}

#[test]
fn lowered_threshold_in_config_alerts_on_the_injection_flow() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!("[model]\npath = {model:?}\nthreshold = 0.55\n"),
    );
    let out = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let ev = events(&out.stdout);
    assert!(!ev.is_empty(), "no alerts at threshold 0.55; stderr: {err}");
    for e in &ev {
        assert_eq!(e["event_type"], "alert");
        assert_eq!(e["dest_ip"], "192.168.10.50");
        assert_eq!(e["flowsentry"]["detector"], "flow");
        assert_eq!(e["flowsentry"]["threshold"], 0.55);
        assert!(e["flowsentry"]["score"].as_f64().unwrap() > 0.55);
        // A feature the model reads twice (as it is and log-scaled) is listed once.
        let names: Vec<&str> = e["flowsentry"]["explanation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["feature"].as_str().unwrap())
            .collect();
        assert!(!names.is_empty());
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }
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
    assert_eq!(
        out.status.code(),
        Some(3),
        "a replay cut short exits 3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    // The first flow (13:40:07, 5 s long) had started; it ends as "shutdown", scored.
    assert!(!ev.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ev.iter().all(|e| e["flow"]["reason"] == "shutdown"
        && e["flowsentry"]["flow"]["end_reason"] == "shutdown"));
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

fn wait_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let t = std::time::Instant::now();
    while t.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn sigterm_during_a_long_gap_ends_replay_at_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("gap.pcap");
    // Two packets an hour apart: at 1x the replay sleeps through the gap.
    common::udp_pcap(
        &pcap,
        &[
            (1_500_000_000_000_000, 12345),
            (1_500_003_600_000_000, 12345),
        ],
    );
    let mut child = Command::new(bin())
        .args(["replay", "--speed", "1x"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(unsafe_free_kill(child.id(), "TERM"));
    let st = wait_timeout(&mut child, Duration::from_secs(3));
    let st = st.expect("replay did not stop within 3 s of SIGTERM");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
}

#[test]
fn absurd_speed_is_refused_not_a_panic() {
    for speed in ["1e-300", "1e300", "0", "-1", "nan"] {
        let out = Command::new(bin())
            .arg("replay")
            .arg(format!("--speed={speed}"))
            .arg(sqlinj())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{speed}: {err}");
        assert!(err.contains("--speed"), "{speed}: {err}");
        assert!(!err.contains("panicked"), "{speed}: {err}");
    }
}

#[test]
fn fifo_and_device_paths_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let cfg_dev = write_config(dir.path(), "[model]\npath = \"/dev/zero\"\n");
    let cfg_fifo = dir.path().join("fifo-model.toml");
    std::fs::write(&cfg_fifo, format!("[model]\npath = {fifo:?}\n")).unwrap();
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["check-config".into(), fifo.clone().into()],
        vec!["check-config".into(), "/dev/zero".into()],
        vec!["check-config".into(), cfg_dev.clone().into()],
        vec!["check-config".into(), cfg_fifo.clone().into()],
        vec![
            "replay".into(),
            "--config".into(),
            cfg_fifo.into(),
            sqlinj().into(),
        ],
        vec![
            "replay".into(),
            "--config".into(),
            cfg_dev.into(),
            sqlinj().into(),
        ],
    ];
    for args in runs {
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let st = wait_timeout(&mut child, Duration::from_secs(10));
        let st = st.unwrap_or_else(|| panic!("{args:?} hung"));
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(st.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
}

/// The shipped model with one field changed.
fn model_with(dir: &Path, name: &str, key: &str, value: serde_json::Value) -> PathBuf {
    let text = std::fs::read_to_string(root().join("model/forest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m[key] = value;
    let p = dir.join(name);
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

#[test]
fn check_config_refuses_what_run_refuses_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with(dir.path(), "m.json", "threshold", serde_json::json!(1.5));
    let cfg = write_config(
        dir.path(),
        &format!(
            "[capture]\nbpf_filter = \"tcp port eighty\"\n[model]\npath = {model:?}\n[alerts]\nqueue_size = 9223372036854775807\n[logging]\nlevel = \"warning\"\n[[alerts.sinks]]\ntype = \"json\"\npath = {:?}\n[[alerts.sinks]]\ntype = \"syslog\"\naddress = \"/nonexistent/log\"\n",
            dir.path()
        ),
    );
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "7 problems",
        "bpf_filter",
        "threshold 1.5",
        "host.model",
        "alerts.queue_size",
        "logging.level",
        "is a directory",
        "/nonexistent/log",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // max_samples = 1 is refused by the loader, so by check-config and by replay alike.
    let model = model_with(dir.path(), "m1.json", "max_samples", serde_json::json!(1));
    let cfg = write_config(dir.path(), &format!("[model]\npath = {model:?}\n"));
    for args in [vec!["check-config"], vec!["replay", "--config"]] {
        let mut c = Command::new(bin());
        c.args(&args).arg(&cfg);
        if args[0] == "replay" {
            c.arg(sqlinj());
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} {err}");
        assert!(err.contains("max_samples"), "{args:?} {err}");
    }
}

#[test]
fn check_config_warns_on_open_http_and_tiny_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[model]\npath = {model:?}\n[flow]\nflow_timeout_s = 0.01\n[http]\nenabled = true\nlisten = \"0.0.0.0:9108\"\n"
        ),
    );
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: http.listen"), "{err}");
    assert!(err.contains("warning: flow.flow_timeout_s"), "{err}");
}

#[test]
fn replay_without_config_says_which_and_uses_the_shipped_one() {
    let out = Command::new(bin())
        .arg("replay")
        .arg(sqlinj())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let shipped = root().join("config/flowsentry.toml");
    assert!(
        err.contains(&format!("replay config: {} (shipped", shipped.display())),
        "{err}"
    );
}

#[test]
fn flows_output_is_untouched_when_the_input_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let out_csv = dir.path().join("flows.csv");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a capture").unwrap();
    for input in [
        dir.path().join("missing.pcap"),
        dir.path().to_path_buf(),
        text.clone(),
    ] {
        std::fs::write(&out_csv, "precious\n").unwrap();
        let out = Command::new(bin())
            .arg("flows")
            .arg(&input)
            .arg("-o")
            .arg(&out_csv)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", input.display());
        assert_eq!(std::fs::read_to_string(&out_csv).unwrap(), "precious\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "a temporary file was left behind");
    }
    let out = Command::new(bin())
        .arg("flows")
        .arg(sqlinj())
        .arg("-o")
        .arg(&out_csv)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&out_csv).unwrap().lines().count(),
        10
    );
}

#[test]
fn flows_output_to_a_fifo_is_written_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = Command::new(bin())
        .arg("flows")
        .arg(sqlinj())
        .arg("-o")
        .arg(&fifo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reader.join().unwrap().lines().count(), 10);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn closed_stdout_is_not_an_error_and_causes_are_said_once() {
    let mut child = Command::new(bin())
        .arg("flows")
        .arg(sqlinj())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head` that has finished
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");

    let out = Command::new(bin())
        .args(["check-config", "/nonexistent/flowsentry.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

fn stat(err: &str, key: &str) -> u64 {
    let at = err
        .rfind(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{key} not in {err}"));
    err[at + key.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn file_size_limit_leaves_whole_lines_and_honest_counters() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[model]\npath = {model:?}\n[alerts]\nflow_events = true\nshutdown_timeout_s = 2.0\n[[alerts.sinks]]\ntype = \"json\"\npath = \"events.json\"\n"
        ),
    );
    // 7,000 bytes hold two of the ten ~3 KB events (nine flow records with their feature
    // vectors, one alert); the third write is cut short (EFBIG).
    let out = Command::new("prlimit")
        .arg("--fsize=7000")
        .arg(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = std::fs::read_to_string(dir.path().join("events.json")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn: {text:?}");
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    let lines = text.lines().count() as u64;
    assert!((1..9).contains(&lines), "{lines}");
    assert_eq!(stat(&err, "sink_written"), lines, "{err}");
    // Every scored flow has a flow record, every alerted one an alert too.
    assert_eq!(
        stat(&err, "sink_written") + stat(&err, "sink_failed") + stat(&err, "sink_abandoned"),
        stat(&err, "scored") + stat(&err, "alerts"),
        "{err}"
    );
}

#[test]
fn replay_into_a_closed_pipe_ends_at_once_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("model/forest.json");
    let cfg = write_config(
        dir.path(),
        &format!("[model]\npath = {model:?}\n[alerts]\nflow_events = true\n"),
    );
    let t = std::time::Instant::now();
    let mut child = Command::new(bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(sqlinj())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head` that has finished
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "no retries into a closed pipe: {:?}",
        t.elapsed()
    );
    // Every event (a flow record per scored flow, an alert per alert) is written or counted.
    assert_eq!(
        stat(&err, "sink_written") + stat(&err, "sink_failed"),
        stat(&err, "scored") + stat(&err, "alerts"),
        "{err}"
    );
}
