//! The daemon's TOML configuration: the serde schema (unknown keys are errors), defaults, and
//! validation into typed values. Parse errors name the file, line and column; validation
//! collects every problem and reports them together. `check-config`, `run` and `replay` all load
//! through [`load`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::flow::{Compat, FlowConfig};

mod learning;
mod validate;
pub use learning::LearningSection;
pub use validate::{MAX_QUEUE_SIZE, MAX_SHUTDOWN_TIMEOUT_S, MAX_TIMEOUT_S, MIN_TIMEOUT_S};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{path}: invalid configuration:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

fn d_true() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sensor: SensorSection,
    pub capture: CaptureSection,
    pub flow: FlowSection,
    pub model: ModelSection,
    pub host: HostSection,
    pub sessions: SessionsSection,
    pub learning: LearningSection,
    pub alerts: AlertsSection,
    pub logging: LoggingSection,
    pub stats: StatsSection,
    pub http: HttpSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSection {
    /// Sensor name: the EVE `host` field of every event.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    pub interface: String,
    #[serde(default = "d_true")]
    pub promiscuous: bool,
    pub snaplen: i32,
    pub bpf_filter: String,
    pub buffer_size_mb: u32,
    pub immediate_mode: bool,
    pub timeout_ms: u32,
    /// Flow tables on as many threads, packets spread by a symmetric flow hash
    /// ([`crate::shard`]; `replay` at `--speed max`).
    pub workers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowSection {
    pub flow_timeout_s: f64,
    pub activity_timeout_s: f64,
    pub max_flows: usize,
    pub compat: String,
    /// Seconds a closed TCP flow (FIN both ways + ACK, or RST) waits for late packets before
    /// it ends and is scored.
    pub tcp_linger_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Relative paths are taken from the config file's folder.
    pub path: PathBuf,
    /// Overrides the model's own alert threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Also emit an `event_type: "flow"` record for every scored flow.
    pub flow_events: bool,
    /// Alerts waiting per sink before new ones are dropped (and counted).
    pub queue_size: usize,
    /// Features listed in each alert's `top_features`.
    pub top_features: usize,
    /// On stop, time the sinks get to deliver what is queued; the rest is counted abandoned.
    pub shutdown_timeout_s: f64,
    /// Seed of the Community ID (v1) written into every flow alert and flow record (0..65535;
    /// Zeek's and Suricata's default is 0: keep it equal to theirs to join their logs).
    pub community_id_seed: u16,
    /// At most one alert per (host, detector) per this many seconds; 0 sends every alert.
    pub aggregate_window_s: f64,
    /// Alerts matching a rule are dropped and counted.
    pub suppress: Vec<crate::alert::aggregate::SuppressRule>,
    pub sinks: Vec<SinkConfig>,
}

/// The host context and host detector (scans, floods, brute force).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSection {
    pub enabled: bool,
    /// Host model file (`flowsentry train-host`); relative to the config file's folder.
    /// Default: `host-forest.json` beside the flow model (`model.path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Overrides the host model's own threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The bar for an "anomalous host" alert (counts that match no named behaviour: scan,
    /// sweep, flood, brute force). Default: the threshold + 0.05.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalous_threshold: Option<f64>,
    /// Cap on hosts tracked (about 150 bytes each, 1.2 KB once a host has two flows).
    pub max_hosts: usize,
    /// A host is scored once it opened or received this many flows within ~10 s.
    pub min_flows: f64,
}

/// Session rules (`src/host/sessions.rs`): thresholds on the TCP sessions of one source to one
/// service. A threshold of 0 turns its rule off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    pub enabled: bool,
    /// TCP ports of the login services the brute-force rules watch.
    pub login_ports: Vec<u16>,
    /// Brute force: sessions to one login service opened within `parallel_window_s` and all
    /// still open.
    pub parallel: u32,
    pub parallel_window_s: f64,
    /// Brute force: attempt-sized sessions (each side at most `attempt_max_bytes` of payload) to
    /// one login service ended within `attempts_window_s`.
    pub attempts: u32,
    pub attempts_window_s: f64,
    pub attempt_max_bytes: u64,
    /// Connection exhaustion: answered connections open at once from one source to one service.
    pub open_connections: u32,
    /// Cap on (source, service) entries (about 300 bytes each).
    pub max_entries: usize,
    /// Packet flood in one flow: the busier side sent this many packets (0 = off)...
    pub flood_packets: u64,
    /// ...at this average rate or more (packets/s), with at most 1% answered.
    pub flood_rate: f64,
}

