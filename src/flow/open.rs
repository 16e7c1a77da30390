//! An open flow as the table keeps it: a compact record of its first one or two packets
//! ([`Short`], 72 bytes, no allocation), upgraded to the full accumulators ([`FlowState`],
//! boxed) when a third packet arrives. Most flows of a flood or a scan never get a second
//! packet, so they never pay for the 750-byte accumulator.
//!
//! A short flow's features are computed by replaying its packets into a [`FlowState`] on the
//! stack when it ends, through the very code a full flow runs: both representations give the
//! same [`FlowRecord`], bit for bit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::key::{Endpoint, FlowKey};
use super::state::FlowState;
use super::{Compat, TcpState};
use crate::decode::{PacketMeta, tcp_flags as tf};
use crate::features::{EndReason, FlowRecord};

/// What a short flow keeps of one packet: exactly the fields [`FlowState`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    ts_us: i64,
    wire_len: u32,
    payload_len: u32,
    transport_header_len: u16,
    tcp_window: u16,
    tcp_flags: u8,
    icmp_type: u8,
    icmp_code: u8,
    /// The packet's source is the key's `lo` endpoint.
    from_lo: bool,
}

impl Seen {
    fn of(p: &PacketMeta, from_lo: bool) -> Seen {
        Seen {
            ts_us: p.ts_us,
            wire_len: p.wire_len,
            payload_len: p.payload_len,
            transport_header_len: p.transport_header_len,
            tcp_window: p.tcp_window,
            tcp_flags: p.tcp_flags,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            from_lo,
        }
    }

    /// The packet again, as the decoder made it (minus fields no flow reads).
    fn meta(&self, key: &FlowKey, v4: bool) -> PacketMeta {
        let (s, d) = if self.from_lo {
            (&key.lo, &key.hi)
        } else {
            (&key.hi, &key.lo)
        };
        PacketMeta {
            ts_us: self.ts_us,
            src_ip: ip_of(s, v4),
            dst_ip: ip_of(d, v4),
            src_port: s.port,
            dst_port: d.port,
            protocol: key.protocol,
            wire_len: self.wire_len,
            ip_header_len: 0,
            transport_header_len: self.transport_header_len,
            payload_len: self.payload_len,
            tcp_flags: self.tcp_flags,
            tcp_window: self.tcp_window,
            tcp_seq: 0,
            tcp_ack: 0,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
        }
    }
}

fn ip_of(e: &Endpoint, v4: bool) -> IpAddr {
    if v4 {
        let o = e.ip;
        IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(e.ip))
    }
}

/// A flow that has seen one or two packets.
#[derive(Clone, Debug)]
pub struct Short {
    id: u64,
    cumulative_us: i64,
    first: Seen,
    second: Seen,
    two: bool,
    /// Direction of each packet (forward = the flow's forward endpoint sent it).
    first_fwd: bool,
    second_fwd: bool,
    fwd_is_lo: bool,
    v4: bool,
    tcp: TcpState,
}

/// An open flow.
#[derive(Clone, Debug)]
pub enum Flow {
    Short(Short),
    Full(Box<FlowState>),
}

/// Settings a flow needs to take a packet or to end.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub activity_timeout_us: i64,
    pub compat: Compat,
}

impl Flow {
    /// Starts a flow with its first packet (see [`FlowState::new`] for the arguments).
    pub fn new(
        id: u64,
        p: &PacketMeta,
        src_is_lo: bool,
        pkt_is_fwd: bool,
        fwd_is_lo: bool,
    ) -> Flow {
        Flow::Short(Short {
            id,
            cumulative_us: 0,
            first: Seen::of(p, src_is_lo),
            second: Seen::default(),
            two: false,
            first_fwd: pkt_is_fwd,
            second_fwd: false,
            fwd_is_lo,
            v4: p.src_ip.is_ipv4(),
            tcp: TcpState::Open,
        })
    }

