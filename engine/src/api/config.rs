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
}

/// Shortest token accepted.
const MIN_TOKEN_CHARS: usize = 16;

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &"***")
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
    fn refuses_unknown_keys() {
        assert!(parse(r#"{"listen": "", "tokn": "x"}"#).is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = ApiConfig {
            listen: "127.0.0.1:1".into(),
            token: "0123456789abcdef".into(),
        };
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }
}
