//! Routes for the compute API's smaller resources: flavors (with extra
//! specs and admin create/update/delete; tenant access lives in
//! `flavor_access`), keypairs, limits, availability zones and the image
//! proxy (below 2.36).

use super::{query_pairs, schema, Links};
use crate::app::App;
use crate::compute::views;
use crate::compute::{Flavor, Keypair};
use crate::http::{empty, json_status, parse_json, ApiResult, Ctx};
use crate::image::Image;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::model::iso_z;
use rova_core::validate::fields::{self, invalid};
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/flavors", get(flavors_index).post(flavor_create))
        .route("/flavors/detail", get(flavors_detail))
        .route(
            "/flavors/{id}",
            get(flavor_show).put(flavor_update).delete(flavor_delete),
        )
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
        .route("/os-keypairs", get(keypairs_index).post(keypair_create))
        .route(
            "/os-keypairs/{name}",
            get(keypair_show).delete(keypair_delete),
        )
        .route("/limits", get(limits))
        .route("/os-availability-zone", get(az_index))
        .route("/os-availability-zone/detail", get(az_detail))
        .route("/images", get(images_index))
        .route("/images/detail", get(images_detail))
        .route("/images/{id}", get(image_show).delete(image_delete))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

fn qerr(name: &str, v: &str, why: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for query parameters {name}. Value: {v}. {why}"
    ))
}

// ---- flavors ----

fn flavor_list(
    app: &App,
    ctx: &Ctx,
    links: &Links,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<Response> {
    let params = query_pairs(raw.as_deref());
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let mut flavors: Vec<Arc<Flavor>> = app.compute.flavors.all();
    // Only admins may choose: `is_public` absent means true, "none" means
    // every flavor; others always get the public ones plus those their
    // project was granted, never disabled ones.
    let is_public = if ctx.is_admin() {
        match last("is_public") {
            None => Some(true),
            Some(s) if s.eq_ignore_ascii_case("none") => None,
            Some(s) => Some(
                strict_bool(&s)
                    .ok_or_else(|| Fault::bad_request(format!("Invalid is_public filter [{s}]")))?,
            ),
        }
    } else {
        flavors.retain(|f| !f.disabled);
        Some(true)
    };
    flavors.retain(|f| f.visible_to(ctx));
    match is_public {
        Some(true) => flavors.retain(|f| f.is_public || f.projects.contains(&ctx.project_id)),
        Some(false) => flavors.retain(|f| !f.is_public),
        None => {}
    }
    if let Some(v) = last("minRam") {
        let n: u64 = v
            .parse()
            .map_err(|_| Fault::bad_request(format!("Invalid minRam filter [{v}]")))?;
        flavors.retain(|f| f.ram >= n);
    }
    if let Some(v) = last("minDisk") {
        let n: u64 = v
            .parse()
            .map_err(|_| Fault::bad_request(format!("Invalid minDisk filter [{v}]")))?;
        flavors.retain(|f| f.disk >= n);
    }
    if ctx.at_least(102) {
        if let Some(n) = last("name") {
            flavors.retain(|f| f.name == n);
        }
    }
    let key = last("sort_key").unwrap_or_else(|| "flavorid".into());
    let dir = last("sort_dir").unwrap_or_else(|| "asc".into());
    if dir != "asc" && dir != "desc" {
        return Err(qerr("sort_dir", &dir, "'sort_dir' must be 'asc' or 'desc'").into());
    }
    let cmp = |a: &Arc<Flavor>, b: &Arc<Flavor>| -> std::cmp::Ordering {
        let o = match key.as_str() {
            "name" => a.name.cmp(&b.name),
            "memory_mb" | "ram" => a.ram.cmp(&b.ram),
            "vcpus" => a.vcpus.cmp(&b.vcpus),
            "root_gb" | "disk" => a.disk.cmp(&b.disk),
            "ephemeral_gb" => a.ephemeral.cmp(&b.ephemeral),
            "swap" => a.swap.cmp(&b.swap),
            "created_at" => a.created_at.cmp(&b.created_at),
            _ => a.id.cmp(&b.id),
        };
        o.then(a.id.cmp(&b.id))
    };
    let valid_keys = [
        "created_at",
        "description",
        "disabled",
        "ephemeral_gb",
        "flavorid",
        "id",
        "is_public",
        "memory_mb",
        "name",
        "root_gb",
        "rxtx_factor",
        "swap",
        "updated_at",
        "vcpu_weight",
        "vcpus",
    ];
    if !valid_keys.contains(&key.as_str()) {
        return Err(qerr("sort_key", &key, "Invalid sort key").into());
    }
    flavors.sort_by(cmp);
    if dir == "desc" {
        flavors.reverse();
    }
    if let Some(m) = last("marker") {
        let pos = flavors
            .iter()
            .position(|f| f.id == m)
            .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?;
        flavors.drain(..=pos);
    }
    let max = app.cfg.max_limit;
    let limit = match last("limit") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| qerr("limit", &v, "not an integer"))?
            .min(max),
        None => max,
    };
    flavors.truncate(limit);
    let items: Vec<Value> = flavors
        .iter()
        .map(|f| views::flavor(f, ctx, links, detail))
        .collect();
    let mut body = json!({"flavors": items});
    if flavors.len() == limit && limit > 0 {
        if let Some(lastf) = flavors.last() {
            let path = if detail { "flavors/detail" } else { "flavors" };
            body["flavors_links"] = super::next_link(links, path, &params, &lastf.id);
        }
    }
    Ok(axum::Json(body).into_response())
}

