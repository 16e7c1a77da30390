//! The host feature schema, defined once: names, what each counts, and how a host's state
//! becomes a feature vector for the host detector. "out" features count flows the host opened
//! (it sent the first packet); "in" features count flows opened toward it.

/// One host feature. Order = column order of host feature rows and host models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostFeature {
    OutRate1s,
    OutRate10s,
    OutRate60s,
    OutDstPorts10s,
    OutDstPorts60s,
    OutDstHosts10s,
    OutDstHosts60s,
    OutUnanswered10s,
    OutRefused10s,
    OutTopServiceShare60s,
    OutAuthSessions60s,
    OutSessionSizeCv60s,
    InRate1s,
    InRate10s,
    InRate60s,
    InSources10s,
    InSources60s,
    InPorts10s,
    InUnanswered10s,
    InUnsolicited10s,
}

/// Number of host features.
pub const NUM_HOST_FEATURES: usize = 20;

/// (feature, name, what it measures) — the one table.
pub const HOST_FEATURES: [(HostFeature, &str, &str); NUM_HOST_FEATURES] = {
    use HostFeature::*;
    [
        (
            OutRate1s,
            "out_flows_per_s_1s",
            "new flows opened per second (1 s scale)",
        ),
        (
            OutRate10s,
            "out_flows_per_s_10s",
            "new flows opened per second (10 s scale)",
        ),
        (
            OutRate60s,
            "out_flows_per_s_60s",
            "new flows opened per second (60 s scale)",
        ),
        (
            OutDstPorts10s,
            "out_dst_ports_10s",
            "distinct destination ports in the last 10 s",
        ),
        (
            OutDstPorts60s,
            "out_dst_ports_60s",
            "distinct destination ports in the last 60 s",
        ),
        (
            OutDstHosts10s,
            "out_dst_hosts_10s",
            "distinct destination hosts in the last 10 s",
        ),
        (
            OutDstHosts60s,
            "out_dst_hosts_60s",
            "distinct destination hosts in the last 60 s",
        ),
        (
            OutUnanswered10s,
            "out_unanswered_ratio_10s",
            "share of opened flows with no answer yet (10 s)",
        ),
        (
            OutRefused10s,
            "out_refused_ratio_10s",
            "share of opened flows answered by a TCP reset (10 s)",
        ),
        (
            OutTopServiceShare60s,
            "out_top_service_share_60s",
            "share of opened flows going to the most used destination service (60 s)",
        ),
        (
            OutAuthSessions60s,
            "out_auth_sessions_60s",
            "short finished sessions to one login service (SSH, FTP, Telnet, RDP, SMB, VNC, mail, databases) in the last 60 s",
        ),
        (
            OutSessionSizeCv60s,
            "out_session_size_cv_60s",
            "variation of client bytes between those sessions (0 = identical attempts; 1 when fewer than 3)",
        ),
        (
            InRate1s,
            "in_flows_per_s_1s",
            "new flows toward the host per second (1 s scale)",
        ),
        (
            InRate10s,
            "in_flows_per_s_10s",
            "new flows toward the host per second (10 s scale)",
        ),
        (
            InRate60s,
            "in_flows_per_s_60s",
            "new flows toward the host per second (60 s scale)",
        ),
        (
            InSources10s,
            "in_sources_10s",
            "distinct sources opening flows toward the host in the last 10 s",
        ),
        (
            InSources60s,
            "in_sources_60s",
            "distinct sources opening flows toward the host in the last 60 s",
        ),
        (
            InPorts10s,
            "in_ports_10s",
            "distinct ports of the host contacted in the last 10 s",
        ),
        (
            InUnanswered10s,
            "in_unanswered_ratio_10s",
            "share of flows toward the host it did not answer (10 s)",
        ),
        (
            InUnsolicited10s,
            "in_unsolicited_ratio_10s",
            "share of flows toward the host that began with a SYN-ACK, RST or mid-stream packet: replies to requests it never sent (reflection, backscatter) (10 s)",
        ),
    ]
};

impl HostFeature {
    pub fn name(self) -> &'static str {
        HOST_FEATURES[self as usize].1
    }
    pub fn description(self) -> &'static str {
        HOST_FEATURES[self as usize].2
    }
    pub fn from_name(name: &str) -> Option<HostFeature> {
        HOST_FEATURES
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(f, _, _)| *f)
    }
    pub fn all() -> impl Iterator<Item = HostFeature> {
        HOST_FEATURES.iter().map(|(f, _, _)| *f)
    }
}

/// One host's feature values, indexed by `HostFeature as usize`.
pub type HostVector = [f64; NUM_HOST_FEATURES];

/// Destination ports of login services, where many short similar sessions mean password
/// guessing: FTP, SSH, Telnet, SMTP submission, POP3, IMAP, SMB, MSSQL, MySQL, RDP, Postgres,
/// VNC, and their TLS variants.
pub fn is_auth_port(port: u16) -> bool {
    matches!(
        port,
        21 | 22 | 23 | 110 | 143 | 445 | 465 | 587 | 993 | 995 | 1433 | 3306 | 3389 | 5432 | 5900
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_matches_the_enum() {
        for (i, (f, name, _)) in HOST_FEATURES.iter().enumerate() {
            assert_eq!(*f as usize, i, "{name}");
            assert_eq!(HostFeature::from_name(name), Some(*f));
        }
    }
}
