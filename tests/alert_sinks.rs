//! Alert sinks against real receivers: a UDP syslog collector and a unix-datagram socket bound by
//! the test, a JSON file renamed under the sink (logrotate), and failing / slow sinks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flowsentry::alert::dispatch::Dispatcher;
use flowsentry::alert::json::JsonSink;
use flowsentry::alert::syslog::SyslogSink;
use flowsentry::alert::{Alert, Contribution, Origin, Sink, SinkError, Verdict};
use flowsentry::config::SyslogSinkConfig;
use flowsentry::features::{EndReason, Feature, FlowRecord, NUM_FEATURES};

fn alert(port: u16) -> Alert {
    let mut values = [0.0; NUM_FEATURES];
    values[Feature::TotalFwdPackets as usize] = 3.0;
    values[Feature::TotalBwdPackets as usize] = 2.0;
    values[Feature::TotalLenFwdPackets as usize] = 100.0;
    let r = FlowRecord {
        src_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)),
        src_port: port,
        dst_port: 443,
        protocol: 6,
        start_us: 1_499_348_407_419_016,
        end_us: 1_499_348_412_425_928,
        end_reason: EndReason::Timeout,
        frame_bytes: [298, 172],
        values,
    };
    let origin = Origin {
        sensor: "test sensor".into(),
        in_iface: "veth0".into(),
        model: "m.json".into(),
        community_id_seed: 0,
    };
    let v = Verdict {
        score: 0.71,
        threshold: 0.5,
        top: vec![Contribution {
            feature: Feature::TotalFwdPackets,
            weight: 0.4,
            percentile: Some(97.25),
        }],
    };
    Alert::flow_alert(&r, &v, &origin)
}

fn syslog_cfg(transport: &str, address: &str, format: &str) -> SyslogSinkConfig {
    SyslogSinkConfig {
        transport: transport.into(),
        address: address.into(),
        format: format.into(),
        facility: "local3".into(),
        app_name: "flowsentry-test".into(),
        message: "kv".into(),
    }
}

#[test]
fn json_lines_carry_eve_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.json");
    let mut s = JsonSink::open(&path).unwrap();
    s.emit(&alert(1)).unwrap();
    s.emit(&alert(2)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let a = &lines[1];
    assert_eq!(a["event_type"], "alert");
    assert_eq!(a["src_ip"], "10.1.2.3");
    assert_eq!(a["src_port"], 2);
    assert_eq!(a["dest_port"], 443);
    assert_eq!(a["proto"], "TCP");
    assert_eq!(a["host"], "test sensor");
    // The reference implementation (communityid 1.5.0) gives this for 10.1.2.3:2 -> 10.9.8.7:443.
    assert_eq!(a["community_id"], "1:n9Espb5UzKaatODweBSE2WpRWvo=");
    assert_eq!(a["timestamp"], "2017-07-06T13:40:12.425928+0000");
    assert_eq!(a["alert"]["action"], "allowed");
    assert_eq!(a["alert"]["signature_id"], 9_100_001);
    assert_eq!(a["alert"]["category"], "Potentially Bad Traffic");
    // (0.71 - 0.5) / 0.5 = 0.42: medium.
    assert_eq!(a["alert"]["severity"], 2);
    assert_eq!(a["flow"]["pkts_toserver"], 3);
    assert_eq!(
        a["flow"]["bytes_toserver"], 298,
        "whole frames, not payload"
    );
    assert_eq!(a["flow"]["age"], 5);
    assert_eq!(a["flow"]["reason"], "timeout");
    assert_eq!(a["flow"]["state"], "established");
    assert_eq!(a["flow"]["alerted"], true);
    assert_eq!(a["flowsentry"]["flow"]["payload_bytes_toserver"], 100);
    assert_eq!(a["flowsentry"]["flow"]["duration_us"], 5_006_912);
    assert_eq!(
        a["flowsentry"]["explanation"][0]["feature"],
        "Total Fwd Packet"
    );
    let e = &a["flowsentry"]["explanation"][0];
    assert_eq!(e["label"], "packets client→server");
    assert_eq!(e["value"], 3.0);
    assert_eq!(e["percentile"], 97.3);
    assert!(a["flow_id"].as_u64().unwrap() < (1 << 53));
}

