//! The flow table: packets in, finished flows out. Finds each packet's bidirectional flow,
//! applies the reference tool's lifecycle (flow timeout from the first packet, TCP teardown,
//! ICMP type changes), expires flows on a clock, and caps its size by evicting the oldest flow.
//!
//! Layout (sized for floods: a spoofed SYN flood opens one flow per packet): open flows live in
//! a slab (`Vec` of key + [`Flow`], 112 bytes a slot, a short flow inline), found through a hash
//! index of (key hash, slot) ([`super::index`], 8 bytes a bucket, at most half full, keyed by a
//! randomly seeded foldhash so crafted traffic cannot aim at one run), and queued for expiry by
//! slot and generation (16 bytes). About 150 bytes per open short flow in all. The cache lines
//! a packet will touch can be fetched a few packets ahead ([`FlowTable::keyed`],
//! [`FlowTable::prefetch_index`], [`FlowTable::prefetch_flow`], driven by [`super::ahead`]);
//! a full table prefetches the flows it is about to evict.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;

use super::ahead::Keyed;
use super::index::Index;
use super::key::FlowKey;
use super::open::{Flow, OnePacket, Rules};
use super::{
    Compat, FlowClose, FlowConfig, FlowReply, FlowSink, FlowStart, FlowStats, FlowVolume, TcpState,
    VOLUME_FIRST,
};
use crate::decode::{PacketMeta, tcp_flags as tf};
use crate::features::{EndReason, FlowRecord};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// What a TCP connection split by the flow timeout hands to the flow that continues it: the
/// reference keeps the connection's direction and adds up Total TCP Flow Time.
#[derive(Clone, Copy, Debug)]
struct Continuation {
    fwd_is_lo: bool,
    cumulative_us: i64,
    last_us: i64,
    expires_us: i64,
}

/// A queued reference to one flow: its slot and the low 32 bits of its id. A ticket whose flow
/// has ended (the slot empty or reused) is stale and skipped. Ids are unique per table and a
/// ticket leaves its queue by its deadline (at most a flow timeout later), so a reused slot
/// cannot carry the same low 32 bits while the ticket waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ticket {
    pub(super) slot: u32,
    id: u32,
}

/// One slab slot: an open flow and its key.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub(super) key: FlowKey,
    pub(super) flow: Flow,
}

/// Single-owner flow table (one per worker thread; see `FlowKey::symmetric_hash` to shard).
pub struct FlowTable {
    cfg: FlowConfig,
    /// Open flows by slot; `None` slots are listed in `free`.
    pub(super) slab: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slot by 32-bit key hash: growing the index re-hashes without touching the slab.
    pub(super) index: Index,
    hasher: hashbrown::DefaultHashBuilder,
    /// (deadline = start + flow timeout, flow) in creation order.
    pub(super) expiry: VecDeque<(i64, Ticket)>,
    /// (deadline = last packet + linger, flow) of closed TCP flows, earliest first: a flow
    /// ends at the first sweep after its own deadline, whatever other flows the table holds
    /// (so N tables end the same flows as one).
    lingering: BinaryHeap<Reverse<(i64, Ticket)>>,
    continuations: HashMap<FlowKey, Continuation>,
    continuation_order: VecDeque<(i64, FlowKey)>,
    next_id: u64,
    stats: FlowStats,
    /// The last one-packet flow's record: the next with the same [`OnePacket`] only needs its
    /// endpoints and time put in (a flood: one finalisation instead of a million).
    one: Option<(OnePacket, FlowRecord)>,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        FlowTable {
            cfg,
            slab: Vec::new(),
            free: Vec::new(),
            index: Index::default(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            expiry: VecDeque::new(),
            lingering: BinaryHeap::new(),
            continuations: HashMap::new(),
            continuation_order: VecDeque::new(),
            next_id: 0,
            stats: FlowStats::default(),
            one: None,
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Open flows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            active: self.len() as u64,
            ..self.stats
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            activity_timeout_us: self.cfg.activity_timeout_us,
            compat: self.cfg.compat,
        }
    }

