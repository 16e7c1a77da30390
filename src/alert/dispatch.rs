//! Bounded, non-blocking fan-out of events to sinks. Each sink runs on its own thread behind a
//! queue of `queue_size` events; `send` and `reopen` never wait (a full queue drops the event
//! and counts it); a failing sink is retried with exponential backoff and counted, then the
//! event is given up (counted) and the sink keeps serving the next ones. [`Dispatcher::shutdown`]
//! drains the queues within a deadline and counts what it could not deliver: every event sent is
//! in exactly one of `written`, `dropped`, `failed`, `abandoned` once it returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Alert, Sink};

/// Backoff between retries of one event: 50 ms doubling, 6 attempts in all (~1.6 s).
const RETRY_FIRST_MS: u64 = 50;
const ATTEMPTS: u32 = 6;
/// Longest single sleep of a retry backoff (shutdown is noticed within it).
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// After the shutdown deadline: time for sink threads to count what is left and stop. A thread
/// still inside a blocking write after it is left behind, its queue counted as abandoned.
const ABANDON_GRACE: Duration = Duration::from_millis(500);

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub name: String,
    /// Delivered, as far as the sink can know (see each sink's docs).
    pub written: AtomicU64,
    /// Dropped because the queue was full (or the sink had stopped).
    pub dropped: AtomicU64,
    /// Failed writes (each retry counts).
    pub errors: AtomicU64,
    /// Events given up after every retry failed.
    pub failed: AtomicU64,
    /// Events still queued when the shutdown deadline passed.
    pub abandoned: AtomicU64,
    /// Events waiting in the queue or being written now (a gauge).
    pub queued: AtomicU64,
}

