//! `run` and `replay` with `capture.workers` = N > 1. Live ([`run_live`]): N AF_PACKET
//! sockets on the interface in one `PACKET_FANOUT` group hashed by flow (the kernel's hash is
//! symmetric for TCP/UDP 5-tuples), each read by a worker thread with its own pipeline; the
//! host thread takes the events as they come (live, arrival order is capture order within a
//! worker). `replay`: the capture through N flow tables on N threads
//! ([`crate::shard`]), each worker scoring its own finished flows (its own score cache, the
//! shared model) and sending flow events straight to the sinks. What needs every flow of a
//! host stays on one thread: the host context, the host detector and alert aggregation
//! ([`emit::Detect`]) run on a host thread fed by messages — flow starts, first replies,
//! finished login-service sessions, and flow alerts (to aggregate) — in batches over bounded
//! channels. Each event carries the number of the packet that caused it, and the host thread
//! merges the workers' streams back into capture order (a worker's batch also says how far it
//! got, so nobody waits for a worker with little traffic): the host context sees flow starts
//! and replies in the order one worker produces them, so host findings are the same. Flow
//! alerts reach aggregation when their worker scores its batch of 64, not when one table's
//! batch fills: which alert of a folded group is sent can differ; the flows and their scores
//! are the same.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::emit::{self, Detect, Emitter};
use super::{BATCH, Control, Counters, DaemonError, Metrics, Scorer, Summary, stats_line};
use crate::alert::Alert;
use crate::alert::aggregate::Subject;
use crate::alert::dispatch::Dispatcher;
use crate::capture::{CaptureError, FileSource, LiveOptions, LiveSource, LiveStats, Next};
use crate::config::Config;
use crate::features::FlowRecord;
use crate::flow::{FlowClose, FlowConfig, FlowReply, FlowSink, FlowStart, FlowStats, FlowVolume};
use crate::pipeline::{PacketCounters, Pipeline};

/// Messages a worker sends the host thread per batch (1,024 rather than 256: on the flood with
/// 2 workers, median replay 0.82 -> 0.77 s in 8 alternating runs; the scale capture no slower).
const HOST_BATCH: usize = 1024;
/// Batches queued toward the host thread before a worker waits.
const HOST_QUEUE_BATCHES: usize = 64;

/// What the host thread gets from the workers.
enum HostMsg {
    Start(FlowStart),
    Reply(FlowReply),
    /// A finished flow the host context or the session rules read ([`emit::context_reads`]).
    End(Box<FlowRecord>),
    Closed(FlowClose),
    Volume(FlowVolume),
    /// A flow alert, to pass aggregation: (alert, what it is about, flow time). Boxed whole:
    /// alerts are rare, and a message's size is copied for every flow start (56 bytes, not 96).
    Alert(Box<(Alert, Subject, i64)>),
}

/// What a worker's scorer copies of the daemon's: the same model, threshold and output; each
/// worker adds its own score cache, and no host detector (that runs on the host thread).
struct ScorerParts {
    model: std::sync::Arc<crate::forest::Model>,
    threshold: f64,
    top_features: usize,
    flow_events: bool,
    origin: crate::alert::Origin,
    host_model_name: Option<String>,
}

impl ScorerParts {
    fn of(s: &Scorer) -> ScorerParts {
        ScorerParts {
            model: s.model.clone(),
            threshold: s.threshold,
            top_features: s.top_features,
            flow_events: s.flow_events,
            origin: s.origin.clone(),
            host_model_name: s.host_model_name.clone(),
        }
    }

    fn scorer(&self) -> Scorer {
        Scorer {
            model: self.model.clone(),
            cache: std::cell::RefCell::new(self.model.score_cache()),
            threshold: self.threshold,
            top_features: self.top_features,
            flow_events: self.flow_events,
            origin: self.origin.clone(),
            host: None,
            host_model_name: self.host_model_name.clone(),
        }
    }
}

/// A batch of one worker's events, each with its packet number, and the packet number up to
/// which that worker has sent everything.
struct HostBatch {
    worker: usize,
    events: Vec<(u64, HostMsg)>,
    done_to: u64,
}

