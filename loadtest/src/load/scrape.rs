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

/// The value of histogram `metric` (unlabelled) at quantile `q`, estimated from its
/// cumulative buckets as Prometheus's `histogram_quantile` does: linearly within the bucket
/// the rank falls in (from 0 for the first), the highest finite bound if it falls beyond
/// them. `None` when the metric is absent or counted nothing.
pub fn quantile(text: &str, metric: &str, q: f64) -> Option<f64> {
    let prefix = format!("{metric}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = (text.lines())
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(_, total) = buckets.last()?;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let within = if count > below {
                (rank - below) / (count - below)
            } else {
                0.0
            };
            return Some(lower + (le - lower) * within);
        }
        (lower, below) = (le, count);
    }
    None
}

/// The engine's broker hop and own share, ms, from its metrics text (everything the engine
/// process recorded); `None` when it has recorded neither.
pub fn engine_latency(text: &str) -> Option<EngineLatency> {
    let ms = |m: &str, q: f64| quantile(text, m, q).map(|s| s * 1e3);
    const HOP: &str = "pigeon_broker_hop_seconds";
    const OWN: &str = "pigeon_consumed_to_submit_seconds";
    Some(EngineLatency {
        broker_hop_p50_ms: ms(HOP, 0.5)?,
        broker_hop_p99_ms: ms(HOP, 0.99)?,
        engine_p50_ms: ms(OWN, 0.5)?,
        engine_p99_ms: ms(OWN, 0.99)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 hops: 50 within 40 ms, 49 more within 100 ms, one beyond the last bound; 200
    /// engine shares, all within 10 ms, half within 5.
    const TEXT: &str = "\
# TYPE pigeon_broker_hop_seconds histogram
pigeon_broker_hop_seconds_bucket{le=\"0.02\"} 0
pigeon_broker_hop_seconds_bucket{le=\"0.04\"} 50
pigeon_broker_hop_seconds_bucket{le=\"0.1\"} 99
pigeon_broker_hop_seconds_bucket{le=\"+Inf\"} 100
pigeon_broker_hop_seconds_sum 7.7
pigeon_broker_hop_seconds_count 100
pigeon_consumed_to_submit_seconds_bucket{le=\"0.005\"} 100
pigeon_consumed_to_submit_seconds_bucket{le=\"0.01\"} 200
pigeon_consumed_to_submit_seconds_bucket{le=\"+Inf\"} 200
pigeon_consumed_to_submit_seconds_count 200
";

    #[test]
    fn quantiles_are_interpolated_within_their_bucket() {
        let q = |m: &str, q: f64| quantile(TEXT, m, q).unwrap();
        let hop = "pigeon_broker_hop_seconds";
        // Rank 50 ends the (0.02, 0.04] bucket; rank 25 is halfway into it.
        assert!((q(hop, 0.5) - 0.04).abs() < 1e-12);
        assert!((q(hop, 0.25) - 0.03).abs() < 1e-12);
        // Rank 99 ends (0.04, 0.1]; rank 99.5 is in +Inf: the highest finite bound.
        assert!((q(hop, 0.99) - 0.1).abs() < 1e-12);
        assert!((q(hop, 0.995) - 0.1).abs() < 1e-12);
        // The first bucket starts from 0.
        let own = "pigeon_consumed_to_submit_seconds";
        assert!((q(own, 0.25) - 0.0025).abs() < 1e-12);
        assert!((q(own, 0.75) - 0.0075).abs() < 1e-12);
    }

    #[test]
    fn reads_both_stages_in_milliseconds() {
        let l = engine_latency(TEXT).unwrap();
        assert!((l.broker_hop_p50_ms - 40.0).abs() < 1e-9);
        assert!((l.broker_hop_p99_ms - 100.0).abs() < 1e-9);
        assert!((l.engine_p50_ms - 5.0).abs() < 1e-9);
        assert!((l.engine_p99_ms - 9.9).abs() < 1e-9);
    }

    #[test]
    fn a_metric_is_not_mistaken_for_a_longer_one() {
        let text = "m_x_bucket{le=\"1\"} 3\nm_x_bucket{le=\"+Inf\"} 3\n";
        assert_eq!(quantile(text, "m", 0.5), None);
        assert_eq!(quantile(text, "m_x", 0.5), Some(0.5));
    }

    #[test]
    fn nothing_recorded_is_none() {
        let only_hops = (TEXT.lines())
            .filter(|l| !l.starts_with("pigeon_consumed"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(engine_latency(&only_hops), None);
        let counted_nothing = (TEXT.lines())
            .map(|l| match l.split_once("} ") {
                Some((k, _)) if k.starts_with("pigeon_consumed") => format!("{k}}} 0"),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(engine_latency(&counted_nothing), None);
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
