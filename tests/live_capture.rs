//! Live capture on the test's own hosts: two network namespaces joined by a veth pair, created
//! and removed by the test. `flowsentry run` captures on one end while `tcpreplay` sends a
//! capture from the other; the flows it writes must match `flowsentry replay` of the same file,
//! with zero kernel drops. Also: flows expire on the wall clock when traffic stops, and SIGHUP
//! reopens the JSON file without losing events; the learning period swaps its model in live.
//!
//! Needs root (network namespaces, raw capture) and tcpreplay, so the tests are `#[ignore]`d in
//! a plain `cargo test` (they show as ignored, never as a silent "ok"); CI runs them with
//! `cargo test --test live_capture -- --ignored`, and run that way they FAIL when root or a tool
//! is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flowsentry")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// True when the test can run; otherwise fails it, saying why (a test asked for by `--ignored`
/// that cannot run is a failure, not a pass).
fn can_run() -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let root = uid.is_ok_and(|u| u == "0");
    let tools = ["ip", "tcpreplay"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why = format!(
        "live capture test NOT RUN: needs root (uid 0: {root}) and ip + tcpreplay installed ({tools})"
    );
    panic!("{why}");
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

/// Two namespaces and a veth pair, removed on drop.
struct Hosts {
    a: String,
    b: String,
}

impl Hosts {
    fn new(tag: &str) -> Hosts {
        let id = format!("{}{}", tag, std::process::id() % 100_000);
        let h = Hosts {
            a: format!("fsA{id}"),
            b: format!("fsB{id}"),
        };
        sh(&["ip", "netns", "add", &h.a]);
        sh(&["ip", "netns", "add", &h.b]);
        sh(&[
            "ip", "link", "add", "fsveth0", "netns", &h.a, "type", "veth", "peer", "name",
            "fsveth1", "netns", &h.b,
        ]);
        for (ns, dev) in [(&h.a, "fsveth0"), (&h.b, "fsveth1")] {
            // No IPv6 autoconfiguration chatter on the test link.
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
            // The captures hold frames larger than 1500 bytes (taken with segmentation offload).
            sh(&["ip", "-n", ns, "link", "set", dev, "mtu", "65535", "up"]);
        }
        h
    }

    fn replay_into_a(&self, pcap: &Path) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.b,
                "tcpreplay",
                "-q",
                "--topspeed",
                "-i",
                "fsveth1",
            ])
            .arg(pcap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tcpreplay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    // A copy, so a test can break it under the running daemon.
    let model = dir.join("forest.json");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json"),
        &model,
    )
    .unwrap();
    // The host model is read from beside the flow model.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("model/host-forest.json"),
        dir.join("host-forest.json"),
    )
    .unwrap();
    let p = dir.join("live.toml");
    let body = format!(
        "[capture]\ninterface = \"fsveth0\"\ntimeout_ms = 100\n[model]\npath = {model:?}\n[alerts]\nflow_events = true\n[[alerts.sinks]]\ntype = \"json\"\npath = \"events.json\"\n[stats]\ninterval_s = 0\n{extra}"
    );
    std::fs::write(&p, body).unwrap();
    p
}

fn start_daemon(h: &Hosts, cfg: &Path, log: &Path) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", &h.a, bin(), "run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("capturing on")
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "daemon did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut child: Child, sig: &str) {
    sh(&["kill", &format!("-{sig}"), &child.id().to_string()]);
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "daemon exit {st}");
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

type FlowKey = (String, u64, String, u64, String);

fn flows(path: &Path) -> BTreeMap<FlowKey, Vec<(u64, u64)>> {
    let mut m: BTreeMap<FlowKey, Vec<(u64, u64)>> = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        if e["event_type"] != "flow" {
            continue; // alerts repeat a flow that also has its flow record
        }
        let k = (
            e["src_ip"].as_str().unwrap().to_string(),
            e["src_port"].as_u64().unwrap_or(0), // none for ICMP
            e["dest_ip"].as_str().unwrap().to_string(),
            e["dest_port"].as_u64().unwrap_or(0),
            e["proto"].as_str().unwrap().to_string(),
        );
        let v = (
            e["flow"]["pkts_toserver"].as_u64().unwrap(),
            e["flow"]["pkts_toclient"].as_u64().unwrap(),
        );
        m.entry(k).or_default().push(v);
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

fn kernel_dropped(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("final stats"))
        .unwrap_or_else(|| panic!("no final stats: {text}"));
    let field = |name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("kernel_dropped"), field("kernel_received"))
}

