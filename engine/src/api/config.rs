//! The `[api]` configuration section.

use serde::{Deserialize, Serialize};

/// The HTTP API (`[api]`).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address, `ip:port`, e.g. `127.0.0.1:8088`; empty (the default) disables the
    /// API, which cannot run without a token.
    #[serde(default)]
    pub listen: String,
    /// Bearer token of every `/v1` route: at least 16 printable ASCII characters without
    /// spaces, required when `listen` is set. Never logged.
    #[serde(default)]
    pub token: String,
    /// The other instances of the deployment, `host:port` each (a name may resolve to
    /// several addresses: a headless Service's gives every pod). A lookup this instance
    /// cannot answer is asked of them (`api/peers.rs`); empty: answered from this instance
    /// alone. Every instance must accept the same token.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// Shortest token accepted.
const MIN_TOKEN_CHARS: usize = 16;

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &"***")
            .field("peers", &self.peers)
            .finish()
    }
}

impl ApiConfig {
    /// Whether the API is to be served.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Every problem with the section; empty when valid. The token never appears in them.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !self.enabled() {
            return errs;
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errs.push(format!(
                "api.listen: expected ip:port, got {:?}",
                self.listen
            ));
        }
        if self.token.chars().count() < MIN_TOKEN_CHARS {
            errs.push(format!(
                "api.token: at least {MIN_TOKEN_CHARS} characters when api.listen is set \
                 (or set api.listen = \"\" to disable the api)"
            ));
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            errs.push("api.token: printable ASCII characters only, no spaces".into());
        }
        for (i, peer) in self.peers.iter().enumerate() {
            let port = peer
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0) {
                errs.push(format!("api.peers[{i}]: expected host:port, got {peer:?}"));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json_text: &str) -> serde_json::Result<ApiConfig> {
        serde_json::from_str(json_text)
    }

    #[test]
    fn the_api_is_off_by_default_and_needs_a_token_when_on() {
        let cfg = parse("{}").unwrap();
        assert_eq!(cfg.listen, "");
        assert!(!cfg.enabled());
        assert!(cfg.validate().is_empty());
        let cfg = parse(r#"{"listen": "127.0.0.1:8088"}"#).unwrap();
        assert!(cfg.enabled());
        let errs = cfg.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("api.token"), "{errs:?}");
    }

    #[test]
    fn an_empty_listen_disables_the_api_and_needs_no_token() {
        let cfg = parse(r#"{"listen": ""}"#).unwrap();
        assert!(!cfg.enabled());
        assert!(cfg.validate().is_empty());
    }

    #[test]
    fn a_valid_section_has_no_errors() {
        let cfg = parse(r#"{"listen": "0.0.0.0:9000", "token": "0123456789abcdef"}"#).unwrap();
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    }

    #[test]
    fn lists_every_error_without_the_token() {
        let cfg = parse(r#"{"listen": "localhost", "token": "short secret"}"#).unwrap();
        let errs = cfg.validate();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("api.listen"), "{errs:?}");
        assert!(errs.iter().all(|e| !e.contains("short secret")), "{errs:?}");
    }

    #[test]
    fn peers_are_host_and_port() {
        let cfg = parse(
            r#"{"listen": "0.0.0.0:9000", "token": "0123456789abcdef",
                "peers": ["pigeon.pigeon.svc:8088", "10.0.0.7:8088", "[::1]:8088",
                          "no-port", ":8088", "host:0", "host:http"]}"#,
        )
        .unwrap();
        let errs = cfg.validate();
        assert_eq!(
            errs,
            [
                r#"api.peers[3]: expected host:port, got "no-port""#,
                r#"api.peers[4]: expected host:port, got ":8088""#,
                r#"api.peers[5]: expected host:port, got "host:0""#,
                r#"api.peers[6]: expected host:port, got "host:http""#,
            ]
        );
    }

    #[test]
    fn refuses_unknown_keys() {
        assert!(parse(r#"{"listen": "", "tokn": "x"}"#).is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = ApiConfig {
            listen: "127.0.0.1:1".into(),
            token: "0123456789abcdef".into(),
            peers: Vec::new(),
        };
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }
}
