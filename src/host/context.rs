//! Per-host state, updated as flows start, get their first answer and end (the flow table's
//! [`crate::flow::FlowSink`] events), so a scan or a flood is seen while it happens. O(1) per
//! event; the table of hosts is capped and what the cap costs is counted.
//!
//! A host enters the table at its second flow. Until then its first flow's events wait in a
//! fixed-size array of single-flow hosts (`Pending`: `max_hosts` slots rounded up to a power
//! of two, in sets of 8 chosen by a seeded hash of the address, a 4-byte tag per slot scanned
//! first), and are replayed into a new entry, in order, when the second flow comes: a
//! host with two flows or more has exactly the values it would have had in the table from its
//! first flow (unit tests `pending_hosts_end_up_with_the_same_vectors`,
//! `six_thousand_single_flow_hosts_are_all_remembered`) unless its set of eight filled up and
//! its turn came (then its first flow is forgotten, counted as evicted, as the table evicted
//! single-flow hosts when full), while the spoofed sources of a flood (one flow each) cost one
//! array write and never touch the table. Not used when `min_flows` ≤ 1 (a single flow can
//! then make a host due for scoring).

use std::collections::VecDeque;
use std::hash::BuildHasher;

// hashbrown's default hasher (foldhash, randomly seeded): several times cheaper than SipHash on
// the flood path, where every spoofed SYN looks up two hosts.
use hashbrown::HashMap;
use std::net::IpAddr;

use super::capped::evict_oldest;
use super::features::{HostFeature as H, HostVector, NUM_HOST_FEATURES, is_auth_port};
use super::sketch::{Decay, Decayed, Distinct, SCALES_S, mix};
use crate::decode::tcp_flags as tf;
use crate::features::{Feature, FlowRecord};
use crate::flow::{FlowReply, FlowStart};
use crate::prefetch::prefetch;

/// Host context settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostConfig {
    /// Cap on hosts tracked.
    pub max_hosts: usize,
    /// A host is scored once it opened (or received) this many flows in the 10 s scale.
    pub min_flows: f32,
    /// Least time between two scorings of one host (µs).
    pub score_interval_us: i64,
    /// Hosts silent this long are forgotten at the next sweep (µs).
    pub idle_us: i64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_hosts: 100_000,
            min_flows: 10.0,
            score_interval_us: 1_000_000,
            idle_us: 300_000_000,
        }
    }
}

/// Counters of the host table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Hosts tracked now.
    pub hosts: u64,
    /// Single-flow hosts remembered outside the table (the pending array).
    pub pending: u64,
    /// Hosts removed to make room (single-flow hosts first, e.g. spoofed sources): from the
    /// table, or overwritten in the pending array.
    pub evicted: u64,
    /// Events not counted because the table was full of multi-flow hosts.
    pub refused: u64,
    /// Hosts forgotten after being idle.
    pub expired: u64,
    /// Times a host was due for scoring.
    pub scored: u64,
}

/// Distinct-value sketches of one side of a host, allocated from its second flow on.
#[derive(Clone, Debug)]
struct Sides {
    /// Out: destination ports, destination hosts. In: sources, ports.
    a: Distinct,
    b: Distinct,
}

#[derive(Clone, Debug)]
struct Host {
    last_us: i64,
    last_scored_us: Option<i64>,
    /// The host's 1 s flow rate when it was last scored.
    last_scored_level: f32,
    flows: u32,
    out_started: Decayed,
    out_answered: Decayed,
    out_refused: Decayed,
    in_started: Decayed,
    in_answered: Decayed,
    in_unsolicited: Decayed,
    /// Most used destination service (hash of address and port) and its decayed weight.
    top_service: u64,
    top_weight: Decayed,
    /// Short finished sessions to a login service: count, sum and sum of squares of client
    /// bytes.
    auth_n: Decayed,
    auth_sum: Decayed,
    auth_sumsq: Decayed,
    /// The first flow's values, replayed into the sketches when the second flow comes.
    first_out: Option<(u64, u64)>,
    first_in: Option<(u64, u64)>,
    out_sk: Option<Box<Sides>>,
    in_sk: Option<Box<Sides>>,
}

