//! The agent API's public-key infrastructure: the cloud's certificate
//! authority (a `cluster_cas` row, made by the first control process that
//! needs it, so every replica signs with the same CA), one-time enrollment
//! tokens (`enrollment_tokens` rows keyed by the token's SHA-256, bound to
//! one host, valid an hour), the certificate a token buys (the agent's
//! own key, sent as a certificate request; the certificate names the
//! token's host whatever the request asked for, as its subject and its
//! DNS name: the agent authenticates with it as a client and serves its
//! own listener with it), and the certificates control replicas present on
//! their agent listeners and when they call an agent (named
//! [`CONTROL_NAME`]).
//!
//! A token reads `rova1.<secret>.<ca-sha256>`: the last part pins the CA,
//! so an agent that has nothing but the token can check the control
//! plane it enrolls with before it trusts it.

use crate::store::{Store, Table};
use chrono::{DateTime, Datelike, Duration, Utc};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How long an enrollment token is valid.
pub const TOKEN_TTL_SECS: i64 = 3600;

/// The cloud's CA, as its row keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaRow {
    pub cert_pem: String,
    pub key_pem: String,
    pub created_at: DateTime<Utc>,
}

impl CaRow {
    /// The SHA-256 of the CA certificate's DER, in hex (what tokens pin).
    pub fn fingerprint(&self) -> Result<String, Fault> {
        let der = super::tls::certs(&self.cert_pem)?;
        Ok(hex::encode(Sha256::digest(der[0].as_ref())))
    }
}

/// One enrollment token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub host: String,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<DateTime<Utc>>,
}

/// What a redeemed token gives the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Issued {
    pub host: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

/// The CA and token rows.
pub struct Pki {
    cas: Table<CaRow>,
    tokens: Table<TokenRow>,
}

const CA_ID: &str = "ca";

fn internal(what: &str, e: impl std::fmt::Display) -> Fault {
    Fault::internal(format!("{what}: {e}"))
}

/// Validity from `now` for `years`, as rcgen wants it.
fn validity(params: &mut CertificateParams, now: DateTime<Utc>, years: i32) {
    let day = |t: DateTime<Utc>| rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8);
    params.not_before = day(now - Duration::days(1));
    let end = now
        .with_year(now.year() + years)
        .unwrap_or(now + Duration::days(365 * i64::from(years)));
    params.not_after = day(end);
}

fn new_ca(now: DateTime<Utc>) -> Result<CaRow, Fault> {
    let key = KeyPair::generate().map_err(|e| internal("generating the CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Rova cloud CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, now, 10);
    let cert = params
        .self_signed(&key)
        .map_err(|e| internal("signing the CA", e))?;
    Ok(CaRow {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        created_at: now,
    })
}

/// The CA as rcgen's issuer: its certificate (re-made from its stored
/// parameters and key, so it has the same name and key) and key.
fn issuer(ca: &CaRow) -> Result<(rcgen::Certificate, KeyPair), Fault> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| internal("reading the CA key", e))?;
    let params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)
        .map_err(|e| internal("reading the CA certificate", e))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| internal("loading the CA", e))?;
    Ok((cert, key))
}

/// A random token secret, URL-safe.
fn secret() -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The row id of a token: its SHA-256 (the token itself is never kept).
fn token_id(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The CA fingerprint a token pins, if it is well formed.
pub fn pinned_ca(token: &str) -> Option<&str> {
    let mut parts = token.trim().split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("rova1"), Some(s), Some(fp), None) if !s.is_empty() && fp.len() == 64 => Some(fp),
        _ => None,
    }
}

impl Pki {
    pub fn load(store: &Arc<Store>) -> Result<Pki, String> {
        Ok(Pki {
            cas: Table::load("cluster_ca", store)?,
            tokens: Table::load("enrollment_token", store)?,
        })
    }

    /// The cloud's CA, made now if there is none (of processes racing to
    /// make it, the first insert wins and the others take its row).
    pub async fn ensure_ca(&self, now: DateTime<Utc>) -> Result<CaRow, Fault> {
        if let Some(ca) = self.cas.get(CA_ID) {
            return Ok((*ca).clone());
        }
        let fresh = new_ca(now)?;
        match self
            .cas
            .insert_new(CA_ID, fresh, Fault::conflict("the CA exists"))
            .await
        {
            Ok(ca) => Ok((*ca).clone()),
            Err(_) => self
                .cas
                .fetch(&[CA_ID])?
                .into_iter()
                .next()
                .map(|ca| (*ca).clone())
                .ok_or_else(|| Fault::internal("the cloud's CA could not be made or read")),
        }
    }

