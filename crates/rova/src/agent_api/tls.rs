//! Mutual TLS for the agent API (rustls, ring provider): a control
//! replica's listener presents a certificate from the cloud's CA and
//! accepts only clients with a certificate from the same CA; an agent
//! trusts only that CA and presents its enrolled certificate. The host a
//! client certificate names (its common name) is who the agent is.

use rova_core::Fault;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

/// ring's provider: rustls marks it deprecated only because it has no
/// post-quantum key exchange; the alternative (aws-lc-rs) needs cmake and
/// a long native build on every machine that builds Rova.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> Fault {
    Fault::internal(format!("{what}: {e}"))
}

/// Every certificate in `pem`, in order.
pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, Fault> {
    let out = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Fault::bad_request(format!("not a PEM certificate: {e}")))?;
    if out.is_empty() {
        return Err(Fault::bad_request("no certificate in the PEM document"));
    }
    Ok(out)
}

/// The private key in `pem`.
pub fn key(pem: &str) -> Result<PrivateKeyDer<'static>, Fault> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Fault::bad_request(format!("not a PEM private key: {e}")))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, Fault> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(|e| tls_err("adding the CA", e))?;
    }
    Ok(Arc::new(roots))
}

/// A control replica's agent listener: its certificate and key, and
/// client certificates required from the CA.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ServerConfig, Fault> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .build()
            .map_err(|e| tls_err("the client verifier", e))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(|e| tls_err("the server certificate", e))
}

/// An agent's client: trusts only the CA, presents its certificate.
pub fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ClientConfig, Fault> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(|e| tls_err("the client certificate", e))
}

/// The host a client certificate names: its subject's common name.
pub fn peer_host(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    c.tbs_certificate
        .subject
        .to_string()
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN=").map(str::to_string))
}
