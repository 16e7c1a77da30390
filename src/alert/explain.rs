//! Words for the analyst: a short human label per CIC feature (what it measures, in which unit),
//! used in alert explanations. "Client→server" is the flow's forward direction (EVE's
//! "toserver"); sizes are transport payload bytes; times are µs.

use crate::features::Feature;

/// A short label for a feature.
pub fn label(f: Feature) -> &'static str {
    use Feature::*;
    match f {
        SrcPort => "client port",
        DstPort => "server port",
        Protocol => "IP protocol number",
        FlowDuration => "flow duration (µs)",
        TotalFwdPackets => "packets client→server",
        TotalBwdPackets => "packets server→client",
        TotalLenFwdPackets => "payload bytes client→server",
        TotalLenBwdPackets => "payload bytes server→client",
        FwdPktLenMax => "largest client→server payload (bytes)",
        FwdPktLenMin => "smallest client→server payload (bytes)",
        FwdPktLenMean => "mean client→server payload (bytes)",
        FwdPktLenStd => "spread of client→server payload sizes (bytes, std)",
        BwdPktLenMax => "largest server→client payload (bytes)",
        BwdPktLenMin => "smallest server→client payload (bytes)",
        BwdPktLenMean => "mean server→client payload (bytes)",
        BwdPktLenStd => "spread of server→client payload sizes (bytes, std)",
        FlowBytesPerSec => "payload bytes per second",
        FlowPacketsPerSec => "packets per second",
        FlowIatMean => "mean gap between packets (µs)",
        FlowIatStd => "spread of gaps between packets (µs, std)",
        FlowIatMax => "longest gap between packets (µs)",
        FlowIatMin => "shortest gap between packets (µs)",
        FwdIatTotal => "time from first to last client→server packet (µs)",
        FwdIatMean => "mean gap between client→server packets (µs)",
        FwdIatStd => "spread of gaps between client→server packets (µs, std)",
        FwdIatMax => "longest gap between client→server packets (µs)",
        FwdIatMin => "shortest gap between client→server packets (µs)",
        BwdIatTotal => "time from first to last server→client packet (µs)",
        BwdIatMean => "mean gap between server→client packets (µs)",
        BwdIatStd => "spread of gaps between server→client packets (µs, std)",
        BwdIatMax => "longest gap between server→client packets (µs)",
        BwdIatMin => "shortest gap between server→client packets (µs)",
        FwdPshFlags => "client→server packets with PSH",
        BwdPshFlags => "server→client packets with PSH",
        FwdUrgFlags => "client→server packets with URG",
        BwdUrgFlags => "server→client packets with URG",
        FwdRstFlags => "client→server packets with RST",
        BwdRstFlags => "server→client packets with RST",
        FwdHeaderLength => "TCP/UDP header bytes client→server",
        BwdHeaderLength => "TCP/UDP header bytes server→client",
        FwdPacketsPerSec => "client→server packets per second",
        BwdPacketsPerSec => "server→client packets per second",
        PktLenMin => "smallest payload (bytes)",
        PktLenMax => "largest payload (bytes)",
        PktLenMean => "mean payload (bytes)",
        PktLenStd => "spread of payload sizes (bytes, std)",
        PktLenVariance => "variance of payload sizes (bytes²)",
        FinFlagCount => "packets with FIN",
        SynFlagCount => "packets with SYN",
        RstFlagCount => "packets with RST",
        PshFlagCount => "packets with PSH",
        AckFlagCount => "packets with ACK",
        UrgFlagCount => "packets with URG",
        CwrFlagCount => "packets with CWR",
        EceFlagCount => "packets with ECE",
        DownUpRatio => "server→client / client→server packets",
        AvgPacketSize => "mean payload per packet (bytes)",
        AvgFwdSegmentSize => "mean client→server payload (bytes)",
        AvgBwdSegmentSize => "mean server→client payload (bytes)",
        FwdAvgBytesPerBulk => "client→server bytes per bulk transfer",
        FwdAvgPacketsPerBulk => "client→server packets per bulk transfer",
        FwdAvgBulkRate => "client→server bulk rate (bytes/s)",
        BwdAvgBytesPerBulk => "server→client bytes per bulk transfer",
        BwdAvgPacketsPerBulk => "server→client packets per bulk transfer",
        BwdAvgBulkRate => "server→client bulk rate (bytes/s)",
        SubflowFwdPackets => "client→server packets per subflow",
        SubflowFwdBytes => "client→server bytes per subflow",
        SubflowBwdPackets => "server→client packets per subflow",
        SubflowBwdBytes => "server→client bytes per subflow",
        InitWinBytesFwd => "client's first TCP window (bytes)",
        InitWinBytesBwd => "server's TCP window (bytes, last seen)",
        ActDataPktFwd => "client→server packets carrying data",
        MinSegSizeFwd => "smallest client→server TCP header (bytes)",
        ActiveMean => "mean active period (µs)",
        ActiveStd => "spread of active periods (µs, std)",
        ActiveMax => "longest active period (µs)",
        ActiveMin => "shortest active period (µs)",
        IdleMean => "mean idle period (µs)",
        IdleStd => "spread of idle periods (µs, std)",
        IdleMax => "longest idle period (µs)",
        IdleMin => "shortest idle period (µs)",
        IcmpCode => "ICMP code",
        IcmpType => "ICMP type",
        TotalTcpFlowTime => "TCP connection time across flow splits (µs)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURES;

    #[test]
    fn every_feature_has_a_distinct_label() {
        let mut seen = std::collections::HashMap::new();
        for d in FEATURES.iter() {
            let l = label(d.id);
            assert!(!l.is_empty());
            if let Some(prev) = seen.insert(l, d.id) {
                // Two names for one quantity in the schema (segment size avg = length mean).
                assert!(
                    matches!(
                        (prev, d.id),
                        (Feature::FwdPktLenMean, Feature::AvgFwdSegmentSize)
                            | (Feature::BwdPktLenMean, Feature::AvgBwdSegmentSize)
                    ),
                    "{prev:?} and {:?} share {l:?}",
                    d.id
                );
            }
        }
    }
}
