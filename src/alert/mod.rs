//! Stage 6: alert. A scored flow (or a host the host detector flagged) becomes an [`Alert`] — a
//! Suricata EVE event ([`event`]) whose `alert` fields come from one [signature
//! registry](signature) — and a [`dispatch::Dispatcher`] hands it to every configured sink —
//! JSON lines ([`json`]), syslog ([`syslog`]), Redis ([`redis`]), stdout ([`stdout`]) — through bounded queues, so
//! a slow or failing sink never blocks capture.

pub mod aggregate;
pub mod dispatch;
pub mod event;
pub mod explain;
pub mod json;
pub mod redis;
pub mod signature;
pub mod stdout;
pub mod syslog;

use thiserror::Error;

pub use event::{
    Alert, AlertInfo, Contribution, EveFlow, Explained, Extension, HostAlert, HostInfo, HostRole,
    Origin, Verdict, eve_time, flow_id, proto_name,
};
pub use signature::{Detector, Signature};

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{sink}: {msg}")]
    Io { sink: String, msg: String },
}

/// One sink. Implementations do blocking I/O; the dispatcher runs each on its own thread.
pub trait Sink: Send {
    fn name(&self) -> &str;
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Reopen files / reconnect (SIGHUP, logrotate, after errors).
    fn reopen(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The destination is gone for good (a closed stdout): events are counted failed at once,
    /// without retries.
    fn gone(&self) -> bool {
        false
    }
}
