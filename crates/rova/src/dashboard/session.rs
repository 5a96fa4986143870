//! Dashboard sessions: log-in with a Keystone user name, password and
//! project (the identity API's password method), the session cookie (an
//! opaque random id, `HttpOnly`, `SameSite=Strict`, `Path=/dashboard`)
//! bound to the token, the per-session CSRF token every form carries, the
//! project switch and log-out (which revokes the token). Sessions are rows
//! of the store's `dashboard_sessions` table, keyed by the SHA-256 of the
//! cookie's id (the database never holds a live cookie): they survive a
//! restart and every process sharing the database knows them. A session
//! ends at log-out, when its token expires or is refused by the API.

use super::client::{ApiResp, Call};
use super::html::{self, esc};
use super::Out;
use crate::app::App;
use crate::store::Table;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Router};
use rand::RngCore;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

const COOKIE: &str = "rova_session";
/// The cookie that carries the log-in form's CSRF value (double submit:
/// there is no session yet to keep it in).
const LOGIN_COOKIE: &str = "rova_login";
/// At most this many sessions are kept; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub is_admin: bool,
    /// The token's expiry (RFC 3339).
    pub expires_at: String,
    /// When the session was opened (RFC 3339).
    pub created_at: String,
    /// One message for the session's next page (an API's refusal of an
    /// action, shown after the redirect), whichever process shows it.
    #[serde(default)]
    pub flash: Option<String>,
    /// The session's row key (not stored: it is the row's id).
    #[serde(skip)]
    pub key: String,
}

impl Session {
    fn expired(&self) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.expires_at)
            .map(|t| t < chrono::Utc::now())
            .unwrap_or(false)
    }
}

/// A session's row key: the SHA-256 of its cookie's id.
fn row_key(cookie_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(cookie_id.as_bytes()))
}

/// The dashboard's shared state: the API router it calls and the sessions.
pub struct Dash {
    app: Arc<App>,
    api: OnceLock<Router>,
    /// The `dashboard_sessions` table, loaded on first use (the API
    /// router the dashboard builds for itself has a `Dash` that never
    /// needs it).
    sessions: OnceLock<Result<Table<Session>, String>>,
}

/// A posted form: its fields in order (a name may repeat).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// A random token of 32 bytes, hex.
fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value with the dashboard's attributes.
/// `Secure` is added when the browser reached Rova over HTTPS (a proxy in
/// front says so in `X-Forwarded-Proto`).
fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/dashboard{age}{secure}")
}

/// Whether the request came over HTTPS (through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    crate::http::host_url(headers).starts_with("https://")
}

