//! Start-up settling: what a crash (or any stop) left half done is put
//! right before the service takes requests, so that afterwards the records
//! say one consistent thing.
//!
//! In order:
//! - images: an upload cut short goes back to `queued` with its partial
//!   data removed (Glance); the image of an interrupted snapshot, backup or
//!   shelve is deleted. Nova's `_init_instance` only clears the snapshot
//!   task state (its drivers' interrupted-snapshot cleanup leaves the Glance
//!   image, which then stays `queued` for good); Rova treats the
//!   interruption as the failure it is and deletes the image, as Nova's
//!   `delete_image_on_error` does when a snapshot fails;
//! - admin passwords: none is kept in a record once its operation is over;
//! - migrations: a move in flight either finished (its last write landed)
//!   or ends in `error`; an interrupted revert leaves the resize to be
//!   confirmed or reverted again; a confirmed resize's migration is
//!   `confirmed`;
//! - ports: a server's ports are exactly those its record lists — a port
//!   bound to a server that does not list it (allocated just before a
//!   crash), or to a server that is gone, is deleted, or unbound when it is
//!   one the user brought;
//! - operations rows: one whose server has no operation in flight any more
//!   (its removal was lost with the process) is removed;
//! - interrupted actions (Nova's `_init_instance`): task state cleared, the
//!   open events closed as failed; a rebuild or evacuation cut short leaves
//!   the server in ERROR, as Nova does (last, since a cleared task state is
//!   what tells a client the server is settled);
//! - claims: rebuilt from the settled records, so every server is counted
//!   once on its host with its current flavor (and a finished move's
//!   source once, by its migration), and the settled servers' allocation
//!   rows made equal to them;
//! - then builds and deletes that were in flight are resumed, and stops,
//!   starts, unpauses and reboots are carried out again.
//!
//! What to do with each server and migration is decided by the pure
//! restart table, [`rova_core::restart`]; this module carries it out.
//!
//! With several processes on one database, settling is scoped by a
//! [`Settling`] (see [`super::owners`]): at start only the servers whose
//! operation has no owner or a dead one — with their migrations, ports and
//! snapshot images — are settled; a live process's are left alone. The
//! same settling, scoped to the servers of a process that died, runs
//! while serving as the takeover ([`take_over`]). Image uploads, admin
//! passwords and claims are settled at start only.

use super::build::{self, NicPlan};
use super::driver::DriverOp;
use super::migrate::{update_migration, Migration};
use super::owners::{Scope, Settling};
use super::{actions, actions_run, operations, ops};
use crate::app::App;
use crate::store::schema::Cell;
use rova_core::model::Instance;
use rova_core::restart::{migration_on_restart, on_restart, MoveFound, RestartAction, ServerFound};
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Settles everything no live process is working on, then resumes builds
/// and deletes. Call after this process took its liveness lease
/// ([`super::owners::start`]).
pub async fn at_start(app: &Arc<App>) -> Result<(), String> {
    let scope = Settling::decide(app, Scope::Start)
        .await
        .map_err(|f| f.message)?;
    app.images.settle_at_start().await.map_err(|f| f.message)?;
    forget_passwords(app, &scope).await;
    settle_servers(app, &scope, false).await;
    let placed = super::fleet::placed_instances(&app.store, &app.compute.instances)
        .map_err(|f| f.message)?;
    let migrations = app.compute.migrations.all();
    app.compute
        .fleet
        .rebuild_claims(&placed, &migrations, &|i| scope.covers(i))?;
    build::resume_all(app, &Arc::new(scope));
    Ok(())
}

/// The takeover: the servers whose operation's owner is another process
/// that died are settled as at start (migrations, interrupted actions,
/// snapshot images, stray ports), then their builds and deletes resumed
/// and their retried actions carried out. Returns how many servers it
/// covered.
pub async fn take_over(app: &Arc<App>) -> Result<usize, String> {
    let scope = Settling::decide(app, Scope::Takeover)
        .await
        .map_err(|f| f.message)?;
    if scope.is_empty() {
        return Ok(0);
    }
    let n = scope.servers().count();
    tracing::warn!(
        servers = n,
        "taking over the operations of a stopped process"
    );
    settle_servers(app, &scope, true).await;
    build::resume_all(app, &Arc::new(scope));
    Ok(n)
}