#[test]
#[ignore = "live capture: needs root, ip and tcpreplay; run with --ignored (CI does)"]
fn live_flows_match_replay_with_zero_drops() {
    live_flows_match_replay(1);
}

/// `capture.workers = 2`: two sockets in a PACKET_FANOUT group split the packets by flow, and
/// together find every flow whole (both directions reached the same worker).
#[test]
#[ignore = "live capture: needs root, ip and tcpreplay; run with --ignored (CI does)"]
fn two_fanout_workers_find_the_flows_of_replay() {
    live_flows_match_replay(2);
}

fn live_flows_match_replay(workers: u32) {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "timeout_ms = 100\n",
        &format!("timeout_ms = 100\nworkers = {workers}\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let h = Hosts::new(&format!("m{workers}"));
    let log = dir.path().join("daemon.log");
    let child = start_daemon(&h, &cfg, &log);
    // With workers, not tcpreplay__test.pcap: one of its ICMP pings goes out MPLS-labelled and
    // comes back as plain IPv4, and the fanout program hashes MPLS frames by the kernel's hash
    // (README, Performance: what workers do not split alike).
    let (files, frames) = if workers == 1 {
        (
            ["nfstream__WebattackSQLinj.pcap", "tcpreplay__test.pcap"],
            94 + 179,
        )
    } else {
        (
            ["nfstream__WebattackSQLinj.pcap", "nfstream__synscan.pcap"],
            94 + 2011,
        )
    };
    for f in files {
        h.replay_into_a(&data(f));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop(child, "TERM");
    let live = flows(&dir.path().join("events.json"));
    let (dropped, received) = kernel_dropped(&log);
    assert_eq!(dropped, 0, "kernel drops");
    assert_eq!(received, frames, "kernel received every frame sent");
    if workers > 1 {
        // Each socket of the fanout group got a share.
        let text = std::fs::read_to_string(&log).unwrap();
        let shares: Vec<u64> = text
            .lines()
            .filter(|l| l.contains(" worker "))
            .filter_map(|l| l.split("packets=").nth(1))
            .map(|v| v.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(shares.len(), workers as usize, "{text}");
        assert!(shares.iter().all(|n| *n > 0), "{shares:?}");
        assert_eq!(shares.iter().sum::<u64>(), frames);
    }

    // The same files through replay, one after the other (the same flows, keyed the same way).
    let mut want: BTreeMap<FlowKey, Vec<(u64, u64)>> = BTreeMap::new();
    for f in files {
        let out_cfg = dir.path().join("replay.toml");
        std::fs::write(
            &out_cfg,
            std::fs::read_to_string(&cfg)
                .unwrap()
                .replace("events.json", "replay.json"),
        )
        .unwrap();
        let _ = std::fs::remove_file(dir.path().join("replay.json"));
        let st = Command::new(bin())
            .args(["replay", "--config"])
            .arg(&out_cfg)
            .arg(data(f))
            .output()
            .unwrap();
        assert!(st.status.success());
        for (k, v) in flows(&dir.path().join("replay.json")) {
            want.entry(k).or_default().extend(v);
        }
    }
    for v in want.values_mut() {
        v.sort();
    }
    let only = |a: &BTreeMap<FlowKey, Vec<(u64, u64)>>, b: &BTreeMap<FlowKey, Vec<(u64, u64)>>| {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?} {v:?}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        live.len(),
        want.len(),
        "flow keys: live {} replay {}; live only {:?}; replay only {:?}",
        live.len(),
        want.len(),
        only(&live, &want),
        only(&want, &live)
    );
    assert_eq!(live, want);
}

#[test]
#[ignore = "live capture: needs root, ip and tcpreplay; run with --ignored (CI does)"]
fn idle_flows_expire_on_the_clock_and_sighup_reopens_the_json_file() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[flow]\nflow_timeout_s = 1.0\n");
    let h = Hosts::new("h");
    let log = dir.path().join("daemon.log");
    let child = start_daemon(&h, &cfg, &log);
    let events = dir.path().join("events.json");
    h.replay_into_a(&data("nfstream__WebattackSQLinj.pcap"));
    // No more traffic: the 1 s flow timeout must still end every flow, on the wall clock.
    let t = Instant::now();
    // Flow records (alerted flows also have an alert line).
    let count = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| {
                s.lines()
                    .filter(|l| l.contains("\"event_type\":\"flow\""))
                    .count()
            })
            .unwrap_or(0)
    };
    while count(&events) < 9 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "only {} flows expired",
            count(&events)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = count(&events);
    // logrotate: move the file away, SIGHUP, more traffic goes to a new file.
    std::fs::rename(&events, dir.path().join("events.json.1")).unwrap();
    sh(&["kill", "-HUP", &child.id().to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    h.replay_into_a(&data("nfstream__WebattackSQLinj.pcap"));
    std::thread::sleep(Duration::from_millis(2500));
    stop(child, "TERM");
    assert_eq!(
        count(&dir.path().join("events.json.1")),
        first,
        "rotated file changed after SIGHUP"
    );
    assert_eq!(
        count(&events),
        first,
        "events after SIGHUP: same capture, same number of flows"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("reloaded model")
    );
}

#[test]
#[ignore = "live capture: needs root, ip and tcpreplay; run with --ignored (CI does)"]
fn sighup_with_a_broken_model_keeps_the_running_one() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[flow]\nflow_timeout_s = 1.0\n");
    let h = Hosts::new("b");
    let log = dir.path().join("daemon.log");
    let child = start_daemon(&h, &cfg, &log);
    std::fs::write(dir.path().join("forest.json"), "{ not a model").unwrap();
    sh(&["kill", "-HUP", &child.id().to_string()]);
    let t = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("reload rejected")
    {
        assert!(t.elapsed() < Duration::from_secs(10), "no rejection logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still capturing and scoring with the old model.
    h.replay_into_a(&data("nfstream__WebattackSQLinj.pcap"));
    std::thread::sleep(Duration::from_millis(2500));
    stop(child, "TERM");
    let n = std::fs::read_to_string(dir.path().join("events.json"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event_type\":\"flow\""))
        .count();
    assert_eq!(n, 9, "flows scored after the rejected reload");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("forest.json")
    );
}

/// The learning period in `run`: flows ended on the wall clock fill the sample, the model is
/// trained in the background and swapped in on the next tick, and later flows are scored by it.
#[test]
#[ignore = "live capture: needs root, ip and tcpreplay; run with --ignored (CI does)"]
fn learning_period_swaps_in_the_site_model_live() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[host]\nenabled = false\n[flow]\nflow_timeout_s = 1\n[learning]\nenabled = true\n\
         flows = 1000\nmin_flows = 1000\nsample = 1000\noutput = \"site-forest.json\"\n",
    );
    let h = Hosts::new("l");
    let log = dir.path().join("daemon.log");
    let child = start_daemon(&h, &cfg, &log);
    h.replay_into_a(&data("nfstream__synscan.pcap")); // 1,994 flows
    let t = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("scoring with the site model")
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no learned model: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Flows still ending after the swap (the scan's last ones, and a second pass) use it.
    h.replay_into_a(&data("nfstream__WebattackSQLinj.pcap"));
    std::thread::sleep(Duration::from_millis(2500));
    stop(child, "TERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("learning period over: trained on 700 of 1000 flows"),
        "{text}"
    );
    assert!(dir.path().join("site-forest.json").is_file());
    let models: Vec<String> = std::fs::read_to_string(dir.path().join("events.json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "flow")
        .map(|e| e["flowsentry"]["model"].as_str().unwrap_or("").to_string())
        .collect();
    let switch = models
        .iter()
        .position(|m| m == "site-forest.json")
        .unwrap_or_else(|| panic!("no flow scored by the learned model: {text}"));
    assert!(switch >= 1000, "switched at flow {switch}");
    assert!(models[..switch].iter().all(|m| m == "forest.json"));
    assert!(models[switch..].iter().all(|m| m == "site-forest.json"));
}
