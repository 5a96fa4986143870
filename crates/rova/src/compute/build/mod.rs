//! Server creation and the build operation.
//!
//! `create` runs in the request: it checks policy, resolves the flavor,
//! image, keypair, availability zone and networks, reserves quota, writes
//! the instance rows in BUILD/scheduling with a `create` instance action,
//! and returns. The build then runs in the background as a sequence of
//! steps — scheduling → networking → block_device_mapping → spawning →
//! ACTIVE — each persisted before the next starts, so a restarted process
//! resumes a build from where it stopped (`resume_all`). Every step writes
//! with compare-and-swap and stops if the server is being deleted.
//!
//! This module owns the request side (the validated request, the NIC
//! plan, `create`); `run` owns the background build and the resumption
//! of work cut short by a restart.

mod run;
pub(crate) use run::{prepare_nic, Nic};

pub use run::{resume_all, run_build};

use super::actions;
use crate::app::App;
use crate::http::Ctx;
use rand::seq::SliceRandom;
use rand::Rng;
use rova_core::model::{BlockDeviceMapping, FlavorSnapshot, InjectedFile, Instance};
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Which networks the server asked for.
#[derive(Debug, Clone, Default)]
pub enum NetworksReq {
    /// Field absent (before 2.37): use the one available network.
    #[default]
    Unspecified,
    Auto,
    None,
    List(Vec<NetReq>),
}

/// One requested NIC.
#[derive(Debug, Clone, Default)]
pub struct NetReq {
    pub uuid: Option<String>,
    pub port: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// A validated create request, independent of the wire format.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub name: String,
    pub image_ref: String,
    pub flavor_ref: String,
    pub admin_pass: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub personality: Vec<InjectedFile>,
    pub user_data: Option<String>,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    pub networks: NetworksReq,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub forced_host: Option<String>,
    pub config_drive: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub hostname: Option<String>,
    pub min_count: u64,
    pub max_count: u64,
    pub return_reservation_id: bool,
    pub bdms: Vec<BlockDeviceMapping>,
    pub scheduler_hints: BTreeMap<String, Value>,
    pub security_groups: Vec<String>,
    pub auto_disk_config: bool,
    pub trusted_image_certificates: Option<Vec<String>>,
}

/// What create returns to the API layer.
pub struct Created {
    pub first: Arc<Instance>,
    pub admin_pass: String,
    pub reservation_id: String,
}

/// Nova's generated password: `len` characters with at least one digit,
/// one upper- and one lower-case letter (ambiguous ones left out).
pub fn generate_password(len: usize) -> String {
    const SETS: [&[u8]; 3] = [
        b"23456789",
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
    ];
    let mut rng = rand::thread_rng();
    let all: Vec<u8> = SETS.concat();
    let mut out: Vec<u8> = SETS.iter().map(|s| s[rng.gen_range(0..s.len())]).collect();
    while out.len() < len.max(3) {
        out.push(all[rng.gen_range(0..all.len())]);
    }
    out.shuffle(&mut rng);
    String::from_utf8_lossy(&out).into_owned()
}

fn reservation_id() -> String {
    const CH: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let s: String = (0..8)
        .map(|_| CH[rng.gen_range(0..CH.len())] as char)
        .collect();
    format!("r-{s}")
}

/// A planned NIC: an existing port to bind, or a network to create one on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum NicPlan {
    Port(String),
    Network {
        id: String,
        fixed_ip: Option<IpAddr>,
        tag: Option<String>,
    },
}

/// The system_metadata key that held a build's NIC plan in records from
/// before operations rows carried it (read for those, never written).
pub const NIC_PLAN_KEY: &str = "rova_nic_plan";

