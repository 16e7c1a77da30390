//! `flowsentry flows`: a capture file in, one CSV row per bidirectional flow out.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use flowsentry::features::ColumnSet;
use flowsentry::features::csv_out::CsvWriter;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use flowsentry::capture::BlockSource;
use flowsentry::features::FlowRecord;
use flowsentry::flow::{Compat, FlowConfig, FlowSink};
use flowsentry::pipeline::{self, FileSummary};
use flowsentry::shard;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Columns {
    /// Original CIC-IDS2017 "TrafficLabelling" header.
    #[default]
    Cic2017,
    /// CICFlowMeter-4 names (CSE-CIC-IDS2018, improved CIC-IDS2017).
    Cfm4,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum CompatArg {
    /// The corrected CICFlowMeter that produced the improved CIC-IDS2017.
    #[default]
    Corrected,
    /// The original CIC-IDS2017 tool's quirks (first-FIN termination, …).
    Cic2017,
}

impl From<CompatArg> for Compat {
    fn from(c: CompatArg) -> Compat {
        match c {
            CompatArg::Corrected => Compat::Corrected,
            CompatArg::Cic2017 => Compat::Cic2017,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// pcap or pcapng file.
    pub capture: PathBuf,
    /// Output CSV (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Column names and set.
    #[arg(long, value_enum, default_value_t = Columns::Cic2017)]
    pub columns: Columns,
    /// Add a Label column with this text on every row.
    #[arg(long)]
    pub label: Option<String>,
    /// Add a last column, `Community ID` (v1, seed `--community-id-seed`).
    #[arg(long)]
    pub community_id: bool,
    /// Community ID seed (0..65535; Zeek's and Suricata's default is 0).
    #[arg(long, default_value_t = 0, requires = "community_id")]
    pub community_id_seed: u16,
    /// Which reference behaviour to reproduce.
    #[arg(long, value_enum, default_value_t = CompatArg::Corrected)]
    pub compat: CompatArg,
    /// Flow timeout in seconds, from a flow's first packet.
    #[arg(long, default_value_t = 120.0)]
    pub flow_timeout: f64,
    /// Activity timeout in seconds (active/idle periods).
    #[arg(long, default_value_t = 5.0)]
    pub activity_timeout: f64,
    /// Seconds a closed TCP flow (FIN both ways + ACK, or RST) waits for late packets before
    /// it ends (the daemon's `flow.tcp_linger_s`).
    #[arg(long, default_value_t = 2.0)]
    pub tcp_linger: f64,
    /// Cap on open flows; when full the oldest flow is ended early.
    #[arg(long, default_value_t = flowsentry::flow::MAX_FLOWS)]
    pub max_flows: usize,
    /// Benchmark: run the file through the pipeline N times (CSV formatted to nowhere) and print
    /// packets/s, flows/s and peak RSS.
    #[arg(long, value_name = "RUNS", num_args = 0..=1, default_missing_value = "5")]
    pub bench: Option<u32>,
    /// Worker threads, each with its own flow table; packets are spread by a symmetric flow
    /// hash (the same flows as one worker, rows in another order; `--max-flows` is shared out).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

/// Converts seconds to µs, refusing nonsense.
pub fn secs_to_us(name: &str, s: f64) -> anyhow::Result<i64> {
    anyhow::ensure!(
        s.is_finite() && s > 0.0 && s < 1e9,
        "--{name} must be a positive number of seconds, got {s}"
    );
    Ok((s * 1e6).round() as i64)
}

fn flow_config(a: &Args) -> anyhow::Result<FlowConfig> {
    anyhow::ensure!(a.max_flows > 0, "--max-flows must be at least 1");
    Ok(FlowConfig {
        flow_timeout_us: secs_to_us("flow-timeout", a.flow_timeout)?,
        activity_timeout_us: secs_to_us("activity-timeout", a.activity_timeout)?,
        max_flows: a.max_flows,
        compat: a.compat.into(),
        tcp_linger_us: secs_to_us("tcp-linger", a.tcp_linger)?,
    })
}

fn column_set(c: Columns) -> ColumnSet {
    match c {
        Columns::Cic2017 => ColumnSet::Cic2017,
        Columns::Cfm4 => ColumnSet::Cfm4,
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = flow_config(&a)?;
    if let Some(runs) = a.bench {
        return bench(&a, cfg, runs.max(1));
    }
    // A file output is written to a temporary file beside it and renamed over it only when the
    // input was read: a missing, unreadable or unsupported input leaves an existing FILE as it was.
    // A device or FIFO (`-o /dev/null`, a named pipe) is written directly: renaming over it
    // would replace it.
    let special = a
        .output
        .as_deref()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir()));
    let mut temp = match special {
        Some(_) => None,
        None => a.output.as_deref().map(TempOutput::new).transpose()?,
    };
    let out: Box<dyn Write + Send> = match (&temp, special) {
        (Some(t), _) => Box::new(
            t.file
                .try_clone()
                .with_context(|| format!("cannot create {}", t.temp.display()))?,
        ),
        (None, Some(p)) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?,
        ),
        (None, None) => Box::new(io::stdout()),
    };
    let mut w = CsvWriter::with_community_id(
        BufWriter::with_capacity(1 << 16, out),
        column_set(a.columns),
        a.label.as_deref(),
        a.community_id.then_some(a.community_id_seed),
    )?;
    let bar = progress_bar();
    let started = Instant::now();
    let mut write_err: Option<io::Error> = None;
    let mut progress = |pos, len| {
        if let Some(b) = &bar {
            b.set_length(len);
            b.set_position(pos);
        }
    };
    let (summary, rows, w) = if a.workers > 1 {
        let (summary, rows, out) = sharded(&a, cfg, w.finish()?, &mut progress)?;
        write_err = summary.1;
        (
            summary.0,
            rows,
            CsvWriter::rows_only(out, column_set(a.columns), None, None),
        )
    } else {
        let summary = pipeline::run_file(&a.capture, cfg, &mut progress, &mut |r| {
            if write_err.is_none()
                && let Err(e) = w.write(&r)
            {
                write_err = Some(e);
            }
        })?;
        (summary, w.rows(), w)
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = write_err {
        return Err(e).context("writing the CSV");
    }
    w.finish().context("writing the CSV")?;
    if let Some(t) = temp.take() {
        t.commit()?;
    }
    eprintln!(
        "{}",
        summary_line(&a.capture, &summary, rows, started.elapsed().as_secs_f64())
    );
    if let Some(d) = &summary.damaged {
        eprintln!("flowsentry: warning: {d}; every flow read before it was written");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes a worker gathers before it appends them to the output.
const WORKER_CHUNK_BYTES: usize = 1 << 18;

/// The output the workers append to, and its first write error.
type SharedOut = Mutex<(BufWriter<Box<dyn Write + Send>>, Option<io::Error>)>;

/// One worker's rows: formatted into its own buffer, appended to the shared output in whole
/// rows.
struct RowShard<'a> {
    w: CsvWriter<Vec<u8>>,
    out: &'a SharedOut,
}

impl RowShard<'_> {
    fn drain(&mut self) {
        let buf = self.w.inner_mut();
        if let Ok(mut o) = self.out.lock() {
            let (out, err) = &mut *o;
            if err.is_none()
                && let Err(e) = out.write_all(buf)
            {
                *err = Some(e);
            }
        }
        buf.clear();
    }
}

impl shard::ShardSink for RowShard<'_> {}

impl FlowSink for RowShard<'_> {
    fn ended(&mut self, r: FlowRecord) {
        // Into a Vec: cannot fail.
        let _ = self.w.write(&r);
        if self.w.inner_mut().len() >= WORKER_CHUNK_BYTES {
            self.drain();
        }
    }
}

/// `flows --workers N`: the capture through N flow tables on N threads ([`shard`]); the header
/// is already in `out`. Returns the summary and the first write error, the rows written and
/// the output.
#[allow(clippy::type_complexity)]
fn sharded(
    a: &Args,
    cfg: FlowConfig,
    out: BufWriter<Box<dyn Write + Send>>,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<(
    (FileSummary, Option<io::Error>),
    u64,
    BufWriter<Box<dyn Write + Send>>,
)> {
    let mut src = BlockSource::open_mapped(&a.capture)?;
    let shared: SharedOut = Mutex::new((out, None));
    let rows = AtomicU64::new(0);
    let set = column_set(a.columns);
    let label = a.label.as_deref();
    let seed = a.community_id.then_some(a.community_id_seed);
    let make = |_| RowShard {
        w: CsvWriter::rows_only(
            Vec::with_capacity(WORKER_CHUNK_BYTES + 4096),
            set,
            label,
            seed,
        ),
        out: &shared,
    };
    let end = |mut s: RowShard<'_>| {
        s.drain();
        rows.fetch_add(s.w.rows(), Ordering::Relaxed);
    };
    let s = shard::run(
        &mut src,
        cfg,
        usize::from(a.workers),
        None,
        &make,
        &end,
        progress,
    );
    let (out, err) = shared
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker failed while writing"))?;
    let summary = FileSummary {
        counters: s.counters,
        flows: s.flows,
        damaged: s.damaged,
    };
    Ok(((summary, err), rows.into_inner(), out))
}

/// `FILE` being written as `.FILE.PID.tmp` in the same folder; removed unless committed.
struct TempOutput {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempOutput {
    fn new(target: &std::path::Path) -> anyhow::Result<TempOutput> {
        let name = target
            .file_name()
            .with_context(|| format!("{}: not a file name", target.display()))?;
        let temp = target.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file =
            File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        Ok(TempOutput {
            file,
            temp,
            target: target.into(),
            committed: false,
        })
    }

    /// Flushes to disk and renames over the target.
    fn commit(mut self) -> anyhow::Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("writing {}", self.temp.display()))?;
        std::fs::rename(&self.temp, &self.target).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.temp.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {elapsed} ETA {eta}",
    ) {
        b.set_style(style);
    }
    Some(b)
}

/// The one-line summary printed on stderr at the end.
pub fn summary_line(path: &std::path::Path, s: &FileSummary, flows: u64, secs: f64) -> String {
    let c = &s.counters;
    let mut skipped = String::new();
    for (r, n) in c.skipped.nonzero() {
        skipped.push_str(&format!(" {}={n}", r.as_str()));
    }
    format!(
        "{}: packets read {} decoded {} skipped {}{}{} | flows emitted {} (timeout {} tcp-close {} evicted {} end-of-input {}) | {:.3} s, {:.0} packets/s",
        path.display(),
        c.frames,
        c.decoded,
        c.skipped.total(),
        if skipped.is_empty() { "" } else { " (" },
        if skipped.is_empty() {
            String::new()
        } else {
            format!("{})", skipped.trim_start())
        },
        flows,
        s.flows.expired,
        s.flows.closed_tcp,
        s.flows.evicted,
        s.flows.flushed,
        secs,
        c.frames as f64 / secs.max(1e-9),
    )
}

fn bench(a: &Args, cfg: FlowConfig, runs: u32) -> anyhow::Result<ExitCode> {
    let set = column_set(a.columns);
    let mut best = f64::INFINITY;
    let mut last = None;
    for i in 0..runs {
        let mut w = CsvWriter::new(io::sink(), set, a.label.as_deref())?;
        let t = Instant::now();
        let s = pipeline::run_file(&a.capture, cfg, &mut |_, _| {}, &mut |r| {
            let _ = w.write(&r);
        })?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!("run {}: {:.3} s", i + 1, secs);
        best = best.min(secs);
        last = Some((s, w.rows()));
    }
    let Some((s, flows)) = last else {
        anyhow::bail!("no run")
    };
    println!("file            {}", a.capture.display());
    println!("packets         {}", s.counters.frames);
    println!("flows           {flows}");
    println!("best of {runs} runs  {best:.3} s");
    println!("packets/s       {:.0}", s.counters.frames as f64 / best);
    println!("flows/s         {:.0}", flows as f64 / best);
    println!(
        "peak RSS        {}",
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l["VmHWM:".len()..].trim().to_string())
}
