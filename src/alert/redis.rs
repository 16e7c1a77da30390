//! Redis sink, as Suricata's EVE Redis output has it: each event's JSON is LPUSHed (or RPUSHed)
//! onto a list, PUBLISHed on a channel, or XADDed to a stream (field `eve`), under one key. The
//! well-kept `redis` crate's blocking client, with connect/read/write timeouts so a dead server
//! cannot hold the sink thread.
//!
//! What "written" means: Redis answered the command (the event is in the list/stream, or was
//! handed to the channel's subscribers at that moment). A server that is down makes `emit` fail;
//! the dispatcher retries with backoff and then counts the event failed, and the sink reconnects
//! on the next event. A server that restarts without persistence loses what it held: that loss
//! is Redis's, not counted here. A command whose reply is lost with the connection may be retried
//! and so arrive twice.

use std::time::Duration;

use super::{Alert, Sink, SinkError};
use crate::config::{RedisMode, RedisSinkConfig};

/// How long a connect, or one command's write and reply, may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisSink {
    name: String,
    cfg: RedisSinkConfig,
    client: Option<redis::Client>,
    con: Option<redis::Connection>,
}

impl RedisSink {
    /// Never fails: a server that is down at start is connected to on the first event (and
    /// each failure is counted), like the TCP syslog sink.
    pub fn open(cfg: &RedisSinkConfig) -> RedisSink {
        let name = format!("redis:{}:{}/{}", cfg.server, cfg.port, cfg.key);
        let mut s = RedisSink {
            name,
            cfg: cfg.clone(),
            client: None,
            con: None,
        };
        if let Err(e) = s.connect() {
            tracing::warn!("{e}; will retry on the next event");
        }
        s
    }

    fn err(&self, msg: impl std::fmt::Display) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            msg: msg.to_string(),
        }
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        if self.client.is_none() {
            let addr = redis::ConnectionAddr::Tcp(self.cfg.server.clone(), self.cfg.port);
            self.client = Some(redis::Client::open(addr).map_err(|e| self.err(e))?);
        }
        let Some(client) = &self.client else {
            return Err(self.err("no client"));
        };
        let con = client
            .get_connection_with_timeout(REDIS_TIMEOUT)
            .map_err(|e| self.err(e))?;
        con.set_read_timeout(Some(REDIS_TIMEOUT))
            .and_then(|_| con.set_write_timeout(Some(REDIS_TIMEOUT)))
            .map_err(|e| self.err(e))?;
        self.con = Some(con);
        Ok(())
    }

    fn command(&self, json: &str) -> redis::Cmd {
        let key = self.cfg.key.as_str();
        match self.cfg.mode {
            RedisMode::List => redis::cmd("LPUSH").arg(key).arg(json).to_owned(),
            RedisMode::Rpush => redis::cmd("RPUSH").arg(key).arg(json).to_owned(),
            RedisMode::Channel => redis::cmd("PUBLISH").arg(key).arg(json).to_owned(),
            RedisMode::Stream => {
                let mut c = redis::cmd("XADD");
                c.arg(key);
                if self.cfg.stream_maxlen > 0 {
                    c.arg("MAXLEN").arg("~").arg(self.cfg.stream_maxlen);
                }
                c.arg("*").arg("eve").arg(json);
                c
            }
        }
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.con.is_none() {
            self.connect()?;
        }
        let cmd = self.command(&alert.to_json());
        let res = match self.con.as_mut() {
            Some(con) => cmd.query::<redis::Value>(con),
            None => return Err(self.err("not connected")),
        };
        match res {
            Ok(redis::Value::ServerError(e)) => Err(self.err(format!("{e:?}"))),
            Ok(_) => Ok(()),
            Err(e) => {
                // Reconnect on the next attempt.
                self.con = None;
                Err(self.err(e))
            }
        }
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        self.con = None;
        self.connect()
    }
}
