//! The Neutron L3 subset over HTTP: the bootstrap's `public` network and
//! `router1`; routers with their gateway and interfaces; floating IPs
//! with association, Neutron's 4xx bodies, cross-project 404s and quotas;
//! a server's floating address in `addresses`, and its disassociation when
//! the server goes.

use crate::common::{start, Resp, TestCloud, User};
use crate::image_network::{call, ids, neutron_error};
use crate::metadata_service::{get10, sock_dir, Dir};
use reqwest::{Method, StatusCode};
use rova::compute::guest_env::ComputeGuestEnv;
use rova::virt::metadata_server::serve;
use serde_json::{json, Value};

const NET: &str = "/network/v2.0";

async fn get(c: &TestCloud, u: &User, path: &str) -> Resp {
    call(c, Some(u), Method::GET, &format!("{NET}{path}"), None).await
}
async fn post(c: &TestCloud, u: &User, path: &str, body: Value) -> Resp {
    call(
        c,
        Some(u),
        Method::POST,
        &format!("{NET}{path}"),
        Some(body),
    )
    .await
}
async fn put(c: &TestCloud, u: &User, path: &str, body: Value) -> Resp {
    call(c, Some(u), Method::PUT, &format!("{NET}{path}"), Some(body)).await
}
async fn delete(c: &TestCloud, u: &User, path: &str) -> Resp {
    call(c, Some(u), Method::DELETE, &format!("{NET}{path}"), None).await
}

