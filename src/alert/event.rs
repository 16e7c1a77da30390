//! The event every sink writes: a Suricata EVE record ([`Alert`]). Alerts are
//! `event_type: "alert"` with an EVE `alert` object from the [signature registry](super::signature);
//! per-flow records are `event_type: "flow"` EVE flow records. Every field EVE defines has EVE's
//! type, format and meaning; everything else lives under one extension object, `flowsentry`
//! ([`Extension`]), so the event minus that key validates against Suricata's EVE schema.
//!
//! Three constructors: [`Alert::flow_alert`] and [`Alert::flow_event`] for a scored flow, and
//! [`Alert::host_alert`] for an alert about a host that has no single 5-tuple (a scan source, a
//! flood victim).

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::signature::{Detector, Signature};
use crate::features::{EndReason, FEATURES, Feature, FlowRecord, NUM_FEATURES};

/// EVE's timestamp: `2017-07-06T13:40:38.551871+0000` (UTC, microseconds, `+0000`).
pub fn eve_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f%z").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000+0000".into())
}

/// EVE's protocol names (Suricata writes the IANA keyword).
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
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

/// Who is writing the event.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Sensor name (EVE `host`).
    pub sensor: String,
    pub in_iface: String,
    /// Model file name (`flowsentry.model`).
    pub model: String,
    /// Community ID seed (`alerts.community_id_seed`).
    pub community_id_seed: u16,
}

/// EVE `alert` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertInfo {
    /// Always "allowed": flowsentry is passive.
    pub action: &'static str,
    pub gid: u32,
    pub signature_id: u32,
    pub rev: u32,
    pub signature: &'static str,
    pub category: &'static str,
    /// 1 (high) … 3 (low).
    pub severity: u8,
}

impl AlertInfo {
    fn new(sig: Signature, severity: Option<u8>) -> AlertInfo {
        let i = sig.info();
        AlertInfo {
            action: "allowed",
            gid: i.gid,
            signature_id: i.signature_id,
            rev: i.rev,
            signature: i.signature,
            category: i.category,
            severity: severity.unwrap_or(i.default_severity).clamp(1, 3),
        }
    }
}

/// EVE `flow` object. "toserver" is the flow's forward direction (its first packet's source is
/// the client, except a flow opened by a SYN-ACK, whose client is the SYN-ACK's destination).
/// Bytes are whole frames as captured, as Suricata counts them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EveFlow {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: String,
    pub end: String,
    /// Whole seconds between start and end, as Suricata computes it (end s − start s).
    pub age: i64,
    /// `new` (one direction seen), `established` (both), `closed` (TCP teardown seen).
    pub state: &'static str,
    /// `timeout`, `forced` (evicted or split by the flow table) or `shutdown` (end of input).
    pub reason: &'static str,
    pub alerted: bool,
}

/// flowsentry's own words for why a flow ended (`flowsentry.flow.end_reason`).
pub fn end_reason_name(r: EndReason) -> &'static str {
    match r {
        EndReason::Timeout => "timeout",
        EndReason::TcpClose => "tcp_close",
        EndReason::Evicted => "evicted",
        EndReason::Flushed => "shutdown",
        EndReason::IcmpChange => "icmp_change",
    }
}

impl EveFlow {
    pub fn new(r: &FlowRecord, alerted: bool) -> EveFlow {
        let g = |f: Feature| r.get(f).max(0.0) as u64;
        let (fwd, bwd) = (g(Feature::TotalFwdPackets), g(Feature::TotalBwdPackets));
        let state = if r.end_reason == EndReason::TcpClose {
            "closed"
        } else if fwd > 0 && bwd > 0 {
            "established"
        } else {
            "new"
        };
        let reason = match r.end_reason {
            // Suricata times out closed TCP flows too (after its short closed timeout).
            EndReason::Timeout | EndReason::TcpClose => "timeout",
            EndReason::Evicted | EndReason::IcmpChange => "forced",
            EndReason::Flushed => "shutdown",
        };
        EveFlow {
            pkts_toserver: fwd,
            pkts_toclient: bwd,
            bytes_toserver: r.frame_bytes[0],
            bytes_toclient: r.frame_bytes[1],
            start: eve_time(r.start_us),
            end: eve_time(r.end_us),
            age: r.end_us.div_euclid(1_000_000) - r.start_us.div_euclid(1_000_000),
            state,
            reason,
            alerted,
        }
    }
}