impl Default for SessionsSection {
    fn default() -> Self {
        let d = crate::host::SessionConfig::default();
        SessionsSection {
            enabled: true,
            login_ports: d.login_ports.clone(),
            parallel: d.parallel,
            parallel_window_s: d.fresh_us as f64 / 1e6,
            attempts: d.attempts,
            attempts_window_s: d.window_us as f64 / 1e6,
            attempt_max_bytes: d.attempt_max_bytes as u64,
            open_connections: d.open,
            max_entries: d.max_entries,
            flood_packets: crate::host::FloodRule::default().packets,
            flood_rate: crate::host::FloodRule::default().rate,
        }
    }
}

impl Default for HostSection {
    fn default() -> Self {
        let d = crate::host::HostConfig::default();
        HostSection {
            enabled: true,
            model: None,
            threshold: None,
            anomalous_threshold: None,
            max_hosts: d.max_hosts,
            min_flows: f64::from(d.min_flows),
        }
    }
}

impl AlertsSection {
    /// `shutdown_timeout_s` as a duration (0 when invalid; validation refuses that earlier).
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64(self.shutdown_timeout_s).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Json(JsonSinkConfig),
    Stdout(StdoutSinkConfig),
    Syslog(SyslogSinkConfig),
    Redis(RedisSinkConfig),
}

/// How events are handed to Redis (Suricata's `redis.mode` names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// LPUSH onto a list (Suricata's `list`/`lpush`); consumers BRPOP (Logstash's redis input).
    #[default]
    List,
    /// RPUSH onto a list.
    Rpush,
    /// PUBLISH on a channel (Suricata's `channel`/`publish`): only live subscribers get it.
    Channel,
    /// XADD to a stream, field `eve` (Suricata's `stream`).
    Stream,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Redis host (Suricata: `server`). Default 127.0.0.1.
    #[serde(default = "d_redis_server")]
    pub server: String,
    #[serde(default = "d_redis_port")]
    pub port: u16,
    #[serde(default)]
    pub mode: RedisMode,
    /// List, channel or stream name. Default "flowsentry".
    #[serde(default = "d_redis_key")]
    pub key: String,
    /// Streams: keep about this many entries (`XADD key MAXLEN ~ N`); 0 = unbounded.
    #[serde(default = "d_redis_maxlen")]
    pub stream_maxlen: u64,
}

fn d_redis_server() -> String {
    "127.0.0.1".into()
}
fn d_redis_port() -> u16 {
    6379
}
fn d_redis_key() -> String {
    "flowsentry".into()
}
fn d_redis_maxlen() -> u64 {
    100_000
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSinkConfig {
    pub path: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// unix, udp or tcp.
    #[serde(default = "d_unix")]
    pub transport: String,
    /// Socket path (unix) or host:port (udp, tcp). Default /dev/log.
    #[serde(default = "d_dev_log")]
    pub address: String,
    /// rfc5424 or rfc3164.
    #[serde(default = "d_5424")]
    pub format: String,
    #[serde(default = "d_facility")]
    pub facility: String,
    #[serde(default = "d_app")]
    pub app_name: String,
    /// json (the alert object) or kv (key=value summary).
    #[serde(default = "d_kv")]
    pub message: String,
}

fn d_unix() -> String {
    "unix".into()
}
fn d_dev_log() -> String {
    "/dev/log".into()
}
fn d_5424() -> String {
    "rfc5424".into()
}
fn d_facility() -> String {
    "local0".into()
}
fn d_app() -> String {
    "flowsentry".into()
}
fn d_kv() -> String {
    "kv".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// error, warn, info, debug, trace (or a tracing filter such as `flowsentry=debug`).
    pub level: String,
    /// plain or json.
    pub format: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSection {
    /// Seconds between stats lines; 0 turns them off.
    pub interval_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub enabled: bool,
    pub listen: String,
}

impl Default for SensorSection {
    fn default() -> Self {
        SensorSection {
            name: "flowsentry".into(),
        }
    }
}
impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interface: "eth0".into(),
            promiscuous: true,
            snaplen: 262_144,
            bpf_filter: String::new(),
            buffer_size_mb: 64,
            immediate_mode: false,
            timeout_ms: 100,
            workers: 1,
        }
    }
}
impl Default for FlowSection {
    fn default() -> Self {
        FlowSection {
            flow_timeout_s: 120.0,
            activity_timeout_s: 5.0,
            max_flows: crate::flow::MAX_FLOWS,
            compat: "corrected".into(),
            tcp_linger_s: crate::flow::TCP_LINGER_US as f64 / 1e6,
        }
    }
}
impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            path: PathBuf::from("../model/forest.json"),
            threshold: None,
        }
    }
}
impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            flow_events: false,
            queue_size: 10_000,
            top_features: 5,
            shutdown_timeout_s: 10.0,
            community_id_seed: 0,
            aggregate_window_s: 60.0,
            suppress: Vec::new(),
            sinks: vec![SinkConfig::Stdout(StdoutSinkConfig {})],
        }
    }
}
impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            level: "info".into(),
            format: "plain".into(),
        }
    }
}
impl Default for StatsSection {
    fn default() -> Self {
        StatsSection { interval_s: 60 }
    }
}
impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: false,
            listen: "127.0.0.1:9108".into(),
        }
    }
}
/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses TOML text. `path` is used in messages and to resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let (cfg, problems) = parse_unchecked(text, path)?;
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            path: path.into(),
            problems,
        });
    }
    Ok(cfg)
}

