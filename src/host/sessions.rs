//! Session rules: thresholds on the TCP sessions one source holds, or repeats, toward one service
//! (a destination address and port). They catch what neither one flow nor a host's rates show,
//! because the attacker needs only a handful of connections:
//!
//! - **password guessing**: several sessions to a login service opened within seconds and all
//!   still open (hydra, medusa and ncrack run parallel tasks, each trying passwords until the
//!   server hangs up), or many small finished sessions to it within a window (one or a few
//!   guesses per connection: Zeek's `SSH::Password_Guessing` counts these);
//! - **connection exhaustion** (slowloris, slow POST/read): one source holding many answered
//!   connections open to one service.
//!
//! A session counts as open from its first answer ([`FlowReply`]) to its close ([`FlowClose`]:
//! FIN both ways, or a reset) or, without one, its flow's end, so spoofed SYNs never count. O(1) per event; the table is capped, and
//! what the cap costs is counted.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::capped::evict_oldest;

use crate::features::{EndReason, Feature, FlowRecord};
use crate::flow::{FlowClose, FlowReply};

/// Session rule settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Login services the brute-force rules watch (TCP destination ports).
    pub login_ports: Vec<u16>,
    /// Brute force: this many sessions to one login service opened within `fresh_us` and still
    /// open (0 = off).
    pub parallel: u32,
    /// How recent a session's start must be to count toward `parallel` (µs).
    pub fresh_us: i64,
    /// Brute force: this many attempt-sized sessions to one login service ended within
    /// `window_us` (0 = off).
    pub attempts: u32,
    pub window_us: i64,
    /// A finished session is attempt-sized when neither side sent more payload than this.
    pub attempt_max_bytes: f64,
    /// Connection exhaustion: this many answered connections open at once from one source to
    /// one service, any port (0 = off).
    pub open: u32,
    /// Cap on (source, service) entries.
    pub max_entries: usize,
    /// The flow table reports TCP closes ([`FlowClose`]; not in `compat = "cic2017"`): a
    /// session closed there is no longer open when its flow ends after the linger.
    pub closes_reported: bool,
}

/// Most sessions the `parallel` and `attempts` rules can count (their largest threshold).
pub const RING: usize = 16;

/// Default login services: FTP, SSH, Telnet, RDP, VNC. Databases, SMB and mail are left out:
/// web applications open a database session per request, Windows clients open and close SMB
/// sessions all day, webmail opens an IMAP session per page, and each looks like a guess.
pub const LOGIN_PORTS: [u16; 5] = [21, 22, 23, 3389, 5900];

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            login_ports: LOGIN_PORTS.to_vec(),
            parallel: 4,
            fresh_us: 10_000_000,
            attempts: 5,
            window_us: 60_000_000,
            attempt_max_bytes: 16_384.0,
            open: 50,
            max_entries: 65_536,
            closes_reported: true,
        }
    }
}

/// Counters of the session table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Entries tracked now.
    pub entries: u64,
    /// Entries removed to make room (those with at most one open session and no attempts).
    pub evicted: u64,
    /// Sessions not counted because the table was full.
    pub refused: u64,
    /// Entries forgotten after being idle.
    pub expired: u64,
}

/// One source toward one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub port: u16,
}

/// What the sessions look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Parallel or repeated small sessions to a login service.
    BruteForce,
    /// Many connections held open to one service.
    ConnectionExhaustion,
}

/// A rule that fired, with the numbers behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionFinding {
    pub ts_us: i64,
    pub service: Service,
    pub kind: SessionKind,
    /// Answered sessions open now.
    pub open: u32,
    /// Of those, how many started within the fresh window (at most).
    pub recent_open: u32,
    /// Attempt-sized sessions ended within the window.
    pub attempts: u32,
    /// The window the counts cover, seconds.
    pub window_s: f64,
}

/// The latest `RING` of a set of event times: answer times of the sessions open now, or end
/// times of attempt-sized sessions.
#[derive(Clone, Copy, Debug, Default)]
struct TimeSet {
    t: [i64; RING],
    n: u8,
}

