//! Unit tests for the Neutron API's visibility rules, list filtering and
//! request-body checks.

use super::ports::{fixed_ip_filter, normalize_mac, plan_readdress, port_has_fixed_ip};
use super::subnets::subnet_from_body;
use super::*;

use chrono::Utc;

fn net(id: &str, owner: &str, shared: bool) -> Network {
    Network {
        id: id.into(),
        name: id.into(),
        project_id: owner.into(),
        shared,
        admin_state_up: true,
        status: "ACTIVE".into(),
        mtu: 1450,
        router_external: false,
        description: String::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn subnet(id: &str, net: &str, owner: &str, cidr: &str) -> Subnet {
    Subnet {
        id: id.into(),
        name: id.into(),
        network_id: net.into(),
        project_id: owner.into(),
        cidr: cidr.into(),
        ip_version: 4,
        gateway_ip: None,
        allocation_pools: vec![],
        enable_dhcp: true,
        dns_nameservers: vec![],
        ipv6_address_mode: None,
        ipv6_ra_mode: None,
        description: String::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn port(owner: &str, ips: &[(&str, &str)]) -> Port {
    Port {
        id: "p".into(),
        name: String::new(),
        network_id: "n".into(),
        project_id: owner.into(),
        mac_address: "fa:16:3e:00:00:01".into(),
        fixed_ips: ips
            .iter()
            .map(|(s, i)| PortIp {
                subnet_id: s.to_string(),
                ip_address: i.to_string(),
            })
            .collect(),
        device_id: String::new(),
        device_owner: String::new(),
        status: "DOWN".into(),
        admin_state_up: true,
        description: String::new(),
        security_groups: vec![],
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[test]
fn visibility_rules() {
    let own = net("a", "me", false);
    let shared = net("b", "other", true);
    let foreign = net("c", "other", false);
    let mut external = net("d", "other", false);
    external.router_external = true;
    assert!(network_visible(&own, "me", false));
    assert!(network_visible(&shared, "me", false));
    assert!(network_visible(&external, "me", false));
    assert!(!network_visible(&foreign, "me", false));
    assert!(network_visible(&foreign, "me", true));
    let s = subnet("s", "b", "other", "10.0.0.0/24");
    assert!(subnet_visible(&s, Some(&shared), "me", false));
    assert!(!subnet_visible(&s, Some(&foreign), "me", false));
    let p = port("other", &[]);
    assert!(!port_visible(&p, Some(&shared), "me", false));
    assert!(port_visible(&p, Some(&own), "me", false));
    assert!(port_visible(&p, None, "other", false));
}

fn params(q: &str) -> ListParams {
    parse_params(Some(q)).expect("params")
}

#[test]
fn filters_or_within_a_key_and_validate_names() {
    let items = vec![
        json!({"id": "1", "name": "a", "shared": true, "mtu": 1450, "subnets": ["x"], "created_at": "1"}),
        json!({"id": "2", "name": "b", "shared": false, "mtu": 1400, "subnets": [], "created_at": "2"}),
        json!({"id": "3", "name": "c", "shared": false, "mtu": 1450, "subnets": [], "created_at": "3"}),
    ];
    let attrs = &["id", "name", "shared", "mtu", "subnets", "created_at"];
    let ids = |v: &[Value]| {
        v.iter()
            .map(|i| i["id"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let (r, _) = select(items.clone(), &params("name=a&name=c"), attrs, &[]).expect("ok");
    assert_eq!(ids(&r), ["1", "3"]);
    let (r, _) = select(items.clone(), &params("shared=False&mtu=1450"), attrs, &[]).expect("ok");
    assert_eq!(ids(&r), ["3"]);
    let (r, _) = select(items.clone(), &params("subnets=x"), attrs, &[]).expect("ok");
    assert_eq!(ids(&r), ["1"]);
    assert!(select(items.clone(), &params("bogus=1"), attrs, &[]).is_err());
    assert!(select(items.clone(), &params("shared=maybe"), attrs, &[]).is_err());
    let (r, more) = select(items.clone(), &params("limit=2"), attrs, &[]).expect("ok");
    assert_eq!(
        (ids(&r), more),
        (vec!["1".to_string(), "2".to_string()], true)
    );
    let (r, more) = select(items.clone(), &params("limit=2&marker=2"), attrs, &[]).expect("ok");
    assert_eq!((ids(&r), more), (vec!["3".to_string()], false));
    let (r, _) = select(
        items.clone(),
        &params("sort_key=name&sort_dir=desc"),
        attrs,
        &[],
    )
    .expect("ok");
    assert_eq!(ids(&r), ["3", "2", "1"]);
    let (r, _) = select(items.clone(), &params("fields=id&name=b"), attrs, &[]).expect("ok");
    assert_eq!(r, vec![json!({"id": "2"})]);
    assert!(select(items, &params("marker=nope"), attrs, &[]).is_err());
}

#[test]
fn fixed_ip_filter_semantics() {
    let p = port("me", &[("s1", "10.0.0.5"), ("s2", "fd00::5")]);
    assert!(port_has_fixed_ip(&p, &["10.0.0.5".into()], &[]));
    assert!(port_has_fixed_ip(&p, &["10.0.0.5".into()], &["s1".into()]));
    assert!(!port_has_fixed_ip(&p, &["10.0.0.5".into()], &["s2".into()]));
    assert!(port_has_fixed_ip(&p, &[], &["s2".into()]));
    let f = fixed_ip_filter(&params(
        "fixed_ips=ip_address%3D10.0.0.5&fixed_ips=subnet_id%3Ds1",
    ))
    .expect("ok");
    assert_eq!(
        f,
        Some((vec!["10.0.0.5".to_string()], vec!["s1".to_string()]))
    );
    assert!(fixed_ip_filter(&params("fixed_ips=bogus")).is_err());
}

#[test]
fn subnet_body_defaults_and_checks() {
    let n = net("n", "me", false);
    let now = Utc::now();
    let mk = |v: Value, siblings: &[Arc<Subnet>]| {
        subnet_from_body(v.as_object().expect("obj"), &n, siblings, "me".into(), now)
    };
    let s = mk(json!({"cidr": "10.1.0.0/24", "ip_version": 4}), &[]).expect("valid");
    assert_eq!(s.gateway_ip.as_deref(), Some("10.1.0.1"));
    assert_eq!(s.allocation_pools[0].start, "10.1.0.2");
    assert_eq!(s.allocation_pools[0].end, "10.1.0.254");
    let s = mk(
        json!({"cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": null}),
        &[],
    )
    .expect("valid");
    assert_eq!(s.gateway_ip, None);
    assert_eq!(s.allocation_pools[0].start, "10.1.0.1");
    let code = |v: Value, sib: &[Arc<Subnet>]| mk(v, sib).map(|_| ()).unwrap_err().status;
    assert_eq!(code(json!({"cidr": "10.1.0.0/24"}), &[]), 400);
    assert_eq!(
        code(json!({"cidr": "10.1.0.5/24", "ip_version": 4}), &[]),
        400
    );
    assert_eq!(
        code(json!({"cidr": "fd00::/64", "ip_version": 4}), &[]),
        400
    );
    assert_eq!(
        code(
            json!({"cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.2.0.1"}),
            &[]
        ),
        400
    );
    assert_eq!(
        code(
            json!({"cidr": "10.1.0.0/24", "ip_version": 4,
            "allocation_pools": [{"start": "10.1.0.1", "end": "10.1.0.9"}]}),
            &[]
        ),
        409
    );
    assert_eq!(
        code(
            json!({"cidr": "10.1.0.0/24", "ip_version": 4,
            "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.1.9"}]}),
            &[]
        ),
        400
    );
    assert_eq!(
        code(
            json!({"cidr": "10.1.0.0/24", "ip_version": 4, "ipv6_address_mode": "slaac"}),
            &[]
        ),
        400
    );
    let sib = [Arc::new(subnet("x", "n", "me", "10.1.0.0/16"))];
    assert_eq!(
        code(json!({"cidr": "10.1.5.0/24", "ip_version": 4}), &sib),
        400
    );
}

#[test]
fn readdress_keeps_held_addresses() {
    let sn = Arc::new(subnet("s1", "n", "me", "10.0.0.0/24"));
    let cur = vec![PortIp {
        subnet_id: "s1".into(),
        ip_address: "10.0.0.5".into(),
    }];
    let (kept, fresh) = plan_readdress(&cur, vec![(sn.clone(), None)]);
    assert_eq!((kept.len(), fresh.len()), (1, 0));
    let (kept, fresh) = plan_readdress(&cur, vec![(sn.clone(), "10.0.0.6".parse().ok())]);
    assert_eq!((kept.len(), fresh.len()), (0, 1));
    let (kept, fresh) = plan_readdress(
        &cur,
        vec![(sn.clone(), "10.0.0.5".parse().ok()), (sn, None)],
    );
    assert_eq!((kept.len(), fresh.len()), (1, 1));
}

#[test]
fn macs() {
    assert_eq!(
        normalize_mac("m", &json!("FA-16-3E-00-00-0A")).expect("ok"),
        "fa:16:3e:00:00:0a"
    );
    assert!(normalize_mac("m", &json!("01:00:5e:00:00:01")).is_err());
    assert!(normalize_mac("m", &json!("zz")).is_err());
}
