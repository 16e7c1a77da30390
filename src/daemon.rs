//! Wiring for `run` (live) and `replay` (file): capture → decode → flow ([`crate::pipeline`]) on
//! one thread, finished flows scored in batches ([`Scorer`]) and alerts handed to the sinks' bounded
//! queues ([`crate::alert::dispatch`]). Tokio runs the I/O side: signals (SIGTERM/SIGINT stop,
//! SIGHUP reloads), and the optional HTTP endpoint. systemd readiness, status and watchdog.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::alert::dispatch::Dispatcher;
use crate::alert::json::JsonSink;
use crate::alert::redis::RedisSink;
use crate::alert::stdout::StdoutSink;
use crate::alert::syslog::SyslogSink;
use crate::alert::{Alert, Contribution, Origin, Sink, SinkError, Verdict};
use crate::capture::{CaptureError, FileSource, LiveOptions, LiveSource, Next};
use crate::config::{Config, ConfigError, SinkConfig};
use crate::features::{Feature, FlowRecord};
use crate::forest::{Model, ModelError, ScoreCache};
use crate::pipeline::{PacketCounters, Pipeline};
use preflight::Loaded;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Other(String),
    #[error("refusing to start:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
}

/// The checks `check-config` runs ([`preflight::check`]), run first by `run` and `replay`: any
/// problem refuses the start with the whole list; warnings are logged.
/// Returns the models the checks loaded, for [`Scorer::new`] (each is read once: parsing the
/// two shipped models twice per start cost ~3 ms).
fn preflight_or_refuse(cfg: &Config, live: bool) -> Result<Loaded, DaemonError> {
    let f = preflight::check(cfg, live);
    for w in &f.warnings {
        tracing::warn!("{w}");
    }
    if f.problems.is_empty() {
        Ok(f.loaded)
    } else {
        Err(DaemonError::Refused(f.problems))
    }
}

/// The scoring half: model, threshold, what to emit.
pub struct Scorer {
    pub model: Arc<Model>,
    /// Scores of repeated inputs (a flood's flows all look alike); belongs to `model`.
    cache: RefCell<ScoreCache>,
    pub threshold: f64,
    pub top_features: usize,
    pub flow_events: bool,
    pub origin: Origin,
    /// The host detector (`host.enabled`) and its model's file name.
    pub host: Option<crate::host::HostDetector>,
    pub host_model_name: Option<String>,
}

impl Scorer {
    pub fn new(cfg: &Config, iface: &str, loaded: Loaded) -> Result<Scorer, DaemonError> {
        // A model the learning period produced replaces the shipped one (`[learning]`).
        let path = cfg.learning.learned_model().unwrap_or(&cfg.model.path);
        let model = match loaded.model {
            Some(m) if path == cfg.model.path.as_path() => m,
            _ => Model::load(path)?,
        };
        let threshold = cfg.model.threshold.unwrap_or(model.threshold());
        Ok(Scorer {
            cache: RefCell::new(model.score_cache()),
            origin: Origin {
                sensor: cfg.sensor.name.clone(),
                in_iface: iface.to_string(),
                model: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                community_id_seed: cfg.alerts.community_id_seed,
            },
            model: Arc::new(model),
            threshold,
            top_features: cfg.alerts.top_features,
            flow_events: cfg.alerts.flow_events,
            host_model_name: cfg
                .host
                .enabled
                .then(|| {
                    cfg.host_model()
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .flatten(),
            host: if cfg.host.enabled {
                let mut d = match loaded.host {
                    Some(d) => d,
                    None => crate::host::HostDetector::load(&cfg.host_model(), cfg.host.threshold)?,
                };
                if let Some(t) = cfg.host.anomalous_threshold {
                    d.anomalous_threshold = t;
                }
                Some(d)
            } else {
                None
            },
        })
    }

    /// The flow table's sink: finished flows wait in `batch` and are scored [`BATCH`] at a time
    /// (batched scoring is twice as fast); the caller calls [`Scorer::score_batch`] when the
    /// capture goes idle, on each tick and at the end, so no flow waits longer than a tick.
    /// Flow starts and replies feed the host context ([`emit::Emitter`]).
    pub fn emitter<'a>(
        &'a self,
        batch: &'a mut Vec<FlowRecord>,
        detect: &'a mut emit::Detect,
        c: &'a Counters,
        d: &'a Dispatcher,
    ) -> emit::Emitter<'a> {
        emit::Emitter {
            scorer: self,
            batch,
            detect,
            c,
            d,
        }
    }

