//! The web dashboard at `/dashboard` (and `/`, which redirects to it): a
//! server-rendered client of Rova's own APIs in the same process. Every
//! page calls the API router in process (`client`) with the session's
//! Keystone token, so the pages get exactly the API's policies, 404s,
//! 403s and validation messages. This module owns the routes; sessions
//! and CSRF are in `session`, the page layout and escaping in `html`.

mod admin;
mod client;
mod html;
mod images;
mod launch;
mod resources;
mod secgroups;
mod server_page;
mod servers;
mod session;

use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use std::sync::Arc;

pub use session::Dash;

/// A dashboard handler's answer: a page, or the page that stands in for
/// it (a login redirect, a 403/404 page).
pub type Out = Result<Response, Response>;

/// The dashboard's routes, mounted beside the APIs (after their edge
/// guard, which would turn these HTML error pages into JSON).
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let dash = Arc::new(Dash::new(app));
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route(
            "/dashboard",
            get(|| async { Redirect::to("/dashboard/servers") }),
        )
        .route(
            "/dashboard/",
            get(|| async { Redirect::to("/dashboard/servers") }),
        )
        .route("/dashboard/static/style.css", get(style))
        .route("/dashboard/static/live.js", get(script))
        .route("/dashboard/static/serial.js", get(serial_script))
        .route("/dashboard/static/upload.js", get(upload_script))
        .route(
            "/dashboard/login",
            get(session::login_form).post(session::login),
        )
        .route("/dashboard/logout", post(session::logout))
        .route(
            "/dashboard/project",
            get(session::project_page).post(session::switch_project),
        )
        .route("/dashboard/servers", get(servers::list))
        .route("/dashboard/servers/rows", get(servers::rows))
        .route(
            "/dashboard/servers/new",
            get(launch::form).post(launch::submit),
        )
        .route("/dashboard/servers/{id}", get(server_page::show))
        .route(
            "/dashboard/servers/{id}/part/{part}",
            get(server_page::part),
        )
        .route("/dashboard/servers/{id}/action", post(server_page::action))
        .route(
            "/dashboard/servers/{id}/console",
            post(server_page::console),
        )
        .route("/dashboard/servers/{id}/serial", post(server_page::serial))
        .route("/dashboard/admin/servers", get(servers::admin_list))
        .route("/dashboard/admin/servers/rows", get(servers::admin_rows))
        .route("/dashboard/admin/hypervisors", get(admin::hypervisors))
        .route("/dashboard/admin/services", get(admin::services))
        .route(
            "/dashboard/admin/services/{id}",
            post(admin::service_update),
        )
        .route("/dashboard/admin/migrations", get(admin::migrations))
        .route("/dashboard/admin/flavors", get(admin::flavors))
        .route(
            "/dashboard/keypairs",
            get(resources::keypairs).post(resources::keypair_create),
        )
        .route(
            "/dashboard/keypairs/{name}/delete",
            post(resources::keypair_delete),
        )
        .route("/dashboard/images", get(images::images))
        .route(
            "/dashboard/images/upload",
            put(images::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/dashboard/images/{id}/delete", post(images::image_delete))
        .route("/dashboard/networks", get(resources::networks))
        .route("/dashboard/floating-ips", get(resources::floating_ips))
        .route(
            "/dashboard/security-groups",
            get(secgroups::list).post(secgroups::create),
        )
        .route(
            "/dashboard/security-groups/{id}/delete",
            post(secgroups::delete),
        )
        .route(
            "/dashboard/security-groups/{id}/rules",
            post(secgroups::add_rule),
        )
        .route(
            "/dashboard/security-group-rules/{id}/delete",
            post(secgroups::delete_rule),
        )
        .route("/dashboard/quotas", get(resources::quotas))
        .route("/dashboard/api-access", get(resources::api_access))
        .route("/dashboard/{*rest}", get(not_found).post(not_found))
        .layer(Extension(dash))
}

/// A posted delete form: DELETE `api_path` with the session's token, then
/// back to `back`, or the page for the API's refusal.
async fn delete_then(
    dash: &Dash,
    headers: &axum::http::HeaderMap,
    body: &axum::body::Bytes,
    api_path: String,
    back: &str,
) -> Out {
    let (s, _) = dash.posted(headers, body)?;
    let r = dash
        .call(
            &s,
            client::Call::new(axum::http::Method::DELETE, api_path, None),
        )
        .await;
    if r.ok() {
        Ok(session::see_other(back))
    } else {
        Err(dash.failure(&s, &r))
    }
}

/// Any other dashboard path: the 404 page.
async fn not_found(
    Extension(dash): Extension<Arc<Dash>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let session = dash.current(&headers);
    html::error_page(
        session.as_ref(),
        StatusCode::NOT_FOUND,
        "This page does not exist.",
    )
}

async fn style() -> Response {
    static_file("text/css; charset=utf-8", include_str!("style.css"))
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("live.js"))
}

async fn upload_script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("upload.js"))
}

async fn serial_script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("serial.js"))
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}
