//! Config validation: every value problem of a parsed [`Config`], reported together, and the
//! warnings for odd but valid values (`check-config`, `run`, `replay`).

use std::net::SocketAddr;

use super::*;

const SINK_TRANSPORTS: [&str; 3] = ["unix", "udp", "tcp"];

/// Largest `alerts.queue_size`: each sink's queue is allocated up front (24 bytes a slot).
pub const MAX_QUEUE_SIZE: usize = 1_000_000;
/// Longest `alerts.shutdown_timeout_s` (systemd's TimeoutStopSec must exceed it).
pub const MAX_SHUTDOWN_TIMEOUT_S: f64 = 600.0;
/// Flow timeouts below a millisecond or above a year are refused.
pub const MIN_TIMEOUT_S: f64 = 0.001;
pub const MAX_TIMEOUT_S: f64 = 31_536_000.0;

/// A level name, or a tracing filter whose every directive names a level (`target=level`).
/// A bare word such as "warning" would parse as a *target* filter and silence every log line.
pub(super) fn log_level_ok(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    !s.trim().is_empty()
        && tracing_subscriber::EnvFilter::try_new(s).is_ok()
        && s.split(',').all(|d| match d.rsplit_once('=') {
            Some((_, l)) => level(l),
            None => level(d),
        })
}