#[test]
fn reopen_after_rename_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.json");
    let d = Dispatcher::new(vec![Box::new(JsonSink::open(&path).unwrap())], 100);
    for p in 0..5 {
        d.send(alert(p));
    }
    assert!(d.flush(Duration::from_secs(5)));
    std::fs::rename(&path, dir.path().join("alerts.json.1")).unwrap();
    d.send(alert(5)); // still goes to the renamed file: written before the reopen
    d.reopen();
    for p in 6..9 {
        d.send(alert(p));
    }
    assert!(d.shutdown(Duration::from_secs(5)));
    let old = std::fs::read_to_string(dir.path().join("alerts.json.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert_eq!(old.lines().count(), 6);
    assert_eq!(new.lines().count(), 3);
    assert!(new.contains("\"src_port\":6"));
}

fn check_5424(msg: &str, severity: u8) {
    // <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG, local3 = 19.
    let pri = format!("<{}>1 ", 19 * 8 + severity);
    assert!(msg.starts_with(&pri), "{msg}");
    let fields: Vec<&str> = msg.splitn(8, ' ').collect();
    assert_eq!(fields.len(), 8, "{msg}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(fields[1]).is_ok(),
        "timestamp {}",
        fields[1]
    );
    assert_eq!(fields[3], "flowsentry-test");
    assert_eq!(fields[4], std::process::id().to_string());
    assert!(
        fields[7].contains("src=10.1.2.3:7") && fields[7].contains("score=0.710000"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn syslog_udp_rfc5424() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = rx.local_addr().unwrap().to_string();
    let mut s = SyslogSink::open(&syslog_cfg("udp", &addr, "rfc5424")).unwrap();
    s.emit(&alert(7)).unwrap();
    let mut buf = [0u8; 4096];
    let n = rx.recv(&mut buf).unwrap();
    check_5424(std::str::from_utf8(&buf[..n]).unwrap(), 4);
}

#[test]
fn syslog_unix_datagram_rfc5424_and_3164() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = SyslogSink::open(&syslog_cfg("unix", sock.to_str().unwrap(), "rfc5424")).unwrap();
    s.emit(&alert(7)).unwrap();
    let mut buf = [0u8; 4096];
    let n = rx.recv(&mut buf).unwrap();
    check_5424(std::str::from_utf8(&buf[..n]).unwrap(), 4);

    let mut s = SyslogSink::open(&syslog_cfg("unix", sock.to_str().unwrap(), "rfc3164")).unwrap();
    s.emit(&alert(7)).unwrap();
    let n = rx.recv(&mut buf).unwrap();
    let msg = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(msg.starts_with(&format!("<{}>", 19 * 8 + 4)), "{msg}");
    assert!(
        msg.contains("flowsentry-test[") && msg.contains("src=10.1.2.3:7"),
        "{msg}"
    );
}

struct Failing;
impl Sink for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn emit(&mut self, _: &Alert) -> Result<(), SinkError> {
        Err(SinkError::Io {
            sink: "failing".into(),
            msg: "collector down".into(),
        })
    }
}

struct Slow;
impl Sink for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn emit(&mut self, _: &Alert) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }
}

#[test]
fn failing_sink_is_retried_counted_and_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let d = Dispatcher::new(
        vec![Box::new(Failing), Box::new(JsonSink::open(&path).unwrap())],
        100,
    );
    d.send(alert(1));
    d.send(alert(2));
    assert!(d.flush(Duration::from_secs(20)));
    let c = d.counters();
    assert_eq!(c[0].failed.load(Ordering::Relaxed), 2);
    assert!(c[0].errors.load(Ordering::Relaxed) >= 2 * 6);
    assert_eq!(c[1].written.load(Ordering::Relaxed), 2);
    assert!(d.shutdown(Duration::from_secs(5)));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let d = Dispatcher::new(vec![Box::new(Slow)], 2);
    let t = std::time::Instant::now();
    for p in 0..50 {
        d.send(alert(p));
    }
    // 50 sends against a sink that takes 200 ms each: returning at once means send never waited.
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let dropped = d.counters()[0].dropped.load(Ordering::Relaxed);
    assert!(dropped >= 45, "dropped {dropped}");
    assert!(d.shutdown(Duration::from_secs(5)));
}

