//! Workers for capture files (`capture.workers`, `flows --workers`): the calling thread reads
//! the file (mapped into memory: [`BlockSource::open_mapped`]), decodes the frames and hands
//! each packet to one of N worker threads by the flow key's
//! symmetric hash ([`FlowKey::symmetric_hash`]: both directions of a flow reach the same
//! worker); each worker owns a [`FlowTable`] and a sink of its own, made on its thread.
//!
//! The flows are the ones a single table finds, as a set: a flow's packets reach one table in
//! capture order, and the sweeps that expire flows (every [`SWEEP_INTERVAL_US`] of packet
//! time) are sent to every worker at the packet where a single pipeline runs them, so timeouts,
//! TCP linger and continuations fall at the same packets. Only the cap differs: each table
//! holds `max_flows / N`, and evicts its own oldest flow (`tests/workers.rs` and
//! `tests/shared_captures.rs` compare the flow sets of 1, 2 and 3 workers on real captures).
//!
//! Packets travel in batches of [`BATCH_PACKETS`] over bounded channels (the reader waits
//! when a worker falls behind: nothing is dropped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::capture::{BlockSource, CaptureError, Next};
use crate::decode::{self, PacketMeta};
use crate::flow::ahead::Lookahead;
use crate::flow::{FlowConfig, FlowKey, FlowSink, FlowStats, FlowTable};
use crate::pipeline::{PacketCounters, SWEEP_INTERVAL_US};

/// Packets per batch handed to a worker.
pub const BATCH_PACKETS: usize = 4096;
/// Batches queued per worker before the reader waits.
const QUEUE_BATCHES: usize = 4;
/// Most workers (`capture.workers`, `--workers`).
pub const MAX_WORKERS: usize = 64;

/// What a worker gets, in capture order, with the decoded packet's number in the capture.
#[derive(Clone, Copy, Debug)]
enum Item {
    Packet(u64, PacketMeta),
    /// Sweep the table at this flow time (before packet `seq`).
    Sweep(u64, i64),
    /// Every packet up to `seq` for this worker came before.
    Upto(u64),
}

/// The worker (of `n`) that a packet's flow belongs to: its symmetric hash modulo `n`, as a
/// mask when `n` is a power of two (the same worker; a 64-bit division per packet was 2-3% of
/// the CPU time with 2 workers). Which worker a flow lands on decides which flows are scored
/// in one batch, so which alert of a folded group is sent: kept as it was.
fn worker_of(p: &crate::decode::PacketMeta, n: usize) -> usize {
    let h = FlowKey::symmetric_hash_of(p);
    let n = n as u64;
    (if n.is_power_of_two() {
        h & (n - 1)
    } else {
        h % n
    }) as usize
}

/// A worker's sink. What it emits can be put back in capture order across workers: each
/// event belongs to the packet announced by [`ShardSink::seq`] (decoded packets numbered from
/// 1; the flush at the end of input is `u64::MAX`), and [`ShardSink::done_to`] says that no
/// event of a packet up to that number will follow (after each batch).
pub trait ShardSink: FlowSink {
    fn seq(&mut self, _seq: u64) {}
    fn done_to(&mut self, _seq: u64) {}
}

/// The outcome of a sharded read.
#[derive(Debug, Default)]
pub struct ShardSummary {
    pub counters: PacketCounters,
    /// Summed over the workers' tables.
    pub flows: FlowStats,
    /// Set when the file was damaged part way: every flow read before the damage was emitted.
    pub damaged: Option<CaptureError>,
    /// `stop` was set before the end of the file.
    pub interrupted: bool,
    /// CPU seconds of the reading thread during the read, and of each worker
    /// ([`crate::cputime`]; `None` where unknown).
    pub reader_cpu_s: Option<f64>,
    pub worker_cpu_s: Vec<Option<f64>>,
}

/// Adds the counters of one table to a total.
pub fn add_stats(t: &mut FlowStats, s: &FlowStats) {
    t.active += s.active;
    t.created += s.created;
    t.expired += s.expired;
    t.closed_tcp += s.closed_tcp;
    t.evicted += s.evicted;
    t.flushed += s.flushed;
    t.icmp_splits += s.icmp_splits;
    t.out_of_order += s.out_of_order;
    t.dropped_single += s.dropped_single;
}

/// One worker: its table fed from `rx` until the reader hangs up, then flushed.
fn work<S: ShardSink>(
    cfg: FlowConfig,
    rx: Receiver<Vec<Item>>,
    back: SyncSender<Vec<Item>>,
    mut sink: S,
    end: &(dyn Fn(S) + Sync),
) -> (FlowStats, Option<f64>) {
    let mut table = FlowTable::new(cfg);
    // Packets reach the table a few items late, in order (their cache lines fetched meanwhile);
    // every one is in before a sweep and before the batch is declared done.
    let mut ahead = Lookahead::default();
    let drain = |ahead: &mut Lookahead<u64>, table: &mut FlowTable, sink: &mut S| {
        while let Some((seq, p, k)) = ahead.pop() {
            sink.seq(seq);
            table.push_keyed(&p, k, sink);
        }
    };
    for batch in rx {
        let mut last = 0;
        for item in &batch {
            match item {
                Item::Packet(seq, p) => {
                    last = *seq;
                    if let Some((seq, p, k)) = ahead.add(&table, *seq, *p, &sink) {
                        sink.seq(seq);
                        table.push_keyed(&p, k, &mut sink);
                    }
                }
                Item::Sweep(seq, t) => {
                    drain(&mut ahead, &mut table, &mut sink);
                    sink.seq(*seq);
                    last = *seq;
                    table.advance(*t, &mut sink);
                }
                Item::Upto(seq) => last = *seq,
            }
        }
        drain(&mut ahead, &mut table, &mut sink);
        sink.done_to(last);
        // The emptied batch goes back to the reader to be filled again: a fresh batch (over
        // 300 KB) per 4,096 packets was new memory the kernel cleared (the reader thread's
        // share of a flood's CPU samples fell from 17.6% to 11.4%). If the reader has enough
        // spares, or is gone, it is freed here.
        let mut batch = batch;
        batch.clear();
        let _ = back.try_send(batch);
    }
    sink.seq(u64::MAX);
    table.flush(&mut sink);
    let stats = table.stats();
    end(sink);
    (stats, crate::cputime::thread_cpu_s())
}