async fn flavors_index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    flavor_list(&app, &ctx, &links, q, false)
}

async fn flavors_detail(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    flavor_list(&app, &ctx, &links, q, true)
}

/// oslo's `bool_from_string(strict=True)`: None when not a boolean word.
fn strict_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A flavor the caller may see (Nova's `common.get_flavor`): private
/// flavors without access are "not found" for non-admins.
pub(super) fn find_flavor(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Flavor>, Fault> {
    app.compute
        .flavors
        .get(id)
        .filter(|f| f.visible_to(ctx))
        .ok_or_else(|| Fault::not_found(format!("Flavor {id} could not be found.")))
}

async fn flavor_show(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = find_flavor(&app, &ctx, &id)?;
    Ok(axum::Json(json!({"flavor": views::flavor(&f, &ctx, &links, true)})).into_response())
}

/// Nova's `flavor_param_non_negative`/`_positive`: an integer or a digit
/// string, `min..=2147483647`.
fn flavor_int(field: &str, v: &Value, min: i64) -> Result<u64, Fault> {
    let n: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse::<i128>().unwrap_or(i128::MAX))
        }
        Value::String(_) => {
            return Err(invalid(
                field,
                v,
                format!("{} does not match '^[0-9]+$'", schema::repr(v)),
            ))
        }
        _ => None,
    };
    let n = n.ok_or_else(|| {
        invalid(
            field,
            v,
            format!("{} is not of type 'integer', 'string'", schema::repr(v)),
        )
    })?;
    if n < i128::from(min) {
        return Err(invalid(
            field,
            v,
            format!("{n} is less than the minimum of {min}"),
        ));
    }
    if n > 0x7fff_ffff {
        return Err(invalid(
            field,
            v,
            format!("{n} is greater than the maximum of 2147483647"),
        ));
    }
    u64::try_from(n).map_err(|_| invalid(field, v, "out of range"))
}

/// Nova's flavor `description` (2.55+): string or null, printable, at most
/// 65535 characters.
fn flavor_description(v: &Value) -> Result<Option<String>, Fault> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            if s.chars().any(char::is_control) {
                return Err(invalid(
                    "description",
                    v,
                    format!(
                        "{} does not match '^[<printable characters>]*$'",
                        schema::repr(v)
                    ),
                ));
            }
            if s.chars().count() > 65535 {
                return Err(invalid(
                    "description",
                    v,
                    format!("{} is too long", schema::repr(v)),
                ));
            }
            Ok(Some(s.clone()))
        }
        _ => Err(invalid(
            "description",
            v,
            format!("{} is not of type 'string', 'null'", schema::repr(v)),
        )),
    }
}

