//! Glance v2 HTTP routes under `/image`: the versions document; images
//! (list with Glance's filters, sorting and marker paging, show, create,
//! JSON-patch update, delete); image data upload and download; tags, tasks,
//! members, (de)activation; and the `image`/`images` JSON schemas.
//!
//! The caller is authenticated by the [`Caller`] extractor (a missing or
//! invalid token is keystonemiddleware's JSON 401, as in front of Glance).
//! Other errors are webob's JSON error document `{"message", "code",
//! "title"}`, which is what Glance answers a client that accepts JSON.

use super::{Image, Images};
use crate::app::App;
use crate::http::{host_url, Ctx, RequestId};
use crate::identity::api::KsError;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use rova_core::model::iso_z;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Glance's `limit_param_default` and `api_limit_max`.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;
/// Glance's `image_property_quota` and `image_tag_quota`.
const PROPERTY_QUOTA: usize = 128;
const TAG_QUOTA: usize = 128;
/// Largest upload accepted (images here are simulated and small).
const MAX_UPLOAD: usize = 1 << 30;

const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];
const STATUSES: &[&str] = &[
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "pending_delete",
    "deactivated",
    "uploading",
    "importing",
];
/// Attributes Glance computes itself.
const READ_ONLY: &[&str] = &[
    "checksum",
    "created_at",
    "direct_url",
    "file",
    "locations",
    "os_hash_algo",
    "os_hash_value",
    "schema",
    "self",
    "size",
    "status",
    "stores",
    "updated_at",
    "virtual_size",
];
/// Attributes Glance reserves for itself.
const RESERVED: &[&str] = &["deleted", "deleted_at", "location"];
/// Keys accepted by `sort_key` / `sort`.
const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
    "visibility",
    "owner",
    "min_disk",
    "min_ram",
    "virtual_size",
];

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/", get(versions))
        .route("/image/versions", get(versions))
        .route("/image/v2", get(versions))
        .route("/image/v2/", get(versions))
        .route("/image/v2/images", get(list_images).post(create_image))
        .route(
            "/image/v2/images/{id}",
            get(show_image).patch(update_image).delete(delete_image),
        )
        .route("/image/v2/images/{id}/file", get(download).put(upload))
        .route("/image/v2/images/{id}/tasks", get(image_tasks))
        .route("/image/v2/images/{id}/members", get(image_members))
        .route(
            "/image/v2/images/{id}/tags/{tag}",
            put(add_tag).delete(remove_tag),
        )
        .route("/image/v2/images/{id}/actions/deactivate", post(deactivate))
        .route("/image/v2/images/{id}/actions/reactivate", post(reactivate))
        .route("/image/v2/schemas/image", get(schema_image))
        .route("/image/v2/schemas/images", get(schema_images))
        .route("/image/v2/{*rest}", any(not_found))
}

// ---- errors and authentication ----

/// A Glance error: status plus explanation, rendered as webob's JSON error.
#[derive(Debug)]
pub struct GlanceError(pub Fault);

impl From<Fault> for GlanceError {
    fn from(f: Fault) -> Self {
        GlanceError(f)
    }
}

impl IntoResponse for GlanceError {
    fn into_response(self) -> Response {
        let f = self.0;
        if f.code >= 500 {
            tracing::error!(code = f.code, message = %f.message, "image service error");
        }
        let status = StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let title = status.canonical_reason().unwrap_or("Error");
        let body = json!({
            "message": f.message,
            "code": format!("{} {title}", status.as_u16()),
            "title": title,
        });
        (status, axum::Json(body)).into_response()
    }
}

type GResult<T> = Result<T, GlanceError>;

fn gerr(code: u16, msg: impl Into<String>) -> GlanceError {
    GlanceError(Fault::new(code, msg))
}

fn no_image(id: &str) -> Fault {
    Fault::not_found(format!("No image found with ID {id}"))
}

fn not_authorized(action: &str) -> Fault {
    Fault::forbidden(format!(
        "You are not authorized to complete {action} action."
    ))
}

fn schema_error(reason: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!(
        "Provided object does not match schema 'image': {reason}"
    ))
}

/// Builds the request context from `X-Auth-Token`, as the compute API's
/// middleware does. Shared by the image and network APIs.
pub(crate) fn authenticate(app: &App, parts: &Parts) -> Result<Ctx, Fault> {
    let unauthorized = || Fault::unauthorized("The request you have made requires authentication.");
    let token = parts
        .headers
        .get("x-auth-token")
        .and_then(|h| h.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let info = app
        .identity
        .validate(token, chrono::Utc::now())
        .map_err(|_| unauthorized())?;
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Ok(Ctx {
        user_id: info.user.id.clone(),
        user_name: info.user.name.clone(),
        project_id: info.project.id.clone(),
        project_name: info.project.name.clone(),
        roles: info.roles.clone(),
        request_id,
        version: rova_core::microversion::MIN,
    })
}

/// The authenticated caller; rejects with keystonemiddleware's 401.
pub struct Caller(pub Ctx);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(app, parts)
            .map(Caller)
            .map_err(|f| KsError(f).into_response())
    }
}

async fn not_found(_caller: Caller) -> GlanceError {
    gerr(404, "The resource could not be found.")
}

// ---- versions ----

fn versions_doc(base: &str) -> Value {
    let href = format!("{base}/image/v2/");
    let mut list = vec![json!({"id": "v2.16", "status": "CURRENT",
        "links": [{"rel": "self", "href": href}]})];
    for minor in (0..16).rev() {
        list.push(json!({"id": format!("v2.{minor}"), "status": "SUPPORTED",
            "links": [{"rel": "self", "href": href}]}));
    }
    json!({ "versions": list })
}

