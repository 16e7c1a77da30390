//! The CICFlowMeter feature schema: every feature id, its spelling in the original CIC-IDS2017
//! CSVs ("cic2017", TrafficLabelling layout) and in CICFlowMeter-4 ("cfm4", CSE-CIC-IDS2018 and the
//! improved CIC-IDS2017), and the column order of both layouts.
//!
//! This table is the only place in flowsentry that lists feature names. The CSV writer, the CSV
//! reader used by `train`/`score`/`evaluate`, the model loader and the alert formatter all go
//! through it.

use std::fmt;

/// One numeric value of a flow. `Feature as usize` indexes [`crate::features::FlowRecord::values`].
///
/// The first three are identifier columns that models may also use as numbers (ports, protocol);
/// they are written in the identifier block of a CSV, not in the feature block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Feature {
    SrcPort,
    DstPort,
    Protocol,
    FlowDuration,
    TotalFwdPackets,
    TotalBwdPackets,
    TotalLenFwdPackets,
    TotalLenBwdPackets,
    FwdPktLenMax,
    FwdPktLenMin,
    FwdPktLenMean,
    FwdPktLenStd,
    BwdPktLenMax,
    BwdPktLenMin,
    BwdPktLenMean,
    BwdPktLenStd,
    FlowBytesPerSec,
    FlowPacketsPerSec,
    FlowIatMean,
    FlowIatStd,
    FlowIatMax,
    FlowIatMin,
    FwdIatTotal,
    FwdIatMean,
    FwdIatStd,
    FwdIatMax,
    FwdIatMin,
    BwdIatTotal,
    BwdIatMean,
    BwdIatStd,
    BwdIatMax,
    BwdIatMin,
    FwdPshFlags,
    BwdPshFlags,
    FwdUrgFlags,
    BwdUrgFlags,
    FwdRstFlags,
    BwdRstFlags,
    FwdHeaderLength,
    BwdHeaderLength,
    FwdPacketsPerSec,
    BwdPacketsPerSec,
    PktLenMin,
    PktLenMax,
    PktLenMean,
    PktLenStd,
    PktLenVariance,
    FinFlagCount,
    SynFlagCount,
    RstFlagCount,
    PshFlagCount,
    AckFlagCount,
    UrgFlagCount,
    CwrFlagCount,
    EceFlagCount,
    DownUpRatio,
    AvgPacketSize,
    AvgFwdSegmentSize,
    AvgBwdSegmentSize,
    FwdAvgBytesPerBulk,
    FwdAvgPacketsPerBulk,
    FwdAvgBulkRate,
    BwdAvgBytesPerBulk,
    BwdAvgPacketsPerBulk,
    BwdAvgBulkRate,
    SubflowFwdPackets,
    SubflowFwdBytes,
    SubflowBwdPackets,
    SubflowBwdBytes,
    InitWinBytesFwd,
    InitWinBytesBwd,
    ActDataPktFwd,
    MinSegSizeFwd,
    ActiveMean,
    ActiveStd,
    ActiveMax,
    ActiveMin,
    IdleMean,
    IdleStd,
    IdleMax,
    IdleMin,
    IcmpCode,
    IcmpType,
    TotalTcpFlowTime,
}

/// Number of [`Feature`] ids (identifier numbers included).
pub const NUM_FEATURES: usize = Feature::TotalTcpFlowTime as usize + 1;

/// How a value is written in a CSV cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (written without a decimal point, like the reference's `long` columns).
    Integer,
    /// A real number (written like Java's `double`: `74.5`, `0.0`, `Infinity`, `NaN`).
    Real,
}

/// One row of the schema table.
#[derive(Clone, Copy, Debug)]
pub struct FeatureDef {
    pub id: Feature,
    /// Spelling in the original CIC-IDS2017 CSVs, leading space included; `None` if absent there.
    pub cic2017: Option<&'static str>,
    /// Spelling in CICFlowMeter-4 / improved CIC-IDS2017; `None` if absent there.
    pub cfm4: Option<&'static str>,
    pub kind: Kind,
}

