//! The signature registry: every kind of alert flowsentry raises, with the EVE `alert` fields it
//! carries (`gid`, `signature_id`, `rev`, `signature`, `category`, default `severity`). This is
//! the one place sids are assigned.
//!
//! **Signature ids: 9_100_000–9_100_099** (`gid` 1, like Suricata's own rules). The range lies in
//! the block the community sid allocation leaves for local use (≥ 9,000,000) and clear of the
//! Emerging Threats ranges (2,000,000–2,999,999), so flowsentry alerts never collide with a
//! loaded rule set in one dashboard. Sids are never reused: a signature whose meaning changes
//! gets a new `rev`; a retired one keeps its number.
//!
//! Categories are the descriptions of Suricata's `classification.config` (what EVE writes in
//! `alert.category`), and the default severity is that class's priority (1 = high, 3 = low).
//! Brute force is classed as "Attempted Information Leak" (`attempted-recon`, priority 2), as
//! the Emerging Threats brute-force/scan rules do: repeated short sessions show attempts, not a
//! privilege gained ("Attempted User Privilege Gain" would claim a success we cannot see).

use serde::Serialize;

/// Which detector raised an alert (`flowsentry.detector`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// The per-flow Isolation Forest.
    Flow,
    /// The per-host detector (rates and counts across flows of one host).
    Host,
    /// The session rules (sessions of one source to one service: parallel, repeated, held).
    Session,
}

/// Every alert flowsentry can raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signature {
    /// One flow's features scored above the model's threshold.
    FlowAnomaly,
    /// One source probing many ports of a host.
    PortScan,
    /// One source probing many hosts.
    HostSweep,
    /// SYN or connection flood toward one destination.
    Flood,
    /// Repeated short sessions from one source to one service (password guessing).
    BruteForce,
    /// A host's behaviour scored as anomalous by the host detector.
    HostAnomaly,
    /// Parallel or repeated small sessions from one source to one login service.
    SessionBruteForce,
    /// One source holding many connections open to one service (slowloris and kin).
    SessionExhaustion,
    /// One source sending a fast, unanswered packet stream in one flow.
    SessionFlood,
}

/// Suricata classification descriptions used here (from its `classification.config`).
pub mod category {
    pub const POTENTIALLY_BAD: &str = "Potentially Bad Traffic";
    pub const NETWORK_SCAN: &str = "Detection of a Network Scan";
    pub const DENIAL_OF_SERVICE: &str = "Attempted Denial of Service";
    pub const INFORMATION_LEAK: &str = "Attempted Information Leak";
}

/// The fixed EVE `alert` fields of one signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureInfo {
    pub gid: u32,
    pub signature_id: u32,
    pub rev: u32,
    /// The message, ET style: `FLOWSENTRY <DETECTOR> <what>`.
    pub signature: &'static str,
    /// Suricata classification description.
    pub category: &'static str,
    /// Suricata classtype short name of `category`.
    pub classtype: &'static str,
    /// The class's priority (1 high … 3 low), used when a detector gives no severity.
    pub default_severity: u8,
    pub detector: Detector,
}

/// First and last sid flowsentry may use.
pub const SID_FIRST: u32 = 9_100_000;
pub const SID_LAST: u32 = 9_100_099;

impl Signature {
    /// Every signature, for docs and tests.
    pub const ALL: [Signature; 9] = [
        Signature::FlowAnomaly,
        Signature::PortScan,
        Signature::HostSweep,
        Signature::Flood,
        Signature::BruteForce,
        Signature::HostAnomaly,
        Signature::SessionBruteForce,
        Signature::SessionExhaustion,
        Signature::SessionFlood,
    ];

    pub const fn info(self) -> SignatureInfo {
        use category::*;
        let (signature_id, signature, category, classtype, default_severity, detector) = match self
        {
            Signature::FlowAnomaly => (
                9_100_001,
                "FLOWSENTRY FLOW anomalous flow (Isolation Forest score above threshold)",
                POTENTIALLY_BAD,
                "bad-unknown",
                2,
                Detector::Flow,
            ),
            Signature::PortScan => (
                9_100_010,
                "FLOWSENTRY HOST port scan from source",
                NETWORK_SCAN,
                "network-scan",
                3,
                Detector::Host,
            ),
            Signature::HostSweep => (
                9_100_011,
                "FLOWSENTRY HOST host sweep from source",
                NETWORK_SCAN,
                "network-scan",
                3,
                Detector::Host,
            ),
            Signature::Flood => (
                9_100_020,
                "FLOWSENTRY HOST SYN/connection flood toward destination",
                DENIAL_OF_SERVICE,
                "attempted-dos",
                2,
                Detector::Host,
            ),
            Signature::BruteForce => (
                9_100_030,
                "FLOWSENTRY HOST brute force: repeated short sessions to one service",
                INFORMATION_LEAK,
                "attempted-recon",
                2,
                Detector::Host,
            ),
            Signature::HostAnomaly => (
                9_100_040,
                "FLOWSENTRY HOST anomalous host behaviour",
                POTENTIALLY_BAD,
                "bad-unknown",
                2,
                Detector::Host,
            ),
            Signature::SessionBruteForce => (
                9_100_031,
                "FLOWSENTRY SESSION brute force: parallel or repeated login sessions to one service",
                INFORMATION_LEAK,
                "attempted-recon",
                2,
                Detector::Session,
            ),
            Signature::SessionExhaustion => (
                9_100_021,
                "FLOWSENTRY SESSION connection exhaustion: many connections held open to one service",
                DENIAL_OF_SERVICE,
                "attempted-dos",
                2,
                Detector::Session,
            ),
            Signature::SessionFlood => (
                9_100_022,
                "FLOWSENTRY SESSION packet flood: fast unanswered packets from one source in one flow",
                DENIAL_OF_SERVICE,
                "attempted-dos",
                2,
                Detector::Session,
            ),
        };
        SignatureInfo {
            gid: 1,
            signature_id,
            rev: 1,
            signature,
            category,
            classtype,
            default_severity,
            detector,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_unique_and_in_range() {
        let mut seen = std::collections::HashSet::new();
        for s in Signature::ALL {
            let i = s.info();
            assert!((SID_FIRST..=SID_LAST).contains(&i.signature_id), "{s:?}");
            assert!(
                seen.insert(i.signature_id),
                "duplicate sid {}",
                i.signature_id
            );
            assert!((1..=3).contains(&i.default_severity));
            assert!(i.signature.starts_with("FLOWSENTRY "));
        }
    }
}
