//! Routes for a server's volumes (`os-volume_attachments`): list, show,
//! attach (Nova's body schema; `tag` from 2.49, `delete_on_termination`
//! from 2.79; no body from 2.101), update (`delete_on_termination`, 2.85;
//! swapping a volume for another is the service's, see
//! [`crate::compute::volume_swap`]) and detach. What an attachment
//! shows follows the microversion: `tag` from 2.70,
//! `delete_on_termination` from 2.79, `attachment_id` and `bdm_uuid`
//! instead of `id` from 2.89.

use crate::app::App;
use crate::compute::actions_run::begin_with;
use crate::compute::volume_swap::{self, VolumeSwap};
use crate::compute::volumes::{self, VolumeAttach};
use crate::http::{empty, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::admission::Action;
use rova_core::model::BlockDeviceMapping;
use rova_core::validate::{parse_volume_attach, parse_volume_attach_update};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/servers/{id}/os-volume_attachments",
            get(index).post(create),
        )
        .route(
            "/servers/{id}/os-volume_attachments/{volume_id}",
            get(show).put(update).delete(delete),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// One attachment as Nova shows it at the caller's microversion.
fn view(ctx: &Ctx, server: &str, b: &BlockDeviceMapping) -> Value {
    let mut v = serde_json::Map::new();
    if !ctx.at_least(89) {
        v.insert("id".into(), json!(b.uuid));
    }
    v.insert("volumeId".into(), json!(b.uuid));
    v.insert("serverId".into(), json!(server));
    if let Some(d) = b.device_name.as_deref().filter(|d| !d.is_empty()) {
        v.insert("device".into(), json!(d));
    }
    if ctx.at_least(70) {
        v.insert("tag".into(), json!(b.tag));
    }
    if ctx.at_least(79) {
        v.insert(
            "delete_on_termination".into(),
            json!(b.delete_on_termination),
        );
    }
    if ctx.at_least(89) {
        v.insert("attachment_id".into(), json!(b.attachment_id));
        v.insert("bdm_uuid".into(), json!(b.bdm_uuid));
    }
    Value::Object(v)
}

async fn index(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    let inst = crate::compute::servers::visible(&app, &ctx, &id)?;
    let items: Vec<Value> = volumes::attached(&inst)
        .map(|b| view(&ctx, &id, b))
        .collect();
    Ok(axum::Json(json!({"volumeAttachments": items})).into_response())
}

async fn show(
    State(app): A,
    Extension(ctx): C,
    Path((id, volume)): Path<(String, String)>,
) -> ApiResult<Response> {
    let b = volumes::attachment_of(&app, &ctx, &id, &volume)?;
    Ok(axum::Json(json!({"volumeAttachment": view(&ctx, &id, &b)})).into_response())
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req = parse_volume_attach(&parse_json(&headers, &body)?, ctx.version)?;
    let wanted = VolumeAttach {
        volume_id: req.volume_id,
        device: req.device,
        tag: req.tag,
        delete_on_termination: req.delete_on_termination,
    };
    let b = volumes::attach(&app, &ctx, &id, wanted).await?;
    if ctx.at_least(101) {
        return Ok(empty(StatusCode::ACCEPTED));
    }
    let mut v = json!({
        "id": b.uuid,
        "serverId": id,
        "volumeId": b.uuid,
        "device": b.device_name,
    });
    if ctx.at_least(70) {
        v["tag"] = json!(b.tag);
    }
    if ctx.at_least(79) {
        v["delete_on_termination"] = json!(b.delete_on_termination);
    }
    Ok(axum::Json(json!({ "volumeAttachment": v })).into_response())
}

async fn update(
    State(app): A,
    Extension(ctx): C,
    Path((id, volume)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req = parse_volume_attach_update(&parse_json(&headers, &body)?, ctx.version)?;
    // Before 2.85 every PUT is a swap; from 2.85 one naming another volume.
    let only_swap = !ctx.at_least(85);
    let swapping = only_swap || req.volume_id != volume;
    if swapping {
        // Moving a server to another volume is the service's (Nova's
        // default policy).
        if !ctx.has_role("service") {
            return Err(Fault::policy("os_compute_api:os-volumes-attachments:swap").into());
        }
    } else {
        ctx.require_member("os_compute_api:os-volumes-attachments:update")?;
    }
    if !only_swap {
        // From 2.85 the attachment's own fields are updated first (in a
        // swap, the old volume's), as Nova does.
        crate::compute::servers::visible(&app, &ctx, &id)?;
        let found = volumes::attachment_of(&app, &ctx, &id, &volume);
        if swapping {
            found.map_err(|_| volume_swap::no_mapping(&volume))?;
        } else {
            found?;
        }
        if let Some(delete) = req.delete_on_termination {
            let old = volume.clone();
            begin_with(
                &app,
                &ctx,
                &id,
                Action::AttachVolume,
                None,
                None,
                move |i, _| {
                    for b in i.block_device_mapping.iter_mut() {
                        if b.uuid.as_deref() == Some(old.as_str()) {
                            b.delete_on_termination = delete;
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        }
    }
    if swapping {
        let wanted = VolumeSwap {
            old: volume,
            new: req.volume_id,
        };
        volume_swap::swap(&app, &ctx, &id, wanted).await?;
    }
    Ok(empty(StatusCode::ACCEPTED))
}

async fn delete(
    State(app): A,
    Extension(ctx): C,
    Path((id, volume)): Path<(String, String)>,
) -> ApiResult<Response> {
    volumes::detach(&app, &ctx, &id, &volume).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
