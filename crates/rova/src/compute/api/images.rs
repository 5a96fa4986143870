//! The compute API's image proxy (`/images`, `/images/detail`,
//! `/images/{id}`, 2.1–2.35): the image service's images in Nova's format,
//! and delete.

use super::{query_pairs, Links};
use crate::app::App;
use crate::compute::secgroups::proxy_available;
use crate::http::{empty, ApiResult, Ctx};
use crate::image::Image;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::model::iso_z;
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/images", get(images_index))
        .route("/images/detail", get(images_detail))
        .route("/images/{id}", get(image_show).delete(image_delete))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

fn proxy_status(s: &str) -> &'static str {
    match s {
        "active" => "ACTIVE",
        "queued" | "saving" | "uploading" | "importing" => "SAVING",
        "deleted" | "pending_delete" => "DELETED",
        "killed" => "ERROR",
        _ => "UNKNOWN",
    }
}

fn proxy_image(img: &Image, links: &Links, detail: bool) -> Value {
    let mut v = json!({"id": img.id, "name": img.name, "links": [
        {"rel": "self", "href": format!("{}/images/{}", links.versioned, img.id)},
        {"rel": "bookmark", "href": format!("{}/images/{}", links.bookmark, img.id)},
        {"rel": "alternate", "type": "application/vnd.openstack.image", "href": format!("{}/images/{}", links.bookmark.replace("/compute", "/image"), img.id)},
    ]});
    if detail {
        let meta: BTreeMap<String, Value> = img
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        Value::String(_) => v.clone(),
                        other => json!(other.to_string()),
                    },
                )
            })
            .collect();
        v["minRam"] = json!(img.min_ram);
        v["minDisk"] = json!(img.min_disk);
        v["metadata"] = json!(meta);
        v["created"] = json!(iso_z(&img.created_at));
        v["updated"] = json!(iso_z(&img.updated_at));
        v["status"] = json!(proxy_status(&img.status));
        v["progress"] = json!(match img.status.as_str() {
            "active" => 100,
            "saving" => 25,
            _ => 0,
        });
        v["OS-EXT-IMG-SIZE:size"] = json!(img.size.unwrap_or(0));
        if let Some(Value::String(server)) = img.properties.get("instance_uuid") {
            v["server"] = json!({"id": server, "links": [
                {"rel": "self", "href": format!("{}/servers/{server}", links.versioned)},
                {"rel": "bookmark", "href": format!("{}/servers/{server}", links.bookmark)}]});
        }
    }
    v
}

fn image_list(
    app: &App,
    ctx: &Ctx,
    links: &Links,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<Response> {
    proxy_available(ctx)?;
    let params = query_pairs(raw.as_deref());
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let mut imgs = app.images.list_visible(&ctx.project_id, ctx.is_admin());
    imgs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    if let Some(n) = last("name") {
        imgs.retain(|i| i.name.as_deref() == Some(n.as_str()));
    }
    if let Some(s) = last("status") {
        imgs.retain(|i| proxy_status(&i.status).eq_ignore_ascii_case(&s));
    }
    if let Some(s) = last("server") {
        imgs.retain(|i| {
            i.properties
                .get("instance_uuid")
                .and_then(Value::as_str)
                .is_some_and(|u| s.ends_with(u))
        });
    }
    if let Some(t) = last("type") {
        imgs.retain(|i| {
            i.properties
                .get("image_type")
                .and_then(Value::as_str)
                .unwrap_or("")
                == t
        });
    }
    if let Some(c) = last("changes-since") {
        if let Some(t) = rova_core::query::parse_iso8601(&c) {
            imgs.retain(|i| i.updated_at >= t);
        }
    }
    if let Some(m) = last("marker") {
        if let Some(pos) = imgs.iter().position(|i| i.id == m) {
            imgs.drain(..=pos);
        }
    }
    if let Some(l) = last("limit") {
        let n: usize = l.parse().map_err(|_| Fault::bad_request("Invalid limit"))?;
        imgs.truncate(n);
    }
    let items: Vec<Value> = imgs.iter().map(|i| proxy_image(i, links, detail)).collect();
    Ok(axum::Json(json!({"images": items})).into_response())
}

async fn images_index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    image_list(&app, &ctx, &links, q, false)
}

async fn images_detail(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    image_list(&app, &ctx, &links, q, true)
}

async fn image_show(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let img = app
        .images
        .visible(&id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| Fault::not_found("Image not found."))?;
    Ok(axum::Json(json!({"image": proxy_image(&img, &links, true)})).into_response())
}

async fn image_delete(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    proxy_available(&ctx)?;
    let img = app
        .images
        .visible(&id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| Fault::not_found("Image not found."))?;
    // Glance's delete_image: a member of the owning project, or an admin
    // (a reader of the owner is refused).
    if !crate::image::api::may_modify(&img, &ctx) {
        return Err(Fault::forbidden("You are not authorized to delete this image.").into());
    }
    if img.protected {
        return Err(
            Fault::forbidden(format!("Image {id} is protected and cannot be deleted.")).into(),
        );
    }
    app.images.delete(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
