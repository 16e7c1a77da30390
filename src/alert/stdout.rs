//! Standard-output sink: JSON lines, for `replay` and debugging (`flowsentry replay x.pcap | jq`).

use std::io::Write;

use super::{Alert, Sink, SinkError};

#[derive(Default)]
pub struct StdoutSink;

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
            .map_err(|e| SinkError::Io {
                sink: "stdout".into(),
                msg: e.to_string(),
            })
    }
}
