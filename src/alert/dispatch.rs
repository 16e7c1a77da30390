//! Bounded, non-blocking fan-out of events to sinks. Each sink runs on its own thread behind a
//! queue of `queue_size` events; `send` never waits (a full queue drops the event and counts
//! it); a failing sink is retried with exponential backoff and counted, then the event is
//! given up (counted) and the sink keeps serving the next ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Alert, Sink};

/// Backoff between retries of one event: 50 ms doubling, 6 attempts in all (~1.6 s).
const RETRY_FIRST_MS: u64 = 50;
const ATTEMPTS: u32 = 6;

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub name: String,
    pub written: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Failed writes (each retry counts).
    pub errors: AtomicU64,
    /// Events given up after every retry failed.
    pub failed: AtomicU64,
}

enum Msg {
    Event(Arc<Alert>),
    Reopen,
    /// Marks a point in the queue; the flag is set when the worker reaches it.
    Barrier(Arc<(Mutex<bool>, Condvar)>),
}

struct Worker {
    tx: SyncSender<Msg>,
    counters: Arc<SinkCounters>,
    handle: JoinHandle<()>,
}

/// The fan-out.
pub struct Dispatcher {
    workers: Vec<Worker>,
}

fn run(mut sink: Box<dyn Sink>, rx: mpsc::Receiver<Msg>, c: Arc<SinkCounters>) {
    for msg in rx {
        match msg {
            Msg::Event(a) => {
                let mut delay = RETRY_FIRST_MS;
                let mut ok = false;
                for attempt in 0..ATTEMPTS {
                    match sink.emit(&a) {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) => {
                            c.errors.fetch_add(1, Ordering::Relaxed);
                            if attempt == 0 {
                                tracing::warn!("alert sink {}: {e}; retrying", c.name);
                            }
                            std::thread::sleep(Duration::from_millis(delay));
                            delay *= 2;
                        }
                    }
                }
                if ok {
                    c.written.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        "alert sink {}: gave up on one event after {ATTEMPTS} attempts",
                        c.name
                    );
                }
            }
            Msg::Reopen => {
                if let Err(e) = sink.reopen() {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("alert sink {}: reopen failed: {e}", c.name);
                }
            }
            Msg::Barrier(b) => {
                let (m, cv) = &*b;
                if let Ok(mut done) = m.lock() {
                    *done = true;
                    cv.notify_all();
                }
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
                let c = counters.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("sink {}", sink.name()))
                    .spawn(move || run(sink, rx, c))
                    .unwrap_or_else(panic_free_thread_error);
                Worker {
                    tx,
                    counters,
                    handle,
                }
            })
            .collect();
        Dispatcher { workers }
    }

    /// Queues an event for every sink; never blocks.
    pub fn send(&self, alert: Alert) {
        let a = Arc::new(alert);
        for w in &self.workers {
            match w.tx.try_send(Msg::Event(a.clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    w.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Asks every sink to reopen, in queue order (events before it go to the old file).
    pub fn reopen(&self) {
        for w in &self.workers {
            let _ = w.tx.send(Msg::Reopen);
        }
    }

    /// Waits until every sink has handled everything queued so far (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> bool {
        let mut all = true;
        for w in &self.workers {
            let b = Arc::new((Mutex::new(false), Condvar::new()));
            if w.tx.send(Msg::Barrier(b.clone())).is_err() {
                all = false;
                continue;
            }
            let (m, cv) = &*b;
            let Ok(guard) = m.lock() else {
                all = false;
                continue;
            };
            match cv.wait_timeout_while(guard, timeout, |done| !*done) {
                Ok((g, _)) => all &= *g,
                Err(_) => all = false,
            }
        }
        all
    }

    pub fn counters(&self) -> Vec<Arc<SinkCounters>> {
        self.workers.iter().map(|w| w.counters.clone()).collect()
    }

    /// Drains every queue and stops the sink threads.
    pub fn shutdown(self) {
        for w in self.workers {
            drop(w.tx);
            let _ = w.handle.join();
        }
    }
}

/// Thread spawning fails only when the OS is out of resources; there is no sink then.
fn panic_free_thread_error(e: std::io::Error) -> JoinHandle<()> {
    tracing::error!("cannot start a sink thread: {e}");
    std::thread::spawn(|| {})
}
