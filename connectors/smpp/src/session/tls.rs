//! TLS for a session: rustls (ring provider) over the TCP connection, before the bind.
//!
//! Role: turn a [`TlsConfig`] into a rustls client config (trusting a PEM CA file or the
//! bundled Mozilla roots) and run the handshake, mapping certificate and name failures to
//! [`SessionError::TlsHandshake`] so the operator sees why.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{SessionError, TlsConfig};

/// The TLS handshake over an established TCP connection.
pub(super) async fn handshake(
    tcp: TcpStream,
    tls: &TlsConfig,
) -> Result<TlsStream<TcpStream>, SessionError> {
    let name = ServerName::try_from(tls.server_name.clone())
        .map_err(|_| SessionError::TlsConfig("server_name is not a dns name or ip".into()))?;
    let connector = TlsConnector::from(client_config(tls).await?);
    connector.connect(name, tcp).await.map_err(|e| {
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls_error) => SessionError::TlsHandshake {
                server_name: tls.server_name.clone(),
                reason: rustls_error.to_string(),
            },
            None => SessionError::Io(e),
        }
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

async fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, SessionError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SessionError::TlsConfig(e.to_string()))?;
    let mut config = builder
        .with_root_certificates(roots(tls).await?)
        .with_no_client_auth();
    if tls.insecure_skip_verify {
        tracing::warn!("tls certificate verification is disabled for this session");
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())));
    }
    Ok(Arc::new(config))
}

async fn roots(tls: &TlsConfig) -> Result<RootCertStore, SessionError> {
    let Some(path) = &tls.ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let shown = path.display();
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| SessionError::TlsConfig(format!("cannot read ca_file {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| SessionError::TlsConfig(format!("bad pem in ca_file {shown}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| SessionError::TlsConfig(format!("bad certificate in {shown}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(SessionError::TlsConfig(format!(
            "no certificate in ca_file {shown}"
        )));
    }
    Ok(roots)
}

/// DANGEROUS: accepts every certificate (signatures are still checked, so the handshake
/// itself is sound, but anyone can pose as the SMSC). For `insecure_skip_verify` only.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
