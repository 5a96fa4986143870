//! Keystone v3 HTTP routes under `/identity`: version documents, token
//! issue/validate/revoke, the catalog, and the read-only project, user and
//! role listings the clients touch. Errors use Keystone's body
//! `{"error": {"code", "message", "title"}}`.

use super::{role_id, AnyToken, Project, User, DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME};
use crate::app::App;
use crate::http::host_url;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

/// Keystone-shaped error.
pub struct KsError(pub Fault);

impl IntoResponse for KsError {
    fn into_response(self) -> Response {
        let f = self.0;
        let title = match f.code {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            _ => "Internal Server Error",
        };
        let status = StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            axum::Json(json!({"error": {"code": f.code, "message": f.message, "title": title}})),
        )
            .into_response();
        if f.code == 401 {
            if let Ok(v) = "Keystone uri=\"/identity\"".parse() {
                resp.headers_mut().insert("www-authenticate", v);
            }
        }
        resp
    }
}

impl From<Fault> for KsError {
    fn from(f: Fault) -> Self {
        KsError(f)
    }
}

type KsResult<T> = Result<T, KsError>;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/identity", get(versions))
        .route("/identity/", get(versions))
        .route("/identity/v3", get(version))
        .route("/identity/v3/", get(version))
        .route(
            "/identity/v3/auth/tokens",
            get(validate_token)
                .head(check_token)
                .post(issue_token)
                .delete(revoke_token),
        )
        .route("/identity/v3/auth/catalog", get(auth_catalog))
        .route("/identity/v3/auth/projects", get(auth_projects))
        .route("/identity/v3/projects", get(list_projects))
        .route("/identity/v3/projects/{id}", get(show_project))
        .route("/identity/v3/users/{id}", get(show_user))
        .route("/identity/v3/users/{id}/projects", get(user_projects))
        .route("/identity/v3/domains", get(list_domains))
        .route("/identity/v3/domains/{id}", get(show_domain))
        .route("/identity/v3/roles", get(list_roles))
}

fn version_entry(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

async fn versions(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": {"values": [version_entry(&base)]}})),
    )
        .into_response()
}

async fn version(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    axum::Json(json!({"version": version_entry(&base)})).into_response()
}

fn domain_json() -> Value {
    json!({"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME})
}

/// The service catalog of a token scoped to `project`, built on the public
/// URL the server was started with (the block-storage endpoints name the
/// project, as Cinder's catalog entries do).
pub fn catalog(app: &App, project: &str) -> Value {
    let base = &app.public_url;
    let entry = |ty: &str, name: &str, url: String, id: &str| {
        let eps: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                json!({"id": format!("{id}{i}"), "interface": iface, "region": "RegionOne",
                       "region_id": "RegionOne", "url": url})
            })
            .collect();
        json!({"type": ty, "name": name, "id": id, "endpoints": eps})
    };
    json!([
        entry(
            "identity",
            "keystone",
            format!("{base}/identity"),
            "c0a8e1d2b3f44a5b"
        ),
        entry(
            "compute",
            "nova",
            format!("{base}/compute/v2.1"),
            "d1b9f2e3c4a54b6c"
        ),
        entry(
            "image",
            "glance",
            format!("{base}/image"),
            "e2cafe04d5b64c7d"
        ),
        entry(
            "network",
            "neutron",
            format!("{base}/network"),
            "f3dbaf15e6c74d8e"
        ),
        entry(
            "block-storage",
            "cinder",
            format!("{base}/volume/v3/{project}"),
            "a4ecb026f7d85e9f"
        ),
        entry(
            "volumev3",
            "cinderv3",
            format!("{base}/volume/v3/{project}"),
            "b5fdc137a8e96fa0"
        ),
    ])
}

fn token_body(app: &App, t: &AnyToken, methods: &[&str]) -> Value {
    let fmt = |d: &chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut token = json!({
        "methods": methods,
        "user": {"id": t.user.id, "name": t.user.name, "domain": domain_json(), "password_expires_at": null},
        "audit_ids": [&t.token[t.token.len().saturating_sub(22)..]],
        "issued_at": fmt(&t.issued_at),
        "expires_at": fmt(&t.expires_at),
    });
    // An unscoped token carries no project, roles or catalog.
    if let Some(p) = &t.project {
        token["project"] = json!({"id": p.id, "name": p.name, "domain": domain_json()});
        token["is_domain"] = json!(false);
        token["roles"] = t
            .roles
            .iter()
            .map(|r| json!({"id": role_id(r), "name": r}))
            .collect();
        token["catalog"] = catalog(app, &p.id);
    }
    json!({ "token": token })
}

fn bad(msg: &str) -> KsError {
    KsError(Fault::bad_request(msg))
}