/// Parses TOML text and lists the value problems without refusing them (`check-config` adds
/// the problems found by building the model, filter and sinks, and reports them all together).
/// Only unreadable TOML and unknown keys or wrong types are errors here.
pub fn parse_unchecked(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
    let mut cfg: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Parse {
            path: path.into(),
            line,
            column,
            msg: e.message().to_string(),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    resolve(&mut cfg.model.path);
    resolve(&mut cfg.learning.output);
    match cfg.host.model.as_mut() {
        Some(p) => resolve(p),
        None => {
            let dir = cfg.model.path.parent().unwrap_or(Path::new("."));
            cfg.host.model = Some(dir.join("host-forest.json"));
        }
    }
    for s in cfg.alerts.sinks.iter_mut() {
        if let SinkConfig::Json(j) = s {
            resolve(&mut j.path);
        }
    }
    let problems = cfg.problems();
    Ok((cfg, problems))
}

/// Largest config file read (the reference config is ~4 KB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads and validates a config file (regular files only: a FIFO or device is refused).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(&read(path)?, path)
}

/// Reads a config file and lists its value problems without refusing them (see
/// [`parse_unchecked`]).
pub fn load_unchecked(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
    parse_unchecked(&read(path)?, path)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    crate::readfile::read_regular(path, MAX_CONFIG_BYTES).map_err(|e| ConfigError::Io {
        path: path.into(),
        source: e,
    })
}

/// `run`'s config without `--config`: the installed one, else the shipped reference config.
pub fn default_path() -> PathBuf {
    let installed = installed_path();
    if installed.exists() {
        return installed;
    }
    shipped_path()
}

/// Where the service's config is installed.
pub fn installed_path() -> PathBuf {
    PathBuf::from("/etc/flowsentry/flowsentry.toml")
}

/// The reference config in the source tree the binary was built from.
pub fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flowsentry.toml")
}

impl Config {
    /// The host model file (resolved by [`parse_unchecked`]).
    pub fn host_model(&self) -> PathBuf {
        self.host.model.clone().unwrap_or_else(|| {
            let dir = self.model.path.parent().unwrap_or(Path::new("."));
            dir.join("host-forest.json")
        })
    }

    /// Host context settings.
    pub fn host_config(&self) -> crate::host::HostConfig {
        crate::host::HostConfig {
            max_hosts: self.host.max_hosts,
            min_flows: self.host.min_flows as f32,
            ..crate::host::HostConfig::default()
        }
    }

    /// Session rule settings.
    pub fn session_config(&self) -> crate::host::SessionConfig {
        let s = &self.sessions;
        crate::host::SessionConfig {
            login_ports: s.login_ports.clone(),
            parallel: s.parallel,
            fresh_us: (s.parallel_window_s * 1e6).round() as i64,
            attempts: s.attempts,
            window_us: (s.attempts_window_s * 1e6).round() as i64,
            attempt_max_bytes: s.attempt_max_bytes as f64,
            open: s.open_connections,
            max_entries: s.max_entries,
            closes_reported: self.flow.compat != "cic2017",
        }
    }

