//! Flavor extra specs (`/flavors/{id}/os-extra_specs[/{key}]`): show the
//! whole set or one key, and the admin set, put and delete, with Nova's
//! extra-specs schema.

use super::flavors::find_flavor;
use super::schema;
use crate::app::App;
use crate::http::{empty, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::validate::fields::{self, invalid};
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/flavors/{id}/os-extra_specs",
            get(extra_specs).post(extra_specs_set),
        )
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(extra_spec)
                .put(extra_spec_put)
                .delete(extra_spec_delete),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

async fn extra_specs(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = find_flavor(&app, &ctx, &id)?;
    Ok(axum::Json(json!({"extra_specs": f.extra_specs})).into_response())
}

async fn extra_spec(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let f = find_flavor(&app, &ctx, &id)?;
    match f.extra_specs.get(&key) {
        Some(v) => Ok(axum::Json(json!({ key: v })).into_response()),
        None => {
            Err(Fault::not_found(format!("Flavor {id} has no extra specs with key {key}.")).into())
        }
    }
}

/// Nova's extra-specs schema: keys match the metadata pattern, values are
/// strings (at most 255 characters) or numbers (stored as their text).
fn specs_from(field: &str, v: &Value) -> Result<BTreeMap<String, String>, Fault> {
    let o = schema::object(Some(field), v)?;
    let mut out = BTreeMap::new();
    for (k, val) in o.iter().filter(|(k, _)| fields::is_metadata_key(k)) {
        let s = match val {
            Value::String(s) if s.chars().count() > 255 => {
                return Err(invalid(
                    k,
                    val,
                    format!("{} is too long", schema::repr(val)),
                ))
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => {
                let s = n.to_string();
                if s.len() > 255 {
                    return Err(Fault::bad_request(
                        "Invalid input received: extra_specs value has more than 255 characters.",
                    ));
                }
                s
            }
            _ => {
                return Err(invalid(
                    k,
                    val,
                    format!("{} is not of type 'string', 'number'", schema::repr(val)),
                ))
            }
        };
        out.insert(k.clone(), s);
    }
    let mut bad: Vec<&String> = o.keys().filter(|k| !fields::is_metadata_key(k)).collect();
    if !bad.is_empty() {
        bad.sort();
        let verb = if bad.len() == 1 { "does" } else { "do" };
        let names: Vec<String> = bad.iter().map(|k| format!("'{k}'")).collect();
        return Err(invalid(
            field,
            v,
            format!(
                "{} {verb} not match any of the regexes: '{}'",
                names.join(", "),
                fields::METADATA_KEY_PATTERN
            ),
        ));
    }
    Ok(out)
}

/// POST /flavors/{id}/os-extra_specs: merges and echoes the request body.
async fn extra_specs_set(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let top = schema::object(None, &v)?;
    schema::required(None, &v, top, &["extra_specs"])?;
    schema::no_additional(None, &v, top, &["extra_specs"])?;
    let specs = specs_from(
        "extra_specs",
        top.get("extra_specs").unwrap_or(&Value::Null),
    )?;
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:create")?;
    find_flavor(&app, &ctx, &id)?;
    app.compute.flavors.set_specs(&id, specs).await?;
    // Nova returns the request body unchanged (numbers stay numbers).
    Ok(axum::Json(v).into_response())
}

/// PUT /flavors/{id}/os-extra_specs/{key}: exactly one key, the URI's.
async fn extra_spec_put(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let o = schema::object(None, &v)?;
    if o.is_empty() {
        return Err(Fault::bad_request(format!(
            "{} does not have enough properties",
            schema::repr(&v)
        ))
        .into());
    }
    if o.len() > 1 {
        return Err(Fault::bad_request(format!("{v} has too many properties")).into());
    }
    let specs = specs_from("extra_specs", &v)?;
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:update")?;
    let val = specs
        .get(&key)
        .cloned()
        .ok_or_else(|| Fault::bad_request("Request body and URI mismatch"))?;
    find_flavor(&app, &ctx, &id)?;
    let one = BTreeMap::from([(key, val)]);
    app.compute.flavors.set_specs(&id, one).await?;
    Ok(axum::Json(v).into_response())
}

/// DELETE /flavors/{id}/os-extra_specs/{key}: 200 with no body in Nova.
async fn extra_spec_delete(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:delete")?;
    find_flavor(&app, &ctx, &id)?;
    app.compute
        .flavors
        .delete_spec(&id, &key, || {
            Fault::not_found(format!("Flavor {id} has no extra specs with key {key}."))
        })
        .await?;
    Ok(empty(StatusCode::OK))
}