const fn def(
    id: Feature,
    cic2017: Option<&'static str>,
    cfm4: Option<&'static str>,
    kind: Kind,
) -> FeatureDef {
    FeatureDef {
        id,
        cic2017,
        cfm4,
        kind,
    }
}

use Feature as F;
use Kind::{Integer as I, Real as R};

/// The schema table, one row per [`Feature`], in [`Feature`] order (checked by a test).
pub const FEATURES: [FeatureDef; NUM_FEATURES] = [
    def(F::SrcPort, Some(" Source Port"), Some("Src Port"), I),
    def(F::DstPort, Some(" Destination Port"), Some("Dst Port"), I),
    def(F::Protocol, Some(" Protocol"), Some("Protocol"), I),
    def(
        F::FlowDuration,
        Some(" Flow Duration"),
        Some("Flow Duration"),
        I,
    ),
    def(
        F::TotalFwdPackets,
        Some(" Total Fwd Packets"),
        Some("Total Fwd Packet"),
        I,
    ),
    def(
        F::TotalBwdPackets,
        Some(" Total Backward Packets"),
        Some("Total Bwd packets"),
        I,
    ),
    def(
        F::TotalLenFwdPackets,
        Some("Total Length of Fwd Packets"),
        Some("Total Length of Fwd Packet"),
        I,
    ),
    def(
        F::TotalLenBwdPackets,
        Some(" Total Length of Bwd Packets"),
        Some("Total Length of Bwd Packet"),
        I,
    ),
    def(
        F::FwdPktLenMax,
        Some(" Fwd Packet Length Max"),
        Some("Fwd Packet Length Max"),
        I,
    ),
    def(
        F::FwdPktLenMin,
        Some(" Fwd Packet Length Min"),
        Some("Fwd Packet Length Min"),
        I,
    ),
    def(
        F::FwdPktLenMean,
        Some(" Fwd Packet Length Mean"),
        Some("Fwd Packet Length Mean"),
        R,
    ),
    def(
        F::FwdPktLenStd,
        Some(" Fwd Packet Length Std"),
        Some("Fwd Packet Length Std"),
        R,
    ),
    def(
        F::BwdPktLenMax,
        Some("Bwd Packet Length Max"),
        Some("Bwd Packet Length Max"),
        I,
    ),
    def(
        F::BwdPktLenMin,
        Some(" Bwd Packet Length Min"),
        Some("Bwd Packet Length Min"),
        I,
    ),
    def(
        F::BwdPktLenMean,
        Some(" Bwd Packet Length Mean"),
        Some("Bwd Packet Length Mean"),
        R,
    ),
    def(
        F::BwdPktLenStd,
        Some(" Bwd Packet Length Std"),
        Some("Bwd Packet Length Std"),
        R,
    ),
    def(
        F::FlowBytesPerSec,
        Some("Flow Bytes/s"),
        Some("Flow Bytes/s"),
        R,
    ),
    def(
        F::FlowPacketsPerSec,
        Some(" Flow Packets/s"),
        Some("Flow Packets/s"),
        R,
    ),
    def(
        F::FlowIatMean,
        Some(" Flow IAT Mean"),
        Some("Flow IAT Mean"),
        R,
    ),
    def(
        F::FlowIatStd,
        Some(" Flow IAT Std"),
        Some("Flow IAT Std"),
        R,
    ),
    def(
        F::FlowIatMax,
        Some(" Flow IAT Max"),
        Some("Flow IAT Max"),
        I,
    ),
    def(
        F::FlowIatMin,
        Some(" Flow IAT Min"),
        Some("Flow IAT Min"),
        I,
    ),
    def(
        F::FwdIatTotal,
        Some("Fwd IAT Total"),
        Some("Fwd IAT Total"),
        I,
    ),
    def(
        F::FwdIatMean,
        Some(" Fwd IAT Mean"),
        Some("Fwd IAT Mean"),
        R,
    ),
    def(F::FwdIatStd, Some(" Fwd IAT Std"), Some("Fwd IAT Std"), R),
    def(F::FwdIatMax, Some(" Fwd IAT Max"), Some("Fwd IAT Max"), I),
    def(F::FwdIatMin, Some(" Fwd IAT Min"), Some("Fwd IAT Min"), I),
    def(
        F::BwdIatTotal,
        Some("Bwd IAT Total"),
        Some("Bwd IAT Total"),
        I,
    ),
    def(
        F::BwdIatMean,
        Some(" Bwd IAT Mean"),
        Some("Bwd IAT Mean"),
        R,
    ),
    def(F::BwdIatStd, Some(" Bwd IAT Std"), Some("Bwd IAT Std"), R),
    def(F::BwdIatMax, Some(" Bwd IAT Max"), Some("Bwd IAT Max"), I),
    def(F::BwdIatMin, Some(" Bwd IAT Min"), Some("Bwd IAT Min"), I),
    def(
        F::FwdPshFlags,
        Some("Fwd PSH Flags"),
        Some("Fwd PSH Flags"),
        I,
    ),
    def(
        F::BwdPshFlags,
        Some(" Bwd PSH Flags"),
        Some("Bwd PSH Flags"),
        I,
    ),
    def(
        F::FwdUrgFlags,
        Some(" Fwd URG Flags"),
        Some("Fwd URG Flags"),
        I,
    ),
    def(
        F::BwdUrgFlags,
        Some(" Bwd URG Flags"),
        Some("Bwd URG Flags"),
        I,
    ),
    def(F::FwdRstFlags, None, Some("Fwd RST Flags"), I),
    def(F::BwdRstFlags, None, Some("Bwd RST Flags"), I),
    def(
        F::FwdHeaderLength,
        Some(" Fwd Header Length"),
        Some("Fwd Header Length"),
        I,
    ),
    def(
        F::BwdHeaderLength,
        Some(" Bwd Header Length"),
        Some("Bwd Header Length"),
        I,
    ),
    def(
        F::FwdPacketsPerSec,
        Some("Fwd Packets/s"),
        Some("Fwd Packets/s"),
        R,
    ),
    def(
        F::BwdPacketsPerSec,
        Some(" Bwd Packets/s"),
        Some("Bwd Packets/s"),
        R,
    ),
    def(
        F::PktLenMin,
        Some(" Min Packet Length"),
        Some("Packet Length Min"),
        I,
    ),
    def(
        F::PktLenMax,
        Some(" Max Packet Length"),
        Some("Packet Length Max"),
        I,
    ),
    def(
        F::PktLenMean,
        Some(" Packet Length Mean"),
        Some("Packet Length Mean"),
        R,
    ),
    def(
        F::PktLenStd,
        Some(" Packet Length Std"),
        Some("Packet Length Std"),
        R,
    ),
    def(
        F::PktLenVariance,
        Some(" Packet Length Variance"),
        Some("Packet Length Variance"),
        R,
    ),
    def(
        F::FinFlagCount,
        Some("FIN Flag Count"),
        Some("FIN Flag Count"),
        I,
    ),
    def(
        F::SynFlagCount,
        Some(" SYN Flag Count"),
        Some("SYN Flag Count"),
        I,
    ),
    def(
        F::RstFlagCount,
        Some(" RST Flag Count"),
        Some("RST Flag Count"),
        I,
    ),
    def(
        F::PshFlagCount,
        Some(" PSH Flag Count"),
        Some("PSH Flag Count"),
        I,
    ),
    def(
        F::AckFlagCount,
        Some(" ACK Flag Count"),
        Some("ACK Flag Count"),
        I,
    ),
    def(
        F::UrgFlagCount,
        Some(" URG Flag Count"),
        Some("URG Flag Count"),
        I,
    ),
    def(
        F::CwrFlagCount,
        Some(" CWE Flag Count"),
        Some("CWR Flag Count"),
        I,
    ),
    def(
        F::EceFlagCount,
        Some(" ECE Flag Count"),
        Some("ECE Flag Count"),
        I,
    ),
    def(
        F::DownUpRatio,
        Some(" Down/Up Ratio"),
        Some("Down/Up Ratio"),
        R,
    ),
    def(
        F::AvgPacketSize,
        Some(" Average Packet Size"),
        Some("Average Packet Size"),
        R,
    ),
    def(
        F::AvgFwdSegmentSize,
        Some(" Avg Fwd Segment Size"),
        Some("Fwd Segment Size Avg"),
        R,
    ),
    def(
        F::AvgBwdSegmentSize,
        Some(" Avg Bwd Segment Size"),
        Some("Bwd Segment Size Avg"),
        R,
    ),
    def(
        F::FwdAvgBytesPerBulk,
        Some("Fwd Avg Bytes/Bulk"),
        Some("Fwd Bytes/Bulk Avg"),
        I,
    ),
    def(
        F::FwdAvgPacketsPerBulk,
        Some(" Fwd Avg Packets/Bulk"),
        Some("Fwd Packet/Bulk Avg"),
        I,
    ),
    def(
        F::FwdAvgBulkRate,
        Some(" Fwd Avg Bulk Rate"),
        Some("Fwd Bulk Rate Avg"),
        I,
    ),
    def(
        F::BwdAvgBytesPerBulk,
        Some(" Bwd Avg Bytes/Bulk"),
        Some("Bwd Bytes/Bulk Avg"),
        I,
    ),
    def(
        F::BwdAvgPacketsPerBulk,
        Some(" Bwd Avg Packets/Bulk"),
        Some("Bwd Packet/Bulk Avg"),
        I,
    ),
    def(
        F::BwdAvgBulkRate,
        Some("Bwd Avg Bulk Rate"),
        Some("Bwd Bulk Rate Avg"),
        I,
    ),
    def(
        F::SubflowFwdPackets,
        Some("Subflow Fwd Packets"),
        Some("Subflow Fwd Packets"),
        I,
    ),
    def(
        F::SubflowFwdBytes,
        Some(" Subflow Fwd Bytes"),
        Some("Subflow Fwd Bytes"),
        I,
    ),
    def(
        F::SubflowBwdPackets,
        Some(" Subflow Bwd Packets"),
        Some("Subflow Bwd Packets"),
        I,
    ),
    def(
        F::SubflowBwdBytes,
        Some(" Subflow Bwd Bytes"),
        Some("Subflow Bwd Bytes"),
        I,
    ),
    def(
        F::InitWinBytesFwd,
        Some("Init_Win_bytes_forward"),
        Some("FWD Init Win Bytes"),
        I,
    ),
    def(
        F::InitWinBytesBwd,
        Some(" Init_Win_bytes_backward"),
        Some("Bwd Init Win Bytes"),
        I,
    ),
    def(
        F::ActDataPktFwd,
        Some(" act_data_pkt_fwd"),
        Some("Fwd Act Data Pkts"),
        I,
    ),
    def(
        F::MinSegSizeFwd,
        Some(" min_seg_size_forward"),
        Some("Fwd Seg Size Min"),
        I,
    ),
    def(F::ActiveMean, Some("Active Mean"), Some("Active Mean"), R),
    def(F::ActiveStd, Some(" Active Std"), Some("Active Std"), R),
    def(F::ActiveMax, Some(" Active Max"), Some("Active Max"), I),
    def(F::ActiveMin, Some(" Active Min"), Some("Active Min"), I),
    def(F::IdleMean, Some("Idle Mean"), Some("Idle Mean"), R),
    def(F::IdleStd, Some(" Idle Std"), Some("Idle Std"), R),
    def(F::IdleMax, Some(" Idle Max"), Some("Idle Max"), I),
    def(F::IdleMin, Some(" Idle Min"), Some("Idle Min"), I),
    def(F::IcmpCode, None, Some("ICMP Code"), I),
    def(F::IcmpType, None, Some("ICMP Type"), I),
    def(F::TotalTcpFlowTime, None, Some("Total TCP Flow Time"), I),
];

