//! Per-flow accumulators: everything the CICFlowMeter features need, updated per packet in
//! O(1) time and memory (no per-packet lists), and finalised into a [`FlowRecord`].
//!
//! The arithmetic follows the corrected CICFlowMeter (GintsEngelen/CICFlowMeter) at the version
//! that produced the improved CIC-IDS2017 rows; see the README's feature reference for every
//! place where it differs from the original tool or from a literal reading of the names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::key::Endpoint;
use super::stats::Stats;
use super::{Compat, TcpState};
use crate::decode::{PacketMeta, tcp_flags as tf};
use crate::features::{EndReason, Feature as F, FlowRecord, NUM_FEATURES};

/// A gap longer than this ends a bulk run (µs).
const BULK_GAP_US: i64 = 1_000_000;
/// Data packets in one direction that make a bulk.
const BULK_MIN_PACKETS: u64 = 4;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// Bulk accumulator of one direction.
#[derive(Clone, Copy, Debug, Default)]
struct Bulk {
    duration_us: i64,
    packets: u64,
    bytes: u64,
    count: u64,
    run_packets: u64,
    run_start_us: i64,
    run_bytes: u64,
    last_us: i64,
}

impl Bulk {
    /// `other_last_us` is the time of the other direction's last bulk packet: data from the
    /// other side breaks a run.
    fn update(&mut self, ts: i64, size: u64, other_last_us: i64) {
        if other_last_us > self.run_start_us {
            self.run_start_us = 0;
        }
        if size == 0 {
            return;
        }
        if self.run_start_us == 0 || ts - self.last_us > BULK_GAP_US {
            self.run_start_us = ts;
            self.last_us = ts;
            self.run_packets = 1;
            self.run_bytes = size;
            return;
        }
        self.run_packets += 1;
        self.run_bytes += size;
        if self.run_packets == BULK_MIN_PACKETS {
            self.count += 1;
            self.packets += self.run_packets;
            self.bytes += self.run_bytes;
            self.duration_us += ts - self.run_start_us;
        } else if self.run_packets > BULK_MIN_PACKETS {
            self.packets += 1;
            self.bytes += size;
            self.duration_us += ts - self.last_us;
        }
        self.last_us = ts;
    }