    /// The packet-flood rule, when the session rules are on and it is.
    pub fn flood_rule(&self) -> Option<crate::host::FloodRule> {
        let s = &self.sessions;
        (s.enabled && s.flood_packets > 0).then_some(crate::host::FloodRule {
            packets: s.flood_packets,
            rate: s.flood_rate,
        })
    }

    /// Flow table settings.
    pub fn flow_config(&self) -> FlowConfig {
        FlowConfig {
            flow_timeout_us: (self.flow.flow_timeout_s * 1e6).round() as i64,
            activity_timeout_us: (self.flow.activity_timeout_s * 1e6).round() as i64,
            max_flows: self.flow.max_flows,
            tcp_linger_us: (self.flow.tcp_linger_s * 1e6).round() as i64,
            compat: if self.flow.compat == "cic2017" {
                Compat::Cic2017
            } else {
                Compat::Corrected
            },
        }
    }

    /// The effective config as TOML (what `check-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::validate::log_level_ok;
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/etc/flowsentry/test.toml")
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(
            "[flow]\nmax_flows = 10\n[[alerts.sinks]]\ntype = \"json\"\npath = \"alerts.json\"\n",
            &p(),
        )
        .unwrap();
        assert_eq!(c.flow.max_flows, 10);
        assert_eq!(c.flow.flow_timeout_s, 120.0);
        assert_eq!(
            c.model.path,
            PathBuf::from("/etc/flowsentry/../model/forest.json")
        );
        assert_eq!(
            c.alerts.sinks,
            [SinkConfig::Json(JsonSinkConfig {
                path: "/etc/flowsentry/alerts.json".into()
            })]
        );
        assert_eq!(c.flow_config().flow_timeout_us, 120_000_000);
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let e = parse("[flow]\nmax_flows = 10\n  flow_timout_s = 3\n", &p())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/flowsentry/test.toml:3:3:"), "{e}");
        assert!(e.contains("flow_timout_s"), "{e}");
    }

    #[test]
    fn wrong_type_has_line_and_column() {
        let e = parse("[capture]\nsnaplen = \"big\"\n", &p())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/flowsentry/test.toml:2:11:"), "{e}");
    }

    #[test]
    fn unknown_sink_key_is_an_error() {
        let e = parse("[[alerts.sinks]]\ntype = \"stdout\"\ncolour = true\n", &p())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":1:") || e.contains(":2:") || e.contains(":3:"),
            "{e}"
        );
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_together() {
        let e = parse(
            "[flow]\nflow_timeout_s = -1\ncompat = \"java\"\n[capture]\nsnaplen = 10\n[[alerts.sinks]]\ntype = \"syslog\"\ntransport = \"udp\"\naddress = \"nowhere\"\nfacility = \"kitchen\"\n",
            &p(),
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }

    #[test]
    fn absurd_values_are_problems() {
        let problems = |t: &str| match parse(t, &p()) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        for q in ["9223372036854775807", "1000000000000", "0"] {
            let v = problems(&format!("[alerts]\nqueue_size = {q}\n"));
            assert!(v[0].contains("alerts.queue_size"), "{v:?}");
        }
        let v = problems("[logging]\nlevel = \"warning\"\n");
        assert!(v[0].contains("logging.level"), "{v:?}");
        let v = problems("[flow]\nflow_timeout_s = 1e-300\nactivity_timeout_s = 1e300\n");
        assert_eq!(v.len(), 2, "{v:?}");
        for ok in ["warn", "INFO", "flowsentry=debug", "info,flowsentry=trace"] {
            assert!(log_level_ok(ok), "{ok}");
        }
        assert!(!log_level_ok("flowsentry"));
    }

    #[test]
    fn warnings_for_odd_but_valid_values() {
        let c = parse(
            "[flow]\nflow_timeout_s = 0.5\n[http]\nenabled = true\nlisten = \"0.0.0.0:9108\"\n",
            &p(),
        )
        .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(Config::default().warnings().is_empty());
    }

    #[test]
    fn shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flowsentry.toml");
        let c = load(&path).unwrap();
        assert!(c.model.path.ends_with("model/forest.json"));
        assert!(c.model.path.exists(), "{}", c.model.path.display());
    }
}
