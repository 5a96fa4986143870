//! The block-storage HTTP API (Cinder v3) under `/volume`: version
//! discovery, volumes (create blank, from an image, a volume or a
//! snapshot; list and detail with filters, sorting and paging; show;
//! update; delete, with `cascade` to its snapshots; `os-extend`,
//! `os-reset_status`, `os-set_bootable`, the legacy attach actions),
//! attachments (3.27+), snapshots (see [`snapshots`]), volume and snapshot
//! metadata, the default volume type, the availability zone and absolute
//! limits.
//!
//! Requests name a microversion in `OpenStack-API-Version: volume 3.N`
//! (3.0 when absent, up to [`MAX_MINOR`]); the answer says which was used.
//! Errors are Cinder's `{"badRequest": {"code", "message"}}` shapes; the
//! caller is authenticated as for the image API (keystonemiddleware's
//! 401). A project sees its own volumes; an admin sees any by id and every
//! project's in a list with `all_tenants`.

use super::snapshot::Snapshot;
use super::{invalid_input, Volume, DEFAULT_TYPE, DEFAULT_TYPE_ID, ZONE};
use crate::app::App;
use crate::http::{empty, host_url, json_status, parse_json, set_header, ApiError, Ctx};
use crate::image::api::Caller;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rova_core::model::iso_z;
use rova_core::validate::fields;
use rova_core::{Fault, Microversion};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The newest microversion (`3.71`).
pub const MAX_MINOR: u32 = 71;

type A = State<Arc<App>>;
type Res = Result<Response, ApiError>;

mod admin_actions;
mod attachments;
mod create;
mod extras;
mod list;
mod quotas;
mod snapshots;
mod summary;
mod upload;
mod volumes;

use create::create;
use extras::{
    limits, meta_item_delete, meta_item_set, meta_item_show, metadata_merge, metadata_replace,
    metadata_show, type_default, type_show, types, zones,
};
use list::{list_detail, list_summary};
use volumes::{action, delete, show, update};

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/volume", get(versions_all))
        .route("/volume/", get(versions_all))
        .route("/volume/v3", get(versions_v3))
        .route("/volume/v3/", get(versions_v3))
        .route(
            "/volume/v3/{project_id}/volumes",
            get(list_summary).post(create),
        )
        .route("/volume/v3/{project_id}/volumes/detail", get(list_detail))
        .route(
            "/volume/v3/{project_id}/volumes/summary",
            get(summary::volume_summary),
        )
        .route(
            "/volume/v3/{project_id}/extensions",
            get(summary::extensions),
        )
        .route(
            "/volume/v3/{project_id}/os-quota-sets/{target}",
            get(quotas::show).put(quotas::update).delete(quotas::delete),
        )
        .route(
            "/volume/v3/{project_id}/os-quota-sets/{target}/defaults",
            get(quotas::defaults),
        )
        .route(
            "/volume/v3/{project_id}/volumes/{id}",
            get(show).put(update).delete(delete),
        )
        .route(
            "/volume/v3/{project_id}/volumes/{id}/action",
            axum::routing::post(action),
        )
        .route(
            "/volume/v3/{project_id}/volumes/{id}/metadata",
            get(metadata_show::<false>)
                .post(metadata_merge::<false>)
                .put(metadata_replace::<false>),
        )
        .route(
            "/volume/v3/{project_id}/volumes/{id}/metadata/{key}",
            get(meta_item_show::<false>)
                .put(meta_item_set::<false>)
                .delete(meta_item_delete::<false>),
        )
        .route(
            "/volume/v3/{project_id}/snapshots",
            get(snapshots::list_summary).post(snapshots::create),
        )
        .route(
            "/volume/v3/{project_id}/snapshots/detail",
            get(snapshots::list_detail),
        )
        .route(
            "/volume/v3/{project_id}/snapshots/{id}",
            get(snapshots::show)
                .put(snapshots::update)
                .delete(snapshots::delete),
        )
        .route(
            "/volume/v3/{project_id}/snapshots/{id}/action",
            axum::routing::post(snapshots::action),
        )
        .route(
            "/volume/v3/{project_id}/snapshots/{id}/metadata",
            get(metadata_show::<true>)
                .post(metadata_merge::<true>)
                .put(metadata_replace::<true>),
        )
        .route(
            "/volume/v3/{project_id}/snapshots/{id}/metadata/{key}",
            get(meta_item_show::<true>)
                .put(meta_item_set::<true>)
                .delete(meta_item_delete::<true>),
        )
        .route(
            "/volume/v3/{project_id}/attachments",
            get(attachments::list_summary).post(attachments::create),
        )
        .route(
            "/volume/v3/{project_id}/attachments/detail",
            get(attachments::list_detail),
        )
        .route(
            "/volume/v3/{project_id}/attachments/{id}",
            get(attachments::show)
                .put(attachments::update)
                .delete(attachments::delete),
        )
        .route(
            "/volume/v3/{project_id}/attachments/{id}/action",
            axum::routing::post(attachments::action),
        )
        .route("/volume/v3/{project_id}/types", get(types))
        .route("/volume/v3/{project_id}/types/default", get(type_default))
        .route("/volume/v3/{project_id}/types/{id}", get(type_show))
        .route("/volume/v3/{project_id}/os-availability-zone", get(zones))
        .route("/volume/v3/{project_id}/limits", get(limits))
}

