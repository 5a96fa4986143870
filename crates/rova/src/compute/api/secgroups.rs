//! Routes for security groups in the compute API: a server's groups
//! (`GET /servers/{id}/os-security-groups`, every microversion) and the
//! deprecated network proxy `os-security-groups` /
//! `os-security-group-rules` (2.1–2.35, 404 from 2.36). The work is in
//! [`crate::compute::secgroups`].

use super::query_pairs;
use crate::app::App;
use crate::compute::secgroups as sg;
use crate::http::{empty, json_status, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/servers/{id}/os-security-groups", get(server_groups))
        .route("/os-security-groups", get(list).post(create))
        .route(
            "/os-security-groups/{id}",
            get(show).put(update).delete(remove),
        )
        .route("/os-security-group-rules", post(rule_create))
        .route("/os-security-group-rules/{id}", delete(rule_delete))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

async fn server_groups(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        sg::server_groups(&app, &ctx, &id)?,
    ))
}

async fn list(State(app): A, Extension(ctx): C, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = query_pairs(q.as_deref());
    Ok(json_status(
        StatusCode::OK,
        sg::proxy_list(&app, &ctx, &params).await?,
    ))
}

async fn show(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json_status(
        StatusCode::OK,
        sg::proxy_show(&app, &ctx, &id)?,
    ))
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    sg::proxy_available(&ctx)?;
    let v = parse_json(&headers, &body)?;
    Ok(json_status(
        StatusCode::OK,
        sg::proxy_create(&app, &ctx, &v).await?,
    ))
}

async fn update(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    sg::proxy_available(&ctx)?;
    let v = parse_json(&headers, &body)?;
    Ok(json_status(
        StatusCode::OK,
        sg::proxy_update(&app, &ctx, &id, &v).await?,
    ))
}

async fn remove(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    sg::proxy_delete(&app, &ctx, &id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

async fn rule_create(
    State(app): A,
    Extension(ctx): C,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    sg::proxy_available(&ctx)?;
    let v = parse_json(&headers, &body)?;
    Ok(json_status(
        StatusCode::OK,
        sg::proxy_rule_create(&app, &ctx, &v).await?,
    ))
}

async fn rule_delete(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    sg::proxy_rule_delete(&app, &ctx, &id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