async fn versions(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(versions_doc(&host_url(&headers))),
    )
        .into_response()
}

// ---- views ----

/// An image as Glance v2 renders it: the base attributes plus every extra
/// property as a top-level key.
pub fn image_json(img: &Image) -> Value {
    let mut m = Map::new();
    for (k, v) in &img.properties {
        m.insert(k.clone(), v.clone());
    }
    let base = json!({
        "id": img.id,
        "name": img.name,
        "status": img.status,
        "visibility": img.visibility,
        "owner": img.owner,
        "container_format": img.container_format,
        "disk_format": img.disk_format,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "protected": img.protected,
        "os_hidden": img.os_hidden,
        "tags": img.tags,
        "created_at": iso_z(&img.created_at),
        "updated_at": iso_z(&img.updated_at),
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(b) = base {
        m.extend(b);
    }
    Value::Object(m)
}

fn ok_json(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

// ---- list ----

/// A comparison operator in a Glance time filter (`created_at=gt:...`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Parsed `GET /v2/images` query.
#[derive(Debug, Default)]
struct ListQuery {
    limit: usize,
    marker: Option<String>,
    /// (key, descending)
    sort: Vec<(String, bool)>,
    /// Attribute filters: key -> accepted values (`in:` gives several).
    attrs: Vec<(String, Vec<String>)>,
    visibility: Option<String>,
    tags: Vec<String>,
    os_hidden: Option<bool>,
    protected: Option<bool>,
    size_min: Option<u64>,
    size_max: Option<u64>,
    times: Vec<(String, TimeOp, chrono::DateTime<chrono::Utc>)>,
    /// Extra-property filters.
    props: Vec<(String, String)>,
}

fn parse_bool_param(name: &str, v: &str) -> Result<bool, Fault> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(Fault::bad_request(format!(
            "Invalid value '{v}' for parameter '{name}'"
        ))),
    }
}

fn check_sort_key(k: &str) -> Result<(), Fault> {
    if SORT_KEYS.contains(&k) {
        Ok(())
    } else {
        Err(Fault::bad_request(format!(
            "Invalid sort key: {k}. It must be one of the following: {}.",
            SORT_KEYS.join(", ")
        )))
    }
}

fn parse_dir(d: &str) -> Result<bool, Fault> {
    match d {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(Fault::bad_request(format!("Invalid sort direction: {d}"))),
    }
}

fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, Fault> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let mut sort_keys: Vec<String> = Vec::new();
    let mut sort_dirs: Vec<String> = Vec::new();
    let mut new_sort: Option<String> = None;
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| Fault::bad_request("limit param must be an integer"))?;
                if n < 0 {
                    return Err(Fault::bad_request("limit param must be positive"));
                }
                q.limit = (n as usize).min(MAX_LIMIT);
            }
            "marker" => q.marker = Some(v.clone()),
            "sort_key" => sort_keys.extend(v.split(',').map(|s| s.trim().to_string())),
            "sort_dir" => sort_dirs.extend(v.split(',').map(|s| s.trim().to_string())),
            "sort" => new_sort = Some(v.clone()),
            "visibility" => {
                if v != "all" && !VISIBILITIES.contains(&v.as_str()) {
                    return Err(Fault::bad_request(format!("Invalid visibility value: {v}")));
                }
                q.visibility = Some(v.clone());
            }
            "tag" => q.tags.push(v.clone()),
            "os_hidden" => q.os_hidden = Some(parse_bool_param("os_hidden", v)?),
            "protected" => q.protected = Some(parse_bool_param("protected", v)?),
            "member_status" => {
                if !["accepted", "pending", "rejected", "all"].contains(&v.as_str()) {
                    return Err(Fault::bad_request(format!("Invalid status value: {v}")));
                }
            }
            "size_min" | "size_max" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| Fault::bad_request(format!("Invalid value for {k}: {v}")))?;
                if k == "size_min" {
                    q.size_min = Some(n);
                } else {
                    q.size_max = Some(n);
                }
            }
            "created_at" | "updated_at" => {
                let (op, val) = match v.split_once(':') {
                    Some((o, rest)) if ["eq", "neq", "gt", "gte", "lt", "lte"].contains(&o) => {
                        (o, rest)
                    }
                    _ => ("eq", v.as_str()),
                };
                let op = match op {
                    "neq" => TimeOp::Neq,
                    "gt" => TimeOp::Gt,
                    "gte" => TimeOp::Gte,
                    "lt" => TimeOp::Lt,
                    "lte" => TimeOp::Lte,
                    _ => TimeOp::Eq,
                };
                let t = chrono::DateTime::parse_from_rfc3339(val)
                    .map_err(|_| Fault::bad_request(format!("Invalid time format for {k}.")))?;
                q.times.push((k.clone(), op, t.with_timezone(&chrono::Utc)));
            }
            "id" | "name" | "status" | "owner" | "container_format" | "disk_format" => {
                let vals: Vec<String> = match v.strip_prefix("in:") {
                    Some(list) => list
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_string())
                        .collect(),
                    None => vec![v.clone()],
                };
                if k == "status" {
                    for s in &vals {
                        if !STATUSES.contains(&s.as_str()) {
                            return Err(Fault::bad_request(format!("Invalid status value: {s}")));
                        }
                    }
                }
                q.attrs.push((k.clone(), vals));
            }
            _ => q.props.push((k.clone(), v.clone())),
        }
    }
    if let Some(s) = new_sort {
        if !sort_keys.is_empty() || !sort_dirs.is_empty() {
            return Err(Fault::bad_request(
                "The sort and sort_key/sort_dir parameters cannot be used together.",
            ));
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
            check_sort_key(key)?;
            q.sort.push((key.to_string(), parse_dir(dir)?));
        }
    } else {
        if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
            return Err(Fault::bad_request(
                "Number of sort dirs does not match the number of sort keys",
            ));
        }
        let default_dir = match sort_dirs.first() {
            Some(d) => parse_dir(d)?,
            None => true,
        };
        for (i, key) in sort_keys.iter().enumerate() {
            check_sort_key(key)?;
            let desc = match sort_dirs.get(i) {
                Some(d) if sort_dirs.len() > 1 => parse_dir(d)?,
                _ => default_dir,
            };
            q.sort.push((key.clone(), desc));
        }
    }
    for tie in ["created_at", "id"] {
        if !q.sort.iter().any(|(k, _)| k == tie) {
            q.sort.push((tie.to_string(), true));
        }
    }
    Ok(q)
}

