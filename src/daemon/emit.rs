//! Where flows and hosts become alerts in the daemon: [`Emitter`] is the flow table's sink. A
//! finished flow goes to the scoring batch (the flow detector) and to the host context; a flow
//! start or first reply goes to the host context, and a host due for scoring goes to the host
//! detector at once, so a scan or flood alerts while it happens. Every alert, from either
//! detector, passes the aggregation stage ([`crate::alert::aggregate`]) before the sinks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::{BATCH, Counters, Scorer};
use crate::alert::Alert;
use crate::alert::aggregate::{Aggregator, Subject, Verdict};
use crate::alert::dispatch::Dispatcher;
use crate::alert::event::{Explained, HostAlert, HostInfo, HostRole};
use crate::alert::signature::Signature;
use crate::config::Config;
use crate::decode::PacketMeta;
use crate::features::FlowRecord;
use crate::flow::{FlowClose, FlowReply, FlowSink, FlowStart, FlowVolume};
use crate::host::{
    FloodFinding, HostContext, HostFeature, HostFinding, HostKind, HostVector, Role,
    SessionFinding, SessionKind, SessionRules,
};

/// The daemon's state between flows and alerts: the host context and the aggregation table.
pub struct Detect {
    pub hosts: Option<HostContext>,
    pub sessions: Option<SessionRules>,
    pub agg: Aggregator,
    /// Destinations under a flood alert, until when (flow time): flow alerts toward them are
    /// folded into the flood alert (a reflection flood has thousands of sources).
    flooded: HashMap<IpAddr, i64>,
    /// The packet-flood rule (`[sessions] flood_packets`), judged on the flow table's volume
    /// reports.
    pub flood: Option<crate::host::FloodRule>,
    /// The learning period, while it runs (`[learning]`; set by `run` and `replay`).
    pub learn: Option<crate::learn::Learner>,
}

impl Detect {
    pub fn new(cfg: &Config) -> Detect {
        Detect {
            hosts: cfg
                .host
                .enabled
                .then(|| HostContext::new(cfg.host_config())),
            sessions: cfg
                .sessions
                .enabled
                .then(|| SessionRules::new(cfg.session_config())),
            agg: Aggregator::new(
                (cfg.alerts.aggregate_window_s * 1e6).round() as i64,
                cfg.alerts.suppress.clone(),
            ),
            flooded: HashMap::new(),
            flood: cfg.flood_rule(),
            learn: None,
        }
    }

    /// Copies the capped tables' counters to the shared counters (stats line, `/metrics`).
    pub fn publish(&self, c: &Counters) {
        if let Some(h) = &self.hosts {
            let s = h.stats();
            c.host_entries.store(s.hosts, Ordering::Relaxed);
            c.host_evicted.store(s.evicted, Ordering::Relaxed);
            c.host_refused.store(s.refused, Ordering::Relaxed);
        }
        if let Some(t) = &self.sessions {
            let s = t.stats();
            c.session_entries.store(s.entries, Ordering::Relaxed);
            c.session_evicted.store(s.evicted, Ordering::Relaxed);
            c.session_refused.store(s.refused, Ordering::Relaxed);
        }
    }