// ---- versions ----

fn version_doc(headers: &HeaderMap) -> Value {
    json!({"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": format!("3.{MAX_MINOR}"),
        "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{}/volume/v3/", host_url(headers))},
        ],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }]})
}

async fn versions_all(headers: HeaderMap) -> Response {
    json_status(StatusCode::MULTIPLE_CHOICES, version_doc(&headers))
}

async fn versions_v3(headers: HeaderMap) -> Response {
    json_status(StatusCode::OK, version_doc(&headers))
}

// ---- request context ----

/// The caller at the microversion its request names.
struct Req {
    ctx: Ctx,
    minor: u32,
    base: String,
}

impl Req {
    fn new(Caller(mut ctx): Caller, headers: &HeaderMap) -> Result<Req, ApiError> {
        let minor = requested_minor(headers)?;
        ctx.version = Microversion::new(3, minor);
        Ok(Req {
            ctx,
            minor,
            base: host_url(headers),
        })
    }
    fn admin(&self) -> bool {
        self.ctx.is_admin()
    }
    /// A response carrying the microversion used.
    fn answer(&self, status: StatusCode, body: Option<Value>) -> Response {
        let mut r = match body {
            Some(b) => json_status(status, b),
            None => empty(status),
        };
        set_header(
            &mut r,
            "OpenStack-API-Version",
            &format!("volume 3.{}", self.minor),
        );
        set_header(&mut r, "Vary", "OpenStack-API-Version");
        r
    }
    fn volume(&self, app: &App, id: &str) -> Result<Arc<Volume>, Fault> {
        app.volumes.visible(id, &self.ctx.project_id, self.admin())
    }
    fn snapshot(&self, app: &App, id: &str) -> Result<Arc<Snapshot>, Fault> {
        app.volumes
            .snapshot_visible(id, &self.ctx.project_id, self.admin())
    }
    fn member(&self, rule: &str) -> Result<(), Fault> {
        self.ctx.require_member(rule)
    }
}

/// The minor version the request names (Cinder's rules: `latest`, or
/// 3.0–3.71; out of range is 406, malformed 400).
fn requested_minor(headers: &HeaderMap) -> Result<u32, Fault> {
    let Some(h) = crate::http::header_text(headers, "openstack-api-version") else {
        return Ok(0);
    };
    let Some(v) = h.split(',').find_map(|part| {
        let mut w = part.split_whitespace();
        (w.next() == Some("volume")).then(|| w.next().unwrap_or("").to_string())
    }) else {
        return Err(Fault::bad_request(
            "API version None is not supported on this method.",
        ));
    };
    if v == "latest" {
        return Ok(MAX_MINOR);
    }
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(Fault::bad_request(format!(
            "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
        )));
    };
    if major != 3 || minor > MAX_MINOR {
        return Err(Fault::new(
            406,
            format!(
                "Version {major}.{minor} is not supported by the API. Minimum is 3.0 and \
                 maximum is 3.{MAX_MINOR}."
            ),
        ));
    }
    Ok(minor)
}

// ---- views ----

fn links(r: &Req, project: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/volume/v3/{project}/volumes/{id}", r.base), "rel": "self"},
        {"href": format!("{}/volume/{project}/volumes/{id}", r.base), "rel": "bookmark"},
    ])
}

fn summary(r: &Req, v: &Volume) -> Value {
    json!({"id": v.id, "name": v.name, "links": links(r, &v.project_id, &v.id)})
}