/// True when the image appears in a listing for this caller and
/// visibility filter. Without a filter Glance leaves out community images
/// the caller does not own (admins see everything).
fn listed_for(img: &Image, ctx_project: &str, is_admin: bool, visibility: Option<&str>) -> bool {
    if !Images::can_see(img, ctx_project, is_admin) {
        return false;
    }
    match visibility {
        None => is_admin || img.visibility != "community" || img.owner == ctx_project,
        Some("all") => true,
        Some(v) => img.visibility == v,
    }
}

fn attr_string(img: &Image, key: &str) -> Option<String> {
    match key {
        "id" => Some(img.id.clone()),
        "name" => img.name.clone(),
        "status" => Some(img.status.clone()),
        "owner" => Some(img.owner.clone()),
        "visibility" => Some(img.visibility.clone()),
        "container_format" => img.container_format.clone(),
        "disk_format" => img.disk_format.clone(),
        _ => None,
    }
}

fn prop_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies every filter except visibility and paging.
fn matches(img: &Image, q: &ListQuery) -> bool {
    for (k, vals) in &q.attrs {
        match attr_string(img, k) {
            Some(s) if vals.contains(&s) => {}
            _ => return false,
        }
    }
    if !q.tags.iter().all(|t| img.tags.contains(t)) {
        return false;
    }
    if img.os_hidden != q.os_hidden.unwrap_or(false) {
        return false;
    }
    if q.protected.is_some_and(|p| p != img.protected) {
        return false;
    }
    if let Some(min) = q.size_min {
        if img.size.is_none_or(|s| s < min) {
            return false;
        }
    }
    if let Some(max) = q.size_max {
        if img.size.is_none_or(|s| s > max) {
            return false;
        }
    }
    for (k, op, t) in &q.times {
        let v = if k == "created_at" {
            img.created_at
        } else {
            img.updated_at
        };
        let ok = match op {
            TimeOp::Eq => v == *t,
            TimeOp::Neq => v != *t,
            TimeOp::Gt => v > *t,
            TimeOp::Gte => v >= *t,
            TimeOp::Lt => v < *t,
            TimeOp::Lte => v <= *t,
        };
        if !ok {
            return false;
        }
    }
    q.props.iter().all(|(k, want)| {
        img.properties
            .get(k)
            .is_some_and(|v| prop_string(v) == *want)
    })
}

fn cmp_key(a: &Image, b: &Image, key: &str) -> Ordering {
    match key {
        "size" => a.size.cmp(&b.size),
        "virtual_size" => a.virtual_size.cmp(&b.virtual_size),
        "min_disk" => a.min_disk.cmp(&b.min_disk),
        "min_ram" => a.min_ram.cmp(&b.min_ram),
        "created_at" => a.created_at.cmp(&b.created_at),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        _ => attr_string(a, key).cmp(&attr_string(b, key)),
    }
}

fn cmp_images(a: &Image, b: &Image, sort: &[(String, bool)]) -> Ordering {
    for (key, desc) in sort {
        let o = cmp_key(a, b, key);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Filters, sorts and pages: returns the page and whether it was full
/// (Glance then offers a `next` link).
fn select_page(
    mut imgs: Vec<Arc<Image>>,
    q: &ListQuery,
    marker: Option<&Image>,
) -> (Vec<Arc<Image>>, bool) {
    imgs.retain(|i| matches(i, q));
    imgs.sort_by(|a, b| cmp_images(a, b, &q.sort));
    if let Some(m) = marker {
        imgs.retain(|i| cmp_images(i, m, &q.sort) == Ordering::Greater);
    }
    imgs.truncate(q.limit);
    let full = !imgs.is_empty() && imgs.len() == q.limit;
    (imgs, full)
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn list_images(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    RawQuery(raw): RawQuery,
) -> GResult<Response> {
    let pairs: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let q = parse_list_query(&pairs)?;
    let marker = match &q.marker {
        Some(m) => Some(
            app.images
                .visible(m, &ctx.project_id, ctx.is_admin())
                .ok_or_else(|| {
                    gerr(
                        400,
                        format!("Invalid marker. Image {m} could not be found."),
                    )
                })?,
        ),
        None => None,
    };
    let candidates = app.images.table.filter(|i| {
        i.status != "deleted"
            && listed_for(i, &ctx.project_id, ctx.is_admin(), q.visibility.as_deref())
    });
    let (page, full) = select_page(candidates, &q, marker.as_deref());
    let mut rest: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "marker").collect();
    let first = if rest.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{}", encode(&rest))
    };
    let mut body = json!({
        "images": page.iter().map(|i| image_json(i)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/images",
    });
    if full {
        if let Some(last) = page.last() {
            rest.push(("marker".into(), last.id.clone()));
            body["next"] = json!(format!("/v2/images?{}", encode(&rest)));
        }
    }
    Ok(ok_json(body))
}

async fn show_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = app
        .images
        .visible(&id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| no_image(&id))?;
    Ok(ok_json(image_json(&img)))
}

// ---- create and update ----

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn enum_or_null(key: &str, v: &Value, allowed: &[&str]) -> Result<Option<String>, Fault> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
        other => Err(schema_error(format!(
            "{other} is not one of {allowed:?}\n\nFailed validating 'enum' in schema['properties']['{key}']"
        ))),
    }
}

