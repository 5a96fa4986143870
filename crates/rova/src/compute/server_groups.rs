//! Server groups (Nova's instance groups): create, list, show, delete, the
//! `server_groups` quota, and membership through the `group` scheduler
//! hint with the `server_group_members` quota. Counting and writing happen
//! in one table transaction, so concurrent requests cannot overshoot a
//! quota. Placement by policy is the scheduler's; this module only keeps
//! who belongs where.

use crate::app::App;
use crate::http::Ctx;
use chrono::{DateTime, Utc};
use rova_core::scheduler::{GroupPolicy, GroupSpec};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One server group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerGroup {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// `rules.max_server_per_host` (anti-affinity, 2.64+).
    #[serde(default)]
    pub max_server_per_host: Option<u64>,
    /// Member instance uuids, in the order they joined.
    #[serde(default)]
    pub members: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl ServerGroup {
    /// The group as the scheduler needs it.
    pub fn spec(&self) -> Option<GroupSpec> {
        Some(GroupSpec {
            uuid: self.uuid.clone(),
            policy: GroupPolicy::parse(&self.policy)?,
            max_server_per_host: self.max_server_per_host,
            members: self.members.iter().cloned().collect(),
        })
    }
}

/// `Instance group <uuid> could not be found.`
pub fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance group {id} could not be found."))
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub policy: GroupPolicy,
    pub max_server_per_host: Option<u64>,
}

/// Number of groups a project owns.
pub fn count_for_project(app: &App, project_id: &str) -> i64 {
    app.compute
        .server_groups
        .filter(|g| g.project_id == project_id)
        .len() as i64
}

/// POST /os-server-groups: quota check and insert in one transaction.
pub async fn create(app: &App, ctx: &Ctx, req: NewGroup) -> Result<Arc<ServerGroup>, Fault> {
    ctx.require_member("os_compute_api:os-server-groups:create")?;
    let limit = app.compute.effective_quota(&ctx.project_id).server_groups;
    let g = ServerGroup {
        uuid: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        policy: req.policy.as_str().to_string(),
        max_server_per_host: req.max_server_per_host,
        members: vec![],
        created_at: app.clock.now(),
    };
    let id = g.uuid.clone();
    let project = ctx.project_id.clone();
    app.compute
        .server_groups
        .transact(|tx| {
            let used = tx
                .values()
                .iter()
                .filter(|x| x.project_id == project)
                .count() as i64;
            if limit >= 0 && used + 1 > limit {
                return Err(Fault::forbidden("Quota exceeded, too many server groups."));
            }
            tx.put(&id, g.clone());
            Ok(())
        })
        .await?;
    app.compute
        .server_groups
        .get(&id)
        .ok_or_else(|| Fault::internal("server group vanished"))
}

/// Looks a group up for show/delete: any project's group exists, but only
/// its project (or an admin) passes the policy check.
pub fn get(app: &App, ctx: &Ctx, id: &str, rule: &str) -> Result<Arc<ServerGroup>, Fault> {
    let g = app
        .compute
        .server_groups
        .get(id)
        .ok_or_else(|| not_found(id))?;
    if !ctx.is_admin() && g.project_id != ctx.project_id {
        return Err(Fault::policy(rule));
    }
    Ok(g)
}

/// GET /os-server-groups: the project's groups, or everyone's for an admin
/// with `all_projects`; oldest first, then offset/limit.
pub fn list(
    app: &App,
    ctx: &Ctx,
    all_projects: bool,
    offset: usize,
    limit: usize,
) -> Vec<Arc<ServerGroup>> {
    let mut all = if all_projects && ctx.is_admin() {
        app.compute.server_groups.all()
    } else {
        app.compute
            .server_groups
            .filter(|g| g.project_id == ctx.project_id)
    };
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.uuid.cmp(&b.uuid)));
    all.into_iter().skip(offset).take(limit).collect()
}

/// DELETE /os-server-groups/{id}: the group goes, and its members no
/// longer name it.
pub async fn delete(app: &App, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-server-groups:delete")?;
    let g = get(app, ctx, id, "os_compute_api:os-server-groups:delete")?;
    app.compute
        .server_groups
        .remove(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    for m in &g.members {
        let _ = app
            .compute
            .instances
            .update(
                m,
                || Fault::instance_not_found(m),
                |i| {
                    if !i.server_groups.iter().any(|x| x == id) {
                        return Err(Fault::conflict("not a member"));
                    }
                    i.server_groups.retain(|x| x != id);
                    Ok(())
                },
            )
            .await;
    }
    Ok(())
}

/// The group named by a create request's `group` hint (400 when unknown).
pub fn for_hint(app: &App, hint: &str) -> Result<Arc<ServerGroup>, Fault> {
    app.compute
        .server_groups
        .get(hint)
        .ok_or_else(|| Fault::bad_request(format!("Instance group {hint} could not be found.")))
}

/// Adds new servers to a group, checking `server_group_members` (members
/// owned by the same user) in the same transaction.
pub async fn add_members(
    app: &App,
    ctx: &Ctx,
    group_id: &str,
    uuids: &[String],
) -> Result<(), Fault> {
    let limit = app
        .compute
        .effective_quota(&ctx.project_id)
        .server_group_members;
    let user = ctx.user_id.clone();
    // Members whose row is not written yet belong to a create in flight
    // and count too, so that concurrent creates cannot overshoot.
    let owned_by_user = |uuid: &str| {
        app.compute
            .instances
            .get(uuid)
            .map(|i| !i.deleted && i.user_id == user)
            .unwrap_or(true)
    };
    let gid = group_id.to_string();
    app.compute
        .server_groups
        .transact(|tx| {
            let mut g = tx.get(&gid).ok_or_else(|| {
                Fault::bad_request(format!("Instance group {gid} could not be found."))
            })?;
            let used = g.members.iter().filter(|m| owned_by_user(m)).count() as i64;
            if limit >= 0 && used + uuids.len() as i64 > limit {
                return Err(Fault::forbidden(
                    "Quota exceeded, too many servers in group",
                ));
            }
            g.members.extend(uuids.iter().cloned());
            tx.put(&gid, g);
            Ok(())
        })
        .await
}

/// Takes servers out of a group (create failed, server deleted).
pub async fn remove_members(app: &App, group_id: &str, uuids: &[String]) {
    let gid = group_id.to_string();
    let _ = app
        .compute
        .server_groups
        .transact(|tx| {
            if let Some(mut g) = tx.get(&gid) {
                let before = g.members.len();
                g.members.retain(|m| !uuids.contains(m));
                if g.members.len() != before {
                    tx.put(&gid, g);
                }
            }
            Ok(())
        })
        .await;
}
