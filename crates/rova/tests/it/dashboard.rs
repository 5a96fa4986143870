//! The web dashboard (`/dashboard`) over HTTP, as a browser without
//! JavaScript uses it: log-in and its cookie, CSRF on forms, the 404 page
//! for another project's server, the 403 page for a member on an admin
//! page, and log-out revoking the token.

use crate::common::{start, Resp, TestCloud};
use reqwest::{header, redirect, Client, StatusCode};
use serde_json::json;

/// A browser: cookies kept by hand, redirects not followed.
struct Browser {
    http: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// The value of the first `name="…" value="…"` hidden field called `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let at = html.find(&marker).expect("hidden field") + marker.len();
    html[at..].split('"').next().unwrap_or_default().to_string()
}

impl Browser {
    fn new(c: &TestCloud) -> Browser {
        Browser {
            http: Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("client"),
            base: c.base.clone(),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, r: &Resp) {
        for v in r.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap_or_default();
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((k, val)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != k);
                if !val.is_empty() {
                    self.cookies.push((k.to_string(), val.to_string()));
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Resp {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header());
        let r = Resp::of(req).await;
        self.keep_cookies(&r);
        r
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let r = Resp::of(req).await;
        self.keep_cookies(&r);
        r
    }

    /// Logs in; returns the log-in answer.
    async fn login(&mut self, c: &TestCloud, user: &str, project: &str) -> Resp {
        let form = self.get("/dashboard/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = hidden(&form.text, "csrf");
        let pw = c.passwords.get(user).cloned().unwrap_or_default();
        self.post(
            "/dashboard/login",
            &[
                ("csrf", &csrf),
                ("username", user),
                ("password", &pw),
                ("project", project),
            ],
        )
        .await
    }

    /// The session's CSRF token, from any page's log-out form.
    async fn csrf(&mut self) -> String {
        let page = self.get("/dashboard/servers").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        hidden(&page.text, "csrf")
    }
}

fn is_html(r: &Resp) -> bool {
    r.header("content-type")
        .is_some_and(|ct| ct.starts_with("text/html"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_strict_http_only_session_cookie() {
    let c = start().await;
    let root = Browser::new(&c).get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.header("location").as_deref(), Some("/dashboard"));
    // the API beside it still answers as before
    let versions = c
        .http
        .get(format!("{}/compute/v2.1", c.base))
        .send()
        .await
        .expect("get");
    assert_eq!(versions.status(), StatusCode::OK);

    let mut b = Browser::new(&c);
    let unauth = b.get("/dashboard/servers").await;
    assert_eq!(
        unauth.header("location").as_deref(),
        Some("/dashboard/login")
    );
    let r = b.login(&c, "demo", "demo").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let cookie = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rova_session="))
        .expect("session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let id = cookie["rova_session=".len()..]
        .split(';')
        .next()
        .unwrap_or_default();
    assert!(id.len() >= 32, "an opaque random id: {id}");
    let page = b.get("/dashboard/servers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(is_html(&page) && page.text.contains("demo · project demo"));

    // a wrong password shows the form again, with the reason
    let mut other = Browser::new(&c);
    let form = other.get("/dashboard/login").await;
    let csrf = hidden(&form.text, "csrf");
    let bad = other
        .post(
            "/dashboard/login",
            &[("csrf", &csrf), ("username", "demo"), ("password", "nope")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.text.contains("password is wrong") && !bad.text.contains("rova_session"));
    // the log-in form itself carries a CSRF value
    let mut fresh = Browser::new(&c);
    let pw = c.passwords["demo"].clone();
    let no_csrf = fresh
        .post(
            "/dashboard/login",
            &[("username", "demo"), ("password", &pw)],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert!(no_csrf
        .header("set-cookie")
        .is_none_or(|v| !v.starts_with("rova_session=")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let c = start().await;
    let demo = c.login("demo").await;
    let server = c.boot(&demo, "csrf-target", None, json!({})).await;
    let id = server["id"].as_str().expect("id").to_string();
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let action = format!("/dashboard/servers/{id}/action");
    for fields in [
        vec![("op", "pause")],
        vec![("op", "pause"), ("csrf", "forged")],
    ] {
        let r = b.post(&action, &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(is_html(&r) && r.text.contains("CSRF"));
    }
    let now = c.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(now.body["server"]["status"], "ACTIVE", "nothing changed");
    // an action the API refuses: its message on the next page, once
    let csrf = b.csrf().await;
    let refused = b.post(&action, &[("op", "unpause"), ("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let page = b.get(&format!("/dashboard/servers/{id}")).await;
    assert!(
        page.text
            .contains(r#"role="alert">Cannot &#39;unpause&#39; instance"#),
        "{}",
        page.text
    );
    let again = b.get(&format!("/dashboard/servers/{id}")).await;
    assert!(!again.text.contains(r#"role="alert">Cannot"#));
    // the same form with the token goes through
    let ok = b.post(&action, &[("op", "pause"), ("csrf", &csrf)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    c.wait_status(&demo, &id, &["PAUSED"], None).await;
    // and the page then offers unpause, not pause
    let page = b.get(&format!("/dashboard/servers/{id}")).await;
    let pause = page
        .text
        .find(r#"value="pause"><button type="submit" disabled"#);
    let unpause = page.text.find(r#"value="unpause"><button type="submit">"#);
    assert!(pause.is_some() && unpause.is_some(), "{}", page.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_server_is_the_404_page() {
    let c = start().await;
    let alt = c.login("alt_demo").await;
    let theirs = c.boot(&alt, "not-yours", None, json!({})).await;
    let id = theirs["id"].as_str().expect("id");
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    for path in [
        format!("/dashboard/servers/{id}"),
        format!("/dashboard/servers/{id}/part/overview"),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert!(is_html(&r) && r.text.contains("Not found") && !r.text.contains("not-yours"));
    }
    let list = b.get("/dashboard/servers/rows").await;
    assert!(
        !list.text.contains(id),
        "another project's server is not listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gets_the_403_page_and_no_admin_links() {
    let c = start().await;
    let mut member = Browser::new(&c);
    member.login(&c, "demo", "demo").await;
    let page = member.get("/dashboard/servers").await;
    assert!(!page.text.contains("/dashboard/admin/"), "no admin links");
    // the project pages answer, a missing network collection said plainly
    for path in [
        "/dashboard/networks",
        "/dashboard/quotas",
        "/dashboard/images",
    ] {
        assert_eq!(member.get(path).await.status, StatusCode::OK, "{path}");
    }
    let fips = member.get("/dashboard/floating-ips").await;
    assert_eq!(fips.status, StatusCode::OK);
    assert!(fips.text.contains("Floating IPs"));
    assert!(!fips.text.contains("does not offer"));
    for path in [
        "/dashboard/admin/hypervisors",
        "/dashboard/admin/services",
        "/dashboard/admin/servers",
        "/dashboard/admin/migrations",
        "/dashboard/admin/flavors",
    ] {
        let r = member.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(is_html(&r) && r.text.contains("administrators only"));
    }
    let mut admin = Browser::new(&c);
    admin.login(&c, "admin", "admin").await;
    let hv = admin.get("/dashboard/admin/hypervisors").await;
    assert_eq!(hv.status, StatusCode::OK);
    assert!(
        hv.text.contains("<meter") && hv.text.contains("vCPUs"),
        "{}",
        hv.text
    );
    let servers = admin.get("/dashboard/servers").await;
    assert!(servers.text.contains("/dashboard/admin/hypervisors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token() {
    let c = start().await;
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let token = session_token(&mut b).await;
    assert_eq!(api_status(&c, &token).await, StatusCode::OK);
    let csrf = b.csrf().await;
    // log-out is a form too: without the token it is refused
    assert_eq!(
        b.post("/dashboard/logout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(api_status(&c, &token).await, StatusCode::OK);
    let out = b.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        api_status(&c, &token).await,
        StatusCode::UNAUTHORIZED,
        "the token is revoked"
    );
    let after = b.get("/dashboard/servers").await;
    assert_eq!(
        after.header("location").as_deref(),
        Some("/dashboard/login")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_form_shows_the_apis_validation_message() {
    let c = start().await;
    let demo = c.login("demo").await;
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let form = b.get("/dashboard/servers/new").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = hidden(&form.text, "csrf");
    let image = c.image_id();
    let net = c.network_id();
    let bad = b
        .post(
            "/dashboard/servers/new",
            &[
                ("csrf", &csrf),
                ("name", "v"),
                ("image", &image),
                ("flavor", "999"),
                ("network", &net),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text.contains("Invalid flavorRef provided."),
        "{}",
        bad.text
    );
    assert!(bad.text.contains(r#"value="v""#), "the values are kept");
    let ok = b
        .post(
            "/dashboard/servers/new",
            &[
                ("csrf", &csrf),
                ("name", "launched"),
                ("image", &image),
                ("flavor", "1"),
                ("network", &net),
                ("count", "2"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let listed = c.get(&demo, "/servers?name=launched", None).await;
    for sv in listed.body["servers"].as_array().expect("servers") {
        let id = sv["id"].as_str().expect("id");
        c.wait_status(&demo, id, &["ACTIVE"], None).await;
    }
    let rows = b.get("/dashboard/servers/rows").await;
    assert_eq!(rows.text.matches("launched").count(), 2, "{}", rows.text);
    assert_eq!(rows.text.matches(r#"data-status="ACTIVE""#).count(), 2);
    // the live refresh: an unchanged list is a bodiless 304
    let etag = rows.header("etag").expect("an ETag");
    let again = Resp::of(
        b.http
            .get(format!("{}/dashboard/servers/rows", c.base))
            .header(header::COOKIE, b.cookie_header())
            .header(header::IF_NONE_MATCH, &etag),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.text.is_empty());
    let stale = Resp::of(
        b.http
            .get(format!("{}/dashboard/servers/rows", c.base))
            .header(header::COOKIE, b.cookie_header())
            .header(header::IF_NONE_MATCH, "\"other\""),
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.text, rows.text);
}

/// The status the compute API answers `token` with.
async fn api_status(c: &TestCloud, token: &str) -> StatusCode {
    c.http
        .get(format!("{}/compute/v2.1/servers", c.base))
        .header("X-Auth-Token", token)
        .send()
        .await
        .expect("get")
        .status()
}

/// The session's token, from the API access page.
async fn session_token(b: &mut Browser) -> String {
    let page = b.get("/dashboard/api-access").await;
    let marker = r#"id="session-token" tabindex="0">"#;
    let at = page.text.find(marker).expect("token shown") + marker.len();
    page.text[at..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_projects_rescopes_the_session() {
    let c = start().await;
    let demo = c.login("demo").await;
    let alt = c.login("alt_demo").await;
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let page = b.get("/dashboard/project").await;
    assert!(page
        .text
        .contains(&format!(r#"value="{}" selected"#, demo.project_id)));
    let old = session_token(&mut b).await;
    let csrf = b.csrf().await;
    // a project the user has no role on is refused, the session kept
    let refused = b
        .post(
            "/dashboard/project",
            &[("csrf", &csrf), ("project_id", &alt.project_id)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(session_token(&mut b).await, old);
    // a new token for the project, the old one revoked
    let ok = b
        .post(
            "/dashboard/project",
            &[("csrf", &csrf), ("project_id", &demo.project_id)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let new = session_token(&mut b).await;
    assert_ne!(new, old);
    assert_eq!(api_status(&c, &new).await, StatusCode::OK);
    assert_eq!(api_status(&c, &old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_upload_needs_the_csrf_header_and_streams_the_bytes() {
    let c = start().await;
    let demo = c.login("demo").await;
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let csrf = b.csrf().await;
    let images = |name: &'static str| {
        let http = c.http.clone();
        let url = format!("{}/image/v2/images?name={name}", c.base);
        let token = demo.token.clone();
        async move {
            let r = Resp::of(http.get(url).header("X-Auth-Token", token)).await;
            r.body["images"].as_array().cloned().unwrap_or_default()
        }
    };
    let put = |csrf: Option<&str>| {
        let mut req = b
            .http
            .put(format!(
                "{}/dashboard/images/upload?name=up&disk_format=raw",
                c.base
            ))
            .header(header::COOKIE, b.cookie_header())
            .body(vec![7u8; 300_000]);
        if let Some(t) = csrf {
            req = req.header("X-CSRF-Token", t);
        }
        Resp::of(req)
    };
    let refused = put(None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(images("up").await.is_empty(), "nothing created");
    let ok = put(Some(&csrf)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let made = images("up").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["status"], "active");
    assert_eq!(made[0]["size"], 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_and_rules_are_managed_through_the_network_api() {
    let c = start().await;
    let demo = c.login("demo").await;
    let mut b = Browser::new(&c);
    b.login(&c, "demo", "demo").await;
    let csrf = b.csrf().await;
    let made = b
        .post(
            "/dashboard/security-groups",
            &[("csrf", &csrf), ("name", "web"), ("description", "http in")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text);
    let groups = Resp::of(
        c.http
            .get(format!("{}/network/v2.0/security-groups?name=web", c.base))
            .header("X-Auth-Token", &demo.token),
    )
    .await;
    let id = groups.body["security_groups"][0]["id"]
        .as_str()
        .expect("the group exists")
        .to_string();
    let rules = format!("/dashboard/security-groups/{id}/rules");
    let rule = [
        ("csrf", csrf.as_str()),
        ("direction", "ingress"),
        ("protocol", "tcp"),
        ("port_min", "80"),
        ("port_max", "80"),
        ("remote_ip_prefix", "0.0.0.0/0"),
    ];
    assert_eq!(b.post(&rules, &rule).await.status, StatusCode::SEE_OTHER);
    let page = b.get("/dashboard/security-groups").await;
    assert!(
        page.text.contains("<td>80</td><td>0.0.0.0/0</td>"),
        "{}",
        page.text
    );
    // the network API's refusal is shown on the page, once
    let mut bad = rule;
    bad[3] = ("port_min", "90");
    assert_eq!(b.post(&rules, &bad).await.status, StatusCode::SEE_OTHER);
    let page = b.get("/dashboard/security-groups").await;
    assert!(
        page.text.contains(r#"class="alert" role="alert""#),
        "{}",
        page.text
    );
    let page = b.get("/dashboard/security-groups").await;
    assert!(!page.text.contains(r#"class="alert" role="alert""#));
    // deleting the group removes it
    let del = b
        .post(
            &format!("/dashboard/security-groups/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(del.status, StatusCode::SEE_OTHER);
    let gone = Resp::of(
        c.http
            .get(format!("{}/network/v2.0/security-groups/{id}", c.base))
            .header("X-Auth-Token", &demo.token),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_force_a_service_down_and_members_cannot() {
    let c = start().await;
    let admin = c.login("admin").await;
    let services = |u: crate::common::User| {
        let c = &c;
        async move {
            let r = c
                .get(&u, "/os-services?binary=nova-compute", Some("2.53"))
                .await;
            r.body["services"][0].clone()
        }
    };
    let svc = services(admin.clone()).await;
    let id = svc["id"].as_str().expect("service id").to_string();
    assert_eq!(svc["forced_down"], false);
    let target = format!("/dashboard/admin/services/{id}");
    let mut member = Browser::new(&c);
    member.login(&c, "demo", "demo").await;
    let csrf = member.csrf().await;
    let refused = member
        .post(&target, &[("csrf", &csrf), ("op", "down")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(services(admin.clone()).await["forced_down"], false);
    let mut b = Browser::new(&c);
    b.login(&c, "admin", "admin").await;
    let csrf = b.csrf().await;
    let down = b.post(&target, &[("csrf", &csrf), ("op", "down")]).await;
    assert_eq!(down.status, StatusCode::SEE_OTHER, "{}", down.text);
    assert_eq!(services(admin.clone()).await["forced_down"], true);
    let page = b.get("/dashboard/admin/services").await;
    assert!(page.text.contains("Clear forced down"), "{}", page.text);
    let up = b.post(&target, &[("csrf", &csrf), ("op", "up")]).await;
    assert_eq!(up.status, StatusCode::SEE_OTHER);
    assert_eq!(services(admin).await["forced_down"], false);
}

/// A session is a row of the store, not process memory: the browser is
/// still logged in after `rova serve` restarts (the new process reads the
/// session by its cookie, whose id the database only holds hashed), and
/// logging out there ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_restart() {
    let c = start().await;
    let mut b = Browser::new(&c);
    let r = b.login(&c, "demo", "demo").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let (_, id) = b
        .cookies
        .iter()
        .find(|(k, _)| k == "rova_session")
        .cloned()
        .expect("session cookie");
    // On SQLite (the file and its write-ahead log): the id is not there.
    for file in ["rova.sqlite", "rova.sqlite-wal"] {
        if let Ok(stored) = std::fs::read(c.dir.join(file)) {
            assert!(
                !stored.windows(id.len()).any(|w| w == id.as_bytes()),
                "the cookie's id is not stored as it is ({file})"
            );
        }
    }
    let c = c.restart().await;
    b.base = c.base.clone();
    let page = b.get("/dashboard/servers").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "still logged in: {}",
        page.text
    );
    assert!(page.text.contains("demo"), "{}", page.text);
    let csrf = hidden(&page.text, "csrf");
    let out = b.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    b.cookies.push(("rova_session".into(), id));
    let after = b.get("/dashboard/servers").await;
    assert_eq!(
        after.header("location").as_deref(),
        Some("/dashboard/login"),
        "the session ended at log-out"
    );
}