fn non_negative(key: &str, v: &Value) -> Result<u64, Fault> {
    v.as_u64().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'integer' or is less than the minimum of 0\n\nFailed validating in schema['properties']['{key}']"
        ))
    })
}

fn boolean(key: &str, v: &Value) -> Result<bool, Fault> {
    v.as_bool().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'boolean'\n\nFailed validating 'type' in schema['properties']['{key}']"
        ))
    })
}

fn tag_list(v: &Value) -> Result<Vec<String>, Fault> {
    let arr = v.as_array().ok_or_else(|| {
        schema_error(format!("{v} is not of type 'array'\n\nFailed validating 'type' in schema['properties']['tags']"))
    })?;
    let mut out: Vec<String> = Vec::new();
    for t in arr {
        let s = t.as_str().ok_or_else(|| {
            schema_error(format!("{t} is not of type 'string'\n\nFailed validating 'type' in schema['properties']['tags']['items']"))
        })?;
        if s.chars().count() > 255 {
            return Err(schema_error(format!("'{s}' is too long")));
        }
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    if out.len() > TAG_QUOTA {
        return Err(Fault::new(413, format!(
            "Maximum tag count exceeded: attempted to add {} tags, exceeding the limit of {TAG_QUOTA}",
            out.len()
        )));
    }
    Ok(out)
}

/// Is `key` one of the image's base attributes?
fn is_base(key: &str) -> bool {
    matches!(
        key,
        "id" | "name"
            | "visibility"
            | "owner"
            | "container_format"
            | "disk_format"
            | "min_disk"
            | "min_ram"
            | "protected"
            | "os_hidden"
            | "tags"
    ) || READ_ONLY.contains(&key)
}

/// Sets one base attribute after validating it. `creating` allows `id`.
fn set_base(img: &mut Image, ctx: &Ctx, key: &str, v: &Value, creating: bool) -> Result<(), Fault> {
    match key {
        "id" if creating => {
            let s = v.as_str().filter(|s| is_uuid(s)).ok_or_else(|| {
                schema_error(format!("{v} does not match '^([0-9a-fA-F]){{8}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{12}}$'"))
            })?;
            img.id = s.to_ascii_lowercase();
        }
        "name" => {
            img.name = match v {
                Value::Null => None,
                Value::String(s) if s.chars().count() <= 255 => Some(s.clone()),
                other => {
                    return Err(schema_error(format!(
                        "{other} is not valid under any of the given schemas\n\nFailed validating 'oneOf' in schema['properties']['name']"
                    )))
                }
            }
        }
        "visibility" => {
            let vis = enum_or_null(key, v, VISIBILITIES)?
                .ok_or_else(|| schema_error("None is not one of ['community', 'public', 'private', 'shared']"))?;
            if vis == "public" && vis != img.visibility && !ctx.is_admin() {
                return Err(not_authorized("publicize_image"));
            }
            img.visibility = vis;
        }
        "owner" => {
            let owner = match v {
                Value::String(s) if s.chars().count() <= 255 => s.clone(),
                Value::Null => String::new(),
                other => return Err(schema_error(format!("{other} is not of type 'string'"))),
            };
            if owner != img.owner && !ctx.is_admin() {
                return Err(Fault::forbidden(if creating {
                    format!("You are not permitted to create images owned by '{owner}'.")
                } else {
                    "You are not permitted to modify 'owner' on this image.".to_string()
                }));
            }
            img.owner = owner;
        }
        "container_format" | "disk_format" => {
            let allowed = if key == "container_format" { CONTAINER_FORMATS } else { DISK_FORMATS };
            let val = enum_or_null(key, v, allowed)?;
            if !creating && img.status != "queued" {
                let cur = if key == "container_format" { &img.container_format } else { &img.disk_format };
                if *cur != val {
                    return Err(Fault::forbidden(format!(
                        "Attribute {key} can be only replaced for a queued image."
                    )));
                }
            }
            if key == "container_format" {
                img.container_format = val;
            } else {
                img.disk_format = val;
            }
        }
        "min_disk" => img.min_disk = non_negative(key, v)?,
        "min_ram" => img.min_ram = non_negative(key, v)?,
        "protected" => img.protected = boolean(key, v)?,
        "os_hidden" => img.os_hidden = boolean(key, v)?,
        "tags" => img.tags = tag_list(v)?,
        _ => return Err(Fault::forbidden(format!("Attribute '{key}' is read-only."))),
    }
    Ok(())
}

fn set_extra(img: &mut Image, key: &str, v: &Value) -> Result<(), Fault> {
    if key.is_empty() || key.chars().count() > 255 {
        return Err(schema_error(format!(
            "'{key}' is not a valid property name"
        )));
    }
    let s = v.as_str().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'string'\n\nFailed validating 'type' in schema['additionalProperties']"
        ))
    })?;
    if s.chars().count() > 65535 {
        return Err(schema_error(format!("value of '{key}' is too long")));
    }
    img.properties
        .insert(key.to_string(), Value::String(s.to_string()));
    if img.properties.len() > PROPERTY_QUOTA {
        return Err(Fault::new(
            413,
            format!(
                "Attempted to add {} properties, exceeding the limit of {PROPERTY_QUOTA}",
                img.properties.len()
            ),
        ));
    }
    Ok(())
}

