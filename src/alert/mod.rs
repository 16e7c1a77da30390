//! Stage 6: alert. A scored flow becomes an [`Alert`] (Suricata EVE field names where EVE has
//! one), and a [`dispatch::Dispatcher`] hands it to every configured sink — JSON lines
//! ([`json`]), syslog ([`syslog`]), stdout ([`stdout`]) — through bounded queues, so a slow or
//! failing sink never blocks capture.

pub mod dispatch;
pub mod json;
pub mod stdout;
pub mod syslog;

use std::hash::Hasher;

use serde::Serialize;
use thiserror::Error;

use crate::features::{Feature, FlowRecord};

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{sink}: {msg}")]
    Io { sink: String, msg: String },
}

/// One sink. Implementations do blocking I/O; the dispatcher runs each on its own thread.
pub trait Sink: Send {
    fn name(&self) -> &str;
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Reopen files / reconnect (SIGHUP, logrotate, after errors).
    fn reopen(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopFeature {
    pub name: &'static str,
    pub value: f64,
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyInfo {
    pub score: f64,
    pub threshold: f64,
    pub model: String,
    pub top_features: Vec<TopFeature>,
}

/// EVE-like flow section. "toserver" is the flow's forward direction (its first packet's
/// source is the client). Bytes are transport payload bytes, as in the CIC features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowInfo {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: String,
    pub end: String,
    pub duration_us: i64,
    pub end_reason: &'static str,
}

/// What sinks write: one JSON object per event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub timestamp: String,
    /// "anomaly" for alerts, "flow" for the optional per-flow events.
    pub event_type: &'static str,
    pub flow_id: u64,
    pub sensor: String,
    pub in_iface: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dest_ip: String,
    pub dest_port: u16,
    pub proto: String,
    pub anomaly: AnomalyInfo,
    pub flow: FlowInfo,
}

/// RFC 3339 with microseconds, UTC.
pub fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        .unwrap_or_else(|| us.to_string())
}

/// EVE's protocol names.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        n => n.to_string(),
    }
}

/// A stable id for a flow: FNV-1a of its 5-tuple and start time, kept below 2^53 so JSON
/// readers that use doubles keep every digit.
pub fn flow_id(r: &FlowRecord) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, b: &[u8]) {
            for x in b {
                self.0 = (self.0 ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(r.src_ip.to_string().as_bytes());
    h.write(r.dst_ip.to_string().as_bytes());
    h.write(&r.src_port.to_be_bytes());
    h.write(&r.dst_port.to_be_bytes());
    h.write(&[r.protocol]);
    h.write(&r.start_us.to_be_bytes());
    h.finish() & ((1 << 53) - 1)
}

/// Who is writing the alert.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub sensor: String,
    pub in_iface: String,
    pub model: String,
}

impl Alert {
    /// Builds an alert (or a flow event when `event_type` is "flow") for a scored flow.
    pub fn new(
        event_type: &'static str,
        r: &FlowRecord,
        score: f64,
        threshold: f64,
        top: &[(Feature, f64)],
        origin: &Origin,
    ) -> Alert {
        let g = |f: Feature| r.get(f).max(0.0) as u64;
        Alert {
            timestamp: rfc3339_us(r.end_us),
            event_type,
            flow_id: flow_id(r),
            sensor: origin.sensor.clone(),
            in_iface: origin.in_iface.clone(),
            src_ip: r.src_ip.to_string(),
            src_port: r.src_port,
            dest_ip: r.dst_ip.to_string(),
            dest_port: r.dst_port,
            proto: proto_name(r.protocol),
            anomaly: AnomalyInfo {
                score,
                threshold,
                model: origin.model.clone(),
                top_features: top
                    .iter()
                    .map(|(f, w)| TopFeature {
                        name: f.name(),
                        value: r.get(*f),
                        weight: *w,
                    })
                    .collect(),
            },
            flow: FlowInfo {
                pkts_toserver: g(Feature::TotalFwdPackets),
                pkts_toclient: g(Feature::TotalBwdPackets),
                bytes_toserver: g(Feature::TotalLenFwdPackets),
                bytes_toclient: g(Feature::TotalLenBwdPackets),
                start: rfc3339_us(r.start_us),
                end: rfc3339_us(r.end_us),
                duration_us: r.end_us - r.start_us,
                end_reason: match r.end_reason {
                    crate::features::EndReason::Timeout => "timeout",
                    crate::features::EndReason::TcpClose => "tcp_close",
                    crate::features::EndReason::Evicted => "evicted",
                    crate::features::EndReason::Flushed => "shutdown",
                    crate::features::EndReason::IcmpChange => "icmp_change",
                },
            },
        }
    }

    /// The alert as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A one-line key=value summary (values with spaces are quoted).
    pub fn to_kv(&self) -> String {
        let top: Vec<&str> = self.anomaly.top_features.iter().map(|t| t.name).collect();
        format!(
            "event_type={} flow_id={} src={}:{} dest={}:{} proto={} score={:.6} threshold={:.6} pkts_toserver={} pkts_toclient={} bytes_toserver={} bytes_toclient={} duration_us={} top_features=\"{}\" sensor={}",
            self.event_type,
            self.flow_id,
            self.src_ip,
            self.src_port,
            self.dest_ip,
            self.dest_port,
            self.proto,
            self.anomaly.score,
            self.anomaly.threshold,
            self.flow.pkts_toserver,
            self.flow.pkts_toclient,
            self.flow.bytes_toserver,
            self.flow.bytes_toclient,
            self.flow.duration_us,
            top.join(",").replace('"', "'"),
            self.sensor.replace(' ', "_"),
        )
    }
}
