//! Per-host state, updated as flows start, get their first answer and end (the flow table's
//! [`crate::flow::FlowSink`] events), so a scan or a flood is seen while it happens. O(1) per
//! event; the table of hosts is capped and what the cap costs is counted.

use std::collections::VecDeque;

// hashbrown's default hasher (foldhash, randomly seeded): several times cheaper than SipHash on
// the flood path, where every spoofed SYN looks up two hosts.
use hashbrown::HashMap;
use std::net::IpAddr;

use super::features::{HostFeature as H, HostVector, NUM_HOST_FEATURES, is_auth_port};
use super::sketch::{Decay, Decayed, Distinct, SCALES_S, mix};
use crate::decode::tcp_flags as tf;
use crate::features::{Feature, FlowRecord};
use crate::flow::{FlowReply, FlowStart};

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
    /// Hosts removed to make room (single-flow hosts first, e.g. spoofed sources).
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
    /// Time origin of new sketches (the first event seen).
    epoch_us: Option<i64>,
    next_sweep_us: i64,
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
            epoch_us: None,
            next_sweep_us: i64::MIN,
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

    /// The host's entry, created if there is room.
    fn entry(&mut self, ip: IpAddr, ts: i64) -> Option<&mut Host> {
        if !self.hosts.contains_key(&ip) {
            if self.hosts.len() >= self.cfg.max_hosts.max(1) && !self.make_room() {
                self.stats.refused += 1;
                return None;
            }
            self.hosts.insert(ip, Host::new(ts));
            self.order.push_back(ip);
        }
        let h = self.hosts.get_mut(&ip)?;
        h.advance(ts);
        Some(h)
    }

    /// Evicts the oldest host that has seen a single flow (looking at most 64 deep).
    fn make_room(&mut self) -> bool {
        for _ in 0..64 {
            let Some(ip) = self.order.pop_front() else {
                return false;
            };
            match self.hosts.get(&ip) {
                Some(h) if h.flows <= 1 => {
                    self.hosts.remove(&ip);
                    self.stats.evicted += 1;
                    return true;
                }
                Some(_) => self.order.push_back(ip),
                None => {}
            }
        }
        false
    }

    /// Forgets hosts idle longer than `idle_us` (every 10 s of flow time).
    fn sweep(&mut self, now: i64) {
        if now < self.next_sweep_us {
            return;
        }
        self.next_sweep_us = now.saturating_add(10_000_000);
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
        let service =
            mix(ip_hash(s.dst_ip) ^ (u64::from(s.dst_port) << 48) ^ u64::from(s.protocol));
        let port = u64::from(s.dst_port) | (u64::from(s.protocol) << 16);
        if let Some(h) = self.entry(s.src_ip, ts) {
            h.flows = h.flows.saturating_add(1);
            h.out_started.add(1.0);
            if h.top_service == service || h.top_weight.at(2) < 1.0 {
                h.top_service = service;
                h.top_weight.add(1.0);
            } else {
                h.top_weight.add(-1.0);
            }
            record(
                &mut h.out_sk,
                &mut h.first_out,
                port,
                ip_hash(s.dst_ip),
                ts,
                epoch.max(h.last_us.min(ts)),
            );
        }
        let opens = s.protocol != 6 || s.tcp_flags & (tf::SYN | tf::ACK) == tf::SYN;
        if let Some(h) = self.entry(s.dst_ip, ts) {
            h.flows = h.flows.saturating_add(1);
            h.in_started.add(1.0);
            if !opens {
                h.in_unsolicited.add(1.0);
            }
            record(
                &mut h.in_sk,
                &mut h.first_in,
                ip_hash(s.src_ip),
                port,
                ts,
                epoch.max(h.last_us.min(ts)),
            );
        }
        [self.due(s.src_ip, ts), self.due(s.dst_ip, ts)]
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
        if let Some(h) = self.hosts.get_mut(&r.opener_ip) {
            h.advance(ts);
            h.out_answered.add(1.0);
            if refused {
                h.out_refused.add(1.0);
            }
        }
        if let Some(h) = self.hosts.get_mut(&r.responder_ip) {
            h.advance(ts);
            h.in_answered.add(1.0);
        }
    }

    /// A flow ended: short answered sessions to a login service count toward repetition.
    pub fn ended(&mut self, r: &FlowRecord) {
        let answered = r.get(Feature::TotalBwdPackets) > 0.0;
        let short = r.end_us - r.start_us <= 60_000_000;
        if !(answered && short && is_auth_port(r.dst_port) && r.protocol == 6) {
            return;
        }
        let bytes = r.get(Feature::TotalLenFwdPackets).max(0.0) as f32;
        if let Some(h) = self.hosts.get_mut(&r.src_ip) {
            h.advance(r.end_us);
            h.auth_n.add(1.0);
            h.auth_sum.add(bytes);
            h.auth_sumsq.add(bytes * bytes);
        }
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
        // Memory stays bounded: single-flow spoofed sources made room for each other.
        let s = c.stats();
        assert!(s.hosts <= 1000, "{s:?}");
        assert!(s.evicted >= 4000, "{s:?}");
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
}
