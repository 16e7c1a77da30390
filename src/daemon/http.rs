//! The optional HTTP endpoint (off by default, loopback by default): `GET /metrics` in
//! Prometheus text format and `POST /predict`, which scores one JSON flow record
//! (`{"Flow Duration": 123, ...}`, either spelling of each feature name). HTTP/1.1 is hyper's,
//! with [`Limits`] on connections, header and body size and time.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;
use crate::features::Feature;

/// What one client may take from the endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Request line and headers (hyper's read buffer; it answers 431 beyond).
    pub max_header_bytes: usize,
    /// `/predict` body (413 beyond, also when Content-Length announces more).
    pub max_body_bytes: usize,
    /// Time to send the request line and headers.
    pub header_timeout: Duration,
    /// Time for a whole connection, request to response.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(10),
        }
    }
}

const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";

/// Pause after a failed accept (out of file descriptors): the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `/metrics` and `/predict` with the default [`Limits`].
pub async fn serve(listener: TcpListener, m: Arc<Metrics>) {
    serve_with(listener, m, Limits::default()).await
}

/// HTTP/1.1 on hyper, one connection per task, one request per connection.
pub async fn serve_with(listener: TcpListener, m: Arc<Metrics>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                tracing::warn!("http: accept failed: {e}; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // At the limit a new connection is answered 503 and closed at once, not left waiting in
        // the accept queue behind slow clients: a client that retries gets in as soon as a
        // slot frees (at most the header timeout later).
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = sock.try_write(BUSY);
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let m = m.clone();
                async move { Ok::<_, Infallible>(route(req, &m, limits).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(false)
                // A client may shut its sending side right after the request (`nc -N`): answer
                // it rather than closing on that EOF.
                .half_close(true)
                .serve_connection(TokioIo::new(sock), service);
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn route(req: Request<Incoming>, m: &Metrics, limits: Limits) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "text/plain; version=0.0.4", metrics_text(m))
        }
        (&Method::POST, "/predict") => {
            let announced = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let too_large = || {
                reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain",
                    format!("request body over {} bytes\n", limits.max_body_bytes),
                )
            };
            if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
                return too_large();
            }
            let body = match Limited::new(req.into_body(), limits.max_body_bytes)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("cannot read the body: {e}\n"),
                    );
                }
            };
            match predict(&body, m) {
                Ok(j) => reply(StatusCode::OK, "application/json", j),
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    serde_json::json!({ "error": e }).to_string(),
                ),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "GET /metrics or POST /predict\n".into(),
        ),
    }
}

/// Scores one JSON flow: features the model uses but the request lacks count as 0 and are
/// listed in `missing`.
pub fn predict(body: &[u8], m: &Metrics) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("body must be a JSON object of feature name to number")?;
    let model = m.scorer.read().map_err(|_| "model unavailable")?.clone();
    let mut x = vec![0.0; model.features().len()];
    let mut missing = Vec::new();
    for (i, f) in model.features().iter().enumerate() {
        let hit = obj.iter().find(|(k, _)| Feature::from_name(k) == Some(*f));
        match hit {
            Some((k, val)) => {
                x[i] = val
                    .as_f64()
                    .ok_or_else(|| format!("{k:?} must be a number"))?
            }
            // A feature the model reads twice (as it is and log-scaled) is listed once.
            None if !missing.contains(&f.name()) => missing.push(f.name()),
            None => {}
        }
    }
    let s = model.score_values(&x);
    Ok(serde_json::json!({
        "anomaly_score": s,
        "threshold": model.threshold(),
        "is_anomaly": model.is_anomaly(s),
        "missing": missing,
    })
    .to_string())
}