    /// Scores the waiting flows, sends their events (alerts through aggregation), empties the
    /// batch.
    pub fn score_batch(
        &self,
        batch: &mut Vec<FlowRecord>,
        detect: &mut emit::Detect,
        c: &Counters,
        d: &Dispatcher,
    ) {
        let mut scores = [0.0; BATCH];
        if let Some(l) = detect.learn.as_mut() {
            l.offer(batch);
        }
        for chunk in batch.chunks(BATCH) {
            let scores = &mut scores[..chunk.len()];
            match self.cache.try_borrow_mut() {
                Ok(mut cache) => self.model.score_many_cached(chunk, scores, &mut cache),
                Err(_) => self.model.score_many(chunk, scores),
            }
            for (r, s) in chunk.iter().zip(scores.iter()) {
                self.judge(r, *s, c, &mut |a| {
                    if a.is_alert() {
                        detect.gate(a, &emit::flow_subject(r), r.end_us, c, d);
                    } else {
                        d.send(a);
                    }
                });
            }
        }
        batch.clear();
    }

    /// The events for a flow with anomaly score `s`: an alert when `s` is above the threshold,
    /// and its EVE flow record when `alerts.flow_events` is on (every scored flow, alerted or not,
    /// as Suricata logs flows).
    pub fn judge(&self, r: &FlowRecord, s: f64, c: &Counters, send: &mut dyn FnMut(Alert)) {
        c.scored.fetch_add(1, Ordering::Relaxed);
        let alerted = s > self.threshold;
        if alerted {
            c.flow_findings.fetch_add(1, Ordering::Relaxed);
            let v = Verdict {
                score: s,
                threshold: self.threshold,
                top: self
                    .model
                    .top_features(r, self.top_features)
                    .into_iter()
                    .map(|(f, weight)| Contribution {
                        feature: f,
                        weight,
                        percentile: self.model.percentile(f, r.get(f)),
                    })
                    .collect(),
            };
            send(Alert::flow_alert(r, &v, &self.origin));
        }
        if self.flow_events {
            let v = Verdict {
                score: s,
                threshold: self.threshold,
                top: Vec::new(),
            };
            send(Alert::flow_event(r, &v, alerted, &self.origin));
        }
    }
}

/// Finished flows scored together by the daemon.
pub const BATCH: usize = 64;

/// Counters shared with the stats line, `/metrics` and systemd STATUS.
#[derive(Debug, Default)]
pub struct Counters {
    pub scored: AtomicU64,
    /// Alerts sent to the sinks (after aggregation and suppression).
    pub alerts: AtomicU64,
    /// Flows above the flow detector's threshold.
    pub flow_findings: AtomicU64,
    /// Host scorings, and hosts above the host detector's threshold.
    pub host_scored: AtomicU64,
    pub host_findings: AtomicU64,
    /// Session rules that fired.
    pub session_findings: AtomicU64,
    /// The capped tables of the host stage, as last published by [`emit::Detect::publish`]:
    /// entries now, entries removed to make room, events refused because the table was full.
    pub host_entries: AtomicU64,
    pub host_evicted: AtomicU64,
    pub host_refused: AtomicU64,
    pub session_entries: AtomicU64,
    pub session_evicted: AtomicU64,
    pub session_refused: AtomicU64,
    /// Alerts held back by aggregation, and dropped by suppress rules.
    pub folded: AtomicU64,
    pub suppressed: AtomicU64,
    pub kernel_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
}

impl Counters {
    /// The kernel's capture counters (pcap stats), as last read.
    pub fn set_kernel(&self, k: &crate::capture::LiveStats) {
        self.kernel_received.store(k.received, Ordering::Relaxed);
        self.kernel_dropped.store(k.dropped, Ordering::Relaxed);
        self.if_dropped.store(k.if_dropped, Ordering::Relaxed);
    }
}

/// Builds the configured sinks. Any sink that cannot start (unwritable file, no syslog socket)
/// is an error: the daemon refuses to start half-configured.
pub fn build_sinks(cfg: &Config) -> Result<Vec<Box<dyn Sink>>, DaemonError> {
    let mut v: Vec<Box<dyn Sink>> = Vec::new();
    for s in &cfg.alerts.sinks {
        match s {
            SinkConfig::Json(j) => v.push(Box::new(JsonSink::open(&j.path)?)),
            SinkConfig::Stdout(_) => v.push(Box::new(StdoutSink::default())),
            SinkConfig::Syslog(s) => v.push(Box::new(SyslogSink::open(s)?)),
            SinkConfig::Redis(r) => v.push(Box::new(RedisSink::open(r))),
        }
    }
    Ok(v)
}

