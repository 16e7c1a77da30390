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
        Command::Score(a) => cmd::score::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Run(a) => cmd::daemon::run(a),
        Command::Replay(a) => cmd::daemon::replay(a),
        Command::CheckConfig(a) => cmd::daemon::check_config(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowsentry: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
