//! Live migration (`os-migrateLive`), its `force_complete` and abort, and
//! the in-progress view under `/servers/{id}/migrations`.
//!
//! The server shows MIGRATING while the simulated migration walks
//! `accepted → queued → preparing → running → post-migrating → completed`
//! and ends on the destination with its vm_state unchanged. While
//! `running`, memory is copied in a fixed number of driver steps; a
//! `force_complete` ends the copy at once and an abort puts the server back
//! on the source (`cancelled`). Below 2.34 the destination is checked
//! before the API answers (no valid host is a 400); from 2.34 the checks
//! run after the 202 and a failure only shows in the migration (`error`)
//! and an instance fault.
//!
//! An abort or `force_complete` request is a row of kind
//! `live_migration_control` (keyed by migration id), written before the API
//! answers, so no request lives only in memory. A restart ends every live
//! migration in flight (`settle` marks it `error`); the rows of migrations no
//! longer in progress are pruned when the next request is recorded.

use super::actions::{self, Logged};
use super::actions_run::{begin, subject};
use super::fleet::instance_resources;
use super::migrate::{
    claim_move, fail_move, latest_for, new_migration, require_manager, set_destination,
    unclaim_move, update_migration, Migration, LIVE_IN_PROGRESS,
};
use super::servers;
use crate::app::App;
use crate::compute::driver::LiveRequest;
use crate::http::Ctx;
use crate::store::{Store, Table};
use rova_core::admission::{admit, Action};
use rova_core::model::Instance;
use rova_core::states::{TaskState as T, VmState};
use rova_core::Fault;
use std::sync::Arc;

/// How many driver steps the memory copy takes while `running`.
pub const COPY_STEPS: i64 = 20;

/// Requests sent to a running live migration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveControl {
    /// The migration (the row's key).
    #[serde(default)]
    pub migration_id: i64,
    pub force_complete: bool,
    pub abort: bool,
}

/// Controls of the live migrations in flight, by migration id (stored).
pub struct LiveControls(Table<LiveControl>);

impl LiveControls {
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        Ok(LiveControls(Table::load("live_migration_control", store)?))
    }
    /// The requests recorded for migration `id`.
    pub fn get(&self, id: i64) -> LiveControl {
        self.0.get(&id.to_string()).map(|c| *c).unwrap_or_default()
    }
    /// Records a request durably; first drops the rows of migrations that
    /// are no longer in progress (left by a restart).
    async fn set(&self, app: &App, id: i64, f: impl FnOnce(&mut LiveControl)) -> Result<(), Fault> {
        for key in self.stale(app) {
            self.0.remove(&key).await?;
        }
        self.0
            .upsert(&id.to_string(), LiveControl::default, |c| {
                c.migration_id = id;
                f(c);
                Ok(())
            })
            .await
            .map(drop)
    }
    /// Ids of rows whose migration is gone or no longer in progress.
    fn stale(&self, app: &App) -> Vec<String> {
        let live: std::collections::HashSet<i64> = app
            .compute
            .migrations
            .filter(|m| LIVE_IN_PROGRESS.contains(&m.status.as_str()))
            .iter()
            .map(|m| m.id)
            .collect();
        self.0
            .filter(|c| !live.contains(&c.migration_id))
            .iter()
            .map(|c| c.migration_id.to_string())
            .collect()
    }
    async fn forget(&self, id: i64) {
        if let Err(e) = self.0.remove(&id.to_string()).await {
            tracing::warn!(
                migration = id,
                "forgetting live-migration requests: {}",
                e.message
            );
        }
    }
}

/// The parsed `os-migrateLive` body.
#[derive(Debug, Clone, Default)]
pub struct LiveMigrateReq {
    pub host: Option<String>,
    /// `None` is `auto` (2.25+).
    pub block_migration: Option<bool>,
    pub force: bool,
}

fn unable_to_self(inst: &Instance) -> String {
    format!(
        "Unable to migrate instance ({}) to current host ({}).",
        inst.uuid,
        inst.host.clone().unwrap_or_default()
    )
}

/// The fault-injection operation of every live-migration step.
const LM: &[&str] = &["live-migration"];

