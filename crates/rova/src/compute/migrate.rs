//! Moving servers between hosts: migration records, cold moves (resize and
//! `migrate`, both ending in VERIFY_RESIZE), the confirm/revert claim
//! bookkeeping, and `evacuate` off a dead host. Live migration is in
//! `live_migration`.
//!
//! Claims follow Nova's allocation dance: when a move is scheduled, the
//! instance's claim on the source moves to the migration (consumer = the
//! migration uuid) and the instance claims the destination, in one
//! critical section with the host choice. Confirm drops the migration's
//! (source) claim; revert drops the destination and gives the source back
//! to the instance. Scheduling runs after the API has answered 202, as
//! Nova's conductor does: no valid host leaves the server in its old
//! state with an instance fault and the migration in `error`.

use super::actions::{self, Logged};
use super::actions_run::{advance, begin_guarded, begin_with, subject, Reply};
use super::driver::DriverOp;
use super::fleet::{instance_resources, Claim, Held};
use super::scheduler::request_spec;
use super::servers;
use crate::app::App;
use crate::http::Ctx;
use chrono::{DateTime, Utc};
use rova_core::admission::{admit, Action};
use rova_core::model::{iso_micro, FlavorSnapshot, Instance, InstanceFault};
use rova_core::scheduler::select_host;
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// One migration record (Nova's `migrations` table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Migration {
    pub id: i64,
    pub uuid: String,
    pub instance_uuid: String,
    pub project_id: String,
    pub user_id: String,
    /// `migration`, `resize`, `live-migration` or `evacuation`.
    pub migration_type: String,
    pub status: String,
    pub source_compute: Option<String>,
    pub source_node: Option<String>,
    pub dest_compute: Option<String>,
    pub dest_node: Option<String>,
    /// The destination's IP.
    pub dest_host: Option<String>,
    pub old_instance_type_id: i64,
    pub new_instance_type_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the migration holds on the source while it runs.
    #[serde(default)]
    pub held: Option<Held>,
    #[serde(default)]
    pub memory_total: Option<i64>,
    #[serde(default)]
    pub memory_processed: Option<i64>,
    #[serde(default)]
    pub memory_remaining: Option<i64>,
    #[serde(default)]
    pub disk_total: Option<i64>,
    #[serde(default)]
    pub disk_processed: Option<i64>,
    #[serde(default)]
    pub disk_remaining: Option<i64>,
}

/// Migration statuses after which a move is over (nothing more happens
/// to it, and nothing of it is copied any more).
pub const OVER: &[&str] = &[
    "completed",
    "confirmed",
    "reverted",
    "error",
    "failed",
    "cancelled",
    "done",
];

/// Live migration statuses that count as in progress.
pub const LIVE_IN_PROGRESS: &[&str] = &["queued", "preparing", "running", "post-migrating"];

impl Migration {
    pub fn is_live(&self) -> bool {
        self.migration_type == "live-migration"
    }

    /// The `os-migrations` item at the caller's microversion.
    pub fn view(&self, ctx: &Ctx, links: &super::views::Links) -> Value {
        let hosts = ctx.is_admin();
        let h = |v: &Option<String>| if hosts { json!(v) } else { Value::Null };
        let mut v = json!({
            "created_at": iso_micro(&self.created_at),
            "dest_compute": h(&self.dest_compute),
            "dest_host": h(&self.dest_host),
            "dest_node": h(&self.dest_node),
            "id": self.id,
            "instance_uuid": self.instance_uuid,
            "new_instance_type_id": self.new_instance_type_id,
            "old_instance_type_id": self.old_instance_type_id,
            "source_compute": h(&self.source_compute),
            "source_node": h(&self.source_node),
            "status": self.status,
            "updated_at": iso_micro(&self.updated_at),
        });
        if ctx.at_least(23) {
            v["migration_type"] = json!(self.migration_type);
            if self.is_live() && LIVE_IN_PROGRESS.contains(&self.status.as_str()) {
                let path = format!("servers/{}/migrations/{}", self.instance_uuid, self.id);
                v["links"] = json!([
                    {"href": format!("{}/{path}", links.versioned), "rel": "self"},
                    {"href": format!("{}/{path}", links.bookmark), "rel": "bookmark"},
                ]);
            }
        }
        if ctx.at_least(59) {
            v["uuid"] = json!(self.uuid);
        }
        if ctx.at_least(80) {
            v["user_id"] = json!(self.user_id);
            v["project_id"] = json!(self.project_id);
        }
        v
    }