impl Config {
    /// Every problem, in a stable order (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let f = &self.flow;
        for (name, v) in [
            ("flow_timeout_s", f.flow_timeout_s),
            ("activity_timeout_s", f.activity_timeout_s),
        ] {
            if !(MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&v) {
                p.push(format!(
                    "flow.{name} must be {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S} seconds, got {v}"
                ));
            }
        }
        if f.max_flows == 0 {
            p.push("flow.max_flows must be at least 1".into());
        }
        for (i, r) in self.alerts.suppress.iter().enumerate() {
            if let Some(d) = &r.detector
                && !matches!(d.as_str(), "flow" | "host" | "session")
            {
                p.push(format!(
                    "alerts.suppress[{i}].detector must be \"flow\", \"host\" or \"session\", got {d:?}"
                ));
            }
        }
        self.learning.problems(self, &mut p);
        let fr = self.sessions.flood_rate;
        if !(fr.is_finite() && fr > 0.0 && fr <= 1e9) {
            p.push(format!(
                "sessions.flood_rate must be above 0 and at most 1e9 packets/s, got {fr}"
            ));
        }
        let ss = &self.sessions;
        let ring = crate::host::sessions::RING as u32;
        for (name, v) in [("parallel", ss.parallel), ("attempts", ss.attempts)] {
            if v > ring {
                p.push(format!(
                    "sessions.{name} must be 0 (off) to {ring}, got {v}"
                ));
            }
        }
        for (name, v) in [
            ("parallel_window_s", ss.parallel_window_s),
            ("attempts_window_s", ss.attempts_window_s),
        ] {
            if !(v.is_finite() && (0.1..=3600.0).contains(&v)) {
                p.push(format!(
                    "sessions.{name} must be 0.1 to 3600 seconds, got {v}"
                ));
            }
        }
        if ss.max_entries == 0 || ss.max_entries > 100_000_000 {
            p.push(format!(
                "sessions.max_entries must be 1 to 100000000, got {}",
                ss.max_entries
            ));
        }
        let h = &self.host;
        if h.max_hosts == 0 || h.max_hosts > 100_000_000 {
            p.push(format!(
                "host.max_hosts must be 1 to 100000000, got {}",
                h.max_hosts
            ));
        }
        if !(h.min_flows.is_finite() && (1.0..=1e6).contains(&h.min_flows)) {
            p.push(format!(
                "host.min_flows must be 1 to 1000000, got {}",
                h.min_flows
            ));
        }
        for (name, t) in [
            ("threshold", h.threshold),
            ("anomalous_threshold", h.anomalous_threshold),
        ] {
            if let Some(t) = t
                && !(t > 0.0 && t <= 1.0)
            {
                p.push(format!(
                    "host.{name} must be above 0 and at most 1, got {t}"
                ));
            }
        }
        let w = self.alerts.aggregate_window_s;
        if !(w.is_finite() && (0.0..=86_400.0).contains(&w)) {
            p.push(format!(
                "alerts.aggregate_window_s must be 0 to 86400 seconds, got {w}"
            ));
        }
        if !(f.tcp_linger_s.is_finite() && (0.0..=3600.0).contains(&f.tcp_linger_s)) {
            p.push(format!(
                "flow.tcp_linger_s must be between 0 and 3600 seconds, got {}",
                f.tcp_linger_s
            ));
        }
        if !matches!(f.compat.as_str(), "corrected" | "cic2017") {
            p.push(format!(
                "flow.compat must be \"corrected\" or \"cic2017\", got {:?}",
                f.compat
            ));
        }
        let c = &self.capture;
        if c.interface.trim().is_empty() {
            p.push("capture.interface must name an interface".into());
        }
        if !(64..=262_144).contains(&c.snaplen) {
            p.push(format!(
                "capture.snaplen must be 64..=262144, got {}",
                c.snaplen
            ));
        }
        if c.buffer_size_mb == 0 || c.buffer_size_mb > 2048 {
            p.push(format!(
                "capture.buffer_size_mb must be 1..=2048, got {}",
                c.buffer_size_mb
            ));
        }
        if !(1..=crate::shard::MAX_WORKERS).contains(&c.workers) {
            p.push(format!(
                "capture.workers must be 1..={}, got {}",
                crate::shard::MAX_WORKERS,
                c.workers
            ));
        }
        if c.timeout_ms == 0 || c.timeout_ms > 10_000 {
            p.push(format!(
                "capture.timeout_ms must be 1..=10000, got {}",
                c.timeout_ms
            ));
        }
        if let Some(t) = self.model.threshold
            && !(t.is_finite() && t > 0.0 && t < 1.0)
        {
            p.push(format!("model.threshold must be in (0, 1), got {t}"));
        }
        let a = &self.alerts;
        if !(1..=MAX_QUEUE_SIZE).contains(&a.queue_size) {
            p.push(format!(
                "alerts.queue_size must be 1 to {MAX_QUEUE_SIZE} events, got {}",
                a.queue_size
            ));
        }
        if !(0.0..=MAX_SHUTDOWN_TIMEOUT_S).contains(&a.shutdown_timeout_s) {
            p.push(format!(
                "alerts.shutdown_timeout_s must be 0 to {MAX_SHUTDOWN_TIMEOUT_S} seconds, got {}",
                a.shutdown_timeout_s
            ));
        }
        if a.sinks.is_empty() {
            p.push("alerts.sinks: at least one sink is needed".into());
        }
        for (i, s) in a.sinks.iter().enumerate() {
            if let SinkConfig::Syslog(s) = s {
                if !SINK_TRANSPORTS.contains(&s.transport.as_str()) {
                    p.push(format!(
                        "alerts.sinks[{i}].transport must be unix, udp or tcp, got {:?}",
                        s.transport
                    ));
                }
                if !matches!(s.format.as_str(), "rfc5424" | "rfc3164") {
                    p.push(format!(
                        "alerts.sinks[{i}].format must be rfc5424 or rfc3164, got {:?}",
                        s.format
                    ));
                }
                if s.facility.parse::<syslog::Facility>().is_err() {
                    p.push(format!("alerts.sinks[{i}].facility {:?} is not a syslog facility (e.g. local0, daemon)", s.facility));
                }
                if !matches!(s.message.as_str(), "json" | "kv") {
                    p.push(format!(
                        "alerts.sinks[{i}].message must be json or kv, got {:?}",
                        s.message
                    ));
                }
                if s.transport != "unix" && s.address.parse::<SocketAddr>().is_err() {
                    p.push(format!(
                        "alerts.sinks[{i}].address must be host:port for {}, got {:?}",
                        s.transport, s.address
                    ));
                }
            }
        }
        if !matches!(self.logging.format.as_str(), "plain" | "json") {
            p.push(format!(
                "logging.format must be plain or json, got {:?}",
                self.logging.format
            ));
        }
        if !log_level_ok(&self.logging.level) {
            p.push(format!(
                "logging.level {:?} is not a level (error, warn, info, debug, trace, off) or a target=level filter",
                self.logging.level
            ));
        }
        if self.http.enabled && self.http.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "http.listen must be an address:port, got {:?}",
                self.http.listen
            ));
        }
        p
    }

    /// Values that work but are probably not what the operator meant (printed by
    /// `check-config`, logged at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let f = &self.flow;
        if f.flow_timeout_s < 1.0 {
            w.push(format!(
                "flow.flow_timeout_s = {}: every flow is cut after less than a second",
                f.flow_timeout_s
            ));
        }
        if f.flow_timeout_s > 86_400.0 || f.activity_timeout_s > 86_400.0 {
            w.push(
                "a flow timeout over a day keeps flows open (and memory used) for very long".into(),
            );
        }
        if self.http.enabled
            && let Ok(a) = self.http.listen.parse::<SocketAddr>()
            && !a.ip().is_loopback()
        {
            w.push(format!(
                "http.listen = {:?} is not a loopback address: /metrics and /predict have no authentication",
                self.http.listen
            ));
        }
        w
    }
}
