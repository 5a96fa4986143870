//! Nova's volume snapshot proxy (`os-snapshots`, 2.1–2.35, 404 from
//! 2.36): list, detail, show, create (`force` for an in-use volume) and
//! delete of the caller's snapshots, answered from the block storage
//! service in Nova's camelCase view.
//!
//! Where Cinder refuses (a volume in the wrong status, a snapshot that may
//! not be deleted), Nova's proxy lets the translated error escape its
//! `expected_errors` and answers 500; Rova answers Nova's `InvalidInput`
//! 400 with Cinder's reason instead, 404 for a volume it cannot see, and
//! Nova's 403 for a quota Cinder refuses.

use super::os_volumes::{limited, wrapped};
use crate::app::App;
use crate::compute::secgroups::proxy_available;
use crate::http::{empty, parse_json, ApiResult, Ctx};
use crate::volume::snapshot::{NewSnapshot, Snapshot};
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
        .route("/os-snapshots", get(index).post(create))
        .route("/os-snapshots/detail", get(index))
        .route("/os-snapshots/{id}", get(show).delete(delete))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// Nova's `_translate_snapshot_summary_view` (the detail view is the
/// same).
fn view(s: &Snapshot) -> Value {
    json!({
        "id": s.id,
        "volumeId": s.volume_id,
        "status": s.status,
        "size": s.size,
        "createdAt": s.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "displayName": s.name,
        "displayDescription": s.description,
    })
}

/// A refusal from the block storage service as Nova's proxy passes it on:
/// a 400 is Nova's `InvalidInput`, a quota's 413 Nova's `OverQuota` 403.
fn translated(f: Fault) -> Fault {
    match f.code {
        400 => Fault::bad_request(format!("Invalid input received: {}", f.message)),
        413 => Fault::forbidden("Quota exceeded for resources: snapshots"),
        _ => f,
    }
}

async fn index(State(app): A, Extension(ctx): C, RawQuery(q): RawQuery) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let (offset, limit) = limited(q.as_deref())?;
    let mut snaps = app
        .volumes
        .snapshots
        .filter(|s| s.project_id == ctx.project_id);
    snaps.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items: Vec<Value> = snaps
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| view(s))
        .collect();
    Ok(axum::Json(json!({ "snapshots": items })).into_response())
}

async fn show(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let s = app
        .volumes
        .snapshot_visible(&id, &ctx.project_id, ctx.is_admin())?;
    Ok(axum::Json(json!({"snapshot": view(&s)})).into_response())
}

/// A `{'type': 'string'}` field that may be absent.
fn optional_string(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<String>, Fault> {
    m.get(k).map(|v| fields::string(k, v)).transpose()
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    ctx.require_member("os_compute_api:os-volumes:snapshots:create")?;
    let body = parse_json(&headers, &body)?;
    let (s, m) = wrapped(&body, "snapshot")?;
    const KNOWN: &[&str] = &["volume_id", "force", "display_name", "display_description"];
    crate::volume::api::only_known("snapshot", m, KNOWN)?;
    let volume_id = m
        .get("volume_id")
        .ok_or_else(|| fields::invalid("snapshot", s, "'volume_id' is a required property"))?;
    let volume_id = fields::string("volume_id", volume_id)?;
    let force = match m.get("force") {
        Some(f) => fields::boolean("force", f)?,
        None => false,
    };
    let name = optional_string(m, "display_name")?;
    let description = optional_string(m, "display_description")?;
    let vol = app
        .volumes
        .visible(&volume_id, &ctx.project_id, ctx.is_admin())?;
    let req = NewSnapshot {
        name,
        description,
        metadata: BTreeMap::new(),
        allow_in_use: force,
    };
    let snap = app
        .volumes
        .create_snapshot(app.clock.now(), &ctx.project_id, &ctx.user_id, &vol.id, req)
        .await
        .map_err(translated)?;
    Ok(axum::Json(json!({"snapshot": view(&snap)})).into_response())
}

async fn delete(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    ctx.require_member("os_compute_api:os-volumes:snapshots:delete")?;
    let s = app
        .volumes
        .snapshot_visible(&id, &ctx.project_id, ctx.is_admin())?;
    app.volumes
        .delete_snapshot(&s, false, app.clock.now())
        .await
        .map_err(translated)?;
    Ok(empty(StatusCode::ACCEPTED))
}
