//! The compute API v2.1 under `/compute`: version documents, the
//! microversion and token middleware, and the routes. Handlers parse the
//! request into typed values and call the compute service; views render.

mod action;
mod availability_zones;
mod consoles;
pub(crate) mod create;
mod diagnostics;
mod external_events;
mod extra_specs;
mod flavor_access;
mod flavors;
mod fleet;
pub use fleet::{all_services, Svc};
mod groups_quotas;
mod images;
mod interfaces;
mod keypairs;
mod limits;
mod os_snapshots;
mod os_volumes;
mod schema;
mod secgroups;
mod servers;
mod service_delete;
mod volume_attachments;

use crate::app::{App, PathProject};
use crate::http::{host_url, ApiError, Ctx, RequestId};
use crate::identity::api::KsError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rova_core::microversion::{Microversion, MAX, MIN};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub use crate::compute::views::Links;

pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let api = Router::new()
        .merge(servers::routes())
        .merge(flavors::routes())
        .merge(extra_specs::routes())
        .merge(keypairs::routes())
        .merge(limits::routes())
        .merge(availability_zones::routes())
        .merge(images::routes())
        .merge(consoles::routes())
        .merge(secgroups::routes())
        .merge(fleet::routes())
        .merge(interfaces::routes())
        .merge(volume_attachments::routes())
        .merge(os_volumes::routes())
        .merge(os_snapshots::routes())
        .merge(groups_quotas::routes())
        .merge(flavor_access::routes())
        .merge(diagnostics::routes())
        .merge(external_events::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app, compute_mw));
    Router::new()
        .route("/compute", get(versions))
        .route("/compute/", get(versions))
        .route("/compute/v2.1", get(version_doc))
        .route("/compute/v2.1/", get(version_doc))
        .nest("/compute/v2.1", api)
}

async fn not_found() -> ApiError {
    ApiError(Fault::not_found("The resource could not be found."))
}

fn v21(base: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": MAX.to_string(), "min_version": MIN.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")}],
    })
}

async fn versions(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    let v2 = json!({
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/compute/v2/")}],
    });
    axum::Json(json!({"versions": [v2, v21(&base)]})).into_response()
}

async fn version_doc(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    let mut v = v21(&base);
    v["links"] = json!([
        {"rel": "self", "href": format!("{base}/compute/v2.1/")},
        {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
    ]);
    v["media-types"] = json!([{"base": "application/json",
        "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    // The v2.1 document is itself a v2.1 API resource: it negotiates and
    // echoes the requested microversion.
    let version = match requested_version(&headers) {
        Ok(v) => v,
        Err(f) => {
            let mut resp = ApiError(f).into_response();
            version_headers(&mut resp, MIN);
            return resp;
        }
    };
    let mut resp = axum::Json(json!({"version": v})).into_response();
    version_headers(&mut resp, version);
    resp
}

fn version_headers(resp: &mut Response, v: Microversion) {
    let s = v.to_string();
    crate::http::set_header(resp, "openstack-api-version", &format!("compute {s}"));
    crate::http::set_header(resp, "x-openstack-nova-api-version", &s);
    crate::http::set_header(
        resp,
        "vary",
        "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    );
}

/// The microversion the request asks for. A header value that is not
/// visible ASCII is an invalid version string (400), as in Nova, not an
/// absent header.
fn requested_version(headers: &HeaderMap) -> Result<Microversion, Fault> {
    let text = |name| crate::http::header_text(headers, name);
    Microversion::from_headers(
        text("openstack-api-version").as_deref(),
        text("x-openstack-nova-api-version").as_deref(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|h| h.to_str().ok())
}

/// Negotiates the microversion, authenticates the token, checks a project
/// id in the path, and puts a [`Ctx`] in the request.
async fn compute_mw(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let version = match requested_version(headers) {
        Ok(v) => v,
        Err(f) => {
            let mut resp = ApiError(f).into_response();
            version_headers(&mut resp, MIN);
            return resp;
        }
    };
    let token = header(headers, "x-auth-token").map(str::to_string);
    let info = match token.map(|t| app.identity.validate(&t, chrono::Utc::now())) {
        Some(Ok(info)) => info,
        _ => {
            let mut resp = KsError(Fault::unauthorized(
                "The request you have made requires authentication.",
            ))
            .into_response();
            version_headers(&mut resp, version);
            return resp;
        }
    };
    if let Some(PathProject(p)) = req.extensions().get::<PathProject>() {
        if *p != info.project.id {
            let mut resp = ApiError(Fault::bad_request(format!(
                "Malformed request URL: URL's project_id '{p}' doesn't match Context's project_id '{}'",
                info.project.id
            )))
            .into_response();
            version_headers(&mut resp, version);
            return resp;
        }
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    tracing::Span::current().record("project_id", info.project.id.as_str());
    let ctx = Ctx {
        user_id: info.user.id.clone(),
        user_name: info.user.name.clone(),
        project_id: info.project.id.clone(),
        project_name: info.project.name.clone(),
        roles: info.roles.clone(),
        request_id,
        version,
    };
    let links = Links::new(
        &host_url(req.headers()),
        req.extensions().get::<PathProject>().map(|p| p.0.as_str()),
    );
    req.extensions_mut().insert(ctx);
    req.extensions_mut().insert(links);
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        resp = crate::http::json_status(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"badMethod": {"code": 405, "message": "The method specified is not allowed for this resource."}}),
        );
    }
    version_headers(&mut resp, version);
    resp
}

/// Nova's 400 for a bad query parameter value.
fn qerr(name: &str, v: &str, why: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for query parameters {name}. Value: {v}. {why}"
    ))
}

/// Parses a raw query string into ordered pairs.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Nova's `next` link for a paged collection: the request's query
/// parameters (a repeated one keeps its last value), sorted by name, with
/// `marker` set to the last item returned.
pub fn next_link(links: &Links, path: &str, params: &[(String, String)], marker: &str) -> Value {
    let mut ps: std::collections::BTreeMap<&str, &str> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ps.insert("marker", marker);
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(ps)
        .finish();
    json!([{"rel": "next", "href": format!("{}/{path}?{qs}", links.versioned)}])
}
