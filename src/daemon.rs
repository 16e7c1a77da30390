//! Wiring for `run` and `replay`: capture thread, flow table, scorer, sinks, signals, stats.
