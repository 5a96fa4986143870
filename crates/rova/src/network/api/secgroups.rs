//! Neutron's `security-groups` and `security-group-rules` routes: list
//! (filters, `fields`, sorting, paging), show, create, update (groups) and
//! delete, with Neutron's field names, policy and errors. Listing creates
//! the caller's `default` group on first use, as Neutron does.
//!
//! Rules are stored and shown only; nothing filters traffic (see
//! [`crate::network::secgroups`]).
//!
//! Visibility: a project sees its own groups and rules (and the rules of
//! its groups); admins see everything; anything else is 404.

use super::{
    bad, created, get_bool, get_str, list_body, one, owner_from, parse_params, policy,
    project_fields, resource_body, select, NResult,
};
use crate::app::App;
use crate::http::{host_url, Ctx};
use crate::image::api::Caller;
use crate::network::secgroups::{
    check_group_name, convert_ethertype, convert_ip_prefix, convert_port, convert_protocol,
    group_visible, normalize_rule, normalized_cidr, SecurityGroup, SecurityGroupRule, SgError,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rova_core::model::iso_z;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const SG_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "tenant_id",
    "project_id",
    "security_group_rules",
    "stateful",
    "shared",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];
const RULE_ATTRS: &[&str] = &[
    "id",
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "normalized_cidr",
    "tenant_id",
    "project_id",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "belongs_to_default_sg",
];
const SG_CREATE: &[&str] = &["name", "description", "tenant_id", "project_id", "stateful"];
const SG_UPDATE: &[&str] = &["name", "description", "stateful"];
const SG_READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "security_group_rules",
    "shared",
    "created_at",
    "updated_at",
    "revision_number",
];
const RULE_CREATE: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "tenant_id",
    "project_id",
];

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/network/v2.0/security-groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/network/v2.0/security-groups/{id}",
            get(show_group).put(update_group).delete(delete_group),
        )
        .route(
            "/network/v2.0/security-group-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/network/v2.0/security-group-rules/{id}",
            get(show_rule).delete(delete_rule),
        )
}

// ---- views ----

/// A rule as Neutron renders it.
pub fn rule_json(r: &SecurityGroupRule, in_default: bool) -> Value {
    json!({
        "id": r.id,
        "security_group_id": r.security_group_id,
        "direction": r.direction,
        "ethertype": r.ethertype,
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix,
        "remote_group_id": r.remote_group_id,
        "remote_address_group_id": null,
        "normalized_cidr": r.remote_ip_prefix.as_deref().and_then(normalized_cidr),
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "description": r.description,
        "tags": [],
        "created_at": iso_z(&r.created_at),
        "updated_at": iso_z(&r.updated_at),
        "revision_number": 0,
        "belongs_to_default_sg": in_default,
    })
}

/// A group as Neutron renders it (with its rules).
pub fn group_json(g: &SecurityGroup) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "tenant_id": g.project_id,
        "project_id": g.project_id,
        "security_group_rules": g.rules.iter()
            .map(|r| rule_json(r, g.is_default)).collect::<Vec<_>>(),
        "stateful": g.stateful,
        "shared": false,
        "tags": [],
        "created_at": iso_z(&g.created_at),
        "updated_at": iso_z(&g.updated_at),
        "revision_number": g.revision_number,
    })
}

fn visible_group(app: &App, ctx: &Ctx, id: &str) -> NResult<Arc<SecurityGroup>> {
    app.networks
        .security_groups
        .get(id)
        .filter(|g| group_visible(g, &ctx.project_id, ctx.is_admin()))
        .ok_or_else(|| SgError::not_found(id).into())
}

fn may_change_group(g: &SecurityGroup, ctx: &Ctx) -> bool {
    ctx.may_change(&g.project_id)
}

/// A rule the caller may see: its own, or one in a group it owns.
fn rule_visible(g: &SecurityGroup, r: &SecurityGroupRule, ctx: &Ctx) -> bool {
    ctx.is_admin() || r.project_id == ctx.project_id || g.project_id == ctx.project_id
}

/// The projects whose default group a list should make sure of: the
/// caller's, and one named in a `project_id`/`tenant_id` filter the caller
/// may see.
fn list_projects(ctx: &Ctx, raw: Option<&str>) -> Vec<String> {
    let mut out = vec![ctx.project_id.clone()];
    if let Some(q) = raw {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if (k == "project_id" || k == "tenant_id")
                && (ctx.is_admin() || v == ctx.project_id)
                && !out.iter().any(|p| *p == v)
            {
                out.push(v.into_owned());
            }
        }
    }
    out
}