impl Host {
    fn new(ts: i64) -> Host {
        Host {
            last_us: ts,
            last_scored_us: None,
            last_scored_level: 0.0,
            flows: 0,
            out_started: Decayed::default(),
            out_answered: Decayed::default(),
            out_refused: Decayed::default(),
            in_started: Decayed::default(),
            in_answered: Decayed::default(),
            in_unsolicited: Decayed::default(),
            top_service: 0,
            top_weight: Decayed::default(),
            auth_n: Decayed::default(),
            auth_sum: Decayed::default(),
            auth_sumsq: Decayed::default(),
            first_out: None,
            first_in: None,
            out_sk: None,
            in_sk: None,
        }
    }

    /// Brings every decayed count to `ts`.
    fn advance(&mut self, ts: i64) {
        if ts <= self.last_us {
            return;
        }
        let d = Decay::after(ts - self.last_us);
        for c in [
            &mut self.out_started,
            &mut self.out_answered,
            &mut self.out_refused,
            &mut self.in_started,
            &mut self.in_answered,
            &mut self.in_unsolicited,
            &mut self.top_weight,
            &mut self.auth_n,
            &mut self.auth_sum,
            &mut self.auth_sumsq,
        ] {
            c.decay(d);
        }
        self.last_us = ts;
    }
}

/// One host's share of a flow event: what [`HostContext`] applies to the host's entry.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Ev {
    #[default]
    None,
    /// It opened a flow to the host hashed `dst` on `port` (`port | protocol << 16`).
    Out { ts: i64, dst: u64, port: u32 },
    /// It received a flow from the host hashed `src`; `opens`: the first packet could open it.
    In {
        ts: i64,
        src: u64,
        port: u32,
        opens: bool,
    },
    /// A flow it opened got its first answer.
    Answered { ts: i64, refused: bool },
    /// A flow it received: it answered.
    Answering { ts: i64 },
    /// It ended a short answered session to a login service, sending `bytes`.
    Auth { ts: i64, bytes: f32 },
}

impl Ev {
    fn ts(&self) -> i64 {
        match *self {
            Ev::None => i64::MIN,
            Ev::Out { ts, .. }
            | Ev::In { ts, .. }
            | Ev::Answered { ts, .. }
            | Ev::Answering { ts }
            | Ev::Auth { ts, .. } => ts,
        }
    }
}

/// Applies one event to a host: its counts brought to the event's time, then updated.
fn apply(h: &mut Host, ev: Ev, epoch: i64) {
    h.advance(ev.ts());
    match ev {
        Ev::None => {}
        Ev::Out { ts, dst, port } => {
            let service = mix(dst ^ (u64::from(port & 0xffff) << 48) ^ u64::from(port >> 16));
            h.flows = h.flows.saturating_add(1);
            h.out_started.add(1.0);
            if h.top_service == service || h.top_weight.at(2) < 1.0 {
                h.top_service = service;
                h.top_weight.add(1.0);
            } else {
                h.top_weight.add(-1.0);
            }
            let first_ts = epoch.max(h.last_us.min(ts));
            record(
                &mut h.out_sk,
                &mut h.first_out,
                u64::from(port),
                dst,
                ts,
                first_ts,
            );
        }
        Ev::In {
            ts,
            src,
            port,
            opens,
        } => {
            h.flows = h.flows.saturating_add(1);
            h.in_started.add(1.0);
            if !opens {
                h.in_unsolicited.add(1.0);
            }
            let first_ts = epoch.max(h.last_us.min(ts));
            record(
                &mut h.in_sk,
                &mut h.first_in,
                src,
                u64::from(port),
                ts,
                first_ts,
            );
        }
        Ev::Answered { refused, .. } => {
            h.out_answered.add(1.0);
            if refused {
                h.out_refused.add(1.0);
            }
        }
        Ev::Answering { .. } => h.in_answered.add(1.0),
        Ev::Auth { bytes, .. } => {
            h.auth_n.add(1.0);
            h.auth_sum.add(bytes);
            h.auth_sumsq.add(bytes * bytes);
        }
    }
}

/// Events a pending host keeps before it is moved into the table anyway.
const PENDING_EVENTS: usize = 3;
/// Most slots of the pending array (it has `max_hosts` rounded up to a power of two).
const MAX_PENDING_SLOTS: usize = 1 << 20;
/// Slots per set of the pending array: with 10% of the slots in use a set overflows (and
/// forgets a host) about once per 10^8 sets; at half, in a few hundred of 16,384.
const PENDING_WAYS: usize = 8;

