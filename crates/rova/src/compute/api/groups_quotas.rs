//! Routes for server groups (`/os-server-groups`) and quota sets
//! (`/os-quota-sets/{project_id}[/defaults|/detail]`): request parsing per
//! microversion with Nova's 400 texts, and the views. The rules live in
//! `compute::server_groups` and `compute::quotas`.

use super::{qerr, query_pairs};
use crate::app::App;
use crate::compute::quotas::{self, visible_resources};
use crate::compute::server_groups::{self, NewGroup, ServerGroup};
use crate::config::QuotaDefaults;
use crate::http::{empty, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::scheduler::GroupPolicy;
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/os-server-groups", get(groups_index).post(group_create))
        .route(
            "/os-server-groups/{id}",
            get(group_show).delete(group_delete),
        )
        .route(
            "/os-quota-sets/{project_id}",
            get(quota_show).put(quota_update).delete(quota_delete),
        )
        .route("/os-quota-sets/{project_id}/defaults", get(quota_defaults))
        .route("/os-quota-sets/{project_id}/detail", get(quota_detail))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

fn body_err(field: &str, v: &Value, why: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {v}. {why}"
    ))
}

/// Unknown query parameters are a 400 from 2.75 (`additionalProperties`).
fn check_query(ctx: &Ctx, params: &[(String, String)], allowed: &[&str]) -> Result<(), Fault> {
    if !ctx.at_least(75) {
        return Ok(());
    }
    for (k, _) in params {
        if !allowed.contains(&k.as_str()) {
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters. Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    Ok(())
}

// ---- server groups ----

fn group_view(g: &ServerGroup, ctx: &Ctx, app: &App) -> Value {
    let members: Vec<String> = crate::compute::server_groups::members(app, &g.uuid)
        .into_iter()
        .filter(|m| app.compute.instances.get(m).is_some_and(|i| !i.deleted))
        .collect();
    let mut v = json!({"id": g.uuid, "name": g.name, "members": members});
    if ctx.at_least(64) {
        v["policy"] = json!(g.policy);
        v["rules"] = match g.max_server_per_host {
            Some(n) => json!({"max_server_per_host": n}),
            None => json!({}),
        };
    } else {
        v["policies"] = json!([g.policy]);
        v["metadata"] = json!({});
    }
    if ctx.at_least(13) {
        v["project_id"] = json!(g.project_id);
        v["user_id"] = json!(g.user_id);
    }
    v
}

fn non_negative(name: &str, v: &str) -> Result<usize, Fault> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(qerr(name, v, &format!("'{v}' does not match '^[0-9]*$'")));
    }
    Ok(v.parse::<usize>().unwrap_or(usize::MAX))
}

async fn groups_index(
    State(app): A,
    Extension(ctx): C,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = query_pairs(q.as_deref());
    check_query(&ctx, &params, &["all_projects", "limit", "offset"])?;
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let limit = match last("limit") {
        Some(v) => non_negative("limit", &v)?.min(app.cfg.max_limit),
        None => app.cfg.max_limit,
    };
    let offset = match last("offset") {
        Some(v) => non_negative("offset", &v)?,
        None => 0,
    };
    let all_projects = params.iter().any(|(k, _)| k == "all_projects");
    let groups = server_groups::list(&app, &ctx, all_projects, offset, limit);
    let items: Vec<Value> = groups.iter().map(|g| group_view(g, &ctx, &app)).collect();
    Ok(axum::Json(json!({"server_groups": items})).into_response())
}