/// One feature of an alert's explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explained {
    /// Feature name as [`Feature::name`] spells it.
    pub feature: &'static str,
    /// What it measures, for a human ([`super::explain::label`]).
    pub label: &'static str,
    pub value: f64,
    /// Percent of the model's training flows with a value at or below this one (absent when
    /// the model file stores no training quantiles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// Share of the isolation paths' split weight (1/(depth+1) per split) this feature got.
    pub weight: f64,
}

/// One feature behind a flow's score, as the scorer hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    pub feature: Feature,
    /// Share of the split weight on the flow's isolation paths.
    pub weight: f64,
    /// Where the flow's value falls in the training data, percent (see [`Explained`]).
    pub percentile: Option<f64>,
}

/// The flow behind an event, in flowsentry's terms (`flowsentry.flow`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowDetail {
    pub duration_us: i64,
    /// flowsentry's end reason (finer than EVE's `flow.reason`).
    pub end_reason: &'static str,
    /// Transport payload bytes (the CIC features' byte counts).
    pub payload_bytes_toserver: u64,
    pub payload_bytes_toclient: u64,
}

/// Whether a host is the one doing (source) or the one receiving (destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    Source,
    Destination,
}

/// What the host detector counted (`flowsentry.host`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostInfo {
    pub role: HostRole,
    /// The host in question (the alert's `src_ip` for a source, `dest_ip` for a destination).
    pub ip: IpAddr,
    /// Window the counts cover, seconds.
    pub window_s: f64,
    /// What was counted, by host feature name (e.g. `"out_dst_ports_10s": 266`): every host
    /// feature at the time of the alert (rates per second, ratios 0–1, distinct counts).
    pub counts: BTreeMap<String, f64>,
}

/// The full CIC feature vector of a flow, written as an object {feature name → number} in schema
/// order. Values are cleaned as the model sees them (NaN → 0, ±Infinity → ±f32::MAX) so every
/// value is a JSON number.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureValues(pub Box<[f64; NUM_FEATURES]>);

impl Serialize for FeatureValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(NUM_FEATURES))?;
        for (def, v) in FEATURES.iter().zip(self.0.iter()) {
            m.serialize_entry(def.id.name(), &crate::forest::clean(*v))?;
        }
        m.end()
    }
}

/// The `flowsentry` extension object: everything EVE has no field for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Extension {
    pub detector: Detector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowDetail>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<Explained>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureValues>,
    /// Alerts of the same host and detector held back by aggregation since the previous alert
    /// of that key was sent (`alerts.aggregate_window_s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded: Option<u64>,
    /// The rule that raised a host alert whose score was at or below the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

/// A scored flow's verdict, as the scorer hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub threshold: f64,
    /// The features that isolated the flow soonest (alerts only).
    pub top: Vec<Contribution>,
}

/// An alert about a host rather than one flow (scan, sweep, flood, brute force): what the host
/// detector hands to [`Alert::host_alert`]. Give `src_ip` for what a source did (scan, sweep,
/// brute force), `dest_ip` for what was done to a destination (a flood's victim); ports and
/// protocol only when they are one value (the service brute-forced, the port flooded).
#[derive(Clone, Debug, PartialEq)]
pub struct HostAlert {
    pub signature: Signature,
    /// When the alert was raised (the end of the counted window), µs since the epoch.
    pub time_us: i64,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dest_ip: Option<IpAddr>,
    pub dest_port: Option<u16>,
    /// IP protocol number, when the counted traffic is one protocol.
    pub proto: Option<u8>,
    /// 1 (high) … 3 (low); `None` takes the signature's default.
    pub severity: Option<u8>,
    /// A score and its threshold, when the detector has them.
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub host: HostInfo,
}