/// A host seen in one flow only, not in the table yet: the events of that flow, in order.
/// Laid out so that everything a host's first event writes — time, count, address, first
/// event — is in the slot's first cache line (`repr(C)`, 64-byte aligned; a unit test checks
/// it): a flood's spoofed source costs one line of the slot, not two. Events past `n` are
/// leftovers of an earlier host and are never read.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Pending {
    /// Time of its latest event (`Host::last_us`).
    last_us: i64,
    /// Events held (0 = empty slot).
    n: u8,
    ip: Option<IpAddr>,
    evs: [Ev; PENDING_EVENTS],
}

/// Empties slot `k` of a pending set.
fn free_slot(ps: &mut PendingSet, k: usize, stats: &mut HostStats) {
    if ps.tags[k] != 0 {
        ps.tags[k] = 0;
        ps.slots[k] = Pending::default();
        stats.pending -= 1;
    }
}

/// One set of the pending array: the slots' tags (high hash bits, never 0; 0 = free) first,
/// in the set's first cache line, then the slots, so that a lookup reads one small,
/// contiguous piece of memory.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
struct PendingSet {
    tags: [u32; PENDING_WAYS],
    /// The slot to reuse next when the set is full.
    turn: u8,
    slots: [Pending; PENDING_WAYS],
}

fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            mix((v >> 64) as u64) ^ (v as u64)
        }
    }
}

/// Records a value into a side's sketches, allocating them at the side's second flow.
fn record(
    sk: &mut Option<Box<Sides>>,
    first: &mut Option<(u64, u64)>,
    a: u64,
    b: u64,
    ts: i64,
    first_ts: i64,
) {
    match (sk.as_mut(), *first) {
        (Some(s), _) => {
            s.a.insert(a, ts);
            s.b.insert(b, ts);
        }
        (None, None) => *first = Some((a, b)),
        (None, Some((fa, fb))) => {
            let mut s = Box::new(Sides {
                a: Distinct::new(first_ts),
                b: Distinct::new(first_ts),
            });
            s.a.insert(fa, first_ts);
            s.b.insert(fb, first_ts);
            s.a.insert(a, ts);
            s.b.insert(b, ts);
            *sk = Some(s);
        }
    }
}

/// Distinct count of a side: exact 0/1 before the sketches exist.
fn distinct(
    sk: &Option<Box<Sides>>,
    first: Option<(u64, u64)>,
    b: bool,
    now: i64,
    w: i64,
    last: i64,
) -> f64 {
    match sk {
        Some(s) => {
            if b {
                s.b.count(now, w)
            } else {
                s.a.count(now, w)
            }
        }
        None => f64::from(u8::from(first.is_some() && now - last <= w)),
    }
}

/// The host table.
pub struct HostContext {
    cfg: HostConfig,
    hosts: HashMap<IpAddr, Host>,
    /// Hosts in creation order, for evicting single-flow hosts first.
    order: VecDeque<IpAddr>,
    /// Single-flow hosts, in sets of [`PENDING_WAYS`] chosen by `seed`'s hash of the address
    /// (empty: not used).
    pending: Vec<PendingSet>,
    /// Off in tests that compare against the table-only behaviour.
    use_pending: bool,
    seed: hashbrown::DefaultHashBuilder,
    /// Time origin of new sketches (the first event seen).
    epoch_us: Option<i64>,
    next_sweep_us: i64,
    /// Time of the last sweep: a pending host idle for `idle_us` before it is gone, as a host
    /// in the table would be.
    last_sweep_us: i64,
    stats: HostStats,
}

/// At most two hosts become due for scoring per event.
pub type Due = [Option<IpAddr>; 2];

impl HostContext {
    pub fn new(cfg: HostConfig) -> HostContext {
        HostContext {
            cfg,
            hosts: HashMap::new(),
            order: VecDeque::new(),
            pending: Vec::new(),
            use_pending: true,
            seed: hashbrown::DefaultHashBuilder::default(),
            epoch_us: None,
            next_sweep_us: i64::MIN,
            last_sweep_us: i64::MIN,
            stats: HostStats::default(),
        }
    }

    pub fn stats(&self) -> HostStats {
        HostStats {
            hosts: self.hosts.len() as u64,
            ..self.stats
        }
    }

    pub fn config(&self) -> &HostConfig {
        &self.cfg
    }

    /// A new entry for `ip` in the table, if there is room.
    fn create(&mut self, ip: IpAddr, ts: i64) -> Option<&mut Host> {
        if self.hosts.len() >= self.cfg.max_hosts.max(1) && !self.make_room() {
            self.stats.refused += 1;
            return None;
        }
        self.order.push_back(ip);
        Some(self.hosts.entry(ip).or_insert_with(|| Host::new(ts)))
    }

