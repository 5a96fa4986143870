//! Identity (a Keystone v3 subset): domain `Default`, projects, users with
//! argon2-hashed passwords, role assignments with implied roles
//! (admin ⊃ member ⊃ reader), and signed stateless tokens.
//!
//! Tokens are `base64url(claims).hex(hmac-sha256)` under a key kept in the
//! data directory, so they survive restarts without a token table; revoked
//! tokens are remembered until they expire. Tokens live on wall-clock time,
//! not the simulated mode's virtual clock: advancing compute's clock by a
//! day must not log every client out. This module owns users,
//! projects and tokens; it knows nothing of compute.

pub mod api;

use crate::store::{Store, Table};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const DEFAULT_DOMAIN_NAME: &str = "Default";

/// Role names and their fixed ids.
pub const ROLES: &[(&str, &str)] = &[
    ("admin", "6b0c5a2e6e8f4c3a9d1e0f7a8b9c0d1e"),
    ("member", "8a7d3f1c2b4e4d6f9a0b1c2d3e4f5a6b"),
    ("reader", "1f2e3d4c5b6a47989a8b7c6d5e4f3a2b"),
    ("service", "9c8b7a6f5e4d43c2b1a0f9e8d7c6b5a4"),
];

/// A project (tenant).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub enabled: bool,
}

/// A user with its role assignments (project id -> role names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password_hash: String,
    pub enabled: bool,
    pub assignments: HashMap<String, Vec<String>>,
    #[serde(default)]
    pub default_project_id: Option<String>,
}

/// What a token asserts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// user id
    pub u: String,
    /// project id
    pub p: String,
    /// issued at (unix seconds)
    pub i: i64,
    /// expires at (unix seconds)
    pub e: i64,
    /// nonce (distinguishes tokens issued in the same second)
    pub n: String,
}

/// A validated token with the user, project and effective roles.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token: String,
    pub user: Arc<User>,
    pub project: Arc<Project>,
    pub roles: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The identity service.
pub struct Identity {
    pub users: Table<User>,
    pub projects: Table<Project>,
    key: Vec<u8>,
    ttl: Duration,
    revoked: Mutex<HashSet<String>>,
    /// sha256(user id, password, hash) of passwords already verified, so
    /// repeated logins do not pay argon2 each time.
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Expands implied roles: admin ⊃ member ⊃ reader.
pub fn effective_roles(assigned: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |r: &str| {
        if !out.iter().any(|x| x == r) {
            out.push(r.to_string());
        }
    };
    for r in assigned {
        add(r);
        match r.as_str() {
            "admin" => {
                add("member");
                add("reader");
            }
            "member" => add("reader"),
            _ => {}
        }
    }
    out
}

pub fn role_id(name: &str) -> String {
    ROLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| hex::encode(Sha256::digest(name.as_bytes()))[..32].to_string())
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn unauthorized() -> Fault {
    Fault::unauthorized("The request you have made requires authentication.")
}

impl Identity {
    pub fn load(store: &Arc<Store>, data_dir: &Path, ttl_secs: i64) -> Result<Self, String> {
        let key_path = data_dir.join("token.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() >= 32 => k,
            _ => {
                let k: [u8; 32] = rand::random();
                write_private(&key_path, &k)?;
                k.to_vec()
            }
        };
        Ok(Identity {
            users: Table::load("user", store)?,
            projects: Table::load("project", store)?,
            key,
            ttl: Duration::seconds(ttl_secs.max(60)),
            revoked: Mutex::new(HashSet::new()),
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn project_by_name(&self, name: &str, domain_id: &str) -> Option<Arc<Project>> {
        self.projects
            .filter(|p| p.name == name && p.domain_id == domain_id)
            .into_iter()
            .next()
    }

    pub fn user_by_name(&self, name: &str, domain_id: &str) -> Option<Arc<User>> {
        self.users
            .filter(|u| u.name == name && u.domain_id == domain_id)
            .into_iter()
            .next()
    }

    fn check_password(&self, user: &User, password: &str) -> bool {
        let mut h = Sha256::new();
        h.update(user.id.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.update([0]);
        h.update(user.password_hash.as_bytes());
        let fp: [u8; 32] = h.finalize().into();
        if self.verified.lock().contains(&fp) {
            return true;
        }
        let ok = PasswordHash::new(&user.password_hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok {
            self.verified.lock().insert(fp);
        }
        ok
    }

    /// Password authentication scoped to a project: returns the new token.
    pub fn authenticate(
        &self,
        user: &Arc<User>,
        password: &str,
        project: &Arc<Project>,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, Fault> {
        if !user.enabled || !self.check_password(user, password) {
            return Err(unauthorized());
        }
        if !project.enabled {
            return Err(unauthorized());
        }
        let assigned = user
            .assignments
            .get(&project.id)
            .cloned()
            .unwrap_or_default();
        if assigned.is_empty() {
            return Err(unauthorized());
        }
        self.issue(user.clone(), project.clone(), &assigned, now)
    }

    /// Issues a token for an already-authenticated user (re-scoping).
    pub fn issue_for(
        &self,
        user: Arc<User>,
        project: Arc<Project>,
        assigned: &[String],
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, Fault> {
        self.issue(user, project, assigned, now)
    }

    fn issue(
        &self,
        user: Arc<User>,
        project: Arc<Project>,
        assigned: &[String],
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, Fault> {
        let expires = now + self.ttl;
        let claims = Claims {
            u: user.id.clone(),
            p: project.id.clone(),
            i: now.timestamp(),
            e: expires.timestamp(),
            n: hex::encode(rand::random::<[u8; 6]>()),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Fault::internal(e.to_string()))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        let token = format!("{b64}.{}", self.sign(&b64));
        Ok(TokenInfo {
            token,
            user,
            project,
            roles: effective_roles(assigned),
            issued_at: DateTime::from_timestamp(claims.i, 0).unwrap_or(now),
            expires_at: DateTime::from_timestamp(claims.e, 0).unwrap_or(expires),
        })
    }

    fn sign(&self, payload: &str) -> String {
        // An HMAC key of any length is accepted, so this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Validates a token: signature, expiry, revocation, and that the user
    /// and project still exist and the assignment still holds.
    pub fn validate(&self, token: &str, now: DateTime<Utc>) -> Result<TokenInfo, Fault> {
        let (b64, sig) = token.split_once('.').ok_or_else(unauthorized)?;
        let expected = self.sign(b64);
        if expected.is_empty() || !constant_eq(expected.as_bytes(), sig.as_bytes()) {
            return Err(unauthorized());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| unauthorized())?;
        let claims: Claims = serde_json::from_slice(&raw).map_err(|_| unauthorized())?;
        if claims.e <= now.timestamp() || self.revoked.lock().contains(token) {
            return Err(unauthorized());
        }
        let user = self.users.get(&claims.u).ok_or_else(unauthorized)?;
        let project = self.projects.get(&claims.p).ok_or_else(unauthorized)?;
        let assigned = user
            .assignments
            .get(&project.id)
            .cloned()
            .unwrap_or_default();
        if !user.enabled || assigned.is_empty() {
            return Err(unauthorized());
        }
        Ok(TokenInfo {
            token: token.to_string(),
            user,
            project,
            roles: effective_roles(&assigned),
            issued_at: DateTime::from_timestamp(claims.i, 0).unwrap_or(now),
            expires_at: DateTime::from_timestamp(claims.e, 0).unwrap_or(now),
        })
    }

    pub fn revoke(&self, token: &str) {
        self.revoked.lock().insert(token.to_string());
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