/// A worker's flow sink.
struct WorkerSink<'a> {
    worker: usize,
    /// Number of the packet being handled.
    seq: u64,
    scorer: Scorer,
    batch: Vec<FlowRecord>,
    out: Vec<(u64, HostMsg)>,
    tx: SyncSender<HostBatch>,
    hosts: bool,
    c: &'a Counters,
    d: &'a Dispatcher,
}

impl WorkerSink<'_> {
    fn push(&mut self, m: HostMsg) {
        self.out.push((self.seq, m));
        if self.out.len() >= HOST_BATCH {
            self.send(self.seq.saturating_sub(1));
        }
    }

    /// Sends the buffered events, and that everything up to packet `done_to` is sent.
    fn send(&mut self, done_to: u64) {
        let events = std::mem::replace(&mut self.out, Vec::with_capacity(HOST_BATCH));
        // The host thread ends only after every worker: a send cannot fail but by a panic
        // there, which its join reports.
        let _ = self.tx.send(HostBatch {
            worker: self.worker,
            events,
            done_to,
        });
    }

    /// Scores the waiting flows: events to the sinks, alerts to the host thread.
    fn score(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let mut scores = [0.0; BATCH];
        let mut alerts = Vec::new();
        for chunk in batch.chunks(BATCH) {
            let scores = &mut scores[..chunk.len()];
            match self.scorer.cache.try_borrow_mut() {
                Ok(mut cache) => self
                    .scorer
                    .model
                    .score_many_cached(chunk, scores, &mut cache),
                Err(_) => self.scorer.model.score_many(chunk, scores),
            }
            for (r, s) in chunk.iter().zip(scores.iter()) {
                self.scorer.judge(r, *s, self.c, &mut |a| {
                    if a.is_alert() {
                        alerts.push(HostMsg::Alert(Box::new((
                            a,
                            emit::flow_subject(r),
                            r.end_us,
                        ))));
                    } else {
                        self.d.send(a);
                    }
                });
            }
        }
        for a in alerts {
            self.push(a);
        }
        self.batch = batch;
        self.batch.clear();
    }
}

impl crate::shard::ShardSink for WorkerSink<'_> {
    fn seq(&mut self, seq: u64) {
        self.seq = seq;
    }
    fn done_to(&mut self, seq: u64) {
        self.send(seq);
    }
}

impl FlowSink for WorkerSink<'_> {
    fn ended(&mut self, r: FlowRecord) {
        if self.hosts && emit::context_reads(&r) {
            self.push(HostMsg::End(Box::new(r.clone())));
        }
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.score();
        }
    }
    fn started(&mut self, s: &FlowStart) {
        if self.hosts {
            self.push(HostMsg::Start(*s));
        }
    }
    fn replied(&mut self, r: &FlowReply) {
        if self.hosts {
            self.push(HostMsg::Reply(*r));
        }
    }
    fn closed(&mut self, c: &FlowClose) {
        if self.hosts {
            self.push(HostMsg::Closed(*c));
        }
    }
    fn volume(&mut self, v: &FlowVolume) {
        if self.hosts {
            self.push(HostMsg::Volume(*v));
        }
    }
}

/// Messages between a flow start's first prefetch and its turn on the host thread (the
/// second comes at half the distance).
const HOST_AHEAD: usize = 6;