/// What sinks write: one EVE event (`alert` or `flow`) per line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
    pub in_iface: String,
    /// "alert" or "flow".
    pub event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Community ID v1 of the flow (absent on host alerts, which have no single flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// ICMP/ICMPv6 flows: the first packet's type and code (EVE writes no ports for ICMP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Sensor name.
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<EveFlow>,
    pub flowsentry: Extension,
}

/// Severity of a flow alert from how far the score is past the threshold, as a share of the
/// room above it: `m = (score − threshold) / (1 − threshold)`; m ≥ 0.5 → 1 (high), m ≥ 0.2 → 2,
/// else 3.
pub fn flow_severity(score: f64, threshold: f64) -> u8 {
    let room = (1.0 - threshold).max(f64::MIN_POSITIVE);
    let m = (score - threshold) / room;
    if m >= 0.5 {
        1
    } else if m >= 0.2 {
        2
    } else {
        3
    }
}

impl Alert {
    fn for_flow(
        r: &FlowRecord,
        event_type: &'static str,
        ext: Extension,
        origin: &Origin,
    ) -> Alert {
        let ports = !matches!(r.protocol, 1 | 58);
        let icmp = |f: Feature| (!ports).then(|| r.get(f).clamp(0.0, 255.0) as u8);
        Alert {
            timestamp: eve_time(r.end_us),
            flow_id: Some(flow_id(r)),
            in_iface: origin.in_iface.clone(),
            event_type,
            src_ip: Some(r.src_ip),
            src_port: ports.then_some(r.src_port),
            dest_ip: Some(r.dst_ip),
            dest_port: ports.then_some(r.dst_port),
            proto: Some(proto_name(r.protocol)),
            community_id: Some(crate::flow::community_id::of_record(
                r,
                origin.community_id_seed,
            )),
            icmp_type: icmp(Feature::IcmpType),
            icmp_code: icmp(Feature::IcmpCode),
            host: origin.sensor.clone(),
            alert: None,
            flow: None,
            flowsentry: ext,
        }
    }

    fn flow_detail(r: &FlowRecord) -> FlowDetail {
        FlowDetail {
            duration_us: r.end_us - r.start_us,
            end_reason: end_reason_name(r.end_reason),
            payload_bytes_toserver: r.get(Feature::TotalLenFwdPackets).max(0.0) as u64,
            payload_bytes_toclient: r.get(Feature::TotalLenBwdPackets).max(0.0) as u64,
        }
    }

    /// The alert for a flow the forest scored above its threshold (sid 9100001).
    pub fn flow_alert(r: &FlowRecord, v: &Verdict, origin: &Origin) -> Alert {
        let ext = Extension {
            detector: Detector::Flow,
            score: Some(v.score),
            threshold: Some(v.threshold),
            model: Some(origin.model.clone()),
            flow: Some(Alert::flow_detail(r)),
            explanation: v
                .top
                .iter()
                .map(|c| Explained {
                    feature: c.feature.name(),
                    label: super::explain::label(c.feature),
                    value: r.get(c.feature),
                    percentile: c.percentile.map(|p| (p * 10.0).round() / 10.0),
                    weight: c.weight,
                })
                .collect(),
            host: None,
            features: None,
            folded: None,
            rule: None,
        };
        let mut a = Alert::for_flow(r, "alert", ext, origin);
        a.alert = Some(AlertInfo::new(
            Signature::FlowAnomaly,
            Some(flow_severity(v.score, v.threshold)),
        ));
        a.flow = Some(EveFlow::new(r, true));
        a
    }

    /// The EVE flow record of a scored flow, with its full feature vector under
    /// `flowsentry.features` (what `flowsentry train` can read back).
    pub fn flow_event(r: &FlowRecord, v: &Verdict, alerted: bool, origin: &Origin) -> Alert {
        let ext = Extension {
            detector: Detector::Flow,
            score: Some(v.score),
            threshold: Some(v.threshold),
            model: Some(origin.model.clone()),
            flow: Some(Alert::flow_detail(r)),
            explanation: Vec::new(),
            host: None,
            features: Some(FeatureValues(Box::new(r.values))),
            folded: None,
            rule: None,
        };
        let mut a = Alert::for_flow(r, "flow", ext, origin);
        a.flow = Some(EveFlow::new(r, alerted));
        a
    }

