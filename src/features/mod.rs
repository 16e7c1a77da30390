//! Stage 4: features. The CIC feature schema (names and order, defined once in [`schema`]) and
//! the finished flow, [`FlowRecord`], that the flow table hands to the scorer, the CSV writer and
//! the alert sinks.

pub mod csv_out;
pub mod dataset;
pub mod events;
pub mod schema;

pub use schema::{Column, ColumnSet, FEATURES, Feature, FeatureDef, Kind, NUM_FEATURES};

use std::net::IpAddr;

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Flow timeout (from the flow's first packet) passed.
    Timeout,
    /// TCP teardown (FIN handshake or RST, per the compatibility mode).
    TcpClose,
    /// The table was full and this was the oldest flow.
    Evicted,
    /// End of input or shutdown: flushed while still open.
    Flushed,
    /// An ICMP flow whose type and code both changed (the reference starts a new flow).
    IcmpChange,
}

/// A finished bidirectional flow: identifiers plus every feature value.
///
/// "Forward" is the direction of the flow's first packet: `src_*` is that packet's source.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRecord {
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// First packet time, µs since the Unix epoch (UTC).
    pub start_us: i64,
    /// Last packet time, µs since the Unix epoch (UTC).
    pub end_us: i64,
    pub end_reason: EndReason,
    /// Whole frames' bytes as captured on the wire (link header included, pcap `orig_len`),
    /// forward then backward: what Suricata's EVE `bytes_toserver`/`bytes_toclient` count. The
    /// features count transport payload bytes instead.
    pub frame_bytes: [u64; 2],
    /// Indexed by `Feature as usize`.
    pub values: [f64; NUM_FEATURES],
}

impl FlowRecord {
    /// A record of feature values that come without a flow (a CSV row, a test, a benchmark):
    /// identifiers are placeholders (0.0.0.0:0 → 0.0.0.0:0, protocol 0, time 0).
    pub fn from_values(values: [f64; NUM_FEATURES]) -> FlowRecord {
        FlowRecord {
            src_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dst_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            start_us: 0,
            end_us: 0,
            end_reason: EndReason::Flushed,
            frame_bytes: [0, 0],
            values,
        }
    }

    /// The value of one feature.
    pub fn get(&self, f: Feature) -> f64 {
        self.values[f as usize]
    }

    /// CICFlowMeter's Flow ID: `srcip-dstip-srcport-dstport-proto`, forward direction.
    pub fn flow_id(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.src_ip, self.dst_ip, self.src_port, self.dst_port, self.protocol
        )
    }
}
