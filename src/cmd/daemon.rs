//! `flowsentry run`, `replay` and `check-config`.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {}

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not built yet")
}

pub fn replay(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`replay` is not built yet")
}

pub fn check_config(_args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`check-config` is not built yet")
}