async fn ensure_defaults(app: &App, ctx: &Ctx, raw: Option<&str>) -> NResult<()> {
    for p in list_projects(ctx, raw) {
        app.networks
            .ensure_default_group(&p, app.clock.now())
            .await?;
    }
    Ok(())
}

// ---- groups ----

async fn list_groups(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    ensure_defaults(&app, &ctx, raw.as_deref()).await?;
    let items: Vec<Value> = app
        .networks
        .visible_groups(&ctx.project_id, ctx.is_admin())
        .iter()
        .map(|g| group_json(g))
        .collect();
    let (items, more) = select(items, &p, SG_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "security_groups",
        "security-groups",
        items,
        more,
        &p,
    ))
    .into_response())
}

async fn show_group(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let g = visible_group(&app, &ctx, &id)?;
    Ok(one(
        "security_group",
        project_fields(group_json(&g), raw.as_deref()),
    ))
}

async fn create_group(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "security_group", SG_CREATE, &[])?;
    let name = get_str(&m, "name", 255)?.unwrap_or_default();
    check_group_name(&name)?;
    if !ctx.is_member() {
        return Err(policy("rule:create_security_group"));
    }
    let project = owner_from(&m, &ctx)?;
    let description = get_str(&m, "description", 255)?.unwrap_or_default();
    let stateful = get_bool(&m, "stateful")?.unwrap_or(true);
    let g = app
        .networks
        .create_group(&project, name, description, stateful, app.clock.now())
        .await?;
    Ok(created("security_group", group_json(&g)))
}

async fn update_group(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_group(&app, &ctx, &id)?;
    let m = resource_body(&body, "security_group", SG_UPDATE, SG_READ_ONLY)?;
    let name = get_str(&m, "name", 255)?;
    if let Some(n) = &name {
        check_group_name(n)?;
    }
    if !may_change_group(&cur, &ctx) {
        return Err(policy("rule:update_security_group"));
    }
    let description = get_str(&m, "description", 255)?;
    let stateful = get_bool(&m, "stateful")?;
    let g = app
        .networks
        .update_group(&id, name, description, stateful, app.clock.now())
        .await?;
    Ok(one("security_group", group_json(&g)))
}

async fn delete_group(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let g = visible_group(&app, &ctx, &id)?;
    if !may_change_group(&g, &ctx) {
        return Err(policy("rule:delete_security_group"));
    }
    let _guard = app.networks.topology_lock().await;
    app.networks.delete_group(&id, ctx.is_admin()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- rules ----

async fn list_rules(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    ensure_defaults(&app, &ctx, raw.as_deref()).await?;
    let items: Vec<Value> = app
        .networks
        .security_groups
        .all()
        .iter()
        .flat_map(|g| {
            g.rules
                .iter()
                .filter(|r| rule_visible(g, r, &ctx))
                .map(|r| rule_json(r, g.is_default))
                .collect::<Vec<_>>()
        })
        .collect();
    let (items, more) = select(items, &p, RULE_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "security_group_rules",
        "security-group-rules",
        items,
        more,
        &p,
    ))
    .into_response())
}

fn visible_rule(
    app: &App,
    ctx: &Ctx,
    id: &str,
) -> NResult<(Arc<SecurityGroup>, SecurityGroupRule)> {
    app.networks
        .find_rule(id)
        .filter(|(g, r)| rule_visible(g, r, ctx))
        .ok_or_else(|| SgError::rule_not_found(id).into())
}

async fn show_rule(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let (g, r) = visible_rule(&app, &ctx, &id)?;
    Ok(one(
        "security_group_rule",
        project_fields(rule_json(&r, g.is_default), raw.as_deref()),
    ))
}

fn required<'a>(m: &'a Map<String, Value>, key: &str) -> NResult<&'a Value> {
    m.get(key).ok_or_else(|| {
        bad(format!(
            "Failed to parse request. Required attribute '{key}' not specified"
        ))
    })
}