    fn avg_bytes(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.bytes as f64 / self.count as f64
        }
    }
    fn avg_packets(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.packets as f64 / self.count as f64
        }
    }
    fn rate(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.bytes as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

/// Per-direction counters.
#[derive(Clone, Copy, Debug, Default)]
struct Dir {
    len: Stats,
    iat: Stats,
    last_us: i64,
    bytes: u64,
    /// Whole frames (EVE's byte count).
    frame_bytes: u64,
    header_bytes: u64,
    psh: u32,
    urg: u32,
    rst: u32,
    fin: u32,
    act_data: u64,
    min_seg: u32,
}

/// The state of one open flow.
#[derive(Clone, Debug)]
pub struct FlowState {
    /// Generation number, unique per flow in a table (for lazy expiry bookkeeping).
    pub(crate) id: u64,
    /// The forward (first-packet source) endpoint is the key's `lo` endpoint.
    pub(crate) fwd_is_lo: bool,
    src: Endpoint,
    dst: Endpoint,
    v4: bool,
    protocol: u8,
    pub(crate) start_us: i64,
    pub(crate) last_us: i64,
    fwd: Dir,
    bwd: Dir,
    all_len: Stats,
    flow_iat: Stats,
    active: Stats,
    idle: Stats,
    start_active_us: i64,
    end_active_us: i64,
    fwd_bulk: Bulk,
    bwd_bulk: Bulk,
    flags: [u32; 8],
    init_win_fwd: u16,
    init_win_bwd: u16,
    icmp_code: i16,
    icmp_type: i16,
    pub(crate) tcp: TcpState,
    /// Total TCP Flow Time carried over from earlier parts of the same connection (µs).
    pub(crate) cumulative_us: i64,
}

impl FlowState {
    /// Starts a flow with its first packet. `pkt_is_fwd` says whether the packet travels in the
    /// flow's forward direction (false when a SYN-ACK opens the flow: forward is then the
    /// client, the packet's destination).
    pub fn new(id: u64, p: &PacketMeta, pkt_is_fwd: bool, fwd_is_lo: bool) -> FlowState {
        let (a, b) = (
            Endpoint::new(p.src_ip, p.src_port),
            Endpoint::new(p.dst_ip, p.dst_port),
        );
        let (src, dst) = if pkt_is_fwd { (a, b) } else { (b, a) };
        let icmp = matches!(p.protocol, IPPROTO_ICMP | IPPROTO_ICMPV6);
        let mut s = FlowState {
            id,
            fwd_is_lo,
            src,
            dst,
            v4: p.src_ip.is_ipv4(),
            protocol: p.protocol,
            start_us: p.ts_us,
            last_us: p.ts_us,
            fwd: Dir::default(),
            bwd: Dir::default(),
            all_len: Stats::default(),
            flow_iat: Stats::default(),
            active: Stats::default(),
            idle: Stats::default(),
            start_active_us: p.ts_us,
            end_active_us: p.ts_us,
            fwd_bulk: Bulk::default(),
            bwd_bulk: Bulk::default(),
            flags: [0; 8],
            init_win_fwd: 0,
            init_win_bwd: 0,
            icmp_code: if icmp { i16::from(p.icmp_code) } else { -1 },
            icmp_type: if icmp { i16::from(p.icmp_type) } else { -1 },
            tcp: TcpState::Open,
            cumulative_us: 0,
        };
        s.update_bulk(p, pkt_is_fwd);
        s.count_flags(p.tcp_flags);
        s.all_len.add(f64::from(p.payload_len));
        let d = if pkt_is_fwd { &mut s.fwd } else { &mut s.bwd };
        d.min_seg = u32::from(p.transport_header_len);
        d.len.add(f64::from(p.payload_len));
        d.header_bytes = u64::from(p.transport_header_len);
        d.last_us = p.ts_us;
        d.bytes = u64::from(p.payload_len);
        d.frame_bytes = u64::from(p.wire_len);
        count_dir_flags(d, p);
        if pkt_is_fwd {
            s.init_win_fwd = p.tcp_window;
        } else {
            s.init_win_bwd = p.tcp_window;
        }
        s
    }

    /// True if the packet's source is this flow's forward endpoint.
    pub fn is_forward(&self, p: &PacketMeta) -> bool {
        self.src == Endpoint::new(p.src_ip, p.src_port)
    }

    /// True if the packet comes from the side that has sent nothing yet: the opener's answer.
    pub fn is_first_reply(&self, p: &PacketMeta) -> bool {
        let d = if self.is_forward(p) {
            &self.fwd
        } else {
            &self.bwd
        };
        d.len.n() == 0
    }

    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    pub fn icmp_code(&self) -> i16 {
        self.icmp_code
    }
    pub fn icmp_type(&self) -> i16 {
        self.icmp_type
    }
    pub fn fin_both_ways(&self) -> bool {
        self.fwd.fin > 0 && self.bwd.fin > 0
    }
    /// Packets from the backward side so far.
    pub fn bwd_packets(&self) -> u64 {
        self.bwd.len.n()
    }
    pub fn packets(&self) -> u64 {
        self.fwd.len.n() + self.bwd.len.n()
    }

    /// Active/idle bookkeeping, run before each packet after the first.
    pub fn update_active_idle(&mut self, ts: i64, activity_timeout_us: i64) {
        if ts - self.end_active_us > activity_timeout_us {
            if self.end_active_us - self.start_active_us > 0 {
                self.active
                    .add((self.end_active_us - self.start_active_us) as f64);
            }
            self.idle.add((ts - self.end_active_us) as f64);
            self.start_active_us = ts;
        }
        self.end_active_us = ts;
    }

    /// Adds a packet after the first. `ts` must not precede the flow's last packet (the table
    /// clamps out-of-order timestamps).
    pub fn add(&mut self, p: &PacketMeta, compat: Compat) {
        let ts = p.ts_us;
        let fwd = self.is_forward(p);
        self.update_bulk(p, fwd);
        self.count_flags(p.tcp_flags);
        self.all_len.add(f64::from(p.payload_len));
        let d = if fwd { &mut self.fwd } else { &mut self.bwd };
        d.len.add(f64::from(p.payload_len));
        d.header_bytes += u64::from(p.transport_header_len);
        d.bytes += u64::from(p.payload_len);
        d.frame_bytes += u64::from(p.wire_len);
        if d.len.n() > 1 {
            d.iat.add((ts - d.last_us) as f64);
        }
        d.last_us = ts;
        d.min_seg = d.min_seg.min(u32::from(p.transport_header_len));
        count_dir_flags(d, p);
        if !fwd {
            // The tool that produced CIC-IDS2017 (and the improved re-extraction) overwrote the
            // backward initial window with every backward packet; both modes keep that, since
            // the published rows carry it (see README).
            let _ = compat;
            self.init_win_bwd = p.tcp_window;
        }
        self.flow_iat.add((ts - self.last_us) as f64);
        self.last_us = ts;
    }

    fn update_bulk(&mut self, p: &PacketMeta, fwd: bool) {
        let size = u64::from(p.payload_len);
        if fwd {
            let other = self.bwd_bulk.last_us;
            self.fwd_bulk.update(p.ts_us, size, other);
        } else {
            let other = self.fwd_bulk.last_us;
            self.bwd_bulk.update(p.ts_us, size, other);
        }
    }

    fn count_flags(&mut self, f: u8) {
        const ORDER: [u8; 8] = [
            tf::FIN,
            tf::SYN,
            tf::RST,
            tf::PSH,
            tf::ACK,
            tf::URG,
            tf::CWR,
            tf::ECE,
        ];
        for (c, bit) in self.flags.iter_mut().zip(ORDER) {
            *c += u32::from(f & bit != 0);
        }
    }

    /// The finished flow's identifiers and features.
    pub fn finish(&self, reason: EndReason, compat: Compat) -> FlowRecord {
        let mut v = [0.0f64; NUM_FEATURES];
        let mut set = |f: F, x: f64| v[f as usize] = x;
        let dur = self.last_us - self.start_us;
        let dur_s = dur as f64 / 1e6;
        let (fw, bw) = (&self.fwd, &self.bwd);
        let (nf, nb) = (fw.len.n(), bw.len.n());
        let n = nf + nb;
        let bytes = fw.bytes + bw.bytes;

        set(F::SrcPort, f64::from(self.src.port));
        set(F::DstPort, f64::from(self.dst.port));
        set(F::Protocol, f64::from(self.protocol));
        set(F::FlowDuration, dur as f64);
        set(F::TotalFwdPackets, nf as f64);
        set(F::TotalBwdPackets, nb as f64);
        set(F::TotalLenFwdPackets, fw.bytes as f64);
        set(F::TotalLenBwdPackets, bw.bytes as f64);
        set(F::FwdPktLenMax, fw.len.max());
        set(F::FwdPktLenMin, fw.len.min());
        set(F::FwdPktLenMean, fw.len.mean());
        set(F::FwdPktLenStd, fw.len.std());
        set(F::BwdPktLenMax, bw.len.max());
        set(F::BwdPktLenMin, bw.len.min());
        set(F::BwdPktLenMean, bw.len.mean());
        set(F::BwdPktLenStd, bw.len.std());
        let (bps, pps) = if dur != 0 {
            (bytes as f64 / dur_s, n as f64 / dur_s)
        } else if compat == Compat::Cic2017 {
            // The original tool divided by zero: Infinity, or NaN for 0/0.
            (bytes as f64 / 0.0, n as f64 / 0.0)
        } else {
            (-1.0, -1.0)
        };
        set(F::FlowBytesPerSec, bps);
        set(F::FlowPacketsPerSec, pps);
        set(F::FlowIatMean, self.flow_iat.mean());
        set(F::FlowIatStd, self.flow_iat.std());
        set(F::FlowIatMax, self.flow_iat.max());
        set(F::FlowIatMin, self.flow_iat.min());
        if nf > 1 {
            set(F::FwdIatTotal, fw.iat.sum());
            set(F::FwdIatMean, fw.iat.mean());
            set(F::FwdIatStd, fw.iat.std());
            set(F::FwdIatMax, fw.iat.max());
            set(F::FwdIatMin, fw.iat.min());
        }
        if nb > 1 {
            set(F::BwdIatTotal, bw.iat.sum());
            set(F::BwdIatMean, bw.iat.mean());
            set(F::BwdIatStd, bw.iat.std());
            set(F::BwdIatMax, bw.iat.max());
            set(F::BwdIatMin, bw.iat.min());
        }
        set(F::FwdPshFlags, f64::from(fw.psh));
        set(F::BwdPshFlags, f64::from(bw.psh));
        set(F::FwdUrgFlags, f64::from(fw.urg));
        set(F::BwdUrgFlags, f64::from(bw.urg));
        set(F::FwdRstFlags, f64::from(fw.rst));
        set(F::BwdRstFlags, f64::from(bw.rst));
        set(F::FwdHeaderLength, fw.header_bytes as f64);
        set(F::BwdHeaderLength, bw.header_bytes as f64);
        let per_s = |k: u64| if dur > 0 { k as f64 / dur_s } else { 0.0 };
        set(F::FwdPacketsPerSec, per_s(nf));
        set(F::BwdPacketsPerSec, per_s(nb));
        set(F::PktLenMin, self.all_len.min());
        set(F::PktLenMax, self.all_len.max());
        set(F::PktLenMean, self.all_len.mean());
        set(F::PktLenStd, self.all_len.std());
        set(F::PktLenVariance, self.all_len.variance());
        let flag_ids = [
            F::FinFlagCount,
            F::SynFlagCount,
            F::RstFlagCount,
            F::PshFlagCount,
            F::AckFlagCount,
            F::UrgFlagCount,
            F::CwrFlagCount,
            F::EceFlagCount,
        ];
        for (f, c) in flag_ids.into_iter().zip(self.flags) {
            set(f, f64::from(c));
        }
        let down_up = match (nf, compat) {
            (0, _) => 0.0,
            (_, Compat::Cic2017) => (nb / nf) as f64,
            _ => nb as f64 / nf as f64,
        };
        set(F::DownUpRatio, down_up);
        // sum / count, 0 for an empty direction
        let per = |sum: f64, k: u64| if k > 0 { sum / k as f64 } else { 0.0 };
        set(F::AvgPacketSize, per(self.all_len.sum(), n));
        set(F::AvgFwdSegmentSize, per(fw.len.sum(), nf));
        set(F::AvgBwdSegmentSize, per(bw.len.sum(), nb));
        set(F::FwdAvgBytesPerBulk, self.fwd_bulk.avg_bytes());
        set(F::FwdAvgPacketsPerBulk, self.fwd_bulk.avg_packets());
        set(F::FwdAvgBulkRate, self.fwd_bulk.rate());
        set(F::BwdAvgBytesPerBulk, self.bwd_bulk.avg_bytes());
        set(F::BwdAvgPacketsPerBulk, self.bwd_bulk.avg_packets());
        set(F::BwdAvgBulkRate, self.bwd_bulk.rate());
        // The reference counts one "subflow" per packet (an operator-precedence slip in its
        // 1-second gap test) and divides integers: these are totals / packets, rounded down.
        let sub = |x: u64| x.checked_div(n).map_or(0.0, |q| q as f64);
        set(F::SubflowFwdPackets, sub(nf));
        set(F::SubflowFwdBytes, sub(fw.bytes));
        set(F::SubflowBwdPackets, sub(nb));
        set(F::SubflowBwdBytes, sub(bw.bytes));
        set(F::InitWinBytesFwd, f64::from(self.init_win_fwd));
        set(F::InitWinBytesBwd, f64::from(self.init_win_bwd));
        set(F::ActDataPktFwd, fw.act_data as f64);
        set(F::MinSegSizeFwd, f64::from(fw.min_seg));
        if self.active.n() > 0 {
            set(F::ActiveMean, self.active.mean());
            set(F::ActiveStd, self.active.std());
            set(F::ActiveMax, self.active.max());
            set(F::ActiveMin, self.active.min());
        }
        if self.idle.n() > 0 {
            set(F::IdleMean, self.idle.mean());
            set(F::IdleStd, self.idle.std());
            set(F::IdleMax, self.idle.max());
            set(F::IdleMin, self.idle.min());
        }
        set(F::IcmpCode, f64::from(self.icmp_code));
        set(F::IcmpType, f64::from(self.icmp_type));
        let tcp_time = if self.protocol == IPPROTO_TCP {
            self.cumulative_us + dur
        } else {
            0
        };
        set(F::TotalTcpFlowTime, tcp_time as f64);

        FlowRecord {
            src_ip: ip_of(&self.src, self.v4),
            dst_ip: ip_of(&self.dst, self.v4),
            src_port: self.src.port,
            dst_port: self.dst.port,
            protocol: self.protocol,
            start_us: self.start_us,
            end_us: self.last_us,
            end_reason: reason,
            frame_bytes: [self.fwd.frame_bytes, self.bwd.frame_bytes],
            values: v,
        }
    }
}

fn count_dir_flags(d: &mut Dir, p: &PacketMeta) {
    d.psh += u32::from(p.tcp_flags & tf::PSH != 0);
    d.urg += u32::from(p.tcp_flags & tf::URG != 0);
    d.rst += u32::from(p.tcp_flags & tf::RST != 0);
    d.fin += u32::from(p.tcp_flags & tf::FIN != 0);
    d.act_data += u64::from(p.payload_len >= 1);
}

fn ip_of(e: &Endpoint, v4: bool) -> IpAddr {
    let v6 = Ipv6Addr::from(e.ip);
    if v4 {
        let o = e.ip;
        IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else {
        IpAddr::V6(v6)
    }
}
