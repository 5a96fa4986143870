//! The background build of a server: the persisted steps scheduling →
//! networking → block_device_mapping → spawning → ACTIVE, port allocation
//! and release, failing a build into ERROR with its fault, and, after a
//! restart, resuming the builds, deletes and actions that were cut short.

use super::{nic_plan, NicPlan, NIC_PLAN_KEY};
use crate::app::App;
use crate::compute::owners::Settling;
use crate::compute::{actions, servers};
use crate::network::{NewPort, Port};
use chrono::{DateTime, Utc};
use rova_core::model::{FixedIp, Instance, InstanceFault, Vif};
use rova_core::restart::RestartAction;
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use std::sync::Arc;

/// Moves a building instance to `task` (and whatever `also` sets), unless it
/// is being deleted, no longer building, or another process took the
/// build over (this one was thought dead: see `compute::owners`). Returns
/// false when the build must stop.
async fn step(
    app: &App,
    uuid: &str,
    expect: &[Option<TaskState>],
    task: Option<TaskState>,
    also: impl FnOnce(&mut Instance, DateTime<Utc>),
) -> bool {
    let now = app.clock.now();
    let me = app.compute.owner();
    let res = app
        .compute
        .update_instance(uuid, now, |i| {
            still_building(i, me, expect)?;
            i.task_state = task;
            also(i, now);
            Ok(())
        })
        .await;
    match res {
        Ok(_) => true,
        Err(f) => {
            // Superseded (deleted, taken over) is the usual reason; anything
            // else leaves the build where it was and is worth a line.
            if f.message != SUPERSEDED {
                tracing::warn!(server = %uuid, "build step refused: {}", f.message);
            }
            false
        }
    }
}

/// Why a build step finds the server no longer its to build.
const SUPERSEDED: &str = "build superseded";

/// Refuses (with [`SUPERSEDED`]) a build step on server `i` when it is
/// being deleted, no longer building, past the steps `expect` names, or
/// another process than `me` took its build over.
fn still_building(i: &Instance, me: &str, expect: &[Option<TaskState>]) -> Result<(), Fault> {
    let taken = i.op_owner.as_deref().is_some_and(|o| o != me);
    if i.deleted || taken || i.vm_state != VmState::Building || !expect.contains(&i.task_state) {
        tracing::debug!(
            server = %i.uuid,
            deleted = i.deleted,
            owner = ?i.op_owner,
            vm_state = i.vm_state.as_str(),
            task_state = ?i.task_state,
            "build superseded"
        );
        return Err(Fault::conflict(SUPERSEDED));
    }
    Ok(())
}