/// The covered servers' claims (their own and their migrations'), derived
/// again from their settled records as at start; every other claim stays
/// as this process keeps it. It runs while the covered servers still hold
/// their task states (so no new move of theirs is admitted meanwhile), and
/// the records are read under the claim lock (see
/// [`super::fleet::Fleet::rederive`]).
fn rederive_claims(app: &App, scope: &Settling) -> Result<(), String> {
    let covered: Vec<&str> = scope.servers().collect();
    app.compute.fleet.rederive(|| {
        let instances = app
            .compute
            .instances
            .fetch(&covered)
            .map_err(|f| f.message)?;
        let placed: Vec<super::fleet::Placed> = instances
            .iter()
            .filter(|i| !i.deleted)
            .map(|i| super::fleet::Placed::of(i))
            .collect();
        let migrations = app
            .compute
            .migrations
            .filter(|m| scope.covers(&m.instance_uuid));
        let consumers = covered
            .iter()
            .map(|i| i.to_string())
            .chain(migrations.iter().map(|m| m.uuid.clone()))
            .collect();
        Ok((placed, migrations, consumers))
    })
}

/// The settling of what belongs to the covered servers, in order. The
/// interrupted actions come last: clearing a server's task state is what
/// tells a client it is settled, so its migrations, images and ports are
/// put right before that (during a takeover clients are being served).
/// A takeover also derives the covered servers' claims again, after their
/// migrations are settled and before their task states are cleared (at
/// start every claim is derived afterwards, before requests are taken).
async fn settle_servers(app: &App, scope: &Settling, rederive: bool) {
    settle_migrations(app, scope).await;
    settle_snapshot_images(app, scope).await;
    settle_ports(app, scope).await;
    settle_operations(app, scope).await;
    if rederive {
        if let Err(e) = rederive_claims(app, scope) {
            tracing::error!("deriving the claims of the servers taken over: {e}");
        }
    }
    settle_actions(app, scope).await;
}

/// Records written before passwords stopped being stored still carry one:
/// they are rewritten without it (and it is dropped from memory unless a
/// build that will be resumed still needs it).
async fn forget_passwords(app: &App, scope: &Settling) {
    // Only a record that holds a password has this text in its document.
    let stored = app
        .compute
        .instances_where(
            "CAST(body AS TEXT) LIKE ?1",
            vec![Cell::Text("%\"admin_pass\":\"%".into())],
            |i| i.admin_pass.is_some() && scope.covers(&i.uuid),
        )
        .unwrap_or_else(|f| {
            tracing::error!("finding stored passwords: {}", f.message);
            Vec::new()
        });
    for inst in stored {
        let _ = app
            .compute
            .instances
            .update(
                &inst.uuid,
                || Fault::instance_not_found(&inst.uuid),
                |i| {
                    if !scope.still(i) {
                        return Err(Fault::conflict("settled elsewhere"));
                    }
                    if i.vm_state != VmState::Building {
                        i.admin_pass = None;
                    }
                    Ok(())
                },
            )
            .await;
    }
}

/// The restart table's view of a migration.
fn move_of(m: &Migration) -> MoveFound<'_> {
    MoveFound {
        kind: &m.migration_type,
        status: &m.status,
        source: m.source_compute.as_deref(),
        dest: m.dest_compute.as_deref(),
    }
}

async fn settle_migrations(app: &App, scope: &Settling) {
    let covered = app
        .compute
        .migrations
        .filter(|m| scope.covers(&m.instance_uuid));
    for m in covered {
        let inst = app.compute.instances.get(&m.instance_uuid);
        if let Some(to) =
            migration_on_restart(move_of(&m), inst.as_deref().and_then(ServerFound::of))
        {
            tracing::warn!(migration = m.id, from = %m.status, to, "migration settled at start");
            update_migration(app, m.id, |m| m.status = to.to_string()).await;
        }
    }
}

/// The restart table's action for server `i`, bounded by how many times
/// its operation was taken up already (its operations row).
pub fn restart_action(app: &App, i: &Instance) -> RestartAction {
    let taken_up = app
        .compute
        .operations
        .get(&i.uuid)
        .map_or(0, |o| o.attempts);
    on_restart(i.vm_state, i.task_state, i.power_state).bounded(taken_up)
}

/// Operations rows that outlived their operation (the server's write
/// that ended it landed, the row's removal did not) are removed, unless
/// a live process owns them (it may be starting that operation now).
async fn settle_operations(app: &App, scope: &Settling) {
    let Ok(live) = super::owners::Liveness::read(app).await else {
        return;
    };
    let rows = app.compute.operations.filter(|o| {
        scope.covers(&o.instance_uuid) && !o.owner.as_deref().is_some_and(|w| live.alive(w))
    });
    for row in rows {
        let server = app.compute.instances.fetch(&[row.instance_uuid.as_str()]);
        let Ok(server) = server else { continue };
        if operations::stale(server.first().map(|i| &**i)) {
            tracing::info!(server = %row.instance_uuid, kind = %row.kind, "removing a finished operation's row");
            let _ = app
                .compute
                .operations
                .write_behind(&row.instance_uuid, None);
        }
    }
}