impl SinkCounters {
    /// Events that reached the sink's queue or were refused by it: written + dropped + failed +
    /// abandoned + queued. Equals the events sent, at every moment.
    pub fn accounted(&self) -> u64 {
        [
            &self.written,
            &self.dropped,
            &self.failed,
            &self.abandoned,
            &self.queued,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

enum Msg {
    Event(Arc<Alert>),
    Reopen,
    /// Marks a point in the queue; the flag is set when the worker reaches it.
    Barrier(Arc<(Mutex<bool>, Condvar)>),
    /// Ends the worker once everything before it is handled.
    Stop,
}

/// Flags a worker reads between events.
#[derive(Default)]
struct Flags {
    /// Past the shutdown deadline: count what is left instead of writing it.
    abandon: AtomicBool,
    /// A reopen asked for while the queue was full: done before the next event.
    reopen: AtomicBool,
}

struct Worker {
    tx: SyncSender<Msg>,
    counters: Arc<SinkCounters>,
    flags: Arc<Flags>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// The fan-out.
pub struct Dispatcher {
    workers: Vec<Worker>,
}

fn reopen(sink: &mut dyn Sink, c: &SinkCounters) {
    if let Err(e) = sink.reopen() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!("alert sink {}: reopen failed: {e}", c.name);
    }
}

/// Sleeps `d` in slices; false when shutdown passed its deadline meanwhile.
fn sleep_unless_abandoned(d: Duration, flags: &Flags) -> bool {
    let end = Instant::now() + d;
    loop {
        if flags.abandon.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(SLEEP_SLICE));
    }
}

fn deliver(sink: &mut dyn Sink, a: &Alert, c: &SinkCounters, flags: &Flags) {
    if sink.gone() {
        c.queued.fetch_sub(1, Ordering::Relaxed);
        c.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut delay = RETRY_FIRST_MS;
    for attempt in 0..ATTEMPTS {
        match sink.emit(a) {
            Ok(()) => {
                c.queued.fetch_sub(1, Ordering::Relaxed);
                c.written.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                if attempt == 0 {
                    tracing::warn!("alert sink {}: {e}; retrying", c.name);
                }
                if sink.gone() {
                    tracing::warn!(
                        "alert sink {}: closed for good; later events are counted failed",
                        c.name
                    );
                    break;
                }
                if attempt + 1 == ATTEMPTS
                    || !sleep_unless_abandoned(Duration::from_millis(delay), flags)
                {
                    break;
                }
                delay *= 2;
            }
        }
    }
    c.queued.fetch_sub(1, Ordering::Relaxed);
    c.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!("alert sink {}: gave up on one event", c.name);
}

fn run(mut sink: Box<dyn Sink>, rx: mpsc::Receiver<Msg>, c: Arc<SinkCounters>, flags: Arc<Flags>) {
    loop {
        let abandon = flags.abandon.load(Ordering::Relaxed);
        let msg = if abandon {
            match rx.try_recv() {
                Ok(m) => m,
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        match msg {
            Msg::Event(a) => {
                // `queued` counts the event until its outcome is counted (also while a write
                // is in progress, so a thread left behind at shutdown is fully accounted).
                if abandon {
                    c.queued.fetch_sub(1, Ordering::Relaxed);
                    c.abandoned.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if flags.reopen.swap(false, Ordering::Relaxed) {
                    reopen(sink.as_mut(), &c);
                }
                deliver(sink.as_mut(), &a, &c, &flags);
            }
            Msg::Reopen => {
                flags.reopen.store(false, Ordering::Relaxed);
                reopen(sink.as_mut(), &c);
            }
            Msg::Barrier(b) => {
                let (m, cv) = &*b;
                if let Ok(mut done) = m.lock() {
                    *done = true;
                    cv.notify_all();
                }
            }
            Msg::Stop => return,
        }
    }
}

/// Keeps offering `msg` to a full queue until `deadline`; false if it never fit.
fn send_until(tx: &SyncSender<Msg>, mut msg: Msg, deadline: Instant) -> bool {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Dispatcher {
    /// Starts one thread per sink.
    pub fn new(sinks: Vec<Box<dyn Sink>>, queue_size: usize) -> Dispatcher {
        let workers = sinks
            .into_iter()
            .map(|sink| {
                let (tx, rx) = mpsc::sync_channel(queue_size.max(1));
                let counters = Arc::new(SinkCounters {
                    name: sink.name().to_string(),
                    ..SinkCounters::default()
                });
                let flags = Arc::new(Flags::default());
                let (c, f) = (counters.clone(), flags.clone());
                let handle = std::thread::Builder::new()
                    .name(format!("sink {}", sink.name()))
                    .spawn(move || run(sink, rx, c, f))
                    .map_err(|e| tracing::error!("cannot start a sink thread: {e}"))
                    .ok();
                Worker {
                    tx,
                    counters,
                    flags,
                    handle: Mutex::new(handle),
                }
            })
            .collect();
        Dispatcher { workers }
    }

    /// Queues an event for every sink; never blocks.
    pub fn send(&self, alert: Alert) {
        let a = Arc::new(alert);
        for w in &self.workers {
            // Counted as queued before it can be taken, so `accounted` never runs behind.
            w.counters.queued.fetch_add(1, Ordering::Relaxed);
            match w.tx.try_send(Msg::Event(a.clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    w.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    w.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Asks every sink to reopen, in queue order (events before it go to the old file); never
    /// blocks: with a full queue the sink reopens before its next event instead.
    pub fn reopen(&self) {
        for w in &self.workers {
            if w.tx.try_send(Msg::Reopen).is_err() {
                w.flags.reopen.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Waits until every sink has handled everything queued so far (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut all = true;
        for w in &self.workers {
            let b = Arc::new((Mutex::new(false), Condvar::new()));
            if !send_until(&w.tx, Msg::Barrier(b.clone()), deadline) {
                all = false;
                continue;
            }
            let (m, cv) = &*b;
            let Ok(guard) = m.lock() else {
                all = false;
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match cv.wait_timeout_while(guard, left, |done| !*done) {
                Ok((g, _)) => all &= *g,
                Err(_) => all = false,
            }
        }
        all
    }

    pub fn counters(&self) -> Vec<Arc<SinkCounters>> {
        self.workers.iter().map(|w| w.counters.clone()).collect()
    }

    /// Drains every queue and stops the sink threads, within `timeout`: past it, what is still
    /// queued is counted as abandoned (a retry in progress is cut short and counted failed) and
    /// the threads get [`ABANDON_GRACE`] to stop; a thread stuck in a blocking write is left
    /// behind with its queue counted. True when everything queued was handled in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for w in &self.workers {
            send_until(&w.tx, Msg::Stop, deadline);
        }
        let finished = |w: &Worker| {
            w.handle
                .lock()
                .map(|h| h.as_ref().is_none_or(|h| h.is_finished()))
                .unwrap_or(true)
        };
        // The sink threads usually finish within microseconds of `Stop`: look again after
        // 50 µs, doubling to 5 ms (a flat 5 ms sleep was 3-4% of a 2-worker scale replay).
        let wait_all = |until: Instant| {
            let mut nap = Duration::from_micros(50);
            loop {
                if self.workers.iter().all(finished) {
                    return true;
                }
                let now = Instant::now();
                if now >= until {
                    return false;
                }
                std::thread::sleep(nap.min(until - now));
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        };
        let in_time = wait_all(deadline);
        if !in_time {
            for w in &self.workers {
                w.flags.abandon.store(true, Ordering::Relaxed);
            }
            wait_all(Instant::now() + ABANDON_GRACE);
        }
        for w in &self.workers {
            let Ok(mut h) = w.handle.lock() else { continue };
            match h.take() {
                Some(t) if t.is_finished() => {
                    let _ = t.join();
                }
                Some(_) => {
                    // Stuck in a write: left behind; what it still holds is not delivered.
                    let left = w.counters.queued.swap(0, Ordering::Relaxed);
                    w.counters.abandoned.fetch_add(left, Ordering::Relaxed);
                    tracing::error!(
                        "alert sink {}: still writing at the shutdown deadline; {left} queued events abandoned",
                        w.counters.name
                    );
                }
                None => {}
            }
        }
        in_time
    }
}

impl Drop for Dispatcher {
    /// A dispatcher dropped without [`Dispatcher::shutdown`] stops its threads without waiting.
    fn drop(&mut self) {
        for w in &self.workers {
            w.flags.abandon.store(true, Ordering::Relaxed);
            let _ = w.tx.try_send(Msg::Stop);
        }
    }
}