/// Runs (or resumes) the build of one instance. `plan` is the NIC plan from
/// the request; on resume it is the one recorded on the instance (ports
/// allocated before a restart but not recorded were settled at start).
pub async fn run_build(app: &Arc<App>, uuid: &str, request_id: &str, plan: Option<Vec<NicPlan>>) {
    let delay = app.compute.driver.step_delay();
    let pause = || async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    };
    let Some(inst) = app.compute.instances.get(uuid) else {
        return;
    };
    // Scheduling → networking: the scheduler picks a host and claims its
    // resources atomically; no host means ERROR with Nova's NoValidHost.
    if inst.task_state == Some(TaskState::Scheduling) {
        pause().await;
        // A fault at `scheduling` is the conductor's NoValidHost (Nova's
        // conductor/manager.py schedule_and_build_instances →
        // _bury_in_cell0 / _set_vm_state_and_notify: ERROR with the fault).
        let injected = app
            .compute
            .driver
            .fail_point(&["spawn"], "scheduling", None)
            .await
            .err();
        // A host the database finds full (another process filled it) is
        // left out and the next candidate tried, as Nova's conductor tries
        // alternates when a claim fails.
        let mut full: Vec<String> = Vec::new();
        let placed = loop {
            let placed = match &injected {
                Some(f) => Err(f.message.clone()),
                None => {
                    let (placed, staged) =
                        crate::compute::scheduler::schedule_build(app, &inst, &full);
                    // The claim's allocation row, checked against the
                    // host's capacity by the database: refused, the host
                    // is full (another process's claims took it) and the
                    // next candidate is tried, as Nova's alternates.
                    match (placed, staged) {
                        (Ok(p), Some(staged)) => match staged.outcome().await {
                            Err(f) if crate::store::is_capacity_refusal(&f) => {
                                crate::compute::scheduler::release_instance(app, uuid);
                                full.push(p.host);
                                continue;
                            }
                            _ => Ok(p),
                        },
                        (placed, _) => placed.map_err(|nvh| nvh.message().to_string()),
                    }
                }
            };
            let placed = match placed {
                Ok(p) => p,
                Err(msg) => {
                    let msg = msg.as_str();
                    actions::event_start(
                        app,
                        uuid,
                        request_id,
                        "conductor_schedule_and_build_instances",
                        Some(crate::compute::fleet::CONTROL_HOST),
                    )
                    .await;
                    // The event closes before the server turns ERROR.
                    actions::event_finish(
                        app,
                        uuid,
                        request_id,
                        "conductor_schedule_and_build_instances",
                        Some((msg, msg)),
                    )
                    .await;
                    fail_build(app, uuid, request_id, 500, msg, msg).await;
                    return;
                }
            };
            let h = placed.host.clone();
            let az = placed.availability_zone.clone();
            let placed_there = step(
                app,
                uuid,
                &[Some(TaskState::Scheduling)],
                Some(TaskState::Networking),
                |i, _| {
                    i.host = Some(h.clone());
                    i.node = Some(h);
                    i.availability_zone = Some(az);
                },
            )
            .await;
            if !placed_there {
                crate::compute::scheduler::release_instance(app, uuid);
                return;
            }
            break placed;
        };
        actions::event_start(
            app,
            uuid,
            request_id,
            "compute__do_build_and_run_instance",
            Some(&placed.host),
        )
        .await;
    }
    // Networking: allocate ports unless already done.
    let Some(inst) = app.compute.instances.get(uuid) else {
        return;
    };
    if inst.task_state == Some(TaskState::Networking) {
        let plan = plan.or_else(|| nic_plan(app, &inst)).unwrap_or_else(|| {
            // Resumed without a recorded plan (a record from before plans
            // were kept): one NIC on the default network.
            app.networks
                .networks_for(&inst.project_id)
                .first()
                .map(|n| {
                    vec![NicPlan::Network {
                        id: n.id.clone(),
                        fixed_ip: None,
                        tag: None,
                    }]
                })
                .unwrap_or_default()
        });
        if !network(app, &inst, request_id, &plan).await {
            return;
        }
        pause().await;
    }
    let Some(inst) = app.compute.instances.get(uuid) else {
        return;
    };
    if inst.task_state == Some(TaskState::BlockDeviceMapping) {
        // Nova's _build_resources: a failure preparing block devices aborts
        // the build with "Failure prepping block device." (networks cleaned
        // up, fault recorded, ERROR).
        if let Err(f) = app
            .compute
            .driver
            .fail_point(&["spawn"], "block_device_mapping", inst.host.as_deref())
            .await
        {
            let msg = format!("Build of instance {uuid} aborted: Failure prepping block device.");
            fail_build(app, uuid, request_id, 500, &msg, &f.message).await;
            return;
        }
    }
    let mut mappings = inst.block_device_mapping.clone();
    if inst.task_state == Some(TaskState::BlockDeviceMapping) {
        // The server's volumes: made, reserved and attached.
        match crate::compute::volumes::prepare_build_volumes(app, &inst).await {
            Ok(m) => mappings = m,
            Err(f) => {
                let msg =
                    format!("Build of instance {uuid} aborted: Failure prepping block device.");
                fail_build(app, uuid, request_id, 500, &msg, &f.message).await;
                return;
            }
        }
    }
    if inst.task_state == Some(TaskState::BlockDeviceMapping)
        && !step(
            app,
            uuid,
            &[Some(TaskState::BlockDeviceMapping)],
            Some(TaskState::Spawning),
            |i, _| i.block_device_mapping = mappings,
        )
        .await
    {
        return;
    }
    let Some(inst) = app.compute.instances.get(uuid) else {
        return;
    };
    if inst.task_state != Some(TaskState::Spawning) {
        return;
    }
    match app
        .compute
        .driver_for(inst.host.as_deref())
        .spawn(&inst)
        .await
    {
        Ok(()) => {
            let ok = step(app, uuid, &[Some(TaskState::Spawning)], None, |i, now| {
                i.vm_state = VmState::Active;
                i.power_state = PowerState::Running;
                i.launched_at = Some(now);
            })
            .await;
            if ok {
                actions::event_finish(
                    app,
                    uuid,
                    request_id,
                    "compute__do_build_and_run_instance",
                    None,
                )
                .await;
            }
        }
        Err(f) => {
            fail_build(app, uuid, request_id, f.code, &f.message, &f.details).await;
        }
    }
}

