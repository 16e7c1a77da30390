//! The shared front half of every pipeline: capture → decode → flow table. `flows`, `replay`
//! and the live daemon all drive packets through [`Pipeline`]; they differ only in where frames
//! come from and where finished flows go.

use std::path::Path;

use crate::capture::{BlockSource, CaptureError, Frame, Next};
use crate::decode::{self, SkipCounts};
use crate::flow::ahead::Lookahead;
use crate::flow::{FlowConfig, FlowSink, FlowStats, FlowTable};

/// How often (in packet or wall-clock time) the table is swept for timed-out flows (µs).
pub const SWEEP_INTERVAL_US: i64 = 250_000;

/// Frame and decode counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounters {
    pub frames: u64,
    /// Frame bytes on the wire.
    pub bytes: u64,
    pub decoded: u64,
    pub skipped: SkipCounts,
}

/// Decoder plus flow table, fed one frame at a time. Decoded packets reach the table
/// [`AHEAD`](crate::flow::ahead::AHEAD) frames later ([`Lookahead`]: their cache lines are
/// fetched meanwhile), in order; [`Pipeline::drain`] hands over the ones held (done by
/// [`Pipeline::tick`] and [`Pipeline::flush`]; live loops call it when capture goes idle).
pub struct Pipeline {
    table: FlowTable,
    ahead: Lookahead<()>,
    counters: PacketCounters,
    next_sweep_us: Option<i64>,
}

impl Pipeline {
    pub fn new(cfg: FlowConfig) -> Pipeline {
        Pipeline {
            table: FlowTable::new(cfg),
            ahead: Lookahead::default(),
            counters: PacketCounters::default(),
            next_sweep_us: None,
        }
    }

    /// Decodes a frame and feeds it to the flow table; undecodable frames are counted.
    pub fn frame(&mut self, f: &Frame<'_>, emit: &mut impl FlowSink) {
        self.counters.frames += 1;
        self.counters.bytes += u64::from(f.wire_len);
        match decode::decode(f.linktype, f.ts_us, f.data, f.wire_len) {
            Ok(p) => {
                self.counters.decoded += 1;
                if let Some(((), p, k)) = self.ahead.add(&self.table, (), p, emit) {
                    self.sweep(p.ts_us, emit);
                    self.table.push_keyed(&p, k, emit);
                }
            }
            Err(r) => self.counters.skipped.add(r),
        }
    }

    /// Hands the packets held back to the table.
    pub fn drain(&mut self, emit: &mut impl FlowSink) {
        while let Some(((), p, k)) = self.ahead.pop() {
            self.sweep(p.ts_us, emit);
            self.table.push_keyed(&p, k, emit);
        }
    }

    /// Advances the flow clock to `now_us` (after the packets held back), expiring timed-out
    /// flows (at most once per [`SWEEP_INTERVAL_US`]).
    pub fn tick(&mut self, now_us: i64, emit: &mut impl FlowSink) {
        self.drain(emit);
        self.sweep(now_us, emit);
    }

    fn sweep(&mut self, now_us: i64, emit: &mut impl FlowSink) {
        match self.next_sweep_us {
            Some(t) if now_us < t => {}
            _ => {
                self.table.advance(now_us, emit);
                self.next_sweep_us = Some(now_us.saturating_add(SWEEP_INTERVAL_US));
            }
        }
    }

    /// Finishes every open flow.
    pub fn flush(&mut self, emit: &mut impl FlowSink) {
        self.drain(emit);
        self.table.flush(emit);
    }

    pub fn counters(&self) -> PacketCounters {
        self.counters
    }

    pub fn flow_stats(&self) -> FlowStats {
        self.table.stats()
    }
}

/// The outcome of reading one capture file.
#[derive(Debug)]
pub struct FileSummary {
    pub counters: PacketCounters,
    pub flows: FlowStats,
    /// Set when the file was damaged part way: every flow read before the damage was emitted.
    pub damaged: Option<CaptureError>,
}

/// Reads a whole capture file through the pipeline, flushing every open flow at the end (also
/// when the file turns out damaged part way). `progress` gets (bytes read, file length).
pub fn run_file(
    path: &Path,
    cfg: FlowConfig,
    progress: &mut dyn FnMut(u64, u64),
    emit: &mut impl FlowSink,
) -> Result<FileSummary, CaptureError> {
    let mut src = BlockSource::open_inline(path)?;
    let mut pipe = Pipeline::new(cfg);
    let len = src.file_len();
    let mut damaged = None;
    loop {
        match src.next_frame() {
            Ok(Next::Frame(f)) => {
                pipe.frame(&f, emit);
                if pipe.counters.frames.is_multiple_of(65_536) {
                    progress(src.position(), len);
                }
            }
            Ok(Next::End) | Ok(Next::Timeout) => break,
            Err(e) => {
                damaged = Some(e);
                break;
            }
        }
    }
    pipe.flush(emit);
    progress(len, len);
    Ok(FileSummary {
        counters: pipe.counters(),
        flows: pipe.flow_stats(),
        damaged,
    })
}