    /// The `/servers/{id}/migrations` item (live migrations in progress).
    pub fn server_view(&self, ctx: &Ctx, include_host: bool) -> Value {
        let h = |v: &Option<String>| if include_host { json!(v) } else { Value::Null };
        let mut v = json!({
            "created_at": iso_micro(&self.created_at),
            "dest_compute": h(&self.dest_compute),
            "dest_host": h(&self.dest_host),
            "dest_node": h(&self.dest_node),
            "disk_processed_bytes": self.disk_processed,
            "disk_remaining_bytes": self.disk_remaining,
            "disk_total_bytes": self.disk_total,
            "id": self.id,
            "memory_processed_bytes": self.memory_processed,
            "memory_remaining_bytes": self.memory_remaining,
            "memory_total_bytes": self.memory_total,
            "server_uuid": self.instance_uuid,
            "source_compute": h(&self.source_compute),
            "source_node": h(&self.source_node),
            "status": self.status,
            "updated_at": iso_micro(&self.updated_at),
        });
        if ctx.at_least(59) {
            v["uuid"] = json!(self.uuid);
        }
        if ctx.at_least(80) {
            v["user_id"] = json!(self.user_id);
            v["project_id"] = json!(self.project_id);
        }
        v
    }
}

/// Nova's policy default `PROJECT_MANAGER_OR_ADMIN`.
pub fn require_manager(ctx: &Ctx, rule: &str) -> Result<(), Fault> {
    if ctx.is_admin() || ctx.has_role("manager") {
        Ok(())
    } else {
        Err(Fault::policy(rule))
    }
}

/// The internal (integer) id of a flavor, as `instance_type_id` shows it:
/// its position in creation order.
pub fn flavor_type_id(app: &App, flavorid: &str) -> i64 {
    let mut all = app.compute.flavors.all();
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    all.iter()
        .position(|f| f.id == flavorid)
        .map(|p| p as i64 + 1)
        .unwrap_or(0)
}

/// Writes a new migration record.
pub(crate) async fn new_migration(
    app: &App,
    inst: &Instance,
    migration_type: &str,
    status: &str,
    dest: Option<&str>,
    new_flavor: &FlavorSnapshot,
) -> Result<Migration, Fault> {
    let now = app.clock.now();
    let dest_ip = dest
        .and_then(|d| app.compute.fleet.host(d))
        .map(|h| h.host_ip.clone());
    let m = Migration {
        id: app.compute.next_migration_id().await?,
        uuid: uuid::Uuid::new_v4().to_string(),
        instance_uuid: inst.uuid.clone(),
        project_id: inst.project_id.clone(),
        user_id: inst.user_id.clone(),
        migration_type: migration_type.to_string(),
        status: status.to_string(),
        source_compute: inst.host.clone(),
        source_node: inst.node.clone(),
        dest_compute: dest.map(str::to_string),
        dest_node: dest.map(str::to_string),
        dest_host: dest_ip,
        old_instance_type_id: flavor_type_id(app, &inst.flavor.id),
        new_instance_type_id: flavor_type_id(app, &new_flavor.id),
        created_at: now,
        updated_at: now,
        held: None,
        memory_total: None,
        memory_processed: None,
        memory_remaining: None,
        disk_total: None,
        disk_processed: None,
        disk_remaining: None,
    };
    app.compute
        .migrations
        .put(&m.id.to_string(), m.clone())
        .await?;
    Ok(m)
}

/// Changes one migration record.
pub(crate) async fn update_migration(
    app: &App,
    id: i64,
    change: impl FnOnce(&mut Migration),
) -> Option<Migration> {
    let now = app.clock.now();
    app.compute
        .migrations
        .update(
            &id.to_string(),
            || Fault::not_found("migration"),
            |m| {
                change(m);
                m.updated_at = now;
                Ok(())
            },
        )
        .await
        .ok()
        .map(|(m, _)| (*m).clone())
}

