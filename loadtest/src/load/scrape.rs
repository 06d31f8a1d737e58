//! The engine's own view of a local run's latency, read from its Prometheus endpoint at
//! the end: how long its debits took through the broker before it had them, and how long
//! it then took to hand them to a carrier. Beside the run's produced → at the carrier
//! latency, this splits it into the broker's share and the engine's.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::summary::EngineLatency;

/// A loopback address no process listens on now, for the engine's metrics endpoint.
pub fn free_local_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// The text of `http://addr/metrics`.
pub async fn metrics_text(addr: SocketAddr) -> anyhow::Result<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        anyhow::Ok(body)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .context("the engine's metrics endpoint did not answer within 5 s")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("not an HTTP response")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200"),
        "metrics endpoint answered {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}

/// The value of summary `metric` at `quantile` (as the exporter writes it, e.g. `"0.99"`).
pub fn quantile(text: &str, metric: &str, quantile: &str) -> Option<f64> {
    let want = format!("{metric}{{quantile=\"{quantile}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
}

/// The engine's broker hop and own share, ms, from its metrics text; `None` when it has
/// not recorded both within its window (an empty summary's quantiles read 0: a run whose
/// last minute only awaited receipts).
pub fn engine_latency(text: &str) -> Option<EngineLatency> {
    let ms = |m: &str, q: &str| quantile(text, m, q).map(|s| s * 1e3);
    const HOP: &str = "pigeon_broker_hop_seconds";
    const OWN: &str = "pigeon_consumed_to_submit_seconds";
    let l = EngineLatency {
        broker_hop_p50_ms: ms(HOP, "0.5")?,
        broker_hop_p99_ms: ms(HOP, "0.99")?,
        engine_p50_ms: ms(OWN, "0.5")?,
        engine_p99_ms: ms(OWN, "0.99")?,
    };
    (l.broker_hop_p99_ms > 0.0 && l.engine_p99_ms > 0.0).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE pigeon_broker_hop_seconds summary
pigeon_broker_hop_seconds{quantile=\"0\"} 0.005
pigeon_broker_hop_seconds{quantile=\"0.5\"} 0.043
pigeon_broker_hop_seconds{quantile=\"0.99\"} 0.105
pigeon_broker_hop_seconds_sum 7729.6
pigeon_consumed_to_submit_seconds{quantile=\"0.5\"} 0.0082
pigeon_consumed_to_submit_seconds{quantile=\"0.99\"} 0.031
pigeon_consumed_to_submit_seconds_count 176000
";

    #[test]
    fn reads_both_stages_in_milliseconds() {
        let l = engine_latency(TEXT).unwrap();
        assert!((l.broker_hop_p50_ms - 43.0).abs() < 1e-9);
        assert!((l.broker_hop_p99_ms - 105.0).abs() < 1e-9);
        assert!((l.engine_p50_ms - 8.2).abs() < 1e-9);
        assert!((l.engine_p99_ms - 31.0).abs() < 1e-9);
    }

    #[test]
    fn a_quantile_is_not_mistaken_for_a_longer_one() {
        let text = "m{quantile=\"0.999\"} 3\nm{quantile=\"0.99\"} 2\n";
        assert_eq!(quantile(text, "m", "0.99"), Some(2.0));
        assert_eq!(quantile(text, "m", "0.5"), None);
    }

    #[test]
    fn nothing_recorded_yet_is_none() {
        let text = "pigeon_broker_hop_seconds{quantile=\"0.5\"} 0.04\n";
        assert_eq!(engine_latency(text), None);
    }

    #[test]
    fn a_window_that_saw_nothing_is_none() {
        let empty = TEXT
            .lines()
            .map(|l| match l.split_once("\"} ") {
                Some((k, _)) if k.starts_with("pigeon_consumed") => format!("{k}\"}} 0"),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(engine_latency(&empty), None);
        assert!(engine_latency(TEXT).is_some());
    }

    #[tokio::test]
    async fn fetches_the_body_of_a_metrics_endpoint() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /metrics HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
                .await
                .unwrap();
            s.write_all(TEXT.as_bytes()).await.unwrap();
        });
        let body = metrics_text(addr).await.unwrap();
        server.await.unwrap();
        assert_eq!(body, TEXT);
    }
}
