//! The authenticated request context: who is calling, in which project,
//! with which roles, at which compute microversion. Built by the auth
//! middleware from the `X-Auth-Token` header; read by every service.

use rova_core::{Fault, Microversion};

/// The caller, as established from a valid token.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    /// Effective roles (implied roles expanded).
    pub roles: Vec<String>,
    pub request_id: String,
    /// Negotiated compute microversion (2.1 outside the compute API).
    pub version: Microversion,
}

impl Ctx {
    /// Nova's `context_is_admin`: the admin role.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    /// Project members may change things; readers may only look.
    pub fn is_member(&self) -> bool {
        self.has_role("member") || self.is_admin()
    }
    /// Whether the caller may change a resource of project `owner`: an
    /// admin, or a member of that project.
    pub fn may_change(&self, owner: &str) -> bool {
        self.is_admin() || (self.is_member() && owner == self.project_id)
    }
    /// Refuses callers without the member role, naming the policy rule.
    pub fn require_member(&self, rule: &str) -> Result<(), Fault> {
        if self.is_member() {
            Ok(())
        } else {
            Err(Fault::policy(rule))
        }
    }
    /// Refuses non-admins, naming the policy rule.
    pub fn require_admin(&self, rule: &str) -> Result<(), Fault> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Fault::policy(rule))
        }
    }
    /// True at `2.minor` or later.
    pub fn at_least(&self, minor: u32) -> bool {
        self.version.at_least(minor)
    }
}