/// Creates a resource, asserting 201; its body.
async fn make(c: &TestCloud, u: &User, coll: &str, key: &str, body: Value) -> Value {
    let r = post(c, u, &format!("/{coll}"), json!({ key: body })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{coll}: {}", r.text);
    r.body[key].clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The id of the network named `name` as `u` sees it.
async fn network_named(c: &TestCloud, u: &User, name: &str) -> String {
    let r = get(c, u, &format!("/networks?name={name}")).await;
    ids(&r.body["networks"]).pop().expect("network")
}

/// A network of `u`'s with one IPv4 subnet; (network, subnet).
async fn own_net(c: &TestCloud, u: &User, cidr: &str) -> (String, String) {
    let net = make(c, u, "networks", "network", json!({"name": cidr})).await;
    let sub = make(
        c,
        u,
        "subnets",
        "subnet",
        json!({"network_id": id(&net), "cidr": cidr, "ip_version": 4}),
    )
    .await;
    (id(&net), id(&sub))
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_makes_public_and_router1() {
    let c = start().await;
    let admin = c.login("admin").await;
    let demo = c.login("demo").await;
    let public = network_named(&c, &demo, "public").await;
    let r = get(&c, &demo, &format!("/networks/{public}")).await;
    let n = &r.body["network"];
    assert_eq!(n["router:external"], json!(true));
    assert_eq!(n["shared"], json!(false));
    assert_eq!(n["project_id"], json!(admin.project_id));
    let r = get(&c, &admin, &format!("/subnets?network_id={public}")).await;
    let s = &r.body["subnets"][0];
    assert_eq!(s["name"], json!("public-subnet"));
    assert_eq!(s["cidr"], json!("172.24.4.0/24"));
    assert_eq!(s["gateway_ip"], json!("172.24.4.1"));

    let r = get(&c, &admin, "/routers?name=router1").await;
    let routers = r.body["routers"].as_array().cloned().unwrap_or_default();
    assert_eq!(routers.len(), 1, "{}", r.text);
    let router = &routers[0];
    assert_eq!(router["project_id"], json!(admin.project_id));
    let gw = &router["external_gateway_info"];
    assert_eq!(gw["network_id"], json!(public));
    assert_eq!(gw["enable_snat"], json!(true));
    let gw_ip = gw["external_fixed_ips"][0]["ip_address"]
        .as_str()
        .expect("ip");
    assert!(gw_ip.starts_with("172.24.4."), "{gw_ip}");
    let rid = id(router);
    let r = get(&c, &admin, &format!("/ports?device_id={rid}")).await;
    let mut owners: Vec<(String, String)> = r.body["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["device_owner"].as_str().unwrap_or("").to_string(),
                p["fixed_ips"][0]["ip_address"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    owners.sort();
    assert_eq!(owners[0].0, "network:router_gateway");
    assert_eq!(
        owners[1],
        (
            "network:router_interface".to_string(),
            "10.0.0.1".to_string()
        )
    );
    // A member sees neither admin's router nor its ports.
    let r = get(&c, &demo, "/routers").await;
    assert_eq!(r.body["routers"], json!([]));

    // Without --nic a server still lands on `private`; its floating IP
    // from `public` needs no admin step.
    let srv = c.boot(&demo, "fip-vm", None, json!({})).await;
    assert_eq!(srv["status"], json!("ACTIVE"));
    let sid = id(&srv);
    let addrs = srv["addresses"].as_object().cloned().unwrap_or_default();
    assert_eq!(addrs.keys().collect::<Vec<_>>(), vec!["private"]);
    let fixed = srv["addresses"]["private"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["version"] == json!(4)))
        .and_then(|x| x["addr"].as_str())
        .expect("v4")
        .to_string();
    let r = get(&c, &demo, &format!("/ports?device_id={sid}")).await;
    let port = id(&r.body["ports"][0]);
    let mac = r.body["ports"][0]["mac_address"].clone();
    let fip = make(
        &c,
        &demo,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public}),
    )
    .await;
    assert_eq!(fip["status"], json!("DOWN"));
    assert_eq!(fip["port_id"], Value::Null);
    let addr = fip["floating_ip_address"]
        .as_str()
        .expect("addr")
        .to_string();
    assert!(addr.starts_with("172.24.4.") && addr != gw_ip, "{addr}");
    let fid = id(&fip);
    let r = put(
        &c,
        &demo,
        &format!("/floatingips/{fid}"),
        json!({"floatingip": {"port_id": port}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let f = &r.body["floatingip"];
    assert_eq!(f["status"], json!("ACTIVE"));
    // The metadata service tells the guest its floating address.
    let dir = Dir(sock_dir());
    let sock = dir.0.join("md.sock");
    let md = serve(ComputeGuestEnv::of(&c.app), &sid, &sock).expect("serve");
    let r4 = get10(&sock, "/latest/meta-data/public-ipv4").await;
    assert_eq!(r4.text(), addr);
    drop(md);
    assert_eq!(f["router_id"], json!(rid));
    assert_eq!(f["fixed_ip_address"], json!(fixed));
    assert_eq!(f["port_details"]["device_id"], json!(sid));

    // Nova lists it right after its fixed address.
    let r = c.get(&demo, &format!("/servers/{sid}"), None).await;
    let list = r.body["server"]["addresses"]["private"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let at = list
        .iter()
        .position(|a| a["addr"] == json!(fixed))
        .expect("fixed");
    assert_eq!(
        list[at + 1],
        json!({"addr": addr, "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac})
    );
    let r = c
        .get(&demo, &format!("/servers/{sid}/ips/private"), None)
        .await;
    assert!(
        r.body["private"]
            .as_array()
            .is_some_and(|a| a.contains(&json!({"addr": addr, "version": 4}))),
        "{}",
        r.text
    );
    let r = c.get(&demo, "/servers/detail", None).await;
    assert!(r.text.contains(&addr), "{}", r.text);

    // Deleting the server disassociates it; the floating IP stays.
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/servers/{sid}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    c.wait_status(&demo, &sid, &["404"], None).await;
    let r = get(&c, &demo, &format!("/floatingips/{fid}")).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null, "{}", r.text);
    assert_eq!(r.body["floatingip"]["status"], json!("DOWN"));
    assert_eq!(r.body["floatingip"]["router_id"], Value::Null);

    // A restart makes nothing twice.
    let c = c.restart().await;
    let admin = c.login("admin").await;
    let r = get(&c, &admin, "/networks?name=public").await;
    assert_eq!(ids(&r.body["networks"]).len(), 1);
    let r = get(&c, &admin, "/routers").await;
    assert_eq!(ids(&r.body["routers"]), vec![rid]);
    let r = get(&c, &admin, &format!("/floatingips/{fid}")).await;
    assert_eq!(r.body["floatingip"]["floating_ip_address"], json!(addr));
}

#[tokio::test(flavor = "multi_thread")]
async fn routers_gateway_interfaces_and_errors() {
    let c = start().await;
    let demo = c.login("demo").await;
    let alt = c.login("alt_demo").await;
    let public = network_named(&c, &demo, "public").await;
    let (net, sub) = own_net(&c, &demo, "10.50.0.0/24").await;
    let nogw = make(
        &c,
        &demo,
        "subnets",
        "subnet",
        json!({"network_id": net, "cidr": "10.51.0.0/24", "ip_version": 4, "gateway_ip": null}),
    )
    .await;

    let r = post(&c, &demo, "/routers", json!({"router": {"name": "r1"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let router = r.body["router"].clone();
    let rid = id(&router);
    assert_eq!(router["external_gateway_info"], Value::Null);
    assert_eq!(router["status"], json!("ACTIVE"));
    assert_eq!(router["admin_state_up"], json!(true));
    assert_eq!(router["routes"], json!([]));
    assert_eq!(router["project_id"], json!(demo.project_id));
    let r = get(&c, &demo, "/routers?name=r1").await;
    assert_eq!(ids(&r.body["routers"]), vec![rid.clone()]);
    let r = get(&c, &demo, "/routers?name=nope").await;
    assert_eq!(r.body["routers"], json!([]));
    let r = get(&c, &demo, "/routers?bogus=1").await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let path = format!("/routers/{rid}");
    let r = put(
        &c,
        &demo,
        &path,
        json!({"router": {"name": "r1b", "description": "d"}}),
    )
    .await;
    assert_eq!(r.body["router"]["name"], json!("r1b"), "{}", r.text);
    let r = put(&c, &demo, &path, json!({"router": {"status": "DOWN"}})).await;
    neutron_error(&r, 400, "HTTPBadRequest");

    // Gateway: only an external network; SNAT is admin's.
    let r = put(
        &c,
        &demo,
        &path,
        json!({"router": {"external_gateway_info": {"network_id": net}}}),
    )
    .await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(
        &c,
        &demo,
        &path,
        json!({"router": {"external_gateway_info": {"network_id": public, "enable_snat": false}}}),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = put(
        &c,
        &demo,
        &path,
        json!({"router": {"external_gateway_info": {"network_id": public}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gw = r.body["router"]["external_gateway_info"].clone();
    assert_eq!(gw["network_id"], json!(public));
    assert_eq!(gw["enable_snat"], json!(true));
    assert_eq!(gw["external_fixed_ips"].as_array().map(Vec::len), Some(1));

    // Interfaces.
    let ifpath = format!("{path}/add_router_interface");
    let r = put(&c, &demo, &ifpath, json!({"subnet_id": sub})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["subnet_id"], json!(sub));
    assert_eq!(r.body["id"], json!(rid));
    let ifport = r.body["port_id"].as_str().expect("port").to_string();
    let r = get(&c, &demo, &format!("/ports/{ifport}")).await;
    assert_eq!(
        r.body["port"]["device_owner"],
        json!("network:router_interface")
    );
    assert_eq!(r.body["port"]["device_id"], json!(rid));
    assert_eq!(
        r.body["port"]["fixed_ips"][0]["ip_address"],
        json!("10.50.0.1")
    );
    let r = put(&c, &demo, &ifpath, json!({"subnet_id": sub})).await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(&c, &demo, &ifpath, json!({"subnet_id": id(&nogw)})).await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(
        &c,
        &demo,
        &ifpath,
        json!({"subnet_id": sub, "port_id": ifport}),
    )
    .await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(&c, &demo, &ifpath, json!({})).await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(&c, &demo, &ifpath, json!({"subnet_id": "not-a-uuid"})).await;
    neutron_error(&r, 400, "BadRequest");
    let r = put(&c, &demo, &ifpath, json!({"port_id": ifport})).await;
    neutron_error(&r, 409, "PortInUse");
    // Another router cannot take the subnet's gateway address.
    let other = make(&c, &demo, "routers", "router", json!({"name": "r2"})).await;
    let r = put(
        &c,
        &demo,
        &format!("/routers/{}/add_router_interface", id(&other)),
        json!({"subnet_id": sub}),
    )
    .await;
    neutron_error(&r, 409, "IpAddressAlreadyAllocated");

    // What the interface holds cannot go.
    let r = delete(&c, &demo, &path).await;
    neutron_error(&r, 409, "RouterInUse");
    let r = delete(&c, &demo, &format!("/subnets/{sub}")).await;
    neutron_error(&r, 409, "SubnetInUse");
    let r = delete(&c, &demo, &format!("/ports/{ifport}")).await;
    neutron_error(&r, 409, "ServicePortInUse");

    // Another project sees nothing.
    let r = get(&c, &alt, &path).await;
    neutron_error(&r, 404, "RouterNotFound");
    let r = put(&c, &alt, &ifpath, json!({"subnet_id": sub})).await;
    neutron_error(&r, 404, "RouterNotFound");
    let r = delete(&c, &alt, &path).await;
    neutron_error(&r, 404, "RouterNotFound");
    let r = get(&c, &alt, "/routers").await;
    assert!(!ids(&r.body["routers"]).contains(&rid));

    // Removal by subnet, then by port.
    let rmpath = format!("{path}/remove_router_interface");
    let r = put(&c, &demo, &rmpath, json!({"subnet_id": sub})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["port_id"], json!(ifport));
    let r = get(&c, &demo, &format!("/ports/{ifport}")).await;
    neutron_error(&r, 404, "PortNotFound");
    let r = put(&c, &demo, &rmpath, json!({"subnet_id": sub})).await;
    neutron_error(&r, 404, "RouterInterfaceNotFoundForSubnet");
    let p = make(
        &c,
        &demo,
        "ports",
        "port",
        json!({"network_id": net, "fixed_ips": [{"subnet_id": sub}]}),
    )
    .await;
    let r = put(&c, &demo, &ifpath, json!({"port_id": id(&p)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put(&c, &demo, &rmpath, json!({"port_id": ifport})).await;
    neutron_error(&r, 404, "RouterInterfaceNotFound");
    let r = put(
        &c,
        &demo,
        &rmpath,
        json!({"port_id": id(&p), "subnet_id": id(&nogw)}),
    )
    .await;
    neutron_error(&r, 400, "SubnetMismatchForPort");
    let r = put(&c, &demo, &rmpath, json!({"port_id": id(&p)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Clearing the gateway drops its port; deleting the router works.
    let gw_port = gw["external_fixed_ips"][0]["ip_address"].clone();
    let r = put(
        &c,
        &demo,
        &path,
        json!({"router": {"external_gateway_info": {}}}),
    )
    .await;
    assert_eq!(
        r.body["router"]["external_gateway_info"],
        Value::Null,
        "{}",
        r.text
    );
    let admin = c.login("admin").await;
    let r = get(&c, &admin, &format!("/ports?device_id={rid}")).await;
    assert_eq!(r.body["ports"], json!([]), "gateway {gw_port} gone");
    let r = delete(&c, &demo, &path).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&c, &demo, &path).await;
    neutron_error(&r, 404, "RouterNotFound");

    // The router quota (Neutron's default, 10).
    let mut over = None;
    for i in 0..11 {
        let r = post(
            &c,
            &demo,
            "/routers",
            json!({"router": {"name": format!("q{i}")}}),
        )
        .await;
        if r.status != StatusCode::CREATED {
            over = Some(r);
            break;
        }
    }
    neutron_error(&over.expect("refused"), 409, "OverQuota");
}

#[tokio::test(flavor = "multi_thread")]
async fn floating_ips_associate_and_errors() {
    let c = start().await;
    let demo = c.login("demo").await;
    let alt = c.login("alt_demo").await;
    let admin = c.login("admin").await;
    let public = network_named(&c, &demo, "public").await;
    let (net, sub) = own_net(&c, &demo, "10.60.0.0/24").await;
    let (lonely_net, _) = own_net(&c, &demo, "10.61.0.0/24").await;
    let router = make(
        &c,
        &demo,
        "routers",
        "router",
        json!({"name": "fr", "external_gateway_info": {"network_id": public}}),
    )
    .await;
    let rid = id(&router);
    assert_eq!(router["external_gateway_info"]["network_id"], json!(public));
    let r = put(
        &c,
        &demo,
        &format!("/routers/{rid}/add_router_interface"),
        json!({"subnet_id": sub}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let port = make(&c, &demo, "ports", "port", json!({"network_id": net})).await;
    let pid = id(&port);
    let fixed = port["fixed_ips"][0]["ip_address"].clone();

    // Created associated.
    let fip = make(
        &c,
        &demo,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public, "port_id": pid, "description": "web"}),
    )
    .await;
    let fid = id(&fip);
    assert_eq!(fip["status"], json!("ACTIVE"));
    assert_eq!(fip["router_id"], json!(rid));
    assert_eq!(fip["fixed_ip_address"], fixed);
    assert_eq!(fip["description"], json!("web"));
    assert_eq!(fip["project_id"], json!(demo.project_id));
    let addr = fip["floating_ip_address"].clone();
    let fpath = format!("/floatingips/{fid}");
    let r = get(&c, &demo, &format!("/floatingips?port_id={pid}")).await;
    assert_eq!(ids(&r.body["floatingips"]), vec![fid.clone()]);
    let r = get(
        &c,
        &demo,
        &format!(
            "/floatingips?floating_ip_address={}",
            addr.as_str().unwrap_or("")
        ),
    )
    .await;
    assert_eq!(ids(&r.body["floatingips"]), vec![fid.clone()]);
    let r = get(&c, &demo, &fpath).await;
    assert_eq!(r.body["floatingip"]["floating_ip_address"], addr);
    // Its address is held by a port of the network service's.
    let r = get(&c, &admin, &format!("/ports?device_id={fid}")).await;
    assert_eq!(
        r.body["ports"][0]["device_owner"],
        json!("network:floatingip")
    );
    assert_eq!(r.body["ports"][0]["fixed_ips"][0]["ip_address"], addr);
    let fport = id(&r.body["ports"][0]);
    let r = delete(&c, &admin, &format!("/ports/{fport}")).await;
    neutron_error(&r, 409, "ServicePortInUse");

    // One floating IP per fixed address.
    let second = make(
        &c,
        &demo,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public}),
    )
    .await;
    let spath = format!("/floatingips/{}", id(&second));
    let r = put(&c, &demo, &spath, json!({"floatingip": {"port_id": pid}})).await;
    neutron_error(&r, 409, "FloatingIPPortAlreadyAssociated");
    let r = post(
        &c,
        &demo,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "port_id": pid}}),
    )
    .await;
    neutron_error(&r, 409, "FloatingIPPortAlreadyAssociated");

    // What the association holds cannot go.
    let r = put(
        &c,
        &demo,
        &format!("/routers/{rid}/remove_router_interface"),
        json!({"subnet_id": sub}),
    )
    .await;
    neutron_error(&r, 409, "RouterInterfaceInUseByFloatingIP");
    let r = put(
        &c,
        &demo,
        &format!("/routers/{rid}"),
        json!({"router": {"external_gateway_info": null}}),
    )
    .await;
    neutron_error(&r, 409, "RouterExternalGatewayInUseByFloatingIp");

    // Disassociate, then associate again by fixed address.
    let r = put(&c, &demo, &fpath, json!({"floatingip": {"port_id": null}})).await;
    assert_eq!(r.body["floatingip"]["status"], json!("DOWN"), "{}", r.text);
    assert_eq!(r.body["floatingip"]["router_id"], Value::Null);
    assert_eq!(r.body["floatingip"]["fixed_ip_address"], Value::Null);
    let r = put(
        &c,
        &demo,
        &fpath,
        json!({"floatingip": {"port_id": pid, "fixed_ip_address": fixed}}),
    )
    .await;
    assert_eq!(
        r.body["floatingip"]["status"],
        json!("ACTIVE"),
        "{}",
        r.text
    );
    let r = put(
        &c,
        &demo,
        &fpath,
        json!({"floatingip": {"port_id": pid, "fixed_ip_address": "10.60.0.250"}}),
    )
    .await;
    neutron_error(&r, 400, "BadRequest");

    // A port whose subnet no router joins to `public`.
    let lonely = make(
        &c,
        &demo,
        "ports",
        "port",
        json!({"network_id": lonely_net}),
    )
    .await;
    let r = put(
        &c,
        &demo,
        &spath,
        json!({"floatingip": {"port_id": id(&lonely)}}),
    )
    .await;
    neutron_error(&r, 404, "ExternalGatewayForFloatingIPNotFound");
    let r = get(&c, &demo, &spath).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null, "unchanged");

    // Creation errors.
    let r = post(
        &c,
        &demo,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": net}}),
    )
    .await;
    neutron_error(&r, 400, "BadRequest");
    let r = post(&c, &demo, "/floatingips", json!({"floatingip": {}})).await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = post(
        &c,
        &demo,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": "7e0c4a28-0b5f-4f43-9d4c-000000000000"}}),
    )
    .await;
    neutron_error(&r, 404, "NetworkNotFound");
    let r = post(
        &c,
        &demo,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "fixed_ip_address": "10.60.0.5"}}),
    )
    .await;
    neutron_error(&r, 400, "BadRequest");
    let r = post(&c, &demo, "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "floating_ip_address": "172.24.4.200"}})).await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = post(
        &c,
        &demo,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "bogus": 1}}),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let chosen = make(
        &c,
        &admin,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public, "floating_ip_address": "172.24.4.200"}),
    )
    .await;
    assert_eq!(chosen["floating_ip_address"], json!("172.24.4.200"));
    let r = post(&c, &admin, "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "floating_ip_address": "172.24.4.200"}})).await;
    neutron_error(&r, 409, "IpAddressAlreadyAllocated");
    let r = post(
        &c,
        &admin,
        "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "floating_ip_address": "10.9.9.9"}}),
    )
    .await;
    neutron_error(&r, 400, "InvalidIpForNetwork");

    // Another project sees none of it and cannot point at demo's port.
    for r in [
        get(&c, &alt, &fpath).await,
        put(&c, &alt, &fpath, json!({"floatingip": {"port_id": null}})).await,
        delete(&c, &alt, &fpath).await,
    ] {
        neutron_error(&r, 404, "FloatingIPNotFound");
    }
    let r = get(&c, &alt, "/floatingips").await;
    assert_eq!(r.body["floatingips"], json!([]));
    let alts = make(
        &c,
        &alt,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public}),
    )
    .await;
    let r = put(
        &c,
        &alt,
        &format!("/floatingips/{}", id(&alts)),
        json!({"floatingip": {"port_id": pid}}),
    )
    .await;
    neutron_error(&r, 404, "PortNotFound");

    // Deleting the port disassociates; deleting the floating IP frees its
    // address and port.
    let r = delete(&c, &demo, &format!("/ports/{pid}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&c, &demo, &fpath).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null, "{}", r.text);
    assert_eq!(r.body["floatingip"]["status"], json!("DOWN"));
    let r = delete(&c, &demo, &fpath).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&c, &demo, &fpath).await;
    neutron_error(&r, 404, "FloatingIPNotFound");
    let r = get(&c, &admin, &format!("/ports/{fport}")).await;
    neutron_error(&r, 404, "PortNotFound");
    let r = delete(&c, &demo, &fpath).await;
    neutron_error(&r, 404, "FloatingIPNotFound");

    // The floatingip quota (Neutron's default, 50).
    let mut over = None;
    for _ in 0..60 {
        let r = post(
            &c,
            &demo,
            "/floatingips",
            json!({"floatingip": {"floating_network_id": public}}),
        )
        .await;
        if r.status != StatusCode::CREATED {
            over = Some(r);
            break;
        }
    }
    neutron_error(&over.expect("refused"), 409, "OverQuota");
    let r = get(&c, &demo, "/floatingips").await;
    assert_eq!(ids(&r.body["floatingips"]).len(), 50);
}