fn unauthorized() -> KsError {
    KsError(Fault::unauthorized(
        "The request you have made requires authentication.",
    ))
}

fn domain_matches(d: Option<&Value>) -> bool {
    match d {
        None => true,
        Some(d) => {
            d.get("id").and_then(Value::as_str) == Some(DEFAULT_DOMAIN_ID)
                || d.get("name").and_then(Value::as_str) == Some(DEFAULT_DOMAIN_NAME)
        }
    }
}

/// A user or project a token request names by `id`, or by `name` within
/// the Default domain: 400 when it gives neither, 401 when there is none.
fn find_named<T>(
    part: &Value,
    what: &str,
    by_id: impl FnOnce(&str) -> Option<T>,
    by_name: impl FnOnce(&str) -> Option<T>,
) -> KsResult<T> {
    let found = if let Some(id) = part.get("id").and_then(Value::as_str) {
        by_id(id)
    } else if let Some(name) = part.get("name").and_then(Value::as_str) {
        if !domain_matches(part.get("domain")) {
            return Err(unauthorized());
        }
        by_name(name)
    } else {
        return Err(bad(&format!("Expecting to find id or name in {what}")));
    };
    found.ok_or_else(unauthorized)
}

/// The scope a token request asks for.
enum Scope {
    /// No `scope`: Keystone's default scoping (the user's default project,
    /// else unscoped).
    Default,
    /// `"scope": "unscoped"` (or `{"unscoped": {}}`).
    Unscoped,
    Project(Arc<Project>),
    /// A domain scope on the Default domain: nobody holds domain roles here.
    Domain,
    /// `{"system": {"all": true}}`: nobody holds system roles here.
    System,
}

fn parse_scope(app: &App, auth: &Value) -> KsResult<Scope> {
    let Some(scope) = auth.get("scope") else {
        return Ok(Scope::Default);
    };
    if scope.as_str() == Some("unscoped") {
        return Ok(Scope::Unscoped);
    }
    let kinds = ["project", "domain", "system", "OS-TRUST:trust", "unscoped"];
    let named: Vec<&str> = match scope.as_object() {
        Some(o) => kinds.into_iter().filter(|k| o.contains_key(*k)).collect(),
        None => Vec::new(),
    };
    let [kind] = named[..] else {
        return Err(bad(
            "Expecting to find project, domain, system, OS-TRUST:trust or unscoped in scope.",
        ));
    };
    let part = &scope[kind];
    match kind {
        "project" => Ok(Scope::Project(find_named(
            part,
            "project",
            |id| app.identity.projects.get(id),
            |name| app.identity.project_by_name(name, DEFAULT_DOMAIN_ID),
        )?)),
        "domain" => {
            if part.get("id").is_none() && part.get("name").is_none() {
                return Err(bad("Expecting to find id or name in domain"));
            }
            if domain_matches(Some(part)) {
                Ok(Scope::Domain)
            } else {
                Err(unauthorized())
            }
        }
        "system" => Ok(Scope::System),
        "unscoped" => Ok(Scope::Unscoped),
        _ => {
            let id = part.get("id").and_then(Value::as_str).unwrap_or("");
            Err(KsError(Fault::not_found(format!(
                "Could not find trust: {id}."
            ))))
        }
    }
}

/// The project the new token is scoped to (`None`: unscoped), now that the
/// user is authenticated.
fn scope_for(app: &App, user: &User, scope: Scope) -> KsResult<Option<Arc<Project>>> {
    match scope {
        Scope::Default => Ok(app.identity.default_scope(user)),
        Scope::Unscoped => Ok(None),
        Scope::Project(p) => Ok(Some(p)),
        Scope::Domain => Err(KsError(Fault::unauthorized(format!(
            "User {} has no access to domain {DEFAULT_DOMAIN_ID}",
            user.id
        )))),
        Scope::System => Err(KsError(Fault::unauthorized(format!(
            "User {} has no access to the system",
            user.id
        )))),
    }
}