/// Records where a move is going and what it holds on the source.
pub(crate) async fn set_destination(app: &App, id: i64, dest: &str, held: Held, status: &str) {
    let ip = app.compute.fleet.host(dest).map(|h| h.host_ip.clone());
    let (d, s) = (dest.to_string(), status.to_string());
    update_migration(app, id, move |m| {
        m.dest_compute = Some(d.clone());
        m.dest_node = Some(d);
        m.dest_host = ip;
        m.held = Some(held);
        m.status = s;
    })
    .await;
}

/// The newest migration of an instance with one of `statuses`.
pub fn latest_for(app: &App, instance_uuid: &str, statuses: &[&str]) -> Option<Arc<Migration>> {
    app.compute
        .migrations
        .filter(|m| m.instance_uuid == instance_uuid && statuses.contains(&m.status.as_str()))
        .into_iter()
        .max_by_key(|m| m.id)
}

/// Puts a server back after a move could not start: task cleared, the
/// given vm_state (or unchanged), and an instance fault.
pub(crate) async fn fail_move(app: &App, id: &str, expect: T, vm: Option<VmState>, message: &str) {
    let now = app.clock.now();
    let msg = message.to_string();
    let _ = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted || i.task_state != Some(expect) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = None;
            if let Some(vm) = vm {
                i.vm_state = vm;
            }
            if expect == T::ResizePrep {
                i.system_metadata.remove("old_flavor");
                i.system_metadata.remove("old_vm_state");
            }
            i.fault = Some(InstanceFault {
                code: 500,
                message: msg.clone(),
                details: Some(msg),
                created: now,
            });
            Ok(())
        })
        .await;
}

/// Schedules a move of `inst` (with `flavor`) and swaps the claims in one
/// critical section: the source claim goes to the migration, the instance
/// claims the destination. Where processes share the database, the
/// destination's allocation row is then checked against its capacity by
/// the database (every process's allocations counted); a host found full
/// there is given back and the next candidate tried, as Nova's conductor
/// tries its alternates. Returns the destination host.
pub(crate) async fn claim_move(
    app: &App,
    inst: &Instance,
    migration_uuid: &str,
    flavor: &FlavorSnapshot,
    ignore_source: bool,
    requested_host: Option<String>,
) -> Result<String, &'static str> {
    let mut spec = request_spec(app, inst, flavor);
    if ignore_source {
        if let Some(h) = &inst.host {
            spec.ignore_hosts.push(h.clone());
        }
    }
    spec.requested_host = requested_host;
    loop {
        let (dest, staged) = claim_move_once(app, inst, migration_uuid, &spec);
        let dest = dest?;
        let Some(staged) = staged else {
            return Ok(dest);
        };
        match staged.outcome().await {
            Err(f) if crate::store::is_capacity_refusal(&f) => {
                unclaim_move(app, &inst.uuid, migration_uuid);
                spec.ignore_hosts.push(dest);
            }
            // Any other outcome: the claim stands in the book as the
            // database has it; the move goes on.
            _ => return Ok(dest),
        }
    }
}

/// One scheduling attempt of [`claim_move`]: the destination, and the
/// write of its allocation row with the capacity guard (where processes
/// share the database).
fn claim_move_once(
    app: &App,
    inst: &Instance,
    migration_uuid: &str,
    spec: &rova_core::scheduler::RequestSpec,
) -> (Result<String, &'static str>, Option<crate::store::Staged>) {
    let weights = app.compute.fleet.weights;
    let guard_of = |host: &str| super::scheduler::capacity_guard(app, host);
    let (dest, staged) =
        app.compute
            .fleet
            .with_claims_checked(Some((&inst.uuid, &guard_of)), |states, claims| {
                let dest = select_host(states, spec, &weights)?;
                if let Some(c) = claims.remove(&inst.uuid) {
                    claims.insert(migration_uuid.to_string(), c);
                }
                claims.insert(
                    inst.uuid.clone(),
                    Claim {
                        host: dest.clone(),
                        instance_uuid: inst.uuid.clone(),
                        resources: spec.resources,
                    },
                );
                Ok(dest)
            });
    (
        dest.map_err(|e: rova_core::scheduler::NoValidHost| e.message()),
        staged,
    )
}

