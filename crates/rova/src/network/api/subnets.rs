//! `/network/v2.0/subnets`: list, show, create, update and delete
//! subnets, including CIDR, gateway, allocation pool, DNS and IPv6 mode
//! validation.

use super::*;

pub(super) async fn list_subnets(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let p = parse_params(raw.as_deref())?;
    let items: Vec<Value> = app
        .networks
        .subnets
        .filter(|s| {
            let net = app.networks.networks.get(&s.network_id);
            subnet_visible(s, net.as_deref(), &ctx.project_id, ctx.is_admin())
        })
        .iter()
        .map(|s| subnet_json(s))
        .collect();
    let (items, more) = select(items, &p, SUBNET_ATTRS, &[])?;
    Ok(axum::Json(list_body(
        &host_url(&headers),
        "subnets",
        "subnets",
        items,
        more,
        &p,
    ))
    .into_response())
}

pub(super) async fn show_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NResult<Response> {
    let s = visible_subnet(&app, &ctx, &id)?;
    Ok(one(
        "subnet",
        project_fields(subnet_json(&s), raw.as_deref()),
    ))
}

pub(super) fn parse_ip(key: &str, v: &str) -> NResult<IpAddr> {
    v.parse().map_err(|_| {
        bad(format!(
            "Invalid input for {key}. Reason: '{v}' is not a valid IP address."
        ))
    })
}

/// The gateway from a body: absent means the first host address, `null`
/// means none.
fn gateway_from(
    m: &Map<String, Value>,
    cidr: &str,
    net_addr: IpAddr,
) -> NResult<Option<Option<IpAddr>>> {
    match m.get("gateway_ip") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => {
            let ip = parse_ip("gateway_ip", s)?;
            if !cidr_contains(cidr, ip) || ip == net_addr {
                return Err(invalid_input(format!(
                    "Gateway is not valid on subnet ({ip} for {cidr})."
                )));
            }
            Ok(Some(Some(ip)))
        }
        Some(v) => Err(bad(format!(
            "Invalid input for gateway_ip. Reason: '{v}' is not a valid IP address."
        ))),
    }
}

fn pool_str(p: &AllocationPool) -> String {
    format!("{}-{}", p.start, p.end)
}

/// Validates explicit allocation pools against the CIDR, each other and
/// the gateway.
fn check_pools(v: &Value, cidr: &str, gateway: Option<IpAddr>) -> NResult<Vec<AllocationPool>> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!(
            "Invalid input for allocation_pools. Reason: '{v}' is not a list."
        ))
    })?;
    let mut pools: Vec<(IpAddr, IpAddr, AllocationPool)> = Vec::new();
    for p in arr {
        let (Some(start), Some(end)) = (
            p.get("start").and_then(Value::as_str),
            p.get("end").and_then(Value::as_str),
        ) else {
            return Err(bad(format!(
                "Invalid input for allocation_pools. Reason: {p} must have 'start' and 'end'."
            )));
        };
        let pool = AllocationPool {
            start: start.to_string(),
            end: end.to_string(),
        };
        let (Ok(s), Ok(e)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
            return Err(NeutronError::new(
                400,
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", pool_str(&pool)),
            ));
        };
        if s.is_ipv4() != e.is_ipv4() || ip_cmp(s, e) == Ordering::Greater {
            return Err(NeutronError::new(
                400,
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", pool_str(&pool)),
            ));
        }
        if !cidr_contains(cidr, s) || !cidr_contains(cidr, e) {
            return Err(NeutronError::new(
                400,
                "OutOfBoundsAllocationPool",
                format!(
                    "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                    pool_str(&pool)
                ),
            ));
        }
        pools.push((s, e, pool));
    }
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if ip_cmp(a.0, b.1) != Ordering::Greater && ip_cmp(b.0, a.1) != Ordering::Greater {
                return Err(NeutronError::new(
                    400,
                    "OverlappingAllocationPools",
                    format!(
                        "Found overlapping allocation pools: {} and {} for subnet {cidr}.",
                        pool_str(&a.2),
                        pool_str(&b.2)
                    ),
                ));
            }
        }
    }
    if let Some(g) = gateway {
        if let Some(p) = pools.iter().find(|(s, e, _)| {
            ip_cmp(*s, g) != Ordering::Greater && ip_cmp(g, *e) != Ordering::Greater
        }) {
            return Err(NeutronError::new(
                409,
                "GatewayConflictWithAllocationPools",
                format!(
                    "Gateway ip {g} conflicts with allocation pool {}",
                    pool_str(&p.2)
                ),
            ));
        }
    }
    Ok(pools.into_iter().map(|(_, _, p)| p).collect())
}