fn forbid_reserved(key: &str) -> Result<(), Fault> {
    if RESERVED.contains(&key) {
        return Err(Fault::forbidden(format!("Attribute '{key}' is reserved.")));
    }
    if READ_ONLY.contains(&key) {
        return Err(Fault::forbidden(format!("Attribute '{key}' is read-only.")));
    }
    Ok(())
}

/// Builds a new image from a `POST /v2/images` body.
fn image_from_body(
    body: &Map<String, Value>,
    ctx: &Ctx,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Image, Fault> {
    let mut img = Image {
        id: uuid::Uuid::new_v4().to_string(),
        name: None,
        status: "queued".into(),
        visibility: "shared".into(),
        owner: ctx.project_id.clone(),
        container_format: None,
        disk_format: None,
        size: None,
        virtual_size: None,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        min_disk: 0,
        min_ram: 0,
        protected: false,
        os_hidden: false,
        tags: vec![],
        properties: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    for (k, v) in body {
        forbid_reserved(k)?;
        if is_base(k) {
            set_base(&mut img, ctx, k, v, true)?;
        } else {
            set_extra(&mut img, k, v)?;
        }
    }
    Ok(img)
}

fn json_body(body: &Bytes) -> Result<Value, Fault> {
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed JSON in request body."))
}

async fn create_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    if !ctx.is_member() {
        return Err(not_authorized("add_image").into());
    }
    let v = json_body(&body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| gerr(400, "Request body must be a JSON object."))?;
    let img = image_from_body(obj, &ctx, app.clock.now())?;
    let id = img.id.clone();
    let created = app
        .images
        .table
        .insert_new(
            &id,
            img,
            Fault::conflict(format!("Image with identifier {id} already exists!")),
        )
        .await?;
    let mut resp = (StatusCode::CREATED, axum::Json(image_json(&created))).into_response();
    crate::http::set_header(
        &mut resp,
        "location",
        &format!("{}/image/v2/images/{id}", host_url(&headers)),
    );
    Ok(resp)
}

/// One JSON-patch operation.
#[derive(Debug, Clone, PartialEq)]
enum PatchOp {
    Add(String, Value),
    Replace(String, Value),
    Remove(String),
}

/// Decodes a JSON pointer naming a top-level attribute (`/name`,
/// `/hw_rescue_bus`; `~1` and `~0` escapes).
fn pointer_key(path: &str) -> Result<String, Fault> {
    let rest = path.strip_prefix('/').ok_or_else(|| {
        Fault::bad_request(format!("Pointer `{path}` does not start with \"/\"."))
    })?;
    if rest.is_empty() || rest.contains('/') {
        return Err(Fault::bad_request(format!(
            "Invalid JSON pointer for this resource: '{path}'"
        )));
    }
    if rest.contains('~')
        && !rest
            .replace("~0", "")
            .replace("~1", "")
            .chars()
            .all(|c| c != '~')
    {
        return Err(Fault::bad_request(format!(
            "Pointer `{path}` contains \"~\" not part of a recognized escape sequence."
        )));
    }
    Ok(rest.replace("~1", "/").replace("~0", "~"))
}

/// Parses a PATCH body in the v2.1 (`{"op", "path", "value"}`) or the
/// legacy v2.0 (`{"replace": "/name", "value"}`) media type.
fn parse_patch(body: &Value, v21: bool) -> Result<Vec<PatchOp>, Fault> {
    let arr = body.as_array().ok_or_else(|| {
        Fault::bad_request("Request body must be a JSON array of operation objects.")
    })?;
    let mut out = Vec::new();
    for raw in arr {
        let obj = raw
            .as_object()
            .ok_or_else(|| Fault::bad_request("Operations must be JSON objects."))?;
        let (op, path) = if v21 {
            let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| {
                Fault::bad_request(
                    "Operation objects must contain exactly one member named \"op\".",
                )
            })?;
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::bad_request("Unable to find `path` in JSON Schema change. It must be one of the following: add, remove, replace."))?;
            (op.to_string(), path.to_string())
        } else {
            let found: Vec<(&String, &Value)> = obj
                .iter()
                .filter(|(k, _)| ["add", "replace", "remove"].contains(&k.as_str()))
                .collect();
            match found.as_slice() {
                [(op, Value::String(path))] => (op.to_string(), path.clone()),
                _ => {
                    return Err(Fault::bad_request(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    ))
                }
            }
        };
        let key = pointer_key(&path)?;
        let value = || {
            obj.get("value").cloned().ok_or_else(|| {
                Fault::bad_request(
                    "Operation objects must contain exactly one member named \"value\".",
                )
            })
        };
        out.push(match op.as_str() {
            "add" => PatchOp::Add(key, value()?),
            "replace" => PatchOp::Replace(key, value()?),
            "remove" => PatchOp::Remove(key),
            other => {
                return Err(Fault::bad_request(format!(
                    "Invalid operation: `{other}`: Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace."
                )))
            }
        });
    }
    Ok(out)
}