/// Flags set by signal handlers.
#[derive(Debug, Default)]
pub struct Control {
    pub stop: AtomicBool,
    pub reload: AtomicBool,
}

/// Starts the tokio side: signal handlers (and the HTTP endpoint when enabled). Returns the
/// runtime, which must stay alive while the daemon runs.
pub fn start_io(
    control: Arc<Control>,
    http: Option<(SocketAddr, Arc<Metrics>)>,
) -> Result<tokio::runtime::Runtime, DaemonError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("flowsentry-io")
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Other(format!("cannot start the I/O runtime: {e}")))?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| DaemonError::Other(e.to_string()))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| DaemonError::Other(e.to_string()))?;
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| DaemonError::Other(e.to_string()))?;
        // A file-size limit (ulimit -f) must fail the write (EFBIG, counted by the sink), not
        // kill the sensor: SIGXFSZ is caught and ignored.
        let mut xfsz = signal(SignalKind::from_raw(libc::SIGXFSZ))
            .map_err(|e| DaemonError::Other(e.to_string()))?;
        let c = control.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { c.stop.store(true, Ordering::SeqCst); }
                    _ = int.recv() => { c.stop.store(true, Ordering::SeqCst); }
                    _ = hup.recv() => { c.reload.store(true, Ordering::SeqCst); }
                    _ = xfsz.recv() => {}
                }
            }
        });
        if let Some((addr, metrics)) = http {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Other(format!("http.listen {addr}: {e}")))?;
            tokio::spawn(crate::daemon::http::serve(listener, metrics));
        }
        Ok::<(), DaemonError>(())
    })?;
    Ok(rt)
}

/// What `/metrics` and `/predict` read.
pub struct Metrics {
    pub counters: Arc<Counters>,
    pub packets: RwLock<(PacketCounters, crate::flow::FlowStats)>,
    pub sinks: Vec<Arc<crate::alert::dispatch::SinkCounters>>,
    pub scorer: RwLock<Arc<Model>>,
}

pub mod emit;
pub mod http;
pub mod learning;
pub mod preflight;
mod workers;

/// How fast `replay` feeds packets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    Max,
    /// Multiple of the capture's own pace (1.0 = as recorded).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        let t = s.trim().trim_end_matches(['x', 'X']);
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match t.parse::<f64>() {
            Ok(v) if (MIN_SPEED..=MAX_SPEED).contains(&v) => Ok(Speed::Times(v)),
            _ => Err(format!(
                "--speed must be max, 1x or a multiple from {MIN_SPEED} to {MAX_SPEED} like 10, got {s:?}"
            )),
        }
    }
}

/// Slowest and fastest `--speed` multiples (a slower replay of a one-hour capture would take
/// over a year; a faster one is `max`).
pub const MIN_SPEED: f64 = 0.001;
pub const MAX_SPEED: f64 = 1_000_000.0;

/// Longest single sleep of a paced replay: a stop signal is seen within it.
const REPLAY_SLEEP_SLICE: Duration = Duration::from_millis(50);

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub packets: PacketCounters,
    pub flows: crate::flow::FlowStats,
    pub scored: u64,
    pub alerts: u64,
    pub sink_dropped: u64,
    pub sink_failed: u64,
    /// Still queued when the shutdown deadline (`alerts.shutdown_timeout_s`) passed.
    pub sink_abandoned: u64,
    pub damaged: Option<CaptureError>,
    /// A stop signal ended a replay before the end of the capture.
    pub interrupted: bool,
    pub seconds: f64,
}