    /// Passes an alert through aggregation and suppression to the sinks.
    pub fn gate(&mut self, a: Alert, s: &Subject, now_us: i64, c: &Counters, d: &Dispatcher) {
        // A source named by a host or session alert does not teach the learning period.
        if s.detector != "flow"
            && let (Some(ip), Some(l)) = (s.src, self.learn.as_mut())
        {
            l.forget(ip);
        }
        if s.detector == "host" && s.src.is_none() {
            if self.flooded.len() >= 10_000 {
                self.flooded.retain(|_, until| *until > now_us);
            }
            let until = now_us.saturating_add(self.agg.window_us().max(10_000_000));
            self.flooded.insert(s.key_ip, until);
        } else if s.detector == "flow"
            && let Some(dest) = s.dest
            && self.flooded.get(&dest).is_some_and(|until| now_us < *until)
        {
            c.folded.fetch_add(1, Ordering::Relaxed);
            self.agg.count_folded();
            return;
        }
        match self.agg.admit(s, now_us) {
            Verdict::Send { folded } => {
                c.alerts.fetch_add(1, Ordering::Relaxed);
                d.send(a.with_folded(folded));
            }
            Verdict::Fold => {
                c.folded.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Suppress => {
                c.suppressed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The flow table's sink in `run` and `replay`.
pub struct Emitter<'a> {
    pub scorer: &'a Scorer,
    pub batch: &'a mut Vec<FlowRecord>,
    pub detect: &'a mut Detect,
    pub c: &'a Counters,
    pub d: &'a Dispatcher,
}

impl Emitter<'_> {
    fn judge_host(&mut self, ip: IpAddr, v: &HostVector, ts: i64) {
        let Some(det) = &self.scorer.host else {
            return;
        };
        self.c.host_scored.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = det.judge(ip, v, ts) {
            self.c.host_findings.fetch_add(1, Ordering::Relaxed);
            let (alert, subject) = host_alert(&f, self.scorer);
            self.detect.gate(alert, &subject, ts, self.c, self.d);
        }
    }

    fn session(&mut self, f: Option<SessionFinding>) {
        if let Some(f) = f {
            self.c.session_findings.fetch_add(1, Ordering::Relaxed);
            let (alert, subject) = session_alert(&f, self.scorer);
            self.detect.gate(alert, &subject, f.ts_us, self.c, self.d);
        }
    }
}

impl Emitter<'_> {
    /// [`FlowSink::coming`] for a flow start handed over by a worker (the host thread).
    pub fn prefetch_start(&self, s: &FlowStart, close: bool) {
        if let Some(h) = &self.detect.hosts {
            h.prefetch(s.src_ip, s.dst_ip, close);
        }
    }

    /// A finished flow, as the host context and the session rules see it (no scoring). With
    /// workers (`daemon::workers`) only flows [`context_reads`] reaches them.
    pub fn context_ended(&mut self, r: &FlowRecord) {
        if let Some(h) = &mut self.detect.hosts {
            h.ended(r);
        }
        let f = self.detect.sessions.as_mut().and_then(|t| t.ended(r));
        self.session(f);
        self.detect.publish(self.c);
    }
}

/// Whether [`Emitter::context_ended`] can do anything with a finished flow: the host context
/// and the session rules read answered TCP flows only. Keep in step with `HostContext::ended`
/// and `SessionTable::ended`.
pub fn context_reads(r: &FlowRecord) -> bool {
    r.protocol == 6 && r.get(crate::features::Feature::TotalBwdPackets) > 0.0
}

impl FlowSink for Emitter<'_> {
    fn ended(&mut self, r: FlowRecord) {
        self.context_ended(&r);
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.scorer
                .score_batch(self.batch, self.detect, self.c, self.d);
        }
    }

    fn started(&mut self, s: &FlowStart) {
        let Some(h) = &mut self.detect.hosts else {
            return;
        };
        let due = h.started(s);
        for ip in due.into_iter().flatten() {
            let v = self
                .detect
                .hosts
                .as_ref()
                .and_then(|h| h.vector(ip, s.ts_us));
            if let Some(v) = v {
                self.judge_host(ip, &v, s.ts_us);
            }
        }
        self.detect.publish(self.c);
    }

    fn replied(&mut self, r: &FlowReply) {
        if let Some(h) = &mut self.detect.hosts {
            h.replied(r);
        }
        let f = self.detect.sessions.as_mut().and_then(|t| t.replied(r));
        self.session(f);
    }

    fn closed(&mut self, c: &FlowClose) {
        if let Some(t) = &mut self.detect.sessions {
            t.closed(c);
        }
    }

    fn volume(&mut self, v: &FlowVolume) {
        if let Some(f) = self.detect.flood.and_then(|r| r.judge(v)) {
            self.c.session_findings.fetch_add(1, Ordering::Relaxed);
            let (alert, subject) = flood_alert(&f, self.scorer);
            self.detect.gate(alert, &subject, f.ts_us, self.c, self.d);
        }
    }

    fn coming(&self, p: &PacketMeta, close: bool) {
        if let Some(h) = &self.detect.hosts {
            h.prefetch(p.src_ip, p.dst_ip, close);
        }
    }
}

