//! Syslog sink (the `syslog` crate): local unix socket, UDP or TCP to a collector, RFC 5424 or
//! RFC 3164, configurable facility and app-name. The message is one line: the alert's JSON or a
//! key=value summary.

use syslog::{Facility, Formatter3164, Formatter5424, Logger, LoggerBackend};

use super::{Alert, Sink, SinkError};
use crate::config::SyslogSinkConfig;

enum Backend {
    Rfc5424(Logger<LoggerBackend, Formatter5424>),
    Rfc3164(Logger<LoggerBackend, Formatter3164>),
}

pub struct SyslogSink {
    name: String,
    cfg: SyslogSinkConfig,
    backend: Option<Backend>,
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn connect(cfg: &SyslogSinkConfig) -> Result<Backend, String> {
    let facility: Facility = cfg
        .facility
        .parse()
        .map_err(|_| format!("unknown facility {:?}", cfg.facility))?;
    let pid = std::process::id();
    let (host, process) = (hostname(), cfg.app_name.clone());
    macro_rules! open {
        ($fmt:expr) => {
            match cfg.transport.as_str() {
                "udp" => syslog::udp($fmt, "0.0.0.0:0", cfg.address.as_str()),
                "tcp" => syslog::tcp($fmt, cfg.address.as_str()),
                _ => syslog::unix_custom($fmt, cfg.address.as_str()),
            }
            .map_err(|e| e.to_string())
        };
    }
    if cfg.format == "rfc3164" {
        let f = Formatter3164 {
            facility,
            hostname: host,
            process,
            pid,
        };
        Ok(Backend::Rfc3164(open!(f)?))
    } else {
        let f = Formatter5424 {
            facility,
            hostname: host,
            process,
            pid,
        };
        Ok(Backend::Rfc5424(open!(f)?))
    }
}

impl SyslogSink {
    pub fn open(cfg: &SyslogSinkConfig) -> Result<SyslogSink, SinkError> {
        let name = format!("syslog:{}:{}", cfg.transport, cfg.address);
        let backend = connect(cfg).map_err(|msg| SinkError::Io {
            sink: name.clone(),
            msg,
        })?;
        Ok(SyslogSink {
            name,
            cfg: cfg.clone(),
            backend: Some(backend),
        })
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.backend.is_none() {
            self.backend = Some(connect(&self.cfg).map_err(|msg| SinkError::Io {
                sink: self.name.clone(),
                msg,
            })?);
        }
        let msg = if self.cfg.message == "json" {
            alert.to_json()
        } else {
            alert.to_kv()
        };
        // One line, always.
        let msg = msg.replace(['\n', '\r'], " ");
        let anomaly = alert.event_type == "anomaly";
        let res = match self.backend.as_mut() {
            Some(Backend::Rfc5424(l)) => {
                let m = (1u32, std::collections::BTreeMap::new(), msg);
                if anomaly { l.warning(m) } else { l.info(m) }
            }
            Some(Backend::Rfc3164(l)) => {
                if anomaly {
                    l.warning(msg)
                } else {
                    l.info(msg)
                }
            }
            None => Ok(()),
        };
        res.map_err(|e| {
            self.backend = None;
            SinkError::Io {
                sink: self.name.clone(),
                msg: e.to_string(),
            }
        })
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        self.backend = Some(connect(&self.cfg).map_err(|msg| SinkError::Io {
            sink: self.name.clone(),
            msg,
        })?);
        Ok(())
    }
}