impl TimeSet {
    fn insert(&mut self, ts: i64) {
        if usize::from(self.n) == RING {
            // Full: forget the oldest (it is the least recent either way).
            self.remove_at(self.oldest());
        }
        self.t[usize::from(self.n)] = ts;
        self.n += 1;
    }
    fn oldest(&self) -> usize {
        (0..usize::from(self.n))
            .min_by_key(|&i| self.t[i])
            .unwrap_or(0)
    }
    fn remove_at(&mut self, i: usize) {
        if i < usize::from(self.n) {
            self.n -= 1;
            self.t[i] = self.t[usize::from(self.n)];
        }
    }
    /// A session that started at `start_us` ended: forgets the earliest answer at or after its
    /// start (exact for sessions one after another; close enough when they overlap).
    fn release(&mut self, start_us: i64) {
        let i = (0..usize::from(self.n))
            .filter(|&i| self.t[i] >= start_us)
            .min_by_key(|&i| self.t[i]);
        if let Some(i) = i {
            self.remove_at(i);
        }
    }
    fn since(&self, from: i64) -> u32 {
        self.t[..usize::from(self.n)]
            .iter()
            .filter(|&&t| t >= from)
            .count() as u32
    }
    fn is_empty(&self) -> bool {
        self.n == 0
    }
}

#[derive(Clone, Debug, Default)]
struct Entry {
    open: u32,
    last_us: i64,
    open_at: TimeSet,
    attempts: TimeSet,
}

impl Entry {
    fn release(&mut self, start_us: i64, ts: i64) {
        self.open = self.open.saturating_sub(1);
        self.open_at.release(start_us);
        self.last_us = self.last_us.max(ts);
    }
}

/// The session table.
pub struct SessionRules {
    cfg: SessionConfig,
    map: HashMap<Service, Entry>,
    order: VecDeque<Service>,
    next_sweep_us: i64,
    stats: SessionStats,
}

impl SessionRules {
    pub fn new(mut cfg: SessionConfig) -> SessionRules {
        cfg.login_ports.sort_unstable();
        cfg.login_ports.dedup();
        SessionRules {
            cfg,
            map: HashMap::new(),
            order: VecDeque::new(),
            next_sweep_us: i64::MIN,
            stats: SessionStats::default(),
        }
    }