    /// Whether single-flow hosts wait in the pending array (allocated at first use).
    fn pending_on(&mut self) -> bool {
        if self.cfg.min_flows <= 1.0 || !self.use_pending {
            return false;
        }
        if self.pending.is_empty() {
            let n = self
                .cfg
                .max_hosts
                .clamp(PENDING_WAYS, MAX_PENDING_SLOTS)
                .next_power_of_two();
            self.pending = crate::prefetch::huge_vec(PendingSet::default(), n / PENDING_WAYS);
        }
        true
    }

    /// The pending set of `ip` and the tag its slot carries.
    fn pending_set(&self, ip: IpAddr) -> Option<(&PendingSet, u32)> {
        let hash = self.seed.hash_one(ip);
        let tag = ((hash >> 32) as u32) | 1;
        let set = hash as usize & self.pending.len().wrapping_sub(1);
        Some((self.pending.get(set)?, tag))
    }

    /// A hint that a flow between `a` and `b` will start a few packets from now
    /// ([`crate::flow::FlowSink::coming`]): prefetches the lines of the pending array that
    /// [`HostContext::started`] will read — the set's tags, then (`close`) the slot it will
    /// take. Changes nothing.
    pub fn prefetch(&self, a: IpAddr, b: IpAddr, close: bool) {
        for ip in [a, b] {
            let Some((ps, tag)) = self.pending_set(ip) else {
                return;
            };
            if !close {
                prefetch(&ps.tags);
                continue;
            }
            // A host already pending may append an event (both lines of its slot); a new one
            // writes the first line of the slot it takes.
            let (k, known) = match (0..PENDING_WAYS).find(|&k| ps.tags[k] == tag) {
                Some(k) => (k, true),
                None => (
                    (0..PENDING_WAYS)
                        .find(|&k| ps.tags[k] == 0)
                        .unwrap_or(usize::from(ps.turn) % PENDING_WAYS),
                    false,
                ),
            };
            if let Some(p) = ps.slots.get(k) {
                prefetch(&p.last_us);
                if known {
                    prefetch(&p.evs[PENDING_EVENTS - 1]);
                }
            }
        }
    }

    /// Applies `ev` to host `ip`. A flow start (`starts`) makes an unknown host known: pending
    /// at its first flow, in the table from its second; other events only update known hosts.
    /// True when the host is in the table (and may be due for scoring).
    fn apply_to(&mut self, ip: IpAddr, ev: Ev, starts: bool, epoch: i64) -> bool {
        if let Some(h) = self.hosts.get_mut(&ip) {
            apply(h, ev, epoch);
            return true;
        }
        if !self.pending_on() {
            if !starts {
                return false;
            }
            let Some(h) = self.create(ip, ev.ts()) else {
                return false;
            };
            apply(h, ev, epoch);
            return true;
        }
        let hash = self.seed.hash_one(ip);
        let tag = ((hash >> 32) as u32) | 1;
        let set = hash as usize & (self.pending.len().max(1) - 1);
        let (idle, last_sweep) = (self.cfg.idle_us, self.last_sweep_us);
        let swept = |p: &Pending| last_sweep.saturating_sub(p.last_us) > idle;
        let Some(ps) = self.pending.get_mut(set) else {
            return false;
        };
        let mine = (0..PENDING_WAYS).find(|&k| ps.tags[k] == tag && ps.slots[k].ip == Some(ip));
        let mine = match mine {
            Some(k) if swept(&ps.slots[k]) => {
                // Idle past a sweep: gone, as it would be from the table.
                free_slot(ps, k, &mut self.stats);
                self.stats.expired += 1;
                None
            }
            m => m,
        };
        let Some(k) = mine else {
            if !starts {
                return false;
            }
            // A free slot of the set (by the tags), else the set's next in turn (first in,
            // first out: a flood fills every set).
            let k = match (0..PENDING_WAYS).find(|&k| ps.tags[k] == 0) {
                Some(k) => k,
                None => {
                    let k = usize::from(ps.turn) % PENDING_WAYS;
                    ps.turn = ps.turn.wrapping_add(1);
                    k
                }
            };
            if ps.tags[k] != 0 {
                if swept(&ps.slots[k]) {
                    self.stats.expired += 1;
                } else {
                    self.stats.evicted += 1;
                }
                self.stats.pending -= 1;
            }
            // Only the first line of the slot is written (see [`Pending`]).
            let p = &mut ps.slots[k];
            p.last_us = ev.ts();
            p.n = 1;
            p.ip = Some(ip);
            p.evs[0] = ev;
            ps.tags[k] = tag;
            self.stats.pending += 1;
            return false;
        };
        let p = &mut ps.slots[k];
        if !starts && usize::from(p.n) < PENDING_EVENTS {
            if let Some(slot) = p.evs.get_mut(usize::from(p.n)) {
                *slot = ev;
            }
            p.n += 1;
            p.last_us = p.last_us.max(ev.ts());
            return false;
        }
        // Its second flow: into the table, its first flow's events replayed in order.
        let p = *p;
        free_slot(ps, k, &mut self.stats);
        let Some(h) = self.create(ip, p.evs[0].ts()) else {
            return false;
        };
        for e in p.evs.iter().take(usize::from(p.n)) {
            apply(h, *e, epoch);
        }
        apply(h, ev, epoch);
        true
    }

