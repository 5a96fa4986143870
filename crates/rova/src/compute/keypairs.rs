//! Keypairs: parsing the create request, fingerprints (MD5 of the SSH key
//! blob as Nova computes them, SHA-1 of the DER for x509), generation of a
//! new ed25519 key in OpenSSH format or a self-signed certificate when no
//! public key is given (below 2.92), and the per-user quota. Key and
//! certificate formats are the `ssh-key` and `x509-cert` crates' work.

use super::Keypair;
use crate::app::App;
use crate::http::Ctx;
use crate::store::Guard;
use base64::Engine;
use rova_core::Fault;
use serde_json::Value;

/// A validated create request.
pub struct NewKeypair {
    pub name: String,
    pub public_key: Option<String>,
    pub key_type: String,
    pub user_id: String,
}

fn invalid(msg: &str) -> Fault {
    Fault::bad_request(format!("Keypair data is invalid: {msg}"))
}

pub fn parse_create(v: &Value, ctx: &Ctx) -> Result<NewKeypair, Fault> {
    let obj = v
        .as_object()
        .and_then(|o| o.get("keypair"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request(
                "Invalid input for field/attribute keypair. 'keypair' is a required property",
            )
        })?;
    for k in obj.keys() {
        let ok = match k.as_str() {
            "name" | "public_key" => true,
            "type" => ctx.at_least(2),
            "user_id" => ctx.at_least(10),
            _ => false,
        };
        if !ok {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute keypair. Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute name. Value: {other}. {other} is not of type 'string'"
            )))
        }
        None => return Err(Fault::bad_request("Invalid input for field/attribute keypair. 'name' is a required property")),
    };
    rova_core::validate::validate_keypair_name(&name, ctx.version)?;
    let public_key = match obj.get("public_key") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute public_key. Value: {other}. {other} is not of type 'string'"
            )))
        }
    };
    if public_key.is_none() && ctx.at_least(92) {
        return Err(Fault::bad_request(
            "Invalid input for field/attribute keypair. 'public_key' is a required property",
        ));
    }
    let key_type = match obj.get("type") {
        None => "ssh".to_string(),
        Some(Value::String(s)) if s == "ssh" || s == "x509" => s.clone(),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute type. Value: {other}. {other} is not one of ['ssh', 'x509']"
            )))
        }
    };
    let user_id = match obj.get("user_id").and_then(Value::as_str) {
        Some(u) if u != ctx.user_id => {
            ctx.require_admin("os_compute_api:os-keypairs:create")?;
            u.to_string()
        }
        _ => ctx.user_id.clone(),
    };
    Ok(NewKeypair {
        name,
        public_key,
        key_type,
        user_id,
    })
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Nova's SSH fingerprint (`crypto.generate_fingerprint`): the key must
/// parse as an OpenSSH public key (RSA, DSA, ECDSA P-256/384/521, Ed25519,
/// the FIDO `sk-` types, or a certificate of one), and the fingerprint is
/// the MD5 of the decoded second field, colon-separated (what
/// `ssh-keygen -l -E md5` prints).
pub fn ssh_fingerprint(public_key: &str) -> Result<String, Fault> {
    use md5::Digest;
    let bad = || invalid("failed to generate fingerprint");
    let parses = ssh_key::PublicKey::from_openssh(public_key).is_ok()
        || ssh_key::Certificate::from_openssh(public_key).is_ok();
    if !parses {
        return Err(bad());
    }
    let b64 = public_key.split(' ').nth(1).ok_or_else(bad)?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    Ok(colon_hex(&md5::Md5::digest(&blob)))
}

/// Nova's x509 fingerprint (`crypto.generate_x509_fingerprint`): the PEM
/// must hold an X.509 certificate; SHA-1 of its DER, colon-separated.
pub fn x509_fingerprint(pem: &str) -> Result<String, Fault> {
    use sha1::Digest;
    use x509_cert::der::Decode;
    let bad = |e: String| {
        invalid(&format!(
            "failed to generate X509 fingerprint. Error message: {e}"
        ))
    };
    let (label, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| bad(format!("Unable to load PEM file: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(bad(format!(
            "Unable to load PEM file: {label} is not a certificate"
        )));
    }
    x509_cert::Certificate::from_der(&der)
        .map_err(|e| bad(format!("error parsing asn1 value: {e}")))?;
    Ok(colon_hex(&sha1::Sha1::digest(&der)))
}

/// A new ed25519 key: (public key line, OpenSSH private key PEM that
/// `ssh-keygen -y` reads).
pub fn generate_ed25519(comment: &str) -> Result<(String, String), Fault> {
    let failed = |e: ssh_key::Error| Fault::internal(format!("key generation failed: {e}"));
    let pair = ssh_key::private::Ed25519Keypair::random(&mut rand::rngs::OsRng);
    let key = ssh_key::PrivateKey::new(pair.into(), comment).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(failed)?;
    Ok((public, private.to_string()))
}