/// Every event sent to a sink ends in exactly one counter.
fn accounted(d: &Dispatcher) -> Vec<u64> {
    d.counters().iter().map(|c| c.accounted()).collect()
}

#[test]
fn shutdown_with_a_failing_sink_is_bounded_and_counts_everything() {
    let d = Dispatcher::new(vec![Box::new(Failing)], 1000);
    for p in 0..200 {
        d.send(alert(p));
    }
    let t = std::time::Instant::now();
    assert!(
        !d.shutdown(Duration::from_millis(300)),
        "cannot have delivered"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let c = &d.counters()[0];
    assert_eq!(c.queued.load(Ordering::Relaxed), 0);
    assert_eq!(accounted(&d), [200]);
    assert_eq!(
        c.failed.load(Ordering::Relaxed) + c.abandoned.load(Ordering::Relaxed),
        200
    );
    assert!(c.abandoned.load(Ordering::Relaxed) >= 190);
}

struct Stuck;
impl Sink for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn emit(&mut self, _: &Alert) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_secs(5));
        Ok(())
    }
}

#[test]
fn shutdown_leaves_a_stuck_sink_behind_and_counts_its_queue() {
    let d = Dispatcher::new(vec![Box::new(Stuck)], 10);
    for p in 0..5 {
        d.send(alert(p));
    }
    let t = std::time::Instant::now();
    assert!(!d.shutdown(Duration::from_millis(200)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let c = &d.counters()[0];
    assert_eq!(
        c.abandoned.load(Ordering::Relaxed),
        5,
        "the one in the write too"
    );
    assert_eq!(accounted(&d), [5]);
}

#[test]
fn reopen_never_waits_for_a_full_queue() {
    let d = Dispatcher::new(vec![Box::new(Slow)], 2);
    for p in 0..10 {
        d.send(alert(p));
    }
    let t = std::time::Instant::now();
    d.reopen();
    d.reopen();
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    d.shutdown(Duration::from_millis(100));
    assert_eq!(accounted(&d), [10]);
}

#[test]
fn json_torn_last_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.json");
    std::fs::write(&path, "{\"whole\":1}\n{\"torn\":").unwrap();
    let mut s = JsonSink::open(&path).unwrap();
    s.emit(&alert(1)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\"whole\":1}\n{\"timestamp\""), "{text}");
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}

#[test]
fn json_file_deleted_under_the_sink_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.json");
    let mut s = JsonSink::open(&path).unwrap();
    s.emit(&alert(1)).unwrap();
    std::fs::remove_file(&path).unwrap();
    s.emit(&alert(2)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("\"src_port\":2"));
}

/// A local port with nobody listening (bound, then released).
fn free_port_udp() -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().to_string()
}

#[test]
fn udp_collector_down_is_noticed_and_not_counted_written() {
    let addr = free_port_udp();
    let mut s = SyslogSink::open(&syslog_cfg("udp", &addr, "rfc5424")).unwrap();
    // The first datagram goes out; the ICMP port-unreachable it draws fails the next send.
    let _ = s.emit(&alert(1));
    std::thread::sleep(Duration::from_millis(100));
    assert!(s.emit(&alert(2)).is_err());
}

#[test]
fn tcp_collector_down_at_start_starts_and_reconnects() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let mut s = SyslogSink::open(&syslog_cfg("tcp", &addr.to_string(), "rfc5424"))
        .expect("a TCP collector that is down must not stop the start");
    assert!(s.emit(&alert(1)).is_err(), "nothing to deliver to");
    let l = std::net::TcpListener::bind(addr).unwrap();
    s.emit(&alert(2)).unwrap();
    let (mut conn, _) = l.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = std::io::Read::read(&mut conn, &mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("src=10.1.2.3:2"));
}