async fn issue_token(State(app): State<Arc<App>>, body: Bytes) -> KsResult<Response> {
    let v: Value = serde_json::from_slice(&body).map_err(|_| bad("Malformed request body"))?;
    let auth = v
        .get("auth")
        .ok_or_else(|| bad("'auth' is a required property"))?;
    let identity = auth
        .get("identity")
        .ok_or_else(|| bad("'identity' is a required property"))?;
    let methods: Vec<&str> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let now = chrono::Utc::now(); // tokens live on wall time, not the virtual clock
    let scope = parse_scope(&app, auth)?;

    let info = if methods.contains(&"password") {
        let u = identity
            .get("password")
            .and_then(|p| p.get("user"))
            .ok_or_else(|| bad("Expecting to find user in password"))?;
        let password = u.get("password").and_then(Value::as_str).unwrap_or("");
        let user = find_named(
            u,
            "user",
            |id| app.identity.users.get(id),
            |name| app.identity.user_by_name(name, DEFAULT_DOMAIN_ID),
        )?;
        app.identity.check_user_password(&user, password)?;
        let project = scope_for(&app, &user, scope)?;
        app.identity.issue(user, project, now, None)?
    } else if methods.contains(&"token") {
        let old = identity
            .get("token")
            .and_then(|t| t.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Expecting to find id in token"))?;
        let old = app.identity.validate_any(old, now)?;
        let project = scope_for(&app, &old.user, scope)?;
        // The new token keeps the user, and the old token's expiry.
        app.identity
            .issue(old.user.clone(), project, now, Some(old.expires_at))?
    } else {
        return Err(unauthorized());
    };
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(token_body(&app, &info, &methods)),
    )
        .into_response();
    crate::http::set_header(&mut resp, "x-subject-token", &info.token);
    Ok(resp)
}

fn token_from(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// The caller's token, of any scope.
fn caller(app: &App, headers: &HeaderMap) -> KsResult<AnyToken> {
    let t = token_from(headers, "x-auth-token").ok_or_else(unauthorized)?;
    Ok(app.identity.validate_any(&t, chrono::Utc::now())?)
}

/// The policy rules on another token (Keystone's defaults, less the system
/// scope Rova does not issue): its owner or an admin may check, validate
/// and revoke it; a service may also validate it.
#[derive(Clone, Copy)]
enum TokenRule {
    Check,
    Validate,
    Revoke,
}

impl TokenRule {
    fn name(self) -> &'static str {
        match self {
            TokenRule::Check => "identity:check_token",
            TokenRule::Validate => "identity:validate_token",
            TokenRule::Revoke => "identity:revoke_token",
        }
    }

    fn allows(self, caller: &AnyToken, subject: &AnyToken) -> bool {
        caller.user.id == subject.user.id
            || caller.has_role("admin")
            || (matches!(self, TokenRule::Validate) && caller.has_role("service"))
    }
}

/// The `X-Subject-Token` the caller may act on under `rule`. As in
/// Keystone, a subject token that is not valid is 404 (before the policy
/// check: nobody can own it), and a caller the rule refuses gets 403.
fn subject(app: &App, headers: &HeaderMap, rule: TokenRule) -> KsResult<AnyToken> {
    let me = caller(app, headers)?;
    let t = token_from(headers, "x-subject-token")
        .ok_or_else(|| KsError(Fault::not_found("Could not find token.")))?;
    let subject = app
        .identity
        .validate_any(&t, chrono::Utc::now())
        .map_err(|_| KsError(Fault::not_found(format!("Could not find token: {t}"))))?;
    if !rule.allows(&me, &subject) {
        return Err(KsError(Fault::forbidden(format!(
            "You are not authorized to perform the requested action: {}.",
            rule.name()
        ))));
    }
    Ok(subject)
}

async fn validate_token(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    let info = subject(&app, &headers, TokenRule::Validate)?;
    let mut resp = axum::Json(token_body(&app, &info, &["password"])).into_response();
    crate::http::set_header(&mut resp, "x-subject-token", &info.token);
    Ok(resp)
}

async fn check_token(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    subject(&app, &headers, TokenRule::Check)?;
    Ok(StatusCode::OK.into_response())
}

