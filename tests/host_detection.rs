//! The host detector end to end: a real nmap SYN scan replayed with the shipped config and
//! models is one EVE alert naming the scanner; the host model trains from benign rows and puts
//! an out-of-range host above its threshold; a fast unanswered packet stream in one flow is one
//! packet-flood alert while it lasts, a slower one none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use flowsentry::forest::Provenance;
use flowsentry::forest::train::Params;
use flowsentry::host::train::{HostTraining, fit};
use flowsentry::host::{HostDetector, HostFeature as H, NUM_HOST_FEATURES};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `flowsentry replay FILE` (a file of tests/data) with the shipped config: its alerts, and its
/// stderr.
fn replay_alerts(file: &str) -> (Vec<serde_json::Value>, String) {
    replay_path(&root().join("tests/data").join(file))
}

/// `flowsentry replay PCAP` with the shipped config: its alerts, and its stderr.
fn replay_path(pcap: &Path) -> (Vec<serde_json::Value>, String) {
    let (events, err) = common::replay(None, pcap);
    let alerts = events
        .into_iter()
        .filter(|e| e["event_type"] == "alert")
        .collect();
    (alerts, err)
}

/// Seconds from `start` (`HH:MM:SS.ffffff` of the capture's first packet, from `tcpdump -tt`)
/// to an EVE timestamp of the same day.
fn seconds_after(eve: &serde_json::Value, day: &str, start: &str) -> f64 {
    let t = eve["timestamp"].as_str().unwrap();
    assert!(t.starts_with(day), "{t}");
    let secs = |hms: &str| -> f64 {
        hms.split(':')
            .map(|x| x.parse::<f64>().unwrap())
            .fold(0.0, |acc, x| acc * 60.0 + x)
    };
    secs(&t[day.len()..day.len() + 15]) - secs(start)
}

#[test]
fn a_syn_scan_is_one_host_alert_naming_the_scanner() {
    let (alerts, _) = replay_alerts("nfstream__synscan.pcap");
    // 1,994 probe flows: one alert (aggregation), from the host detector, naming the scanner.
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["src_ip"], "172.16.0.8");
    assert_eq!(a["flowsentry"]["detector"], "host");
    assert_eq!(a["flowsentry"]["host"]["role"], "source");
    assert_eq!(a["alert"]["category"], "Detection of a Network Scan");
    let ports = a["flowsentry"]["host"]["counts"]["out_dst_ports_10s"]
        .as_f64()
        .unwrap();
    assert!(ports >= 10.0, "{a:#}");
    // The explanation speaks of what the scanner sent.
    let why = a["flowsentry"]["explanation"].as_array().unwrap();
    assert!(!why.is_empty());
    assert!(
        why.iter()
            .all(|e| e["feature"].as_str().unwrap().starts_with("out_")),
        "{why:#?}"
    );
    // Within seconds of the scan's first packet (20:24:16.274870).
    let after = seconds_after(a, "2010-07-04T", "20:24:16.274870");
    assert!((0.0..10.0).contains(&after), "{after} s");
}

/// Zeek's SSH guessing trace: 11 connections over 66 s, at most 3 in 10 s — too few for the
/// host detector; the session rules' repeated-logins rule names the guesser and the service.
#[test]
fn ssh_password_guessing_is_one_session_alert() {
    let (alerts, err) = replay_alerts("zeek__ssh__sshguess.pcap");
    let session: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["flowsentry"]["detector"] == "session")
        .collect();
    assert_eq!(session.len(), 1, "{alerts:#?}");
    let a = session[0];
    assert_eq!(a["src_ip"], "192.168.56.1");
    assert_eq!(a["dest_ip"], "192.168.56.103");
    assert_eq!(a["dest_port"], 22);
    assert_eq!(a["alert"]["signature_id"], 9_100_031);
    let attempts = a["flowsentry"]["host"]["counts"]["attempt_sessions"]
        .as_f64()
        .unwrap();
    assert!(attempts >= 5.0, "{a:#}");
    // At the fifth guess, 30 s into the capture (first packet 14:44:49.213953).
    let after = seconds_after(a, "2015-03-30T", "14:44:49.213953");
    assert!((20.0..40.0).contains(&after), "{after} s");
    // The stats line counts the finding.
    assert!(!err.contains("findings_session=0 "), "{err}");
}