/// A volume in full, as `show` and `detail` answer it, with the
/// attributes Cinder's extensions add (tenant, host, migration, image
/// metadata).
fn detail(r: &Req, v: &Volume) -> Value {
    let mut o = plain(r, v);
    let m = o.as_object_mut().expect("an object");
    m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    if !v.image_metadata.is_empty() {
        m.insert("volume_image_metadata".into(), json!(v.image_metadata));
    }
    if r.admin() {
        m.insert("os-vol-host-attr:host".into(), json!(v.host));
        m.insert(
            "os-vol-mig-status-attr:migstat".into(),
            json!(v.migration_status),
        );
        m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    }
    o
}

/// The volume's metadata with its read-only flag, as Cinder shows its
/// admin metadata's `readonly` ("True"/"False") among them.
fn with_readonly(v: &Volume) -> BTreeMap<String, String> {
    let mut m = v.metadata.clone();
    if let Some(ro) = v.readonly {
        m.insert("readonly".into(), if ro { "True" } else { "False" }.into());
    }
    m
}

/// A volume as `create` and `update` answer it: the view without the
/// extensions' attributes.
fn plain(r: &Req, v: &Volume) -> Value {
    let mut o = json!({
        "id": v.id,
        "status": v.status,
        "size": v.size,
        "availability_zone": v.availability_zone,
        "created_at": iso_micro(&v.created_at),
        "updated_at": v.updated_at.as_ref().map(iso_micro),
        "name": v.name,
        "description": v.description,
        "volume_type": DEFAULT_TYPE,
        "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid,
        "metadata": with_readonly(v),
        "links": links(r, &v.project_id, &v.id),
        "user_id": v.user_id,
        "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false,
        "replication_status": null,
        "consistencygroup_id": null,
        "multiattach": false,
        "attachments": v.attachments.iter().filter(|a| a.device.is_some()).map(|a| json!({
            "id": v.id,
            "attachment_id": a.id,
            "volume_id": v.id,
            "server_id": a.server_id,
            "host_name": if r.admin() { json!(a.host) } else { Value::Null },
            "device": a.device,
            "attached_at": a.attached_at.as_ref().map(iso_micro),
        })).collect::<Vec<_>>(),
    });
    let m = o.as_object_mut().expect("an object");
    if r.admin() {
        m.insert("migration_status".into(), json!(v.migration_status));
    }
    if r.minor >= 13 {
        m.insert("group_id".into(), Value::Null);
    }
    if r.minor >= 21 && r.admin() {
        m.insert("provider_id".into(), Value::Null);
    }
    if r.minor >= 48 {
        m.insert("shared_targets".into(), json!(r.minor < 69));
        m.insert("service_uuid".into(), Value::Null);
    }
    if r.minor >= 61 && r.admin() {
        m.insert("cluster_name".into(), Value::Null);
    }
    if r.minor >= 63 {
        m.insert("volume_type_id".into(), json!(DEFAULT_TYPE_ID));
    }
    if r.minor >= 65 {
        m.insert("consumes_quota".into(), json!(true));
    }
    o
}

fn iso_micro(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

// ---- bodies ----

/// `{"<key>": {...}}`, the body every write sends.
fn wrapped<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>, Fault> {
    let o = body
        .as_object()
        .ok_or_else(|| Fault::bad_request(format!("{body} is not of type 'object'")))?;
    let inner = o
        .get(key)
        .ok_or_else(|| Fault::bad_request(format!("'{key}' is a required property")))?;
    inner
        .as_object()
        .ok_or_else(|| fields::invalid(key, inner, "is not of type 'object'"))
}

/// A `['string', 'null']` name or description with a length bound.
fn text(field: &str, v: Option<&Value>, max: usize) -> Result<Option<Option<String>>, Fault> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(Some(s.trim().to_string()))),
        Some(Value::String(s)) => Err(fields::invalid(
            field,
            &Value::String(s.clone()),
            format!("'{s}' is too long"),
        )),
        Some(other) => Err(fields::invalid(
            field,
            other,
            format!("{other} is not of type 'string', 'null'"),
        )),
    }
}

fn optional_uuid(field: &str, v: Option<&Value>) -> Result<Option<String>, Fault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(x) => fields::uuid(field, x).map(Some),
    }
}

/// Refuses a key of `obj` (the body's `key` object) not in `known`, with
/// the validator's `additionalProperties` message.
pub(crate) fn only_known(key: &str, obj: &Map<String, Value>, known: &[&str]) -> Result<(), Fault> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(fields::invalid(
            key,
            &Value::Object(obj.clone()),
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        )),
        None => Ok(()),
    }
}