/// The flavor-create `id`: string (pattern, 1–255), number or null.
/// None asks for a generated uuid (as does Nova for any falsy id).
fn flavor_id(v: Option<&Value>) -> Result<Option<String>, Fault> {
    let v = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    match v {
        Value::String(s) => {
            let n = s.chars().count();
            let edge_space = s.starts_with(' ') || s.ends_with(' ');
            let chars_ok = s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b' ' | b'_' | b'-'));
            if n == 0 {
                return Err(invalid("id", v, "'' should be non-empty"));
            }
            if n > 255 {
                return Err(invalid("id", v, format!("{} is too long", schema::repr(v))));
            }
            if edge_space || !chars_ok {
                return Err(invalid(
                    "id",
                    v,
                    format!(
                        "{} does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'",
                        schema::repr(v)
                    ),
                ));
            }
            Ok(Some(s.clone()))
        }
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(None),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(invalid(
            "id",
            v,
            format!(
                "{} is not of type 'string', 'number', 'null'",
                schema::repr(v)
            ),
        )),
    }
}

/// The flavor-create `rxtx_factor`: a positive float (number or numeric
/// string) no larger than the DB's single-precision maximum.
fn rxtx_factor(v: &Value) -> Result<f64, Fault> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let (int, frac) = s.split_once('.').unwrap_or((s.as_str(), "0"));
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if !digits(int) || !digits(frac) {
                return Err(invalid(
                    "rxtx_factor",
                    v,
                    format!("{} does not match '^[0-9]+(\\.[0-9]+)?$'", schema::repr(v)),
                ));
            }
            s.parse::<f64>().ok()
        }
        _ => {
            return Err(invalid(
                "rxtx_factor",
                v,
                format!("{} is not of type 'number', 'string'", schema::repr(v)),
            ))
        }
    };
    match f {
        Some(f) if f > 0.0 && f <= 3.40282e38 => Ok(f),
        _ => Err(Fault::bad_request(
            "Invalid input received: 'rxtx_factor' argument must be a float between 0 and 3.40282e+38",
        )),
    }
}

async fn flavor_create(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    // Nova validates the body against its schema before the policy check.
    let top = schema::object(None, &v)?;
    schema::required(None, &v, top, &["flavor"])?;
    schema::no_additional(None, &v, top, &["flavor"])?;
    let fv = top.get("flavor").unwrap_or(&Value::Null);
    let f = schema::object(Some("flavor"), fv)?;
    let mut allowed = vec![
        "name",
        "id",
        "ram",
        "vcpus",
        "disk",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "os-flavor-access:is_public",
    ];
    if !ctx.at_least(102) {
        allowed.push("rxtx_factor");
    }
    if ctx.at_least(55) {
        allowed.push("description");
    }
    schema::required(Some("flavor"), fv, f, &["name", "ram", "vcpus", "disk"])?;
    schema::no_additional(Some("flavor"), fv, f, &allowed)?;
    let name = fields::name("name", f.get("name").unwrap_or(&Value::Null))?;
    let id = flavor_id(f.get("id"))?;
    let ram = flavor_int("ram", f.get("ram").unwrap_or(&Value::Null), 1)?;
    let vcpus = flavor_int("vcpus", f.get("vcpus").unwrap_or(&Value::Null), 1)?;
    let disk = flavor_int("disk", f.get("disk").unwrap_or(&Value::Null), 0)?;
    let ephemeral = match f.get("OS-FLV-EXT-DATA:ephemeral") {
        Some(x) => flavor_int("OS-FLV-EXT-DATA:ephemeral", x, 0)?,
        None => 0,
    };
    let swap = match f.get("swap") {
        Some(x) => flavor_int("swap", x, 0)?,
        None => 0,
    };
    let rxtx = match f.get("rxtx_factor") {
        Some(x) => rxtx_factor(x)?,
        None => 1.0,
    };
    let is_public = match f.get("os-flavor-access:is_public") {
        Some(x) => fields::boolean("os-flavor-access:is_public", x)?,
        None => true,
    };
    let description = match f.get("description") {
        Some(x) => flavor_description(x)?,
        None => None,
    };
    ctx.require_admin("os_compute_api:os-flavor-manage:create")?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if app.compute.flavors.all().iter().any(|x| x.name == name) {
        return Err(Fault::conflict(format!("Flavor with name {name} already exists.")).into());
    }
    let flavor = Flavor {
        id: id.clone(),
        name,
        vcpus: u32::try_from(vcpus).unwrap_or(u32::MAX),
        ram,
        disk,
        ephemeral,
        swap,
        rxtx_factor: rxtx,
        is_public,
        disabled: false,
        description,
        extra_specs: BTreeMap::new(),
        created_at: app.clock.now(),
        // Nova does not grant the creating project access to a private
        // flavor (bug 1209101).
        projects: Vec::new(),
    };
    let stored = app
        .compute
        .flavors
        .insert_new(
            &id,
            flavor,
            Fault::conflict(format!("Flavor with ID {id} already exists.")),
        )
        .await?;
    Ok(axum::Json(json!({"flavor": views::flavor(&stored, &ctx, &links, true)})).into_response())
}

