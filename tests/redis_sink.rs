//! The Redis sink against a real `redis-server` (Debian package `redis-server`) started by the
//! test on loopback on a free port, without persistence: every event arrives once (list,
//! stream, channel, and through `flowsentry replay`), and the sink survives a server restart
//! with the loss counted (written + failed = sent; nothing twice).
//!
//! Ignored in a plain `cargo test` (it needs the redis-server binary); `.ci/run` runs it with
//! `--ignored`, and then a missing redis-server fails the test naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowsentry::alert::dispatch::Dispatcher;
use flowsentry::alert::redis::RedisSink;
use flowsentry::alert::{Alert, Origin, Verdict};
use flowsentry::config::{RedisMode, RedisSinkConfig};
use flowsentry::features::{EndReason, Feature, FlowRecord, NUM_FEATURES};

struct Server {
    port: u16,
    child: Option<Child>,
}

fn redis_server_bin() -> &'static str {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "redis-server not found: apt-get install redis-server (the Redis sink tests need it)"
    );
    "redis-server"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start(port: u16) -> Server {
        let child = Command::new(redis_server_bin())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server {
            port,
            child: Some(child),
        };
        let t = Instant::now();
        while s.con().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn con(&self) -> Option<redis::Connection> {
        let c = redis::Client::open(("127.0.0.1", self.port)).ok()?;
        let mut con = c
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut con).ok()?;
        Some(con)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cfg(port: u16, mode: RedisMode, key: &str) -> RedisSinkConfig {
    RedisSinkConfig {
        server: "127.0.0.1".into(),
        port,
        mode,
        key: key.into(),
        stream_maxlen: 0,
    }
}

/// An alert whose source port tells events apart.
fn alert(port: u16) -> Alert {
    let mut values = [0.0; NUM_FEATURES];
    values[Feature::TotalFwdPackets as usize] = 1.0;
    let r = FlowRecord {
        src_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)),
        src_port: port,
        dst_port: 443,
        protocol: 6,
        start_us: 1_499_348_407_419_016,
        end_us: 1_499_348_412_425_928,
        end_reason: EndReason::Timeout,
        frame_bytes: [60, 0],
        values,
    };
    let v = Verdict {
        score: 0.7,
        threshold: 0.5,
        top: Vec::new(),
    };
    Alert::flow_alert(&r, &v, &Origin::default())
}

fn ports(items: &[String]) -> Vec<u64> {
    items
        .iter()
        .map(|j| {
            let v: serde_json::Value = serde_json::from_str(j).unwrap();
            v["src_port"].as_u64().unwrap()
        })
        .collect()
}

fn assert_once(got: &[u64], want: impl Iterator<Item = u64>) {
    let want: Vec<u64> = want.collect();
    let set: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(set.len(), got.len(), "an event arrived twice");
    assert_eq!(got.len(), want.len(), "events: got {}", got.len());
    assert!(want.iter().all(|p| set.contains(p)));
}

#[test]
#[ignore = "needs redis-server; .ci/run runs it with --ignored"]
fn list_every_event_once_and_a_restart_loses_only_counted_events() {
    let port = free_port();
    let mut server = Server::start(port);
    let d = Dispatcher::new(
        vec![Box::new(RedisSink::open(&cfg(
            port,
            RedisMode::List,
            "eve",
        )))],
        10_000,
    );
    for p in 0..500 {
        d.send(alert(p));
    }
    assert!(d.flush(Duration::from_secs(30)));
    let mut con = server.con().unwrap();
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("eve")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_once(&ports(&items), 0..500);
    // LPUSH: the newest is first, like Suricata's list mode.
    assert_eq!(ports(&items)[0], 499);

    // Restart: events sent while the server is down are retried (50 ms doubling, 6 tries,
    // ~3.2 s) and then counted failed; after it is back every event arrives.
    server.stop();
    for p in 1000..1003 {
        d.send(alert(p));
    }
    std::thread::sleep(Duration::from_millis(4000));
    let mut server = Server::start(port);
    assert!(d.flush(Duration::from_secs(30)));
    for p in 2000..2200 {
        d.send(alert(p));
    }
    assert!(d.flush(Duration::from_secs(30)));
    let c = &d.counters()[0];
    let (written, failed) = (
        c.written.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed),
    );
    let dropped = c.dropped.load(Ordering::Relaxed);
    eprintln!("redis restart: written {written}, failed {failed}, dropped {dropped}");
    assert_eq!(dropped, 0);
    assert_eq!(written + failed, 500 + 3 + 200, "every event accounted for");
    assert!(
        failed >= 1,
        "the first event sent while down must exhaust its retries"
    );
    let mut con = server.con().unwrap();
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("eve")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let got = ports(&items);
    // The new server holds what was written after it started: the down-time events that
    // survived their retries, and all 200 later ones, each once.
    let late: Vec<u64> = got.iter().copied().filter(|p| *p >= 2000).collect();
    assert_once(&late, 2000..2200);
    let survivors = got.iter().filter(|p| (1000..1003).contains(*p)).count() as u64;
    assert_eq!(
        survivors + failed,
        3,
        "down-time events: arrived or counted failed"
    );
    assert_eq!(written, 500 + survivors + 200);
    server.stop();
    d.shutdown(Duration::from_secs(5));
}

#[test]
#[ignore = "needs redis-server; .ci/run runs it with --ignored"]
fn stream_and_channel_deliver_every_event_once() {
    let port = free_port();
    let server = Server::start(port);
    // Channel: subscribe first (PUBLISH reaches only live subscribers).
    let sub_client = redis::Client::open(("127.0.0.1", port)).unwrap();
    let mut sub_con = sub_client.get_connection().unwrap();
    sub_con
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("eve-chan").unwrap();
    let d = Dispatcher::new(
        vec![
            Box::new(RedisSink::open(&cfg(port, RedisMode::Stream, "eve-stream"))),
            Box::new(RedisSink::open(&cfg(port, RedisMode::Channel, "eve-chan"))),
        ],
        10_000,
    );
    for p in 0..300 {
        d.send(alert(p));
    }
    assert!(d.flush(Duration::from_secs(30)));
    let mut published = Vec::new();
    for _ in 0..300 {
        let m = sub.get_message().unwrap();
        published.push(m.get_payload::<String>().unwrap());
    }
    assert_once(&ports(&published), 0..300);
    let mut con = server.con().unwrap();
    // XRANGE: [[id, ["eve", json]], ...]
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("eve-stream")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let items: Vec<String> = entries
        .into_iter()
        .map(|(_, fv)| {
            assert_eq!(fv[0], "eve");
            fv[1].clone()
        })
        .collect();
    assert_once(&ports(&items), 0..300);
    d.shutdown(Duration::from_secs(5));
}

#[test]
#[ignore = "needs redis-server; .ci/run runs it with --ignored"]
fn replay_ships_the_same_events_to_redis_as_to_the_file() {
    let port = free_port();
    let server = Server::start(port);
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = dir.path().join("c.toml");
    let file = dir.path().join("events.json");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\nthreshold = 0.4\n[alerts]\nflow_events = true\n\
             [[alerts.sinks]]\ntype = \"json\"\npath = {file:?}\n\
             [[alerts.sinks]]\ntype = \"redis\"\nport = {port}\nmode = \"rpush\"\nkey = \"fs\"\n",
            root.join("model/forest.json")
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowsentry"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(root.join("tests/data/nfstream__WebattackSQLinj.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut con = server.con().unwrap();
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("fs")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert!(lines.len() >= 10, "{} events", lines.len());
    // RPUSH keeps the order: the same lines, in the same order.
    assert_eq!(items, lines);
}
