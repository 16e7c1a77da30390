//! Alert aggregation: at most one alert per (host, what was detected) per window, the alerts
//! folded in between counted and reported on the next alert of that key; and suppress rules
//! (CIDR, port, detector) from the config. A 37,000-flow flood becomes one alert a window, not
//! 37,000, and an operator can silence a known scanner or a noisy service.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One suppress rule: an alert matching every given field is dropped (and counted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressRule {
    /// Source address range, e.g. "10.0.0.0/8" (a bare address means /32 or /128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpNet>,
    /// Destination address range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// "flow", "host" or "session".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
}

/// What an alert is about, for aggregation and suppression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub src: Option<IpAddr>,
    pub dest: Option<IpAddr>,
    pub dest_port: Option<u16>,
    /// "flow", "host" or "session".
    pub detector: &'static str,
    /// The host the alert is about (the source, or a flood's destination) and what was
    /// detected (the signature): the aggregation key.
    pub key_ip: IpAddr,
    pub key_kind: u32,
}

impl SuppressRule {
    pub fn matches(&self, s: &Subject) -> bool {
        let net = |n: &Option<IpNet>, ip: Option<IpAddr>| match (n, ip) {
            (None, _) => true,
            (Some(n), Some(ip)) => n.contains(&ip),
            (Some(_), None) => false,
        };
        net(&self.src, s.src)
            && net(&self.dest, s.dest)
            && self.dest_port.is_none_or(|p| s.dest_port == Some(p))
            && self.detector.as_deref().is_none_or(|d| d == s.detector)
    }
}

/// What to do with an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; `folded` alerts of the same key were held back since the last one sent.
    Send { folded: u64 },
    /// Same key inside the window: held back and counted.
    Fold,
    /// Matched a suppress rule.
    Suppress,
}

/// Counters of the aggregation stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    pub sent: u64,
    pub folded: u64,
    pub suppressed: u64,
    /// Keys forgotten to keep the table bounded before their window ended.
    pub keys_evicted: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    sent_us: i64,
    folded: u64,
}

/// Keys remembered at most.
const MAX_KEYS: usize = 100_000;

/// The aggregation stage.
#[derive(Debug)]
pub struct Aggregator {
    window_us: i64,
    rules: Vec<SuppressRule>,
    keys: HashMap<(IpAddr, u32), Entry>,
    stats: AggregateStats,
}

impl Aggregator {
    /// `window_us` 0 sends every alert (suppress rules still apply).
    pub fn new(window_us: i64, rules: Vec<SuppressRule>) -> Aggregator {
        Aggregator {
            window_us,
            rules,
            keys: HashMap::new(),
            stats: AggregateStats::default(),
        }
    }

    pub fn stats(&self) -> AggregateStats {
        self.stats
    }

    pub fn window_us(&self) -> i64 {
        self.window_us
    }

    /// Counts an alert folded by the caller (into a flood alert on its destination).
    pub fn count_folded(&mut self) {
        self.stats.folded += 1;
    }

    /// Decides on an alert raised at `now_us` (flow time).
    pub fn admit(&mut self, s: &Subject, now_us: i64) -> Verdict {
        if self.rules.iter().any(|r| r.matches(s)) {
            self.stats.suppressed += 1;
            return Verdict::Suppress;
        }
        if self.window_us <= 0 {
            self.stats.sent += 1;
            return Verdict::Send { folded: 0 };
        }
        let key = (s.key_ip, s.key_kind);
        if let Some(e) = self.keys.get_mut(&key) {
            if now_us - e.sent_us < self.window_us {
                e.folded += 1;
                self.stats.folded += 1;
                return Verdict::Fold;
            }
            let folded = e.folded;
            *e = Entry {
                sent_us: now_us,
                folded: 0,
            };
            self.stats.sent += 1;
            return Verdict::Send { folded };
        }
        if self.keys.len() >= MAX_KEYS {
            let w = self.window_us;
            let before = self.keys.len();
            // Keys whose window is over carry only a count still to report: drop those first.
            self.keys.retain(|_, e| now_us - e.sent_us < w);
            if self.keys.len() >= MAX_KEYS {
                self.keys.clear();
            }
            self.stats.keys_evicted += (before - self.keys.len()) as u64;
        }
        self.keys.insert(
            key,
            Entry {
                sent_us: now_us,
                folded: 0,
            },
        );
        self.stats.sent += 1;
        Verdict::Send { folded: 0 }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn subject(src: &str, port: u16, kind: u32) -> Subject {
        let ip: IpAddr = src.parse().unwrap();
        Subject {
            src: Some(ip),
            dest: Some("192.0.2.1".parse().unwrap()),
            dest_port: Some(port),
            detector: "flow",
            key_ip: ip,
            key_kind: kind,
        }
    }

    #[test]
    fn one_alert_per_key_and_window_with_the_fold_count() {
        let mut a = Aggregator::new(60_000_000, vec![]);
        let s = subject("10.0.0.1", 80, 1);
        assert_eq!(a.admit(&s, 0), Verdict::Send { folded: 0 });
        for i in 1..=1000 {
            assert_eq!(a.admit(&s, i * 1000), Verdict::Fold);
        }
        // Another kind or another host is another key.
        assert_eq!(
            a.admit(&subject("10.0.0.1", 80, 2), 5),
            Verdict::Send { folded: 0 }
        );
        assert_eq!(
            a.admit(&subject("10.0.0.2", 80, 1), 5),
            Verdict::Send { folded: 0 }
        );
        // After the window the next alert goes out carrying what was folded.
        assert_eq!(a.admit(&s, 60_000_001), Verdict::Send { folded: 1000 });
        assert_eq!(a.admit(&s, 60_000_002), Verdict::Fold);
        let st = a.stats();
        assert_eq!((st.sent, st.folded, st.suppressed), (4, 1001, 0));
    }

    #[test]
    fn suppress_rules_match_every_given_field() {
        let rule: SuppressRule = toml::from_str("src = \"10.0.0.0/8\"\ndest_port = 53\n").unwrap();
        let mut a = Aggregator::new(0, vec![rule]);
        assert_eq!(a.admit(&subject("10.1.2.3", 53, 1), 0), Verdict::Suppress);
        assert_eq!(
            a.admit(&subject("10.1.2.3", 80, 1), 0),
            Verdict::Send { folded: 0 }
        );
        assert_eq!(
            a.admit(&subject("11.1.2.3", 53, 1), 0),
            Verdict::Send { folded: 0 }
        );
        let host: SuppressRule = toml::from_str("detector = \"host\"").unwrap();
        assert!(!host.matches(&subject("10.1.2.3", 53, 1)));
        assert_eq!(a.stats().suppressed, 1);
    }
}
