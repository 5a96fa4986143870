//! Ports on SLAAC subnets over the network API: the address is the MAC's
//! EUI-64 (what the guest configures itself), also on a port asked for
//! an address of another subnet only, and an address asked for on the
//! SLAAC subnet is refused as Neutron refuses it.

use crate::common::start;
use crate::image_network::{call, neutron_error};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn slaac_ports_take_their_macs_eui64() {
    let c = start().await;
    let demo = c.login("demo").await;
    let post = |path: &'static str, body: Value| {
        let (c, demo) = (&c, &demo);
        async move { call(c, Some(demo), Method::POST, path, Some(body)).await }
    };
    let r = post(
        "/network/v2.0/networks",
        json!({"network": {"name": "v6-net"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let net_id = r.body["network"]["id"].as_str().expect("id").to_string();
    let subnet = |cidr: &'static str, extra: Value| {
        let mut body = json!({"network_id": net_id, "cidr": cidr});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        post("/network/v2.0/subnets", json!({ "subnet": body }))
    };
    let r = subnet("10.30.0.0/24", json!({"ip_version": 4})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v4 = r.body["subnet"]["id"].as_str().expect("id").to_string();
    let r = subnet(
        "2001:db8:30::/64",
        json!({"ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let v6 = r.body["subnet"]["id"].as_str().expect("id").to_string();
    let addr = |port: &Value, subnet: &str| {
        port["fixed_ips"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["subnet_id"] == json!(subnet)))
            .and_then(|f| f["ip_address"].as_str())
            .map(str::to_string)
    };

    // A port with its MAC given: the universal/local bit of fa flipped
    // to f8, ff:fe between the halves of the MAC.
    let r = post(
        "/network/v2.0/ports",
        json!({"port": {"network_id": net_id, "mac_address": "fa:16:3e:12:34:56"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = &r.body["port"];
    assert_eq!(addr(p, &v4).as_deref(), Some("10.30.0.2"), "{p}");
    assert_eq!(
        addr(p, &v6).as_deref(),
        Some("2001:db8:30:0:f816:3eff:fe12:3456"),
        "{p}"
    );

    // Asked for an address of the IPv4 subnet only, a port still gets
    // its SLAAC address, from its random MAC.
    let r = post(
        "/network/v2.0/ports",
        json!({"port": {"network_id": net_id, "fixed_ips": [{"subnet_id": v4}]}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = &r.body["port"];
    let mac: Vec<u8> = p["mac_address"]
        .as_str()
        .expect("mac")
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    let want = format!(
        "2001:db8:30:0:{:x}:{:x}:{:x}:{:x}",
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    );
    assert_eq!(addr(p, &v6), Some(want), "{p}");
    assert!(addr(p, &v4).is_some(), "{p}");

    // An address asked for on the SLAAC subnet is refused, and nothing is
    // made.
    let before = call(&c, Some(&demo), Method::GET, "/network/v2.0/ports", None).await;
    let r = post(
        "/network/v2.0/ports",
        json!({"port": {"network_id": net_id,
            "fixed_ips": [{"subnet_id": v6, "ip_address": "2001:db8:30::99"}]}}),
    )
    .await;
    neutron_error(&r, 400, "InvalidInput");
    let msg = r.body["NeutronError"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        msg,
        format!(
            "Invalid input for operation: IPv6 address 2001:db8:30::99 can not be directly \
             assigned to a port on subnet {v6} since the subnet is configured for automatic \
             addresses."
        )
    );
    let after = call(&c, Some(&demo), Method::GET, "/network/v2.0/ports", None).await;
    assert_eq!(before.body["ports"], after.body["ports"]);
}