/// PUT /flavors/{id} (2.55+): only the description can change.
async fn flavor_update(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if !ctx.at_least(55) {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let v = parse_json(&headers, &body)?;
    let top = schema::object(None, &v)?;
    schema::required(None, &v, top, &["flavor"])?;
    schema::no_additional(None, &v, top, &["flavor"])?;
    let fv = top.get("flavor").unwrap_or(&Value::Null);
    let f = schema::object(Some("flavor"), fv)?;
    schema::required(Some("flavor"), fv, f, &["description"])?;
    schema::no_additional(Some("flavor"), fv, f, &["description"])?;
    let description = flavor_description(f.get("description").unwrap_or(&Value::Null))?;
    ctx.require_admin("os_compute_api:os-flavor-manage:update")?;
    let (stored, _) = app
        .compute
        .flavors
        .update(
            &id,
            || Fault::not_found(format!("Flavor {id} could not be found.")),
            |f| {
                f.description = description;
                Ok(())
            },
        )
        .await?;
    Ok(axum::Json(json!({"flavor": views::flavor(&stored, &ctx, &links, true)})).into_response())
}

async fn flavor_delete(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-flavor-manage:delete")?;
    find_flavor(&app, &ctx, &id)?;
    app.compute.flavors.remove(&id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

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
    app.compute
        .flavors
        .update(
            &id,
            || Fault::not_found(format!("Flavor {id} could not be found.")),
            |f| {
                f.extra_specs.extend(specs);
                Ok(())
            },
        )
        .await?;
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
    app.compute
        .flavors
        .update(
            &id,
            || Fault::not_found(format!("Flavor {id} could not be found.")),
            |f| {
                f.extra_specs.insert(key.clone(), val);
                Ok(())
            },
        )
        .await?;
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
        .update(
            &id,
            || Fault::not_found(format!("Flavor {id} could not be found.")),
            |f| {
                f.extra_specs.remove(&key).map(|_| ()).ok_or_else(|| {
                    Fault::not_found(format!("Flavor {id} has no extra specs with key {key}."))
                })
            },
        )
        .await?;
    Ok(empty(StatusCode::OK))
}

// ---- keypairs ----

fn keypair_owner(ctx: &Ctx, params: &[(String, String)]) -> Result<String, Fault> {
    match params.iter().rev().find(|(k, _)| k == "user_id") {
        Some((_, u)) if ctx.at_least(10) && *u != ctx.user_id => {
            ctx.require_admin("os_compute_api:os-keypairs:index")?;
            Ok(u.clone())
        }
        _ => Ok(ctx.user_id.clone()),
    }
}

async fn keypairs_index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = query_pairs(q.as_deref());
    let owner = keypair_owner(&ctx, &params)?;
    let mut keys = app.compute.keypairs.filter(|k| k.user_id == owner);
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    let mut next = None;
    if ctx.at_least(35) {
        if let Some((_, m)) = params.iter().rev().find(|(k, _)| k == "marker") {
            let pos = keys
                .iter()
                .position(|k| k.name == *m)
                .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?;
            keys.drain(..=pos);
        }
        if let Some((_, l)) = params.iter().rev().find(|(k, _)| k == "limit") {
            let n: usize = l.parse().map_err(|_| qerr("limit", l, "not an integer"))?;
            let n = n.min(app.cfg.max_limit);
            if keys.len() > n {
                keys.truncate(n);
            }
            if keys.len() == n && n > 0 {
                next = keys.last().map(|k| k.name.clone());
            }
        }
    }
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut v =
                json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
            if ctx.at_least(2) {
                v["type"] = json!(k.key_type);
            }
            json!({"keypair": v})
        })
        .collect();
    let mut body = json!({"keypairs": items});
    if let Some(m) = next {
        body["keypairs_links"] = super::next_link(&links, "os-keypairs", &params, &m);
    }
    Ok(axum::Json(body).into_response())
}

