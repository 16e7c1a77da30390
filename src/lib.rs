//! flowsentry: a network sensor that turns packets into CICFlowMeter flow features, scores each
//! finished flow with an Isolation Forest and emits alerts.
//!
//! The pipeline, one module per stage, each handing a plain value to the next:
//!
//! ```text
//! capture  →  decode  →  flow  →  features  →  forest (score)  →  alert
//! (Frame)   (PacketMeta) (Flow)  (FlowRecord)    (Scored)         (sinks)
//! ```
//!
//! - [`capture`]: packet sources (capture files, live interfaces) yielding timestamped frames.
//! - [`decode`]: frame bytes → [`decode::PacketMeta`], or a counted skip reason.
//! - [`flow`]: the bidirectional flow table, expiry and per-flow accumulators.
//! - [`features`]: the feature schema (defined once) and the finished [`features::FlowRecord`].
//! - [`forest`]: the Isolation Forest model: format, loading, scoring, training.
//! - [`host`]: host context (per-source and per-destination windows), the host detector and
//!   the session rules (brute force, connection exhaustion).
//! - [`learn`]: the optional learning period: a sample of the site's flows, a site model.
//! - [`eval`]: metrics, threshold tuning and plots for `evaluate`.
//! - [`alert`]: alert sinks (JSON lines, syslog, stdout).
//! - [`config`]: the daemon's TOML configuration.
//! - [`daemon`]: wiring for `run` and `replay`.
//! - [`shard`]: N flow tables on N threads, packets spread by a symmetric flow hash.
//! - [`cputime`]: a thread's CPU time, for the per-thread figures `replay` logs.
//! - [`prefetch`]: memory hints the flow table and host context use under floods (cache
//!   prefetch, 2 MiB pages for their large arrays).

pub mod alert;
pub mod capture;
pub mod config;
pub mod cputime;
pub mod daemon;
pub mod decode;
pub mod eval;
pub mod features;
pub mod flow;
pub mod forest;
pub mod host;
pub mod learn;
pub mod pipeline;
pub mod prefetch;
pub mod readfile;
pub mod shard;
