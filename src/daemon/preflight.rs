//! Everything `run` builds before it opens the interface, checked the same way for
//! `check-config`, `run` and `replay`: the model loads, the BPF filter compiles, every sink's
//! destination can be used. Checks have no side effects (no file is created, nothing is
//! sent), and every problem is listed, not only the first.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, SinkConfig, SyslogSinkConfig};
use crate::forest::Model;

/// What the checks found: `problems` refuse a start, `warnings` do not.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The models that loaded: `run` and `replay` score with them (each is read once).
    pub loaded: Loaded,
}

/// Models loaded from the config's paths; [`crate::daemon::Scorer::new`] loads what is missing.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The model at `model.path`.
    pub model: Option<Model>,
    /// The host detector of `host.model` (`host.enabled`), with `host.threshold` applied.
    pub host: Option<crate::host::HostDetector>,
}

/// How long `check-config` waits for a TCP syslog collector.
const TCP_PROBE: Duration = Duration::from_secs(2);

/// Checks the model, the capture filter (`live`: `run` only) and every sink.
pub fn check(cfg: &Config, live: bool) -> Findings {
    let mut f = Findings {
        warnings: cfg.warnings(),
        ..Findings::default()
    };
    match Model::load(&cfg.model.path) {
        Ok(m) => f.loaded.model = Some(m),
        Err(e) => f.problems.push(format!("model: {e}")),
    }
    if cfg.host.enabled {
        match crate::host::HostDetector::load(&cfg.host_model(), cfg.host.threshold) {
            Ok(d) => f.loaded.host = Some(d),
            Err(e) => f.problems.push(format!("host.model: {e}")),
        }
    }
    if live && let Err(e) = check_bpf(&cfg.capture.bpf_filter) {
        f.problems.push(e);
    }
    for (i, s) in cfg.alerts.sinks.iter().enumerate() {
        match s {
            SinkConfig::Json(j) => {
                if let Err(e) = check_json_path(&j.path) {
                    f.problems
                        .push(format!("alerts.sinks[{i}] json {}: {e}", j.path.display()));
                }
            }
            SinkConfig::Stdout(_) => {}
            SinkConfig::Redis(r) => {
                if r.key.is_empty() {
                    f.problems
                        .push(format!("alerts.sinks[{i}] redis: key is empty"));
                }
            }
            SinkConfig::Syslog(s) => match check_syslog(s) {
                Ok(None) => {}
                Ok(Some(w)) => f.warnings.push(format!("alerts.sinks[{i}] syslog: {w}")),
                Err(e) => f.problems.push(format!("alerts.sinks[{i}] syslog: {e}")),
            },
        }
    }
    f
}

/// Compiles the filter for Ethernet, as libpcap will on the interface.
pub fn check_bpf(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Ok(());
    }
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .map_err(|e| format!("capture.bpf_filter: cannot check: {e}"))?;
    cap.compile(filter, true)
        .map(|_| ())
        .map_err(|e| format!("capture.bpf_filter {filter:?}: {e}"))
}

/// The JSON sink appends to a regular file, creating it in an existing folder.
fn check_json_path(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a directory".into()),
        Ok(m) if !m.file_type().is_file() => Err("is not a regular file".into()),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(|_| ())
            .map_err(|e| format!("cannot be opened for appending: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            match std::fs::metadata(parent) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(format!("{} is not a directory", parent.display())),
                Err(e) => Err(format!("folder {}: {e}", parent.display())),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// unix: the socket must exist (a missing /dev/log refuses the start); tcp: a collector that is
/// down is only a warning (the sink starts, counts and reconnects).
fn check_syslog(s: &SyslogSinkConfig) -> Result<Option<String>, String> {
    match s.transport.as_str() {
        "unix" => match std::fs::metadata(&s.address) {
            Ok(m) if m.file_type().is_socket() => Ok(None),
            Ok(_) => Err(format!("{} is not a socket", s.address)),
            Err(e) => Err(format!("{}: {e}", s.address)),
        },
        "tcp" => {
            let Ok(addr) = s.address.parse() else {
                return Ok(None); // reported by the config's own checks
            };
            match std::net::TcpStream::connect_timeout(&addr, TCP_PROBE) {
                Ok(_) => Ok(None),
                Err(e) => Ok(Some(format!(
                    "collector {} not reachable now ({e}); the sensor will start and reconnect",
                    s.address
                ))),
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_is_a_problem() {
        assert!(check_bpf("tcp port 80").is_ok());
        assert!(check_bpf("").is_ok());
        let e = check_bpf("tcp port eighty").unwrap_err();
        assert!(e.contains("bpf_filter"), "{e}");
    }

    #[test]
    fn json_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_json_path(&dir.path().join("a.json")).is_ok());
        assert!(!dir.path().join("a.json").exists(), "no side effect");
        assert!(
            check_json_path(dir.path())
                .unwrap_err()
                .contains("directory")
        );
        assert!(check_json_path(&dir.path().join("no/a.json")).is_err());
    }
}
