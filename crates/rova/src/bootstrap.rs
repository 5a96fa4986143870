//! First-start bootstrap: the Default domain's projects and users with their
//! roles, Nova's classic flavors, two images, and a shared network with an
//! IPv4 and an IPv6 subnet, an external network `public` and a router
//! `router1` joining it to `private` (as devstack makes them). Passwords are generated (or taken from
//! `ROVA_PASSWORD_<USER>`) and written to `<data>/passwords.json` (0600);
//! `<data>/clouds.yaml` gets one entry per bootstrap user. Running it again
//! creates only what is missing and rewrites clouds.yaml for the current
//! listen address.

use crate::app::App;
use crate::compute::Flavor;
use crate::identity::{hash_password, write_private, Project, User, DEFAULT_DOMAIN_ID};
use crate::image::Image;
use crate::network::{default_pool, Network, Subnet};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// (user, project, role, clouds.yaml entry)
pub const ACCOUNTS: &[(&str, &str, &str, &str)] = &[
    ("admin", "admin", "admin", "rova-admin"),
    ("demo", "demo", "member", "rova-demo"),
    ("demo_reader", "demo", "reader", "rova-reader"),
    ("demo_manager", "demo", "manager", "rova-manager"),
    ("alt_demo", "alt_demo", "member", "rova-alt"),
];

pub const IMAGE_NAME: &str = "cirros-0.6.2-x86_64-disk";
pub const IMAGE_ALT_NAME: &str = "cirros-0.6.2-x86_64-disk-alt";
pub const NETWORK_NAME: &str = "private";
pub const PUBLIC_NETWORK_NAME: &str = "public";
pub const ROUTER_NAME: &str = "router1";

fn gen_password() -> String {
    const CH: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| CH[rng.gen_range(0..CH.len())] as char)
        .collect()
}

fn stable_id(kind: &str, name: &str) -> String {
    // Random ids, as Keystone makes them; kept stable by persistence.
    let _ = (kind, name);
    uuid::Uuid::new_v4().simple().to_string()
}