    pub fn id(&self) -> u64 {
        match self {
            Flow::Short(s) => s.id,
            Flow::Full(f) => f.id,
        }
    }
    pub fn fwd_is_lo(&self) -> bool {
        match self {
            Flow::Short(s) => s.fwd_is_lo,
            Flow::Full(f) => f.fwd_is_lo,
        }
    }
    pub fn start_us(&self) -> i64 {
        match self {
            Flow::Short(s) => s.first.ts_us,
            Flow::Full(f) => f.start_us,
        }
    }
    pub fn last_us(&self) -> i64 {
        match self {
            Flow::Short(s) if s.two => s.second.ts_us,
            Flow::Short(s) => s.first.ts_us,
            Flow::Full(f) => f.last_us,
        }
    }
    pub fn tcp(&self) -> TcpState {
        match self {
            Flow::Short(s) => s.tcp,
            Flow::Full(f) => f.tcp,
        }
    }
    pub fn set_tcp(&mut self, t: TcpState) {
        match self {
            Flow::Short(s) => s.tcp = t,
            Flow::Full(f) => f.tcp = t,
        }
    }
    /// Total TCP Flow Time carried over from earlier parts of the same connection (µs).
    pub fn cumulative_us(&self) -> i64 {
        match self {
            Flow::Short(s) => s.cumulative_us,
            Flow::Full(f) => f.cumulative_us,
        }
    }
    pub fn set_cumulative_us(&mut self, us: i64) {
        match self {
            Flow::Short(s) => s.cumulative_us = us,
            Flow::Full(f) => f.cumulative_us = us,
        }
    }
    pub fn packets(&self) -> u64 {
        match self {
            Flow::Short(s) => 1 + u64::from(s.two),
            Flow::Full(f) => f.packets(),
        }
    }
    /// Packets from the backward side so far.
    pub fn bwd_packets(&self) -> u64 {
        match self {
            Flow::Short(s) => u64::from(!s.first_fwd) + u64::from(s.two && !s.second_fwd),
            Flow::Full(f) => f.bwd_packets(),
        }
    }
    /// The forward side's address, the backward side's address and port: who opened the flow
    /// and where to, as seen from packet `p` of it.
    pub fn ends(&self, key: &FlowKey, p: &PacketMeta) -> (std::net::IpAddr, std::net::IpAddr, u16) {
        if self.is_forward(key, p) {
            (p.src_ip, p.dst_ip, p.dst_port)
        } else {
            (p.dst_ip, p.src_ip, p.src_port)
        }
    }
    /// ICMP type and code of the first packet (-1 for other transports), as
    /// [`FlowState::icmp_type`] / [`FlowState::icmp_code`].
    pub fn icmp_type_code(&self, protocol: u8) -> (i16, i16) {
        match self {
            Flow::Short(s) if matches!(protocol, 1 | 58) => {
                (i16::from(s.first.icmp_type), i16::from(s.first.icmp_code))
            }
            Flow::Short(_) => (-1, -1),
            Flow::Full(f) => (f.icmp_type(), f.icmp_code()),
        }
    }
    /// Both sides have sent a FIN.
    pub fn fin_both_ways(&self) -> bool {
        match self {
            Flow::Short(s) => {
                let fin = |x: &Seen| x.tcp_flags & tf::FIN != 0;
                s.two && fin(&s.first) && fin(&s.second) && s.first_fwd != s.second_fwd
            }
            Flow::Full(f) => f.fin_both_ways(),
        }
    }
    /// The packet comes from the flow's forward side (the side that opened it).
    pub fn is_forward(&self, key: &FlowKey, p: &PacketMeta) -> bool {
        match self {
            Flow::Short(s) => s.is_forward(key, p),
            Flow::Full(f) => f.is_forward(p),
        }
    }
    /// The backward side has sent a packet (the flow record will count backward packets).
    pub fn answered(&self) -> bool {
        match self {
            Flow::Short(s) => !s.first_fwd || (s.two && !s.second_fwd),
            Flow::Full(f) => f.bwd_packets() > 0,
        }
    }
    /// True if the packet comes from the side that has sent nothing yet.
    pub fn is_first_reply(&self, key: &FlowKey, p: &PacketMeta) -> bool {
        match self {
            Flow::Short(s) => {
                let fwd = s.is_forward(key, p);
                fwd != s.first_fwd && !(s.two && fwd == s.second_fwd)
            }
            Flow::Full(f) => f.is_first_reply(p),
        }
    }