/// A rule from a create body, converted and checked as Neutron does
/// (everything but the group lookups and the duplicate check).
fn rule_from_body(
    m: &Map<String, Value>,
    project: String,
    now: chrono::DateTime<chrono::Utc>,
) -> NResult<SecurityGroupRule> {
    let sg_id = match required(m, "security_group_id")? {
        Value::String(s) => s.clone(),
        v => {
            return Err(bad(format!(
                "Invalid input for security_group_id. Reason: '{v}' is not a valid string."
            )))
        }
    };
    let direction = match required(m, "direction")?.as_str() {
        Some(d @ ("ingress" | "egress")) => d.to_string(),
        _ => {
            let v = &m["direction"];
            let shown = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            return Err(bad(format!(
                "Invalid input for direction. Reason: '{shown}' is not in ['ingress', 'egress']."
            )));
        }
    };
    let ethertype = match m.get("ethertype") {
        None => "IPv4".to_string(),
        Some(v) => convert_ethertype(v)?,
    };
    let protocol = match m.get("protocol") {
        None => None,
        Some(v) => convert_protocol(v)?,
    };
    let port = |k: &str| -> NResult<Option<u32>> {
        Ok(match m.get(k) {
            None => None,
            Some(v) => convert_port(v)?,
        })
    };
    let remote_ip_prefix = match m.get("remote_ip_prefix") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => convert_ip_prefix(s)?,
        Some(v) => {
            return Err(SgError::new(
                400,
                "InvalidCIDR",
                format!("Invalid CIDR {v} given as IP prefix."),
            )
            .into())
        }
    };
    let remote_group_id = match m.get("remote_group_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(bad(format!(
                "Invalid input for remote_group_id. Reason: '{v}' is not a valid string."
            )))
        }
    };
    if m.get("remote_address_group_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(bad("Address groups are not supported by this service."));
    }
    let mut rule = SecurityGroupRule {
        id: uuid::Uuid::new_v4().to_string(),
        security_group_id: sg_id,
        project_id: project,
        direction,
        ethertype,
        protocol,
        port_range_min: port("port_range_min")?,
        port_range_max: port("port_range_max")?,
        remote_ip_prefix,
        remote_group_id,
        description: get_str(m, "description", 255)?.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    normalize_rule(&mut rule)?;
    Ok(rule)
}

async fn create_rule(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "security_group_rule", RULE_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_security_group_rule"));
    }
    let project = owner_from(&m, &ctx)?;
    let rule = rule_from_body(&m, project, app.clock.now())?;
    if let Some(remote) = &rule.remote_group_id {
        visible_group(&app, &ctx, remote)?;
    }
    let g = visible_group(&app, &ctx, &rule.security_group_id)?;
    let rule = app.networks.add_rule(rule).await?;
    Ok(created(
        "security_group_rule",
        rule_json(&rule, g.is_default),
    ))
}

async fn delete_rule(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let (g, r) = visible_rule(&app, &ctx, &id)?;
    let owner = r.project_id == ctx.project_id || g.project_id == ctx.project_id;
    if !(ctx.is_admin() || (ctx.is_member() && owner)) {
        return Err(policy("rule:delete_security_group_rule"));
    }
    app.networks.delete_rule(&g.id, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rule_bodies_default_and_normalise() {
        let now = Utc::now();
        let r = rule_from_body(
            &body(json!({"security_group_id": "g", "direction": "ingress",
                "protocol": "TCP", "port_range_min": "22", "port_range_max": 22,
                "remote_ip_prefix": "10.0.0.5"})),
            "p".into(),
            now,
        )
        .expect("valid");
        assert_eq!(r.ethertype, "IPv4");
        assert_eq!(r.protocol.as_deref(), Some("tcp"));
        assert_eq!((r.port_range_min, r.port_range_max), (Some(22), Some(22)));
        assert_eq!(r.remote_ip_prefix.as_deref(), Some("10.0.0.5/32"));
        let v = rule_json(&r, false);
        assert_eq!(v["normalized_cidr"], json!("10.0.0.5/32"));
        assert_eq!(v["tenant_id"], json!("p"));
        let status = |v: Value| {
            rule_from_body(&body(v), "p".into(), now)
                .map(|_| ())
                .unwrap_err()
                .status
        };
        assert_eq!(status(json!({"direction": "ingress"})), 400);
        assert_eq!(status(json!({"security_group_id": "g"})), 400);
        assert_eq!(
            status(json!({"security_group_id": "g", "direction": "sideways"})),
            400
        );
        assert_eq!(
            status(
                json!({"security_group_id": "g", "direction": "ingress", "ethertype": "IPv6",
                "remote_ip_prefix": "10.0.0.0/8"})
            ),
            400
        );
    }

    #[test]
    fn group_view_has_neutron_fields() {
        let now = Utc::now();
        let g = crate::network::secgroups::new_group(
            "i".into(),
            "web".into(),
            "d".into(),
            "p",
            true,
            false,
            now,
        );
        let v = group_json(&g);
        for k in SG_ATTRS {
            assert!(v.get(*k).is_some(), "{k}");
        }
        let rules = v["security_group_rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(rules.len(), 2);
        for k in RULE_ATTRS {
            assert!(rules[0].get(*k).is_some(), "{k}");
        }
        assert_eq!(rules[0]["belongs_to_default_sg"], json!(false));
    }
}
