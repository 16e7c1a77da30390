//! CPU time of the calling thread, for the per-thread figures `replay` logs: where a replay's
//! time went (with workers: the reader, each worker, the host thread), and whether a thread
//! was saturated. Read from `/proc/thread-self/schedstat` (the scheduler's count of the
//! thread's nanoseconds on a CPU, brought up to date at each scheduler tick, so a figure can
//! lag by one tick: a few ms): no `unsafe`, and `None` where the file is missing (not Linux,
//! or a kernel without scheduler statistics).

/// Seconds the calling thread has spent on a CPU, or `None`.
pub fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// `a - b`, when both are known.
pub fn since(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// Seconds as the log shows them ("0.083", or "?" when unknown).
pub fn show(s: Option<f64>) -> String {
    s.map_or_else(|| "?".into(), |s| format!("{s:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_counts_its_cpu_time() {
        // Linux with scheduler statistics (every kernel we run on): a missing file fails here.
        let t0 = thread_cpu_s();
        assert!(t0.is_some(), "no /proc/thread-self/schedstat");
        // Spin ~60 ms of wall-clock time on this thread.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = since(thread_cpu_s(), t0).unwrap_or(0.0);
        // At least part of it on a CPU (a loaded machine may preempt us), and not more than
        // the wall-clock time plus a scheduler tick.
        assert!(spent > 0.005, "spent {spent}");
        assert!(spent < 0.2, "spent {spent}");
        assert_eq!(show(Some(spent)), format!("{spent:.3}"));
        assert_eq!(show(None), "?");
    }
}