    /// Evicts the oldest host that has seen a single flow (looking at most 64 deep).
    fn make_room(&mut self) -> bool {
        let made = evict_oldest(&mut self.hosts, &mut self.order, |h| h.flows <= 1);
        self.stats.evicted += u64::from(made);
        made
    }

    /// Forgets hosts idle longer than `idle_us` (every 10 s of flow time).
    fn sweep(&mut self, now: i64) {
        if now < self.next_sweep_us {
            return;
        }
        self.next_sweep_us = now.saturating_add(10_000_000);
        self.last_sweep_us = now;
        let idle = self.cfg.idle_us;
        let before = self.hosts.len();
        self.hosts.retain(|_, h| now - h.last_us <= idle);
        self.stats.expired += (before - self.hosts.len()) as u64;
        let hosts = &self.hosts;
        self.order.retain(|ip| hosts.contains_key(ip));
    }

    /// Whether `ip` should be scored now; marks it scored.
    fn due(&mut self, ip: IpAddr, now: i64) -> Option<IpAddr> {
        let (min, every) = (self.cfg.min_flows, self.cfg.score_interval_us);
        let h = self.hosts.get_mut(&ip)?;
        let busy = h.out_started.at(1).max(h.in_started.at(1)) >= min;
        let level = h.out_started.at(0).max(h.in_started.at(0));
        // Once per interval, and at once when the 1 s rate has grown fourfold since the last
        // scoring (a flood shorter than the interval is still seen).
        let ready = h.last_scored_us.is_none_or(|t| now - t >= every)
            || (level >= min && level >= 4.0 * h.last_scored_level);
        if busy && ready {
            h.last_scored_us = Some(now);
            h.last_scored_level = level;
            self.stats.scored += 1;
            Some(ip)
        } else {
            None
        }
    }

    /// A flow started: its sender opened it toward its receiver.
    pub fn started(&mut self, s: &FlowStart) -> Due {
        let ts = s.ts_us;
        let epoch = *self.epoch_us.get_or_insert(ts);
        self.sweep(ts);
        let port = u32::from(s.dst_port) | (u32::from(s.protocol) << 16);
        let (src, dst) = (ip_hash(s.src_ip), ip_hash(s.dst_ip));
        let out = Ev::Out { ts, dst, port };
        let src_known = self.apply_to(s.src_ip, out, true, epoch);
        let opens = s.protocol != 6 || s.tcp_flags & (tf::SYN | tf::ACK) == tf::SYN;
        let inn = Ev::In {
            ts,
            src,
            port,
            opens,
        };
        let dst_known = self.apply_to(s.dst_ip, inn, true, epoch);
        [
            src_known.then(|| self.due(s.src_ip, ts)).flatten(),
            dst_known.then(|| self.due(s.dst_ip, ts)).flatten(),
        ]
    }

    /// [`HostContext::started`], then `scored(host, vector, now)` for each host due.
    pub fn on_start(&mut self, s: &FlowStart, mut scored: impl FnMut(IpAddr, &HostVector, i64)) {
        for ip in self.started(s).into_iter().flatten() {
            if let Some(v) = self.vector(ip, s.ts_us) {
                scored(ip, &v, s.ts_us);
            }
        }
    }

    /// A flow's opener got its first answer.
    pub fn replied(&mut self, r: &FlowReply) {
        let ts = r.ts_us;
        let refused = r.protocol == 6 && r.tcp_flags & tf::RST != 0;
        let epoch = self.epoch_us.unwrap_or(ts);
        self.apply_to(r.opener_ip, Ev::Answered { ts, refused }, false, epoch);
        self.apply_to(r.responder_ip, Ev::Answering { ts }, false, epoch);
    }