/// Prometheus text exposition of every counter.
pub fn metrics_text(m: &Metrics) -> String {
    let mut s = String::new();
    let c = &m.counters;
    let (p, f) = m.packets.read().map(|g| *g).unwrap_or_default();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(
            s,
            "# HELP flowsentry_{name} {help}\n# TYPE flowsentry_{name} {kind}"
        );
        for (labels, v) in samples {
            let _ = writeln!(s, "flowsentry_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    metric(
        "packets_total",
        "counter",
        "Frames captured.",
        &one(p.frames),
    );
    metric(
        "bytes_total",
        "counter",
        "Frame bytes captured.",
        &one(p.bytes),
    );
    metric(
        "decoded_total",
        "counter",
        "Frames decoded into packets.",
        &one(p.decoded),
    );
    let skips: Vec<(String, u64)> = crate::decode::SkipReason::ALL
        .iter()
        .map(|r| (format!("{{reason=\"{}\"}}", r.as_str()), p.skipped.get(*r)))
        .collect();
    metric(
        "skipped_total",
        "counter",
        "Frames skipped by reason.",
        &skips,
    );
    metric(
        "kernel_dropped_total",
        "counter",
        "Packets dropped by the kernel (pcap stats).",
        &one(c.kernel_dropped.load(Ordering::Relaxed)),
    );
    metric(
        "interface_dropped_total",
        "counter",
        "Packets dropped by the interface.",
        &one(c.if_dropped.load(Ordering::Relaxed)),
    );
    metric("flows_active", "gauge", "Open flows.", &one(f.active));
    let ended = vec![
        ("{reason=\"timeout\"}".to_string(), f.expired),
        ("{reason=\"tcp_close\"}".to_string(), f.closed_tcp),
        ("{reason=\"evicted\"}".to_string(), f.evicted),
        ("{reason=\"shutdown\"}".to_string(), f.flushed),
    ];
    metric(
        "flows_ended_total",
        "counter",
        "Flows ended by reason.",
        &ended,
    );
    metric(
        "flows_scored_total",
        "counter",
        "Flows scored.",
        &one(c.scored.load(Ordering::Relaxed)),
    );
    metric(
        "alerts_total",
        "counter",
        "Alerts sent to the sinks (after aggregation and suppression).",
        &one(c.alerts.load(Ordering::Relaxed)),
    );
    let findings = [
        ("flow", &c.flow_findings),
        ("host", &c.host_findings),
        ("session", &c.session_findings),
    ]
    .map(|(d, n)| (format!("{{detector=\"{d}\"}}"), n.load(Ordering::Relaxed)));
    metric(
        "findings_total",
        "counter",
        "Findings by detector, before aggregation.",
        &findings,
    );
    let tables = |h: &AtomicU64, s: &AtomicU64| {
        [("hosts", h), ("sessions", s)]
            .map(|(t, n)| (format!("{{table=\"{t}\"}}"), n.load(Ordering::Relaxed)))
    };
    metric(
        "host_stage_entries",
        "gauge",
        "Entries of the host stage's capped tables (hosts, source-service sessions).",
        &tables(&c.host_entries, &c.session_entries),
    );
    metric(
        "host_stage_evicted_total",
        "counter",
        "Entries removed to make room in a full table (single-flow hosts, idle sessions first).",
        &tables(&c.host_evicted, &c.session_evicted),
    );
    metric(
        "host_stage_refused_total",
        "counter",
        "Events not counted because a table was full of entries it keeps.",
        &tables(&c.host_refused, &c.session_refused),
    );
    metric(
        "host_scored_total",
        "counter",
        "Host scorings by the host detector.",
        &one(c.host_scored.load(Ordering::Relaxed)),
    );
    metric(
        "alerts_folded_total",
        "counter",
        "Alerts folded into an earlier alert of the same key (aggregation window, flood).",
        &one(c.folded.load(Ordering::Relaxed)),
    );
    metric(
        "alerts_suppressed_total",
        "counter",
        "Alerts dropped by suppress rules.",
        &one(c.suppressed.load(Ordering::Relaxed)),
    );
    for (name, kind, pick) in [
        ("sink_written_total", "counter", 0usize),
        ("sink_dropped_total", "counter", 1),
        ("sink_errors_total", "counter", 2),
        ("sink_failed_total", "counter", 3),
        ("sink_abandoned_total", "counter", 4),
        ("sink_queued", "gauge", 5),
    ] {
        let v: Vec<(String, u64)> = m
            .sinks
            .iter()
            .map(|k| {
                let val = [
                    &k.written,
                    &k.dropped,
                    &k.errors,
                    &k.failed,
                    &k.abandoned,
                    &k.queued,
                ][pick]
                    .load(Ordering::Relaxed);
                (format!("{{sink=\"{}\"}}", k.name.replace('"', "'")), val)
            })
            .collect();
        metric(name, kind, "Per-sink event counter.", &v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Counters;
    use std::sync::RwLock;

    fn metrics() -> Metrics {
        let model = crate::forest::Model::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json"),
        )
        .unwrap();
        let counters = Arc::new(Counters::default());
        counters.alerts.store(3, Ordering::Relaxed);
        Metrics {
            counters,
            packets: RwLock::new(Default::default()),
            sinks: vec![],
            scorer: RwLock::new(Arc::new(model)),
        }
    }

    #[test]
    fn predict_scores_a_json_flow() {
        let m = metrics();
        let out = predict(
            br#"{"Flow Duration": 5006912, " Packet Length Max": 1460, "FIN Flag Count": 2}"#,
            &m,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = v["anomaly_score"].as_f64().unwrap();
        assert!(s > 0.0 && s <= 1.0);
        // Every distinct model feature but the two given (Flow Duration is not a model input).
        let mut distinct = m.scorer.read().unwrap().features().to_vec();
        distinct.sort();
        distinct.dedup();
        assert!(!distinct.contains(&Feature::FlowDuration));
        assert_eq!(
            v["missing"].as_array().unwrap().len(),
            distinct.len() - 2,
            "{v}"
        );
        assert!(predict(b"[1,2]", &m).is_err());
        assert!(
            predict(br#"{"Packet Length Max": "many"}"#, &m)
                .unwrap_err()
                .contains("Packet Length Max")
        );
    }

    async fn start(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_with(listener, Arc::new(metrics()), limits));
        addr
    }

    /// A request sent to a served endpoint, the response read to the end (at most 5 s).
    async fn send(addr: std::net::SocketAddr, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn exchange(request: &[u8]) -> String {
        send(start(Limits::default()).await, request).await
    }

    #[tokio::test]
    async fn huge_content_length_is_refused_not_a_panic() {
        let addr = start(Limits::default()).await;
        // hyper refuses 2^64-1 as a length (431); a large but valid length is ours to refuse.
        let r = send(
            addr,
            b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 18446744073709551615\r\n\r\n{}",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 4"), "{r:?}");
        let r = send(
            addr,
            b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n{}",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r:?}");
        let r = send(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "still serving: {r:?}");
    }

    #[tokio::test]
    async fn predict_and_metrics_over_http() {
        let body = br#"{"Flow Duration": 5006912}"#;
        let req = format!(
            "POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let r = exchange(&[req.as_bytes(), body].concat()).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
        assert!(r.contains("\"anomaly_score\""), "{r:?}");
        let r = exchange(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
        assert!(r.contains("flowsentry_alerts_total 3\n"), "{r:?}");
        let r = exchange(
            b"POST /predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        )
        .await;
        assert!(
            r.starts_with("HTTP/1.1 400"),
            "a bad chunk is not too large: {r:?}"
        );
        let r = exchange(b"GET /nothing HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r:?}");
    }

    #[tokio::test]
    async fn a_client_that_half_closes_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = start(Limits::default()).await;
        for _ in 0..20 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            s.shutdown().await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
            assert!(
                out.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[tokio::test]
    async fn bare_lf_request_is_answered_at_once() {
        let t = std::time::Instant::now();
        let r = exchange(b"GET /metrics HTTP/1.1\nhost: x\n\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn oversized_headers_and_bodies_are_refused() {
        let big = format!(
            "GET /metrics HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let r = exchange(big.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 431"), "{:?}", &r[..r.len().min(80)]);
        let body = "1".repeat(70 * 1024);
        let req = format!(
            "POST /predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let r = exchange(req.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{:?}", &r[..r.len().min(80)]);
    }

    #[tokio::test]
    async fn slow_clients_cannot_hold_the_endpoint() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_millis(800),
            ..Limits::default()
        };
        let addr = start(limits).await;
        // Twice the connection limit of clients that send half a request line and stall.
        let mut idle = Vec::new();
        for _ in 0..8 {
            use tokio::io::AsyncWriteExt;
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /met").await.unwrap();
            idle.push(s);
        }
        let t = std::time::Instant::now();
        // Busy (503) at first, served once the slow clients' header time is up.
        let mut r = String::new();
        for _ in 0..30 {
            r = send(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
            if r.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(r.starts_with("HTTP/1.1 503") || r.is_empty(), "{r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let m = metrics();
        m.counters.session_evicted.store(7, Ordering::Relaxed);
        m.counters.session_findings.store(2, Ordering::Relaxed);
        m.counters.suppressed.store(5, Ordering::Relaxed);
        let t = metrics_text(&m);
        assert!(t.contains("flowsentry_host_stage_evicted_total{table=\"sessions\"} 7\n"));
        assert!(t.contains("flowsentry_host_stage_entries{table=\"hosts\"} 0\n"));
        assert!(t.contains("flowsentry_findings_total{detector=\"session\"} 2\n"));
        assert!(t.contains("flowsentry_alerts_suppressed_total 5\n"));
        assert!(
            t.contains("# TYPE flowsentry_packets_total counter\nflowsentry_packets_total 0\n")
        );
        assert!(t.contains("flowsentry_alerts_total 3\n"));
        assert!(t.contains("flowsentry_skipped_total{reason=\"ip_fragment\"} 0\n"));
    }
}
