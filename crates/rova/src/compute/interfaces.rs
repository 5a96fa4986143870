//! A server's network interfaces after it was built (Nova's
//! `os-interface`): attach a port or a new port on a network, detach one,
//! list and show them. Attaching is admitted as Nova admits it (ACTIVE,
//! PAUSED or STOPPED with no task, not locked for a non-admin), checked
//! before a port is made; the port (made, or the user's bound) and the
//! server's record of the NIC are written with the `attach_interface`
//! action in one transaction, then the driver plugs it in — a failed plug
//! takes the NIC off the record and lets the port go, again in one
//! transaction. Detaching takes the NIC off the record with its
//! `detach_interface` action and, in the same transaction, deletes the
//! port Rova made (a port the user brought is unbound and kept), then
//! unplugs it. Synchronous, as Nova's RPC call is.

use super::actions::{self, Logged};
use super::actions_run::{begin_along, subject};
use super::build::{prepare_nic, Nic, NicPlan};
use super::driver::{require, DriverOp};
use super::servers;
use super::Along;
use crate::app::App;
use crate::http::Ctx;
use crate::network::Port;
use rova_core::admission::{admit, Action};
use rova_core::model::{Instance, Vif};
use rova_core::Fault;
use std::net::IpAddr;
use std::sync::Arc;

/// What `POST /servers/{id}/os-interface` asks for.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub net_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<IpAddr>,
    pub tag: Option<String>,
}

/// The port behind one of server `id`'s interfaces (Nova reads it from
/// the network service): 404 when it is not there or not the server's.
pub fn port_of(app: &App, ctx: &Ctx, id: &str, port_id: &str) -> Result<Arc<Port>, Fault> {
    servers::visible(app, ctx, id)?;
    let port = visible_port(app, ctx, port_id)?;
    if port.device_id != id {
        return Err(Fault::not_found(format!(
            "Instance {id} does not have a port with id {port_id}"
        )));
    }
    Ok(port)
}

/// Port `port_id` if the caller may see it (404 otherwise, as for a port
/// that is not there).
fn visible_port(app: &App, ctx: &Ctx, port_id: &str) -> Result<Arc<Port>, Fault> {
    app.networks
        .ports
        .get(port_id)
        .filter(|p| ctx.is_admin() || p.project_id == ctx.project_id)
        .ok_or_else(|| Fault::not_found(format!("Port id {port_id} could not be found.")))
}

/// The ports of server `id`'s interfaces, with the NIC each is (for its
/// tag), in the order the server lists them.
pub fn ports_of(app: &App, ctx: &Ctx, id: &str) -> Result<Vec<(Arc<Port>, Vif)>, Fault> {
    let inst = servers::visible(app, ctx, id)?;
    Ok(inst
        .vifs
        .iter()
        .filter_map(|v| Some((app.networks.ports.get(&v.port_id)?, v.clone())))
        .collect())
}

/// Nova's choice of a NIC for an attach request: the port, a new port on
/// the network (at the requested address), or — neither given — a new
/// port on the one network the project has.
fn plan(app: &App, ctx: &Ctx, inst: &Instance, req: &AttachRequest) -> Result<NicPlan, Fault> {
    if let Some(port_id) = &req.port_id {
        let port = visible_port(app, ctx, port_id)?;
        if !port.device_id.is_empty() {
            return Err(Fault::conflict(format!("Port {port_id} is still in use.")));
        }
        return Ok(NicPlan::Port(port_id.clone()));
    }
    let usable = app.networks.networks_for(&inst.project_id);
    let network = match &req.net_id {
        Some(net) => app
            .networks
            .networks
            .get(net)
            .filter(|n| ctx.is_admin() || usable.iter().any(|u| u.id == n.id))
            .ok_or_else(|| Fault::not_found(format!("Network {net} could not be found.")))?
            .id
            .clone(),
        None => match usable.as_slice() {
            [] => {
                return Err(Fault::bad_request(format!(
                    "No specific network was requested and none are available for project '{}'.",
                    inst.project_id
                )))
            }
            [one] => one.id.clone(),
            _ => {
                return Err(Fault::bad_request(
                    "Multiple possible networks found, use a Network ID to be more specific.",
                ))
            }
        },
    };
    Ok(NicPlan::Network {
        id: network,
        fixed_ip: req.fixed_ip,
        tag: req.tag.clone(),
    })
}

