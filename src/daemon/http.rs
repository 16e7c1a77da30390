//! The optional HTTP endpoint (off by default, loopback by default): `GET /metrics` in
//! Prometheus text format and `POST /predict`, which scores one JSON flow record
//! (`{"Flow Duration": 123, ...}`, either spelling of each feature name).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Metrics;
use crate::features::Feature;

/// Largest request accepted (headers and body).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub async fn serve(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(10), handle(sock, &m)).await;
        });
    }
}

async fn handle(mut sock: TcpStream, m: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (head_end, body_len) = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST_BYTES {
            return respond(
                &mut sock,
                "413 Payload Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (p + 4, len);
        }
    };
    if head_end.saturating_add(body_len) > MAX_REQUEST_BYTES {
        return respond(
            &mut sock,
            "413 Payload Too Large",
            "text/plain",
            "request too large\n",
        )
        .await;
    }
    while buf.len() < head_end + body_len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = String::from_utf8_lossy(&buf[..head_end])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let body = &buf[head_end..(head_end + body_len).min(buf.len())];
    match (method, path) {
        ("GET", "/metrics") => {
            respond(
                &mut sock,
                "200 OK",
                "text/plain; version=0.0.4",
                &metrics_text(m),
            )
            .await
        }
        ("POST", "/predict") => match predict(body, m) {
            Ok(j) => respond(&mut sock, "200 OK", "application/json", &j).await,
            Err(e) => {
                let j = serde_json::json!({ "error": e }).to_string();
                respond(&mut sock, "400 Bad Request", "application/json", &j).await
            }
        },
        _ => {
            respond(
                &mut sock,
                "404 Not Found",
                "text/plain",
                "GET /metrics or POST /predict\n",
            )
            .await
        }
    }
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
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
            None => missing.push(f.name()),
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
        "Flows above the threshold.",
        &one(c.alerts.load(Ordering::Relaxed)),
    );
    for (name, pick) in [
        ("sink_written_total", 0usize),
        ("sink_dropped_total", 1),
        ("sink_errors_total", 2),
        ("sink_failed_total", 3),
    ] {
        let v: Vec<(String, u64)> = m
            .sinks
            .iter()
            .map(|k| {
                let val =
                    [&k.written, &k.dropped, &k.errors, &k.failed][pick].load(Ordering::Relaxed);
                (format!("{{sink=\"{}\"}}", k.name.replace('"', "'")), val)
            })
            .collect();
        metric(name, "counter", "Per-sink event counter.", &v);
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
            br#"{"Flow Duration": 5006912, " Total Fwd Packets": 6, "Total Bwd packets": 5}"#,
            &m,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = v["anomaly_score"].as_f64().unwrap();
        assert!(s > 0.0 && s <= 1.0);
        assert_eq!(v["missing"].as_array().unwrap().len(), 76 - 3);
        assert!(predict(b"[1,2]", &m).is_err());
        assert!(
            predict(br#"{"Flow Duration": "long"}"#, &m)
                .unwrap_err()
                .contains("Flow Duration")
        );
    }

    /// A request sent to a served endpoint, the response read to the end.
    async fn exchange(m: Metrics, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(m)));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn huge_content_length_is_refused_not_a_panic() {
        let r = exchange(
            metrics(),
            b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 18446744073709551615\r\n\r\n{}",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r:?}");
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let t = metrics_text(&metrics());
        assert!(
            t.contains("# TYPE flowsentry_packets_total counter\nflowsentry_packets_total 0\n")
        );
        assert!(t.contains("flowsentry_alerts_total 3\n"));
        assert!(t.contains("flowsentry_skipped_total{reason=\"ip_fragment\"} 0\n"));
    }
}