    /// A flow ended: short answered sessions to a login service count toward repetition.
    pub fn ended(&mut self, r: &FlowRecord) {
        let answered = r.get(Feature::TotalBwdPackets) > 0.0;
        let short = r.end_us - r.start_us <= 60_000_000;
        if !(answered && short && is_auth_port(r.dst_port) && r.protocol == 6) {
            return;
        }
        let bytes = r.get(Feature::TotalLenFwdPackets).max(0.0) as f32;
        let ts = r.end_us;
        let epoch = self.epoch_us.unwrap_or(ts);
        self.apply_to(r.src_ip, Ev::Auth { ts, bytes }, false, epoch);
    }

    /// The feature vector of a tracked host at `now`.
    pub fn vector(&self, ip: IpAddr, now: i64) -> Option<HostVector> {
        let h = self.hosts.get(&ip)?;
        let mut v = [0.0; NUM_HOST_FEATURES];
        let rate = |c: &Decayed, i: usize| f64::from(c.at(i)) / SCALES_S[i];
        let ratio = |num: f32, den: f32| {
            if den < 0.5 {
                0.0
            } else {
                f64::from((num / den).clamp(0.0, 1.0))
            }
        };
        let w10 = 10_000_000;
        let w60 = 60_000_000;
        let last = h.last_us;
        v[H::OutRate1s as usize] = rate(&h.out_started, 0);
        v[H::OutRate10s as usize] = rate(&h.out_started, 1);
        v[H::OutRate60s as usize] = rate(&h.out_started, 2);
        v[H::OutDstPorts10s as usize] = distinct(&h.out_sk, h.first_out, false, now, w10, last);
        v[H::OutDstPorts60s as usize] = distinct(&h.out_sk, h.first_out, false, now, w60, last);
        v[H::OutDstHosts10s as usize] = distinct(&h.out_sk, h.first_out, true, now, w10, last);
        v[H::OutDstHosts60s as usize] = distinct(&h.out_sk, h.first_out, true, now, w60, last);
        let (s10, a10) = (h.out_started.at(1), h.out_answered.at(1));
        v[H::OutUnanswered10s as usize] = ratio(s10 - a10, s10);
        v[H::OutRefused10s as usize] = ratio(h.out_refused.at(1), s10);
        v[H::OutTopServiceShare60s as usize] = ratio(h.top_weight.at(2), h.out_started.at(2));
        let n = h.auth_n.at(2);
        v[H::OutAuthSessions60s as usize] = f64::from(n);
        v[H::OutSessionSizeCv60s as usize] = if n < 3.0 {
            1.0
        } else {
            let mean = f64::from(h.auth_sum.at(2)) / f64::from(n);
            let var = (f64::from(h.auth_sumsq.at(2)) / f64::from(n) - mean * mean).max(0.0);
            if mean <= 0.0 {
                1.0
            } else {
                (var.sqrt() / mean).min(1.0)
            }
        };
        v[H::InRate1s as usize] = rate(&h.in_started, 0);
        v[H::InRate10s as usize] = rate(&h.in_started, 1);
        v[H::InRate60s as usize] = rate(&h.in_started, 2);
        v[H::InSources10s as usize] = distinct(&h.in_sk, h.first_in, false, now, w10, last);
        v[H::InSources60s as usize] = distinct(&h.in_sk, h.first_in, false, now, w60, last);
        v[H::InPorts10s as usize] = distinct(&h.in_sk, h.first_in, true, now, w10, last);
        let (i10, ia10) = (h.in_started.at(1), h.in_answered.at(1));
        v[H::InUnanswered10s as usize] = ratio(i10 - ia10, i10);
        v[H::InUnsolicited10s as usize] = ratio(h.in_unsolicited.at(1), i10);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;

    const T0: i64 = 1_700_000_000_000_000;

    #[test]
    fn a_pending_hosts_first_event_fits_in_one_line() {
        // What a host's first flow writes (see `Pending`) lies in the slot's first 64 bytes,
        // and every slot of a set starts a line.
        assert_eq!(std::mem::align_of::<Pending>(), 64);
        assert_eq!(std::mem::size_of::<Pending>() % 64, 0);
        let first_event_end = std::mem::offset_of!(Pending, evs) + std::mem::size_of::<Ev>();
        assert!(
            first_event_end <= 64,
            "first event ends at byte {first_event_end}"
        );
        assert!(std::mem::offset_of!(Pending, ip) + std::mem::size_of::<Option<IpAddr>>() <= 64);
        assert_eq!(std::mem::offset_of!(PendingSet, slots) % 64, 0);
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn syn(t: i64, src: IpAddr, dst: IpAddr, dport: u16) -> FlowStart {
        FlowStart {
            ts_us: T0 + t,
            src_ip: src,
            dst_ip: dst,
            src_port: 40000,
            dst_port: dport,
            protocol: 6,
            tcp_flags: tf::SYN,
        }
    }

    fn get(v: &HostVector, f: H) -> f64 {
        v[f as usize]
    }

    #[test]
    fn a_port_scan_shows_ports_refusals_and_rate() {
        let mut c = HostContext::new(HostConfig::default());
        let (scanner, target) = (ip(1), ip(2));
        let mut due = 0;
        for port in 0..200u16 {
            let t = i64::from(port) * 1000; // 1000 probes/s
            due += c
                .started(&syn(t, scanner, target, port))
                .iter()
                .flatten()
                .count();
            if port % 10 != 0 {
                c.replied(&FlowReply {
                    ts_us: T0 + t + 100,
                    opener_ip: scanner,
                    responder_ip: target,
                    responder_port: port,
                    protocol: 6,
                    tcp_flags: tf::RST | tf::ACK,
                });
            }
        }
        // Scored when it reached 10 flows, then once a second or when its rate grew fourfold.
        assert!((2..=6).contains(&due), "{due}");
        let v = c.vector(scanner, T0 + 200_000).unwrap();
        assert!(get(&v, H::OutDstPorts10s) >= 150.0, "{v:?}");
        assert_eq!(get(&v, H::OutDstHosts10s), 1.0);
        assert!((get(&v, H::OutRefused10s) - 0.9).abs() < 0.02, "{v:?}");
        assert!(get(&v, H::OutRate1s) > 150.0, "{v:?}");
        let t = c.vector(target, T0 + 200_000).unwrap();
        assert_eq!(get(&t, H::InSources10s), 1.0);
        assert!(get(&t, H::InPorts10s) >= 150.0);
    }

    #[test]
    fn a_spoofed_flood_shows_many_unanswered_sources_at_the_victim() {
        let mut c = HostContext::new(HostConfig {
            max_hosts: 1000,
            ..HostConfig::default()
        });
        let victim = ip(0xffff);
        for i in 0..5000u32 {
            c.started(&syn(i64::from(i) * 100, ip(100_000 + i), victim, 25565));
        }
        let v = c.vector(victim, T0 + 500_000).unwrap();
        assert_eq!(get(&v, H::InSources10s), super::Distinct::MAX);
        assert_eq!(get(&v, H::InUnanswered10s), 1.0);
        assert!(get(&v, H::InRate1s) > 1000.0, "{v:?}");
        // Memory stays bounded: single-flow spoofed sources never enter the table; they wait
        // in the pending array, overwriting each other.
        let s = c.stats();
        assert_eq!(s.hosts, 1, "{s:?}");
        assert!(s.pending <= 1024, "{s:?}");
        assert_eq!(s.pending + s.evicted, 5000, "{s:?}");
        assert!(
            c.vector(victim, T0 + 500_000).is_some(),
            "the victim is kept"
        );
    }

    #[test]
    fn quiet_hosts_are_not_scored_and_counts_decay() {
        let mut c = HostContext::new(HostConfig::default());
        for i in 0..5 {
            let due = c.started(&syn(i * 1_000_000, ip(1), ip(2), 443));
            assert_eq!(due, [None, None]);
        }
        let v = c.vector(ip(1), T0 + 5_000_000).unwrap();
        assert_eq!(get(&v, H::OutDstPorts10s), 1.0);
        assert_eq!(get(&v, H::OutTopServiceShare60s), 1.0);
        let later = c.vector(ip(1), T0 + 120_000_000).unwrap();
        assert_eq!(get(&later, H::OutDstPorts10s), 0.0);
    }

    #[test]
    fn repeated_login_sessions_count_as_auth_sessions() {
        let mut c = HostContext::new(HostConfig::default());
        let (guesser, server) = (ip(7), ip(8));
        for i in 0..30i64 {
            let t = T0 + i * 1_000_000;
            c.started(&syn(i * 1_000_000, guesser, server, 22));
            let mut values = [0.0; crate::features::NUM_FEATURES];
            values[Feature::TotalBwdPackets as usize] = 12.0;
            values[Feature::TotalLenFwdPackets as usize] = 1500.0 + (i % 3) as f64;
            let mut r = FlowRecord::from_values(values);
            r.src_ip = guesser;
            r.dst_ip = server;
            r.dst_port = 22;
            r.protocol = 6;
            r.start_us = t;
            r.end_us = t + 800_000;
            c.ended(&r);
        }
        let v = c.vector(guesser, T0 + 30_000_000).unwrap();
        assert!(get(&v, H::OutAuthSessions60s) > 15.0, "{v:?}");
        assert!(get(&v, H::OutSessionSizeCv60s) < 0.01, "{v:?}");
    }

    /// A host with two flows or more has the same vector whether its first flow waited in the
    /// pending array or opened its entry at once, and the same hosts are due: starts both ways, replies (answered, refused), login sessions, a host talking to
    /// itself, and a silence longer than `idle_us` that forgets idle hosts.
    #[test]
    fn pending_hosts_end_up_with_the_same_vectors() {
        let mut pend = HostContext::new(HostConfig::default());
        let mut all = HostContext::new(HostConfig::default());
        all.use_pending = false;
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = |n: u64| {
            rng = mix(rng);
            rng % n
        };
        let mut t = 0i64;
        let mut due = 0;
        for i in 0..3000 {
            t += next(20_000) as i64 + if i == 1500 { 400_000_000 } else { 0 };
            let (a, b) = (ip(next(60) as u32), ip(next(60) as u32));
            let port = [22u16, 80, 443, 3389][next(4) as usize];
            let mut s = syn(t, a, b, port);
            if next(5) == 0 {
                s.tcp_flags = tf::SYN | tf::ACK;
            }
            let (x, y) = (pend.started(&s), all.started(&s));
            assert_eq!(x, y);
            due += x.iter().flatten().count();
            if next(3) > 0 {
                let r = FlowReply {
                    ts_us: T0 + t + 50,
                    opener_ip: a,
                    responder_ip: b,
                    responder_port: port,
                    protocol: 6,
                    tcp_flags: if next(4) == 0 {
                        tf::RST
                    } else {
                        tf::SYN | tf::ACK
                    },
                };
                pend.replied(&r);
                all.replied(&r);
                let mut values = [0.0; crate::features::NUM_FEATURES];
                values[Feature::TotalBwdPackets as usize] = 3.0;
                values[Feature::TotalLenFwdPackets as usize] = next(3000) as f64;
                let mut f = FlowRecord::from_values(values);
                (f.src_ip, f.dst_ip, f.dst_port, f.protocol) = (a, b, port, 6);
                (f.start_us, f.end_us) = (T0 + t, T0 + t + 100);
                pend.ended(&f);
                all.ended(&f);
            }
        }
        let now = T0 + t + 1_000;
        let mut tracked = 0;
        for n in 0..60 {
            let Some(v) = pend.vector(ip(n), now) else {
                continue;
            };
            tracked += 1;
            let w = all.vector(ip(n), now).unwrap();
            for (x, y) in v.iter().zip(&w) {
                assert_eq!(x.to_bits(), y.to_bits(), "host {n}: {v:?} vs {w:?}");
            }
        }
        assert!(tracked >= 30, "{tracked}");
        assert!(due >= 10, "{due}");
        assert!(pend.stats().expired > 0, "{:?}", pend.stats());
    }

    /// Well below its size the pending array forgets nobody: 6,000 hosts with one flow each,
    /// then a second flow from each, are all in the table with the values of a table that held
    /// them from their first flow (a set overflows here with a chance of about 10^-5).
    #[test]
    fn six_thousand_single_flow_hosts_are_all_remembered() {
        let mut pend = HostContext::new(HostConfig::default());
        let mut all = HostContext::new(HostConfig::default());
        all.use_pending = false;
        let server = ip(0x00ff_0000);
        for round in 0..2i64 {
            for n in 0..6_000u32 {
                let s = syn(round * 200_000 + i64::from(n) * 10, ip(1 + n), server, 443);
                assert_eq!(pend.started(&s), all.started(&s));
            }
        }
        let st = pend.stats();
        assert_eq!((st.evicted, st.pending, st.hosts), (0, 0, 6_001), "{st:?}");
        let now = T0 + 400_000;
        for n in (0..6_000u32).step_by(61) {
            let (v, w) = (
                pend.vector(ip(1 + n), now).unwrap(),
                all.vector(ip(1 + n), now).unwrap(),
            );
            for (x, y) in v.iter().zip(&w) {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }
}
