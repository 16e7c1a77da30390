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
use flowsentry::alert::{Alert, Origin, Sink, SinkError};
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
        values,
    };
    let origin = Origin {
        sensor: "test sensor".into(),
        in_iface: "veth0".into(),
        model: "m.json".into(),
    };
    Alert::new(
        "anomaly",
        &r,
        0.71,
        0.5,
        &[(Feature::TotalFwdPackets, 0.4)],
        &origin,
    )
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
    assert_eq!(a["event_type"], "anomaly");
    assert_eq!(a["src_ip"], "10.1.2.3");
    assert_eq!(a["src_port"], 2);
    assert_eq!(a["dest_port"], 443);
    assert_eq!(a["proto"], "TCP");
    assert_eq!(a["timestamp"], "2017-07-06T13:40:12.425928+00:00");
    assert_eq!(a["flow"]["pkts_toserver"], 3);
    assert_eq!(a["flow"]["bytes_toserver"], 100);
    assert_eq!(a["flow"]["duration_us"], 5_006_912);
    assert_eq!(a["anomaly"]["top_features"][0]["name"], "Total Fwd Packet");
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
    d.shutdown();
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
    d.shutdown();
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
    d.shutdown();
}
