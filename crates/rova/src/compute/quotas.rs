//! Per-project quota limits (`os-quota-sets`): stored overrides on top of
//! the configured defaults, [`Compute::effective_quota`] used by every
//! quota check (create, resize, keypairs, metadata, server groups,
//! `/limits`), the show/detail/update/delete operations, and
//! [`instances_allowed`]: how many instances one create may make, by
//! arithmetic. Usage itself is counted where the resource lives
//! (`Compute::reserve` for instances/cores/ram, the tables for keypairs and
//! server groups).

use super::{Compute, Usage};
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

/// The most instances one create request makes, whatever the quota: the
/// bound Nova meets in Neutron's default port quota (500 ports per project),
/// which it applies before its quota check (`validate_networks` reduces
/// `max_count`, below `min_count` it is a 403). Without it an unlimited
/// project could ask for 2^32 servers in one request.
pub const MAX_INSTANCES_PER_REQUEST: u64 = 500;

/// How many instances of a flavor (`vcpus`, `ram` MB each) a create of
/// `min..=max` may make for a project using `used` under `limits`: Nova's
/// `check_num_instances_quota` as arithmetic. `max` when it fits, else the
/// most that fits on every limited resource (instances, cores and RAM
/// headroom divided by what one instance takes) when that is at least
/// `min`, else Nova's 403 `TooManyInstances`. First `max` is bounded by
/// [`MAX_INSTANCES_PER_REQUEST`]. Constant time, whatever the numbers.
pub fn instances_allowed(
    limits: &QuotaDefaults,
    used: &Usage,
    min: u64,
    max: u64,
    vcpus: u32,
    ram: u64,
) -> Result<u64, Fault> {
    let min = min.max(1);
    if min > MAX_INSTANCES_PER_REQUEST {
        return Err(Fault::forbidden(format!(
            "Quota exceeded for instances: Requested {min}, but at most \
             {MAX_INSTANCES_PER_REQUEST} instances can be created in one request"
        )));
    }
    let max = max.clamp(min, MAX_INSTANCES_PER_REQUEST);
    // The limited resources, in the sorted order of Nova's `overs`. i128
    // cannot overflow: at most 500 × 2^64.
    let limited: Vec<Resource> = [
        ("cores", i128::from(vcpus), limits.cores, used.cores),
        ("instances", 1, limits.instances, used.instances),
        ("ram", i128::from(ram), limits.ram, used.ram),
    ]
    .into_iter()
    .filter(|r| r.2 >= 0)
    .map(|(name, each, limit, used)| Resource {
        name,
        each,
        limit: i128::from(limit),
        used: i128::from(used),
    })
    .collect();
    let overs: Vec<&Resource> = limited
        .iter()
        .filter(|r| r.used + r.each * i128::from(max) > r.limit)
        .collect();
    if overs.is_empty() {
        return Ok(max);
    }
    let allowed = limited
        .iter()
        .filter(|r| r.each > 0)
        .map(|r| (r.limit - r.used).div_euclid(r.each))
        .min()
        .unwrap_or(i128::from(max));
    if allowed >= i128::from(min) {
        return Ok(allowed.min(i128::from(max)) as u64);
    }
    let join = |f: fn(&Resource, u64, u64) -> String| {
        overs
            .iter()
            .map(|r| f(r, min, max))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names = join(|r, _, _| r.name.to_string());
    Err(Fault::forbidden(format!(
        "Quota exceeded for {names}: Requested {}, but already used {} of {} {names}",
        join(|r, min, max| match r.name {
            "instances" if min == max => min.to_string(),
            "instances" => format!("{min}-{max}"),
            _ => (r.each * i128::from(max)).to_string(),
        }),
        join(|r, _, _| r.used.to_string()),
        join(|r, _, _| r.limit.to_string()),
    )))
}

/// One limited resource in [`instances_allowed`]: what an instance takes,
/// the limit and the current use.
struct Resource {
    name: &'static str,
    each: i128,
    limit: i128,
    used: i128,
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
pub fn in_use(
    app: &App,
    ctx: &Ctx,
    project_id: &str,
) -> Result<BTreeMap<&'static str, i64>, Fault> {
    let u = app.compute.usage_of(project_id)?;
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
    Ok(m)
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
        let used = in_use(app, ctx, project_id)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(instances: i64, cores: i64, ram: i64) -> QuotaDefaults {
        QuotaDefaults {
            instances,
            cores,
            ram,
            ..QuotaDefaults::default()
        }
    }

    fn used(instances: i64, cores: i64, ram: i64) -> Usage {
        Usage {
            instances,
            cores,
            ram,
        }
    }

    #[test]
    fn huge_counts_are_arithmetic_not_a_loop() {
        // A loop from u64::MAX down would never finish.
        let q = limits(10, 20, 51200);
        let none = used(0, 0, 0);
        assert_eq!(instances_allowed(&q, &none, 1, u64::MAX, 1, 512), Ok(10));
        let e = instances_allowed(&q, &none, 11, u64::MAX, 1, 512).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "Quota exceeded for cores, instances, ram: Requested 500, 11-500, 256000, \
             but already used 0, 0, 0 of 20, 10, 51200 cores, instances, ram"
        );
        // Unlimited: bounded by the per-request maximum.
        let open = limits(-1, -1, -1);
        assert_eq!(
            instances_allowed(&open, &none, 1, u64::MAX, u32::MAX, u64::MAX),
            Ok(MAX_INSTANCES_PER_REQUEST)
        );
        for min in [501, 2_147_483_648, u64::MAX] {
            let e = instances_allowed(&open, &none, min, u64::MAX, 1, 512).unwrap_err();
            assert_eq!(e.code, 403);
            assert!(e.message.contains("at most 500 instances"), "{}", e.message);
        }
    }

    #[test]
    fn cores_and_ram_headroom_reduce_the_count() {
        let none = used(0, 0, 0);
        // 2 vCPUs each against 7 cores: 3 fit.
        let q = limits(-1, 7, -1);
        assert_eq!(instances_allowed(&q, &none, 1, 100, 2, 512), Ok(3));
        let e = instances_allowed(&q, &none, 4, 4, 2, 512).unwrap_err();
        assert_eq!(
            e.message,
            "Quota exceeded for cores: Requested 8, but already used 0 of 7 cores"
        );
        // 4096 MB each against 10000 MB with 2000 used: 1 fits.
        let q = limits(10, 20, 10000);
        assert_eq!(
            instances_allowed(&q, &used(1, 1, 2000), 1, 5, 1, 4096),
            Ok(1)
        );
        // Exactly full, and over (a quota lowered with force): nothing fits.
        let q = limits(2, 20, 51200);
        for u in [used(2, 2, 1024), used(5, 5, 2560)] {
            let e = instances_allowed(&q, &u, 1, 1, 1, 512).unwrap_err();
            assert_eq!(
                e.message,
                format!(
                    "Quota exceeded for instances: Requested 1, but already used {} of 2 instances",
                    u.instances
                )
            );
        }
        // Fits as asked.
        assert_eq!(instances_allowed(&q, &none, 2, 2, 1, 512), Ok(2));
    }
}
