//! Keypairs: parsing the create request, fingerprints (MD5 of the SSH key
//! blob as Nova computes them, SHA-1 of the DER for x509), generation of a
//! new ed25519 key in OpenSSH format when no public key is given (below
//! 2.92), and the per-user quota.

use super::Keypair;
use crate::app::App;
use crate::http::Ctx;
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

/// Nova's SSH fingerprint: MD5 of the decoded key blob, colon-separated.
pub fn ssh_fingerprint(public_key: &str) -> Result<String, Fault> {
    let mut parts = public_key.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(invalid("failed to generate fingerprint"));
    };
    if !kind.starts_with("ssh-") && !kind.starts_with("ecdsa-") && !kind.starts_with("sk-") {
        return Err(invalid("failed to generate fingerprint"));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| invalid("failed to generate fingerprint"))?;
    // The blob starts with the key type as an SSH string.
    if blob.len() < 4 {
        return Err(invalid("failed to generate fingerprint"));
    }
    let n = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if blob.len() < 4 + n || &blob[4..4 + n] != kind.as_bytes() {
        return Err(invalid("failed to generate fingerprint"));
    }
    let md5 = crate::image::md5_hex(&blob);
    let raw: Vec<u8> = (0..md5.len() / 2)
        .filter_map(|i| u8::from_str_radix(&md5[2 * i..2 * i + 2], 16).ok())
        .collect();
    Ok(colon_hex(&raw))
}

/// x509 fingerprint: SHA-1 of the certificate's DER bytes.
pub fn x509_fingerprint(pem: &str) -> Result<String, Fault> {
    use sha1::Digest;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    if !pem.contains("BEGIN CERTIFICATE") {
        return Err(invalid("failed to generate fingerprint"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| invalid("failed to generate fingerprint"))?;
    Ok(colon_hex(&sha1::Sha1::digest(&der)))
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// A new ed25519 key: (public key line, OpenSSH private key PEM).
pub fn generate_ed25519(comment: &str) -> (String, String) {
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = signing.verifying_key().to_bytes();
    let mut blob = Vec::new();
    ssh_string(&mut blob, b"ssh-ed25519");
    ssh_string(&mut blob, &public);
    let b64 = base64::engine::general_purpose::STANDARD;
    let pub_line = format!("ssh-ed25519 {} {comment}", b64.encode(&blob));

    let check: u32 = rand::random();
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    ssh_string(&mut private, b"ssh-ed25519");
    ssh_string(&mut private, &public);
    let mut secret = signing.to_bytes().to_vec();
    secret.extend_from_slice(&public);
    ssh_string(&mut private, &secret);
    ssh_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut file = b"openssh-key-v1\0".to_vec();
    ssh_string(&mut file, b"none");
    ssh_string(&mut file, b"none");
    ssh_string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    ssh_string(&mut file, &blob);
    ssh_string(&mut file, &private);
    let encoded = b64.encode(&file);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in encoded.as_bytes().chunks(70) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    (pub_line, pem)
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

fn pem(label: &str, der_bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der_bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new self-signed Ed25519 X.509 certificate (as Nova generates for
/// `type: x509` keypairs without a public key): (certificate PEM, PKCS#8
/// private key PEM).
pub fn generate_x509(common_name: &str) -> (String, String) {
    const ED25519: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = signing.verifying_key().to_bytes();
    let alg = der(0x30, &ED25519);
    let cn = [
        der(0x06, &[0x55, 0x04, 0x03]),
        der(0x0c, common_name.as_bytes()),
    ]
    .concat();
    let name = der(0x30, &der(0x31, &der(0x30, &cn)));
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::days(3650);
    let validity = der(
        0x30,
        &[
            der(0x17, now.format("%y%m%d%H%M%SZ").to_string().as_bytes()),
            der(0x17, later.format("%y%m%d%H%M%SZ").to_string().as_bytes()),
        ]
        .concat(),
    );
    let mut bits = vec![0u8];
    bits.extend_from_slice(&public);
    let spki = der(0x30, &[alg.clone(), der(0x03, &bits)].concat());
    let mut serial: [u8; 8] = rand::random();
    serial[0] &= 0x7f;
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &serial),
            alg.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]
        .concat(),
    );
    use ed25519_dalek::Signer;
    let sig = signing.sign(&tbs).to_bytes();
    let mut sig_bits = vec![0u8];
    sig_bits.extend_from_slice(&sig);
    let cert = der(0x30, &[tbs, alg.clone(), der(0x03, &sig_bits)].concat());
    let pkcs8 = der(
        0x30,
        &[
            der(0x02, &[0]),
            alg,
            der(0x04, &der(0x04, &signing.to_bytes())),
        ]
        .concat(),
    );
    (pem("CERTIFICATE", &cert), pem("PRIVATE KEY", &pkcs8))
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
            let (cert, key) = generate_x509(&req.name);
            (cert, Some(key))
        }
        None => {
            let (p, s) = generate_ed25519("Generated-by-Rova");
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
        id: app.compute.next_instance_id(),
    };
    // Count and insert under one table lock so concurrent creates cannot
    // overshoot the quota.
    let key = Keypair::key(&req.user_id, &req.name);
    let user = req.user_id.clone();
    app.compute
        .keypairs
        .transact(|tx| {
            if over(tx.values().iter().filter(|k| k.user_id == user).count()) {
                return Err(Fault::forbidden("Quota exceeded, too many key pairs."));
            }
            if tx.get(&key).is_some() {
                return Err(Fault::conflict(format!(
                    "Key pair '{}' already exists.",
                    req.name
                )));
            }
            tx.put(&key, kp);
            Ok(())
        })
        .await?;
    let stored = app
        .compute
        .keypairs
        .get(&key)
        .ok_or_else(|| Fault::internal("keypair vanished"))?;
    Ok((stored, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_has_a_fingerprint() {
        let (public, private) = generate_ed25519("t");
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
        let fp = ssh_fingerprint(&public).unwrap();
        assert_eq!(fp.len(), 47);
    }

    #[test]
    fn generated_certificate_has_a_fingerprint() {
        let (cert, key) = generate_x509("kp");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert_eq!(x509_fingerprint(&cert).unwrap().len(), 59);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(ssh_fingerprint("not a key").unwrap_err().code, 400);
        assert_eq!(ssh_fingerprint("ssh-rsa AAAA").unwrap_err().code, 400);
    }
}