/// Applies patch operations to an image the way Glance's controller does.
fn apply_patch(img: &mut Image, ctx: &Ctx, ops: &[PatchOp]) -> Result<(), Fault> {
    for op in ops {
        match op {
            PatchOp::Add(k, v) | PatchOp::Replace(k, v) => {
                forbid_reserved(k)?;
                if k == "id" {
                    return Err(Fault::forbidden("Attribute 'id' is read-only."));
                }
                if is_base(k) {
                    set_base(img, ctx, k, v, false)?;
                } else if matches!(op, PatchOp::Replace(..)) && !img.properties.contains_key(k) {
                    return Err(Fault::conflict(format!("Property {k} does not exist.")));
                } else {
                    set_extra(img, k, v)?;
                }
            }
            PatchOp::Remove(k) => {
                forbid_reserved(k)?;
                if is_base(k) {
                    return Err(Fault::forbidden(format!(
                        "Property {k} may not be removed."
                    )));
                }
                if img.properties.remove(k).is_none() {
                    return Err(Fault::conflict(format!("Property {k} does not exist.")));
                }
            }
        }
    }
    Ok(())
}

/// The caller may change the image (owner's members, or admin).
fn may_modify(img: &Image, ctx: &Ctx) -> bool {
    ctx.is_admin() || (ctx.is_member() && img.owner == ctx.project_id)
}