/// The host thread: the host context, session rules, host detector and aggregation, fed by
/// the workers' batches. `ordered` (replay): events are merged back into capture order by
/// their packet numbers; live: handled as they come.
fn host_loop(
    cfg: &Config,
    scorer: &Scorer,
    rx: Receiver<HostBatch>,
    n: usize,
    ordered: bool,
    c: &Counters,
    d: &Dispatcher,
) -> Option<f64> {
    let mut detect = Detect::new(cfg);
    let mut none = Vec::new();
    let mut e = scorer.emitter(&mut none, &mut detect, c, d);
    let handle = |e: &mut Emitter<'_>, m: HostMsg| match m {
        HostMsg::Start(s) => e.started(&s),
        HostMsg::Reply(r) => e.replied(&r),
        HostMsg::End(r) => e.context_ended(&r),
        HostMsg::Closed(x) => e.closed(&x),
        HostMsg::Volume(v) => e.volume(&v),
        HostMsg::Alert(a) => {
            let (a, subject, ts) = *a;
            e.detect.gate(a, &subject, ts, c, d)
        }
    };
    // Flow starts a few messages ahead in a queue: their pending-array lines are fetched
    // while the messages before them are handled (a flood: one start per packet).
    let ahead = |e: &Emitter<'_>, q: &VecDeque<(u64, HostMsg)>| {
        for (k, close) in [(HOST_AHEAD, false), (HOST_AHEAD / 2, true)] {
            if let Some((_, HostMsg::Start(s))) = q.get(k) {
                e.prefetch_start(s, close);
            }
        }
    };
    let mut queues: Vec<VecDeque<(u64, HostMsg)>> = (0..n).map(|_| VecDeque::new()).collect();
    let mut marks = vec![0u64; n];
    for b in rx {
        if !ordered {
            let mut q: VecDeque<(u64, HostMsg)> = b.events.into();
            while !q.is_empty() {
                ahead(&e, &q);
                if let Some((_, m)) = q.pop_front() {
                    handle(&mut e, m);
                }
            }
            continue;
        }
        if let (Some(q), Some(m)) = (queues.get_mut(b.worker), marks.get_mut(b.worker)) {
            q.extend(b.events);
            *m = (*m).max(b.done_to);
        }
        // Merge: the earliest event (lowest worker on a tie), once every worker with nothing
        // queued is known to have nothing before it.
        while let Some((i, s)) = queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|(s, _)| (i, *s)))
            .min_by_key(|&(i, s)| (s, i))
        {
            let waiting = queues
                .iter()
                .zip(&marks)
                .any(|(q, m)| q.is_empty() && *m < s);
            if waiting {
                break;
            }
            if let Some(q) = queues.get(i) {
                ahead(&e, q);
            }
            let Some((_, m)) = queues.get_mut(i).and_then(VecDeque::pop_front) else {
                break;
            };
            handle(&mut e, m);
        }
    }
    crate::cputime::thread_cpu_s()
}