async fn revoke_token(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    let info = subject(&app, &headers, TokenRule::Revoke)?;
    app.identity.revoke(&info, chrono::Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn auth_catalog(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    let Some(project) = caller(&app, &headers)?.project.map(|p| p.id.clone()) else {
        return Err(KsError(Fault::forbidden(
            "A project-scoped token is required to produce a service catalog.",
        )));
    };
    Ok(axum::Json(
        json!({"catalog": catalog(&app, &project), "links": {"self": null, "next": null, "previous": null}}),
    )
    .into_response())
}

fn project_json(base: &str, p: &Project) -> Value {
    json!({"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
           "enabled": p.enabled, "is_domain": false, "parent_id": p.domain_id, "tags": [],
           "links": {"self": format!("{base}/identity/v3/projects/{}", p.id)}})
}

fn user_projects_json(app: &App, base: &str, user: &User) -> Value {
    let mut ps: Vec<Value> = user
        .assignments
        .keys()
        .filter_map(|id| app.identity.projects.get(id))
        .map(|p| project_json(base, &p))
        .collect();
    ps.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({"projects": ps, "links": {"self": null, "next": null, "previous": null}})
}

async fn auth_projects(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    let me = caller(&app, &headers)?;
    Ok(axum::Json(user_projects_json(&app, &host_url(&headers), &me.user)).into_response())
}

async fn user_projects(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> KsResult<Response> {
    let me = caller(&app, &headers)?;
    if me.user.id != id && !me.has_role("admin") {
        return Err(KsError(Fault::forbidden(
            "You are not authorized to perform the requested action.",
        )));
    }
    let user = app
        .identity
        .users
        .get(&id)
        .ok_or_else(|| KsError(Fault::not_found(format!("Could not find user: {id}."))))?;
    Ok(axum::Json(user_projects_json(&app, &host_url(&headers), &user)).into_response())
}

/// Keystone's 403 for a caller its default policy refuses.
fn not_authorized(rule: &str) -> KsError {
    KsError(Fault::forbidden(format!(
        "You are not authorized to perform the requested action: {rule}."
    )))
}

/// Keystone's default policy lists projects, domains and roles to admins
/// (and system or domain readers, which Rova has none of): a project-scoped
/// user lists its own projects with `/users/{id}/projects` or
/// `/auth/projects`.
fn require_admin(me: &AnyToken, rule: &str) -> KsResult<()> {
    if me.has_role("admin") {
        Ok(())
    } else {
        Err(not_authorized(rule))
    }
}

async fn list_projects(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    let me = caller(&app, &headers)?;
    let base = host_url(&headers);
    require_admin(&me, "identity:list_projects")?;
    let mut ps: Vec<Value> = app
        .identity
        .projects
        .all()
        .iter()
        .map(|p| project_json(&base, p))
        .collect();
    ps.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(
        axum::Json(
            json!({"projects": ps, "links": {"self": null, "next": null, "previous": null}}),
        )
        .into_response(),
    )
}

async fn show_project(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> KsResult<Response> {
    let me = caller(&app, &headers)?;
    let p = app
        .identity
        .projects
        .get(&id)
        .or_else(|| app.identity.project_by_name(&id, DEFAULT_DOMAIN_ID));
    // Keystone: an admin, or the project the token is scoped to; anyone
    // else is refused before the project is looked up (403, never 404).
    let own = |pid: &str| me.project.as_ref().is_some_and(|mine| mine.id == pid);
    if !me.has_role("admin") && !p.as_ref().is_some_and(|p| own(&p.id)) {
        return Err(not_authorized("identity:get_project"));
    }
    let p = p.ok_or_else(|| KsError(Fault::not_found(format!("Could not find project: {id}."))))?;
    Ok(axum::Json(json!({"project": project_json(&host_url(&headers), &p)})).into_response())
}

async fn show_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> KsResult<Response> {
    let me = caller(&app, &headers)?;
    if me.user.id != id && !me.has_role("admin") {
        return Err(not_authorized("identity:get_user"));
    }
    let u = app
        .identity
        .users
        .get(&id)
        .ok_or_else(|| KsError(Fault::not_found(format!("Could not find user: {id}."))))?;
    Ok(axum::Json(json!({"user": {"id": u.id, "name": u.name, "domain_id": u.domain_id,
        "enabled": u.enabled, "default_project_id": u.default_project_id, "password_expires_at": null,
        "options": {}, "links": {"self": format!("{}/identity/v3/users/{}", host_url(&headers), u.id)}}}))
    .into_response())
}

async fn list_domains(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    require_admin(&caller(&app, &headers)?, "identity:list_domains")?;
    Ok(
        axum::Json(json!({"domains": [domain_full(&host_url(&headers))],
        "links": {"self": null, "next": null, "previous": null}}))
        .into_response(),
    )
}

fn domain_full(base: &str) -> Value {
    json!({"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME, "description": "The default domain",
           "enabled": true, "tags": [], "options": {},
           "links": {"self": format!("{base}/identity/v3/domains/{DEFAULT_DOMAIN_ID}")}})
}

async fn show_domain(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> KsResult<Response> {
    caller(&app, &headers)?;
    if id != DEFAULT_DOMAIN_ID && id != DEFAULT_DOMAIN_NAME {
        return Err(KsError(Fault::not_found(format!(
            "Could not find domain: {id}."
        ))));
    }
    Ok(axum::Json(json!({"domain": domain_full(&host_url(&headers))})).into_response())
}

async fn list_roles(State(app): State<Arc<App>>, headers: HeaderMap) -> KsResult<Response> {
    require_admin(&caller(&app, &headers)?, "identity:list_roles")?;
    let roles: Vec<Value> = super::ROLES
        .iter()
        .map(|(n, id)| json!({"id": id, "name": n, "domain_id": null, "description": null, "options": {}}))
        .collect();
    Ok(
        axum::Json(
            json!({"roles": roles, "links": {"self": null, "next": null, "previous": null}}),
        )
        .into_response(),
    )
}
