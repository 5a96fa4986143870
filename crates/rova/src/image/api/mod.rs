//! Glance v2 HTTP routes under `/image`: the versions document; images
//! (list with Glance's filters, sorting and marker paging, show, create,
//! JSON-patch update, delete); image data upload and download; tags, tasks,
//! members (image sharing), (de)activation; and the `image`/`images`/
//! `member`/`members` JSON schemas.
//!
//! The caller is authenticated by the [`Caller`] extractor (a missing or
//! invalid token is keystonemiddleware's JSON 401, as in front of Glance).
//! Other errors are webob's JSON error document `{"message", "code",
//! "title"}`, which is what Glance answers a client that accepts JSON.
//!
//! This module owns the router, the shared limits and enumerations, the
//! error type and authentication. The children hold the rest: `versions`,
//! `views` (the image JSON), `list` (list and show), `images` (create,
//! patch, delete), `data` (upload and download), `actions` (tags, tasks,
//! (de)activation), `members` and `schemas`.

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
use std::sync::Arc;

mod actions;
mod data;
mod images;
mod list;
mod members;
mod schemas;
#[cfg(test)]
mod tests;
mod versions;
mod views;

use actions::{add_tag, deactivate, image_tasks, reactivate, remove_tag};
use data::{download, upload};
pub(crate) use images::may_modify;
use images::{create_image, delete_image, update_image, visible_or_404};
use list::{list_images, show_image};
use members::{
    create_member, delete_member, list_members, schema_member, schema_members, show_member,
    update_member,
};
use schemas::{schema_image, schema_images};
use versions::versions;
pub use views::image_json;
use views::ok_json;

/// Glance's `limit_param_default` and `api_limit_max`.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;
/// Glance's `image_property_quota` and `image_tag_quota`.
const PROPERTY_QUOTA: usize = 128;
const TAG_QUOTA: usize = 128;
/// Largest upload accepted (images here are simulated and small).
const MAX_UPLOAD: usize = 1 << 30;

/// Glance's container formats.
pub(crate) const CONTAINER_FORMATS: &[&str] = &[
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
        .route(
            "/image/v2/images/{id}/members",
            get(list_members).post(create_member),
        )
        .route(
            "/image/v2/images/{id}/members/{member}",
            get(show_member).put(update_member).delete(delete_member),
        )
        .route(
            "/image/v2/images/{id}/tags/{tag}",
            put(add_tag).delete(remove_tag),
        )
        .route("/image/v2/images/{id}/actions/deactivate", post(deactivate))
        .route("/image/v2/images/{id}/actions/reactivate", post(reactivate))
        .route("/image/v2/schemas/image", get(schema_image))
        .route("/image/v2/schemas/images", get(schema_images))
        .route("/image/v2/schemas/member", get(schema_member))
        .route("/image/v2/schemas/members", get(schema_members))
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
