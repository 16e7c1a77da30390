//! One file per subcommand: its arguments and the call into the library.

pub mod daemon;
pub mod evaluate;
pub mod flows;
pub mod score;
pub mod train;
pub mod train_host;