async fn keypair_create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // Nova's rule is `admin or user_id:%(user_id)s`: any role may manage
    // its own keypairs (another user's: admin only, see keypairs::parse_create).
    let v = parse_json(&headers, &body)?;
    let req = crate::compute::keypairs::parse_create(&v, &ctx)?;
    let (kp, private) = crate::compute::keypairs::create(&app, &ctx, req).await?;
    let status = if ctx.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_status(
        status,
        json!({"keypair": views::keypair(&kp, &ctx, private.as_deref())}),
    ))
}

fn find_keypair(
    app: &App,
    ctx: &Ctx,
    name: &str,
    params: &[(String, String)],
) -> Result<Arc<Keypair>, Fault> {
    let owner = keypair_owner(ctx, params)?;
    app.compute
        .keypairs
        .get(&Keypair::key(&owner, name))
        .ok_or_else(|| Fault::not_found(format!("Keypair {name} not found for user {owner}")))
}

async fn keypair_show(
    State(app): A,
    Extension(ctx): C,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let k = find_keypair(&app, &ctx, &name, &query_pairs(q.as_deref()))?;
    let mut v = views::keypair(&k, &ctx, None);
    v["created_at"] = json!(rova_core::model::iso_micro(&k.created_at));
    v["deleted"] = json!(false);
    v["deleted_at"] = Value::Null;
    v["updated_at"] = Value::Null;
    v["id"] = json!(k.id);
    Ok(axum::Json(json!({"keypair": v})).into_response())
}

async fn keypair_delete(
    State(app): A,
    Extension(ctx): C,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    // `admin or user_id:%(user_id)s`, as create (find_keypair checks user_id).
    let k = find_keypair(&app, &ctx, &name, &query_pairs(q.as_deref()))?;
    // A delete racing this one may have removed it since: then it is gone
    // for this request too (Nova's 404), not deleted twice.
    app.compute
        .keypairs
        .remove(&Keypair::key(&k.user_id, &k.name))
        .await?
        .ok_or_else(|| {
            Fault::not_found(format!("Keypair {name} not found for user {}", k.user_id))
        })?;
    Ok(empty(if ctx.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }))
}

// ---- limits ----