fn check_dns(v: &Value) -> NResult<Vec<String>> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!(
            "Invalid input for dns_nameservers. Reason: '{v}' is not a list."
        ))
    })?;
    let mut out: Vec<String> = Vec::new();
    for d in arr {
        let s = d.as_str().unwrap_or("");
        let ip: IpAddr = s.parse().map_err(|_| {
            bad(format!(
                "Invalid input for dns_nameservers. Reason: '{d}' is not a valid nameserver."
            ))
        })?;
        let canon = ip.to_string();
        if out.contains(&canon) {
            return Err(bad(format!(
                "Invalid input for dns_nameservers. Reason: Duplicate nameserver '{s}'."
            )));
        }
        out.push(canon);
    }
    if out.len() > MAX_DNS {
        return Err(NeutronError::new(400, "DNSNameServersExhausted", format!(
            "Unable to complete operation for subnet. The number of DNS nameservers exceeds the limit {MAX_DNS}."
        )));
    }
    Ok(out)
}

fn ipv6_mode(m: &Map<String, Value>, key: &str) -> NResult<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if IPV6_MODES.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: {v} is not in {IPV6_MODES:?}."
        ))),
    }
}

/// Everything `POST /subnets` decides from the body and the network.
pub(super) fn subnet_from_body(
    m: &Map<String, Value>,
    net: &Network,
    siblings: &[Arc<Subnet>],
    project_id: String,
    now: chrono::DateTime<chrono::Utc>,
) -> NResult<Subnet> {
    if m.get("subnetpool_id").is_some_and(|v| !v.is_null())
        || get_bool(m, "use_default_subnetpool")? == Some(true)
    {
        return Err(bad("Subnet pools are not supported by this service."));
    }
    let ip_version = match m.get("ip_version") {
        None => {
            return Err(bad(
                "Failed to parse request. Required attribute 'ip_version' not specified",
            ))
        }
        Some(v) => match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        {
            Some(4) => 4u8,
            Some(6) => 6u8,
            _ => {
                return Err(bad(format!(
                    "Invalid input for ip_version. Reason: {v} is not in [4, 6]."
                )))
            }
        },
    };
    let cidr = match m.get("cidr") {
        None | Some(Value::Null) => {
            return Err(bad(
                "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(bad(format!(
                "Invalid input for cidr. Reason: '{v}' is not a valid IP subnet."
            )))
        }
    };
    let (ip, len) = parse_cidr(&cidr).ok_or_else(|| {
        bad(format!(
            "Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
        ))
    })?;
    let net_addr = cidr_network(&cidr).unwrap_or(ip);
    if net_addr != ip {
        return Err(bad(format!(
            "Invalid input for cidr. Reason: '{cidr}' isn't a recommended CIDR, use '{net_addr}/{len}'."
        )));
    }
    let v6 = ip.is_ipv6();
    if v6 != (ip_version == 6) {
        return Err(invalid_input(format!(
            "cidr '{cidr}' does not match the ip_version '{ip_version}'"
        )));
    }
    if crate::network::default_pool(&cidr).is_none() {
        return Err(invalid_input(format!(
            "The prefix length of {cidr} leaves no addresses to allocate."
        )));
    }
    if let Some(other) = siblings.iter().find(|s| cidrs_overlap(&s.cidr, &cidr)) {
        return Err(invalid_input(format!(
            "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet ({}).",
            net.id, other.id
        )));
    }
    let gateway = gateway_from(m, &cidr, net_addr)?.unwrap_or_else(|| Some(ip_offset(net_addr, 1)));
    let allocation_pools = match m.get("allocation_pools") {
        None | Some(Value::Null) => pools_around_gateway(&cidr, gateway),
        Some(v) => check_pools(v, &cidr, gateway)?,
    };
    let dns_nameservers = match m.get("dns_nameservers") {
        None | Some(Value::Null) => vec![],
        Some(v) => check_dns(v)?,
    };
    only_value(m, "host_routes", &json!([]), "Host routes")?;
    let addr_mode = ipv6_mode(m, "ipv6_address_mode")?;
    let ra_mode = ipv6_mode(m, "ipv6_ra_mode")?;
    if !v6 && (addr_mode.is_some() || ra_mode.is_some()) {
        return Err(invalid_input(
            "ipv6_ra_mode and ipv6_address_mode are not valid when ip_version is 4",
        ));
    }
    if let (Some(a), Some(r)) = (&addr_mode, &ra_mode) {
        if a != r {
            return Err(invalid_input(format!(
                "ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{a}' is not valid. If both attributes are set, they must be the same value"
            )));
        }
    }
    Ok(Subnet {
        id: uuid::Uuid::new_v4().to_string(),
        name: get_str(m, "name", 255)?.unwrap_or_default(),
        network_id: net.id.clone(),
        project_id,
        cidr,
        ip_version,
        gateway_ip: gateway.map(|g| g.to_string()),
        allocation_pools,
        enable_dhcp: get_bool(m, "enable_dhcp")?.unwrap_or(true),
        dns_nameservers,
        ipv6_address_mode: addr_mode,
        ipv6_ra_mode: ra_mode,
        description: get_str(m, "description", 255)?.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    })
}