/// A new self-signed Ed25519 X.509 certificate for `type: x509` keypairs
/// created without a public key (Nova's subject is `CN=<user id>`, valid
/// 3650 days): (certificate PEM, PKCS#8 private key PEM).
pub fn generate_x509(user_id: &str) -> Result<(String, String), Fault> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::Signer;
    use std::str::FromStr;
    use x509_cert::der::asn1::BitString;
    use x509_cert::der::{Encode, EncodePem};
    use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
    let failed =
        |e: &dyn std::fmt::Display| Fault::internal(format!("certificate generation failed: {e}"));
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let ed25519 = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.3.101.112"),
        parameters: None,
    };
    let subject =
        x509_cert::name::Name::from_str(&format!("CN={user_id}")).map_err(|e| failed(&e))?;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&serial)
            .map_err(|e| failed(&e))?,
        signature: ed25519.clone(),
        issuer: subject.clone(),
        validity: x509_cert::time::Validity::from_now(std::time::Duration::from_secs(3650 * 86400))
            .map_err(|e| failed(&e))?,
        subject,
        subject_public_key_info: SubjectPublicKeyInfoOwned {
            algorithm: ed25519.clone(),
            subject_public_key: BitString::from_bytes(signing.verifying_key().as_bytes())
                .map_err(|e| failed(&e))?,
        },
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let signature = signing.sign(&tbs.to_der().map_err(|e| failed(&e))?);
    let cert = x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ed25519,
        signature: BitString::from_bytes(&signature.to_bytes()).map_err(|e| failed(&e))?,
    };
    let line = x509_cert::der::pem::LineEnding::LF;
    let cert_pem = cert.to_pem(line).map_err(|e| failed(&e))?;
    let key_pem = signing.to_pkcs8_pem(line).map_err(|e| failed(&e))?;
    Ok((cert_pem, key_pem.to_string()))
}

/// Creates (imports or generates) a keypair. Returns it and, when it was
/// generated, the private key (shown once).
pub async fn create(
    app: &App,
    ctx: &Ctx,
    req: NewKeypair,
) -> Result<(std::sync::Arc<Keypair>, Option<String>), Fault> {
    let limit = app.compute.effective_quota(&ctx.project_id).key_pairs;
    let over = |owned: usize| limit >= 0 && owned as i64 >= limit;
    if over(
        app.compute
            .keypairs
            .filter(|k| k.user_id == req.user_id)
            .len(),
    ) {
        return Err(Fault::forbidden("Quota exceeded, too many key pairs."));
    }
    let (public_key, private) = match req.public_key {
        Some(pk) => (pk.trim().to_string(), None),
        None if req.key_type == "x509" => {
            let (cert, key) = generate_x509(&req.user_id)?;
            (cert, Some(key))
        }
        None => {
            let (p, s) = generate_ed25519("Generated-by-Rova")?;
            (p, Some(s))
        }
    };
    let fingerprint = if req.key_type == "x509" {
        x509_fingerprint(&public_key)?
    } else {
        ssh_fingerprint(&public_key)?
    };
    let kp = Keypair {
        name: req.name.clone(),
        user_id: req.user_id.clone(),
        public_key,
        fingerprint,
        key_type: req.key_type,
        created_at: app.clock.now(),
        id: app.compute.next_instance_id().await?,
    };
    // Count and insert under one table lock, the database counting again. What is returned is the row as written: a delete
    // racing in right after may already have removed it, and the create
    // still succeeded (as in Nova).
    let key = Keypair::key(&req.user_id, &req.name);
    let user = req.user_id.clone();
    let stored = std::sync::Arc::new(kp.clone());
    app.compute
        .keypairs
        .transact(|tx| {
            if over(tx.count(|k| k.user_id == user)) {
                return Err(Fault::forbidden("Quota exceeded, too many key pairs."));
            }
            if tx.get(&key).is_some() {
                return Err(Fault::conflict(format!(
                    "Key pair '{}' already exists.",
                    req.name
                )));
            }
            // Counted again by the database in the transaction that
            // writes the row, so processes sharing it cannot overshoot.
            let quota = Guard::Count {
                column: "user_id",
                value: user.clone(),
                limit,
                message: "Quota exceeded, too many key pairs.".into(),
            };
            tx.put_guarded(&key, kp, quota);
            Ok(())
        })
        .await?;
    Ok((stored, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_has_a_fingerprint() {
        let (public, private) = generate_ed25519("t").unwrap();
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
        let fp = ssh_fingerprint(&public).unwrap();
        assert_eq!(fp.len(), 47);
    }

    #[test]
    fn generated_certificate_has_a_fingerprint() {
        let (cert, key) = generate_x509("kp").unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert_eq!(x509_fingerprint(&cert).unwrap().len(), 59);
    }

    #[test]
    fn generated_key_round_trips_through_openssh_parsing() {
        let (public, private) = generate_ed25519("c").unwrap();
        let parsed = ssh_key::PrivateKey::from_openssh(&private).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), public);
        assert_eq!(parsed.comment(), "c");
    }

    #[test]
    fn generated_certificate_names_the_user() {
        use x509_cert::der::DecodePem;
        let (cert, _) = generate_x509("0123abcd").unwrap();
        let parsed = x509_cert::Certificate::from_pem(cert.as_bytes()).unwrap();
        assert_eq!(parsed.tbs_certificate.subject.to_string(), "CN=0123abcd");
        assert_eq!(
            parsed.tbs_certificate.issuer,
            parsed.tbs_certificate.subject
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(ssh_fingerprint("not a key").unwrap_err().code, 400);
        assert_eq!(ssh_fingerprint("ssh-rsa AAAA").unwrap_err().code, 400);
    }
}
