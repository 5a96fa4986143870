//! The domain error shared by the pure logic and the services: an HTTP-ish
//! status code plus Nova's user-facing message. Mapping it to the wire body
//! (`{"badRequest": {...}}`) happens in exactly one place, the HTTP edge.

use std::fmt;

/// A client-visible failure: the status code Nova would answer and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: u16,
    pub message: String,
}

impl Fault {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
    /// `Instance <uuid> could not be found.`
    pub fn instance_not_found(uuid: &str) -> Self {
        Self::not_found(format!("Instance {uuid} could not be found."))
    }
    /// Policy denial in Nova's words.
    pub fn policy(rule: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {rule} to be performed."))
    }
    /// Nova's `InstanceInvalidState` text (409).
    pub fn invalid_state(action: &str, uuid: &str, attr: &str, state: &str) -> Self {
        Self::conflict(format!(
            "Cannot '{action}' instance {uuid} while it is in {attr} {state}"
        ))
    }
    /// The top-level key Nova uses for this status code.
    pub fn wire_key(&self) -> &'static str {
        match self.code {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 | 429 => "overLimit",
            415 => "badMediaType",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for Fault {}

pub type Result<T, E = Fault> = std::result::Result<T, E>;
