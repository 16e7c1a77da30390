//! The flow table: packets in, finished flows out. Finds each packet's bidirectional flow,
//! applies the reference tool's lifecycle (flow timeout from the first packet, TCP teardown,
//! ICMP type changes), expires flows on a clock, and caps its size by evicting the oldest flow.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::key::FlowKey;
use super::state::FlowState;
use super::{Compat, FlowConfig, FlowReply, FlowSink, FlowStart, FlowStats, TcpState};
use crate::decode::{PacketMeta, tcp_flags as tf};
use crate::features::EndReason;

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

/// Single-owner flow table (one per worker thread; see `FlowKey::symmetric_hash` to shard).
pub struct FlowTable {
    cfg: FlowConfig,
    /// Boxed states: growing the map moves 46-byte entries, not whole flow states.
    map: HashMap<FlowKey, Box<FlowState>>,
    /// (deadline = start + flow timeout, key, flow id) in creation order.
    expiry: VecDeque<(i64, FlowKey, u64)>,
    continuations: HashMap<FlowKey, Continuation>,
    continuation_order: VecDeque<(i64, FlowKey)>,
    /// (deadline = close + linger, key, flow id) of closed TCP flows, in closing order.
    lingering: VecDeque<(i64, FlowKey, u64)>,
    next_id: u64,
    stats: FlowStats,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        FlowTable {
            cfg,
            map: HashMap::new(),
            expiry: VecDeque::new(),
            continuations: HashMap::new(),
            continuation_order: VecDeque::new(),
            lingering: VecDeque::new(),
            next_id: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Open flows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            active: self.map.len() as u64,
            ..self.stats
        }
    }

    /// Feeds one decoded packet; finished flows go to `emit`.
    pub fn push(&mut self, pkt: &PacketMeta, emit: &mut impl FlowSink) {
        let (key, src_is_lo) = FlowKey::of(pkt);
        let mut p = *pkt;
        let compat = self.cfg.compat;
        let Entry::Occupied(mut e) = self.map.entry(key) else {
            self.start_flow(key, src_is_lo, &p, emit);
            return;
        };
        let flow = e.get_mut();
        if p.ts_us < flow.last_us {
            // Capture misordering: treat the packet as arriving with the flow's last packet.
            p.ts_us = flow.last_us;
            self.stats.out_of_order += 1;
        }
        let ts = p.ts_us;
        let f = p.tcp_flags;
        let syn = f & tf::SYN != 0;
        let timed_out = ts - flow.start_us > self.cfg.flow_timeout_us;
        let reuse = flow.tcp == TcpState::ReadyForTermination && syn;
        if timed_out || reuse {
            let old = e.remove();
            let reason = if timed_out {
                EndReason::Timeout
            } else {
                EndReason::TcpClose
            };
            self.finish(&old, reason, emit);
            if !reuse && old.protocol() == IPPROTO_TCP {
                // Continuation of the same connection: keep its direction, carry its time.
                let cumulative =
                    old.cumulative_us + (old.last_us - old.start_us) + (ts - old.last_us);
                self.insert_flow(
                    key,
                    &p,
                    src_is_lo == old.fwd_is_lo,
                    old.fwd_is_lo,
                    cumulative,
                    emit,
                );
            } else {
                self.start_flow(key, src_is_lo, &p, emit);
            }
            return;
        }
        if flow.is_first_reply(&p) {
            emit.replied(&FlowReply {
                ts_us: ts,
                opener_ip: p.dst_ip,
                responder_ip: p.src_ip,
                responder_port: p.src_port,
                protocol: p.protocol,
                tcp_flags: f,
            });
        }
        let activity = self.cfg.activity_timeout_us;
        let is_tcp = flow.protocol() == IPPROTO_TCP;
        let was_ready = flow.tcp == TcpState::ReadyForTermination;
        if compat == Compat::Cic2017 && is_tcp && f & (tf::FIN | tf::RST) != 0 {
            // The original tool: the first FIN (or any RST) ends the flow.
            flow.update_active_idle(ts, activity);
            flow.add(&p, compat);
            let old = e.remove();
            self.finish(&old, EndReason::TcpClose, emit);
            return;
        }
        if f & tf::FIN != 0 {
            flow.update_active_idle(ts, activity);
            flow.add(&p, compat);
            flow.tcp = match flow.tcp {
                TcpState::Open => TcpState::FirstFin,
                TcpState::FirstFin if flow.fin_both_ways() => TcpState::SecondFin,
                s => s,
            };
        } else if f & tf::RST != 0 {
            flow.update_active_idle(ts, activity);
            flow.add(&p, compat);
            flow.tcp = TcpState::ReadyForTermination;
        } else if f & tf::ACK != 0 {
            flow.update_active_idle(ts, activity);
            flow.add(&p, compat);
            if flow.tcp == TcpState::SecondFin {
                flow.tcp = TcpState::ReadyForTermination;
            }
        } else if matches!(flow.protocol(), IPPROTO_ICMP | IPPROTO_ICMPV6)
            && flow.icmp_code() != i16::from(p.icmp_code)
            && flow.icmp_type() != i16::from(p.icmp_type)
        {
            let old = e.remove();
            self.stats.icmp_splits += 1;
            self.finish(&old, EndReason::IcmpChange, emit);
            self.start_flow(key, src_is_lo, &p, emit);
            return;
        } else {
            flow.update_active_idle(ts, activity);
            flow.add(&p, compat);
        }
        if !was_ready && flow.tcp == TcpState::ReadyForTermination {
            let id = flow.id;
            self.lingering
                .push_back((ts.saturating_add(self.cfg.tcp_linger_us), key, id));
        }
    }

    /// Expires every flow whose flow timeout has passed at `now_us` (packet time in replay,
    /// wall-clock time when live traffic stops).
    pub fn advance(&mut self, now_us: i64, emit: &mut impl FlowSink) {
        self.end_lingering(now_us, emit);
        while let Some(&(deadline, key, id)) = self.expiry.front() {
            if now_us <= deadline {
                break;
            }
            self.expiry.pop_front();
            let Entry::Occupied(e) = self.map.entry(key) else {
                continue;
            };
            if e.get().id != id {
                continue;
            }
            let old = e.remove();
            if old.protocol() == IPPROTO_TCP && old.tcp != TcpState::ReadyForTermination {
                self.remember_continuation(key, &old, now_us);
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
        let mut requeued = 0usize;
        while let Some(&(deadline, key, id)) = self.lingering.front() {
            if now_us <= deadline || requeued > self.lingering.len() {
                break;
            }
            self.lingering.pop_front();
            let Entry::Occupied(e) = self.map.entry(key) else {
                continue;
            };
            let f = e.get();
            if f.id != id || f.tcp != TcpState::ReadyForTermination {
                continue;
            }
            let due = f.last_us.saturating_add(linger);
            if now_us <= due {
                self.lingering.push_back((due, key, id));
                requeued += 1;
                continue;
            }
            let old = e.remove();
            self.finish(&old, EndReason::TcpClose, emit);
        }
    }

    /// Finishes every open flow (end of input, shutdown), oldest first.
    pub fn flush(&mut self, emit: &mut impl FlowSink) {
        // Oldest first, without copying the states: sort the keys, then take each flow out.
        let mut order: Vec<(i64, u64, FlowKey)> = self
            .map
            .iter()
            .map(|(k, f)| (f.start_us, f.id, *k))
            .collect();
        order.sort_unstable_by_key(|(start, id, _)| (*start, *id));
        for (_, _, k) in order {
            if let Some(f) = self.map.remove(&k) {
                self.stats.flushed += 1;
                emit.ended(f.finish(EndReason::Flushed, self.cfg.compat));
            }
        }
        self.map.shrink_to_fit();
        self.expiry.clear();
        self.continuations.clear();
        self.continuation_order.clear();
        self.lingering.clear();
    }

    fn finish(&mut self, f: &FlowState, reason: EndReason, emit: &mut impl FlowSink) {
        match reason {
            EndReason::Timeout => self.stats.expired += 1,
            EndReason::TcpClose => self.stats.closed_tcp += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            EndReason::Flushed => self.stats.flushed += 1,
            EndReason::IcmpChange => {}
        }
        if self.cfg.compat == Compat::Cic2017 && reason == EndReason::Timeout && f.packets() < 2 {
            // The original tool dropped single-packet flows at timeout.
            self.stats.dropped_single += 1;
            return;
        }
        emit.ended(f.finish(reason, self.cfg.compat));
    }

    fn start_flow(
        &mut self,
        key: FlowKey,
        src_is_lo: bool,
        p: &PacketMeta,
        emit: &mut impl FlowSink,
    ) {
        if let Some(c) = self.continuations.remove(&key) {
            let cumulative = c.cumulative_us + (p.ts_us - c.last_us).max(0);
            self.insert_flow(
                key,
                p,
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
        self.insert_flow(key, p, pkt_is_fwd, fwd_is_lo, 0, emit);
    }

    fn insert_flow(
        &mut self,
        key: FlowKey,
        p: &PacketMeta,
        pkt_is_fwd: bool,
        fwd_is_lo: bool,
        cumulative_us: i64,
        emit: &mut impl FlowSink,
    ) {
        while self.map.len() >= self.cfg.max_flows.max(1) {
            if !self.evict_oldest(emit) {
                break;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut state = Box::new(FlowState::new(id, p, pkt_is_fwd, fwd_is_lo));
        state.cumulative_us = cumulative_us;
        self.expiry
            .push_back((p.ts_us.saturating_add(self.cfg.flow_timeout_us), key, id));
        self.map.insert(key, state);
        self.stats.created += 1;
        if self.expiry.len() > 2 * self.map.len() + 1024 {
            // Drop bookkeeping of flows that ended otherwise (TCP reuse, ICMP, eviction).
            let map = &self.map;
            self.expiry
                .retain(|(_, k, id)| map.get(k).is_some_and(|f| f.id == *id));
        }
    }

    fn evict_oldest(&mut self, emit: &mut impl FlowSink) -> bool {
        while let Some((_, key, id)) = self.expiry.pop_front() {
            if let Entry::Occupied(e) = self.map.entry(key)
                && e.get().id == id
            {
                let old = e.remove();
                self.finish(&old, EndReason::Evicted, emit);
                return true;
            }
        }
        false
    }

    fn remember_continuation(&mut self, key: FlowKey, f: &FlowState, now_us: i64) {
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
        self.continuations.insert(
            key,
            Continuation {
                fwd_is_lo: f.fwd_is_lo,
                cumulative_us: f.cumulative_us + (f.last_us - f.start_us),
                last_us: f.last_us,
                expires_us,
            },
        );
        self.continuation_order.push_back((expires_us, key));
    }
}

#[cfg(test)]
mod size_report {
    /// The README quotes the per-flow state size; keep it from growing unnoticed.
    #[test]
    fn per_flow_state_stays_under_a_kilobyte() {
        let state = std::mem::size_of::<super::FlowState>();
        let key = std::mem::size_of::<super::FlowKey>();
        assert!(
            state + key <= 816,
            "FlowState {state} + FlowKey {key} bytes"
        );
    }
}