/// `flowsentry replay` at `--speed max` with `capture.workers` > 1.
pub fn replay(
    cfg: &Config,
    scorer: Scorer,
    src: FileSource,
    dispatcher: Dispatcher,
    control: &Control,
) -> Result<Summary, DaemonError> {
    let counters = Counters::default();
    let started = Instant::now();
    let mut src = crate::capture::BlockSource::open_mapped(src.path())?;
    let hosts = cfg.host.enabled || cfg.sessions.enabled;
    let (tx, rx) = sync_channel::<HostBatch>(HOST_QUEUE_BATCHES);
    let (c, d) = (&counters, &dispatcher);
    let parts = ScorerParts::of(&scorer);
    let n = cfg.capture.workers.clamp(1, crate::shard::MAX_WORKERS);
    let s = std::thread::scope(|scope| {
        let host_thread = std::thread::Builder::new()
            .name("flowsentry-hosts".into())
            .spawn_scoped(scope, move || host_loop(cfg, &scorer, rx, n, true, c, d))
            .map_err(|e| DaemonError::Other(format!("cannot start the host thread: {e}")))?;
        let make = |worker| WorkerSink {
            worker,
            seq: 0,
            scorer: parts.scorer(),
            batch: Vec::with_capacity(BATCH),
            out: Vec::with_capacity(HOST_BATCH),
            tx: tx.clone(),
            hosts,
            c,
            d,
        };
        let end = |mut w: WorkerSink<'_>| {
            w.score();
            w.send(u64::MAX);
        };
        let s = crate::shard::run(
            &mut src,
            cfg.flow_config(),
            cfg.capture.workers,
            Some(&control.stop),
            &make,
            &end,
            &mut |_, _| {},
        );
        drop(tx);
        let host_cpu_s = match host_thread.join() {
            Ok(cpu) => cpu,
            Err(p) => std::panic::resume_unwind(p),
        };
        Ok::<_, DaemonError>((s, host_cpu_s))
    })?;
    let (s, host_cpu_s) = s;
    // Where the time went: a thread near the in-process time was saturated (the others
    // waited on it, or shared its cores).
    tracing::info!(
        "cpu seconds per thread: reader {}, workers {}, host {}",
        crate::cputime::show(s.reader_cpu_s),
        s.worker_cpu_s
            .iter()
            .map(|c| crate::cputime::show(*c))
            .collect::<Vec<_>>()
            .join(" "),
        crate::cputime::show(host_cpu_s)
    );
    dispatcher.shutdown(cfg.alerts.shutdown_timeout());
    tracing::info!(
        "{}",
        stats_line(&s.counters, &s.flows, &counters, &dispatcher)
    );
    let (sink_dropped, sink_failed, _, sink_abandoned) = super::sink_totals(&dispatcher);
    Ok(Summary {
        packets: s.counters,
        flows: s.flows,
        scored: counters.scored.load(Ordering::Relaxed),
        alerts: counters.alerts.load(Ordering::Relaxed),
        sink_dropped,
        sink_failed,
        sink_abandoned,
        damaged: s.damaged,
        interrupted: s.interrupted,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A live worker's counters, read by the main thread for the stats line and `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct LiveShare {
    packets: PacketCounters,
    flows: FlowStats,
    kernel: LiveStats,
}

/// How often a live worker runs its timers (wall-clock flow expiry, scoring, stats).
const LIVE_TICK: Duration = Duration::from_millis(200);

/// One live worker: its socket of the fanout group through its own pipeline until `stop`.
fn live_worker(
    mut src: LiveSource,
    cfg: FlowConfig,
    mut sink: WorkerSink<'_>,
    share: &Mutex<LiveShare>,
    stop: &AtomicBool,
) -> Result<(), CaptureError> {
    let mut pipe = Pipeline::new(cfg);
    let mut last_tick = Instant::now();
    let mut result = Ok(());
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut idle = false;
        match src.next_frame() {
            Ok(Next::Frame(f)) => pipe.frame(&f, &mut sink),
            Ok(Next::Timeout) => {
                pipe.drain(&mut sink);
                idle = true;
            }
            Ok(Next::End) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        if last_tick.elapsed() >= LIVE_TICK {
            last_tick = Instant::now();
            pipe.tick(super::now_us(), &mut sink);
            idle = true;
            let kernel = src.stats().unwrap_or_default();
            if let Ok(mut s) = share.lock() {
                *s = LiveShare {
                    packets: pipe.counters(),
                    flows: pipe.flow_stats(),
                    kernel,
                };
            }
        }
        if idle {
            sink.score();
            if !sink.out.is_empty() {
                sink.send(0);
            }
        }
    }
    let kernel = src.stats().unwrap_or_default();
    pipe.flush(&mut sink);
    sink.score();
    sink.send(0);
    if let Ok(mut s) = share.lock() {
        *s = LiveShare {
            packets: pipe.counters(),
            flows: pipe.flow_stats(),
            kernel,
        };
    }
    result
}

/// Sums of the workers' shares.
fn live_totals(shares: &[Mutex<LiveShare>]) -> LiveShare {
    let mut t = LiveShare::default();
    for s in shares {
        let Ok(s) = s.lock() else { continue };
        let (p, q) = (&mut t.packets, &s.packets);
        p.frames += q.frames;
        p.bytes += q.bytes;
        p.decoded += q.decoded;
        p.skipped.merge(&q.skipped);
        crate::shard::add_stats(&mut t.flows, &s.flows);
        t.kernel.received += s.kernel.received;
        t.kernel.dropped += s.kernel.dropped;
        t.kernel.if_dropped += s.kernel.if_dropped;
    }
    t
}

/// `flowsentry run` with `capture.workers` > 1: one socket per worker in a fanout group. A
/// SIGHUP is refused with a warning (restart to change the model with workers).
pub fn run_live(
    cfg: &Config,
    scorer: Scorer,
    dispatcher: Dispatcher,
    counters: Arc<Counters>,
    metrics: &Metrics,
    control: &Control,
    options: &LiveOptions,
) -> Result<Summary, DaemonError> {
    let n = cfg.capture.workers.clamp(1, crate::shard::MAX_WORKERS);
    let group = (std::process::id() & 0xffff) as u16;
    let mut sources = Vec::with_capacity(n);
    for _ in 0..n {
        let src = LiveSource::open(options)?;
        src.join_fanout(group, n as u32)?;
        sources.push(src);
    }
    let started = Instant::now();
    tracing::info!(
        "capturing on {} with {n} workers (fanout group {group}); model {} ({} trees, threshold {})",
        options.interface,
        cfg.model.path.display(),
        scorer.model.trees(),
        scorer.threshold
    );
    super::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("capturing"),
    ]);
    let hosts = cfg.host.enabled || cfg.sessions.enabled;
    let parts = ScorerParts::of(&scorer);
    let shares: Vec<Mutex<LiveShare>> = (0..n).map(|_| Mutex::new(LiveShare::default())).collect();
    let (tx, rx) = sync_channel::<HostBatch>(HOST_QUEUE_BATCHES);
    let (c, d) = (&*counters, &dispatcher);
    let stop = AtomicBool::new(false);
    let flow_cfg = FlowConfig {
        max_flows: (cfg.flow_config().max_flows / n).max(1),
        ..cfg.flow_config()
    };
    let error = std::thread::scope(|scope| {
        let host = std::thread::Builder::new()
            .name("flowsentry-hosts".into())
            .spawn_scoped(scope, move || host_loop(cfg, &scorer, rx, n, false, c, d))
            .map_err(|e| DaemonError::Other(format!("cannot start the host thread: {e}")))?;
        let mut workers = Vec::with_capacity(n);
        for (i, (src, share)) in sources.into_iter().zip(&shares).enumerate() {
            let sink = WorkerSink {
                worker: i,
                seq: 0,
                scorer: parts.scorer(),
                batch: Vec::with_capacity(BATCH),
                out: Vec::with_capacity(HOST_BATCH),
                tx: tx.clone(),
                hosts,
                c,
                d,
            };
            let stop = &stop;
            let w = std::thread::Builder::new()
                .name(format!("flowsentry-w{i}"))
                .spawn_scoped(scope, move || live_worker(src, flow_cfg, sink, share, stop))
                .map_err(|e| DaemonError::Other(format!("cannot start worker {i}: {e}")))?;
            workers.push(w);
        }
        drop(tx);
        let watchdog = sd_notify::watchdog_enabled();
        let stats_every = Duration::from_secs(cfg.stats.interval_s);
        let (mut last_stats, mut last_ping) = (Instant::now(), Instant::now());
        while !control.stop.load(Ordering::Relaxed) && !workers.iter().any(|w| w.is_finished()) {
            std::thread::sleep(LIVE_TICK);
            if control.reload.swap(false, Ordering::SeqCst) {
                tracing::warn!(
                    "reload ignored: with capture.workers > 1 restart to change the model or config"
                );
            }
            let t = live_totals(&shares);
            counters.set_kernel(&t.kernel);
            if let Ok(mut p) = metrics.packets.write() {
                *p = (t.packets, t.flows);
            }
            if let Some(period) = watchdog
                && last_ping.elapsed() >= period / 2
            {
                last_ping = Instant::now();
                super::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            if !stats_every.is_zero() && last_stats.elapsed() >= stats_every {
                last_stats = Instant::now();
                let line = stats_line(&t.packets, &t.flows, c, d);
                tracing::info!("stats {line}");
                super::notify(&[sd_notify::NotifyState::Status(&line)]);
            }
        }
        super::notify(&[sd_notify::NotifyState::Stopping]);
        stop.store(true, Ordering::SeqCst);
        let mut error = None;
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        if let Err(p) = host.join() {
            std::panic::resume_unwind(p);
        }
        Ok::<_, DaemonError>(error)
    })?;
    let t = live_totals(&shares);
    for (i, s) in shares.iter().enumerate() {
        if let Ok(s) = s.lock() {
            tracing::info!(
                "worker {i}: packets={} kernel_received={} kernel_dropped={} flows={}",
                s.packets.frames,
                s.kernel.received,
                s.kernel.dropped,
                s.flows.created
            );
        }
    }
    counters.set_kernel(&t.kernel);
    dispatcher.shutdown(cfg.alerts.shutdown_timeout());
    let line = stats_line(&t.packets, &t.flows, &counters, &dispatcher);
    tracing::info!("final stats {line} kernel_received={}", t.kernel.received);
    if let Some(e) = error {
        return Err(e.into());
    }
    let (sink_dropped, sink_failed, _, sink_abandoned) = super::sink_totals(&dispatcher);
    Ok(Summary {
        packets: t.packets,
        flows: t.flows,
        scored: counters.scored.load(Ordering::Relaxed),
        alerts: counters.alerts.load(Ordering::Relaxed),
        sink_dropped,
        sink_failed,
        sink_abandoned,
        damaged: None,
        interrupted: false,
        seconds: started.elapsed().as_secs_f64(),
    })
}