    /// Adds a packet after the first (active/idle bookkeeping, then the accumulators): what the
    /// table did with [`FlowState::update_active_idle`] and [`FlowState::add`].
    pub fn add(&mut self, key: &FlowKey, p: &PacketMeta, rules: Rules) {
        match self {
            Flow::Short(s) if !s.two => {
                s.second_fwd = s.is_forward(key, p);
                s.second = Seen::of(p, Endpoint::new(p.src_ip, p.src_port) == key.lo);
                s.two = true;
            }
            Flow::Short(s) => {
                let mut full = Box::new(s.to_full(key, rules));
                full.update_active_idle(p.ts_us, rules.activity_timeout_us);
                full.add(p, rules.compat);
                *self = Flow::Full(full);
            }
            Flow::Full(f) => {
                f.update_active_idle(p.ts_us, rules.activity_timeout_us);
                f.add(p, rules.compat);
            }
        }
    }

    /// The finished flow's identifiers and features.
    pub fn finish(&self, key: &FlowKey, reason: EndReason, rules: Rules) -> FlowRecord {
        match self {
            Flow::Short(s) => s.to_full(key, rules).finish(reason, rules.compat),
            Flow::Full(f) => f.finish(reason, rules.compat),
        }
    }
}

/// Everything a one-packet flow's record depends on but its endpoints and its time: two
/// one-packet flows with the same `OnePacket` have the same record once those are put in
/// ([`Flow::with_identity`]) — a flood's flows, one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnePacket {
    /// The packet, with its time and direction bit cleared.
    seen: Seen,
    first_fwd: bool,
    v4: bool,
    tcp: TcpState,
    cumulative_us: i64,
    protocol: u8,
    reason: EndReason,
    compat: Compat,
    activity_timeout_us: i64,
}

impl Flow {
    /// The [`OnePacket`] of a flow that has seen one packet.
    pub fn one_packet(&self, key: &FlowKey, reason: EndReason, rules: Rules) -> Option<OnePacket> {
        match self {
            Flow::Short(s) if !s.two => Some(OnePacket {
                seen: Seen {
                    ts_us: 0,
                    from_lo: false,
                    ..s.first
                },
                first_fwd: s.first_fwd,
                v4: s.v4,
                tcp: s.tcp,
                cumulative_us: s.cumulative_us,
                protocol: key.protocol,
                reason,
                compat: rules.compat,
                activity_timeout_us: rules.activity_timeout_us,
            }),
            _ => None,
        }
    }

    /// `r`, the record of another one-packet flow with this flow's [`OnePacket`], with this
    /// flow's endpoints and time put in: what [`Flow::finish`] gives (unit test).
    pub fn with_identity(&self, key: &FlowKey, mut r: FlowRecord) -> FlowRecord {
        let Flow::Short(s) = self else {
            return r;
        };
        // As FlowState::new: the packet's source and destination, swapped when it is backward.
        let (a, b) = if s.first.from_lo {
            (&key.lo, &key.hi)
        } else {
            (&key.hi, &key.lo)
        };
        let (src, dst) = if s.first_fwd { (a, b) } else { (b, a) };
        r.src_ip = ip_of(src, s.v4);
        r.dst_ip = ip_of(dst, s.v4);
        r.src_port = src.port;
        r.dst_port = dst.port;
        r.start_us = s.first.ts_us;
        r.end_us = s.first.ts_us;
        if let Some(v) = r.values.get_mut(crate::features::Feature::SrcPort as usize) {
            *v = f64::from(src.port);
        }
        if let Some(v) = r.values.get_mut(crate::features::Feature::DstPort as usize) {
            *v = f64::from(dst.port);
        }
        r
    }
}

