//! Every event kind flowsentry writes is Suricata EVE: flow alerts, flow records (from `replay` of
//! the committed captures with `flow_events` on and a low threshold, so alerts cover TCP, UDP,
//! ICMP and IPv6) and host alerts (every host signature, built with the public constructor).
//! Each event has exactly one key EVE does not define, `flowsentry`; without it the event must
//! validate against
//! - `tests/data/eve-subset.schema.json` (always: the EVE fields we write, typed as EVE types
//!   them, written here), and
//! - Suricata's own schema `../shared/reference/suricata-eve-schema.json` (ignored by default,
//!   a fresh clone has no `../shared`; `.ci/run` runs it with `--ignored` and it fails naming the
//!   path when the file is missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use flowsentry::alert::{Alert, HostAlert, HostInfo, HostRole, Origin, Signature};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replays a committed capture through the binary with flow events on; returns every event.
fn replay_events(pcap: &str, dir: &Path) -> Vec<Value> {
    let out = dir.join(format!("{pcap}.json"));
    let cfg = dir.join(format!("{pcap}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nname = \"schema-test\"\n[model]\npath = {:?}\nthreshold = 0.40\n\
             [alerts]\nflow_events = true\naggregate_window_s = 0\n[[alerts.sinks]]\ntype = \"json\"\npath = {:?}\n",
            root().join("model/forest.json"),
            out
        ),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_flowsentry"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(root().join("tests/data").join(pcap))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn host_events() -> Vec<Value> {
    let origin = Origin {
        sensor: "schema-test".into(),
        in_iface: "eth1".into(),
        model: String::new(),
        community_id_seed: 0,
    };
    let attacker = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 66));
    let victim = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
    Signature::ALL
        .iter()
        .filter(|s| **s != Signature::FlowAnomaly)
        .map(|&signature| {
            let to_victim = signature == Signature::Flood;
            let h = HostAlert {
                signature,
                time_us: 1_499_348_412_425_928,
                src_ip: (!to_victim).then_some(attacker),
                src_port: None,
                dest_ip: Some(victim).filter(|_| signature != Signature::HostSweep),
                dest_port: (signature == Signature::BruteForce).then_some(22),
                proto: Some(6),
                severity: None,
                score: None,
                threshold: None,
                host: HostInfo {
                    role: if to_victim {
                        HostRole::Destination
                    } else {
                        HostRole::Source
                    },
                    ip: if to_victim { victim } else { attacker },
                    window_s: 10.0,
                    counts: BTreeMap::from([("out_dst_ports_10s".to_string(), 812.0)]),
                },
            };
            serde_json::from_str(&Alert::host_alert(&h, &origin).to_json()).unwrap()
        })
        .collect()
}

/// Every event kind, with how many of each.
fn all_events() -> (Vec<Value>, BTreeMap<String, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = replay_events("nfstream__WebattackSQLinj.pcap", dir.path());
    ev.extend(replay_events("tcpreplay__test.pcap", dir.path()));
    ev.extend(host_events());
    let mut kinds = BTreeMap::new();
    for e in &ev {
        let v6 = e["src_ip"].as_str().is_some_and(|ip| ip.contains(':'));
        let kind = format!(
            "{}/{}/{}{}",
            e["event_type"].as_str().unwrap_or("?"),
            e["flowsentry"]["detector"].as_str().unwrap_or("?"),
            e["proto"].as_str().unwrap_or("-"),
            if v6 { "/v6" } else { "" }
        );
        *kinds.entry(kind).or_insert(0) += 1;
    }
    (ev, kinds)
}

/// Checks the one-extension rule and validates the rest; returns the number validated.
fn validate(schema_path: &Path, draft7: bool) -> usize {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let v = if draft7 {
        jsonschema::draft7::new(&schema).unwrap()
    } else {
        jsonschema::validator_for(&schema).unwrap()
    };
    let eve_keys = schema["properties"].as_object().unwrap();
    let (events, kinds) = all_events();
    for k in [
        "alert/flow/TCP",
        "alert/host/TCP",
        "flow/flow/TCP",
        "flow/flow/UDP",
        "flow/flow/ICMP",
        "alert/flow/ICMP",
    ] {
        assert!(kinds.contains_key(k), "no {k} event; kinds: {kinds:?}");
    }
    assert!(
        kinds.keys().any(|k| k.ends_with("/v6")),
        "no IPv6 event; kinds: {kinds:?}"
    );
    let mut failures = Vec::new();
    for e in &events {
        let mut core = e.as_object().unwrap().clone();
        let extra: Vec<&String> = e
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !eve_keys.contains_key(*k))
            .collect();
        assert_eq!(extra, ["flowsentry"], "one extension object only: {e}");
        if e["flow"].is_object() {
            assert!(
                e["community_id"].is_string(),
                "flow without community_id: {e}"
            );
        }
        core.remove("flowsentry");
        let core = Value::Object(core);
        let errors: Vec<String> = v.iter_errors(&core).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            failures.push(format!("{errors:?} in {core}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} events invalid against {}:\n{}",
        failures.len(),
        events.len(),
        schema_path.display(),
        failures[..failures.len().min(5)].join("\n")
    );
    eprintln!(
        "{} events valid against {}: {kinds:?}",
        events.len(),
        schema_path.display()
    );
    events.len()
}

#[test]
fn every_event_kind_validates_against_the_eve_fields_we_write() {
    assert!(validate(&root().join("tests/data/eve-subset.schema.json"), false) > 20);
}

#[test]
#[ignore = "needs ../shared/reference; run by .ci/run with --ignored"]
fn every_event_kind_validates_against_suricatas_eve_schema() {
    let p: PathBuf = root().join("../shared/reference/suricata-eve-schema.json");
    assert!(
        p.is_file(),
        "missing input: {} (Suricata's EVE schema)",
        p.display()
    );
    assert!(validate(&p, true) > 20);
}

#[test]
fn flow_events_carry_every_feature_and_alerts_explain_with_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let ev = replay_events("nfstream__WebattackSQLinj.pcap", dir.path());
    let flows: Vec<&Value> = ev.iter().filter(|e| e["event_type"] == "flow").collect();
    assert_eq!(
        flows.len(),
        9,
        "one flow record per flow (the dataset has 9)"
    );
    for f in flows {
        let feats = f["flowsentry"]["features"].as_object().unwrap();
        assert_eq!(feats.len(), flowsentry::features::NUM_FEATURES);
        for d in flowsentry::features::FEATURES.iter() {
            assert!(feats[d.id.name()].is_number(), "{}", d.id.name());
        }
        assert_eq!(
            feats["Dst Port"].as_f64().unwrap(),
            f["dest_port"].as_f64().unwrap()
        );
    }
    // The shipped model stores training quantiles: every explained feature has a label and
    // a percentile in 0..=100.
    let alerts: Vec<&Value> = ev.iter().filter(|e| e["event_type"] == "alert").collect();
    assert!(!alerts.is_empty());
    for a in alerts {
        for x in a["flowsentry"]["explanation"].as_array().unwrap() {
            assert!(!x["label"].as_str().unwrap().is_empty());
            let p = x["percentile"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&p), "{x}");
        }
    }
}
