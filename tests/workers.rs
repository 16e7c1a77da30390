//! Workers (`flows --workers N`, `capture.workers`): N flow tables on N threads find the same
//! flows as one table, as a set of CSV rows, on real captures; and `replay` with two workers
//! scores every flow once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The CSV of `flows` with `workers`: (header, rows sorted).
fn rows(capture: &Path, workers: u32, extra: &[&str]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flows.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_flowsentry"))
        .arg("flows")
        .arg(capture)
        .args(["--workers", &workers.to_string(), "-o"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    let mut rows: Vec<String> = lines.collect();
    rows.sort();
    (header, rows)
}

#[test]
fn two_and_three_workers_find_the_flows_of_one() {
    for (capture, extra) in [
        ("nfstream__synscan.pcap", &[][..]),
        ("tcpreplay__test.pcap", &[][..]),
        ("nfstream__WebattackSQLinj.pcap", &[][..]),
        // Short timeouts: flows split by the flow timeout, the activity timeout and the linger
        // of closed TCP connections, at sweeps every table must run at the same packets.
        (
            "tcpreplay__test.pcap",
            &[
                "--flow-timeout",
                "0.5",
                "--tcp-linger",
                "0.01",
                "--community-id",
            ][..],
        ),
        (
            "nfstream__WebattackSQLinj.pcap",
            &["--flow-timeout", "1", "--activity-timeout", "0.2"][..],
        ),
    ] {
        let one = rows(&data(capture), 1, extra);
        assert!(one.1.len() >= 9, "{capture}: {} flows", one.1.len());
        for n in [2, 3] {
            let many = rows(&data(capture), n, extra);
            assert_eq!(one.0, many.0, "{capture}: header");
            assert_eq!(
                one.1.len(),
                many.1.len(),
                "{capture} {extra:?}: {n} workers"
            );
            assert!(
                one.1 == many.1,
                "{capture} {extra:?}: rows differ with {n} workers"
            );
        }
    }
}

#[test]
fn replay_with_two_workers_scores_every_flow_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\nworkers = 2\n[model]\npath = \"{}\"\n[host]\nmodel = \"{}\"\n[alerts]\nflow_events = true\n",
            model.join("forest.json").display(),
            model.join("host-forest.json").display()
        ),
    )
    .unwrap();
    let run = |config: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flowsentry"));
        c.arg("replay").arg(data("nfstream__synscan.pcap"));
        if let Some(p) = config {
            c.arg("--config").arg(p);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut flows: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event_type"] == "flow")
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["flow_id"],
                    e["flowsentry"]["score"],
                    e["flow"]["pkts_toserver"],
                    e["flow"]["pkts_toclient"]
                )
            })
            .collect();
        flows.sort();
        flows
    };
    let two = run(Some(&cfg));
    // The same config with one worker.
    let one_cfg = dir.path().join("one.toml");
    std::fs::write(
        &one_cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("workers = 2", "workers = 1"),
    )
    .unwrap();
    let one = run(Some(&one_cfg));
    assert!(one.len() >= 1900, "{}", one.len());
    assert!(
        one == two,
        "flow events differ: {} vs {}",
        one.len(),
        two.len()
    );
}