fn with_cookie(mut resp: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The page that stands in for the one asked for (a log-in redirect, a
/// 403 page), boxed: it travels in `Err` through every handler.
pub struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Self {
        *r.0
    }
}

/// A redirect after a POST (303: the browser follows it with a GET).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

impl Dash {
    pub fn new(app: Arc<App>) -> Dash {
        Dash {
            app,
            api: OnceLock::new(),
            sessions: OnceLock::new(),
        }
    }

    /// Whether the guests are the simulator's (no real console behind them).
    pub fn simulated(&self) -> bool {
        matches!(self.app.cfg.driver, crate::config::DriverKind::Fake)
    }

    /// The API router, built on first use.
    pub fn api(&self) -> Router {
        self.api
            .get_or_init(|| crate::app::router(self.app.clone()))
            .clone()
    }

    /// The sessions' table (`None`, logged, when it cannot be loaded).
    fn sessions(&self) -> Option<&Table<Session>> {
        match self
            .sessions
            .get_or_init(|| Table::load("dashboard_session", &self.app.store))
        {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("loading the dashboard sessions: {e}");
                None
            }
        }
    }

    /// The session the request's cookie names, if it is live (an expired
    /// one's row goes at the next log-in).
    pub fn current(&self, headers: &HeaderMap) -> Option<Session> {
        let key = row_key(&cookie(headers, COOKIE)?);
        let s = self.sessions()?.get(&key)?;
        (!s.expired()).then(|| Session {
            key,
            ..(*s).clone()
        })
    }

    /// The session, or a redirect to the log-in page.
    pub fn require(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        self.current(headers)
            .ok_or_else(|| see_other("/dashboard/login").into())
    }

    /// The session and the posted form, when the form carries the
    /// session's CSRF token; the 403 page otherwise.
    pub fn posted(&self, headers: &HeaderMap, body: &Bytes) -> Result<(Session, Form), Refusal> {
        let s = self.require(headers)?;
        let form = Form::parse(body);
        if !same_secret(form.get("csrf"), &s.csrf) {
            return Err(html::error_page(
                Some(&s),
                StatusCode::FORBIDDEN,
                "The form was refused: its CSRF token is missing or wrong. Reload the page and try again.",
            )
            .into());
        }
        Ok((s, form))
    }

    /// The session, when the request's `X-CSRF-Token` header is its CSRF
    /// token (scripts that send a body other than a form use it).
    pub fn checked_header(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        let s = self.require(headers)?;
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_secret(sent, &s.csrf) {
            return Err(html::fragment_status(
                StatusCode::FORBIDDEN,
                "The upload was refused: its CSRF token is missing or wrong.",
            )
            .into());
        }
        Ok(s)
    }

    /// Keeps `message` for the session's next page.
    pub async fn flash(&self, s: &Session, message: String) {
        self.set_flash(s, Some(message)).await;
    }

    /// The message kept for this session, once.
    pub async fn take_flash(&self, s: &Session) -> Option<String> {
        let message = s.flash.clone()?;
        self.set_flash(s, None).await;
        Some(message)
    }

    async fn set_flash(&self, s: &Session, message: Option<String>) {
        let Some(t) = self.sessions() else {
            return;
        };
        let res = t
            .update(
                &s.key,
                || rova_core::Fault::not_found("session ended"),
                |row| {
                    row.flash = message;
                    Ok(())
                },
            )
            .await;
        if let Err(f) = res {
            tracing::warn!("keeping a dashboard message: {}", f.message);
        }
    }

    /// Drops the sessions whose token the API no longer takes.
    async fn forget_token(&self, token: &str) {
        let Some(t) = self.sessions() else {
            return;
        };
        let gone: Vec<String> = match t.rows() {
            Ok(rows) => rows
                .into_iter()
                .filter(|(_, s)| s.token == token)
                .map(|(k, _)| k)
                .collect(),
            Err(f) => {
                tracing::error!("reading the dashboard sessions: {}", f.message);
                return;
            }
        };
        for key in gone {
            if let Err(f) = t.remove(&key).await {
                tracing::warn!("ending a dashboard session: {}", f.message);
            }
        }
    }

    /// Sends `call` with the session's token.
    pub async fn call(&self, s: &Session, call: Call<'_>) -> ApiResp {
        let call = Call {
            token: Some(&s.token),
            ..call
        };
        let r = call.send(self).await;
        if r.status == 401 {
            self.forget_token(&s.token).await;
        }
        r
    }

    /// GETs `path` and returns its JSON, or the page for the error (a 401
    /// logs out, 403 and 404 are their pages).
    pub async fn get(&self, s: &Session, path: &str) -> Result<Value, Response> {
        self.get_at(s, path, super::client::COMPUTE_VERSION).await
    }

    /// [`Dash::get`] at a compute microversion of the caller's choice.
    pub async fn get_at(&self, s: &Session, path: &str, mv: &str) -> Result<Value, Response> {
        let r = self
            .call(s, Call::new(Method::GET, path, None).microversion(mv))
            .await;
        if r.ok() {
            Ok(r.body)
        } else {
            Err(self.failure(s, &r))
        }
    }

    /// The page for a failed API call.
    pub fn failure(&self, s: &Session, r: &ApiResp) -> Response {
        match r.status {
            401 => see_other("/dashboard/login"),
            403 | 404 => html::error_page(
                Some(s),
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::NOT_FOUND),
                &r.message(),
            ),
            // the API's own refusal (400, 409, ...) keeps its status; an
            // API failure is the dashboard's upstream failing
            c @ 400..=499 => html::error_page(
                Some(s),
                StatusCode::from_u16(c).unwrap_or(StatusCode::BAD_REQUEST),
                &r.message(),
            ),
            _ => html::error_page(Some(s), StatusCode::BAD_GATEWAY, &r.message()),
        }
    }

    /// Issues a token (password or token method) and opens a session on
    /// it; the response sets the cookie and goes to the servers page.
    async fn open_session(&self, auth: Value, secure: bool) -> Result<Response, ApiResp> {
        let r = Call::new(Method::POST, "/identity/v3/auth/tokens", None)
            .json(auth)
            .send(self)
            .await;
        if r.status != 201 {
            return Err(r);
        }
        let token = r
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let t = &r.body["token"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let session = Session {
            token,
            csrf: random_id(),
            user_id: text(&t["user"]["id"]),
            user_name: text(&t["user"]["name"]),
            project_id: text(&t["project"]["id"]),
            project_name: text(&t["project"]["name"]),
            is_admin: t["roles"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["name"] == "admin")),
            expires_at: text(&t["expires_at"]),
            created_at: chrono::Utc::now().to_rfc3339(),
            flash: None,
            key: String::new(),
        };
        let id = random_id();
        self.keep(&id, session).await.map_err(|message| ApiResp {
            status: 500,
            headers: HeaderMap::new(),
            body: json!({"error": {"code": 500, "message": message}}),
        })?;
        let resp = see_other("/dashboard/servers");
        let resp = with_cookie(resp, &set_cookie(COOKIE, &id, None, secure));
        Ok(with_cookie(
            resp,
            &set_cookie(LOGIN_COOKIE, "", Some(0), secure),
        ))
    }

    /// Stores a new session under cookie id `id`. Expired sessions go
    /// first, and beyond [`MAX_SESSIONS`] the oldest.
    async fn keep(&self, id: &str, session: Session) -> Result<(), String> {
        let t = self
            .sessions()
            .ok_or("The dashboard's sessions cannot be read.")?;
        let mut rows = t.rows().map_err(|f| f.message)?;
        rows.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
        let excess = (rows.len() + 1).saturating_sub(MAX_SESSIONS);
        for (n, (key, s)) in rows.iter().enumerate() {
            if n < excess || s.expired() {
                t.remove(key).await.map_err(|f| f.message)?;
            }
        }
        t.put(&row_key(id), session)
            .await
            .map(drop)
            .map_err(|f| f.message)
    }

    /// Ends the session named by the request's cookie.
    async fn close(&self, headers: &HeaderMap) {
        let (Some(id), Some(t)) = (cookie(headers, COOKIE), self.sessions()) else {
            return;
        };
        if let Err(f) = t.remove(&row_key(&id)).await {
            tracing::warn!("ending a dashboard session: {}", f.message);
        }
    }
}