/// Chooses and claims the destination, then checks it; the message on
/// failure.
async fn schedule(
    app: &App,
    inst: &Instance,
    mig: &Migration,
    host: Option<String>,
    block: Option<bool>,
) -> Result<String, String> {
    if host.is_some() && host == inst.host {
        return Err(unable_to_self(inst));
    }
    let dest = claim_move(app, inst, &mig.uuid, &inst.flavor, true, host).await?;
    // nova/conductor/tasks/live_migrate.py _call_livem_checks_on_host:
    // check_can_live_migrate_destination failing is a MigrationPreCheckError;
    // the destination allocation is removed, and with no other host left
    // nova/conductor/manager.py _live_migrate keeps the vm_state, clears
    // the task, records the fault and sets the migration to `error`.
    let step = app
        .compute
        .driver
        .fail_point(LM, "check_can_live_migrate_destination", Some(&dest));
    if let Err(f) = step.await {
        unclaim_move(app, &inst.uuid, &mig.uuid);
        return Err(f.message);
    }
    if let Err(msg) = storage_fits(app, inst, &dest, block) {
        unclaim_move(app, &inst.uuid, &mig.uuid);
        return Err(msg);
    }
    Ok(dest)
}

/// An explicit `block_migration` against the storage of the two hosts
/// ([`storage_refusal`]).
fn storage_fits(app: &App, inst: &Instance, dest: &str, block: Option<bool>) -> Result<(), String> {
    let Some(block) = block else {
        return Ok(());
    };
    let source = inst.host.as_deref().unwrap_or_default();
    let storage = |h: &str| app.compute.driver_for(Some(h)).instance_storage();
    let local_disk = !inst.is_volume_backed() || inst.flavor.ephemeral > 0 || inst.flavor.swap > 0;
    match storage_refusal(source, storage(source), storage(dest), block, local_disk) {
        Some(msg) => Err(msg),
        None => Ok(()),
    }
}

/// Why an explicit `block_migration` does not fit the hosts' instance
/// storage (`here` on `source`, `there` on the destination; `None` for a
/// driver that keeps no disks, which fits either), as
/// nova/virt/libvirt/driver.py check_can_live_migrate_source raises it
/// with the source host's name: a block migration between hosts sharing
/// the storage (`InvalidLocalStorage`), or a migration without one
/// between hosts that do not, unless the server keeps no local disk —
/// booted from a volume, with no ephemeral or swap disk
/// (`InvalidSharedStorage`).
fn storage_refusal(
    source: &str,
    here: Option<String>,
    there: Option<String>,
    block: bool,
    local_disk: bool,
) -> Option<String> {
    let shared = here? == there?;
    if block && shared {
        return Some(format!(
            "{source} is not on local storage: Block migration can not be used with shared storage."
        ));
    }
    if !block && !shared && local_disk {
        return Some(format!(
            "{source} is not on shared storage: Shared storage live-migration requires either \
             shared storage or boot-from-volume with no local disks."
        ));
    }
    None
}

/// POST os-migrateLive.
pub async fn live_migrate(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    r: LiveMigrateReq,
) -> Result<(), Fault> {
    let cur = servers::visible(app, ctx, id)?;
    if r.host.is_some() {
        ctx.require_admin("os_compute_api:os-migrate-server:migrate_live:host")?;
    } else {
        require_manager(ctx, "os_compute_api:os-migrate-server:migrate_live")?;
    }
    admit(Action::LiveMigrate, &subject(&cur), ctx.is_admin())?;
    if let Some(h) = &r.host {
        if app.compute.fleet.host(h).is_none() {
            return Err(Fault::bad_request(format!(
                "Compute host {h} could not be found."
            )));
        }
    }
    let inst = begin(
        app,
        ctx,
        id,
        Action::LiveMigrate,
        Some(T::Migrating),
        Some(Logged::with("live-migration", "conductor_live_migrate_instance").on_control()),
    )
    .await?;
    let mig = new_migration(
        app,
        &inst,
        "live-migration",
        "accepted",
        r.host.as_deref(),
        &inst.flavor,
    )
    .await?;
    let placed = if ctx.at_least(34) {
        None
    } else {
        match schedule(app, &inst, &mig, r.host.clone(), r.block_migration).await {
            Ok(d) => Some(d),
            Err(msg) => {
                update_migration(app, mig.id, |m| m.status = "error".into()).await;
                reset_task(app, id).await;
                actions::event_finish(
                    app,
                    id,
                    &ctx.request_id,
                    "conductor_live_migrate_instance",
                    Some((&msg, &msg)),
                )
                .await;
                return Err(Fault::bad_request(msg));
            }
        }
    };
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        run(&app2, &id2, &req, inst, mig, r, placed).await;
    });
    Ok(())
}