/// Reads `src` to its end (or `stop`) through `workers` flow tables on as many threads.
/// `make(i)` builds worker `i`'s sink on that worker's thread; `end(sink)` runs there after its
/// table is flushed (score what is left, send what is buffered). `progress` gets (bytes read,
/// file length) now and then.
pub fn run<S: ShardSink>(
    src: &mut BlockSource,
    cfg: FlowConfig,
    workers: usize,
    stop: Option<&AtomicBool>,
    make: &(dyn Fn(usize) -> S + Sync),
    end: &(dyn Fn(S) + Sync),
    progress: &mut dyn FnMut(u64, u64),
) -> ShardSummary {
    let cpu_at_start = crate::cputime::thread_cpu_s();
    let n = workers.clamp(1, MAX_WORKERS);
    let cfg = FlowConfig {
        max_flows: (cfg.max_flows / n).max(1),
        ..cfg
    };
    let mut out = ShardSummary::default();
    let len = src.file_len();
    std::thread::scope(|scope| {
        let mut txs: Vec<SyncSender<Vec<Item>>> = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        // Emptied batches, from every worker back to the reader.
        let (back, spares) = sync_channel::<Vec<Item>>(n * (QUEUE_BATCHES + 2));
        for i in 0..n {
            let (tx, rx) = sync_channel::<Vec<Item>>(QUEUE_BATCHES);
            txs.push(tx);
            let back = back.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("flowsentry-w{i}"))
                    .spawn_scoped(scope, move || work(cfg, rx, back, make(i), end)),
            );
        }
        drop(back);
        let mut batches: Vec<Vec<Item>> =
            (0..n).map(|_| Vec::with_capacity(BATCH_PACKETS)).collect();
        // When one worker's batch is full every worker gets its batch, ending with how far
        // the capture got: each worker's `done_to` then keeps up with the reader, so events
        // can be put back in capture order without waiting on a worker that gets few packets.
        let send_all = |upto: u64, batches: &mut [Vec<Item>]| {
            for (b, tx) in batches.iter_mut().zip(&txs) {
                b.push(Item::Upto(upto));
                let spare = spares
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH_PACKETS));
                let full = std::mem::replace(b, spare);
                // A worker that is gone (it panicked) loses its packets; its join reports it.
                let _ = tx.send(full);
            }
        };
        let mut next_sweep_us: Option<i64> = None;
        let c = &mut out.counters;
        loop {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                out.interrupted = true;
                break;
            }
            let f = match src.next_frame() {
                Ok(Next::Frame(f)) => f,
                Ok(Next::End) | Ok(Next::Timeout) => break,
                Err(e) => {
                    out.damaged = Some(e);
                    break;
                }
            };
            c.frames += 1;
            c.bytes += u64::from(f.wire_len);
            let p = decode::decode(f.linktype, f.ts_us, f.data, f.wire_len);
            if c.frames.is_multiple_of(65_536) {
                progress(src.position(), len);
            }
            let p = match p {
                Ok(p) => p,
                Err(r) => {
                    c.skipped.add(r);
                    continue;
                }
            };
            c.decoded += 1;
            // The sweep a single pipeline runs before this packet, on every table.
            if next_sweep_us.is_none_or(|t| p.ts_us >= t) {
                next_sweep_us = Some(p.ts_us.saturating_add(SWEEP_INTERVAL_US));
                for b in batches.iter_mut() {
                    b.push(Item::Sweep(c.decoded, p.ts_us));
                }
                if batches.iter().any(|b| b.len() >= BATCH_PACKETS) {
                    send_all(c.decoded, &mut batches);
                }
            }
            let i = worker_of(&p, n);
            if let Some(b) = batches.get_mut(i) {
                b.push(Item::Packet(c.decoded, p));
                if b.len() >= BATCH_PACKETS {
                    send_all(c.decoded, &mut batches);
                }
            }
        }
        send_all(c.decoded, &mut batches);
        out.reader_cpu_s = crate::cputime::since(crate::cputime::thread_cpu_s(), cpu_at_start);
        drop(txs);
        for h in handles {
            match h.map(|h| h.join()) {
                Ok(Ok((s, cpu))) => {
                    add_stats(&mut out.flows, &s);
                    out.worker_cpu_s.push(cpu);
                }
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(e) => {
                    out.worker_cpu_s.push(None);
                    // The thread could not start: say so as damage would (nothing was read by
                    // it), rather than lose flows silently.
                    out.damaged.get_or_insert(CaptureError::Damaged {
                        path: src.path().into(),
                        frames: src.frames(),
                        offset: None,
                        msg: format!("cannot start a worker thread: {e}"),
                    });
                }
            }
        }
    });
    progress(len, len);
    out
}