/// The log-in page, with `message` above the form and `fields` refilled.
fn login_page(
    message: Option<&str>,
    username: &str,
    project: &str,
    status: StatusCode,
    secure: bool,
) -> Response {
    let csrf = random_id();
    let alert = message.map_or(String::new(), |m| {
        format!(r#"<p class="alert" role="alert">{}</p>"#, esc(m))
    });
    let body = format!(
        r#"<h1>Log in</h1>{alert}
<form method="post" action="/dashboard/login" class="stack narrow">
<input type="hidden" name="csrf" value="{csrf}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required value="{u}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="project">Project</label>
<input id="project" name="project" value="{p}" placeholder="(the user's default)">
<button type="submit">Log in</button>
</form>"#,
        u = esc(username),
        p = esc(project),
    );
    let page = html::page(None, "Log in", &body);
    let resp = (status, page).into_response();
    with_cookie(resp, &set_cookie(LOGIN_COOKIE, &csrf, Some(3600), secure))
}

pub async fn login_form(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Response {
    if dash.current(&headers).is_some() {
        return see_other("/dashboard/servers");
    }
    login_page(None, "", "", StatusCode::OK, over_https(&headers))
}

pub async fn login(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let (user, project) = (form.get("username"), form.get("project"));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_secret(form.get("csrf"), &expected) {
        return login_page(
            Some("The form was refused: its CSRF token is missing or wrong. Try again."),
            user,
            project,
            StatusCode::FORBIDDEN,
            over_https(&headers),
        );
    }
    let password = form
        .0
        .iter()
        .find(|(k, _)| k == "password")
        .map_or("", |(_, v)| v.as_str());
    let mut auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}});
    if !project.is_empty() {
        auth["auth"]["scope"] =
            json!({"project": {"name": project, "domain": {"name": "Default"}}});
    }
    match dash.open_session(auth, over_https(&headers)).await {
        Ok(resp) => resp,
        Err(r) => {
            let msg = if r.status == 401 {
                "The user name or password is wrong, or the user has no role on that project."
                    .to_string()
            } else {
                r.message()
            };
            login_page(
                Some(&msg),
                user,
                project,
                StatusCode::UNAUTHORIZED,
                over_https(&headers),
            )
        }
    }
}