impl Summary {
    fn new(
        p: &Pipeline,
        c: &Counters,
        d: &Dispatcher,
        damaged: Option<CaptureError>,
        started: Instant,
    ) -> Summary {
        let (sink_dropped, sink_failed, _, sink_abandoned) = sink_totals(d);
        Summary {
            packets: p.counters(),
            flows: p.flow_stats(),
            scored: c.scored.load(Ordering::Relaxed),
            alerts: c.alerts.load(Ordering::Relaxed),
            sink_dropped,
            sink_failed,
            sink_abandoned,
            damaged,
            interrupted: false,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// (dropped, failed, errors, abandoned) over every sink.
fn sink_totals(d: &Dispatcher) -> (u64, u64, u64, u64) {
    d.counters()
        .iter()
        .fold((0, 0, 0, 0), |(dr, fa, er, ab), c| {
            (
                dr + c.dropped.load(Ordering::Relaxed),
                fa + c.failed.load(Ordering::Relaxed),
                er + c.errors.load(Ordering::Relaxed),
                ab + c.abandoned.load(Ordering::Relaxed),
            )
        })
}

/// The stats line.
pub fn stats_line(
    p: &PacketCounters,
    f: &crate::flow::FlowStats,
    c: &Counters,
    d: &Dispatcher,
) -> String {
    let (dropped, failed, errors, abandoned) = sink_totals(d);
    let written: u64 = d
        .counters()
        .iter()
        .map(|c| c.written.load(Ordering::Relaxed))
        .sum();
    let mut skips = String::new();
    for (r, n) in p.skipped.nonzero() {
        skips.push_str(&format!(" skip_{}={n}", r.as_str()));
    }
    format!(
        "packets={} bytes={} decoded={} kernel_dropped={} if_dropped={}{} flows_active={} flows_expired={} flows_closed={} flows_evicted={} flows_flushed={} scored={} findings_flow={} findings_host={} findings_session={} alerts={} folded={} suppressed={} hosts={} hosts_evicted={} hosts_refused={} sessions={} sessions_evicted={} sessions_refused={} sink_written={written} sink_errors={errors} sink_dropped={dropped} sink_failed={failed} sink_abandoned={abandoned}",
        p.frames,
        p.bytes,
        p.decoded,
        c.kernel_dropped.load(Ordering::Relaxed),
        c.if_dropped.load(Ordering::Relaxed),
        skips,
        f.active,
        f.expired,
        f.closed_tcp,
        f.evicted,
        f.flushed,
        c.scored.load(Ordering::Relaxed),
        c.flow_findings.load(Ordering::Relaxed),
        c.host_findings.load(Ordering::Relaxed),
        c.session_findings.load(Ordering::Relaxed),
        c.alerts.load(Ordering::Relaxed),
        c.folded.load(Ordering::Relaxed),
        c.suppressed.load(Ordering::Relaxed),
        c.host_entries.load(Ordering::Relaxed),
        c.host_evicted.load(Ordering::Relaxed),
        c.host_refused.load(Ordering::Relaxed),
        c.session_entries.load(Ordering::Relaxed),
        c.session_evicted.load(Ordering::Relaxed),
        c.session_refused.load(Ordering::Relaxed),
    )
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `flowsentry replay`: the daemon's pipeline and sinks fed from a capture file.
pub fn replay(
    cfg: &Config,
    path: &Path,
    speed: Speed,
    control: &Control,
) -> Result<Summary, DaemonError> {
    let loaded = preflight_or_refuse(cfg, false)?;
    let mut scorer = Scorer::new(cfg, &format!("replay:{}", path.display()), loaded)?;
    let src = FileSource::open(path)?;
    let dispatcher = Dispatcher::new(build_sinks(cfg)?, cfg.alerts.queue_size);
    if cfg.capture.workers > 1 {
        if speed == Speed::Max {
            return workers::replay(cfg, scorer, src, dispatcher, control);
        }
        tracing::info!("a paced replay (--speed) runs on one worker");
    }
    // One worker reads the file in blocks as the workers' reader does, on its own thread, and
    // slices frames out of them (libpcap's frames and errors: `capture::blocks`).
    let mut src = crate::capture::BlockSource::open_inline(src.path())?;
    let counters = Counters::default();
    let mut pipe = Pipeline::new(cfg.flow_config());
    let started = Instant::now();
    let cpu_at_start = crate::cputime::thread_cpu_s();
    let mut first_ts: Option<i64> = None;
    let mut damaged = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut detect = emit::Detect::new(cfg);
    detect.learn = learning::start(cfg, &scorer);
    let mut interrupted = false;
    loop {
        if control.stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        match src.next_frame() {
            Ok(Next::Frame(f)) => {
                if let Speed::Times(k) = speed {
                    let t0 = *first_ts.get_or_insert(f.ts_us);
                    let secs = (f.ts_us.saturating_sub(t0).max(0) as f64 / 1e6) / k;
                    let due = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
                    // Sleep in slices so SIGTERM/SIGINT end a replay waiting through a gap.
                    while let Some(wait) = due.checked_sub(started.elapsed()) {
                        if wait.is_zero() || control.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(wait.min(REPLAY_SLEEP_SLICE));
                    }
                    if control.stop.load(Ordering::Relaxed) {
                        interrupted = true;
                        break;
                    }
                }
                let mut emit = scorer.emitter(&mut batch, &mut detect, &counters, &dispatcher);
                pipe.frame(&f, &mut emit);
                if detect.learn.is_some() {
                    learning::swap_in(&mut detect, &mut scorer, true);
                }
            }
            Ok(Next::End) | Ok(Next::Timeout) => break,
            Err(e) => {
                damaged = Some(e);
                break;
            }
        }
    }
    let mut emit = scorer.emitter(&mut batch, &mut detect, &counters, &dispatcher);
    pipe.flush(&mut emit);
    scorer.score_batch(&mut batch, &mut detect, &counters, &dispatcher);
    learning::swap_in(&mut detect, &mut scorer, true);
    // One thread reads, tracks flows, scores and keeps host context (alerts are written on
    // the sinks' own threads).
    tracing::info!(
        "cpu seconds per thread: pipeline {}",
        crate::cputime::show(crate::cputime::since(
            crate::cputime::thread_cpu_s(),
            cpu_at_start
        ))
    );
    if let Some(l) = learning::progress(&detect, cfg) {
        tracing::info!("{l}: the learning period is not over, no model learned");
    }
    // Drain (bounded), then the stats: they count every event's outcome.
    dispatcher.shutdown(cfg.alerts.shutdown_timeout());
    tracing::info!(
        "{}",
        stats_line(&pipe.counters(), &pipe.flow_stats(), &counters, &dispatcher)
    );
    let mut summary = Summary::new(&pipe, &counters, &dispatcher, damaged, started);
    summary.interrupted = interrupted;
    Ok(summary)
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(state);
}

/// `flowsentry run`: live capture until SIGTERM/SIGINT. On stop: capture stops, every open flow
/// is finished and scored, the sinks are drained, and the function returns.
pub fn run(
    mut cfg: Config,
    config_path: Option<PathBuf>,
    control: Arc<Control>,
) -> Result<Summary, DaemonError> {
    let loaded = preflight_or_refuse(&cfg, true)?;
    let iface = cfg.capture.interface.clone();
    let mut scorer = Scorer::new(&cfg, &iface, loaded)?;
    let dispatcher = Dispatcher::new(build_sinks(&cfg)?, cfg.alerts.queue_size);
    let counters = Arc::new(Counters::default());
    let metrics = Arc::new(Metrics {
        counters: counters.clone(),
        packets: RwLock::new(Default::default()),
        sinks: dispatcher.counters(),
        scorer: RwLock::new(scorer.model.clone()),
    });
    let http = if cfg.http.enabled {
        let addr: SocketAddr = cfg
            .http
            .listen
            .parse()
            .map_err(|e| DaemonError::Other(format!("http.listen: {e}")))?;
        Some((addr, metrics.clone()))
    } else {
        None
    };
    let _io = start_io(control.clone(), http)?;
    let c = &cfg.capture;
    let options = LiveOptions {
        interface: iface.clone(),
        promiscuous: c.promiscuous,
        snaplen: c.snaplen,
        buffer_size_bytes: (c.buffer_size_mb as i32).saturating_mul(1 << 20),
        immediate_mode: c.immediate_mode,
        timeout_ms: c.timeout_ms as i32,
        bpf_filter: Some(c.bpf_filter.clone()).filter(|f| !f.trim().is_empty()),
    };
    if c.workers > 1 {
        return workers::run_live(
            &cfg, scorer, dispatcher, counters, &metrics, &control, &options,
        );
    }
    let mut src = LiveSource::open(&options)?;
    let mut pipe = Pipeline::new(cfg.flow_config());
    let started = Instant::now();
    tracing::info!(
        "capturing on {iface}; model {} ({} trees, threshold {})",
        cfg.model.path.display(),
        scorer.model.trees(),
        scorer.threshold
    );
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("capturing"),
    ]);
    let watchdog = sd_notify::watchdog_enabled();
    let stats_every = Duration::from_secs(cfg.stats.interval_s);
    let (mut last_stats, mut last_tick, mut last_ping) =
        (Instant::now(), Instant::now(), Instant::now());
    let mut error = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut detect = emit::Detect::new(&cfg);
    detect.learn = learning::start(&cfg, &scorer);
    loop {
        if control.stop.load(Ordering::Relaxed) {
            break;
        }
        if control.reload.swap(false, Ordering::SeqCst) {
            // Flows that ended before the reload are scored by the model they ended under.
            scorer.score_batch(&mut batch, &mut detect, &counters, &dispatcher);
            reload(
                &mut cfg,
                config_path.as_deref(),
                &mut scorer,
                &iface,
                &metrics,
            );
            dispatcher.reopen();
        }
        let frame = src.next_frame();
        let mut emit = scorer.emitter(&mut batch, &mut detect, &counters, &dispatcher);
        let mut idle = false;
        match frame {
            Ok(Next::Frame(f)) => pipe.frame(&f, &mut emit),
            Ok(Next::Timeout) => {
                pipe.drain(&mut emit);
                idle = true;
            }
            Ok(Next::End) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(200) {
            last_tick = Instant::now();
            // Traffic may have stopped: wall-clock time expires flows on time.
            pipe.tick(now_us(), &mut emit);
            idle = true;
            if let Ok(s) = src.stats() {
                counters.set_kernel(&s);
            }
            if learning::swap_in(&mut detect, &mut scorer, false)
                && let Ok(mut m) = metrics.scorer.write()
            {
                *m = scorer.model.clone();
            }
            if let Ok(mut p) = metrics.packets.write() {
                *p = (pipe.counters(), pipe.flow_stats());
            }
            if let Some(period) = watchdog
                && last_ping.elapsed() >= period / 2
            {
                last_ping = Instant::now();
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
        if idle && !batch.is_empty() {
            scorer.score_batch(&mut batch, &mut detect, &counters, &dispatcher);
        }
        if !stats_every.is_zero() && last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            let line = stats_line(&pipe.counters(), &pipe.flow_stats(), &counters, &dispatcher);
            tracing::info!("stats {line}");
            if let Some(l) = learning::progress(&detect, &cfg) {
                tracing::info!("{l}");
            }
            notify(&[sd_notify::NotifyState::Status(&line)]);
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    if let Ok(s) = src.stats() {
        counters.set_kernel(&s);
    }
    let mut emit = scorer.emitter(&mut batch, &mut detect, &counters, &dispatcher);
    pipe.flush(&mut emit);
    scorer.score_batch(&mut batch, &mut detect, &counters, &dispatcher);
    // A model in training is finished and saved (training takes about a second).
    learning::swap_in(&mut detect, &mut scorer, true);
    // Drain (bounded), then the final stats: they count every event's outcome.
    dispatcher.shutdown(cfg.alerts.shutdown_timeout());
    let line = stats_line(&pipe.counters(), &pipe.flow_stats(), &counters, &dispatcher);
    tracing::info!(
        "final stats {line} kernel_received={}",
        counters.kernel_received.load(Ordering::Relaxed)
    );
    let summary = Summary::new(&pipe, &counters, &dispatcher, None, started);
    if let Some(e) = error {
        return Err(e.into());
    }
    Ok(summary)
}

/// SIGHUP: re-read the config and model; on any error keep the running ones.
fn reload(
    cfg: &mut Config,
    path: Option<&Path>,
    scorer: &mut Scorer,
    iface: &str,
    metrics: &Metrics,
) {
    let new_cfg = match path.map(crate::config::load) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::error!("reload rejected, keeping the running config and model: {e}");
            return;
        }
        None => cfg.clone(),
    };
    match Scorer::new(&new_cfg, iface, Loaded::default()) {
        Ok(s) => {
            if let Ok(mut m) = metrics.scorer.write() {
                *m = s.model.clone();
            }
            *scorer = s;
            if new_cfg.capture != cfg.capture
                || new_cfg.flow != cfg.flow
                || new_cfg.alerts.sinks != cfg.alerts.sinks
            {
                tracing::warn!(
                    "capture, flow and sink settings change only on restart; model, threshold and alert options reloaded"
                );
            }
            *cfg = new_cfg;
            tracing::info!(
                "reloaded model {} (threshold {})",
                cfg.model.path.display(),
                scorer.threshold
            );
        }
        Err(e) => tracing::error!("reload rejected, keeping the running model: {e}"),
    }
}

/// Features a `/predict` request may name, for error messages.
pub fn known_feature(name: &str) -> Option<Feature> {
    Feature::from_name(name)
}