impl Short {
    /// Forward if the packet's source is the flow's forward endpoint (as [`FlowState`] decides).
    fn is_forward(&self, key: &FlowKey, p: &PacketMeta) -> bool {
        let fwd = if self.fwd_is_lo { &key.lo } else { &key.hi };
        *fwd == Endpoint::new(p.src_ip, p.src_port)
    }

    /// The full accumulators of this flow: its packets replayed through [`FlowState`].
    fn to_full(&self, key: &FlowKey, rules: Rules) -> FlowState {
        let mut f = FlowState::new(
            self.id,
            &self.first.meta(key, self.v4),
            self.first_fwd,
            self.fwd_is_lo,
        );
        f.cumulative_us = self.cumulative_us;
        f.tcp = self.tcp;
        if self.two {
            let p = self.second.meta(key, self.v4);
            f.update_active_idle(p.ts_us, rules.activity_timeout_us);
            f.add(&p, rules.compat);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts_us: i64, from_a: bool, flags: u8, payload_len: u32, v4: bool) -> PacketMeta {
        let (a, b): (IpAddr, IpAddr) = if v4 {
            (
                Ipv4Addr::new(10, 0, 0, 9).into(),
                Ipv4Addr::new(10, 0, 0, 1).into(),
            )
        } else {
            (
                "2001:db8::9".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            )
        };
        let (src_ip, dst_ip, src_port, dst_port) = if from_a {
            (a, b, 40000, 443)
        } else {
            (b, a, 443, 40000)
        };
        PacketMeta {
            ts_us,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            protocol: 6,
            wire_len: 54 + payload_len,
            ip_header_len: 20,
            transport_header_len: 20 + (ts_us % 3) as u16 * 4,
            payload_len,
            tcp_flags: flags,
            tcp_window: 1000 + ts_us as u16,
            tcp_seq: 0,
            tcp_ack: 0,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    /// A flow kept short (then upgraded) ends with the same record as one kept in full
    /// accumulators from its first packet, for every direction pattern of up to 4 packets.
    #[test]
    fn short_and_full_flows_end_alike() {
        let rules = Rules {
            activity_timeout_us: 5_000_000,
            compat: Compat::Corrected,
        };
        let flags = [
            tf::SYN,
            tf::SYN | tf::ACK,
            tf::ACK | tf::PSH,
            tf::FIN | tf::ACK,
        ];
        for v4 in [true, false] {
            for n in 1..=4usize {
                for dirs in 0..(1u32 << n) {
                    let ps: Vec<PacketMeta> = (0..n)
                        .map(|i| {
                            let t = [0, 7, 6_000_123, 6_000_500][i];
                            pkt(t, dirs >> i & 1 == 0, flags[i], [0, 0, 517, 1][i], v4)
                        })
                        .collect();
                    let (key, src_is_lo) = FlowKey::of(&ps[0]);
                    let synack = ps[0].tcp_flags & tf::ACK != 0;
                    let fwd_is_lo = if synack { !src_is_lo } else { src_is_lo };
                    let mut short = Flow::new(1, &ps[0], src_is_lo, !synack, fwd_is_lo);
                    let mut full = FlowState::new(1, &ps[0], !synack, fwd_is_lo);
                    for p in &ps[1..] {
                        assert_eq!(
                            short.is_first_reply(&key, p),
                            full.is_first_reply(p),
                            "{n} {dirs:b}"
                        );
                        short.add(&key, p, rules);
                        full.update_active_idle(p.ts_us, rules.activity_timeout_us);
                        full.add(p, rules.compat);
                        assert_eq!(short.fin_both_ways(), full.fin_both_ways());
                        assert_eq!(short.last_us(), full.last_us);
                        assert_eq!(short.packets(), full.packets());
                    }
                    assert_eq!(matches!(short, Flow::Short(_)), n <= 2);
                    let a = short.finish(&key, EndReason::Flushed, rules);
                    let b = full.finish(EndReason::Flushed, rules.compat);
                    assert_eq!(a.src_ip, b.src_ip);
                    assert_eq!(a.dst_port, b.dst_port);
                    assert_eq!(a.frame_bytes, b.frame_bytes);
                    for (x, y) in a.values.iter().zip(&b.values) {
                        assert_eq!(x.to_bits(), y.to_bits(), "v4 {v4} n {n} dirs {dirs:b}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_short_flow_is_small() {
        // The README's bytes per open flow rest on this.
        assert!(
            std::mem::size_of::<Flow>() <= 72,
            "{}",
            std::mem::size_of::<Flow>()
        );
    }

    /// A one-packet flow's record made from another's with the same [`OnePacket`] equals its
    /// own: every field, every value bit, for both directions, IPv4 and IPv6, TCP and ICMP.
    #[test]
    fn one_packet_records_are_the_same_but_for_identity() {
        let rules = Rules {
            activity_timeout_us: 5_000_000,
            compat: Compat::Corrected,
        };
        let mut checked = 0;
        for v4 in [true, false] {
            for from_a in [true, false] {
                for flags in [tf::SYN, tf::SYN | tf::ACK, tf::RST] {
                    for icmp in [false, true] {
                        let mk = |ts: i64, sport: u16, host: u8| {
                            let mut p = pkt(ts, from_a, flags, 0, v4);
                            (p.transport_header_len, p.tcp_window) = (20, 1000);
                            p.src_port = sport;
                            // Host 1 sorts above the destination, host 200 below: the two
                            // flows' keys hold the sender on opposite sides.
                            let low = host > 100;
                            if p.src_ip.is_ipv4() {
                                let first = if low { 9 } else { 11 };
                                p.src_ip = IpAddr::V4(Ipv4Addr::new(first, 9, 0, host));
                            } else {
                                let net = if low { "2001:db7" } else { "2001:db9" };
                                p.src_ip = format!("{net}::9:{host}").parse().unwrap();
                            }
                            if icmp {
                                (p.protocol, p.src_port, p.dst_port, p.icmp_type) = (1, 0, 0, 8);
                            }
                            p
                        };
                        let (pa, pb) = (mk(1_000, 40_000, 1), mk(9_999_999, 1_234, 200));
                        let flow = |p: &PacketMeta| {
                            let (key, src_is_lo) = FlowKey::of(p);
                            let synack = p.tcp_flags & tf::ACK != 0;
                            let fwd_is_lo = if synack { !src_is_lo } else { src_is_lo };
                            (Flow::new(7, p, src_is_lo, !synack, fwd_is_lo), key)
                        };
                        let ((fa, ka), (fb, kb)) = (flow(&pa), flow(&pb));
                        let reason = EndReason::Evicted;
                        let (oa, ob) = (
                            fa.one_packet(&ka, reason, rules),
                            fb.one_packet(&kb, reason, rules),
                        );
                        assert!(oa.is_some() && oa == ob);
                        assert_ne!(FlowKey::of(&pa).1, FlowKey::of(&pb).1, "sides");
                        let want = fb.finish(&kb, reason, rules);
                        let got = fb.with_identity(&kb, fa.finish(&ka, reason, rules));
                        assert_eq!(
                            (
                                got.src_ip,
                                got.dst_ip,
                                got.src_port,
                                got.dst_port,
                                got.protocol
                            ),
                            (
                                want.src_ip,
                                want.dst_ip,
                                want.src_port,
                                want.dst_port,
                                want.protocol
                            )
                        );
                        assert_eq!((got.start_us, got.end_us), (want.start_us, want.end_us));
                        assert_eq!(
                            (got.end_reason, got.frame_bytes),
                            (want.end_reason, want.frame_bytes)
                        );
                        for (x, y) in got.values.iter().zip(&want.values) {
                            assert_eq!(
                                x.to_bits(),
                                y.to_bits(),
                                "v4 {v4} from_a {from_a} flags {flags}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 24);
    }
}
