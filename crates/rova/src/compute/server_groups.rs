//! Server groups (Nova's instance groups): create, list, show, delete, the
//! `server_groups` quota, and membership through the `group` scheduler
//! hint with the `server_group_members` quota. Members are rows of their
//! own (`server_group_members`, one per group and server). Each quota is
//! counted again by the database in the transaction that writes the new
//! row ([`crate::store::Guard::Count`]), so requests to several processes
//! cannot overshoot it together. Placement by policy is the scheduler's;
//! this module only keeps who belongs where.

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
    pub created_at: DateTime<Utc>,
}

/// A server's membership of a group: row `<group>/<server>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub group_id: String,
    pub instance_uuid: String,
    /// The member's user: the quota counts members per group and user.
    pub user_id: String,
    /// `<group>/<user>`, the key the quota counts by.
    pub group_user: String,
    pub joined_at: DateTime<Utc>,
    /// Its place among the servers that joined in the same request.
    pub position: u32,
}

/// The index of member rows by group.
pub const BY_GROUP: &str = "group";

/// The member rows' table, indexed by group.
pub fn members_table(
    store: &std::sync::Arc<crate::store::Store>,
) -> Result<crate::store::Table<Member>, String> {
    Ok(crate::store::Table::load("server_group_member", store)?
        .indexed(BY_GROUP, |m: &Member| Some(m.group_id.clone())))
}

/// The servers of group `group_id`, in the order they joined.
pub fn members(app: &App, group_id: &str) -> Vec<String> {
    let mut rows = app.compute.group_members.find(BY_GROUP, group_id);
    rows.sort_by(|a, b| {
        (a.joined_at, a.position, &a.instance_uuid).cmp(&(
            b.joined_at,
            b.position,
            &b.instance_uuid,
        ))
    });
    rows.iter().map(|m| m.instance_uuid.clone()).collect()
}

impl ServerGroup {
    /// The group as the scheduler needs it, with its members.
    pub fn spec(&self, members: Vec<String>) -> Option<GroupSpec> {
        Some(GroupSpec {
            uuid: self.uuid.clone(),
            policy: GroupPolicy::parse(&self.policy)?,
            max_server_per_host: self.max_server_per_host,
            members: members.into_iter().collect(),
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
            let message = "Quota exceeded, too many server groups.";
            if limit >= 0 && used + 1 > limit {
                return Err(Fault::forbidden(message));
            }
            // Counted again by the database in the writing transaction.
            let quota = crate::store::Guard::Count {
                column: "project_id",
                value: project.clone(),
                limit,
                message: message.into(),
            };
            tx.put_guarded(&id, g.clone(), quota);
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
    get(app, ctx, id, "os_compute_api:os-server-groups:delete")?;
    app.compute
        .server_groups
        .remove(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let gone = members(app, id);
    remove_members(app, id, &gone).await;
    for m in &gone {
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

/// Who joins group `group_id` with a create of `count` servers, once the
/// `server_group_members` quota (members of the group owned by the same
/// user) was checked against this process's rows: each server's member
/// row comes from [`Joining::member`], with a guard that has the database
/// count every process's rows again in the transaction that writes it.
pub struct Joining {
    group_id: String,
    user_id: String,
    group_user: String,
    limit: i64,
    joined_at: chrono::DateTime<Utc>,
}

/// Nova's refusal past the `server_group_members` quota.
const MEMBERS_OVER: &str = "Quota exceeded, too many servers in group";

impl Joining {
    /// Checks that `count` more servers of the caller fit in group
    /// `group_id`.
    pub fn check(app: &App, ctx: &Ctx, group_id: &str, count: usize) -> Result<Joining, Fault> {
        if app.compute.server_groups.get(group_id).is_none() {
            return Err(Fault::bad_request(format!(
                "Instance group {group_id} could not be found."
            )));
        }
        let limit = app
            .compute
            .effective_quota(&ctx.project_id)
            .server_group_members;
        let group_user = format!("{group_id}/{}", ctx.user_id);
        // Counted from the group's rows in this process's copy (its index).
        let used = app
            .compute
            .group_members
            .find(BY_GROUP, group_id)
            .iter()
            .filter(|m| m.group_user == group_user)
            .count() as i64;
        if limit >= 0 && used + count as i64 > limit {
            return Err(Fault::forbidden(MEMBERS_OVER));
        }
        Ok(Joining {
            group_id: group_id.to_string(),
            user_id: ctx.user_id.clone(),
            group_user,
            limit,
            joined_at: app.clock.now(),
        })
    }

    /// The member row of server `uuid`, the `position`th of the request:
    /// its id, the row and the quota guard to write it with.
    pub fn member(&self, uuid: &str, position: u32) -> (String, Member, crate::store::Guard) {
        let member = Member {
            group_id: self.group_id.clone(),
            instance_uuid: uuid.to_string(),
            user_id: self.user_id.clone(),
            group_user: self.group_user.clone(),
            joined_at: self.joined_at,
            position,
        };
        let quota = crate::store::Guard::Count {
            column: "group_user",
            value: self.group_user.clone(),
            limit: self.limit,
            message: MEMBERS_OVER.into(),
        };
        (format!("{}/{uuid}", self.group_id), member, quota)
    }
}

/// Takes servers out of a group (create failed, server deleted, group
/// deleted).
pub async fn remove_members(app: &App, group_id: &str, uuids: &[String]) {
    let _ = app
        .compute
        .group_members
        .transact(|tx| {
            for uuid in uuids {
                let id = format!("{group_id}/{uuid}");
                if tx.get(&id).is_some() {
                    tx.delete(&id);
                }
            }
            Ok(())
        })
        .await;
}
