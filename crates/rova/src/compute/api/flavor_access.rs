//! Flavor access (`os-flavor-access`): the projects that may see and use a
//! private flavor. `GET /flavors/{id}/os-flavor-access` lists them (404
//! for public flavors) and `POST /flavors/{id}/action` with
//! `addTenantAccess` / `removeTenantAccess` changes the list. All three
//! are admin-only under Nova's default policy.

use super::{flavors::find_flavor, query_pairs, schema};
use crate::app::App;
use crate::compute::Flavor;
use crate::http::{parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/flavors/{id}/os-flavor-access", get(index))
        .route("/flavors/{id}/action", post(action))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// `{"flavor_access": [{"flavor_id", "tenant_id"}, ...]}`.
fn access_body(f: &Flavor) -> Value {
    let items: Vec<Value> = f
        .projects
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    json!({ "flavor_access": items })
}

async fn index(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    if ctx.at_least(102) {
        if let Some((k, v)) = query_pairs(q.as_deref()).first() {
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters {k}. Value: {v}. Additional properties are not allowed ('{k}' was unexpected)"
            ))
            .into());
        }
    }
    ctx.require_admin("os_compute_api:os-flavor-access")?;
    let f = find_flavor(&app, &ctx, &id)?;
    if f.is_public {
        return Err(Fault::not_found("Access list not available for public flavors.").into());
    }
    Ok(axum::Json(access_body(&f)).into_response())
}

async fn action(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let name = obj.keys().next().cloned().unwrap_or_default();
    let f = match name.as_str() {
        "addTenantAccess" => add(&app, &ctx, &id, &v).await?,
        "removeTenantAccess" => remove(&app, &ctx, &id, &v).await?,
        other => {
            return Err(Fault::bad_request(format!("There is no such action: {other}")).into())
        }
    };
    Ok(axum::Json(access_body(&f)).into_response())
}

/// Validates `{"<action>": {"tenant": "<1..255 chars>"}}` and returns the
/// tenant.
fn tenant_of(v: &Value, action: &str) -> Result<String, Fault> {
    let top = schema::object(None, v)?;
    schema::required(None, v, top, &[action])?;
    schema::no_additional(None, v, top, &[action])?;
    let av = top.get(action).unwrap_or(&Value::Null);
    let a = schema::object(Some(action), av)?;
    schema::required(Some(action), av, a, &["tenant"])?;
    schema::no_additional(Some(action), av, a, &["tenant"])?;
    schema::string("tenant", a.get("tenant").unwrap_or(&Value::Null), 1, 255)
}

/// Nova names the flavor by its internal id in the access faults.
fn internal_id(app: &App, flavorid: &str) -> i64 {
    crate::compute::migrate::flavor_type_id(app, flavorid)
}

async fn add(app: &App, ctx: &Ctx, id: &str, v: &Value) -> Result<Arc<Flavor>, Fault> {
    let tenant = tenant_of(v, "addTenantAccess")?;
    ctx.require_admin("os_compute_api:os-flavor-access:add_tenant_access")?;
    if app.identity.projects.get(&tenant).is_none() {
        return Err(Fault::bad_request(format!(
            "Project ID {tenant} is not a valid project."
        )));
    }
    let f = find_flavor(app, ctx, id)?;
    if ctx.at_least(7) && f.is_public {
        return Err(Fault::conflict("Can not add access to a public flavor."));
    }
    let internal = internal_id(app, id);
    app.compute
        .flavors
        .grant(id, &tenant, || {
            Fault::conflict(format!(
                "Flavor access already exists for flavor {internal} and project {tenant} combination."
            ))
        })
        .await
}

async fn remove(app: &App, ctx: &Ctx, id: &str, v: &Value) -> Result<Arc<Flavor>, Fault> {
    let tenant = tenant_of(v, "removeTenantAccess")?;
    ctx.require_admin("os_compute_api:os-flavor-access:remove_tenant_access")?;
    // Nova lets an unknown project through here: a grant to a project
    // that no longer exists can still be removed.
    find_flavor(app, ctx, id)?;
    let internal = internal_id(app, id);
    app.compute
        .flavors
        .revoke(id, &tenant, || {
            Fault::not_found(format!(
                "Flavor access not found for {internal} / {tenant} combination."
            ))
        })
        .await
}