    /// The 32-bit hash of a key (both halves of the seeded 64-bit hash folded in).
    pub(super) fn hash(&self, key: &FlowKey) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// The slot of the open flow with this key.
    fn find(&self, hash: u32, key: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(hash, |i| {
            slab.get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.key == *key)
        })
    }

    /// The open flow a ticket refers to, if it is still open.
    fn ticket_flow(&self, t: Ticket) -> Option<&Slot> {
        self.slab
            .get(t.slot as usize)
            .and_then(Option::as_ref)
            .filter(|s| s.flow.id() as u32 == t.id)
    }

    fn flow_mut(&mut self, slot: u32) -> Option<&mut Flow> {
        self.slab
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .map(|s| &mut s.flow)
    }

    /// Takes an open flow out of the table.
    fn take(&mut self, slot: u32) -> Option<Slot> {
        let s = self.slab.get_mut(slot as usize)?.take()?;
        let hash = self.hash(&s.key);
        self.index.remove(hash, slot);
        self.free.push(slot);
        Some(s)
    }

    /// Puts a new flow in a free slot.
    fn put(&mut self, hash: u32, key: FlowKey, flow: Flow) -> u32 {
        let s = Some(Slot { key, flow });
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = s;
                i
            }
            None => {
                crate::prefetch::grow_huge(&mut self.slab);
                self.slab.push(s);
                (self.slab.len() - 1) as u32
            }
        };
        self.index.insert(hash, slot);
        slot
    }

    /// Feeds one decoded packet; finished flows go to `emit`.
    pub fn push(&mut self, pkt: &PacketMeta, emit: &mut impl FlowSink) {
        let k = self.keyed(pkt);
        self.push_keyed(pkt, k, emit);
    }

    /// [`FlowTable::push`] of a packet whose [`Keyed`] is known.
    pub fn push_keyed(&mut self, pkt: &PacketMeta, k: Keyed, emit: &mut impl FlowSink) {
        let Keyed {
            key,
            src_is_lo,
            hash,
        } = k;
        let mut p = *pkt;
        let rules = self.rules();
        let compat = rules.compat;
        let Some(slot) = self.find(hash, &key) else {
            self.start_flow(hash, key, src_is_lo, &p, emit);
            return;
        };
        let flow_timeout_us = self.cfg.flow_timeout_us;
        let Some(flow) = self.flow_mut(slot) else {
            return;
        };
        let out_of_order = p.ts_us < flow.last_us();
        if out_of_order {
            // Capture misordering: treat the packet as arriving with the flow's last packet.
            p.ts_us = flow.last_us();
        }
        let ts = p.ts_us;
        let f = p.tcp_flags;
        let syn = f & tf::SYN != 0;
        let timed_out = ts - flow.start_us() > flow_timeout_us;
        let reuse = flow.tcp() == TcpState::ReadyForTermination && syn;
        let protocol = key.protocol;
        let is_tcp = protocol == IPPROTO_TCP;
        if timed_out || reuse {
            self.stats.out_of_order += u64::from(out_of_order);
            let Some(old) = self.take(slot) else {
                return;
            };
            let reason = if timed_out {
                EndReason::Timeout
            } else {
                EndReason::TcpClose
            };
            self.finish(&old, reason, emit);
            let o = &old.flow;
            if !reuse && is_tcp {
                // Continuation of the same connection: keep its direction, carry its time.
                let cumulative =
                    o.cumulative_us() + (o.last_us() - o.start_us()) + (ts - o.last_us());
                self.insert_flow(
                    hash,
                    key,
                    &p,
                    src_is_lo,
                    src_is_lo == o.fwd_is_lo(),
                    o.fwd_is_lo(),
                    cumulative,
                    emit,
                );
            } else {
                self.start_flow(hash, key, src_is_lo, &p, emit);
            }
            return;
        }
        if flow.is_first_reply(&key, &p) {
            emit.replied(&FlowReply {
                ts_us: ts,
                opener_ip: p.dst_ip,
                responder_ip: p.src_ip,
                responder_port: p.src_port,
                protocol: p.protocol,
                tcp_flags: f,
            });
        }
        let was_ready = flow.tcp() == TcpState::ReadyForTermination;
        if compat == Compat::Cic2017 && is_tcp && f & (tf::FIN | tf::RST) != 0 {
            // The original tool: the first FIN (or any RST) ends the flow.
            flow.add(&key, &p, rules);
            self.stats.out_of_order += u64::from(out_of_order);
            if let Some(old) = self.take(slot) {
                self.finish(&old, EndReason::TcpClose, emit);
            }
            return;
        }
        if f & tf::FIN != 0 {
            flow.add(&key, &p, rules);
            let next = match flow.tcp() {
                TcpState::Open => TcpState::FirstFin,
                TcpState::FirstFin if flow.fin_both_ways() => TcpState::SecondFin,
                s => s,
            };
            flow.set_tcp(next);
        } else if f & tf::RST != 0 {
            flow.add(&key, &p, rules);
            flow.set_tcp(TcpState::ReadyForTermination);
        } else if f & tf::ACK != 0 {
            flow.add(&key, &p, rules);
            if flow.tcp() == TcpState::SecondFin {
                flow.set_tcp(TcpState::ReadyForTermination);
            }
        } else if matches!(protocol, IPPROTO_ICMP | IPPROTO_ICMPV6)
            && flow.icmp_type_code(protocol).1 != i16::from(p.icmp_code)
            && flow.icmp_type_code(protocol).0 != i16::from(p.icmp_type)
        {
            self.stats.out_of_order += u64::from(out_of_order);
            if let Some(old) = self.take(slot) {
                self.stats.icmp_splits += 1;
                self.finish(&old, EndReason::IcmpChange, emit);
            }
            self.start_flow(hash, key, src_is_lo, &p, emit);
            return;
        } else {
            flow.add(&key, &p, rules);
        }
        let packets = flow.packets();
        if packets >= VOLUME_FIRST && packets.is_power_of_two() {
            let (opener_ip, responder_ip, responder_port) = flow.ends(&key, &p);
            emit.volume(&FlowVolume {
                start_us: flow.start_us(),
                ts_us: ts,
                opener_ip,
                responder_ip,
                responder_port,
                protocol,
                packets,
                bwd_packets: flow.bwd_packets(),
            });
        }
        let now_ready = flow.tcp() == TcpState::ReadyForTermination;
        let id = flow.id() as u32;
        let close = (!was_ready && now_ready).then(|| {
            let (opener_ip, responder_ip, responder_port) = flow.ends(&key, &p);
            FlowClose {
                start_us: flow.start_us(),
                ts_us: ts,
                opener_ip,
                responder_ip,
                responder_port,
                answered: flow.answered(),
            }
        });
        self.stats.out_of_order += u64::from(out_of_order);
        if let Some(close) = close {
            emit.closed(&close);
            self.lingering.push(Reverse((
                ts.saturating_add(self.cfg.tcp_linger_us),
                Ticket { slot, id },
            )));
        }
    }

    /// Expires every flow whose flow timeout has passed at `now_us` (packet time in replay,
    /// wall-clock time when live traffic stops).
    pub fn advance(&mut self, now_us: i64, emit: &mut impl FlowSink) {
        self.end_lingering(now_us, emit);
        while let Some(&(deadline, t)) = self.expiry.front() {
            if now_us <= deadline {
                break;
            }
            self.expiry.pop_front();
            if self.ticket_flow(t).is_none() {
                continue;
            }
            let Some(old) = self.take(t.slot) else {
                continue;
            };
            if old.key.protocol == IPPROTO_TCP && old.flow.tcp() != TcpState::ReadyForTermination {
                self.remember_continuation(&old, now_us);
            }
            self.finish(&old, EndReason::Timeout, emit);
        }
        while let Some(&(expires, key)) = self.continuation_order.front() {
            if now_us <= expires {
                break;
            }
            self.continuation_order.pop_front();
            if self
                .continuations
                .get(&key)
                .is_some_and(|c| c.expires_us == expires)
            {
                self.continuations.remove(&key);
            }
        }
    }

    /// Ends closed TCP flows whose linger has passed at `now_us` with no packet in it; a late
    /// packet restarts the linger.
    fn end_lingering(&mut self, now_us: i64, emit: &mut impl FlowSink) {
        let linger = self.cfg.tcp_linger_us;
        while let Some(&Reverse((deadline, t))) = self.lingering.peek() {
            if now_us <= deadline {
                break;
            }
            self.lingering.pop();
            let Some(s) = self.ticket_flow(t) else {
                continue;
            };
            if s.flow.tcp() != TcpState::ReadyForTermination {
                continue;
            }
            let due = s.flow.last_us().saturating_add(linger);
            if now_us <= due {
                // A late packet came: wait for the linger after it.
                self.lingering.push(Reverse((due, t)));
                continue;
            }
            if let Some(old) = self.take(t.slot) {
                self.finish(&old, EndReason::TcpClose, emit);
            }
        }
    }

    /// Finishes every open flow (end of input, shutdown), oldest first.
    pub fn flush(&mut self, emit: &mut impl FlowSink) {
        let mut order: Vec<(i64, u64, u32)> = self
            .slab
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .map(|s| (s.flow.start_us(), s.flow.id(), i as u32))
            })
            .collect();
        order.sort_unstable();
        for (_, _, i) in order {
            if let Some(s) = self.slab.get_mut(i as usize).and_then(Option::take) {
                self.stats.flushed += 1;
                let r = self.record(&s, EndReason::Flushed);
                emit.ended(r);
            }
        }
        self.slab = Vec::new();
        self.free = Vec::new();
        self.index = Index::default();
        self.expiry = VecDeque::new();
        self.continuations.clear();
        self.continuation_order.clear();
        self.lingering.clear();
    }

    /// The record of a finished flow (from the last one-packet flow's when it can).
    fn record(&mut self, s: &Slot, reason: EndReason) -> FlowRecord {
        let rules = self.rules();
        let Some(k) = s.flow.one_packet(&s.key, reason, rules) else {
            return s.flow.finish(&s.key, reason, rules);
        };
        match &self.one {
            Some((last, r)) if *last == k => s.flow.with_identity(&s.key, r.clone()),
            _ => {
                let r = s.flow.finish(&s.key, reason, rules);
                self.one = Some((k, r.clone()));
                r
            }
        }
    }

    fn finish(&mut self, s: &Slot, reason: EndReason, emit: &mut impl FlowSink) {
        match reason {
            EndReason::Timeout => self.stats.expired += 1,
            EndReason::TcpClose => self.stats.closed_tcp += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            EndReason::Flushed => self.stats.flushed += 1,
            EndReason::IcmpChange => {}
        }
        if self.cfg.compat == Compat::Cic2017
            && reason == EndReason::Timeout
            && s.flow.packets() < 2
        {
            // The original tool dropped single-packet flows at timeout.
            self.stats.dropped_single += 1;
            return;
        }
        let r = self.record(s, reason);
        emit.ended(r);
    }

    fn start_flow(
        &mut self,
        hash: u32,
        key: FlowKey,
        src_is_lo: bool,
        p: &PacketMeta,
        emit: &mut impl FlowSink,
    ) {
        if !self.continuations.is_empty()
            && let Some(c) = self.continuations.remove(&key)
        {
            let cumulative = c.cumulative_us + (p.ts_us - c.last_us).max(0);
            self.insert_flow(
                hash,
                key,
                p,
                src_is_lo,
                src_is_lo == c.fwd_is_lo,
                c.fwd_is_lo,
                cumulative,
                emit,
            );
            return;
        }
        emit.started(&FlowStart {
            ts_us: p.ts_us,
            src_ip: p.src_ip,
            dst_ip: p.dst_ip,
            src_port: p.src_port,
            dst_port: p.dst_port,
            protocol: p.protocol,
            tcp_flags: p.tcp_flags,
        });
        // A SYN-ACK opening a flow means its SYN was missed or reordered: forward is the client.
        let synack = p.tcp_flags & (tf::SYN | tf::ACK) == (tf::SYN | tf::ACK);
        let pkt_is_fwd = !synack;
        let fwd_is_lo = if pkt_is_fwd { src_is_lo } else { !src_is_lo };
        self.insert_flow(hash, key, p, src_is_lo, pkt_is_fwd, fwd_is_lo, 0, emit);
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_flow(
        &mut self,
        hash: u32,
        key: FlowKey,
        p: &PacketMeta,
        src_is_lo: bool,
        pkt_is_fwd: bool,
        fwd_is_lo: bool,
        cumulative_us: i64,
        emit: &mut impl FlowSink,
    ) {
        if self.len() >= self.cfg.max_flows.max(1) {
            self.prefetch_evictions();
        }
        while self.len() >= self.cfg.max_flows.max(1) {
            if !self.evict_oldest(emit) {
                break;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut flow = Flow::new(id, p, src_is_lo, pkt_is_fwd, fwd_is_lo);
        flow.set_cumulative_us(cumulative_us);
        let slot = self.put(hash, key, flow);
        self.expiry.push_back((
            p.ts_us.saturating_add(self.cfg.flow_timeout_us),
            Ticket {
                slot,
                id: id as u32,
            },
        ));
        self.stats.created += 1;
        if self.expiry.len() > 2 * self.len() + 1024 {
            // Drop tickets of flows that ended otherwise (TCP reuse, ICMP, eviction).
            let mut expiry = std::mem::take(&mut self.expiry);
            expiry.retain(|(_, t)| self.ticket_flow(*t).is_some());
            self.expiry = expiry;
        }
    }

    fn evict_oldest(&mut self, emit: &mut impl FlowSink) -> bool {
        while let Some((_, t)) = self.expiry.pop_front() {
            if self.ticket_flow(t).is_some()
                && let Some(old) = self.take(t.slot)
            {
                self.finish(&old, EndReason::Evicted, emit);
                return true;
            }
        }
        false
    }

    fn remember_continuation(&mut self, s: &Slot, now_us: i64) {
        let cap = self.cfg.max_flows.max(1);
        while self.continuations.len() >= cap {
            match self.continuation_order.pop_front() {
                Some((_, k)) => {
                    self.continuations.remove(&k);
                }
                None => break,
            }
        }
        let expires_us = now_us.saturating_add(self.cfg.flow_timeout_us);
        let f = &s.flow;
        self.continuations.insert(
            s.key,
            Continuation {
                fwd_is_lo: f.fwd_is_lo(),
                cumulative_us: f.cumulative_us() + (f.last_us() - f.start_us()),
                last_us: f.last_us(),
                expires_us,
            },
        );
        self.continuation_order.push_back((expires_us, s.key));
    }
}

#[cfg(test)]
mod size_report {
    /// The README quotes the per-flow state size; keep it from growing unnoticed.
    #[test]
    fn per_flow_state_stays_small() {
        let full = std::mem::size_of::<crate::flow::state::FlowState>();
        let slot = std::mem::size_of::<Option<super::Slot>>();
        let ticket = std::mem::size_of::<(i64, super::Ticket)>();
        assert!(full <= 816, "FlowState {full} bytes");
        assert!(slot <= 112, "slab slot {slot} bytes");
        assert_eq!(ticket, 16);
    }
}
