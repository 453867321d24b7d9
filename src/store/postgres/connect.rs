//! From a `postgres://` URL to a connection configuration and a TLS connector.
//!
//! The URL is libpq's: `postgres://user[:password]@host[:port]/database?sslmode=…`. The
//! parameters understood are `sslmode` (`disable`, `prefer` — the default —, `require`,
//! `verify-ca` and `verify-full`, both checked as `verify-full`), `sslrootcert` (a PEM file
//! of the CA to trust, beside the Mozilla roots), `options` (e.g. `-csearch_path=wabot`),
//! `application_name` and `connect_timeout` (seconds); any other is refused rather than
//! ignored. As with libpq, `prefer` and `require` encrypt without checking the server's
//! certificate: use `verify-full` where the network is not trusted.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::config::database::redacted;
use crate::store::StoreError;

/// How long opening a connection may take when the URL says nothing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed URL: what to connect to, and how.
pub(super) struct Target {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
}

fn invalid(message: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("the PostgreSQL URL: {message}"))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Parses `url`; `password` is used when the URL carries none.
pub(super) fn target(url: &str, password: Option<&str>) -> Result<Target, StoreError> {
    let u = url::Url::parse(url).map_err(|e| invalid(format_args!("{e} ({})", redacted(url))))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(invalid(format_args!("the scheme must be postgres://, not {}://", u.scheme())));
    }
    let mut config = tokio_postgres::Config::new();
    config.host(u.host_str().filter(|h| !h.is_empty()).unwrap_or("localhost"));
    config.port(u.port().unwrap_or(5432));
    if !u.username().is_empty() {
        config.user(decode(u.username()));
    }
    match (u.password(), password) {
        (Some(p), _) => config.password(decode(p)),
        (None, Some(p)) => config.password(p),
        (None, None) => &mut config,
    };
    let db = u.path().trim_start_matches('/');
    if !db.is_empty() {
        config.dbname(decode(db));
    }
    config.application_name("wabot");
    config.connect_timeout(CONNECT_TIMEOUT);
    let mut mode = "prefer".to_owned();
    let mut root_cert = None;
    for (key, value) in u.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = value.into_owned(),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            "options" => drop(config.options(value.as_ref())),
            "application_name" => drop(config.application_name(value.as_ref())),
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| invalid("connect_timeout must be seconds"))?;
                config.connect_timeout(Duration::from_secs(secs.max(1)));
            }
            other => return Err(invalid(format_args!("unknown parameter {other:?}"))),
        }
    }
    let (ssl, verify) = match mode.as_str() {
        "disable" => (SslMode::Disable, false),
        "prefer" => (SslMode::Prefer, false),
        "require" => (SslMode::Require, false),
        "verify-ca" | "verify-full" => (SslMode::Require, true),
        other => return Err(invalid(format_args!("unknown sslmode {other:?}"))),
    };
    config.ssl_mode(ssl);
    let tls = connector(verify, root_cert.as_deref())?;
    Ok(Target { config, tls })
}

fn connector(verify: bool, root_cert: Option<&str>) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format_args!("TLS: {e}")))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = root_cert {
            let pem = std::fs::read(path).map_err(|e| invalid(format_args!("sslrootcert {path}: {e}")))?;
            let mut added = 0;
            for cert in rustls_pemfile_certs(&pem) {
                roots.add(cert).map_err(|e| invalid(format_args!("sslrootcert {path}: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(invalid(format_args!("sslrootcert {path}: no PEM certificate")));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

/// `sslmode=prefer|require`: the channel is encrypted, the certificate not checked (as
/// libpq does); the handshake's signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_the_redacted_url() {
        let shown = redacted("postgres://wabot:s3cret@db.example.com:5432/wabot?sslmode=require");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("wabot:***@db.example.com"), "{shown}");
    }

    #[test]
    fn the_url_gives_host_port_user_database_and_the_password_from_outside() {
        let t =
            target("postgres://wabot@db.example.com:6543/helpdesk?sslmode=verify-full", Some("pw")).unwrap();
        let c = &t.config;
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_user(), Some("wabot"));
        assert_eq!(c.get_dbname(), Some("helpdesk"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn an_unknown_parameter_or_sslmode_is_refused() {
        for url in ["postgres://u@h/db?sslmod=require", "postgres://u@h/db?sslmode=maybe", "mysql://u@h/db"] {
            assert!(target(url, None).is_err(), "{url}");
        }
    }
}
