//! Stage 6: alert. The alert type and its sinks (JSON lines, syslog, stdout).