/// Benign-looking rows: a handful of flows per second to a few services, mostly answered.
fn benign_rows(n: usize) -> Vec<[f64; NUM_HOST_FEATURES]> {
    (0..n)
        .map(|i| {
            let k = (i % 17) as f64;
            let mut v = [0.0; NUM_HOST_FEATURES];
            v[H::OutRate1s as usize] = 1.0 + k / 4.0;
            v[H::OutRate10s as usize] = 1.0 + k / 6.0;
            v[H::OutRate60s as usize] = 0.5 + k / 10.0;
            v[H::OutDstPorts10s as usize] = 1.0 + (i % 3) as f64;
            v[H::OutDstPorts60s as usize] = 2.0 + (i % 4) as f64;
            v[H::OutDstHosts10s as usize] = 1.0 + (i % 5) as f64;
            v[H::OutDstHosts60s as usize] = 2.0 + (i % 6) as f64;
            v[H::OutUnanswered10s as usize] = (i % 10) as f64 / 20.0;
            v[H::OutTopServiceShare60s as usize] = 0.3 + (i % 7) as f64 / 10.0;
            v[H::OutSessionSizeCv60s as usize] = 1.0;
            v[H::InRate10s as usize] = (i % 4) as f64 / 2.0;
            v[H::InSources10s as usize] = (i % 3) as f64;
            v
        })
        .collect()
}

#[test]
fn a_host_model_trained_on_benign_rows_flags_a_scan_and_a_flood() {
    let rows = benign_rows(2000);
    let (file, kept) = fit(
        &rows,
        HostTraining {
            params: Params {
                trees: 100,
                sample_size: 256,
                seed: 7,
            },
            range_pad: 1.0,
            trim: 0.01,
            fpr_budget: 0.001,
            min_threshold: 0.5,
        },
        Provenance::default(),
    )
    .unwrap();
    assert!(kept < rows.len() && kept >= rows.len() * 98 / 100);
    let model = flowsentry::forest::Model::from_file(file).unwrap();
    let det = HostDetector::new(model, None).unwrap();
    let ip = "192.0.2.9".parse().unwrap();
    let benign_alerts = rows
        .iter()
        .filter(|r| det.judge(ip, r, 0).is_some())
        .count();
    assert!(benign_alerts <= rows.len() / 100, "{benign_alerts}");
    let mut scan = rows[3];
    scan[H::OutRate1s as usize] = 300.0;
    scan[H::OutRate10s as usize] = 60.0;
    scan[H::OutDstPorts10s as usize] = 266.0;
    scan[H::OutDstPorts60s as usize] = 266.0;
    scan[H::OutUnanswered10s as usize] = 1.0;
    let f = det.judge(ip, &scan, 0).expect("the scan is flagged");
    assert_eq!(f.kind, flowsentry::host::HostKind::PortScan);
    let mut flood = rows[5];
    flood[H::InRate1s as usize] = 20_000.0;
    flood[H::InRate10s as usize] = 2_000.0;
    flood[H::InSources10s as usize] = 266.0;
    flood[H::InSources60s as usize] = 266.0;
    let f = det.judge(ip, &flood, 0).expect("the flood is flagged");
    assert_eq!(f.kind, flowsentry::host::HostKind::Flood);
    assert_eq!(f.role, flowsentry::host::Role::Destination);
}

#[test]
fn a_one_flow_packet_flood_is_named_while_it_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000_000i64;
    // 5,000 datagrams 10.0.0.1:12345 -> 10.0.0.2:53, 100 µs apart (10,000 packets/s), no answer.
    let fast: Vec<(i64, u16)> = (0..5000).map(|i| (t0 + i * 100, 12345)).collect();
    let pcap = dir.path().join("flood.pcap");
    common::udp_pcap(&pcap, &fast);
    let (alerts, _) = replay_path(&pcap);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature_id"], 9_100_022);
    assert_eq!(a["flowsentry"]["detector"], "session");
    assert_eq!(
        (&a["src_ip"], &a["dest_ip"]),
        (&"10.0.0.1".into(), &"10.0.0.2".into())
    );
    assert_eq!(a["dest_port"], 53);
    assert_eq!(a["proto"], "UDP");
    let counts = &a["flowsentry"]["host"]["counts"];
    assert_eq!(counts["flow_packets"], 1024.0);
    assert_eq!(counts["answered_packets"], 0.0);
    assert_eq!(counts["packets_per_s"], 10_010.0);
    // Raised at the 1,024th packet (0.1 s in), not when the flow ends; later reports of the
    // same flood fold into it.
    assert_eq!(a["timestamp"], "2023-11-14T22:13:20.102300+0000");
    // The same stream at 1,000 packets/s is not a flood by the rule.
    let slow: Vec<(i64, u16)> = (0..5000).map(|i| (t0 + i * 1000, 12345)).collect();
    common::udp_pcap(&pcap, &slow);
    assert!(replay_path(&pcap).0.is_empty());
}
