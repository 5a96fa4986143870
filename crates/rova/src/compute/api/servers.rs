//! Routes for servers and their sub-resources: list/detail/show, create,
//! update, delete, ips, metadata, tags, instance actions, server password.

use super::{query_pairs, Links};
use crate::app::App;
use crate::compute::servers::{self as svc, TagChange};
use crate::compute::views::{self, ServerView};
use crate::compute::{build, ActionLog};
use crate::http::{empty, json_status, parse_json, set_header, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/servers", get(index).post(create))
        .route("/servers/detail", get(detail))
        .route("/servers/{id}", get(show).put(update).delete(delete))
        .route("/servers/{id}/action", post(super::action::action))
        .route("/servers/{id}/ips", get(ips))
        .route("/servers/{id}/ips/{label}", get(ips_for))
        .route(
            "/servers/{id}/metadata",
            get(meta_list).post(meta_merge).put(meta_replace),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            get(meta_get).put(meta_put).delete(meta_delete),
        )
        .route(
            "/servers/{id}/tags",
            get(tags_list).put(tags_replace).delete(tags_clear),
        )
        .route(
            "/servers/{id}/tags/{tag}",
            get(tag_check).put(tag_add).delete(tag_remove),
        )
        .route("/servers/{id}/os-instance-actions", get(actions_list))
        .route("/servers/{id}/os-instance-actions/{req}", get(action_show))
        .route(
            "/servers/{id}/os-server-password",
            get(password_get).delete(password_clear),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

fn list_response(
    app: &App,
    ctx: &Ctx,
    links: &Links,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<Response> {
    let params = query_pairs(raw.as_deref());
    let page = svc::list(app, ctx, &params, detail)?;
    let servers = if detail {
        let servers = crate::compute::floating::with_floating_ips_all(app, page.servers);
        crate::compute::secgroups::with_port_groups_all(app, ctx, servers)
    } else {
        page.servers
    };
    // Each server's view is written out as soon as it is made, and
    // dropped while it is still in the cache: the same bytes as the whole
    // `{"servers": [...], "servers_links": [...]}` document serialised at
    // once (keys in that order), into a buffer sized up front. A page of
    // 1,000 servers took 2.5 times less CPU than building every view
    // first (docs/benchmarks.md).
    let mut body: Vec<u8> = Vec::with_capacity(64 + servers.len() * 2048);
    body.extend_from_slice(b"{\"servers\":[");
    for (n, i) in servers.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        let view = if detail {
            views::server(
                i,
                ctx,
                links,
                ServerView::Detail,
                app.compute.fleet.host_status(i.host.as_deref()),
            )
        } else {
            views::server_brief(i, links)
        };
        serde_json::to_writer(&mut body, &view)
            .map_err(|e| rova_core::Fault::internal(format!("rendering servers: {e}")))?;
    }
    body.push(b']');
    if let Some(q) = page.next_query {
        let path = if detail { "servers/detail" } else { "servers" };
        let next = json!([{"rel": "next", "href": format!("{}/{path}?{q}", links.versioned)}]);
        body.extend_from_slice(b",\"servers_links\":");
        serde_json::to_writer(&mut body, &next)
            .map_err(|e| rova_core::Fault::internal(format!("rendering servers: {e}")))?;
    }
    body.push(b'}');
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    list_response(&app, &ctx, &links, q, false)
}

async fn detail(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    list_response(&app, &ctx, &links, q, true)
}

async fn show(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = app.compute.with_tags(svc::visible(&app, &ctx, &id)?);
    let inst = crate::compute::floating::with_floating_ips(&app, inst);
    let inst = crate::compute::secgroups::with_port_groups(&app, &ctx, inst);
    Ok(
        axum::Json(json!({"server": views::server(&inst, &ctx, &links, ServerView::Show, app.compute.fleet.host_status(inst.host.as_deref()))}))
            .into_response(),
    )
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let req = super::create::build_request(&v, &ctx, &app)?;
    let want_rid = req.return_reservation_id;
    let created = build::create(&app, &ctx, req).await?;
    if want_rid {
        return Ok(json_status(
            StatusCode::ACCEPTED,
            json!({"reservation_id": created.reservation_id}),
        ));
    }
    let inst = &created.first;
    let server = json!({
        "id": inst.uuid,
        "links": links.pair("servers", &inst.uuid),
        "OS-DCF:diskConfig": if inst.auto_disk_config { "AUTO" } else { "MANUAL" },
        // Nova echoes the request's list as sent (or `default` without one).
        "security_groups": v
            .get("server")
            .and_then(|s| s.get("security_groups"))
            .cloned()
            .unwrap_or_else(|| json!([{"name": "default"}])),
        "adminPass": created.admin_pass,
    });
    let mut resp = json_status(StatusCode::ACCEPTED, json!({"server": server}));
    set_header(
        &mut resp,
        "location",
        &format!("{}/servers/{}", links.versioned, inst.uuid),
    );
    Ok(resp)
}

async fn update(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    svc::visible(&app, &ctx, &id)?;
    let u = super::create::update_request(&v, &ctx)?;
    let inst = app
        .compute
        .with_tags(svc::update(&app, &ctx, &id, u).await?);
    let inst = crate::compute::floating::with_floating_ips(&app, inst);
    let inst = crate::compute::secgroups::with_port_groups(&app, &ctx, inst);
    let view = if ctx.at_least(75) {
        ServerView::Show
    } else {
        ServerView::Reduced
    };
    Ok(axum::Json(json!({"server": views::server(&inst, &ctx, &links, view, app.compute.fleet.host_status(inst.host.as_deref()))})).into_response())
}

async fn delete(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    svc::delete(&app, &ctx, &id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn ips(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    let inst = crate::compute::floating::with_floating_ips(&app, inst);
    Ok(axum::Json(json!({"addresses": views::addresses(&inst, false)})).into_response())
}

async fn ips_for(
    State(app): A,
    Extension(ctx): C,
    Path((id, label)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    let inst = crate::compute::floating::with_floating_ips(&app, inst);
    let all = views::addresses(&inst, false);
    match all.get(&label) {
        Some(list) => Ok(axum::Json(json!({ label: list })).into_response()),
        None => Err(Fault::not_found("Instance is not a member of specified network").into()),
    }
}

// ---- metadata ----

async fn meta_list(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    Ok(axum::Json(json!({"metadata": inst.metadata})).into_response())
}

fn metadata_body(
    app: &App,
    project_id: &str,
    v: &Value,
) -> Result<std::collections::BTreeMap<String, String>, Fault> {
    rova_core::validate::parse_metadata_body(v, &super::create::limits(app, project_id))
}

async fn meta_merge(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    let items = metadata_body(&app, &inst.project_id, &parse_json(&headers, &body)?)?;
    let md = svc::set_metadata(&app, &ctx, &id, items, false, None).await?;
    Ok(axum::Json(json!({"metadata": md})).into_response())
}

async fn meta_replace(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    let items = metadata_body(&app, &inst.project_id, &parse_json(&headers, &body)?)?;
    let md = svc::set_metadata(&app, &ctx, &id, items, true, None).await?;
    Ok(axum::Json(json!({"metadata": md})).into_response())
}

async fn meta_get(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    match inst.metadata.get(&key) {
        Some(v) => Ok(axum::Json(json!({"meta": {key: v}})).into_response()),
        None => Err(Fault::not_found("Metadata item was not found").into()),
    }
}

async fn meta_put(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    svc::visible(&app, &ctx, &id)?;
    let v = parse_json(&headers, &body)?;
    let (k, val) = rova_core::validate::parse_meta_item(&v, &key)?;
    let mut items = std::collections::BTreeMap::new();
    items.insert(k.clone(), val.clone());
    svc::set_metadata(&app, &ctx, &id, items, false, None).await?;
    Ok(axum::Json(json!({"meta": {k: val}})).into_response())
}

async fn meta_delete(
    State(app): A,
    Extension(ctx): C,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    svc::set_metadata(&app, &ctx, &id, Default::default(), false, Some(&key)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---- tags (2.26+) ----

fn tags_available(ctx: &Ctx) -> Result<(), Fault> {
    if ctx.at_least(26) {
        Ok(())
    } else {
        Err(Fault::not_found("The resource could not be found."))
    }
}

async fn tags_list(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    let inst = svc::visible(&app, &ctx, &id)?;
    Ok(axum::Json(json!({"tags": app.compute.tags_of(&inst.uuid)})).into_response())
}

async fn tags_replace(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    svc::visible(&app, &ctx, &id)?;
    let tags = rova_core::validate::parse_tags_body(&parse_json(&headers, &body)?)?;
    let (tags, _) = svc::change_tags(&app, &ctx, &id, TagChange::ReplaceAll(tags)).await?;
    Ok(axum::Json(json!({"tags": tags})).into_response())
}

async fn tags_clear(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    svc::change_tags(&app, &ctx, &id, TagChange::Clear).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn tag_check(
    State(app): A,
    Extension(ctx): C,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    let inst = svc::visible(&app, &ctx, &id)?;
    if app.compute.tags_of(&inst.uuid).contains(&tag) {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(Fault::not_found(format!("Server {id} has no tag '{tag}'")).into())
    }
}

async fn tag_add(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    svc::visible(&app, &ctx, &id)?;
    rova_core::validate::validate_tag(&tag)?;
    let (_, created) = svc::change_tags(&app, &ctx, &id, TagChange::Add(tag.clone())).await?;
    if created {
        let mut resp = empty(StatusCode::CREATED);
        set_header(
            &mut resp,
            "location",
            &format!("{}/servers/{id}/tags/{tag}", links.versioned),
        );
        Ok(resp)
    } else {
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

async fn tag_remove(
    State(app): A,
    Extension(ctx): C,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    tags_available(&ctx)?;
    svc::change_tags(&app, &ctx, &id, TagChange::Remove(tag)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---- instance actions ----

fn action_log(app: &App, ctx: &Ctx, id: &str) -> Result<ActionLog, Fault> {
    if ctx.at_least(21) {
        svc::visible_even_deleted(app, ctx, id)?;
    } else {
        svc::visible(app, ctx, id)?;
    }
    Ok(crate::compute::actions::log_of(app, id))
}

async fn actions_list(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let log = action_log(&app, &ctx, &id)?;
    let mut acts = log.actions;
    acts.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then(b.request_id.cmp(&a.request_id))
    });
    let params = query_pairs(q.as_deref());
    let mut limit: Option<usize> = None;
    let mut body_links = None;
    if ctx.at_least(58) {
        let mut seen = std::collections::HashSet::new();
        let mut since = None;
        let mut before = None;
        let mut marker = None;
        for (k, v) in &params {
            if !seen.insert(k.clone()) {
                return Err(Fault::bad_request(format!("Invalid input for query parameters {k}. Value: {v}. Expected at most one value")).into());
            }
            match k.as_str() {
                "limit" => {
                    limit = Some(v.parse::<usize>().map_err(|_| {
                        Fault::bad_request(format!("Invalid input for query parameters limit. Value: {v}. '{v}' is not a 'integer'"))
                    })?)
                }
                "marker" => marker = Some(v.clone()),
                "changes-since" => since = Some(parse_time(k, v)?),
                "changes-before" if ctx.at_least(66) => before = Some(parse_time(k, v)?),
                _ => {
                    return Err(Fault::bad_request(format!(
                        "Invalid input for query parameters {k}. Value: {v}. Additional properties are not allowed ('{k}' was unexpected)"
                    ))
                    .into())
                }
            }
        }
        if let (Some(s), Some(b)) = (since, before) {
            if b < s {
                return Err(Fault::bad_request(
                    "The value of changes-since must be less than or equal to changes-before.",
                )
                .into());
            }
        }
        if let Some(s) = since {
            acts.retain(|a| a.updated_at >= s);
        }
        if let Some(b) = before {
            acts.retain(|a| a.updated_at <= b);
        }
        if let Some(m) = marker {
            let pos = acts
                .iter()
                .position(|a| a.request_id == m)
                .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
            acts.drain(..=pos);
        }
        let eff = limit.unwrap_or(app.cfg.max_limit).min(app.cfg.max_limit);
        acts.truncate(eff);
        if acts.len() == eff && eff > 0 {
            if let Some(last) = acts.last() {
                body_links = Some(super::next_link(
                    &links,
                    &format!("servers/{id}/os-instance-actions"),
                    &params,
                    &last.request_id,
                ));
            }
        }
    }
    let items: Vec<Value> = acts
        .iter()
        .map(|a| views::instance_action(a, &ctx))
        .collect();
    let mut body = json!({"instanceActions": items});
    if let Some(l) = body_links {
        body["links"] = l;
    }
    Ok(axum::Json(body).into_response())
}

fn parse_time(k: &str, v: &str) -> Result<chrono::DateTime<chrono::Utc>, Fault> {
    rova_core::query::parse_iso8601(v).ok_or_else(|| {
        Fault::bad_request(format!(
            "Invalid input for query parameters {k}. Value: {v}. '{v}' is not a 'date-time'"
        ))
    })
}

async fn action_show(
    State(app): A,
    Extension(ctx): C,
    Path((id, req)): Path<(String, String)>,
) -> ApiResult<Response> {
    let log = action_log(&app, &ctx, &id)?;
    let inst = app.compute.instances.get(&id);
    let project = inst.map(|i| i.project_id.clone()).unwrap_or_default();
    let a = log
        .actions
        .iter()
        .find(|a| a.request_id == req)
        .ok_or_else(|| Fault::not_found(format!("Action {req} not found")))?;
    Ok(
        axum::Json(json!({"instanceAction": views::instance_action_detail(a, &ctx, &project)}))
            .into_response(),
    )
}

// ---- server password ----

async fn password_get(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = svc::visible(&app, &ctx, &id)?;
    let pw: String = (0..4)
        .filter_map(|i| inst.system_metadata.get(&format!("password_{i}")))
        .cloned()
        .collect();
    Ok(axum::Json(json!({"password": pw})).into_response())
}

async fn password_clear(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.require_member("os_compute_api:os-server-password:clear")?;
    svc::visible(&app, &ctx, &id)?;
    let now = app.clock.now();
    app.compute
        .instances
        .update(
            &id,
            || Fault::instance_not_found(&id),
            |i| {
                for n in 0..4 {
                    i.system_metadata
                        .insert(format!("password_{n}"), String::new());
                }
                i.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