/// The create body per microversion (`policies` list below 2.64, `policy`
/// + `rules` from 2.64).
fn parse_group(v: &Value, ctx: &Ctx) -> Result<NewGroup, Fault> {
    let root = v
        .as_object()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    for k in root.keys() {
        if k != "server_group" {
            return Err(Fault::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    let sg_v = root
        .get("server_group")
        .ok_or_else(|| Fault::bad_request("'server_group' is a required property"))?;
    let sg = sg_v.as_object().ok_or_else(|| {
        body_err(
            "server_group",
            sg_v,
            &format!("{sg_v} is not of type 'object'"),
        )
    })?;
    let new_style = ctx.at_least(64);
    let allowed: &[&str] = if new_style {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    for k in sg.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(body_err(
                "server_group",
                sg_v,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let required = |key: &str| {
        sg.get(key).ok_or_else(|| {
            body_err(
                "server_group",
                sg_v,
                &format!("'{key}' is a required property"),
            )
        })
    };
    let name = fields::name("name", required("name")?)?;
    let mut choices: Vec<&str> = vec!["anti-affinity", "affinity"];
    if ctx.at_least(15) {
        choices.extend(["soft-anti-affinity", "soft-affinity"]);
    }
    let enum_fail = |field: &str, v: &Value| {
        let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
        body_err(
            field,
            v,
            &format!("{v} is not one of [{}]", list.join(", ")),
        )
    };
    if new_style {
        let p = required("policy")?;
        let policy = p
            .as_str()
            .filter(|s| choices.contains(s))
            .and_then(GroupPolicy::parse)
            .ok_or_else(|| enum_fail("policy", p))?;
        let mut max_server_per_host = None;
        if let Some(r) = sg.get("rules") {
            let ro = r
                .as_object()
                .ok_or_else(|| body_err("rules", r, &format!("{r} is not of type 'object'")))?;
            for k in ro.keys() {
                if k != "max_server_per_host" {
                    return Err(body_err(
                        "rules",
                        r,
                        &format!("Additional properties are not allowed ('{k}' was unexpected)"),
                    ));
                }
            }
            if let Some(m) = ro.get("max_server_per_host") {
                max_server_per_host = Some(fields::positive_integer("max_server_per_host", m)?);
            }
            if policy != GroupPolicy::AntiAffinity && !ro.is_empty() {
                return Err(Fault::bad_request(
                    "Only anti-affinity policy supports rules.",
                ));
            }
        }
        Ok(NewGroup {
            name,
            policy,
            max_server_per_host,
        })
    } else {
        let p = required("policies")?;
        let list = p
            .as_array()
            .ok_or_else(|| body_err("policies", p, &format!("{p} is not of type 'array'")))?;
        if list.is_empty() {
            return Err(body_err("policies", p, "[] should be non-empty"));
        }
        if list.len() > 1 {
            return Err(body_err("policies", p, &format!("{p} is too long")));
        }
        let policy = list[0]
            .as_str()
            .filter(|s| choices.contains(s))
            .and_then(GroupPolicy::parse)
            .ok_or_else(|| enum_fail("policies", &list[0]))?;
        Ok(NewGroup {
            name,
            policy,
            max_server_per_host: None,
        })
    }
}

async fn group_create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let req = parse_group(&v, &ctx)?;
    let g = server_groups::create(&app, &ctx, req).await?;
    Ok(axum::Json(json!({"server_group": group_view(&g, &ctx, &app)})).into_response())
}

async fn group_show(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    if ctx.at_least(102) {
        check_query(&ctx, &query_pairs(q.as_deref()), &[])?;
    }
    let g = server_groups::get(&app, &ctx, &id, "os_compute_api:os-server-groups:show")?;
    Ok(axum::Json(json!({"server_group": group_view(&g, &ctx, &app)})).into_response())
}

async fn group_delete(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    server_groups::delete(&app, &ctx, &id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---- quota sets ----

fn quota_set(ctx: &Ctx, id: Option<&str>, q: &QuotaDefaults) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    for r in visible_resources(ctx) {
        m.insert(r.into(), json!(quotas::limit_of(q, r)));
    }
    json!({"quota_set": m})
}

async fn quota_show(
    State(app): A,
    Extension(ctx): C,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    check_query(&ctx, &query_pairs(q.as_deref()), &["user_id"])?;
    quotas::check_read(&app, &ctx, &pid, "os_compute_api:os-quota-sets:show")?;
    Ok(axum::Json(quota_set(
        &ctx,
        Some(&pid),
        &app.compute.effective_quota(&pid),
    ))
    .into_response())
}

async fn quota_defaults(
    State(app): A,
    Extension(ctx): C,
    Path(pid): Path<String>,
) -> ApiResult<Response> {
    quotas::verify_project(&app, &pid)?;
    Ok(axum::Json(quota_set(&ctx, Some(&pid), app.compute.default_quota())).into_response())
}

async fn quota_detail(
    State(app): A,
    Extension(ctx): C,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    check_query(&ctx, &query_pairs(q.as_deref()), &["user_id"])?;
    quotas::check_read(&app, &ctx, &pid, "os_compute_api:os-quota-sets:detail")?;
    let limits = app.compute.effective_quota(&pid);
    let used = quotas::in_use(&app, &ctx, &pid)?;
    let mut m = Map::new();
    m.insert("id".into(), json!(pid));
    for r in visible_resources(&ctx) {
        m.insert(
            r.into(),
            json!({"in_use": used.get(r).copied().unwrap_or(0), "limit": quotas::limit_of(&limits, r), "reserved": 0}),
        );
    }
    Ok(axum::Json(json!({"quota_set": m})).into_response())
}

/// The PUT body: `{"quota_set": {<resource>: int|digits, "force"?}}`,
/// resources per microversion.
fn parse_quota_update(v: &Value, ctx: &Ctx) -> Result<(BTreeMap<String, i64>, bool), Fault> {
    let root = v
        .as_object()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    for k in root.keys() {
        if k != "quota_set" {
            return Err(Fault::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    let qs_v = root
        .get("quota_set")
        .ok_or_else(|| Fault::bad_request("'quota_set' is a required property"))?;
    let qs = qs_v.as_object().ok_or_else(|| {
        body_err(
            "quota_set",
            qs_v,
            &format!("{qs_v} is not of type 'object'"),
        )
    })?;
    let allowed = visible_resources(ctx);
    let mut force = false;
    let mut values = BTreeMap::new();
    for (k, val) in qs {
        if k == "force" {
            force = fields::boolean("force", val)?;
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(body_err(
                "quota_set",
                qs_v,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
        let n: i64 = match val {
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                body_err(k, val, &format!("{val} is not of type 'integer', 'string'"))
            })?,
            Value::String(s) => {
                let digits = s.strip_prefix('-').unwrap_or(s);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(body_err(
                        k,
                        val,
                        &format!("'{s}' does not match '^-?[0-9]+$'"),
                    ));
                }
                s.parse::<i64>().unwrap_or(i64::MAX)
            }
            other => {
                return Err(body_err(
                    k,
                    other,
                    &format!("{other} is not of type 'integer', 'string'"),
                ))
            }
        };
        if n < -1 {
            return Err(body_err(
                k,
                &json!(n),
                &format!("{n} is less than the minimum of -1"),
            ));
        }
        if n > 0x7FFF_FFFF {
            return Err(body_err(
                k,
                &json!(n),
                &format!("{n} is greater than the maximum of 2147483647"),
            ));
        }
        values.insert(k.clone(), n);
    }
    Ok((values, force))
}

async fn quota_update(
    State(app): A,
    Extension(ctx): C,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_query(&ctx, &query_pairs(q.as_deref()), &["user_id"])?;
    ctx.require_admin("os_compute_api:os-quota-sets:update")?;
    let (values, force) = parse_quota_update(&parse_json(&headers, &body)?, &ctx)?;
    let limits = quotas::update(&app, &ctx, &pid, values, force).await?;
    Ok(axum::Json(quota_set(&ctx, None, &limits)).into_response())
}

async fn quota_delete(
    State(app): A,
    Extension(ctx): C,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    check_query(&ctx, &query_pairs(q.as_deref()), &["user_id"])?;
    quotas::delete(&app, &ctx, &pid).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
