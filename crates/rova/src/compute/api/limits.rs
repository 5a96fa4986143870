//! Limits (`/limits`): the project's quota and usage in Nova's absolute
//! limits format, per microversion.

use super::query_pairs;
use crate::app::App;
use crate::http::{ApiResult, Ctx};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/limits", get(limits))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

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
    let u = app.compute.usage_of(&project)?;
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