/// The networking step of building `inst`: its ports, made or bound as
/// `plan` says, are written in one transaction with the server's move to
/// block_device_mapping that records them (its `vifs`), so a port of a
/// server is never written without the server naming it, nor the other
/// way round. Another process taking a picked address meanwhile refuses
/// the transaction, and new addresses are picked. False when the build
/// must stop (failed into ERROR, or no longer this process's).
async fn network(app: &App, inst: &Instance, request_id: &str, plan: &[NicPlan]) -> bool {
    let uuid = inst.uuid.as_str();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Nova's compute/manager.py _build_resources: a failure in
        // _build_networks_for_instance aborts the build (no reschedule)
        // with "Failed to allocate the network(s), not rescheduling.";
        // _do_build_and_run_instance then cleans up the networks, records
        // the fault and errors the instance out.
        let ports = match prepare_ports(app, inst, plan).await {
            Ok(p) => p,
            Err(f) => {
                let msg = format!("Build of instance {uuid} aborted: {}", f.message);
                fail_build(app, uuid, request_id, 500, &msg, &f.message).await;
                return false;
            }
        };
        let host = inst.host.as_deref();
        if let Err(f) = app
            .compute
            .driver
            .fail_point(&["spawn"], "networking", host)
            .await
        {
            forget_ports(app, &ports);
            let reason = "Failed to allocate the network(s), not rescheduling.";
            let msg = format!("Build of instance {uuid} aborted: {reason}");
            fail_build(app, uuid, request_id, 500, &msg, &f.message).await;
            return false;
        }
        let vifs: Vec<Vif> = ports.iter().map(|n| n.vif.clone()).collect();
        let now = app.clock.now();
        let me = app.compute.owner();
        let change = app.compute.stamped(now, None, |i: &mut Instance| {
            still_building(i, me, &[Some(TaskState::Networking)])?;
            i.task_state = Some(TaskState::BlockDeviceMapping);
            i.vifs = vifs;
            i.system_metadata.remove(NIC_PLAN_KEY);
            Ok(())
        });
        let missing = || Fault::instance_not_found(uuid);
        let written = app
            .compute
            .instances
            .update_with(uuid, missing, change, &app.networks.ports, |_, view| {
                for n in &ports {
                    view.put(&n.port.id, n.port.clone());
                }
                Ok(())
            })
            .await;
        let e = match written {
            Ok(_) => return true,
            Err(e) => e,
        };
        // Every address picked is settled: the one another process took
        // marked used, the rest given back; picked again while tries last.
        let mut again = false;
        for n in ports.iter().filter(|n| n.vif.created_by_nova) {
            // The port whose address was taken decides.
            let held = app.networks.holds_taken(&e, &n.port.fixed_ips);
            let retry = app
                .networks
                .retry_port(&e, &n.port.fixed_ips, n.picked, attempt);
            again |= held && retry;
        }
        if again {
            continue;
        }
        if e.message == SUPERSEDED {
            return false;
        }
        tracing::warn!(server = %uuid, "writing the server's ports refused: {}", e.message);
        let msg = format!("Build of instance {uuid} aborted: {}", e.message);
        fail_build(app, uuid, request_id, 500, &msg, &e.message).await;
        return false;
    }
}

/// A NIC of a building server, prepared: its port as it is to be
/// written, the NIC the server records, and whether the port's addresses
/// were picked (not requested).
pub(crate) struct Nic {
    pub port: Port,
    pub vif: Vif,
    pub picked: bool,
}

/// The port Nova makes for server `inst` on network `network`.
fn nova_port<'a>(
    inst: &'a Instance,
    network: &'a str,
    fixed_ip: Option<std::net::IpAddr>,
    security_groups: Vec<String>,
) -> NewPort<'a> {
    NewPort {
        project_id: &inst.project_id,
        network_id: network,
        fixed_ip,
        device_id: &inst.uuid,
        device_owner: "compute:nova",
        security_groups,
    }
}

/// Gives back the addresses of the prepared ports made for the server
/// (none of them was written).
fn forget_ports(app: &App, nics: &[Nic]) {
    for n in nics.iter().filter(|n| n.vif.created_by_nova) {
        app.networks.forget_port(&n.port);
    }
}

/// The ports of `inst`'s NICs as the networking step writes them (not
/// written yet), each with the NIC it becomes: a port the plan names,
/// bound to the server; else a new one on the planned network.
async fn prepare_ports(app: &App, inst: &Instance, plan: &[NicPlan]) -> Result<Vec<Nic>, Fault> {
    let mut out: Vec<Nic> = Vec::with_capacity(plan.len());
    for nic in plan {
        match prepare_nic(app, inst, nic).await {
            Ok(n) => out.push(n),
            Err(f) => {
                forget_ports(app, &out);
                return Err(f);
            }
        }
    }
    Ok(out)
}

/// The port of one of `inst`'s NICs as it is to be written (not written
/// yet), with the NIC it becomes: a port `nic` names, bound to the
/// server; else a new one on the planned network, its addresses taken
/// in this process's used-address sets.
pub(crate) async fn prepare_nic(app: &App, inst: &Instance, nic: &NicPlan) -> Result<Nic, Fault> {
    let now = app.clock.now();
    {
        let made = match nic {
            NicPlan::Port(id) => app
                .networks
                .bound_port(id, &inst.uuid, "compute:nova", now)
                .map(|p| (p, false, None)),
            NicPlan::Network { id, fixed_ip, tag } => {
                match crate::compute::secgroups::group_ids_for(app, inst).await {
                    Ok(security_groups) => {
                        let want = nova_port(inst, id, *fixed_ip, security_groups);
                        app.networks
                            .new_port(&want, now)
                            .map(|p| (p, true, tag.clone()))
                    }
                    Err(f) => Err(f),
                }
            }
        };
        let (port, created, tag) = made?;
        let vif = vif_of(app, &port, created, tag);
        let picked = matches!(nic, NicPlan::Network { fixed_ip: None, .. });
        Ok(Nic { port, vif, picked })
    }
}

