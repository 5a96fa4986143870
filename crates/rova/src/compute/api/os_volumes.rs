//! Nova's volume proxy (`os-volumes`, 2.1–2.35, 404 from 2.36): list,
//! detail, show, create (blank or from a snapshot) and delete of the
//! caller's volumes, answered from the block storage service in Nova's
//! camelCase view.

use crate::app::App;
use crate::compute::secgroups::proxy_available;
use crate::http::{empty, parse_json, ApiResult, Ctx};
use crate::volume::{NewVolume, Volume};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/os-volumes", get(index).post(create))
        .route("/os-volumes/detail", get(index))
        .route("/os-volumes/{id}", get(show).delete(delete))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// Nova's `_translate_volume_summary_view` (the detail view is the same).
fn view(v: &Volume) -> Value {
    let attached: Vec<Value> = v
        .attachments
        .iter()
        .filter(|a| a.device.is_some())
        .map(|a| json!({"id": v.id, "volumeId": v.id, "serverId": a.server_id, "device": a.device}))
        .collect();
    json!({
        "id": v.id,
        "status": v.status,
        "size": v.size,
        "availabilityZone": v.availability_zone,
        "createdAt": v.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "attachments": if attached.is_empty() { vec![json!({})] } else { attached },
        "displayName": v.name,
        "displayDescription": v.description,
        "volumeType": crate::volume::DEFAULT_TYPE_ID,
        "snapshotId": v.snapshot_id,
        "metadata": v.metadata,
    })
}

fn visible(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Volume>, Fault> {
    app.volumes.visible(id, &ctx.project_id, ctx.is_admin())
}

/// `{"<key>": {...}}`, the body a proxy's create sends: the inner value
/// and its object, with Nova's schema refusals.
pub(super) fn wrapped<'a>(
    body: &'a Value,
    key: &str,
) -> Result<(&'a Value, &'a serde_json::Map<String, Value>), Fault> {
    let o = body
        .as_object()
        .ok_or_else(|| Fault::bad_request(format!("{body} is not of type 'object'")))?;
    let v = o
        .get(key)
        .ok_or_else(|| Fault::bad_request(format!("'{key}' is a required property")))?;
    let m = v
        .as_object()
        .ok_or_else(|| fields::invalid(key, v, "is not of type 'object'"))?;
    Ok((v, m))
}

/// Nova's `common.limited`: `offset` and `limit` (0 or absent: 1,000),
/// both integers >= 0.
pub(super) fn limited(q: Option<&str>) -> Result<(usize, usize), Fault> {
    let mut offset = 0usize;
    let mut limit = 1000usize;
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        if k != "offset" && k != "limit" {
            continue;
        }
        let n: i64 = v.trim().parse().map_err(|_| {
            Fault::bad_request(format!("Invalid input received: {k} must be an integer"))
        })?;
        if n < 0 {
            return Err(Fault::bad_request(format!(
                "Invalid input received: {k} must be >= 0"
            )));
        }
        match k.as_ref() {
            "offset" => offset = n as usize,
            _ if n > 0 => limit = limit.min(n as usize),
            _ => {}
        }
    }
    Ok((offset, limit))
}

async fn index(State(app): A, Extension(ctx): C, RawQuery(q): RawQuery) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let (offset, limit) = limited(q.as_deref())?;
    let mut vols = app.volumes.table.filter(|v| v.project_id == ctx.project_id);
    vols.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items: Vec<Value> = vols
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| view(v))
        .collect();
    Ok(axum::Json(json!({ "volumes": items })).into_response())
}

async fn show(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let v = visible(&app, &ctx, &id)?;
    Ok(axum::Json(json!({"volume": view(&v)})).into_response())
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    ctx.require_member("os_compute_api:os-volumes:create")?;
    let body = parse_json(&headers, &body)?;
    let (v, m) = wrapped(&body, "volume")?;
    const KNOWN: &[&str] = &[
        "volume_type",
        "metadata",
        "snapshot_id",
        "size",
        "availability_zone",
        "display_name",
        "display_description",
    ];
    crate::volume::api::only_known("volume", m, KNOWN)?;
    let size = m
        .get("size")
        .ok_or_else(|| fields::invalid("volume", v, "'size' is a required property"))?;
    let size = fields::volume_size("size", size)?;
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let snapshot = match text("snapshot_id") {
        Some(s) => Some(
            app.volumes
                .snapshot_visible(&s, &ctx.project_id, ctx.is_admin())?,
        ),
        None => None,
    };
    let metadata = match m.get("metadata") {
        Some(x) => fields::metadata("metadata", x)?,
        None => BTreeMap::new(),
    };
    let req = NewVolume {
        size,
        name: text("display_name"),
        description: text("display_description"),
        metadata,
        source_volid: None,
        image_id: None,
    };
    let now = app.clock.now();
    let (project, user) = (&ctx.project_id, &ctx.user_id);
    let vol = match snapshot {
        Some(snap) => {
            // Cinder's refusals reach Nova's caller as its InvalidInput.
            let invalid =
                |f: Fault| Fault::bad_request(format!("Invalid input received: {}", f.message));
            crate::volume::snapshot::usable(&snap).map_err(invalid)?;
            crate::volume::snapshot::volume_size_from(&snap, Some(req.size)).map_err(invalid)?;
            app.volumes
                .create_from_snapshot(now, project, user, req, &snap)
                .await
                .map_err(|f| if f.code == 400 { invalid(f) } else { f })?
        }
        None => {
            app.volumes
                .create(now, project, user, req, BTreeMap::new(), None)
                .await?
        }
    };
    Ok(axum::Json(json!({"volume": view(&vol)})).into_response())
}

async fn delete(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    ctx.require_member("os_compute_api:os-volumes:delete")?;
    let v = visible(&app, &ctx, &id)?;
    app.volumes.delete(&v, false, app.clock.now()).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
