//! Standard-output sink: JSON lines, for `replay` and debugging (`flowsentry replay x.pcap | jq`).

use std::io::Write;

use super::{Alert, Sink, SinkError};

/// "Written": the line was written to stdout. A reader that has gone (`replay x | head`) closes
/// the sink for good: later events are counted failed at once.
#[derive(Default)]
pub struct StdoutSink {
    closed: bool,
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        let mut line = alert.to_json();
        line.push('\n');
        out.write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    self.closed = true;
                }
                SinkError::Io {
                    sink: "stdout".into(),
                    msg: e.to_string(),
                }
            })
    }

    fn gone(&self) -> bool {
        self.closed
    }
}