/// An action that was running when the service stopped cannot be picked
/// up where it was: like Nova's `_init_instance`, the task state is cleared
/// (the vm_state says what the server was) and the unfinished action
/// event is closed as failed. The power-state sync of a real driver then
/// reconciles what the guest is doing. Builds and deletes are resumed
/// instead (see [`build::resume_all`]). Which servers, and how, is
/// [`restart_action`]'s answer: the restart table's, bounded by how many
/// times the operation was taken up already (a build given up goes to
/// ERROR with a fault).
async fn settle_actions(app: &App, scope: &Settling) {
    let cut_short = app
        .compute
        .instances_where(
            "(task_state IS NOT NULL OR vm_state = ?2) AND deleted = ?1",
            vec![
                Cell::Bool(false),
                Cell::Text(VmState::Building.as_str().to_string()),
            ],
            |i| !i.deleted && scope.covers(&i.uuid) && restart_action(app, i).clears_task(),
        )
        .unwrap_or_else(|f| {
            tracing::error!("finding interrupted actions: {}", f.message);
            Vec::new()
        });
    for inst in cut_short {
        let uuid = inst.uuid.as_str();
        let now = app.clock.now();
        let cleared = app
            .compute
            .update_instance(uuid, now, |i| {
                let act = restart_action(app, i);
                let settles = !i.deleted && act.clears_task() && scope.still(i);
                if !settles || !super::owners::in_flight(i) {
                    return Err(Fault::conflict("settled"));
                }
                let step = operations::step_of(i);
                i.task_state = None;
                if act == RestartAction::GiveUp {
                    i.vm_state = VmState::Error;
                    i.fault = Some(rova_core::model::InstanceFault {
                        code: 500,
                        message: format!(
                            "The operation was taken up {} times after the process \
                             running it stopped, and did not finish",
                            rova_core::restart::MAX_TAKE_UPS
                        ),
                        details: Some(format!("last step: {step}")),
                        created: now,
                    });
                }
                if act == RestartAction::ErrorState {
                    i.vm_state = VmState::Error;
                    i.system_metadata.remove("rebuild_from_vm_state");
                }
                Ok((step, act))
            })
            .await;
        let Ok((_, (task, act))) = cleared else {
            continue;
        };
        let msg = format!("interrupted by a restart of the compute service (task {task})");
        if let Some(a) = actions::latest(app, uuid) {
            for ev in a.events.iter().filter(|e| e.finish_time.is_none()) {
                actions::event_finish(app, uuid, &a.request_id, &ev.event, Some((&msg, &msg)))
                    .await;
            }
        }
        if act == RestartAction::GiveUp {
            tracing::error!(%uuid, "{msg}: taken up too often, given up (ERROR)");
        } else if act == RestartAction::ClearTaskDeleteImage {
            tracing::warn!(%uuid, "{msg}: its image is deleted");
        } else {
            tracing::warn!(%uuid, "{msg}: task state cleared");
        }
    }
}

/// A stop, start, unpause or reboot cut short by the restart is carried out again
/// (Nova's `_init_instance` retries the request): the driver step runs,
/// the server ends SHUTOFF or ACTIVE, and the action's open event is
/// closed with the outcome. A driver failure reverts the task state and
/// records the fault, as the action itself would.
pub async fn retry_action(app: &App, uuid: &str, request_id: &str, act: RestartAction) {
    use TaskState as T;
    let Some(found) = app.compute.instances.get(uuid).and_then(|i| i.task_state) else {
        return;
    };
    let (op, first, then, event, vm, power): (_, _, &[T], _, _, _) = match act {
        RestartAction::RetryStop => (
            DriverOp::Stop,
            T::PoweringOff,
            &[],
            "compute_stop_instance",
            VmState::Stopped,
            PowerState::Shutdown,
        ),
        RestartAction::RetryStart => (
            DriverOp::Start,
            T::PoweringOn,
            &[],
            "compute_start_instance",
            VmState::Active,
            PowerState::Running,
        ),
        RestartAction::RetryUnpause => (
            DriverOp::Unpause,
            T::Unpausing,
            &[],
            "compute_unpause_instance",
            VmState::Active,
            PowerState::Running,
        ),
        RestartAction::RetryReboot { hard } => {
            let (first, then): (T, &[T]) = match (hard, found) {
                (false, T::RebootPending) => (T::RebootPending, &[T::RebootStarted]),
                (false, _) => return,
                (true, T::RebootStartedHard) => (T::RebootStartedHard, &[]),
                (true, _) => (T::RebootPendingHard, &[T::RebootStartedHard]),
            };
            (
                DriverOp::Reboot { hard },
                first,
                then,
                "compute_reboot_instance",
                VmState::Active,
                PowerState::Running,
            )
        }
        _ => return,
    };
    // A soft reboot retried hard goes back to a hard reboot's pending
    // state, as Nova's `_init_instance` does.
    if first != found {
        let now = app.clock.now();
        let moved = app
            .compute
            .update_instance(uuid, now, |i| {
                if i.deleted || i.task_state != Some(found) {
                    return Err(Fault::conflict("superseded"));
                }
                i.task_state = Some(first);
                Ok(())
            })
            .await;
        if moved.is_err() {
            return;
        }
    }
    tracing::warn!(%uuid, "interrupted by a restart of the compute service (task {found}): retried");
    let res = actions_run::advance(app, uuid, op, first, then, |i, _| {
        i.vm_state = vm;
        i.power_state = power;
    })
    .await;
    let e = res.as_ref().err().map(|e| e.pair());
    actions::event_finish(app, uuid, request_id, event, e).await;
}

