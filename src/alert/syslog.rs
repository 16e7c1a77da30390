//! Syslog sink (the `syslog` crate): local unix socket, UDP or TCP to a collector, RFC 5424 or
//! RFC 3164, configurable facility and app-name. The message is one line: the alert's JSON or a
//! key=value summary.
//!
//! What "written" means here: unix, the datagram was accepted by the local syslog socket; tcp,
//! the message was handed whole to the kernel's connection (a collector that dies loses what sat
//! in the socket buffer; the error shows on the next write and from then on events are retried
//! and counted failed); udp, the datagram was sent: UDP has no delivery report, a collector that
//! is down is noticed only when an ICMP port-unreachable fails a later send, so most datagrams
//! sent into an outage count as written and are lost.

use std::io::BufWriter;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

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

/// gethostname(2), not /proc/sys/kernel/hostname: the unit's ProcSubset=pid hides /proc/sys.
fn hostname() -> Option<String> {
    hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().trim().to_string())
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
                "udp" | "tcp" => network_backend(cfg).map(|b| Logger::new(b, $fmt)),
                _ => syslog::unix_custom($fmt, cfg.address.as_str()).map_err(|e| e.to_string()),
            }
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

/// How long a TCP connect or write to a collector may take.
const NET_TIMEOUT: Duration = Duration::from_secs(2);

/// UDP: a *connected* socket, so an ICMP port-unreachable from a collector that is down comes
/// back as an error on the next send (an unconnected socket never hears of it). TCP: connect and
/// write with a timeout, so a dead collector cannot hold the sink thread.
fn network_backend(cfg: &SyslogSinkConfig) -> Result<LoggerBackend, String> {
    let addr: SocketAddr = cfg
        .address
        .parse()
        .map_err(|e| format!("address {:?}: {e}", cfg.address))?;
    if cfg.transport == "udp" {
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
        sock.connect(addr).map_err(|e| e.to_string())?;
        Ok(LoggerBackend::Udp(sock, addr))
    } else {
        let stream = TcpStream::connect_timeout(&addr, NET_TIMEOUT).map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(NET_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(LoggerBackend::Tcp(BufWriter::new(stream)))
    }
}

impl SyslogSink {
    /// Connects. A TCP collector that is down does not stop the start: the sink starts without
    /// a connection, counts the events it cannot deliver and reconnects (with the dispatcher's
    /// backoff) on each later event.
    pub fn open(cfg: &SyslogSinkConfig) -> Result<SyslogSink, SinkError> {
        let name = format!("syslog:{}:{}", cfg.transport, cfg.address);
        let backend = match connect(cfg) {
            Ok(b) => Some(b),
            Err(msg) if cfg.transport == "tcp" => {
                tracing::warn!("alert sink {name}: {msg}; starting without it, will reconnect");
                None
            }
            Err(msg) => {
                return Err(SinkError::Io {
                    sink: name.clone(),
                    msg,
                });
            }
        };
        Ok(SyslogSink {
            name,
            cfg: cfg.clone(),
            backend,
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
        let anomaly = alert.is_alert();
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
