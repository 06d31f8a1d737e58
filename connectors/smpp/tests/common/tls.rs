//! TLS for the in-test SMSC: a self-signed certificate made at test time with rcgen, a
//! tokio-rustls acceptor for it, and its PEM written to a file for `ca_file`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A self-signed server identity for `names`, and where its certificate's PEM lies.
pub struct TestCert {
    pub acceptor: TlsAcceptor,
    pub ca_file: PathBuf,
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

pub fn self_signed(names: &[&str]) -> TestCert {
    static N: AtomicUsize = AtomicUsize::new(0);
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let ca_file = std::env::temp_dir().join(format!(
        "pigeon-smpp-test-ca-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    TestCert {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_file,
    }
}