impl Feature {
    /// Every feature id, in schema order.
    pub fn all() -> impl Iterator<Item = Feature> {
        FEATURES.iter().map(|d| d.id)
    }

    /// The schema row of this feature.
    pub fn def(self) -> &'static FeatureDef {
        &FEATURES[self as usize]
    }

    /// True for the identifier numbers (ports, protocol), which sit in a CSV's identifier block.
    pub fn is_identifier(self) -> bool {
        matches!(self, F::SrcPort | F::DstPort | F::Protocol)
    }

    /// Canonical name: the CICFlowMeter-4 spelling (every feature has one).
    pub fn name(self) -> &'static str {
        self.def().cfm4.unwrap_or("")
    }

    /// Looks a column name up in either spelling: surrounding white space and ASCII case are
    /// ignored, and pandas' `Fwd Header Length.1` (the duplicated column) is accepted.
    pub fn from_name(name: &str) -> Option<Feature> {
        let n = name.trim();
        let n = if n.eq_ignore_ascii_case("Fwd Header Length.1") {
            "Fwd Header Length"
        } else {
            n
        };
        FEATURES.iter().find_map(|d| {
            let hit = |s: Option<&str>| s.is_some_and(|s| s.trim().eq_ignore_ascii_case(n));
            (hit(d.cic2017) || hit(d.cfm4)).then_some(d.id)
        })
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two CSV layouts flowsentry writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColumnSet {
    /// Original CIC-IDS2017 "TrafficLabelling" header (leading spaces and the duplicated
    /// `Fwd Header Length` included).
    #[default]
    Cic2017,
    /// CICFlowMeter-4 names (CSE-CIC-IDS2018, improved CIC-IDS2017), with the RST, ICMP and
    /// TCP-flow-time columns.
    Cfm4,
}

/// One column of a written CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    FlowId,
    SrcIp,
    DstIp,
    Timestamp,
    /// A numeric value (identifier numbers included).
    Value(Feature),
    Label,
}

