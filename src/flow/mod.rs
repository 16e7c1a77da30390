//! Stage 3: flow. Decoded packets ([`crate::decode::PacketMeta`]) become bidirectional flows:
//! the key ([`key`]), the per-flow accumulators ([`state`]), and the table with its lifecycle,
//! expiry and cap ([`table`]). Finished flows leave as [`crate::features::FlowRecord`]s.

pub mod ahead;
pub mod community_id;
pub mod index;
pub mod key;
pub mod open;
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
/// Default linger of a closed TCP flow (FIN from both sides then the final ACK, or an RST)
/// before it ends: late packets (retransmitted FIN/ACK) still join it, and the flow is scored
/// seconds after the connection closed instead of at the flow timeout (µs).
pub const TCP_LINGER_US: i64 = 2_000_000;

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
    /// How long a closed TCP flow waits for late packets before it ends ([`TCP_LINGER_US`]).
    pub tcp_linger_us: i64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            flow_timeout_us: FLOW_TIMEOUT_US,
            activity_timeout_us: ACTIVITY_TIMEOUT_US,
            max_flows: MAX_FLOWS,
            compat: Compat::Corrected,
            tcp_linger_us: TCP_LINGER_US,
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
    /// Ended by TCP teardown (FIN/RST, or a new SYN after the teardown), including those
    /// ended by the linger after the teardown.
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

/// A new flow's first packet, as the host context sees it: `src` is the packet's sender (for a
/// flow opened by a SYN-ACK that is the server, although the flow's forward side is the
/// client). Plain data for [`FlowSink::started`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStart {
    pub ts_us: i64,
    pub src_ip: std::net::IpAddr,
    pub dst_ip: std::net::IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// TCP flags of the first packet (0 for other transports).
    pub tcp_flags: u8,
}

/// The first packet from the side that had sent nothing yet: the opener got an answer.
/// `responder_*` is that packet's source, `opener_ip` its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowReply {
    pub ts_us: i64,
    pub opener_ip: std::net::IpAddr,
    pub responder_ip: std::net::IpAddr,
    pub responder_port: u16,
    pub protocol: u8,
    /// TCP flags of the reply (an RST here means the connection was refused).
    pub tcp_flags: u8,
}

/// A TCP connection closed (FIN both ways and the last ACK, or a reset): the flow ends when
/// its linger has passed, but the connection is no longer held from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowClose {
    /// The flow's first packet, and the packet that closed it.
    pub start_us: i64,
    pub ts_us: i64,
    /// The flow's forward side (it sent the first packet).
    pub opener_ip: std::net::IpAddr,
    pub responder_ip: std::net::IpAddr,
    pub responder_port: u16,
    /// The responder has sent a packet (the flow record will count backward packets).
    pub answered: bool,
}

/// A flow's packet count reached a power of two from [`VOLUME_FIRST`] on (1,024, 2,048, …): the
/// packet-flood rule (`src/host/volume.rs`) judges one-flow floods while they last instead of
/// when the flow ends, up to two minutes later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowVolume {
    pub start_us: i64,
    pub ts_us: i64,
    /// The flow's forward side (it sent the first packet) and where it sent it.
    pub opener_ip: std::net::IpAddr,
    pub responder_ip: std::net::IpAddr,
    pub responder_port: u16,
    pub protocol: u8,
    /// Packets so far, both directions, and of those from the responder.
    pub packets: u64,
    pub bwd_packets: u64,
}

/// The first packet count at which [`FlowVolume`] is reported.
pub const VOLUME_FIRST: u64 = 1024;

/// Where the flow table hands what it sees: finished flows, and (for the host context) flow
/// starts and first replies the moment they happen. A closure `FnMut(FlowRecord)` is a sink
/// that ignores starts and replies.
pub trait FlowSink {
    fn ended(&mut self, r: crate::features::FlowRecord);
    fn started(&mut self, _s: &FlowStart) {}
    fn replied(&mut self, _r: &FlowReply) {}
    /// Not called in `compat = "cic2017"`, where the first FIN or RST ends the flow at once.
    fn closed(&mut self, _c: &FlowClose) {}
    fn volume(&mut self, _v: &FlowVolume) {}
    /// A hint, a few packets ahead ([`ahead`]): this packet will probably start a flow (no
    /// open flow has its key hash), so a sink may prefetch what [`FlowSink::started`] will
    /// read: first (`close` false) the lines it reads first, then, nearer its turn, the lines
    /// found through those. Changes nothing.
    fn coming(&self, _p: &crate::decode::PacketMeta, _close: bool) {}
}

impl<F: FnMut(crate::features::FlowRecord)> FlowSink for F {
    fn ended(&mut self, r: crate::features::FlowRecord) {
        self(r)
    }
}