pub(super) async fn create_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    body: Bytes,
) -> NResult<Response> {
    let m = resource_body(&body, "subnet", SUBNET_CREATE, &[])?;
    if !ctx.is_member() {
        return Err(policy("rule:create_subnet"));
    }
    let net_id = get_str(&m, "network_id", 255)?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let net = visible_network(&app, &ctx, &net_id)?;
    if !may_change_network(&net, &ctx) {
        return Err(policy("rule:create_subnet"));
    }
    let project_id = owner_from(&m, &ctx)?;
    let _guard = app.networks.topology_lock().await;
    let siblings = app.networks.subnets_of(&net_id);
    let sn = subnet_from_body(&m, &net, &siblings, project_id, app.clock.now())?;
    let id = sn.id.clone();
    let sn = app
        .networks
        .subnets
        .insert_new(
            &id,
            sn,
            Fault::conflict(format!("Subnet {id} already exists.")),
        )
        .await?;
    Ok(created("subnet", subnet_json(&sn)))
}

fn may_change_subnet(app: &App, s: &Subnet, ctx: &Ctx) -> bool {
    if ctx.is_admin() {
        return true;
    }
    let net_owner = app
        .networks
        .networks
        .get(&s.network_id)
        .map(|n| n.project_id.clone());
    ctx.is_member()
        && (s.project_id == ctx.project_id || net_owner.as_deref() == Some(ctx.project_id.as_str()))
}

pub(super) async fn update_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let cur = visible_subnet(&app, &ctx, &id)?;
    let m = resource_body(
        &body,
        "subnet",
        SUBNET_UPDATE,
        &[
            "id",
            "network_id",
            "tenant_id",
            "project_id",
            "cidr",
            "ip_version",
            "ipv6_address_mode",
            "ipv6_ra_mode",
            "subnetpool_id",
            "created_at",
            "updated_at",
        ],
    )?;
    if !may_change_subnet(&app, &cur, &ctx) {
        return Err(policy("rule:update_subnet"));
    }
    let net_addr =
        cidr_network(&cur.cidr).ok_or_else(|| Fault::internal("stored subnet has a bad cidr"))?;
    let gateway: Option<IpAddr> = match gateway_from(&m, &cur.cidr, net_addr)? {
        Some(g) => g,
        None => cur.gateway_ip.as_deref().and_then(|g| g.parse().ok()),
    };
    let pools = match m.get("allocation_pools") {
        None => None,
        Some(v) => Some(check_pools(v, &cur.cidr, gateway)?),
    };
    if m.contains_key("gateway_ip") {
        if let Some(g) = gateway {
            let check_against = pools
                .clone()
                .unwrap_or_else(|| cur.allocation_pools.clone());
            check_pools(
                &serde_json::to_value(&check_against).unwrap_or(Value::Null),
                &cur.cidr,
                Some(g),
            )?;
            let taken = app.networks.ports_in_subnet(&id).iter().any(|p| {
                p.fixed_ips
                    .iter()
                    .any(|ip| ip.subnet_id == id && ip.ip_address == g.to_string())
            });
            if taken {
                return Err(NeutronError::new(
                    409,
                    "IpAddressInUse",
                    format!(
                    "Unable to complete operation for network {}. The IP address {g} is in use.",
                    cur.network_id
                ),
                ));
            }
        }
    }
    let dns = match m.get("dns_nameservers") {
        None => None,
        Some(Value::Null) => Some(vec![]),
        Some(v) => Some(check_dns(v)?),
    };
    only_value(&m, "host_routes", &json!([]), "Host routes")?;
    let name = get_str(&m, "name", 255)?;
    let description = get_str(&m, "description", 255)?;
    let enable_dhcp = get_bool(&m, "enable_dhcp")?;
    let gateway_given = m.contains_key("gateway_ip");
    let now = app.clock.now();
    let (s, _) = app
        .networks
        .subnets
        .update(
            &id,
            || Fault::not_found(format!("Subnet {id} could not be found.")),
            |s| {
                if let Some(v) = name {
                    s.name = v;
                }
                if let Some(v) = description {
                    s.description = v;
                }
                if let Some(v) = enable_dhcp {
                    s.enable_dhcp = v;
                }
                if gateway_given {
                    s.gateway_ip = gateway.map(|g| g.to_string());
                }
                if let Some(v) = pools {
                    s.allocation_pools = v;
                }
                if let Some(v) = dns {
                    s.dns_nameservers = v;
                }
                s.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(one("subnet", subnet_json(&s)))
}

pub(super) async fn delete_subnet(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> NResult<Response> {
    let s = visible_subnet(&app, &ctx, &id)?;
    if !may_change_subnet(&app, &s, &ctx) {
        return Err(policy("rule:delete_subnet"));
    }
    let _guard = app.networks.topology_lock().await;
    if !app.networks.ports_in_subnet(&id).is_empty() {
        return Err(NeutronError::new(409, "SubnetInUse", format!(
            "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
        )));
    }
    app.networks.remove_subnet(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
