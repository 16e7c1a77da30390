//! The `flowsentry` command line: parses arguments, calls the library, maps errors to exit codes.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// flowsentry: CICFlowMeter flow features + Isolation Forest anomaly alerts.
#[derive(Parser, Debug)]
#[command(name = "flowsentry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read a pcap/pcapng file and write one CSV row per bidirectional flow.
    Flows(cmd::flows::Args),
    /// Fit an Isolation Forest from flow CSVs.
    Train(cmd::train::Args),
    /// Fit the host detector's Isolation Forest on benign capture files.
    TrainHost(cmd::train_host::Args),
    /// Score flow CSVs with a model, appending anomaly_score and is_anomaly.
    Score(cmd::score::Args),
    /// Evaluate a model against labeled flow CSVs.
    Evaluate(cmd::evaluate::Args),
    /// Run the sensor daemon on a live interface.
    Run(cmd::daemon::RunArgs),
    /// Feed a capture file through the daemon pipeline and sinks.
    Replay(cmd::daemon::ReplayArgs),
    /// Validate a config file and print the effective configuration.
    CheckConfig(cmd::daemon::CheckConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flows(a) => cmd::flows::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::TrainHost(a) => cmd::train_host::run(a),
        Command::Score(a) => cmd::score::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Run(a) => cmd::daemon::run(a),
        Command::Replay(a) => cmd::daemon::replay(a),
        Command::CheckConfig(a) => cmd::daemon::check_config(a),
    };
    match result {
        Ok(code) => code,
        // `flowsentry flows x.pcap | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowsentry: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause whose text the message already carries
/// (`cannot read config: No such file…`) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let e = anyhow::Error::new(flowsentry::config::ConfigError::Io {
            path: "/x.toml".into(),
            source: io,
        });
        assert_eq!(
            error_text(&e),
            "/x.toml: cannot read config: No such file (os error 2)"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the CSV");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("no")));
    }
}
