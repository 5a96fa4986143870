//! `/network/v2.0/networks`: list, show, create, update and delete
//! networks, with Neutron's policy and attribute checks.

use super::*;

pub(super) fn may_change_network(n: &Network, ctx: &Ctx) -> bool {
    ctx.may_change(&n.project_id)
}

// ---- networks ----

pub(super) async fn list_networks(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let items: Vec<Value> = app
        .networks
        .networks
        .filter(|n| network_visible(n, &ctx.project_id, ctx.is_admin()))
        .iter()
        .map(|n| network_json(&app, n))
        .collect();
    let (items, more) = select(items, &p, NETWORK_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "networks",
        "networks",
        items,
        more,
        &p,
    ))
    .into_response())
}

pub(super) async fn show_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let n = visible_network(&app, &ctx, &id)?;
    Ok(one(
        "network",
        project_fields(network_json(&app, &n), raw.as_deref()),
    ))
}

fn check_mtu(mtu: u64) -> NResult<u32> {
    if mtu < 68 {
        return Err(bad(format!(
            "Invalid input for mtu. Reason: '{mtu}' is too small - must be at least '68'."
        )));
    }
    if mtu > MAX_MTU {
        return Err(invalid_input(format!(
            "Requested MTU is too big, maximum is {MAX_MTU}."
        )));
    }
    Ok(mtu as u32)
}

pub(super) async fn create_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "network", NETWORK_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_network"));
    }
    let project_id = owner_from(&m, &ctx)?;
    let shared = get_bool(&m, "shared")?.unwrap_or(false);
    if shared && !ctx.is_admin() {
        return Err(policy(
            "(rule:create_network and rule:create_network:shared)",
        ));
    }
    let external = get_bool(&m, "router:external")?.unwrap_or(false);
    if external && !ctx.is_admin() {
        return Err(policy(
            "(rule:create_network and rule:create_network:router:external)",
        ));
    }
    let mtu = match get_uint(&m, "mtu")? {
        Some(v) => check_mtu(v)?,
        None => MAX_MTU as u32,
    };
    if m.contains_key("port_security_enabled")
        && get_bool(&m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    only_value(
        &m,
        "availability_zone_hints",
        &json!([]),
        "Availability zone hints",
    )?;
    let now = app.clock.now();
    let n = Network {
        id: uuid::Uuid::new_v4().to_string(),
        name: get_str(&m, "name", 255)?.unwrap_or_default(),
        project_id,
        shared,
        admin_state_up: get_bool(&m, "admin_state_up")?.unwrap_or(true),
        status: "ACTIVE".into(),
        mtu,
        router_external: external,
        description: get_str(&m, "description", 255)?.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let id = n.id.clone();
    let n = app
        .networks
        .networks
        .insert_new(
            &id,
            n,
            Fault::conflict(format!("Network {id} already exists.")),
        )
        .await?;
    Ok(created("network", network_json(&app, &n)))
}

pub(super) async fn update_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_network(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "network",
        NETWORK_UPDATE,
        &[
            "id",
            "tenant_id",
            "project_id",
            "status",
            "subnets",
            "availability_zone_hints",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_network(&cur, &ctx) {
        return Err(policy("rule:update_network"));
    }
    let shared = get_bool(&m, "shared")?;
    if shared.is_some_and(|s| s != cur.shared) && !ctx.is_admin() {
        return Err(policy(
            "(rule:update_network and rule:update_network:shared)",
        ));
    }
    let external = get_bool(&m, "router:external")?;
    if external.is_some_and(|e| e != cur.router_external) && !ctx.is_admin() {
        return Err(policy(
            "(rule:update_network and rule:update_network:router:external)",
        ));
    }
    if shared == Some(false) && cur.shared {
        let foreign = app
            .networks
            .ports_on(&id)
            .iter()
            .any(|p| p.project_id != cur.project_id);
        if foreign {
            return Err(NeutronError::new(409, "InvalidSharedSetting", format!(
                "Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."
            )));
        }
    }
    let mtu = get_uint(&m, "mtu")?.map(check_mtu).transpose()?;
    if m.contains_key("port_security_enabled")
        && get_bool(&m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let admin_state_up = get_bool(&m, "admin_state_up")?;
    let now = app.clock.now();
    let (n, _) = app
        .networks
        .networks
        .update(
            &id,
            || Fault::not_found(format!("Network {id} could not be found.")),
            |n| {
                if let Some(v) = name {
                    n.name = v;
                }
                if let Some(v) = description {
                    n.description = v;
                }
                if let Some(v) = admin_state_up {
                    n.admin_state_up = v;
                }
                if let Some(v) = shared {
                    n.shared = v;
                }
                if let Some(v) = external {
                    n.router_external = v;
                }
                if let Some(v) = mtu {
                    n.mtu = v;
                }
                n.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(one("network", network_json(&app, &n)))
}

pub(super) async fn delete_network(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let n = visible_network(&app, &ctx, &id)?;
    if !may_change_network(&n, &ctx) {
        return Err(policy("rule:delete_network"));
    }
    let _guard = app.networks.topology_lock().await;
    if !app.networks.ports_on(&id).is_empty() {
        return Err(NeutronError::new(409, "NetworkInUse", format!(
            "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
        )));
    }
    app.networks.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