fn visible_or_404(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Image>, Fault> {
    app.images
        .visible(id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| no_image(id))
}

async fn update_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let v21 = match ct.as_str() {
        "application/openstack-images-v2.1-json-patch" => true,
        "application/openstack-images-v2.0-json-patch" => false,
        _ => {
            let mut resp = GlanceError(Fault::new(415, format!("Unsupported Content-Type {ct}")))
                .into_response();
            crate::http::set_header(
                &mut resp,
                "accept-patch",
                "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch",
            );
            return Ok(resp);
        }
    };
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    let ops = parse_patch(&json_body(&body)?, v21)?;
    let now = app.clock.now();
    let (img, _) = app
        .images
        .table
        .update(
            &id,
            || no_image(&id),
            |img| {
                apply_patch(img, &ctx, &ops)?;
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(ok_json(image_json(&img)))
}

async fn delete_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("delete_image").into());
    }
    if img.protected {
        return Err(gerr(
            403,
            format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    app.images.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- data ----

async fn upload(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> GResult<Response> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
    {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !media.is_empty() && media != "application/octet-stream" {
            return Err(gerr(415, format!("Content type '{media}' is not supported for image data; use application/octet-stream")));
        }
    }
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("upload_image").into());
    }
    // Claim the upload: queued -> saving, so two uploads cannot race.
    let now = app.clock.now();
    app.images
        .table
        .update(
            &id,
            || no_image(&id),
            |img| {
                if img.status != "queued" {
                    return Err(Fault::conflict(format!(
                        "Image status transition from {} to saving is not allowed",
                        img.status
                    )));
                }
                let mut missing = Vec::new();
                if img.disk_format.is_none() {
                    missing.push("disk_format");
                }
                if img.container_format.is_none() {
                    missing.push("container_format");
                }
                match missing.as_slice() {
                    [] => {}
                    [one] => {
                        return Err(Fault::bad_request(format!(
                            "Property {one} must be set prior to saving data."
                        )))
                    }
                    many => {
                        return Err(Fault::bad_request(format!(
                            "Properties {} must be set prior to saving data.",
                            many.join(", ")
                        )))
                    }
                }
                img.status = "saving".into();
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    let bytes = match axum::body::to_bytes(body, MAX_UPLOAD).await {
        Ok(b) => b,
        Err(e) => {
            let _ = set_status(&app, &id, "queued").await;
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_big {
                gerr(
                    413,
                    format!("Image exceeds the storage quota: the limit is {MAX_UPLOAD} bytes."),
                )
            } else {
                gerr(400, format!("Error reading image data: {e}"))
            });
        }
    };
    let mut scratch = (*img).clone();
    let app2 = app.clone();
    let written = tokio::task::spawn_blocking(move || {
        app2.images
            .write_bytes(&mut scratch, &bytes)
            .map(|()| scratch)
    })
    .await
    .map_err(|e| Fault::internal(format!("image upload task failed: {e}")));
    let filled = match written {
        Ok(Ok(i)) => i,
        Ok(Err(f)) | Err(f) => {
            let _ = set_status(&app, &id, "queued").await;
            return Err(f.into());
        }
    };
    let now = app.clock.now();
    let res = app
        .images
        .table
        .update(
            &id,
            || no_image(&id),
            |img| {
                img.size = filled.size;
                img.virtual_size = filled.virtual_size;
                img.checksum = filled.checksum.clone();
                img.os_hash_algo = filled.os_hash_algo.clone();
                img.os_hash_value = filled.os_hash_value.clone();
                img.status = "active".into();
                img.updated_at = now;
                Ok(())
            },
        )
        .await;
    match res {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(f) if f.code == 404 => {
            let _ = std::fs::remove_file(app.images.file_path(&id));
            Err(gerr(410, format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            )))
        }
        Err(f) => Err(f.into()),
    }
}

async fn set_status(app: &App, id: &str, status: &str) -> Result<(), Fault> {
    app.images
        .table
        .update(
            id,
            || no_image(id),
            |img| {
                img.status = status.to_string();
                Ok(())
            },
        )
        .await
        .map(|_| ())
}

async fn download(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if img.status == "deactivated" && !ctx.is_admin() {
        return Err(gerr(
            403,
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    if img.size.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let data = match tokio::fs::read(app.images.file_path(&id)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => return Err(gerr(500, format!("reading image data: {e}"))),
    };
    let mut resp = (StatusCode::OK, data).into_response();
    crate::http::set_header(&mut resp, "content-type", "application/octet-stream");
    if let Some(md5) = &img.checksum {
        crate::http::set_header(&mut resp, "content-md5", md5);
    }
    Ok(resp)
}

// ---- tags, tasks, members, actions ----

async fn add_tag(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    if tag.chars().count() > 255 {
        return Err(gerr(
            400,
            format!("Tag '{tag}' is too long (maximum 255 characters)."),
        ));
    }
    let now = app.clock.now();
    app.images
        .table
        .update(
            &id,
            || no_image(&id),
            |img| {
                if !img.tags.contains(&tag) {
                    if img.tags.len() >= TAG_QUOTA {
                        return Err(Fault::new(
                            413,
                            format!("Maximum tag count exceeded: the limit is {TAG_QUOTA}"),
                        ));
                    }
                    img.tags.push(tag.clone());
                    img.updated_at = now;
                }
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_tag(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    let now = app.clock.now();
    app.images
        .table
        .update(
            &id,
            || no_image(&id),
            |img| {
                let before = img.tags.len();
                img.tags.retain(|t| *t != tag);
                if img.tags.len() == before {
                    return Err(Fault::not_found(format!("Tag {tag} not found")));
                }
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn image_tasks(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    visible_or_404(&app, &ctx, &id)?;
    Ok(ok_json(json!({"tasks": []})))
}

async fn image_members(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(gerr(403, "Only shared images have members."));
    }
    Ok(ok_json(
        json!({"members": [], "schema": "/v2/schemas/members"}),
    ))
}

async fn change_activation(app: &App, ctx: &Ctx, id: &str, deactivate: bool) -> GResult<Response> {
    let action = if deactivate {
        "deactivate"
    } else {
        "reactivate"
    };
    visible_or_404(app, ctx, id)?;
    if !ctx.is_admin() {
        return Err(not_authorized(action).into());
    }
    let now = app.clock.now();
    app.images
        .table
        .update(
            id,
            || no_image(id),
            |img| {
                match img.status.as_str() {
                    "active" | "deactivated" => {}
                    other => {
                        return Err(Fault::bad_request(format!(
                            "Not allowed to {action} image in status '{other}'"
                        )))
                    }
                }
                img.status = if deactivate { "deactivated" } else { "active" }.into();
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn deactivate(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    change_activation(&app, &ctx, &id, true).await
}

async fn reactivate(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    change_activation(&app, &ctx, &id, false).await
}

// ---- schemas ----

fn image_schema() -> Value {
    let nullable_str = |desc: &str, max: u32| json!({"type": ["null", "string"], "maxLength": max, "description": desc});
    let ro_str = |desc: &str| json!({"type": "string", "readOnly": true, "description": desc});
    let ro_nullable =
        |ty: &str, desc: &str| json!({"type": ["null", ty], "readOnly": true, "description": desc});
    json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": nullable_str("Descriptive name for the image", 255),
            "status": {"type": "string", "readOnly": true, "description": "Status of the image", "enum": STATUSES},
            "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": VISIBILITIES},
            "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
            "checksum": ro_nullable("string", "md5 hash of image contents."),
            "os_hash_algo": ro_nullable("string", "Algorithm to calculate the os_hash_value"),
            "os_hash_value": ro_nullable("string", "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"),
            "owner": nullable_str("Owner of the image", 255),
            "size": ro_nullable("integer", "Size of image file in bytes"),
            "virtual_size": ro_nullable("integer", "Virtual size of image in bytes"),
            "container_format": {"type": ["null", "string"], "description": "Format of the container",
                "enum": CONTAINER_FORMATS.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>()},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk",
                "enum": DISK_FORMATS.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>()},
            "created_at": ro_str("Date and time of image registration"),
            "updated_at": ro_str("Date and time of the last image modification"),
            "tags": {"type": "array", "description": "List of strings related to the image",
                "items": {"type": "string", "maxLength": 255}},
            "direct_url": ro_str("URL to access the image file kept in external store"),
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": ro_str("An image self url"),
            "file": ro_str("An image file url"),
            "schema": ro_str("An image schema url"),
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                "items": {"type": "object"}},
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

async fn schema_image(_caller: Caller) -> Response {
    ok_json(image_schema())
}

async fn schema_images(_caller: Caller) -> Response {
    ok_json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx(project: &str, roles: &[&str]) -> Ctx {
        Ctx {
            user_id: "u".into(),
            user_name: "u".into(),
            project_id: project.into(),
            project_name: project.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            request_id: String::new(),
            version: rova_core::microversion::MIN,
        }
    }

    fn img(id: &str, owner: &str, vis: &str, secs: i64) -> Arc<Image> {
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .unwrap_or_default();
        let mut props = BTreeMap::new();
        props.insert("hw_rescue_bus".to_string(), json!("scsi"));
        Arc::new(Image {
            id: id.into(),
            name: Some(format!("n-{id}")),
            status: "active".into(),
            visibility: vis.into(),
            owner: owner.into(),
            container_format: Some("bare".into()),
            disk_format: Some("qcow2".into()),
            size: Some(secs as u64),
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: vec!["t1".into()],
            properties: props,
            created_at: t,
            updated_at: t,
        })
    }

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn default_listing_hides_foreign_community_images() {
        let c = img("c", "other", "community", 1);
        let p = img("p", "other", "private", 2);
        let own = img("o", "me", "community", 3);
        assert!(!listed_for(&c, "me", false, None));
        assert!(listed_for(&c, "me", false, Some("community")));
        assert!(listed_for(&c, "me", false, Some("all")));
        assert!(!listed_for(&p, "me", false, Some("all")));
        assert!(listed_for(&p, "me", true, None));
        assert!(listed_for(&own, "me", false, None));
        assert!(!listed_for(&own, "me", false, Some("public")));
    }

    #[test]
    fn filters_sorting_and_paging() {
        let imgs = vec![
            img("a", "me", "public", 1),
            img("b", "me", "public", 2),
            img("c", "me", "public", 3),
        ];
        let q = parse_list_query(&pairs("limit=2")).expect("query");
        let (page, full) = select_page(imgs.clone(), &q, None);
        assert_eq!(
            page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["c", "b"]
        );
        assert!(full);
        let (page, full) = select_page(imgs.clone(), &q, Some(&imgs[1]));
        assert_eq!(
            page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert!(!full);
        let q = parse_list_query(&pairs("sort=name:asc")).expect("query");
        let (page, _) = select_page(imgs.clone(), &q, None);
        assert_eq!(page[0].id, "a");
        let q =
            parse_list_query(&pairs("name=in:n-a,n-c&hw_rescue_bus=scsi&tag=t1")).expect("query");
        assert_eq!(select_page(imgs.clone(), &q, None).0.len(), 2);
        let q = parse_list_query(&pairs("hw_rescue_bus=virtio")).expect("query");
        assert!(select_page(imgs.clone(), &q, None).0.is_empty());
        let q = parse_list_query(&pairs("size_min=2&size_max=2")).expect("query");
        assert_eq!(select_page(imgs, &q, None).0.len(), 1);
        assert!(parse_list_query(&pairs("limit=-1")).is_err());
        assert!(parse_list_query(&pairs("sort_key=bogus")).is_err());
        assert!(parse_list_query(&pairs("sort_dir=sideways")).is_err());
        assert!(parse_list_query(&pairs("status=nope")).is_err());
        assert!(parse_list_query(&pairs("sort=name&sort_key=id")).is_err());
    }

    #[test]
    fn create_body_rules() {
        let member = ctx("me", &["member", "reader"]);
        let now = chrono::Utc::now();
        let body =
            json!({"name": "x", "disk_format": "qcow2", "hw_disk_bus": "scsi", "tags": ["a", "a"]});
        let i = image_from_body(body.as_object().expect("obj"), &member, now).expect("valid");
        assert_eq!(i.visibility, "shared");
        assert_eq!(i.tags, vec!["a".to_string()]);
        assert_eq!(i.properties.get("hw_disk_bus"), Some(&json!("scsi")));
        let bad = |v: Value| {
            image_from_body(v.as_object().expect("obj"), &member, now)
                .map(|_| ())
                .unwrap_err()
                .code
        };
        assert_eq!(bad(json!({"status": "active"})), 403);
        assert_eq!(bad(json!({"deleted": true})), 403);
        assert_eq!(bad(json!({"visibility": "public"})), 403);
        assert_eq!(bad(json!({"disk_format": "floppy"})), 400);
        assert_eq!(bad(json!({"min_ram": -1})), 400);
        assert_eq!(bad(json!({"extra": 5})), 400);
        assert_eq!(bad(json!({"id": "not-a-uuid"})), 400);
        assert_eq!(bad(json!({"owner": "someone-else"})), 403);
        let admin = ctx("adm", &["admin", "member", "reader"]);
        assert!(image_from_body(
            json!({"visibility": "public"}).as_object().expect("obj"),
            &admin,
            now
        )
        .is_ok());
    }

    #[test]
    fn patch_semantics() {
        let member = ctx("me", &["member"]);
        let mut i = (*img("a", "me", "private", 1)).clone();
        let ops = parse_patch(
            &json!([
                {"op": "replace", "path": "/name", "value": "new"},
                {"op": "add", "path": "/hw_rescue_device", "value": "disk"},
                {"op": "remove", "path": "/hw_rescue_bus"},
                {"op": "replace", "path": "/min_ram", "value": 512},
            ]),
            true,
        )
        .expect("ops");
        apply_patch(&mut i, &member, &ops).expect("applies");
        assert_eq!(i.name.as_deref(), Some("new"));
        assert_eq!(i.min_ram, 512);
        assert!(i.properties.contains_key("hw_rescue_device"));
        assert!(!i.properties.contains_key("hw_rescue_bus"));
        let code = |ops: Value, v21: bool| {
            let mut j = i.clone();
            parse_patch(&ops, v21)
                .and_then(|o| apply_patch(&mut j, &member, &o))
                .map(|_| ())
                .unwrap_err()
                .code
        };
        assert_eq!(
            code(
                json!([{"op": "replace", "path": "/nope", "value": "x"}]),
                true
            ),
            409
        );
        assert_eq!(code(json!([{"op": "remove", "path": "/nope"}]), true), 409);
        assert_eq!(code(json!([{"op": "remove", "path": "/name"}]), true), 403);
        assert_eq!(
            code(
                json!([{"op": "replace", "path": "/status", "value": "active"}]),
                true
            ),
            403
        );
        assert_eq!(
            code(
                json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
                true
            ),
            403
        );
        assert_eq!(code(json!([{"op": "move", "path": "/name"}]), true), 400);
        assert_eq!(code(json!({"op": "add"}), true), 400);
        assert_eq!(
            code(
                json!([{"replace": "/visibility", "value": "public"}]),
                false
            ),
            403
        );
        assert_eq!(pointer_key("/a~1b").expect("key"), "a/b");
        assert!(pointer_key("name").is_err());
        assert!(pointer_key("/a/b").is_err());
    }
}
