//! Flavors (`/flavors`, `/flavors/detail`, `/flavors/{id}`): listing with
//! Nova's filters, sorting and paging, show, and the admin create, update
//! (description) and delete. Extra specs live in `extra_specs`, tenant
//! access in `flavor_access`.

use super::{qerr, query_pairs, schema, Links};
use crate::app::App;
use crate::compute::views;
use crate::compute::Flavor;
use crate::http::{empty, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
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
        .route("/flavors", get(flavors_index).post(flavor_create))
        .route("/flavors/detail", get(flavors_detail))
        .route(
            "/flavors/{id}",
            get(flavor_show).put(flavor_update).delete(flavor_delete),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

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
    let name_taken = Fault::conflict(format!("Flavor with name {name} already exists."));
    if app.compute.flavors.all().iter().any(|x| x.name == name) {
        return Err(name_taken.into());
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
        .create(
            flavor,
            Fault::conflict(format!("Flavor with ID {id} already exists.")),
            name_taken,
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
    let stored = app
        .compute
        .flavors
        .update(
            &id,
            || Fault::not_found(format!("Flavor {id} could not be found.")),
            |f| f.description = description,
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
    app.compute.flavors.delete(&id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