/// Creates whatever is missing and writes passwords.json and clouds.yaml.
pub async fn run(app: &App) -> Result<(), String> {
    let now = app.clock.now();
    let err = |e: rova_core::Fault| e.message;

    // Projects.
    let mut project_ids = HashMap::new();
    for (_, project, _, _) in ACCOUNTS {
        if project_ids.contains_key(*project) {
            continue;
        }
        let p = match app.identity.project_by_name(project, DEFAULT_DOMAIN_ID) {
            Some(p) => p,
            None => {
                let p = Project {
                    id: stable_id("project", project),
                    name: project.to_string(),
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                    description: format!("Bootstrap project {project}"),
                    enabled: true,
                };
                app.identity
                    .projects
                    .put(&p.id.clone(), p)
                    .await
                    .map_err(err)?
            }
        };
        project_ids.insert(project.to_string(), p.id.clone());
    }

    // Users and passwords.
    let pw_path = app.cfg.data_dir.join("passwords.json");
    let mut passwords: BTreeMap<String, String> = std::fs::read(&pw_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for (user, project, role, _) in ACCOUNTS {
        let env_name = format!("ROVA_PASSWORD_{}", user.to_ascii_uppercase());
        let from_env = std::env::var(&env_name).ok().filter(|s| !s.is_empty());
        let existing = app.identity.user_by_name(user, DEFAULT_DOMAIN_ID);
        let password = match (&from_env, passwords.get(*user), &existing) {
            (Some(p), _, _) => p.clone(),
            (None, Some(p), Some(_)) => p.clone(),
            _ => gen_password(),
        };
        let needs_write =
            existing.is_none() || from_env.is_some() || !passwords.contains_key(*user);
        if needs_write {
            let pid = project_ids.get(*project).cloned().unwrap_or_default();
            let mut roles = vec![role.to_string()];
            if *role == "admin" {
                // Tempest's external-events tests want an admin+service account.
                roles.push("service".into());
            }
            let mut assignments = HashMap::new();
            assignments.insert(pid.clone(), roles);
            let u = User {
                id: existing
                    .as_ref()
                    .map(|u| u.id.clone())
                    .unwrap_or_else(|| stable_id("user", user)),
                name: user.to_string(),
                domain_id: DEFAULT_DOMAIN_ID.into(),
                password_hash: hash_password(&password)?,
                enabled: true,
                assignments,
                default_project_id: Some(pid),
            };
            app.identity
                .users
                .put(&u.id.clone(), u)
                .await
                .map_err(err)?;
        }
        passwords.insert(user.to_string(), password);
    }
    let pw_json = serde_json::to_vec_pretty(&passwords).map_err(|e| e.to_string())?;
    write_private(&pw_path, &pw_json)?;

    let admin_pid = project_ids.get("admin").cloned().unwrap_or_default();

    // Flavors: Nova's classic set plus devstack's small ones.
    if app.compute.flavors.is_empty() {
        let set: &[(&str, &str, u32, u64, u64)] = &[
            ("1", "m1.tiny", 1, 512, 1),
            ("2", "m1.small", 1, 2048, 20),
            ("3", "m1.medium", 2, 4096, 40),
            ("4", "m1.large", 4, 8192, 80),
            ("5", "m1.xlarge", 8, 16384, 160),
            ("42", "m1.nano", 1, 128, 1),
            ("84", "m1.micro", 1, 192, 1),
            ("c1", "cirros256", 1, 256, 1),
        ];
        for (id, name, vcpus, ram, disk) in set {
            let f = Flavor {
                id: id.to_string(),
                name: name.to_string(),
                vcpus: *vcpus,
                ram: *ram,
                disk: *disk,
                ephemeral: 0,
                swap: 0,
                rxtx_factor: 1.0,
                is_public: true,
                disabled: false,
                description: None,
                extra_specs: BTreeMap::new(),
                created_at: now,
                projects: Vec::new(),
            };
            let taken =
                |what: &str| rova_core::Fault::conflict(format!("flavor {what} {id} exists"));
            app.compute
                .flavors
                .create(f, taken("id"), taken("name"))
                .await
                .map_err(err)?;
        }
    }

    // Images.
    for (name, marker) in [(IMAGE_NAME, "primary"), (IMAGE_ALT_NAME, "alt")] {
        if app
            .images
            .filter(|i| i.name.as_deref() == Some(name))
            .is_empty()
        {
            let mut props = BTreeMap::new();
            props.insert("hw_rng_model".to_string(), json!("virtio"));
            let img = Image {
                name: Some(name.to_string()),
                container_format: Some("bare".into()),
                disk_format: Some("qcow2".into()),
                properties: props,
                ..Image::queued(&admin_pid, "public", now)
            };
            let bytes = format!("rova simulated image ({marker})\n").into_bytes();
            app.images.create(img, Some(&bytes)).await.map_err(err)?;
        }
    }

    // Network.
    if app
        .networks
        .networks
        .filter(|n| n.name == NETWORK_NAME)
        .is_empty()
    {
        let net = Network {
            id: uuid::Uuid::new_v4().to_string(),
            name: NETWORK_NAME.into(),
            project_id: admin_pid.clone(),
            shared: true,
            admin_state_up: true,
            status: "ACTIVE".into(),
            mtu: 1450,
            router_external: false,
            description: String::new(),
            created_at: now,
            updated_at: now,
        };
        let net_id = net.id.clone();
        app.networks.networks.put(&net_id, net).await.map_err(err)?;
        for (name, cidr, ver, gw, mode) in [
            ("private-subnet", "10.0.0.0/16", 4u8, "10.0.0.1", None),
            (
                "ipv6-private-subnet",
                "fd00:0:0:1::/64",
                6u8,
                "fd00:0:0:1::1",
                Some("slaac"),
            ),
        ] {
            let sn = Subnet {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.into(),
                network_id: net_id.clone(),
                project_id: admin_pid.clone(),
                cidr: cidr.into(),
                ip_version: ver,
                gateway_ip: Some(gw.into()),
                allocation_pools: default_pool(cidr).into_iter().collect(),
                enable_dhcp: true,
                dns_nameservers: vec![],
                ipv6_address_mode: mode.map(str::to_string),
                ipv6_ra_mode: mode.map(str::to_string),
                description: String::new(),
                created_at: now,
                updated_at: now,
            };
            app.networks
                .subnets
                .put(&sn.id.clone(), sn)
                .await
                .map_err(err)?;
        }
    }

    external_network(app, &admin_pid, now).await?;

    if app.cfg.driver == crate::config::DriverKind::Qemu {
        let msg = crate::virt::guest_image::register(
            &app.images,
            &app.cfg.qemu,
            &app.cfg.data_dir,
            &admin_pid,
        )
        .await?;
        eprintln!("rova: {msg}");
    }

    write_clouds_yaml(app, &passwords)?;
    Ok(())
}

/// `clouds.yaml` with one cloud per bootstrap account.
fn write_clouds_yaml(app: &App, passwords: &BTreeMap<String, String>) -> Result<(), String> {
    let mut out =
        String::from("# Written by `rova serve`; one cloud per bootstrap account.\nclouds:\n");
    for (user, project, _, cloud) in ACCOUNTS {
        let pw = passwords.get(*user).cloned().unwrap_or_default();
        let v: Value = json!(pw);
        out.push_str(&format!(
            "  {cloud}:\n    auth:\n      auth_url: {url}/identity/v3\n      username: {user}\n      password: {pw}\n      project_name: {project}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
            url = app.public_url,
            pw = v,
        ));
    }
    write_private(&app.cfg.data_dir.join("clouds.yaml"), out.as_bytes())
}

/// devstack's external network `public` (admin's, external, not shared)
/// with `public-subnet` 172.24.4.0/24, and `router1` (owned, like
/// `private`, by the admin project) with its gateway on `public` and an
/// interface on `private-subnet` at its gateway address. Each is made
/// only when missing.
async fn external_network(
    app: &App,
    admin_pid: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    use crate::network::l3::{L3Write, Router, RouterGateway, OWNER_ROUTER_GW, OWNER_ROUTER_INTF};
    let err = |e: rova_core::Fault| e.message;
    let nets = &app.networks;
    let public = match nets
        .networks
        .filter(|n| n.name == PUBLIC_NETWORK_NAME)
        .pop()
    {
        Some(n) => n,
        None => {
            let net = Network {
                id: uuid::Uuid::new_v4().to_string(),
                name: PUBLIC_NETWORK_NAME.into(),
                project_id: admin_pid.to_string(),
                shared: false,
                admin_state_up: true,
                status: "ACTIVE".into(),
                mtu: 1450,
                router_external: true,
                description: String::new(),
                created_at: now,
                updated_at: now,
            };
            let id = net.id.clone();
            nets.networks.put(&id, net).await.map_err(err)?
        }
    };
    if nets.subnets_of(&public.id).is_empty() {
        let cidr = "172.24.4.0/24";
        let sn = Subnet {
            id: uuid::Uuid::new_v4().to_string(),
            name: "public-subnet".into(),
            network_id: public.id.clone(),
            project_id: admin_pid.to_string(),
            cidr: cidr.into(),
            ip_version: 4,
            gateway_ip: Some("172.24.4.1".into()),
            allocation_pools: default_pool(cidr).into_iter().collect(),
            enable_dhcp: false,
            dns_nameservers: vec![],
            ipv6_address_mode: None,
            ipv6_ra_mode: None,
            description: String::new(),
            created_at: now,
            updated_at: now,
        };
        nets.subnets.put(&sn.id.clone(), sn).await.map_err(err)?;
    }
    if !nets.routers.filter(|r| r.name == ROUTER_NAME).is_empty() {
        return Ok(());
    }
    let private_v4 = nets
        .networks
        .filter(|n| n.name == NETWORK_NAME)
        .pop()
        .and_then(|n| {
            nets.subnets_of(&n.id)
                .into_iter()
                .find(|s| s.ip_version == 4)
        });
    let id = uuid::Uuid::new_v4().to_string();
    let wants: Vec<_> = nets
        .subnets_of(&public.id)
        .into_iter()
        .map(|s| (s, None))
        .collect();
    let gw_ips = nets.reserve_ips(&wants).map_err(err)?;
    let gw = nets.service_port(&public.id, "", gw_ips.clone(), (&id, OWNER_ROUTER_GW), now);
    let mut w = L3Write::default().reserved(gw_ips);
    if let Some(sn) = private_v4 {
        if let Some(ip) = sn.gateway_ip.as_deref().and_then(|g| g.parse().ok()) {
            let ip = nets.reserve_exact(&sn, ip).map_err(err)?;
            let device = (id.as_str(), OWNER_ROUTER_INTF);
            let intf = nets.service_port(&sn.network_id, admin_pid, vec![ip.clone()], device, now);
            w = w.port(&intf.id.clone(), Some(intf)).reserved(vec![ip]);
        }
    }
    let router = Router {
        id: id.clone(),
        name: ROUTER_NAME.into(),
        project_id: admin_pid.to_string(),
        description: String::new(),
        admin_state_up: true,
        status: "ACTIVE".into(),
        gateway: Some(RouterGateway {
            network_id: public.id.clone(),
            enable_snat: true,
            port_id: gw.id.clone(),
        }),
        created_at: now,
        updated_at: now,
    };
    w = w.port(&gw.id.clone(), Some(gw)).routers(move |v| {
        v.put(&id, router);
        Ok(())
    });
    nets.commit_l3(w).await.map_err(err)
}
