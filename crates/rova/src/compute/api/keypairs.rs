//! Keypairs (`/os-keypairs`, `/os-keypairs/{name}`): list (an admin may
//! name another user from 2.10), create or import, show and delete.

use super::{qerr, query_pairs, Links};
use crate::app::App;
use crate::compute::views;
use crate::compute::Keypair;
use crate::http::{empty, json_status, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/os-keypairs", get(keypairs_index).post(keypair_create))
        .route(
            "/os-keypairs/{name}",
            get(keypair_show).delete(keypair_delete),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

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