async fn reset_task(app: &App, id: &str) {
    let now = app.clock.now();
    let _ = app
        .compute
        .update_instance(id, now, |i| {
            if i.task_state != Some(T::Migrating) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = None;
            Ok(())
        })
        .await;
}

/// Aborts: the server stays on the source, the migration is `cancelled`
/// and so is the action's `compute_live_migration` event.
async fn cancel(app: &App, id: &str, req: &str, mig: &Migration) {
    unclaim_move(app, id, &mig.uuid);
    update_migration(app, mig.id, |m| m.status = "cancelled".into()).await;
    reset_task(app, id).await;
    app.compute.live.forget(mig.id).await;
    actions::event_finish(
        app,
        id,
        req,
        "compute_live_migration",
        Some(("cancelled", "")),
    )
    .await;
}

async fn run(
    app: &Arc<App>,
    id: &str,
    req: &str,
    inst: Arc<Instance>,
    mig: Migration,
    r: LiveMigrateReq,
    placed: Option<String>,
) {
    let delay = app.compute.driver.step_delay();
    tokio::time::sleep(delay).await;
    let held = instance_resources(&inst).into();
    let dest = match placed {
        Some(d) => d,
        None => match schedule(app, &inst, &mig, r.host, r.block_migration).await {
            Ok(d) => d,
            Err(msg) => {
                fail_move(app, id, T::Migrating, None, &msg).await;
                actions::event_finish(
                    app,
                    id,
                    req,
                    "conductor_live_migrate_instance",
                    Some((&msg, &msg)),
                )
                .await;
                update_migration(app, mig.id, |m| m.status = "error".into()).await;
                return;
            }
        },
    };
    set_destination(app, mig.id, &dest, held, "queued").await;
    actions::event_finish(app, id, req, "conductor_live_migrate_instance", None).await;
    actions::event_start(app, id, req, "compute_live_migration", inst.host.as_deref()).await;
    let gone = || {
        app.compute
            .instances
            .get(id)
            .is_none_or(|i| i.deleted || i.task_state != Some(T::Migrating))
    };
    for status in ["preparing", "running"] {
        tokio::time::sleep(delay).await;
        if gone() {
            return finish_failed(app, id, req, &mig).await;
        }
        if app.compute.live.get(mig.id).abort {
            return cancel(app, id, req, &mig).await;
        }
        update_migration(app, mig.id, |m| m.status = status.into()).await;
        if status == "preparing" {
            // pre_live_migration on the destination (its own event and, on
            // failure, its fault: wrap_instance_event, wrap_instance_fault).
            // nova/compute/manager.py _do_pre_live_migration_from_source →
            // _cleanup_pre_live_migration: migration `error`, then
            // _rollback_live_migration with its default status `failed`.
            let ev = "compute_pre_live_migration";
            actions::event_start(app, id, req, ev, Some(&dest)).await;
            let step = app
                .compute
                .driver
                .fail_point(LM, "pre_live_migration", Some(&dest));
            if let Err(f) = step.await {
                super::actions_run::record_fault(app, id, &f, None).await;
                let why = (f.message.as_str(), f.details.as_str());
                actions::event_finish(app, id, req, ev, Some(why)).await;
                return rollback(app, id, req, &mig, &dest, why).await;
            }
            actions::event_finish(app, id, req, ev, None).await;
        }
    }
    let total = inst.flavor.ram as i64 * 1024 * 1024;
    let disk = inst.flavor.disk as i64 * 1024 * 1024 * 1024;
    if app.compute.driver_for(inst.host.as_deref()).is_simulated() {
        // The migration itself (source). libvirt's _live_migration_monitor
        // calls the recover method on a failed job:
        // _rollback_live_migration (nova/compute/manager.py): the server
        // stays ACTIVE on the source, the destination claim is dropped, the
        // migration `failed`, no instance fault.
        let source = inst.host.as_deref();
        if let Err(f) = app
            .compute
            .driver
            .fail_point(LM, "live_migration", source)
            .await
        {
            let why = (f.message.as_str(), f.details.as_str());
            return rollback(app, id, req, &mig, &dest, why).await;
        }
        for step in 1..=COPY_STEPS {
            let ctl = app.compute.live.get(mig.id);
            if ctl.abort {
                return cancel(app, id, req, &mig).await;
            }
            if gone() {
                return finish_failed(app, id, req, &mig).await;
            }
            if ctl.force_complete {
                break;
            }
            let done = total * step / COPY_STEPS;
            update_migration(app, mig.id, move |m| {
                m.memory_total = Some(total);
                m.memory_processed = Some(done);
                m.memory_remaining = Some(total - done);
                m.disk_total = Some(disk);
                m.disk_processed = Some(disk);
                m.disk_remaining = Some(0);
            })
            .await;
            tokio::time::sleep(delay).await;
        }
    } else {
        // A real guest: the driver copies memory to the destination while
        // the guest runs (disks are on shared storage). Meanwhile the
        // requests recorded for the migration (force-complete, abort; any
        // replica may take them) are handed to the driver, once each.
        let cur = app.compute.instances.get(id).unwrap_or(inst.clone());
        let driver = app.compute.driver_for(cur.host.as_deref());
        let moving = driver.live_migrate(&cur, &dest);
        tokio::pin!(moving);
        let (mut aborted, mut forced) = (false, false);
        let result = loop {
            tokio::select! {
                r = &mut moving => break r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    let ctl = app.compute.live.get(mig.id);
                    let asks = [
                        (ctl.abort, &mut aborted, LiveRequest::Abort),
                        (ctl.force_complete, &mut forced, LiveRequest::ForceComplete),
                    ];
                    for (asked, sent, what) in asks {
                        if asked && !*sent {
                            *sent = true;
                            if let Err(f) = driver.live_request(&cur, what).await {
                                tracing::warn!(uuid = id, "live migration {what:?}: {}", f.message);
                            }
                        }
                    }
                }
            }
        };
        if aborted && result.is_err() {
            // Nova's _rollback_live_migration with status `cancelled`.
            return cancel(app, id, req, &mig).await;
        }
        match result {
            Ok(stats) => {
                tracing::info!(
                    uuid = id,
                    total_ms = stats.total_ms,
                    downtime_ms = stats.downtime_ms,
                    "live migration completed"
                );
                update_migration(app, mig.id, move |m| {
                    m.memory_total = Some(stats.memory_total.max(total));
                    m.memory_processed = Some(stats.memory_processed);
                    m.memory_remaining = Some(0);
                    m.disk_total = Some(stats.disk_total);
                    m.disk_processed = Some(stats.disk_total);
                    m.disk_remaining = Some(0);
                })
                .await;
            }
            Err(f) => {
                super::actions_run::record_fault(app, id, &f, None).await;
                return end_failed(app, id, req, &mig, (&f.message, &f.details)).await;
            }
        }
    }
    update_migration(app, mig.id, |m| m.status = "post-migrating".into()).await;
    if let Err(f) = app
        .compute
        .driver
        .fail_point(LM, "post_live_migration", Some(&dest))
        .await
    {
        return post_failed(app, id, req, &mig, &dest, f).await;
    }
    let now = app.clock.now();
    let az = app
        .compute
        .fleet
        .host(&dest)
        .map(|h| h.availability_zone.clone())
        .unwrap_or_else(|| app.compute.fleet.default_zone());
    let d2 = dest.clone();
    let ok = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted || i.task_state != Some(T::Migrating) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = None;
            i.host = Some(d2.clone());
            i.node = Some(d2);
            i.availability_zone = Some(az);
            Ok(())
        })
        .await
        .is_ok();
    if !ok {
        return finish_failed(app, id, req, &mig).await;
    }
    app.compute.fleet.release(&mig.uuid);
    update_migration(app, mig.id, move |m| {
        m.status = "completed".into();
        if let Some(t) = m.memory_total {
            m.memory_processed = Some(t);
            m.memory_remaining = Some(0);
        }
    })
    .await;
    app.compute.live.forget(mig.id).await;
    actions::event_finish(app, id, req, "compute_live_migration", None).await;
}