    /// A one-time token that enrolls `host`, valid for an hour from `now`.
    pub async fn new_token(&self, host: &str, now: DateTime<Utc>) -> Result<String, Fault> {
        if !valid_host(host) {
            return Err(Fault::bad_request(format!(
                "Invalid host name {host:?}: letters, digits, '-', '_' and '.', 1 to 255 characters."
            )));
        }
        let ca = self.ensure_ca(now).await?;
        let token = format!("rova1.{}.{}", secret(), ca.fingerprint()?);
        let row = TokenRow {
            host: host.to_string(),
            expires_at: now + Duration::seconds(TOKEN_TTL_SECS),
            used_at: None,
        };
        self.tokens
            .insert_new(&token_id(&token), row, Fault::conflict("token collision"))
            .await?;
        Ok(token)
    }

    /// Redeems `token` for a client certificate over the public key of
    /// `csr_pem`: refused (401) when the token is unknown, used or
    /// expired. The token is spent in the database (compare-and-swap),
    /// so of two redemptions at once only one gets a certificate.
    pub async fn enroll(
        &self,
        token: &str,
        csr_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<Issued, Fault> {
        let refused = || Fault::unauthorized("The enrollment token is not valid.");
        let id = token_id(token);
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| Fault::bad_request(format!("Invalid certificate request: {e}")))?;
        let row = self
            .tokens
            .fetch(&[id.as_str()])?
            .into_iter()
            .next()
            .ok_or_else(refused)?;
        if row.used_at.is_some() || row.expires_at <= now {
            return Err(refused());
        }
        self.tokens
            .update(&id, refused, |t| {
                if t.used_at.is_some() {
                    return Err(Fault::unauthorized("The enrollment token is not valid."));
                }
                t.used_at = Some(now);
                Ok(())
            })
            .await
            .map_err(|_| refused())?;
        let ca = self.ensure_ca(now).await?;
        let cert_pem = sign_client(&ca, &row.host, csr, now)?;
        Ok(Issued {
            host: row.host.clone(),
            cert_pem,
            ca_pem: ca.cert_pem,
        })
    }

    /// A server certificate for a control replica's agent listener,
    /// naming `names` (IP addresses or DNS names), and its key.
    pub async fn server_cert(
        &self,
        names: &[String],
        now: DateTime<Utc>,
    ) -> Result<(String, String), Fault> {
        let ca = self.ensure_ca(now).await?;
        let key = KeyPair::generate().map_err(|e| internal("generating a key", e))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| Fault::bad_request(format!("Invalid server name: {e}")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CONTROL_NAME);
        params.distinguished_name = dn;
        // It serves the agent API and calls agents' listeners with it.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, now, 1);
        let (ca_cert, ca_key) = issuer(&ca)?;
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| internal("signing a server certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The name every control replica's certificate carries (as a DNS name):
/// what an agent checks the control plane's certificate for, and what an
/// agent's listener requires of its callers.
pub const CONTROL_NAME: &str = "rova-control";

/// Host names an agent may enroll as (never the control plane's name).
pub fn valid_host(h: &str) -> bool {
    h != CONTROL_NAME
        && (1..=255).contains(&h.len())
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Signs the request's public key as a client certificate for `host`:
/// everything else the request asks for is ignored.
fn sign_client(
    ca: &CaRow,
    host: &str,
    csr: CertificateSigningRequestParams,
    now: DateTime<Utc>,
) -> Result<String, Fault> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    // The agent calls the control plane with it and serves its own
    // listener with it, under its host name.
    params.subject_alt_names =
        vec![rcgen::SanType::DnsName(host.try_into().map_err(|e| {
            Fault::bad_request(format!("Invalid host name: {e}"))
        })?)];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, now, 1);
    let (ca_cert, ca_key) = issuer(ca)?;
    let signed = CertificateSigningRequestParams {
        params,
        public_key: csr.public_key,
    }
    .signed_by(&ca_cert, &ca_key)
    .map_err(|e| internal("signing a client certificate", e))?;
    Ok(signed.pem())
}

/// The agent's side of enrollment: a new key and a certificate request
/// naming `host`, both PEM.
pub fn agent_request(host: &str) -> Result<(String, String), Fault> {
    let key = KeyPair::generate().map_err(|e| internal("generating a key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| internal("making a certificate request", e))?;
    let pem = csr
        .pem()
        .map_err(|e| internal("encoding a certificate request", e))?;
    Ok((pem, key.serialize_pem()))
}
