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
        // Spin until the thread has been on a CPU for 30 ms by its own count (however busy
        // the machine is: other tests run alongside), or 10 s of wall-clock time pass.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut spent = 0.0;
        while spent < 0.03 && start.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            spent = since(thread_cpu_s(), t0).unwrap_or(0.0);
        }
        let wall = start.elapsed().as_secs_f64();
        // The count moves with the work, and never runs ahead of the wall clock (one
        // scheduler tick of slack).
        assert!(
            spent >= 0.03,
            "only {spent} s of CPU time counted in {wall} s"
        );
        assert!(spent <= wall + 0.01, "{spent} s of CPU time in {wall} s");
        assert_eq!(show(Some(spent)), format!("{spent:.3}"));
        assert_eq!(show(None), "?");
    }
}