/// Nova's `_rollback_live_migration` after a failed pre_live_migration or
/// a failed migration: the destination claim is dropped, the server stays
/// on the source with its task cleared, the migration `failed`.
/// rollback_live_migration_at_destination is a cast: its failure records a
/// fault and its own failed event, and the rollback still completes.
async fn rollback(app: &App, id: &str, req: &str, mig: &Migration, dest: &str, why: (&str, &str)) {
    let step = "rollback_live_migration_at_destination";
    if let Err(f) = app.compute.driver.fail_point(LM, step, Some(dest)).await {
        let ev = "compute_rollback_live_migration_at_destination";
        actions::event_start(app, id, req, ev, Some(dest)).await;
        super::actions_run::record_fault(app, id, &f, None).await;
        let pair = (f.message.as_str(), f.details.as_str());
        actions::event_finish(app, id, req, ev, Some(pair)).await;
    }
    unclaim_move(app, id, &mig.uuid);
    reset_task(app, id).await;
    actions::event_finish(app, id, req, "compute_live_migration", Some(why)).await;
    update_migration(app, mig.id, |m| m.status = "failed".into()).await;
    app.compute.live.forget(mig.id).await;
}

/// post_live_migration_at_destination failed (nova/compute/manager.py):
/// the server is on the destination in ERROR with its task cleared and the
/// fault; _do_live_migration errors the migration out. The source claim
/// the migration held is dropped (the resource tracker no longer counts an
/// errored migration).
async fn post_failed(
    app: &App,
    id: &str,
    req: &str,
    mig: &Migration,
    dest: &str,
    f: super::driver::DriverFault,
) {
    let ev = "compute_post_live_migration_at_destination";
    actions::event_start(app, id, req, ev, Some(dest)).await;
    let az = super::migrate::zone_of(app, dest);
    let d2 = dest.to_string();
    super::move_steps::error_out(app, id, &f, move |i| {
        i.host = Some(d2.clone());
        i.node = Some(d2);
        i.availability_zone = Some(az);
    })
    .await;
    app.compute.fleet.release(&mig.uuid);
    let pair = (f.message.as_str(), f.details.as_str());
    actions::event_finish(app, id, req, ev, Some(pair)).await;
    actions::event_finish(app, id, req, "compute_live_migration", Some(pair)).await;
    update_migration(app, mig.id, |m| m.status = "error".into()).await;
    app.compute.live.forget(mig.id).await;
}