/// Images a server operation was writing (snapshot, backup, shelve) that
/// never got their data. Of a covered server (or, at start, of one that
/// is gone) nothing is in flight, so each belongs to an interrupted
/// operation and is deleted — except the image of a shelve whose server
/// did become SHELVED before the stop, which the simulated driver still
/// fills.
async fn settle_snapshot_images(app: &App, scope: &Settling) {
    let server_of = |img: &crate::image::Image| -> String {
        img.properties
            .get("instance_uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let unfinished = app.images.filter(|img| {
        matches!(img.status.as_str(), "queued" | "saving")
            && img.properties.contains_key("instance_uuid")
            && matches!(
                img.properties.get("image_type").and_then(Value::as_str),
                Some("snapshot" | "backup")
            )
            && scope.covers(&server_of(img))
    });
    for img in unfinished {
        let server = server_of(&img);
        let server = server.as_str();
        let inst = app.compute.instances.get(server);
        let shelved_into = inst.as_ref().is_some_and(|i| {
            !i.deleted && i.system_metadata.get("shelved_image_id") == Some(&img.id)
        });
        let simulated = app
            .compute
            .driver_for(inst.as_ref().and_then(|i| i.host.as_deref()))
            .is_simulated();
        if shelved_into && simulated {
            ops::finish_image(app, &img.id, server).await;
        } else {
            tracing::warn!(image = %img.id, %server, "image of an interrupted server operation deleted");
            let _ = app.images.delete(&img.id).await;
        }
    }
}

/// The ports a server's build asked for (its NIC plan).
fn requested_ports(app: &App, i: &Instance) -> Vec<String> {
    build::nic_plan(app, i)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| match n {
            NicPlan::Port(id) => Some(id),
            NicPlan::Network { .. } => None,
        })
        .collect()
}

/// A covered server's ports are exactly those its record lists (at start,
/// a port bound to a server that is gone is settled too).
async fn settle_ports(app: &App, scope: &Settling) {
    // Which server's record lists each port: from the copy when it holds
    // every row, else from the records' columns.
    let listed: HashMap<String, String> = if app.compute.instances.is_cached() {
        let rows = match app.store.select(
            "SELECT id, vif_ports FROM instances WHERE deleted = ?1",
            vec![Cell::Bool(false)],
        ) {
            Ok(rows) => rows,
            Err(f) => {
                tracing::error!("reading the servers' ports: {}", f.message);
                return;
            }
        };
        rows.iter()
            .filter_map(|r| Some((r.first()?.text()?, r.get(1)?.text()?)))
            .flat_map(|(uuid, ports)| {
                ports
                    .split(' ')
                    .filter(|p| !p.is_empty())
                    .map(|p| (p.to_string(), uuid.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    } else {
        app.compute
            .instances
            .filter(|i| !i.deleted)
            .iter()
            .flat_map(|i| {
                i.vifs
                    .iter()
                    .map(|v| (v.port_id.clone(), i.uuid.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let bound = app
        .networks
        .ports
        .filter(|p| p.device_owner.starts_with("compute:"));
    let now = app.clock.now();
    for p in bound {
        if listed.get(&p.id) == Some(&p.device_id) || !scope.covers(&p.device_id) {
            continue;
        }
        let brought = app
            .compute
            .instances
            .get(&p.device_id)
            .is_some_and(|i| requested_ports(app, &i).contains(&p.id));
        let res = if brought {
            app.networks.unbind_port(&p.id, now).await
        } else {
            app.networks.delete_port(&p.id).await
        };
        tracing::warn!(
            port = %p.id,
            device = %p.device_id,
            unbound = brought,
            ok = res.is_ok(),
            "port of no server settled"
        );
    }
    // Floating IPs left pointing at a port deleted by a process cut short.
    match app.networks.settle_floating_ips().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "floating IPs of deleted ports disassociated"),
        Err(f) => tracing::error!("settling floating IPs: {}", f.message),
    }
}