/// The NIC plan of server `i`'s build, so a build resumed after its
/// process died asks for the same NICs (and start-up settling knows which
/// bound ports the user brought): the `nics` argument of its operations
/// row, else the plan an older record kept. None: none recorded.
pub fn nic_plan(app: &App, i: &Instance) -> Option<Vec<NicPlan>> {
    app.compute
        .operations
        .get(&i.uuid)
        .and_then(|o| o.args.as_ref()?.get("nics").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .or_else(|| {
            i.system_metadata
                .get(NIC_PLAN_KEY)
                .and_then(|s| serde_json::from_str(s).ok())
        })
}

fn resolve_networks(app: &App, ctx: &Ctx, req: &BuildRequest) -> Result<Vec<NicPlan>, Fault> {
    match &req.networks {
        NetworksReq::None => Ok(vec![]),
        NetworksReq::Unspecified | NetworksReq::Auto => {
            let nets = app.networks.networks_for(&ctx.project_id);
            match nets.len() {
                0 if matches!(req.networks, NetworksReq::Unspecified) => Ok(vec![]),
                0 => Err(Fault::bad_request(
                    "Unable to automatically allocate a network for project",
                )),
                1 => Ok(vec![NicPlan::Network {
                    id: nets[0].id.clone(),
                    fixed_ip: None,
                    tag: None,
                }]),
                _ if matches!(req.networks, NetworksReq::Auto) => {
                    // With several networks, "auto" uses the shared one
                    // first, as Nova prefers an existing usable network.
                    let pick = nets.iter().find(|n| n.shared).unwrap_or(&nets[0]);
                    Ok(vec![NicPlan::Network {
                        id: pick.id.clone(),
                        fixed_ip: None,
                        tag: None,
                    }])
                }
                _ => Err(Fault::conflict(
                    "Multiple possible networks found, use a Network ID to be more specific.",
                )),
            }
        }
        NetworksReq::List(list) => {
            let mut out = Vec::new();
            for n in list {
                if let Some(port) = &n.port {
                    let p = app
                        .networks
                        .ports
                        .get(port)
                        .filter(|p| ctx.is_admin() || p.project_id == ctx.project_id)
                        .ok_or_else(|| {
                            Fault::bad_request(format!("Port id {port} could not be found."))
                        })?;
                    if !p.device_id.is_empty() {
                        return Err(Fault::conflict(format!("Port {port} is still in use.")));
                    }
                    out.push(NicPlan::Port(port.clone()));
                } else if let Some(net) = &n.uuid {
                    app.networks
                        .visible_network(net, &ctx.project_id, ctx.is_admin())
                        .ok_or_else(|| {
                            Fault::bad_request(format!("Network {net} could not be found."))
                        })?;
                    let fixed_ip = match &n.fixed_ip {
                        Some(ip) => {
                            let addr: IpAddr = ip.parse().map_err(|_| {
                                Fault::bad_request(format!("Invalid fixed IP address ({ip})"))
                            })?;
                            let in_net = app
                                .networks
                                .subnets_of(net)
                                .iter()
                                .any(|s| crate::network::cidr_contains(&s.cidr, addr));
                            if !in_net {
                                return Err(Fault::bad_request(format!(
                                    "Fixed IP {ip} is not a valid ip address for network {net}."
                                )));
                            }
                            Some(addr)
                        }
                        None => None,
                    };
                    out.push(NicPlan::Network {
                        id: net.clone(),
                        fixed_ip,
                        tag: n.tag.clone(),
                    });
                }
            }
            Ok(out)
        }
    }
}

/// POST /servers after validation.
pub async fn create(app: &Arc<App>, ctx: &Ctx, mut req: BuildRequest) -> Result<Created, Fault> {
    ctx.require_member("os_compute_api:servers:create")?;
    if (req.forced_host.is_some()) && !ctx.is_admin() {
        return Err(Fault::policy("os_compute_api:servers:create:forced_host"));
    }
    let flavor = app
        .compute
        .flavors
        .get(&req.flavor_ref)
        .filter(|f| !f.disabled && f.visible_to(ctx))
        .ok_or_else(|| Fault::bad_request("Invalid flavorRef provided."))?;
    let mut image_properties = BTreeMap::new();
    if !req.image_ref.is_empty() {
        let img = app
            .images
            .visible(&req.image_ref, &ctx.project_id, ctx.is_admin())
            .ok_or_else(|| Fault::bad_request("Can not find requested image"))?;
        if img.status != "active" {
            return Err(Fault::bad_request(format!(
                "Image {} is not active.",
                img.id
            )));
        }
        if flavor.ram < img.min_ram {
            return Err(Fault::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
        if flavor.disk > 0 && flavor.disk < img.min_disk {
            return Err(Fault::bad_request(
                "Flavor's disk is too small for requested image.",
            ));
        }
        for (k, v) in &img.properties {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            image_properties.insert(k.clone(), s);
        }
        // The mappings the image defines (a volume-backed server's
        // snapshot): a root volume among them makes the server boot from
        // a volume, as if the request had mapped it. The server keeps the
        // image's id (Nova shows it as the server's image).
        let defined = super::volumes::image_defined_mappings(&img);
        if !defined.is_empty() {
            req.bdms = super::volumes::merge_image_mappings(defined, std::mem::take(&mut req.bdms));
        }
    } else if req.bdms.is_empty() {
        return Err(Fault::bad_request("Missing imageRef attribute"));
    }
    let key = match &req.key_name {
        Some(k) => Some(
            app.compute
                .keypairs
                .get(&super::Keypair::key(&ctx.user_id, k))
                .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))?,
        ),
        None => None,
    };
    if let Some(want) = &req.availability_zone {
        if !app.compute.fleet.has_zone(want) {
            return Err(Fault::bad_request(
                "The requested availability zone is not available",
            ));
        }
    }
    if let Some(host) = &req.forced_host {
        if app.compute.fleet.host(host).is_none() {
            return Err(Fault::bad_request(format!(
                "Compute host {host} could not be found."
            )));
        }
    }
    let group = match req.scheduler_hints.get("group") {
        Some(Value::String(g)) => Some(super::server_groups::for_hint(app, g)?),
        Some(Value::Array(a)) => match a.first().and_then(Value::as_str) {
            Some(g) => Some(super::server_groups::for_hint(app, g)?),
            None => None,
        },
        _ => None,
    };
    super::secgroups::check_requested(app, ctx, &req.security_groups).await?;
    let nics = resolve_networks(app, ctx, &req)?;
    if req.max_count > 1 && nics.iter().any(|n| matches!(n, NicPlan::Port(_))) {
        return Err(Fault::bad_request(
            "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.",
        ));
    }
    // Nova's `_validate_bdm`, flavor part (`max_local_block_devices` = 3).
    rova_core::validate::check_bdm_flavor_limits(&req.bdms, flavor.ephemeral, flavor.swap, 3)?;
    let boot_properties = super::volumes::check_create_mappings(
        app,
        ctx,
        &req.bdms,
        req.max_count,
        req.image_ref.is_empty(),
    )?;
    if req.image_ref.is_empty() {
        image_properties = boot_properties;
    }
    let uuids = app.compute.reserve(
        &ctx.project_id,
        req.min_count.max(1),
        req.max_count.max(req.min_count).max(1),
        flavor.vcpus,
        flavor.ram,
        &app.compute.effective_quota(&ctx.project_id),
    )?;
    let count = uuids.len() as u32;
    let joining = match &group {
        Some(g) => match super::server_groups::Joining::check(app, ctx, &g.uuid, uuids.len()) {
            Ok(j) => Some(j),
            Err(e) => {
                app.compute.release(&ctx.project_id, &uuids);
                return Err(e);
            }
        },
        None => None,
    };
    let nics_arg = serde_json::to_value(&nics).map_err(|e| Fault::internal(e.to_string()))?;
    let mut system_metadata = BTreeMap::new();
    if let Some(h) = &req.forced_host {
        system_metadata.insert(super::scheduler::REQUESTED_HOST_KEY.to_string(), h.clone());
    }
    let now = app.clock.now();
    let admin_pass = req
        .admin_pass
        .clone()
        .unwrap_or_else(|| generate_password(app.cfg.password_length));
    let rid = reservation_id();
    let snapshot = FlavorSnapshot {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        vcpus: flavor.vcpus,
        ram: flavor.ram,
        disk: flavor.disk,
        ephemeral: flavor.ephemeral,
        swap: flavor.swap,
        extra_specs: flavor.extra_specs.clone(),
    };
    let mut first = None;
    for idx in 0..count {
        let uuid = uuids[idx as usize].clone();
        let name = if count > 1 {
            format!("{}-{}", req.name, idx + 1)
        } else {
            req.name.clone()
        };
        let hostname = match &req.hostname {
            Some(h) => h.clone(),
            None => rova_core::validate::sanitize_hostname(&name, &uuid),
        };
        let inst = Instance {
            id: app.compute.next_instance_id().await?,
            uuid: uuid.clone(),
            display_name: name,
            display_description: req.description.clone(),
            project_id: ctx.project_id.clone(),
            user_id: ctx.user_id.clone(),
            image_ref: req.image_ref.clone(),
            flavor: snapshot.clone(),
            vm_state: VmState::Building,
            task_state: Some(TaskState::Scheduling),
            power_state: PowerState::NoState,
            progress: 0,
            host: None,
            node: None,
            availability_zone: req.availability_zone.clone(),
            pinned_availability_zone: req.availability_zone.clone(),
            hostname,
            key_name: req.key_name.clone(),
            key_data: key.as_ref().map(|k| k.public_key.clone()),
            user_data: req.user_data.clone(),
            config_drive: req.config_drive,
            access_ip_v4: req.access_ip_v4.clone(),
            access_ip_v6: req.access_ip_v6.clone(),
            auto_disk_config: req.auto_disk_config,
            metadata: req.metadata.clone(),
            system_metadata: system_metadata.clone(),
            // Rows of their own, written with the server's below.
            tags: Vec::new(),
            locked_by: None,
            locked_reason: None,
            launch_index: idx,
            reservation_id: rid.clone(),
            // Nova copies these from the image's properties.
            kernel_id: image_properties
                .get("kernel_id")
                .cloned()
                .unwrap_or_default(),
            ramdisk_id: image_properties
                .get("ramdisk_id")
                .cloned()
                .unwrap_or_default(),
            root_device_name: Some("/dev/vda".into()),
            created_at: now,
            updated_at: now,
            launched_at: None,
            terminated_at: None,
            deleted_at: None,
            deleted: false,
            vifs: vec![],
            security_groups: if req.security_groups.is_empty() {
                vec!["default".into()]
            } else {
                req.security_groups.clone()
            },
            fault: None,
            scheduler_hints: req.scheduler_hints.clone(),
            block_device_mapping: req.bdms.clone(),
            personality: req.personality.clone(),
            admin_pass: Some(admin_pass.clone()),
            trusted_image_certificates: req.trusted_image_certificates.clone(),
            server_groups: group.iter().map(|g| g.uuid.clone()).collect(),
            image_properties: image_properties.clone(),
            generation: 0,
            op_owner: Some(app.compute.owner().to_string()),
            resize_hold: None,
        };
        // The instance row, its `create` action, its operations row, its
        // group membership and its tags are one transaction: a stored building
        // server always has all of them, and a refused insert leaves
        // none. The database counts the project's rows again in it (the
        // quota guard), and the group's members: processes sharing it
        // cannot overshoot.
        let mut op = super::operations::start(&inst, Some("create"), now);
        op.args = Some(serde_json::json!({ "nics": nics_arg }));
        let log = actions::create_log(ctx, &uuid, now);
        let member = joining.as_ref().map(|j| j.member(&uuid, idx));
        let quota = app.compute.quota_guard(&ctx.project_id);
        // The server as written (what the create answers with): the copy
        // holds this very value.
        let written = Arc::new(inst);
        let queued = {
            let mut g = crate::store::Group::new();
            let staged = g
                .with(&app.compute.instances, |v| {
                    if v.get(&uuid).is_some() {
                        return Err(Fault::conflict("Instance already exists"));
                    }
                    v.put_shared(&uuid, written.clone(), quota);
                    Ok(())
                })
                .and_then(|()| {
                    g.with(&app.compute.actions, |v| {
                        v.put(&log.0, log.1);
                        Ok(())
                    })
                })
                .and_then(|()| {
                    g.with(&app.compute.operations, |v| {
                        v.put(&uuid, op);
                        Ok(())
                    })
                })
                .and_then(|()| match member {
                    Some((mid, row, guard)) => g.with(&app.compute.group_members, |v| {
                        v.put_guarded(&mid, row, guard);
                        Ok(())
                    }),
                    None => Ok(()),
                })
                .and_then(|()| match req.tags.is_empty() {
                    true => Ok(()),
                    false => g.with(&app.compute.tags, |v| {
                        for (key, row) in super::tags::rows_of(&uuid, &req.tags) {
                            v.put(&key, row);
                        }
                        Ok(())
                    }),
                });
            staged.and_then(|()| g.queue())
        };
        let inserted = match queued {
            Ok(q) => q.outcome().await,
            Err(e) => Err(e),
        };
        let stored = match inserted.map(|()| written) {
            Ok(s) => {
                app.compute
                    .release(&ctx.project_id, std::slice::from_ref(&uuid));
                s
            }
            Err(e) => {
                // Nothing of this server was written.
                app.compute.release(&ctx.project_id, &uuids[idx as usize..]);
                return Err(e);
            }
        };
        let app2 = app.clone();
        let plan = nics.clone();
        let req_id = ctx.request_id.clone();
        tokio::spawn(async move {
            run_build(&app2, &uuid, &req_id, Some(plan)).await;
        });
        if first.is_none() {
            first = Some(stored);
        }
    }
    let first = first.ok_or_else(|| Fault::internal("no instance created"))?;
    Ok(Created {
        first,
        admin_pass,
        reservation_id: rid,
    })
}