async fn finish_failed(app: &App, id: &str, req: &str, mig: &Migration) {
    end_failed(app, id, req, mig, ("superseded", "")).await;
}

/// The migration ends in `error`: the destination claim is dropped, the
/// server stays on the source with its task cleared, the event fails.
async fn end_failed(app: &App, id: &str, req: &str, mig: &Migration, why: (&str, &str)) {
    update_migration(app, mig.id, |m| m.status = "error".into()).await;
    unclaim_move(app, id, &mig.uuid);
    reset_task(app, id).await;
    app.compute.live.forget(mig.id).await;
    actions::event_finish(app, id, req, "compute_live_migration", Some(why)).await;
}

/// The migration `mid` of a server, or Nova's not-found fault.
fn migration_of(app: &App, inst: &Instance, mid: &str) -> Result<Arc<Migration>, Fault> {
    mid.parse::<i64>()
        .ok()
        .and_then(|n| app.compute.migrations.get(&n.to_string()))
        .filter(|m| m.instance_uuid == inst.uuid)
        .ok_or_else(|| {
            Fault::not_found(format!(
                "Migration {mid} not found for instance {}",
                inst.uuid
            ))
        })
}

/// POST /servers/{id}/migrations/{mid}/action `force_complete` (2.22+).
pub async fn force_complete(app: &App, ctx: &Ctx, id: &str, mid: &str) -> Result<(), Fault> {
    let inst = servers::visible(app, ctx, id)?;
    require_manager(ctx, "os_compute_api:servers:migrations:force_complete")?;
    servers::check_lock(&inst, ctx)?;
    if inst.vm_state != VmState::Active {
        return Err(Fault::invalid_state(
            "force_complete",
            id,
            "vm_state",
            inst.vm_state.as_str(),
        ));
    }
    if inst.task_state != Some(T::Migrating) {
        let t = inst.task_state.map(|t| t.as_str()).unwrap_or("None");
        return Err(Fault::invalid_state("force_complete", id, "task_state", t));
    }
    let m = migration_of(app, &inst, mid).map_err(|e| Fault::bad_request(e.message))?;
    if m.status != "running" {
        return Err(Fault::bad_request(format!(
            "Migration {mid} state of instance {id} is {}. Cannot force complete while the migration is in this state.",
            m.status
        )));
    }
    actions::record(app, ctx, id, "live_migration_force_complete", None).await?;
    app.compute
        .live
        .set(app, m.id, |c| c.force_complete = true)
        .await?;
    Ok(())
}