/// Attaches an interface to server `id`; returns its port.
pub async fn attach(
    app: &App,
    ctx: &Ctx,
    id: &str,
    req: AttachRequest,
) -> Result<Arc<Port>, Fault> {
    ctx.require_member("os_compute_api:os-attach-interfaces:create")?;
    let inst = servers::visible(app, ctx, id)?;
    // Refused before a port is made.
    admit(Action::AttachInterface, &subject(&inst), ctx.is_admin())?;
    require(app.compute.driver.as_ref(), Action::AttachInterface)?;
    let plan = plan(app, ctx, &inst, &req)?;
    let mut attempt = 0;
    let (inst, vif) = loop {
        attempt += 1;
        let Nic {
            port,
            mut vif,
            picked,
        } = prepare_nic(app, &inst, &plan).await?;
        if vif.tag.is_none() {
            vif.tag = req.tag.clone();
        }
        // The port and the server's record of it, with the action, in one
        // transaction.
        let added = vif.clone();
        let fixed_ips = port.fixed_ips.clone();
        let along = Along {
            guard: None,
            ports: Some((&app.networks.ports, vec![(port.id.clone(), Some(port))])),
        };
        let log = Logged::with("attach_interface", "compute_attach_interface");
        let act = (Action::AttachInterface, None);
        let written = begin_along(app, ctx, id, act, (log, along), move |i, _| {
            i.vifs.push(added);
            Ok(())
        })
        .await;
        match written {
            Ok(inst) => break (inst, vif),
            Err(e) if !vif.created_by_nova => return Err(e),
            Err(e) => {
                // An address another process took: picked again.
                if !app.networks.retry_port(&e, &fixed_ips, picked, attempt) {
                    return Err(e);
                }
            }
        }
    };
    let plug = DriverOp::AttachInterface {
        port_id: vif.port_id.clone(),
        mac: vif.mac.clone(),
    };
    if let Err(f) = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&plug, &inst)
        .await
    {
        let refusal = if f.code == 501 {
            Fault::new(501, f.message.clone())
        } else {
            Fault::internal(format!(
                "Failed to attach network adapter device to {id}: {} ({})",
                f.message, f.details
            ))
        };
        // Nova deallocates the port: the server's record and the port go
        // back together.
        let taken_back = let_go(app, id, &vif).await;
        let err = (f.message.as_str(), f.details.as_str());
        actions::event_finish(
            app,
            id,
            &ctx.request_id,
            "compute_attach_interface",
            Some(err),
        )
        .await;
        taken_back?;
        return Err(refusal);
    }
    actions::event_finish(app, id, &ctx.request_id, "compute_attach_interface", None).await;
    app.networks
        .ports
        .get(&vif.port_id)
        .ok_or_else(|| Fault::not_found(format!("Port id {} could not be found.", vif.port_id)))
}

/// Takes NIC `vif` off server `id`'s record and lets its port go (deleted
/// when Nova made it, else unbound) in one transaction, with no action of
/// its own: an attach whose plug failed undone.
async fn let_go(app: &App, id: &str, vif: &Vif) -> Result<(), Fault> {
    let now = app.clock.now();
    let gone = vif.port_id.clone();
    let change = app.compute.stamped(now, None, move |i: &mut Instance| {
        i.vifs.retain(|v| v.port_id != gone);
        Ok(())
    });
    let release = app
        .networks
        .released(&vif.port_id, vif.created_by_nova, now);
    let old = app.networks.ports.get(&vif.port_id);
    app.compute
        .instances
        .update_with(
            id,
            || Fault::instance_not_found(id),
            change,
            &app.networks.ports,
            |_, view| {
                if let Some((pid, port)) = release {
                    view.write(&pid, port);
                }
                Ok(())
            },
        )
        .await?;
    if let (Some(p), true) = (old, vif.created_by_nova) {
        app.networks.forget_port(&p);
        let _ = app.networks.disassociate_port(&p.id).await;
    }
    Ok(())
}

/// Detaches interface `port_id` from server `id`.
pub async fn detach(app: &App, ctx: &Ctx, id: &str, port_id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-attach-interfaces:delete")?;
    let inst = servers::visible(app, ctx, id)?;
    admit(Action::DetachInterface, &subject(&inst), ctx.is_admin())?;
    require(app.compute.driver.as_ref(), Action::DetachInterface)?;
    let Some(vif) = inst.vifs.iter().find(|v| v.port_id == port_id).cloned() else {
        return Err(Fault::not_found(format!("Port {port_id} is not attached")));
    };
    let now = app.clock.now();
    // The NIC leaves the server's record and its port goes (deleted when
    // Nova made it, else unbound) in one transaction, with the action.
    let old = app.networks.ports.get(port_id);
    let release = app.networks.released(port_id, vif.created_by_nova, now);
    let along = Along {
        guard: None,
        ports: release.map(|r| (&app.networks.ports, vec![r])),
    };
    let log = Logged::with("detach_interface", "compute_detach_interface");
    let gone = port_id.to_string();
    let act = (Action::DetachInterface, None);
    let inst = begin_along(app, ctx, id, act, (log, along), move |i, _| {
        let before = i.vifs.len();
        i.vifs.retain(|v| v.port_id != gone);
        if i.vifs.len() == before {
            return Err(Fault::not_found(format!("Port {gone} is not attached")));
        }
        Ok(())
    })
    .await?;
    if let (Some(p), true) = (old, vif.created_by_nova) {
        app.networks.forget_port(&p);
        let _ = app.networks.disassociate_port(&p.id).await;
    }
    let unplug = DriverOp::DetachInterface {
        port_id: port_id.to_string(),
    };
    let failed = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&unplug, &inst)
        .await
        .err();
    let error = failed
        .as_ref()
        .map(|f| (f.message.as_str(), f.details.as_str()));
    actions::event_finish(app, id, &ctx.request_id, "compute_detach_interface", error).await;
    Ok(())
}
