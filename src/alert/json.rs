//! JSON-lines file sink: one object per line, appended, flushed per event; `reopen` for
//! logrotate (SIGHUP).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Alert, Sink, SinkError};

pub struct JsonSink {
    name: String,
    path: PathBuf,
    file: Option<File>,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl JsonSink {
    /// Opens (creates) the file for appending; fails at once if it is not writable.
    pub fn open(path: &Path) -> Result<JsonSink, SinkError> {
        let name = format!("json:{}", path.display());
        let file = open(path).map_err(|e| SinkError::Io {
            sink: name.clone(),
            msg: e.to_string(),
        })?;
        Ok(JsonSink {
            name,
            path: path.into(),
            file: Some(file),
        })
    }
}

impl Sink for JsonSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let err = |e: std::io::Error| SinkError::Io {
            sink: self.name.clone(),
            msg: e.to_string(),
        };
        if self.file.is_none() {
            self.file = Some(open(&self.path).map_err(err)?);
        }
        let mut line = alert.to_json();
        line.push('\n');
        let res = match self.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()).and_then(|_| f.flush()),
            None => Ok(()),
        };
        if let Err(e) = res {
            // Reopen on the next attempt (file removed, disk full, ...).
            self.file = None;
            return Err(SinkError::Io {
                sink: self.name.clone(),
                msg: e.to_string(),
            });
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        self.file = None;
        let f = open(&self.path).map_err(|e| SinkError::Io {
            sink: self.name.clone(),
            msg: e.to_string(),
        })?;
        self.file = Some(f);
        Ok(())
    }
}