/// DELETE /servers/{id}/migrations/{mid} (2.24+): abort a live migration
/// (`running`; also `queued`/`preparing` from 2.65).
pub async fn abort(app: &App, ctx: &Ctx, id: &str, mid: &str) -> Result<(), Fault> {
    let inst = servers::visible(app, ctx, id)?;
    require_manager(ctx, "os_compute_api:servers:migrations:delete")?;
    servers::check_lock(&inst, ctx)?;
    if inst.task_state != Some(T::Migrating) {
        let t = inst.task_state.map(|t| t.as_str()).unwrap_or("None");
        return Err(Fault::invalid_state(
            "abort live migration",
            id,
            "task_state",
            t,
        ));
    }
    let m = migration_of(app, &inst, mid)?;
    let mut allowed = vec!["running"];
    if ctx.at_least(65) {
        allowed.extend(["queued", "preparing"]);
    }
    if !allowed.contains(&m.status.as_str()) {
        return Err(Fault::bad_request(format!(
            "Migration {mid} state of instance {id} is {}. Cannot abort live migration while the migration is in this state.",
            m.status
        )));
    }
    actions::record(app, ctx, id, "live_migration_cancel", None).await?;
    app.compute.live.set(app, m.id, |c| c.abort = true).await?;
    Ok(())
}

/// GET /servers/{id}/migrations (2.23+): live migrations in progress.
pub fn list_in_progress(app: &App, ctx: &Ctx, id: &str) -> Result<Vec<Arc<Migration>>, Fault> {
    let inst = servers::visible(app, ctx, id)?;
    require_manager(ctx, "os_compute_api:servers:migrations:index")?;
    let mut v = app.compute.migrations.filter(|m| {
        m.instance_uuid == inst.uuid && m.is_live() && LIVE_IN_PROGRESS.contains(&m.status.as_str())
    });
    v.sort_by_key(|m| m.id);
    Ok(v)
}

/// GET /servers/{id}/migrations/{mid} (2.23+, admin).
pub fn show_in_progress(
    app: &App,
    ctx: &Ctx,
    id: &str,
    mid: &str,
) -> Result<Arc<Migration>, Fault> {
    let inst = servers::visible(app, ctx, id)?;
    ctx.require_admin("os_compute_api:servers:migrations:show")?;
    let m = migration_of(app, &inst, mid).map_err(|_| {
        Fault::not_found(format!(
            "In-progress live migration {mid} is not found for server {id}."
        ))
    })?;
    if !m.is_live() {
        return Err(Fault::not_found(format!(
            "Migration {mid} for server {id} is not live-migration."
        )));
    }
    if !LIVE_IN_PROGRESS.contains(&m.status.as_str()) {
        return Err(Fault::not_found(format!(
            "Live migration {mid} for server {id} is not in progress."
        )));
    }
    Ok(m)
}

/// The newest live migration of a server that is still going.
pub fn current(app: &App, instance_uuid: &str) -> Option<Arc<Migration>> {
    latest_for(app, instance_uuid, LIVE_IN_PROGRESS).filter(|m| m.is_live())
}

#[cfg(test)]
mod tests {
    use super::storage_refusal;

    fn id(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn an_explicit_block_migration_must_fit_the_storage() {
        let shared = |block, disk| storage_refusal("h1", id("a"), id("a"), block, disk);
        let apart = |block, disk| storage_refusal("h1", id("a"), id("b"), block, disk);
        // Shared storage: a block migration is refused, one without a
        // block copy fits.
        let refused = shared(true, true).unwrap_or_default();
        assert_eq!(
            refused,
            "h1 is not on local storage: Block migration can not be used with shared storage."
        );
        assert_eq!(shared(true, false).as_deref(), Some(refused.as_str()));
        assert_eq!(shared(false, true), None);
        // Storage of each host's own: only a block migration fits, unless
        // the server keeps no local disk.
        assert_eq!(apart(true, true), None);
        let refused = apart(false, true).unwrap_or_default();
        assert!(
            refused.starts_with("h1 is not on shared storage: Shared storage live-migration"),
            "{refused}"
        );
        assert!(
            refused.ends_with("boot-from-volume with no local disks."),
            "{refused}"
        );
        assert_eq!(apart(false, false), None);
        // A host whose driver keeps no disks (simulated) fits either way.
        for block in [true, false] {
            assert_eq!(storage_refusal("h1", None, id("a"), block, true), None);
            assert_eq!(storage_refusal("h1", id("a"), None, block, true), None);
        }
    }
}