    fn is_login(&self, port: u16) -> bool {
        self.cfg.login_ports.binary_search(&port).is_ok()
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            entries: self.map.len() as u64,
            ..self.stats
        }
    }

    fn entry(&mut self, s: Service, ts: i64) -> Option<&mut Entry> {
        if !self.map.contains_key(&s) {
            if self.map.len() >= self.cfg.max_entries.max(1) && !self.make_room() {
                self.stats.refused += 1;
                return None;
            }
            self.map.insert(s, Entry::default());
            self.order.push_back(s);
        }
        let e = self.map.get_mut(&s)?;
        e.last_us = e.last_us.max(ts);
        Some(e)
    }

    /// Evicts the oldest entry with at most one open session and no attempts (looking at most
    /// 64 deep): what a flood of answered one-off connections leaves behind.
    fn make_room(&mut self) -> bool {
        let made = evict_oldest(&mut self.map, &mut self.order, |e| {
            e.open <= 1 && e.attempts.is_empty()
        });
        self.stats.evicted += u64::from(made);
        made
    }

    /// Forgets entries with nothing open and nothing recent (every 10 s of flow time). An entry
    /// idle for 10 minutes goes even with sessions counted open: their ends were lost (a flow
    /// the table could not hold).
    fn sweep(&mut self, now: i64) {
        if now < self.next_sweep_us {
            return;
        }
        self.next_sweep_us = now.saturating_add(10_000_000);
        let window = self.cfg.window_us.max(self.cfg.fresh_us);
        let before = self.map.len();
        self.map.retain(|_, e| {
            let idle = now - e.last_us;
            !(idle > 600_000_000 || (e.open == 0 && idle > window))
        });
        self.stats.expired += (before - self.map.len()) as u64;
        let map = &self.map;
        self.order.retain(|s| map.contains_key(s));
    }

    fn finding(&self, s: Service, e: &Entry, now: i64, kind: SessionKind) -> SessionFinding {
        let window_us = match kind {
            SessionKind::BruteForce => self.cfg.window_us,
            SessionKind::ConnectionExhaustion => self.cfg.fresh_us,
        };
        SessionFinding {
            ts_us: now,
            service: s,
            kind,
            open: e.open,
            recent_open: e.open_at.since(now - self.cfg.fresh_us),
            attempts: e.attempts.since(now - self.cfg.window_us),
            window_s: window_us as f64 / 1e6,
        }
    }

    /// A TCP session got its first answer: it is open.
    pub fn replied(&mut self, r: &FlowReply) -> Option<SessionFinding> {
        if r.protocol != 6 {
            return None;
        }
        let ts = r.ts_us;
        self.sweep(ts);
        let s = Service {
            src: r.opener_ip,
            dst: r.responder_ip,
            port: r.responder_port,
        };
        let (parallel, fresh_us, open) = (self.cfg.parallel, self.cfg.fresh_us, self.cfg.open);
        let login = self.is_login(s.port);
        let e = self.entry(s, ts)?;
        e.open = e.open.saturating_add(1);
        e.open_at.insert(ts);
        let recent = e.open_at.since(ts - fresh_us);
        let kind = if parallel > 0 && login && recent >= parallel {
            SessionKind::BruteForce
        } else if open > 0 && e.open >= open {
            SessionKind::ConnectionExhaustion
        } else {
            return None;
        };
        let e = self.map.get(&s)?;
        Some(self.finding(s, e, ts, kind))
    }

    /// A TCP connection closed: it is no longer held open.
    pub fn closed(&mut self, c: &FlowClose) {
        if !c.answered {
            return;
        }
        let s = Service {
            src: c.opener_ip,
            dst: c.responder_ip,
            port: c.responder_port,
        };
        if let Some(e) = self.map.get_mut(&s) {
            e.release(c.start_us, c.ts_us);
        }
    }

    /// A flow ended: an answered TCP session not closed before is no longer open; an
    /// attempt-sized one to a login service counts as an attempt.
    pub fn ended(&mut self, r: &FlowRecord) -> Option<SessionFinding> {
        if r.protocol != 6 || r.get(Feature::TotalBwdPackets) <= 0.0 {
            return None;
        }
        let release = !(self.cfg.closes_reported && r.end_reason == EndReason::TcpClose);
        let ts = r.end_us;
        let s = Service {
            src: r.src_ip,
            dst: r.dst_ip,
            port: r.dst_port,
        };
        let (attempts, window_us, max_bytes) = (
            self.cfg.attempts,
            self.cfg.window_us,
            self.cfg.attempt_max_bytes,
        );
        let attempt = attempts > 0
            && self.is_login(s.port)
            && r.get(Feature::TotalLenFwdPackets) <= max_bytes
            && r.get(Feature::TotalLenBwdPackets) <= max_bytes;
        if !attempt {
            if let Some(e) = self.map.get_mut(&s)
                && release
            {
                e.release(r.start_us, ts);
            }
            return None;
        }
        let e = self.entry(s, ts)?;
        if release {
            e.release(r.start_us, ts);
        }
        e.attempts.insert(ts);
        if e.attempts.since(ts - window_us) < attempts {
            return None;
        }
        let e = self.map.get(&s)?;
        Some(self.finding(s, e, ts, SessionKind::BruteForce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::NUM_FEATURES;

    const SRC: &str = "10.0.0.9";
    const DST: &str = "10.0.0.20";

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn reply(ts: i64, port: u16) -> FlowReply {
        FlowReply {
            ts_us: ts,
            opener_ip: ip(SRC),
            responder_ip: ip(DST),
            responder_port: port,
            protocol: 6,
            tcp_flags: 0x12,
        }
    }

    fn end(ts: i64, port: u16, fwd_bytes: f64, bwd_bytes: f64) -> FlowRecord {
        let mut r = FlowRecord::from_values([0.0; NUM_FEATURES]);
        r.src_ip = ip(SRC);
        r.dst_ip = ip(DST);
        r.src_port = 40000;
        r.dst_port = port;
        r.protocol = 6;
        r.start_us = ts - 1_000_000;
        r.end_us = ts;
        r.end_reason = EndReason::Timeout;
        r.values[Feature::TotalBwdPackets as usize] = 5.0;
        r.values[Feature::TotalLenFwdPackets as usize] = fwd_bytes;
        r.values[Feature::TotalLenBwdPackets as usize] = bwd_bytes;
        r
    }

    #[test]
    fn parallel_login_sessions_are_brute_force_at_the_fourth() {
        let mut t = SessionRules::new(SessionConfig::default());
        for i in 0..3 {
            assert_eq!(t.replied(&reply(1_000_000 + i * 1000, 22)), None);
        }
        let f = t.replied(&reply(1_004_000, 22));
        let f = f.map(|f| (f.kind, f.open, f.recent_open, f.service.port));
        assert_eq!(f, Some((SessionKind::BruteForce, 4, 4, 22)));
    }

    #[test]
    fn sequential_sessions_and_old_ones_are_not_parallel() {
        let mut t = SessionRules::new(SessionConfig::default());
        // An admin's three old terminals stay open ...
        for i in 0..3 {
            assert_eq!(t.replied(&reply(i * 1000, 22)), None);
        }
        // ... and ten large copies (scp) run one after the other, a minute later.
        for i in 0..10 {
            let ts = 60_000_000 + i * 500_000;
            assert_eq!(t.replied(&reply(ts, 22)), None, "copy {i}");
            assert_eq!(t.ended(&end(ts + 400_000, 22, 8e6, 4e3)), None, "copy {i}");
        }
        // Mail clients keep several IMAP connections, applications several database sessions:
        // not login services by default.
        for i in 0..6 {
            assert_eq!(t.replied(&reply(70_000_000 + i, 993)), None);
            assert_eq!(t.replied(&reply(70_000_000 + i, 5432)), None);
        }
    }

    #[test]
    fn repeated_small_sessions_are_brute_force_within_the_window() {
        let mut t = SessionRules::new(SessionConfig::default());
        // Four guesses in the first minute, the fifth after it: the first has left the window.
        for (n, at_s) in [0, 12, 24, 36, 64].into_iter().enumerate() {
            let ts = at_s * 1_000_000;
            assert_eq!(t.replied(&reply(ts, 22)), None);
            assert_eq!(
                t.ended(&end(ts + 3_000_000, 22, 1800.0, 2600.0)),
                None,
                "{n}"
            );
        }
        assert_eq!(t.replied(&reply(70_000_000, 22)), None);
        let f = t.ended(&end(73_000_000, 22, 1800.0, 2600.0));
        assert_eq!(
            f.map(|f| (f.kind, f.attempts)),
            Some((SessionKind::BruteForce, 5))
        );
        // Large sessions are not attempts; other ports are not login services.
        let mut t = SessionRules::new(SessionConfig::default());
        for i in 0..8 {
            let ts = i * 1_000_000;
            assert_eq!(t.replied(&reply(ts, 80)), None);
            assert_eq!(t.ended(&end(ts + 1000, 80, 300.0, 4000.0)), None);
            assert_eq!(t.ended(&end(ts + 2000, 22, 40_000.0, 4000.0)), None);
        }
    }

    #[test]
    fn many_held_connections_are_exhaustion_and_ends_release_them() {
        let mut t = SessionRules::new(SessionConfig::default());
        for i in 0..49 {
            assert_eq!(t.replied(&reply(i * 10_000, 80)), None);
        }
        // Closing one and opening one keeps it under 50.
        assert_eq!(t.ended(&end(500_000, 80, 200.0, 0.0)), None);
        assert_eq!(t.replied(&reply(510_000, 80)), None);
        let f = t.replied(&reply(520_000, 80));
        assert_eq!(
            f.map(|f| (f.kind, f.open)),
            Some((SessionKind::ConnectionExhaustion, 50))
        );
        // A close releases the connection at once; the flow's end after the linger does not
        // release it again.
        let close = FlowClose {
            start_us: 0,
            ts_us: 530_000,
            opener_ip: ip(SRC),
            responder_ip: ip(DST),
            responder_port: 80,
            answered: true,
        };
        t.closed(&close);
        let mut later = end(2_530_000, 80, 200.0, 100.0);
        later.end_reason = EndReason::TcpClose;
        assert_eq!(t.ended(&later), None);
        let f = t.replied(&reply(2_600_000, 80));
        assert_eq!(f.map(|f| f.open), Some(50));
        // Unanswered or non-TCP flows never count.
        let mut udp = reply(0, 53);
        udp.protocol = 17;
        assert_eq!(t.replied(&udp), None);
    }

    #[test]
    fn the_table_is_capped_and_counts_what_it_drops() {
        let cfg = SessionConfig {
            max_entries: 4,
            ..SessionConfig::default()
        };
        let mut t = SessionRules::new(cfg);
        for i in 0..10u16 {
            let mut r = reply(i64::from(i), 80);
            r.opener_ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i as u8));
            t.replied(&r);
        }
        let s = t.stats();
        assert_eq!(s.entries, 4);
        assert_eq!(s.evicted, 6);
        // Idle entries with nothing open go at the next sweep.
        let mut late = reply(700_000_000, 80);
        late.opener_ip = ip("10.9.9.9");
        t.replied(&late);
        assert_eq!(t.stats().entries, 1);
        assert_eq!(t.stats().expired, 4);
    }
}
