//! Per-project quota limits (`os-quota-sets`): stored overrides on top of
//! the configured defaults, [`Compute::effective_quota`] used by every
//! quota check (create, resize, keypairs, metadata, server groups,
//! `/limits`), and the show/detail/update/delete operations. Usage itself
//! is counted where the resource lives (`Compute::reserve` for
//! instances/cores/ram, the tables for keypairs and server groups).

use super::Compute;
use crate::app::App;
use crate::config::QuotaDefaults;
use crate::http::Ctx;
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A project's stored limits (only the ones an admin set).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectQuota {
    pub project_id: String,
    pub limits: BTreeMap<String, i64>,
}

/// Every quota resource Nova shows, in its `QUOTAS.resources` names.
pub const RESOURCES: &[&str] = &[
    "instances",
    "cores",
    "ram",
    "floating_ips",
    "fixed_ips",
    "metadata_items",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "security_groups",
    "security_group_rules",
    "key_pairs",
    "server_groups",
    "server_group_members",
];

/// Hidden from 2.36 on (network proxies gone).
pub const NETWORK_RESOURCES: &[&str] = &[
    "fixed_ips",
    "floating_ips",
    "security_group_rules",
    "security_groups",
];
/// Hidden from 2.57 on (personality gone).
pub const FILE_RESOURCES: &[&str] = &[
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];

/// The resources shown at a microversion.
pub fn visible_resources(ctx: &Ctx) -> Vec<&'static str> {
    RESOURCES
        .iter()
        .copied()
        .filter(|r| !(ctx.at_least(36) && NETWORK_RESOURCES.contains(r)))
        .filter(|r| !(ctx.at_least(57) && FILE_RESOURCES.contains(r)))
        .collect()
}

fn get(q: &QuotaDefaults, name: &str) -> i64 {
    match name {
        "instances" => q.instances,
        "cores" => q.cores,
        "ram" => q.ram,
        "metadata_items" => q.metadata_items,
        "injected_files" => q.injected_files,
        "injected_file_content_bytes" => q.injected_file_content_bytes,
        "injected_file_path_bytes" => q.injected_file_path_length,
        "key_pairs" => q.key_pairs,
        "server_groups" => q.server_groups,
        "server_group_members" => q.server_group_members,
        _ => -1,
    }
}

fn set(q: &mut QuotaDefaults, name: &str, v: i64) {
    match name {
        "instances" => q.instances = v,
        "cores" => q.cores = v,
        "ram" => q.ram = v,
        "metadata_items" => q.metadata_items = v,
        "injected_files" => q.injected_files = v,
        "injected_file_content_bytes" => q.injected_file_content_bytes = v,
        "injected_file_path_bytes" => q.injected_file_path_length = v,
        "key_pairs" => q.key_pairs = v,
        "server_groups" => q.server_groups = v,
        "server_group_members" => q.server_group_members = v,
        _ => {}
    }
}

/// One limit by its quota-set name.
pub fn limit_of(q: &QuotaDefaults, name: &str) -> i64 {
    get(q, name)
}

impl Compute {
    /// The limits that apply to a project: its stored overrides on top of
    /// the configured defaults. Every quota check goes through here.
    pub fn effective_quota(&self, project_id: &str) -> QuotaDefaults {
        let mut q = self.quota_defaults.clone();
        if let Some(p) = self.quotas.get(project_id) {
            for (k, v) in &p.limits {
                set(&mut q, k, *v);
            }
        }
        q
    }

    /// The configured defaults.
    pub fn default_quota(&self) -> &QuotaDefaults {
        &self.quota_defaults
    }
}

/// What a project uses of each resource (`in_use` of the detail view).
pub fn in_use(app: &App, ctx: &Ctx, project_id: &str) -> BTreeMap<&'static str, i64> {
    let u = app.compute.usage_of(project_id);
    let mut m = BTreeMap::new();
    m.insert("instances", u.instances);
    m.insert("cores", u.cores);
    m.insert("ram", u.ram);
    m.insert(
        "key_pairs",
        app.compute
            .keypairs
            .filter(|k| k.user_id == ctx.user_id)
            .len() as i64,
    );
    m.insert(
        "server_groups",
        super::server_groups::count_for_project(app, project_id),
    );
    m
}

/// Who may read a project's quotas: its members (readers too) and admins.
pub fn check_read(app: &App, ctx: &Ctx, project_id: &str, rule: &str) -> Result<(), Fault> {
    if !ctx.is_admin() && ctx.project_id != project_id {
        return Err(Fault::policy(rule));
    }
    verify_project(app, project_id)
}

/// Nova's `identity.verify_project_id`: an unknown project is a 400.
pub fn verify_project(app: &App, project_id: &str) -> Result<(), Fault> {
    if app.identity.projects.get(project_id).is_none() {
        return Err(Fault::bad_request(format!(
            "Project ID {project_id} is not a valid project."
        )));
    }
    Ok(())
}

/// PUT /os-quota-sets/{id} after validation: each value must be at least
/// the current usage unless `force`.
pub async fn update(
    app: &App,
    ctx: &Ctx,
    project_id: &str,
    values: BTreeMap<String, i64>,
    force: bool,
) -> Result<QuotaDefaults, Fault> {
    ctx.require_admin("os_compute_api:os-quota-sets:update")?;
    verify_project(app, project_id)?;
    if !force {
        let used = in_use(app, ctx, project_id);
        for (k, v) in &values {
            let minimum = used.get(k.as_str()).copied().unwrap_or(0);
            if *v != -1 && *v < minimum {
                return Err(Fault::bad_request(format!(
                    "Quota limit {v} for {k} must be greater than or equal to already used and reserved {minimum}."
                )));
            }
        }
    }
    let pid = project_id.to_string();
    app.compute
        .quotas
        .upsert(
            project_id,
            || ProjectQuota {
                project_id: pid.clone(),
                limits: BTreeMap::new(),
            },
            |p| {
                for (k, v) in values {
                    if !NETWORK_RESOURCES.contains(&k.as_str()) {
                        p.limits.insert(k, v);
                    }
                }
                Ok(())
            },
        )
        .await?;
    Ok(app.compute.effective_quota(project_id))
}

/// DELETE /os-quota-sets/{id}: back to the defaults.
pub async fn delete(app: &App, ctx: &Ctx, project_id: &str) -> Result<(), Fault> {
    ctx.require_admin("os_compute_api:os-quota-sets:delete")?;
    app.compute.quotas.remove(project_id).await?;
    Ok(())
}
