//! Stage 3: flow. Decoded packets ([`crate::decode::PacketMeta`]) become bidirectional flows:
//! the key ([`key`]), the per-flow accumulators ([`state`]), and the table with its lifecycle,
//! expiry and cap ([`table`]). Finished flows leave as [`crate::features::FlowRecord`]s.

pub mod key;
pub mod state;
pub mod stats;
pub mod table;

pub use key::FlowKey;
pub use table::FlowTable;

/// Default flow timeout, measured from a flow's first packet (µs).
pub const FLOW_TIMEOUT_US: i64 = 120_000_000;
/// Default activity timeout separating active and idle periods (µs).
pub const ACTIVITY_TIMEOUT_US: i64 = 5_000_000;
/// Default cap on open flows.
pub const MAX_FLOWS: usize = 1_000_000;

/// Which CICFlowMeter behaviour to reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compat {
    /// The corrected CICFlowMeter (Engelen et al.) that produced the improved CIC-IDS2017:
    /// TCP flows end after the full FIN/ACK teardown (or RST) when the next SYN or the flow
    /// timeout comes.
    #[default]
    Corrected,
    /// The original tool of CIC-IDS2017: the first FIN or any RST ends the flow; single-packet
    /// flows are dropped at timeout; Down/Up Ratio is an integer division; rates of zero-length
    /// flows are `Infinity`/`NaN`.
    Cic2017,
}

/// TCP teardown progress (corrected mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpState {
    #[default]
    Open,
    FirstFin,
    SecondFin,
    ReadyForTermination,
}

/// Flow table settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    pub flow_timeout_us: i64,
    pub activity_timeout_us: i64,
    pub max_flows: usize,
    pub compat: Compat,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            flow_timeout_us: FLOW_TIMEOUT_US,
            activity_timeout_us: ACTIVITY_TIMEOUT_US,
            max_flows: MAX_FLOWS,
            compat: Compat::Corrected,
        }
    }
}

/// Counters of a flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Open now.
    pub active: u64,
    pub created: u64,
    /// Ended by the flow timeout.
    pub expired: u64,
    /// Ended by TCP teardown (FIN/RST, or a new SYN after the teardown).
    pub closed_tcp: u64,
    /// Ended early because the table was full.
    pub evicted: u64,
    /// Ended by end of input or shutdown.
    pub flushed: u64,
    /// ICMP flows split by a type and code change.
    pub icmp_splits: u64,
    /// Packets whose timestamp preceded their flow's last packet.
    pub out_of_order: u64,
    /// Single-packet flows dropped at timeout (`Compat::Cic2017` only).
    pub dropped_single: u64,
}
