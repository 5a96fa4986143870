//! The server password endpoint (`/openstack/<ver>/password`) as pure
//! rules: the password lives in system_metadata `password_0`..`password_3`,
//! 255 characters each.

use crate::model::Instance;
use std::collections::BTreeMap;

pub const PASSWORD_CHUNKS: usize = 4;
pub const PASSWORD_CHUNK_LEN: usize = 255;
/// Largest accepted POST body, in bytes (4 × 255).
pub const PASSWORD_MAX_SIZE: usize = PASSWORD_CHUNKS * PASSWORD_CHUNK_LEN;

/// The stored password: the `password_*` system_metadata values
/// concatenated in key order, or `None` when that is empty.
pub fn stored_password(inst: &Instance) -> Option<String> {
    let s: String = inst
        .system_metadata
        .iter()
        .filter(|(k, _)| k.starts_with("password_"))
        .map(|(_, v)| v.as_str())
        .collect();
    (!s.is_empty()).then_some(s)
}

/// Split a password into the four system_metadata chunks (empty password:
/// four empty chunks, which is how the API clears it).
pub fn password_chunks(password: &str) -> BTreeMap<String, String> {
    let chars: Vec<char> = password.chars().collect();
    (0..PASSWORD_CHUNKS)
        .map(|i| {
            let start = (i * PASSWORD_CHUNK_LEN).min(chars.len());
            let end = ((i + 1) * PASSWORD_CHUNK_LEN).min(chars.len());
            (
                format!("password_{i}"),
                chars[start..end].iter().collect::<String>(),
            )
        })
        .collect()
}

/// What the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOutcome {
    /// 200 with this body (GET: the password or empty).
    Ok(String),
    /// 200 on POST: merge these keys into system_metadata.
    Store(BTreeMap<String, String>),
    /// 409: a password is already stored.
    Conflict,
    /// 400 with this message.
    BadRequest(&'static str),
}

/// Handle a request to the password endpoint. `method` is the HTTP method,
/// `body` the raw POST body.
pub fn password_request(inst: &Instance, method: &str, body: &[u8]) -> PasswordOutcome {
    match method {
        "GET" => PasswordOutcome::Ok(stored_password(inst).unwrap_or_default()),
        "POST" => {
            if stored_password(inst).is_some() {
                return PasswordOutcome::Conflict;
            }
            if body.len() > PASSWORD_MAX_SIZE {
                return PasswordOutcome::BadRequest("Request is too large.");
            }
            match std::str::from_utf8(body) {
                Ok(text) => PasswordOutcome::Store(password_chunks(text)),
                // Nova would fail with a 500 here; a 400 is kinder.
                Err(_) => PasswordOutcome::BadRequest("Request body is not valid UTF-8."),
            }
        }
        _ => PasswordOutcome::BadRequest("GET and POST only are supported."),
    }
}
