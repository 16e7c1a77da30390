//! Stage 5b: host context. Flows seen one at a time cannot show a scan, a flood or password
//! guessing — each probe is a small ordinary flow. This stage keeps per-host state across flows
//! (updated when a flow starts, gets its first answer and ends, so a flood is seen while it
//! happens), turns it into host features ([`features`], defined once), and scores them with a
//! host model ([`detector`]); [`sessions`] holds threshold rules on the sessions of one source to
//! one service (password guessing with few connections, connections held open). It hands on [`HostFinding`]s, which the alert stage turns into
//! EVE alerts.

pub mod capped;
pub mod context;
pub mod detector;
pub mod features;
pub mod sessions;
pub mod sketch;
pub mod train;
pub mod volume;

pub use context::{HostConfig, HostContext, HostStats};
pub use detector::{HostDetector, HostFinding, HostKind, Role};
pub use features::{HOST_FEATURES, HostFeature, HostVector, NUM_HOST_FEATURES};
pub use sessions::{SessionConfig, SessionFinding, SessionKind, SessionRules, SessionStats};
pub use volume::{FloodFinding, FloodRule};