/// The NIC port `port` gives a server.
fn vif_of(app: &App, port: &Port, created: bool, tag: Option<String>) -> Vif {
    let label = app
        .networks
        .networks
        .get(&port.network_id)
        .map(|n| n.name.clone())
        .unwrap_or_default();
    Vif {
        port_id: port.id.clone(),
        network_id: port.network_id.clone(),
        network_label: label,
        mac: port.mac_address.clone(),
        fixed_ips: port
            .fixed_ips
            .iter()
            .map(|ip| FixedIp {
                version: if ip.ip_address.contains(':') { 6 } else { 4 },
                address: ip.ip_address.clone(),
                subnet_id: ip.subnet_id.clone(),
                floating_ips: Vec::new(),
            })
            .collect(),
        tag,
        created_by_nova: created,
    }
}

pub(crate) async fn release_vifs(app: &App, vifs: &[Vif]) {
    let now = app.clock.now();
    for v in vifs {
        let _ = if v.created_by_nova {
            app.networks.delete_port(&v.port_id).await
        } else {
            app.networks.unbind_port(&v.port_id, now).await
        };
    }
}

async fn fail_build(
    app: &App,
    uuid: &str,
    request_id: &str,
    code: u16,
    message: &str,
    details: &str,
) {
    crate::compute::scheduler::release_instance(app, uuid);
    // Nova's _do_build_and_run_instance (BuildAbortException, and a
    // RescheduledException with no host left to retry) calls
    // _cleanup_allocated_networks: the ports Nova made are deleted, the
    // ones the user passed are unbound.
    if let Some(inst) = app.compute.instances.get(uuid) {
        release_vifs(app, &inst.vifs).await;
        crate::compute::volumes::release_server_volumes(app, &inst).await;
    }
    // The event is closed before the server turns ERROR, so a client that
    // sees ERROR also sees the failed event (its traceback, its finish time).
    actions::event_finish(
        app,
        uuid,
        request_id,
        "compute__do_build_and_run_instance",
        Some((message, details)),
    )
    .await;
    let now = app.clock.now();
    let msg = message.to_string();
    let det = details.to_string();
    let _ = app
        .compute
        .update_instance(uuid, now, |i| {
            if i.deleted {
                return Err(Fault::conflict("deleted"));
            }
            i.vm_state = VmState::Error;
            i.task_state = None;
            i.power_state = PowerState::NoState;
            // Nova nils out host and node when a build fails for good.
            i.vifs.clear();
            i.host = None;
            i.node = None;
            i.fault = Some(InstanceFault {
                code,
                message: msg,
                details: Some(det),
                created: now,
            });
            Ok(())
        })
        .await;
}

/// After a restart (once [`crate::compute::settle::at_start`] has settled what was
/// cut short), or in a takeover: resume the covered servers' builds and
/// deletes that were in flight, and carry out again stops, starts,
/// unpauses and reboots cut short. Each is first claimed (this process
/// becomes its owner, if no other process did first).
pub fn resume_all(app: &Arc<App>, scope: &Arc<Settling>) {
    for inst in app
        .compute
        .instances
        .filter(|i| !i.deleted && scope.covers(&i.uuid))
    {
        let last_request = crate::compute::actions::latest(app, &inst.uuid)
            .map(|a| a.request_id.clone())
            .unwrap_or_default();
        let act = crate::compute::settle::restart_action(app, &inst);
        if !matches!(
            act,
            RestartAction::ResumeDelete
                | RestartAction::ResumeBuild
                | RestartAction::RetryStop
                | RestartAction::RetryStart
                | RestartAction::RetryUnpause
                | RestartAction::RetryReboot { .. }
        ) {
            continue;
        }
        let (app, scope, uuid) = (app.clone(), scope.clone(), inst.uuid.clone());
        tokio::spawn(async move {
            if !scope.claim(&app, &uuid).await {
                return;
            }
            match act {
                RestartAction::ResumeDelete => {
                    servers::terminate(&app, &uuid, &last_request).await;
                }
                RestartAction::ResumeBuild => {
                    run_build(&app, &uuid, &last_request, None).await;
                }
                _ => crate::compute::settle::retry_action(&app, &uuid, &last_request, act).await,
            }
        });
    }
}
