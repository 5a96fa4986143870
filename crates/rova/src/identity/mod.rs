//! Identity (a Keystone v3 subset): domain `Default`, projects, users with
//! argon2-hashed passwords, role assignments with implied roles
//! (admin ⊃ manager ⊃ member ⊃ reader), and signed stateless tokens.
//!
//! Tokens are `base64url(claims).hex(hmac-sha256)` under a key kept in the
//! data directory, so they survive restarts without a token table. A token
//! is scoped to a project or unscoped (no project, no roles). Revoked
//! tokens are remembered (as their SHA-256, in the `token_revocation` table)
//! until they would have expired, so a revocation survives a restart;
//! expired records are pruned on the next revocation. Tokens live on wall-clock time,
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
    ("manager", "3d5e7f9a1b2c44d6e8f0a1b2c3d4e5f6"),
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
    /// project id ("" for an unscoped token)
    #[serde(default)]
    pub p: String,
    /// issued at (unix seconds)
    pub i: i64,
    /// expires at (unix seconds)
    pub e: i64,
    /// nonce (distinguishes tokens issued in the same second)
    pub n: String,
}

/// A validated token: the user, the scope `P` and the effective roles.
#[derive(Debug, Clone)]
pub struct Token<P> {
    pub token: String,
    pub user: Arc<User>,
    pub project: P,
    pub roles: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A project-scoped token: what every API but identity requires.
pub type TokenInfo = Token<Arc<Project>>;

/// A token of any scope (`None`: unscoped).
pub type AnyToken = Token<Option<Arc<Project>>>;

impl AnyToken {
    /// The project-scoped view; an unscoped token is refused with 401.
    pub fn scoped(self) -> Result<TokenInfo, Fault> {
        let project = self.project.ok_or_else(unauthorized)?;
        Ok(Token {
            token: self.token,
            user: self.user,
            project,
            roles: self.roles,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        })
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A remembered revocation (keyed by the token's SHA-256): kept until the
/// token would have expired anyway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    /// the token's SHA-256 (hex), also the row's id
    pub digest: String,
    /// expiry of the revoked token (unix seconds)
    pub expires: i64,
}

/// The identity service.
pub struct Identity {
    pub users: Table<User>,
    pub projects: Table<Project>,
    key: Vec<u8>,
    ttl: Duration,
    revoked: Table<Revocation>,
    /// sha256(user id, password, hash) of passwords already verified, so
    /// repeated logins do not pay argon2 each time.
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Expands implied roles as Keystone's bootstrap sets them: admin ⊃
/// manager ⊃ member ⊃ reader.
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
                add("manager");
                add("member");
                add("reader");
            }
            "manager" => {
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
            revoked: Table::load("token_revocation", store)?,
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

    /// Checks a password: the enabled user, or 401.
    pub fn check_user_password(&self, user: &User, password: &str) -> Result<(), Fault> {
        if user.enabled && self.check_password(user, password) {
            Ok(())
        } else {
            Err(unauthorized())
        }
    }

    /// The roles `user` holds on `project` (empty when none, or when the
    /// project is disabled).
    pub fn assigned(&self, user: &User, project: &Project) -> Vec<String> {
        if !project.enabled {
            return Vec::new();
        }
        user.assignments
            .get(&project.id)
            .cloned()
            .unwrap_or_default()
    }

    /// Keystone's default scoping for a request that names no scope: the
    /// user's default project if it exists and the user has a role on it,
    /// else none (an unscoped token).
    pub fn default_scope(&self, user: &User) -> Option<Arc<Project>> {
        user.default_project_id
            .as_deref()
            .and_then(|id| self.projects.get(id))
            .filter(|p| !self.assigned(user, p).is_empty())
    }

    /// Issues a token for an already-authenticated user, scoped to
    /// `project` (on which the user must hold a role) or unscoped. It
    /// expires after the configured lifetime, or at `expires` if that is
    /// sooner (a token made from another keeps the other's expiry).
    pub fn issue(
        &self,
        user: Arc<User>,
        project: Option<Arc<Project>>,
        now: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<AnyToken, Fault> {
        let assigned = match &project {
            Some(p) => {
                let a = self.assigned(&user, p);
                if a.is_empty() {
                    return Err(Fault::unauthorized(format!(
                        "User {} has no access to project {}",
                        user.id, p.id
                    )));
                }
                a
            }
            None => Vec::new(),
        };
        let expires = expires.map_or(now + self.ttl, |e| e.min(now + self.ttl));
        let claims = Claims {
            u: user.id.clone(),
            p: project.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
            i: now.timestamp(),
            e: expires.timestamp(),
            n: hex::encode(rand::random::<[u8; 6]>()),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Fault::internal(e.to_string()))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        let token = format!("{b64}.{}", self.sign(&b64));
        Ok(Token {
            token,
            user,
            project,
            roles: effective_roles(&assigned),
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

    /// Validates a project-scoped token (an unscoped one is 401).
    pub fn validate(&self, token: &str, now: DateTime<Utc>) -> Result<TokenInfo, Fault> {
        self.validate_any(token, now)?.scoped()
    }

    /// Validates a token of any scope: signature, expiry, revocation, that
    /// the user still exists and is enabled, and for a scoped token that the
    /// project still exists and the assignment still holds.
    pub fn validate_any(&self, token: &str, now: DateTime<Utc>) -> Result<AnyToken, Fault> {
        let (b64, sig) = token.split_once('.').ok_or_else(unauthorized)?;
        let expected = self.sign(b64);
        if expected.is_empty() || !constant_eq(expected.as_bytes(), sig.as_bytes()) {
            return Err(unauthorized());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| unauthorized())?;
        let claims: Claims = serde_json::from_slice(&raw).map_err(|_| unauthorized())?;
        if claims.e <= now.timestamp() || self.revoked.get(&digest(token)).is_some() {
            return Err(unauthorized());
        }
        let user = self.users.get(&claims.u).ok_or_else(unauthorized)?;
        if !user.enabled {
            return Err(unauthorized());
        }
        let (project, assigned) = if claims.p.is_empty() {
            (None, Vec::new())
        } else {
            let project = self.projects.get(&claims.p).ok_or_else(unauthorized)?;
            let assigned = self.assigned(&user, &project);
            if assigned.is_empty() {
                return Err(unauthorized());
            }
            (Some(project), assigned)
        };
        Ok(Token {
            token: token.to_string(),
            user,
            project,
            roles: effective_roles(&assigned),
            issued_at: DateTime::from_timestamp(claims.i, 0).unwrap_or(now),
            expires_at: DateTime::from_timestamp(claims.e, 0).unwrap_or(now),
        })
    }

    /// Revokes a token durably (until it would have expired), and forgets
    /// revocations of tokens that have expired since.
    pub async fn revoke<P>(&self, token: &Token<P>, now: DateTime<Utc>) -> Result<(), Fault> {
        let rec = Revocation {
            digest: digest(&token.token),
            expires: token.expires_at.timestamp(),
        };
        self.revoked.put(&rec.digest.clone(), rec).await?;
        let stale = self.revoked.filter(|r| r.expires <= now.timestamp());
        for r in stale {
            self.revoked.remove(&r.digest).await?;
        }
        Ok(())
    }
}

/// The key a revocation is stored under: the token's SHA-256 (the token
/// itself is a credential and is not written down).
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity service on a fresh data directory, with one user who is
    /// a member of one project.
    async fn fixture() -> (Identity, Arc<User>, Arc<Project>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("rova-identity-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::open(&dir).expect("store");
        let id = Identity::load(&store, &dir, 3600).expect("identity");
        let project = Project {
            id: "p1".into(),
            name: "p".into(),
            domain_id: DEFAULT_DOMAIN_ID.into(),
            description: String::new(),
            enabled: true,
        };
        let user = User {
            id: "u1".into(),
            name: "u".into(),
            domain_id: DEFAULT_DOMAIN_ID.into(),
            password_hash: String::new(),
            enabled: true,
            assignments: HashMap::from([("p1".to_string(), vec!["member".to_string()])]),
            default_project_id: None,
        };
        let project = id.projects.put("p1", project).await.expect("project");
        let user = id.users.put("u1", user).await.expect("user");
        (id, user, project, dir)
    }

    #[tokio::test]
    async fn revocations_outlive_nothing_but_their_token() {
        let (id, user, project, dir) = fixture().await;
        let now = Utc::now();
        let live = id
            .issue(user.clone(), Some(project.clone()), now, None)
            .expect("token");
        let stale = id
            .issue(user.clone(), Some(project), now - Duration::hours(2), None)
            .expect("token");
        assert!(id.validate(&live.token, now).is_ok());
        id.revoke(&live, now).await.expect("revoke");
        assert!(id.validate(&live.token, now).is_err());
        // Revoking an expired token leaves no record behind, and the live
        // token's record stays.
        id.revoke(&stale, now).await.expect("revoke");
        assert_eq!(id.revoked.len(), 1);
        assert!(id.revoked.get(&digest(&live.token)).is_some());
        // Once the live token has expired too, the next revocation prunes it.
        let later = now + Duration::hours(2);
        let other = id.issue(user, None, later, None).expect("unscoped token");
        id.revoke(&other, later).await.expect("revoke");
        assert_eq!(id.revoked.len(), 1);
        assert!(id.revoked.get(&digest(&other.token)).is_some());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_unscoped_token_is_refused_where_a_project_is_needed() {
        let (id, user, _, dir) = fixture().await;
        let now = Utc::now();
        let t = id.issue(user, None, now, None).expect("token");
        let any = id.validate_any(&t.token, now).expect("valid");
        assert!(any.project.is_none() && any.roles.is_empty());
        assert_eq!(id.validate(&t.token, now).expect_err("unscoped").code, 401);
        let _ = std::fs::remove_dir_all(dir);
    }
}