    /// An alert about a host (see [`HostAlert`]): no flow id, no EVE `flow` object; the counts
    /// go to `flowsentry.host`.
    pub fn host_alert(h: &HostAlert, origin: &Origin) -> Alert {
        Alert {
            timestamp: eve_time(h.time_us),
            flow_id: None,
            in_iface: origin.in_iface.clone(),
            event_type: "alert",
            src_ip: h.src_ip,
            src_port: h.src_port,
            dest_ip: h.dest_ip,
            dest_port: h.dest_port,
            proto: h.proto.map(proto_name),
            community_id: None,
            icmp_type: None,
            icmp_code: None,
            host: origin.sensor.clone(),
            alert: Some(AlertInfo::new(h.signature, h.severity)),
            flow: None,
            flowsentry: Extension {
                detector: h.signature.info().detector,
                score: h.score,
                threshold: h.threshold,
                model: None,
                flow: None,
                explanation: Vec::new(),
                host: Some(h.host.clone()),
                features: None,
                folded: None,
                rule: None,
            },
        }
    }

    /// Notes how many alerts of the same key aggregation held back before this one.
    pub fn with_folded(mut self, folded: u64) -> Alert {
        if folded > 0 {
            self.flowsentry.folded = Some(folded);
        }
        self
    }

    /// True for `event_type: "alert"`.
    pub fn is_alert(&self) -> bool {
        self.event_type == "alert"
    }

    /// The event as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A one-line key=value summary for syslog (values with spaces are quoted).
    pub fn to_kv(&self) -> String {
        use std::fmt::Write;
        fn endpoint(ip: Option<IpAddr>, port: Option<u16>) -> String {
            match (ip, port) {
                (Some(ip @ IpAddr::V6(_)), Some(p)) => format!("[{ip}]:{p}"),
                (Some(ip), Some(p)) => format!("{ip}:{p}"),
                (Some(ip), None) => ip.to_string(),
                (None, _) => "-".into(),
            }
        }
        let q = |s: &str| s.replace('"', "'");
        let mut s = format!("event_type={}", self.event_type);
        if let Some(id) = self.flow_id {
            let _ = write!(s, " flow_id={id}");
        }
        let _ = write!(
            s,
            " src={} dest={}",
            endpoint(self.src_ip, self.src_port),
            endpoint(self.dest_ip, self.dest_port)
        );
        if let Some(p) = &self.proto {
            let _ = write!(s, " proto={p}");
        }
        if let Some(a) = &self.alert {
            let _ = write!(
                s,
                " sid={} signature=\"{}\" category=\"{}\" severity={}",
                a.signature_id,
                q(a.signature),
                q(a.category),
                a.severity
            );
        }
        let x = &self.flowsentry;
        let _ = write!(
            s,
            " detector={}",
            match x.detector {
                Detector::Flow => "flow",
                Detector::Host => "host",
                Detector::Session => "session",
            }
        );
        if let (Some(sc), Some(t)) = (x.score, x.threshold) {
            let _ = write!(s, " score={sc:.6} threshold={t:.6}");
        }
        if let Some(f) = &self.flow {
            let _ = write!(
                s,
                " pkts_toserver={} pkts_toclient={} bytes_toserver={} bytes_toclient={} age={}",
                f.pkts_toserver, f.pkts_toclient, f.bytes_toserver, f.bytes_toclient, f.age
            );
        }
        if let Some(d) = &x.flow {
            let _ = write!(s, " duration_us={}", d.duration_us);
        }
        if !x.explanation.is_empty() {
            let names: Vec<String> = x
                .explanation
                .iter()
                .map(|e| match e.percentile {
                    Some(p) => format!("{}={} (p{p})", e.feature, e.value),
                    None => format!("{}={}", e.feature, e.value),
                })
                .collect();
            let _ = write!(s, " top_features=\"{}\"", q(&names.join(",")));
        }
        if let Some(h) = &x.host {
            let counts: Vec<String> = h.counts.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let _ = write!(
                s,
                " window_s={} counts=\"{}\"",
                h.window_s,
                q(&counts.join(","))
            );
        }
        let _ = write!(s, " host={}", self.host.replace(' ', "_"));
        s
    }
}