async fn limits(State(app): A, Extension(ctx): C, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = query_pairs(q.as_deref());
    // Nova checks `limits:other_project` (admin) whenever ?tenant_id= is
    // given, the caller's own project included.
    let project = match params.iter().rev().find(|(k, _)| k == "tenant_id") {
        Some((_, t)) => {
            ctx.require_admin("os_compute_api:limits:other_project")?;
            t.clone()
        }
        None => ctx.project_id.clone(),
    };
    let q = &app.compute.effective_quota(&project);
    let u = app.compute.usage_of(&project);
    let groups_used = crate::compute::server_groups::count_for_project(&app, &project);
    let mut abs = json!({
        "maxServerMeta": q.metadata_items,
        "maxTotalCores": q.cores,
        "maxTotalInstances": q.instances,
        "maxTotalKeypairs": q.key_pairs,
        "maxTotalRAMSize": q.ram,
        "maxServerGroups": q.server_groups,
        "maxServerGroupMembers": q.server_group_members,
        "totalCoresUsed": u.cores,
        "totalInstancesUsed": u.instances,
        "totalRAMUsed": u.ram,
        "totalServerGroupsUsed": groups_used,
    });
    if !ctx.at_least(39) {
        abs["maxImageMeta"] = json!(q.metadata_items);
    }
    if !ctx.at_least(57) {
        abs["maxPersonality"] = json!(q.injected_files);
        abs["maxPersonalitySize"] = json!(q.injected_file_content_bytes);
    }
    if !ctx.at_least(36) {
        abs["maxSecurityGroupRules"] = json!(-1);
        abs["maxSecurityGroups"] = json!(-1);
        abs["maxTotalFloatingIps"] = json!(-1);
        abs["totalSecurityGroupsUsed"] = json!(0);
        abs["totalFloatingIpsUsed"] = json!(0);
    }
    Ok(axum::Json(json!({"limits": {"rate": [], "absolute": abs}})).into_response())
}

// ---- availability zones ----

/// The zones of the compute hosts: available when one of their services
/// is enabled (Nova lists the available zones first).
fn zones(app: &App) -> Vec<(String, bool)> {
    let fleet = &app.compute.fleet;
    let mut z: Vec<(String, bool)> = fleet
        .zones()
        .into_iter()
        .map(|zone| {
            let enabled = fleet.hosts.iter().any(|h| {
                h.availability_zone == zone && !fleet.service("nova-compute", &h.name).disabled
            });
            (zone, enabled)
        })
        .collect();
    z.sort_by_key(|(_, enabled)| !*enabled);
    z
}

async fn az_index(State(app): A) -> ApiResult<Response> {
    let info: Vec<Value> = zones(&app)
        .into_iter()
        .map(|(zone, ok)| json!({"zoneName": zone, "zoneState": {"available": ok}, "hosts": null}))
        .collect();
    Ok(axum::Json(json!({"availabilityZoneInfo": info})).into_response())
}

async fn az_detail(State(app): A, Extension(ctx): C) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-availability-zone:detail")?;
    let now_t = app.clock.now();
    let now = iso_micro_now(&app);
    let fleet = &app.compute.fleet;
    let mut info: Vec<Value> = zones(&app)
        .into_iter()
        .map(|(zone, ok)| {
            let mut hosts = serde_json::Map::new();
            for h in fleet.hosts.iter().filter(|h| h.availability_zone == zone) {
                let svc = fleet.service("nova-compute", &h.name);
                let updated = rova_core::model::iso_micro(&fleet.heartbeat(&svc, now_t));
                hosts.insert(
                    h.name.clone(),
                    json!({"nova-compute": {"available": !svc.forced_down, "active": !svc.disabled, "updated_at": updated}}),
                );
            }
            json!({"zoneName": zone, "zoneState": {"available": ok}, "hosts": hosts})
        })
        .collect();
    info.push(json!({"zoneName": "internal", "zoneState": {"available": true},
         "hosts": {crate::compute::fleet::CONTROL_HOST: {"nova-conductor": {"available": true, "active": true, "updated_at": now},
                                    "nova-scheduler": {"available": true, "active": true, "updated_at": now}}}}));
    Ok(axum::Json(json!({"availabilityZoneInfo": info})).into_response())
}

fn iso_micro_now(app: &App) -> String {
    rova_core::model::iso_micro(&app.clock.now())
}

// ---- image proxy (2.1–2.35) ----

fn proxy_available(ctx: &Ctx) -> Result<(), Fault> {
    if ctx.at_least(36) {
        Err(Fault::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

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
