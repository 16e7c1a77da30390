//! `flowsentry run`, `replay` and `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use flowsentry::config::{self, Config};
use flowsentry::daemon::{self, Control, Speed};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Config file (default: /etc/flowsentry/flowsentry.toml, else the shipped config/flowsentry.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Capture on this interface instead of the config's (the systemd template passes it).
    #[arg(long)]
    pub interface: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// pcap or pcapng file.
    pub capture: PathBuf,
    /// Config file (default: the shipped config/flowsentry.toml: alerts as JSON lines on stdout).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// max, 1x (as recorded) or a multiple such as 10.
    #[arg(long, default_value = "max")]
    pub speed: String,
}

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// Config file to validate.
    pub file: PathBuf,
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.logging.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No colour codes unless a person is watching (journald and log files get plain text).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if cfg.logging.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn load(path: Option<PathBuf>) -> anyhow::Result<(Config, PathBuf)> {
    let path = path.unwrap_or_else(config::default_path);
    Ok((config::load(&path)?, path))
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (mut cfg, path) = load(a.config)?;
    if let Some(i) = a.interface {
        cfg.capture.interface = i;
    }
    init_logging(&cfg);
    let control = Arc::new(Control::default());
    let s = daemon::run(cfg, Some(path), control)?;
    eprintln!(
        "flowsentry: stopped after {:.1} s: {} packets, {} flows scored, {} alerts, {} events dropped by full sink queues, {} failed",
        s.seconds, s.packets.frames, s.scored, s.alerts, s.sink_dropped, s.sink_failed
    );
    Ok(ExitCode::SUCCESS)
}

pub fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let speed: Speed = a.speed.parse().map_err(anyhow::Error::msg)?;
    let (cfg, _) = load(a.config)?;
    init_logging(&cfg);
    let control = Arc::new(Control::default());
    // Ctrl-C and SIGTERM end a slow replay cleanly (open flows are still scored).
    let _io = daemon::start_io(control.clone(), None)?;
    let s = daemon::replay(&cfg, &a.capture, speed, &control)?;
    eprintln!(
        "{}: {} packets ({} decoded) in {:.3} s = {:.0} packets/s; {} flows scored, {} alerts ({:.0} alerts/s)",
        a.capture.display(),
        s.packets.frames,
        s.packets.decoded,
        s.seconds,
        s.packets.frames as f64 / s.seconds.max(1e-9),
        s.scored,
        s.alerts,
        s.alerts as f64 / s.seconds.max(1e-9),
    );
    if let Some(d) = &s.damaged {
        eprintln!("flowsentry: warning: {d}; every flow read before it was scored");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(a: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&a.file)?;
    let model = flowsentry::forest::Model::load(&cfg.model.path)?;
    print!("{}", cfg.to_toml());
    eprintln!(
        "{}: valid; model {} loads ({} trees, {} features, threshold {})",
        a.file.display(),
        cfg.model.path.display(),
        model.trees(),
        model.features().len(),
        cfg.model.threshold.unwrap_or(model.threshold())
    );
    Ok(ExitCode::SUCCESS)
}
