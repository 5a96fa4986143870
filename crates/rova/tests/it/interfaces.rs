//! A server's interfaces (`os-interface`) on the simulated driver: listed
//! from its ports; attached on a network (a new port, at a requested
//! address) or from a port the user made, in the states Nova admits, with
//! an `attach_interface` action; detached, the port Rova made deleted and
//! the user's kept; Nova's 400s, 404s and 409s, each changing nothing.

use crate::common::{start, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn attach(c: &TestCloud, u: &User, sid: &str, v: Option<&str>, body: Value) -> Resp {
    c.post(u, &format!("/servers/{sid}/os-interface"), v, body)
        .await
}

async fn detach(c: &TestCloud, u: &User, sid: &str, port: &str) -> Resp {
    c.compute(
        u,
        Method::DELETE,
        &format!("/servers/{sid}/os-interface/{port}"),
        None,
        None,
    )
    .await
}

async fn listed(c: &TestCloud, u: &User, sid: &str) -> Vec<Value> {
    let r = c
        .get(u, &format!("/servers/{sid}/os-interface"), Some("2.70"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["interfaceAttachments"]
        .as_array()
        .expect("list")
        .clone()
}

/// A port made through the network API (no device).
async fn user_port(c: &TestCloud, u: &User, net: &str) -> String {
    let r = c
        .http
        .post(format!("{}/network/v2.0/ports", c.base))
        .header("X-Auth-Token", &u.token)
        .json(&json!({"port": {"network_id": net, "name": "mine"}}))
        .send()
        .await
        .expect("port");
    let r = Resp::read(r).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["port"]["id"].as_str().expect("port id").to_string()
}

async fn port(c: &TestCloud, u: &User, id: &str) -> Resp {
    let r = c
        .http
        .get(format!("{}/network/v2.0/ports/{id}", c.base))
        .header("X-Auth-Token", &u.token)
        .send()
        .await
        .expect("port");
    Resp::read(r).await
}

async fn action(c: &TestCloud, u: &User, sid: &str, body: Value) {
    let r = c
        .post(u, &format!("/servers/{sid}/action"), None, body)
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn interfaces_attach_and_detach_as_nova_does() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let alt = cloud.login("alt_demo").await;
    let net = cloud.network_id();
    let s = cloud.boot(&demo, "nics", Some("2.47"), json!({})).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let sid = s["id"].as_str().expect("id").to_string();

    // The NIC it was built with.
    let first = listed(&cloud, &demo, &sid).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["net_id"], json!(net));
    assert_eq!(first[0]["port_state"], "ACTIVE");
    assert_eq!(first[0]["tag"], Value::Null);
    let first_port = first[0]["port_id"].as_str().expect("port").to_string();
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{sid}/os-interface/{first_port}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["interfaceAttachment"]["mac_addr"],
        first[0]["mac_addr"]
    );
    assert!(r.body["interfaceAttachment"].get("tag").is_none(), "2.70+");

    // Bad requests change nothing.
    let mine = user_port(&cloud, &demo, &net).await;
    let bad: [(Value, u16, &str); 6] = [
        (
            json!({"interfaceAttachment": {"net_id": net, "port_id": mine}}),
            400,
            "Must not input both network_id and port_id",
        ),
        (
            json!({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.0.0.9"}]}}),
            400,
            "Must input network_id when request IP address",
        ),
        (
            json!({"interfaceAttachment": {"net_id": "not-a-uuid"}}),
            400,
            "Invalid input for field/attribute net_id. Value: not-a-uuid. \
             'not-a-uuid' is not a 'uuid'",
        ),
        (
            json!({"interfaceAttachment": {"bogus": 1}}),
            400,
            "Invalid input for field/attribute interfaceAttachment. Value: {'bogus': 1}. \
             Additional properties are not allowed ('bogus' was unexpected)",
        ),
        (
            json!({"interfaceAttachment": {"net_id": "6a5f0bb0-8f87-4b4e-9a8e-0d3c8cf9a001"}}),
            404,
            "Network 6a5f0bb0-8f87-4b4e-9a8e-0d3c8cf9a001 could not be found.",
        ),
        (
            json!({"interfaceAttachment": {"port_id": first_port}}),
            409,
            "",
        ),
    ];
    for (body, code, msg) in bad {
        let r = attach(&cloud, &demo, &sid, None, body.clone()).await;
        let got = r.fault(code);
        if !msg.is_empty() {
            assert_eq!(got, msg, "{body}");
        }
    }
    let r = attach(&cloud, &alt, &sid, None, json!({})).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "another project: {}",
        r.text
    );
    assert_eq!(
        listed(&cloud, &demo, &sid).await.len(),
        1,
        "nothing attached"
    );

    // On the network, tagged (2.49), and the user's own port.
    let r = attach(
        &cloud,
        &demo,
        &sid,
        Some("2.70"),
        json!({"interfaceAttachment": {"net_id": net, "tag": "second"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let made = r.body["interfaceAttachment"]["port_id"]
        .as_str()
        .expect("port")
        .to_string();
    assert_eq!(r.body["interfaceAttachment"]["tag"], "second");
    assert_eq!(r.body["interfaceAttachment"]["net_id"], json!(net));
    let r = attach(
        &cloud,
        &demo,
        &sid,
        None,
        json!({"interfaceAttachment": {"port_id": mine}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let nics = listed(&cloud, &demo, &sid).await;
    assert_eq!(
        nics.iter()
            .map(|n| n["port_id"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        [first_port.as_str(), made.as_str(), mine.as_str()]
    );
    assert_eq!(nics[1]["tag"], "second");
    let shown = cloud.get(&demo, &format!("/servers/{sid}"), None).await;
    let addresses = shown.body["server"]["addresses"]
        .as_object()
        .expect("addresses")
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum::<usize>();
    assert!(addresses >= 3, "{}", shown.text);
    assert_eq!(
        port(&cloud, &demo, &mine).await.body["port"]["device_id"],
        json!(sid)
    );
    let acts = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    assert_eq!(
        acts.body["instanceActions"][0]["action"],
        "attach_interface"
    );
    let req = acts.body["instanceActions"][0]["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let shown = cloud
        .get(
            &admin,
            &format!("/servers/{sid}/os-instance-actions/{req}"),
            None,
        )
        .await;
    assert_eq!(
        shown.body["instanceAction"]["events"][0]["event"],
        "compute_attach_interface"
    );
    assert_eq!(
        shown.body["instanceAction"]["events"][0]["result"],
        "Success"
    );

    // States: paused and stopped admit it, suspended does not; a lock
    // refuses the owner.
    action(&cloud, &demo, &sid, json!({"pause": null})).await;
    cloud.wait_status(&demo, &sid, &["PAUSED"], None).await;
    let r = detach(&cloud, &demo, &sid, &made).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    action(&cloud, &demo, &sid, json!({"unpause": null})).await;
    cloud.wait_status(&demo, &sid, &["ACTIVE"], None).await;
    action(&cloud, &demo, &sid, json!({"suspend": null})).await;
    cloud.wait_status(&demo, &sid, &["SUSPENDED"], None).await;
    let r = attach(&cloud, &demo, &sid, None, json!({})).await;
    assert_eq!(
        r.fault(409),
        format!("Cannot 'attach_interface' instance {sid} while it is in vm_state suspended")
    );
    action(&cloud, &demo, &sid, json!({"resume": null})).await;
    cloud.wait_status(&demo, &sid, &["ACTIVE"], None).await;
    action(&cloud, &admin, &sid, json!({"lock": null})).await;
    let r = detach(&cloud, &demo, &sid, &mine).await;
    assert_eq!(r.fault(409), format!("Instance {sid} is locked"));
    action(&cloud, &admin, &sid, json!({"unlock": null})).await;

    // Detached: the port Rova made is gone, the user's is kept, unbound.
    assert_eq!(
        port(&cloud, &demo, &made).await.status,
        StatusCode::NOT_FOUND
    );
    let r = detach(&cloud, &demo, &sid, &mine).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let kept = port(&cloud, &demo, &mine).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert_eq!(kept.body["port"]["device_id"], "");
    let r = detach(&cloud, &demo, &sid, &mine).await;
    assert_eq!(r.fault(404), format!("Port {mine} is not attached"));
    let r = cloud
        .get(&demo, &format!("/servers/{sid}/os-interface/{mine}"), None)
        .await;
    assert_eq!(
        r.fault(404),
        format!("Instance {sid} does not have a port with id {mine}")
    );
    let nics = listed(&cloud, &demo, &sid).await;
    assert_eq!(nics.len(), 1, "{nics:?}");
    assert_eq!(nics[0]["port_id"], json!(first_port));

    // A failed plug (an injected fault) answers 500 and gives its port back.
    let ports_before = cloud.app.networks.ports.len();
    let r = cloud
        .http
        .post(format!("{}/rova/v1/sim/faults", cloud.base))
        .header("X-Auth-Token", &admin.token)
        .json(&json!({"operation": "attach_interface", "message": "no slot"}))
        .send()
        .await
        .expect("fault");
    assert_eq!(r.status().as_u16(), 201);
    let r = attach(
        &cloud,
        &demo,
        &sid,
        None,
        json!({"interfaceAttachment": {"net_id": net}}),
    )
    .await;
    // Nova's InterfaceAttachFailed; as every 500, its text goes to the
    // log and the client gets the request id.
    assert!(
        r.fault(500).starts_with("Unexpected API Error"),
        "{}",
        r.text
    );
    assert_eq!(
        cloud.app.networks.ports.len(),
        ports_before,
        "port given back"
    );
    assert_eq!(listed(&cloud, &demo, &sid).await.len(), 1);
    // As in Nova, the attach is an instance action whose event failed.
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{sid}/os-instance-actions"),
            Some("2.51"),
        )
        .await;
    let last = &r.body["instanceActions"][0];
    assert_eq!(
        (&last["action"], &last["message"]),
        (&json!("attach_interface"), &json!("Error")),
        "{}",
        r.text
    );
}