impl ColumnSet {
    /// Columns in written order. The label column is appended only when `with_label`.
    pub fn columns(self, with_label: bool) -> Vec<Column> {
        let mut cols = vec![
            Column::FlowId,
            Column::SrcIp,
            Column::Value(F::SrcPort),
            Column::DstIp,
            Column::Value(F::DstPort),
            Column::Value(F::Protocol),
            Column::Timestamp,
        ];
        for d in FEATURES.iter().filter(|d| !d.id.is_identifier()) {
            let present = match self {
                ColumnSet::Cic2017 => d.cic2017.is_some(),
                ColumnSet::Cfm4 => d.cfm4.is_some(),
            };
            if present {
                cols.push(Column::Value(d.id));
            }
            // The original dataset repeats Fwd Header Length after Avg Bwd Segment Size.
            if self == ColumnSet::Cic2017 && d.id == F::AvgBwdSegmentSize {
                cols.push(Column::Value(F::FwdHeaderLength));
            }
        }
        if with_label {
            cols.push(Column::Label);
        }
        cols
    }

    /// The header cell of a column in this layout.
    pub fn name(self, col: Column) -> &'static str {
        match (self, col) {
            (ColumnSet::Cic2017, Column::FlowId) | (ColumnSet::Cfm4, Column::FlowId) => "Flow ID",
            (ColumnSet::Cic2017, Column::SrcIp) => " Source IP",
            (ColumnSet::Cfm4, Column::SrcIp) => "Src IP",
            (ColumnSet::Cic2017, Column::DstIp) => " Destination IP",
            (ColumnSet::Cfm4, Column::DstIp) => "Dst IP",
            (ColumnSet::Cic2017, Column::Timestamp) => " Timestamp",
            (ColumnSet::Cfm4, Column::Timestamp) => "Timestamp",
            (ColumnSet::Cic2017, Column::Label) => " Label",
            (ColumnSet::Cfm4, Column::Label) => "Label",
            (ColumnSet::Cic2017, Column::Value(f)) => f.def().cic2017.unwrap_or(""),
            (ColumnSet::Cfm4, Column::Value(f)) => f.def().cfm4.unwrap_or(""),
        }
    }

    /// The header row.
    pub fn header(self, with_label: bool) -> Vec<&'static str> {
        self.columns(with_label)
            .into_iter()
            .map(|c| self.name(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (i, d) in FEATURES.iter().enumerate() {
            assert_eq!(d.id as usize, i, "{:?} out of place", d.id);
        }
    }

    #[test]
    fn cic2017_header_matches_the_dataset() {
        let h = ColumnSet::Cic2017.header(true);
        assert_eq!(
            h.len(),
            85,
            "7 identifiers + 77 features (duplicate included) + Label"
        );
        assert_eq!(h[0], "Flow ID");
        assert_eq!(h[7], " Flow Duration");
        assert_eq!(h.iter().filter(|c| **c == " Fwd Header Length").count(), 2);
        assert_eq!(h[84], " Label");
    }

    #[test]
    fn cfm4_header_matches_the_improved_dataset() {
        // The improved CIC-IDS2017 header without its `id` and `Attempted Category` columns.
        let improved = "Flow ID,Src IP,Src Port,Dst IP,Dst Port,Protocol,Timestamp,Flow Duration,Total Fwd Packet,Total Bwd packets,Total Length of Fwd Packet,Total Length of Bwd Packet,Fwd Packet Length Max,Fwd Packet Length Min,Fwd Packet Length Mean,Fwd Packet Length Std,Bwd Packet Length Max,Bwd Packet Length Min,Bwd Packet Length Mean,Bwd Packet Length Std,Flow Bytes/s,Flow Packets/s,Flow IAT Mean,Flow IAT Std,Flow IAT Max,Flow IAT Min,Fwd IAT Total,Fwd IAT Mean,Fwd IAT Std,Fwd IAT Max,Fwd IAT Min,Bwd IAT Total,Bwd IAT Mean,Bwd IAT Std,Bwd IAT Max,Bwd IAT Min,Fwd PSH Flags,Bwd PSH Flags,Fwd URG Flags,Bwd URG Flags,Fwd RST Flags,Bwd RST Flags,Fwd Header Length,Bwd Header Length,Fwd Packets/s,Bwd Packets/s,Packet Length Min,Packet Length Max,Packet Length Mean,Packet Length Std,Packet Length Variance,FIN Flag Count,SYN Flag Count,RST Flag Count,PSH Flag Count,ACK Flag Count,URG Flag Count,CWR Flag Count,ECE Flag Count,Down/Up Ratio,Average Packet Size,Fwd Segment Size Avg,Bwd Segment Size Avg,Fwd Bytes/Bulk Avg,Fwd Packet/Bulk Avg,Fwd Bulk Rate Avg,Bwd Bytes/Bulk Avg,Bwd Packet/Bulk Avg,Bwd Bulk Rate Avg,Subflow Fwd Packets,Subflow Fwd Bytes,Subflow Bwd Packets,Subflow Bwd Bytes,FWD Init Win Bytes,Bwd Init Win Bytes,Fwd Act Data Pkts,Fwd Seg Size Min,Active Mean,Active Std,Active Max,Active Min,Idle Mean,Idle Std,Idle Max,Idle Min,ICMP Code,ICMP Type,Total TCP Flow Time,Label";
        let expected: Vec<&str> = improved.split(',').collect();
        assert_eq!(ColumnSet::Cfm4.header(true), expected);
    }

    #[test]
    fn names_resolve_in_both_spellings() {
        assert_eq!(
            Feature::from_name(" Total Backward Packets"),
            Some(F::TotalBwdPackets)
        );
        assert_eq!(
            Feature::from_name("Total Bwd packets"),
            Some(F::TotalBwdPackets)
        );
        assert_eq!(
            Feature::from_name("Fwd Header Length.1"),
            Some(F::FwdHeaderLength)
        );
        assert_eq!(Feature::from_name("CWE Flag Count"), Some(F::CwrFlagCount));
        assert_eq!(Feature::from_name(" Destination Port"), Some(F::DstPort));
        assert_eq!(Feature::from_name("no such column"), None);
        for f in Feature::all() {
            assert_eq!(Feature::from_name(f.name()), Some(f));
        }
    }
}