/// A one-flow packet flood as an EVE alert, keyed on its source like the session rules.
pub fn flood_alert(f: &FloodFinding, scorer: &Scorer) -> (Alert, Subject) {
    let h = HostAlert {
        signature: Signature::SessionFlood,
        time_us: f.ts_us,
        src_ip: Some(f.src),
        src_port: None,
        dest_ip: Some(f.dst),
        dest_port: (f.dst_port != 0).then_some(f.dst_port),
        proto: Some(f.protocol),
        severity: None,
        score: None,
        threshold: None,
        host: HostInfo {
            role: HostRole::Source,
            ip: f.src,
            window_s: round3(f.window_s),
            counts: [
                ("flow_packets", f.packets as f64),
                ("answered_packets", f.answered as f64),
                ("packets_per_s", f.rate.round()),
            ]
            .into_iter()
            // A capture's coarse clock can put every packet at one time: no rate then.
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        },
    };
    let a = Alert::host_alert(&h, &scorer.origin);
    let subject = Subject {
        src: Some(f.src),
        dest: Some(f.dst),
        dest_port: (f.dst_port != 0).then_some(f.dst_port),
        detector: "session",
        key_ip: f.src,
        key_kind: 10,
    };
    (a, subject)
}

/// A host finding as an EVE alert, and what aggregation keys it on.
pub fn host_alert(f: &HostFinding, scorer: &Scorer) -> (Alert, Subject) {
    let (src, dest, role) = match f.role {
        Role::Source => (Some(f.ip), None, HostRole::Source),
        Role::Destination => (None, Some(f.ip), HostRole::Destination),
    };
    let signature = match f.kind {
        HostKind::PortScan => Signature::PortScan,
        HostKind::HostSweep => Signature::HostSweep,
        HostKind::Flood => Signature::Flood,
        HostKind::BruteForce => Signature::BruteForce,
        HostKind::Anomalous => Signature::HostAnomaly,
    };
    let h = HostAlert {
        signature,
        time_us: f.ts_us,
        src_ip: src,
        src_port: None,
        dest_ip: dest,
        dest_port: None,
        proto: None,
        severity: None,
        score: Some(f.score),
        threshold: Some(f.threshold),
        host: HostInfo {
            role,
            ip: f.ip,
            window_s: 10.0,
            counts: HostFeature::all()
                .map(|h| (h.name().to_string(), round3(f.values[h as usize])))
                .collect(),
        },
    };
    let mut a = Alert::host_alert(&h, &scorer.origin);
    a.flowsentry.model = scorer.host_model_name.clone();
    if f.by_rule {
        a.flowsentry.rule = Some("out_flows_per_s_1s >= 100 and out_unanswered_ratio_10s >= 0.9");
    }
    a.flowsentry.explanation = f
        .top
        .iter()
        .map(|(h, w)| Explained {
            feature: h.name(),
            label: h.description(),
            value: round3(f.values[*h as usize]),
            percentile: None,
            weight: *w,
        })
        .collect();
    let subject = Subject {
        src,
        dest,
        dest_port: None,
        detector: "host",
        key_ip: f.ip,
        key_kind: 1,
    };
    (a, subject)
}

/// A session rule's finding as an EVE alert: the source, the service (destination address and
/// port), and the session counts that crossed the threshold.
pub fn session_alert(f: &SessionFinding, scorer: &Scorer) -> (Alert, Subject) {
    let s = f.service;
    let signature = match f.kind {
        SessionKind::BruteForce => Signature::SessionBruteForce,
        SessionKind::ConnectionExhaustion => Signature::SessionExhaustion,
    };
    let h = HostAlert {
        signature,
        time_us: f.ts_us,
        src_ip: Some(s.src),
        src_port: None,
        dest_ip: Some(s.dst),
        dest_port: Some(s.port),
        proto: Some(6),
        severity: None,
        score: None,
        threshold: None,
        host: HostInfo {
            role: HostRole::Source,
            ip: s.src,
            window_s: f.window_s,
            counts: [
                ("open_sessions", f.open),
                ("recent_open_sessions", f.recent_open),
                ("attempt_sessions", f.attempts),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), f64::from(v)))
            .collect(),
        },
    };
    let a = Alert::host_alert(&h, &scorer.origin);
    let subject = Subject {
        src: Some(s.src),
        dest: Some(s.dst),
        dest_port: Some(s.port),
        detector: "session",
        key_ip: s.src,
        key_kind: 2 + f.kind as u32,
    };
    (a, subject)
}

/// Three decimals: decayed counts and ratios carry float noise an analyst need not read.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What aggregation keys a flow alert on: its source and the flow detector.
pub fn flow_subject(r: &FlowRecord) -> Subject {
    Subject {
        src: Some(r.src_ip),
        dest: Some(r.dst_ip),
        dest_port: Some(r.dst_port),
        detector: "flow",
        key_ip: r.src_ip,
        key_kind: 0,
    }
}