/// Undoes [`claim_move`]: the destination is dropped and the source given
/// back to the instance.
/// When the server was deleted meanwhile, everything it held is dropped
/// (its delete may have run before the move claimed the destination).
pub(crate) fn unclaim_move(app: &App, instance_uuid: &str, migration_uuid: &str) {
    let fleet = &app.compute.fleet;
    let alive = app
        .compute
        .instances
        .get(instance_uuid)
        .is_some_and(|i| !i.deleted);
    if !alive {
        fleet.release_instance(instance_uuid);
    } else if !fleet.transfer(migration_uuid, instance_uuid) {
        fleet.release(instance_uuid);
    }
}

pub(crate) fn zone_of(app: &App, host: &str) -> String {
    app.compute
        .fleet
        .host(host)
        .map(|h| h.availability_zone.clone())
        .unwrap_or_else(|| app.compute.fleet.default_zone())
}

/// resize (`new_flavor` set) and cold migrate: admission, quota for a
/// bigger flavor, RESIZE_PREP, a migration record, then the move in the
/// background.
pub async fn cold_move(
    app: &Arc<App>,
    ctx: &Ctx,
    cur: &Instance,
    new_flavor: Option<FlavorSnapshot>,
    host: Option<String>,
    auto_disk_config: Option<bool>,
) -> Result<(), Fault> {
    let id = cur.uuid.clone();
    let is_resize = new_flavor.is_some();
    let action = if is_resize {
        Action::Resize
    } else {
        Action::Migrate
    };
    admit(action, &subject(cur), ctx.is_admin())?;
    let source = cur.host.clone().unwrap_or_default();
    if !app.compute.fleet.compute_up(&source) {
        return Err(Fault::conflict(format!(
            "Compute service of {source} is unavailable at this time."
        )));
    }
    if let Some(h) = &host {
        if *h == source {
            return Err(Fault::bad_request(
                "Cannot migrate to the host where the server exists.",
            ));
        }
        if app.compute.fleet.host(h).is_none() {
            return Err(Fault::bad_request(format!(
                "Compute host {h} could not be found."
            )));
        }
    }
    let new = new_flavor.unwrap_or_else(|| cur.flavor.clone());
    // A resize that grows the server holds the larger flavor against the
    // quota from the admitting write on, checked by the database in it.
    let (hold, guard) = app
        .compute
        .hold_growth(&cur.project_id, &cur.flavor, &new)?;
    let old = serde_json::to_string(&cur.flavor).map_err(|e| Fault::internal(e.to_string()))?;
    let (record_as, kind) = if is_resize {
        ("resize", "resize")
    } else {
        ("migrate", "migration")
    };
    let inst = begin_guarded(
        app,
        ctx,
        &id,
        (action, Some(T::ResizePrep)),
        (Logged::with(record_as, "cold_migrate").on_control(), guard),
        move |i, _| {
            i.resize_hold = hold;
            i.system_metadata.insert("old_flavor".into(), old);
            i.system_metadata
                .insert("old_vm_state".into(), i.vm_state.as_str().to_string());
            if let Some(d) = auto_disk_config {
                i.auto_disk_config = d;
            }
            i.progress = 0;
            Ok(())
        },
    )
    .await?;
    let mig = new_migration(app, &inst, kind, "pre-migrating", None, &new).await?;
    let same_host_ok = is_resize && app.cfg.resize_to_same_host();
    let (app2, req) = (app.clone(), ctx.request_id.clone());
    tokio::spawn(async move {
        run_cold_move(&app2, &id, &req, mig, new, host, same_host_ok).await;
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_cold_move(
    app: &Arc<App>,
    id: &str,
    req: &str,
    mig: Migration,
    new: FlavorSnapshot,
    host: Option<String>,
    same_host_ok: bool,
) {
    tokio::time::sleep(app.compute.driver.step_delay()).await;
    let Some(inst) = app
        .compute
        .instances
        .get(id)
        .filter(|i| !i.deleted && i.task_state == Some(T::ResizePrep))
    else {
        update_migration(app, mig.id, |m| m.status = "error".into()).await;
        actions::event_finish(app, id, req, "cold_migrate", Some(("superseded", ""))).await;
        return;
    };
    let held = instance_resources(&inst).into();
    let dest = match claim_move(app, &inst, &mig.uuid, &new, !same_host_ok, host).await {
        Ok(d) => d,
        Err(msg) => {
            actions::event_finish(app, id, req, "cold_migrate", Some((msg, msg))).await;
            fail_move(app, id, T::ResizePrep, None, msg).await;
            update_migration(app, mig.id, |m| m.status = "error".into()).await;
            return;
        }
    };
    set_destination(app, mig.id, &dest, held, "migrating").await;
    actions::event_finish(app, id, req, "cold_migrate", None).await;
    let mv = super::move_steps::ColdMove {
        id,
        req,
        mig: &mig,
        inst: &inst,
        dest,
        new,
    };
    super::move_steps::run(app, mv).await;
}

/// After a confirmed resize/migration: the migration is `confirmed` and
/// then its source claim dropped (a claim follows its record: a claim
/// derivation reading the record in between keeps nothing stale).
pub async fn confirmed(app: &App, instance_uuid: &str) {
    if let Some(m) = latest_for(app, instance_uuid, &["finished", "confirming"]) {
        update_migration(app, m.id, |m| m.status = "confirmed".into()).await;
        app.compute.fleet.release(&m.uuid);
    }
}

/// A revert in progress: where the server goes back to.
#[derive(Debug, Clone)]
pub struct RevertPlan {
    pub migration_id: i64,
    pub migration_uuid: String,
    pub source: String,
    pub availability_zone: String,
}

impl RevertPlan {
    /// Puts the instance back on the source host (in the revert's final write).
    pub fn apply(&self, i: &mut Instance) {
        i.host = Some(self.source.clone());
        i.node = Some(self.source.clone());
        i.availability_zone = Some(self.availability_zone.clone());
    }
}

/// Starts a revert: the migration goes `reverting`.
pub async fn begin_revert(app: &App, instance_uuid: &str) -> Option<RevertPlan> {
    let m = latest_for(app, instance_uuid, &["finished"])?;
    let source = m.source_compute.clone()?;
    update_migration(app, m.id, |m| m.status = "reverting".into()).await;
    Some(RevertPlan {
        migration_id: m.id,
        migration_uuid: m.uuid.clone(),
        availability_zone: zone_of(app, &source),
        source,
    })
}

/// Ends a revert: the destination claim is dropped, the source given back
/// to the instance, the migration `reverted` (or `error`).
pub async fn end_revert(app: &App, instance_uuid: &str, plan: Option<RevertPlan>, ok: bool) {
    let Some(p) = plan else { return };
    if ok {
        app.compute.fleet.transfer(&p.migration_uuid, instance_uuid);
    }
    let status = if ok { "reverted" } else { "error" };
    update_migration(app, p.migration_id, |m| m.status = status.into()).await;
}

/// The `evacuate` action after parsing.
#[derive(Debug, Clone, Default)]
pub struct EvacuateReq {
    pub host: Option<String>,
    pub admin_pass: Option<String>,
    pub on_shared_storage: Option<bool>,
}

/// POST evacuate: rebuild the server on another host because its own
/// host's compute service is down. 200, with `adminPass` below 2.14.
pub async fn evacuate(app: &Arc<App>, ctx: &Ctx, id: &str, r: EvacuateReq) -> Result<Reply, Fault> {
    let cur = servers::visible(app, ctx, id)?;
    ctx.require_admin("os_compute_api:os-evacuate")?;
    let password = if ctx.at_least(14) {
        Some(
            r.admin_pass
                .clone()
                .unwrap_or_else(|| super::build::generate_password(app.cfg.password_length)),
        )
    } else if r.admin_pass.is_some() {
        if r.on_shared_storage == Some(true) {
            return Err(Fault::bad_request(
                "admin password can't be changed on existing disk",
            ));
        }
        r.admin_pass.clone()
    } else if r.on_shared_storage != Some(true) {
        Some(super::build::generate_password(app.cfg.password_length))
    } else {
        None
    };
    if let Some(h) = &r.host {
        if app.compute.fleet.host(h).is_none() {
            return Err(Fault::not_found(format!("Compute host {h} not found.")));
        }
    }
    if cur.host == r.host {
        return Err(Fault::bad_request("The target host can't be the same one."));
    }
    admit(Action::Evacuate, &subject(&cur), ctx.is_admin())?;
    let source = cur.host.clone().unwrap_or_default();
    if app.compute.fleet.compute_up(&source) {
        return Err(Fault::bad_request(format!(
            "Compute service of {source} is still in use."
        )));
    }
    let pw = password.clone();
    let inst = begin_with(
        app,
        ctx,
        id,
        Action::Evacuate,
        Some(T::Rebuilding),
        Some(Logged::with("evacuate", "rebuild_server").on_control()),
        move |i, _| {
            if let Some(p) = pw {
                i.admin_pass = Some(p);
            }
            Ok(())
        },
    )
    .await?;
    let mig = new_migration(
        app,
        &inst,
        "evacuation",
        "accepted",
        r.host.as_deref(),
        &inst.flavor,
    )
    .await?;
    let stopped_at_end = ctx.at_least(95);
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        run_evacuate(&app2, &id2, &req, inst, mig, r.host, stopped_at_end).await;
    });
    if !ctx.at_least(14) {
        return Ok(Reply::json(json!({"adminPass": password})));
    }
    Ok(Reply::ok())
}

async fn run_evacuate(
    app: &Arc<App>,
    id: &str,
    req: &str,
    inst: Arc<Instance>,
    mig: Migration,
    host: Option<String>,
    stopped_at_end: bool,
) {
    tokio::time::sleep(app.compute.driver.step_delay()).await;
    let held = instance_resources(&inst).into();
    let dest = match claim_move(app, &inst, &mig.uuid, &inst.flavor, true, host).await {
        Ok(d) => d,
        Err(msg) => {
            actions::event_finish(app, id, req, "rebuild_server", Some((msg, msg))).await;
            fail_move(app, id, T::Rebuilding, Some(VmState::Error), msg).await;
            update_migration(app, mig.id, |m| m.status = "error".into()).await;
            return;
        }
    };
    set_destination(app, mig.id, &dest, held, "pre-migrating").await;
    actions::event_finish(app, id, req, "rebuild_server", None).await;
    actions::event_start(app, id, req, "compute_rebuild_instance", Some(&dest)).await;
    let az = zone_of(app, &dest);
    let d2 = dest.clone();
    let was_stopped = inst.vm_state == VmState::Stopped;
    let res = advance(
        app,
        id,
        DriverOp::Evacuate { dest: dest.clone() },
        T::Rebuilding,
        &[T::RebuildBlockDeviceMapping, T::RebuildSpawning],
        move |i, now| {
            if stopped_at_end || was_stopped {
                i.vm_state = VmState::Stopped;
                i.power_state = PowerState::Shutdown;
            } else {
                i.vm_state = VmState::Active;
                i.power_state = PowerState::Running;
            }
            i.host = Some(d2.clone());
            i.node = Some(d2);
            i.availability_zone = Some(az);
            i.launched_at = Some(now);
        },
    )
    .await;
    match res {
        Ok(()) => {
            update_migration(app, mig.id, |m| m.status = "done".into()).await;
            actions::event_finish(app, id, req, "compute_rebuild_instance", None).await;
        }
        Err(e) => {
            update_migration(app, mig.id, |m| m.status = "failed".into()).await;
            unclaim_move(app, id, &mig.uuid);
            actions::event_finish(app, id, req, "compute_rebuild_instance", Some(e.pair())).await;
        }
    }
}

/// A forced-down compute comes back: what the restarted nova-compute does
/// to instances evacuated away from it (their source claims are dropped and
/// the evacuations `completed`).
pub async fn source_restarted(app: &App, host: &str) {
    for m in evacuated_from(app, host) {
        complete_evacuation(app, &m).await;
    }
}

/// The evacuations away from `host` that it has not cleaned up after yet
/// (status `done`): the guests it must destroy when it comes back
/// (Nova's `_destroy_evacuated_instances`).
pub fn evacuated_from(app: &App, host: &str) -> Vec<Arc<Migration>> {
    app.compute.migrations.filter(|m| {
        m.migration_type == "evacuation"
            && m.status == "done"
            && m.source_compute.as_deref() == Some(host)
    })
}

/// The source host has destroyed its copy of an evacuated guest: its
/// claim there goes and the evacuation is `completed`.
pub async fn complete_evacuation(app: &App, m: &Migration) {
    app.compute.fleet.release(&m.uuid);
    update_migration(app, m.id, |m| m.status = "completed".into()).await;
}
