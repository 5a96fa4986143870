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

/// A control replica's agent listener: like [`server_config`], but a
/// client without a certificate is let through the handshake (the one
/// request it may make is enrolling; every other route asks for the
/// peer's host), and the CA certificate follows the listener's own, so an
/// agent holding only a token's pin can find and check it.
pub fn listener_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ServerConfig, Fault> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls_err("the client verifier", e))?;
    let mut chain = certs(cert_pem)?;
    chain.extend(certs(ca_pem)?);
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(key_pem)?)
        .map_err(|e| tls_err("the server certificate", e))
}

/// Checks a server's certificate against the CA whose SHA-256 an
/// enrollment token pins: the CA must be in the chain the server sent,
/// and the server's certificate must be valid under it.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
}

impl PinnedCa {
    fn verifier(
        &self,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        use sha2::{Digest, Sha256};
        let ca = intermediates
            .iter()
            .find(|c| hex::encode(Sha256::digest(c.as_ref())) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General("the server's CA is not the one the token pins".into())
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier(intermediates)?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An agent's client before it has a certificate: no client
/// certificate, and the control plane trusted only when its chain carries
/// the CA `fingerprint` pins (an enrollment token's last part).
pub fn enrollment_config(fingerprint: &str) -> Result<ClientConfig, Fault> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            fingerprint: fingerprint.to_ascii_lowercase(),
        }))
        .with_no_client_auth())
}
