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
        "flowsentry: stopped after {:.1} s: {} packets, {} flows scored, {} alerts, {} events dropped by full sink queues, {} failed, {} abandoned at the shutdown deadline",
        s.seconds,
        s.packets.frames,
        s.scored,
        s.alerts,
        s.sink_dropped,
        s.sink_failed,
        s.sink_abandoned
    );
    Ok(ExitCode::SUCCESS)
}

/// The config `replay` uses. Without `--config`: the shipped reference config (stdout sink);
/// if it is not there (an installed binary), the installed config with its sinks replaced by
/// stdout. A replay never writes test alerts into an installed sensor's files or collectors.
fn replay_config(path: Option<PathBuf>) -> anyhow::Result<(Config, String)> {
    if let Some(p) = path {
        let cfg = config::load(&p)?;
        return Ok((cfg, p.display().to_string()));
    }
    let shipped = config::shipped_path();
    if shipped.is_file() {
        let cfg = config::load(&shipped)?;
        return Ok((
            cfg,
            format!("{} (shipped; --config to choose)", shipped.display()),
        ));
    }
    let installed = config::installed_path();
    if installed.exists() {
        let mut cfg = config::load(&installed)?;
        cfg.alerts.sinks = vec![config::SinkConfig::Stdout(Default::default())];
        return Ok((
            cfg,
            format!(
                "{} with its sinks replaced by stdout (--config to use its sinks)",
                installed.display()
            ),
        ));
    }
    anyhow::bail!(
        "no config: {} and {} are missing; pass --config FILE",
        shipped.display(),
        installed.display()
    )
}

pub fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let speed: Speed = a.speed.parse().map_err(anyhow::Error::msg)?;
    let (cfg, which) = replay_config(a.config)?;
    eprintln!("flowsentry: replay config: {which}");
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
    if s.interrupted {
        eprintln!(
            "flowsentry: replay interrupted by a signal after {} packets, before the end of {}; the flows read so far were scored",
            s.packets.frames,
            a.capture.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a replay cut short by SIGTERM/SIGINT (2 is a damaged capture).
pub const EXIT_INTERRUPTED: u8 = 3;

/// Builds everything `run` builds short of opening the interface (config values, model, BPF
/// filter, sinks) and lists every problem at once.
pub fn check_config(a: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let (cfg, mut problems) = config::load_unchecked(&a.file)?;
    let found = daemon::preflight::check(&cfg, true);
    problems.extend(found.problems);
    for w in &found.warnings {
        eprintln!("{}: warning: {w}", a.file.display());
    }
    if !problems.is_empty() {
        eprintln!(
            "{}: invalid, {} problem{}:",
            a.file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  - {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    print!("{}", cfg.to_toml());
    if let Some(model) = found.loaded.model {
        eprintln!(
            "{}: valid; model {} loads ({} trees, {} features, threshold {})",
            a.file.display(),
            cfg.model.path.display(),
            model.trees(),
            model.features().len(),
            cfg.model.threshold.unwrap_or(model.threshold())
        );
    }
    Ok(ExitCode::SUCCESS)
}