pub async fn logout(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap, body: Bytes) -> Out {
    let (s, _) = dash.posted(&headers, &body)?;
    Call::new(Method::DELETE, "/identity/v3/auth/tokens", Some(&s.token))
        .header("x-subject-token", s.token.clone())
        .send(&dash)
        .await;
    dash.close(&headers).await;
    let resp = see_other("/dashboard/login");
    Ok(with_cookie(
        resp,
        &set_cookie(COOKIE, "", Some(0), over_https(&headers)),
    ))
}

/// Switches the session to another of the user's projects: a new token
/// scoped to it (token method), the old one revoked.
pub async fn switch_project(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    body: Bytes,
) -> Out {
    let (s, form) = dash.posted(&headers, &body)?;
    let auth = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": s.token}},
        "scope": {"project": {"id": form.get("project_id")}}}});
    match dash.open_session(auth, over_https(&headers)).await {
        Ok(resp) => {
            Call::new(Method::DELETE, "/identity/v3/auth/tokens", Some(&s.token))
                .header("x-subject-token", s.token.clone())
                .send(&dash)
                .await;
            dash.close(&headers).await;
            Ok(resp)
        }
        Err(r) => Err(html::error_page(
            Some(&s),
            StatusCode::FORBIDDEN,
            &r.message(),
        )),
    }
}

/// The project switch: the user's projects, the current one marked.
pub async fn project_page(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let options: String = projects(&dash, &s)
        .await
        .iter()
        .map(|(id, name)| {
            let sel = if *id == s.project_id { " selected" } else { "" };
            format!(r#"<option value="{}"{sel}>{}</option>"#, esc(id), esc(name))
        })
        .collect();
    let body = format!(
        r#"<h1>Project</h1><p>Logged in as {u} in project {p}.</p>
<form method="post" action="/dashboard/project" class="stack narrow">{csrf}
<label for="project_id">Switch to</label><select id="project_id" name="project_id">{options}</select>
<button type="submit">Switch</button></form>"#,
        u = esc(&s.user_name),
        p = esc(&s.project_name),
        csrf = html::csrf_field(&s),
    );
    Ok(html::page(Some(&s), "Project", &body))
}

/// The user's projects (id, name), for the project switch.
pub async fn projects(dash: &Dash, s: &Session) -> Vec<(String, String)> {
    let r = dash
        .call(
            s,
            Call::new(Method::GET, "/identity/v3/auth/projects", None),
        )
        .await;
    r.body["projects"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["id"].as_str().unwrap_or_default().to_string(),
                        p["name"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; rova_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn cookies_are_secure_behind_https() {
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        assert!(!set_cookie(COOKIE, "x", None, false).contains("Secure"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&h));
        let c = set_cookie(COOKIE, "x", Some(0), true);
        assert!(c.ends_with("; Max-Age=0; Secure") && c.contains("HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", ""));
        assert!(!same_secret("ab", "abc"));
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"net=a&net=b&name=+x+&net=");
        assert_eq!(f.all("net"), vec!["a", "b"]);
        assert_eq!(f.get("name"), "x");
        assert_eq!(f.get("nothing"), "");
    }
}
