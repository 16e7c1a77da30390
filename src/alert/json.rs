//! JSON-lines file sink: one object per line, appended, flushed per event; `reopen` for
//! logrotate (SIGHUP).
//!
//! "Written" means: the whole line is in the file, under the file's name, in the kernel's page
//! cache (not fsynced). Every line in the file is whole or absent: a write cut short (disk full,
//! file-size limit) is cut back to the last whole line before the error is reported, and a file
//! found with a torn last line when it is opened is cut back the same way. A file deleted
//! under the sink (no name left) is noticed before each write and recreated, so events do not
//! vanish into an unlinked file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Alert, Sink, SinkError};

pub struct JsonSink {
    name: String,
    path: PathBuf,
    file: Option<File>,
}

/// How far back a torn last line is looked for (a line is a few KB at most).
const TAIL_SCAN_BYTES: u64 = 1 << 20;

/// Cuts the file back to its last newline when its last line is torn.
fn repair_tail(f: &mut File) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let start = len.saturating_sub(TAIL_SCAN_BYTES);
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(start))?;
    (&mut *f).take(len - start).read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        None => return Ok(()), // a single line over 1 MiB is not ours
    };
    tracing::warn!("alert file: cut a torn last line ({} bytes)", len - keep);
    f.set_len(keep)
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    repair_tail(&mut f)?;
    Ok(f)
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

    fn err(&self, e: std::io::Error) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            msg: e.to_string(),
        }
    }
}

impl Sink for JsonSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let mut line = alert.to_json();
        line.push('\n');
        let mut f = match self.file.take() {
            Some(f) => f,
            None => open(&self.path).map_err(|e| self.err(e))?,
        };
        let meta = f.metadata().map_err(|e| self.err(e))?;
        if meta.nlink() == 0 {
            // Deleted under us: a line written now could never be read.
            tracing::warn!(
                "alert sink {}: the file was deleted; recreating it",
                self.name
            );
            f = open(&self.path).map_err(|e| self.err(e))?;
        }
        let before = f.metadata().map_err(|e| self.err(e))?.len();
        match f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
            Ok(()) => {
                self.file = Some(f);
                Ok(())
            }
            Err(e) => {
                // Part of the line may be in the file: take it back out. If even that fails,
                // the file is reopened (and repaired) on the next attempt.
                if f.set_len(before).is_ok() {
                    self.file = Some(f);
                }
                Err(self.err(e))
            }
        }
    }

    fn reopen(&mut self) -> Result<(), SinkError> {
        self.file = None;
        let f = open(&self.path).map_err(|e| self.err(e))?;
        self.file = Some(f);
        Ok(())
    }
}
