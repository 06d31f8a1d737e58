//! The live stats endpoint (`pigeon-sim --stats-listen`): `GET /stats` answers the current
//! [`SimReport`] as JSON over plain HTTP/1.1, one request per connection. Hand-rolled on a
//! tokio listener because that is all it needs; anything else gets 404 or 405.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::stats::SimReport;

/// Longest request head read; a stats request is one short line.
const MAX_HEAD: usize = 8 * 1024;
/// A client must send its request within this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Builds the report on demand.
pub(crate) type ReportFn = Arc<dyn Fn() -> SimReport + Send + Sync>;

/// Serves requests on `listener` until `cancel` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    report: ReportFn,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let report = Arc::clone(&report);
                let cancel = cancel.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        result = answer(stream, &report) => {
                            if let Err(e) = result {
                                debug!(error = %e, "stats request failed");
                            }
                        }
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "stats accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, report: &ReportFn) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = respond(&head, report);
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads until the blank line ending the request head, or `MAX_HEAD` bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// The whole response to a request head.
fn respond(head: &[u8], report: &ReportFn) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or(b"");
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/stats") => match serde_json::to_vec_pretty(&report()) {
            Ok(json) => http_response("200 OK", "application/json", &[], &json),
            Err(e) => {
                let body = format!("cannot encode stats: {e}\n");
                http_response(
                    "500 Internal Server Error",
                    "text/plain",
                    &[],
                    body.as_bytes(),
                )
            }
        },
        ("GET", _) => http_response("404 Not Found", "text/plain", &[], b"try GET /stats\n"),
        _ => http_response(
            "405 Method Not Allowed",
            "text/plain",
            &[("Allow", "GET")],
            b"only GET /stats\n",
        ),
    }
}

fn http_response(status: &str, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ReportFn {
        Arc::new(|| {
            let mut r = SimReport::default();
            r.total.throttled = 7;
            r
        })
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn stats_requests_get_json() {
        let out = text(&respond(
            b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
            &report(),
        ));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let parsed: SimReport = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.total.throttled, 7);
        assert!(out.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn other_requests_are_refused() {
        let out = text(&respond(b"GET /metrics HTTP/1.1\r\n\r\n", &report()));
        assert!(out.starts_with("HTTP/1.1 404"), "{out}");
        let out = text(&respond(b"POST /stats HTTP/1.1\r\n\r\n", &report()));
        assert!(
            out.starts_with("HTTP/1.1 405") && out.contains("Allow: GET"),
            "{out}"
        );
        let out = text(&respond(b"", &report()));
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    }
}
