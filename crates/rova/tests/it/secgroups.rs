//! Security groups end to end over HTTP: Neutron's `security-groups` and
//! `security-group-rules` resources, groups on ports, server create with
//! `security_groups`, the `addSecurityGroup` / `removeSecurityGroup`
//! actions (including the Tempest flows: removing every group, and adding
//! and removing one on a rescued server), a server's
//! `os-security-groups`, and Nova's proxy API below 2.36.

use crate::common::{start, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A network API call.
async fn net(c: &TestCloud, u: &User, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut req = c
        .http
        .request(method, format!("{}/network/v2.0{path}", c.base))
        .header("X-Auth-Token", &u.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::of(req).await
}

/// Asserts a Neutron error of the given status and type.
fn neutron_error(r: &Resp, status: u16, kind: &str) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["type"], json!(kind), "{}", r.text);
    r.body["NeutronError"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Creates a group through Neutron; returns its id.
async fn create_group(c: &TestCloud, u: &User, name: &str) -> String {
    let r = net(
        c,
        u,
        Method::POST,
        "/security-groups",
        Some(json!({"security_group": {"name": name, "description": "it"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["security_group"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The ports bound to a server.
async fn server_ports(c: &TestCloud, u: &User, server: &str) -> Vec<Value> {
    let r = net(
        c,
        u,
        Method::GET,
        &format!("/ports?device_id={server}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["ports"].as_array().cloned().unwrap_or_default()
}

async fn action(c: &TestCloud, u: &User, id: &str, version: Option<&str>, body: Value) -> Resp {
    c.post(u, &format!("/servers/{id}/action"), version, body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn neutron_groups_rules_and_ports() {
    let c = start().await;
    let demo = c.login("demo").await;
    let alt = c.login("alt_demo").await;
    let reader = c.login("demo_reader").await;
    let admin = c.login("admin").await;

    // The default group appears on first use, with Neutron's rules.
    let r = net(&c, &demo, Method::GET, "/security-groups", None).await;
    let groups = r.body["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(groups.len(), 1, "{}", r.text);
    let default = groups[0].clone();
    let default_id = id_of(&default);
    assert_eq!(default["name"], json!("default"));
    assert_eq!(
        default["security_group_rules"].as_array().map(Vec::len),
        Some(4)
    );

    let web = create_group(&c, &demo, "web").await;
    let r = net(
        &c,
        &demo,
        Method::GET,
        &format!("/security-groups/{web}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let g = &r.body["security_group"];
    assert_eq!(g["tenant_id"], json!(demo.project_id));
    assert_eq!(g["stateful"], json!(true));
    let rules = g["security_group_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|r| r["direction"] == json!("egress")));

    // Name checks, policy and visibility.
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/security-groups",
        Some(json!({"security_group": {"name": "Default"}})),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupDefaultAlreadyExists");
    let r = net(
        &c,
        &reader,
        Method::POST,
        "/security-groups",
        Some(json!({"security_group": {"name": "r"}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = net(
        &c,
        &alt,
        Method::GET,
        &format!("/security-groups/{web}"),
        None,
    )
    .await;
    let msg = neutron_error(&r, 404, "SecurityGroupNotFound");
    assert_eq!(msg, format!("Security group {web} does not exist"));
    let r = net(&c, &alt, Method::GET, "/security-groups", None).await;
    let names: Vec<Value> = r.body["security_groups"]
        .as_array()
        .map(|a| a.iter().map(|g| g["tenant_id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![json!(alt.project_id)], "only alt's default");

    // Update: rename and describe; the default group keeps its name.
    let r = net(
        &c,
        &demo,
        Method::PUT,
        &format!("/security-groups/{web}"),
        Some(json!({"security_group": {"name": "web2", "description": "d2"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["security_group"]["name"], json!("web2"));
    assert_eq!(r.body["security_group"]["description"], json!("d2"));
    let r = net(
        &c,
        &demo,
        Method::PUT,
        &format!("/security-groups/{default_id}"),
        Some(json!({"security_group": {"name": "x"}})),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupCannotUpdateDefault");

    // Rules: create, duplicate, list filter, show, bad range, delete.
    let rule_body = json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}});
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/security-group-rules",
        Some(rule_body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let rule = r.body["security_group_rule"].clone();
    assert_eq!(rule["ethertype"], json!("IPv4"));
    assert_eq!(rule["normalized_cidr"], json!("10.0.0.0/8"));
    let rule_id = id_of(&rule);
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/security-group-rules",
        Some(rule_body),
    )
    .await;
    let msg = neutron_error(&r, 409, "SecurityGroupRuleExists");
    assert!(msg.ends_with(&format!("Rule id is {rule_id}.")), "{msg}");
    let r = net(
        &c,
        &demo,
        Method::GET,
        &format!("/security-group-rules?security_group_id={web}"),
        None,
    )
    .await;
    assert_eq!(
        r.body["security_group_rules"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.text
    );
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/security-group-rules",
        Some(
            json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
            "protocol": "udp", "port_range_min": 90, "port_range_max": 80}}),
        ),
    )
    .await;
    neutron_error(&r, 400, "SecurityGroupInvalidPortRange");
    let r = net(
        &c,
        &alt,
        Method::GET,
        &format!("/security-group-rules/{rule_id}"),
        None,
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupRuleNotFound");
    let r = net(
        &c,
        &demo,
        Method::DELETE,
        &format!("/security-group-rules/{rule_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = net(
        &c,
        &demo,
        Method::GET,
        &format!("/security-group-rules/{rule_id}"),
        None,
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupRuleNotFound");

    // Ports carry groups: the default one unless told otherwise.
    let net_id = c.network_id();
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/ports",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["port"]["security_groups"], json!([default_id]));
    let plain = id_of(&r.body["port"]);
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/ports",
        Some(json!({"port": {"network_id": net_id, "security_groups": [web]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["port"]["security_groups"], json!([web]));
    let port = id_of(&r.body["port"]);
    let r = net(
        &c,
        &demo,
        Method::POST,
        "/ports",
        Some(json!({"port": {"network_id": net_id, "security_groups": [web, web]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let missing = uuid::Uuid::new_v4().to_string();
    let r = net(
        &c,
        &demo,
        Method::PUT,
        &format!("/ports/{port}"),
        Some(json!({"port": {"security_groups": [missing]}})),
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupNotFound");
    let r = net(
        &c,
        &demo,
        Method::GET,
        &format!("/ports?security_groups={web}"),
        None,
    )
    .await;
    assert_eq!(
        r.body["ports"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );

    // A group in use cannot go; once free it can.
    let r = net(
        &c,
        &demo,
        Method::DELETE,
        &format!("/security-groups/{web}"),
        None,
    )
    .await;
    let msg = neutron_error(&r, 409, "SecurityGroupInUse");
    assert_eq!(msg, format!("Security Group {web} in use."));
    let r = net(
        &c,
        &demo,
        Method::PUT,
        &format!("/ports/{port}"),
        Some(json!({"port": {"security_groups": []}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["port"]["security_groups"], json!([]));
    let r = net(
        &c,
        &demo,
        Method::DELETE,
        &format!("/security-groups/{web}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // The default group: only admins may delete it, and only when unused.
    for p in [&plain, &port] {
        let r = net(&c, &demo, Method::DELETE, &format!("/ports/{p}"), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let r = net(
        &c,
        &demo,
        Method::DELETE,
        &format!("/security-groups/{default_id}"),
        None,
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupCannotRemoveDefault");
    let r = net(
        &c,
        &admin,
        Method::DELETE,
        &format!("/security-groups/{default_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // ...and it comes back on the next use.
    let r = net(
        &c,
        &demo,
        Method::GET,
        "/security-groups?name=default",
        None,
    )
    .await;
    assert_eq!(r.body["security_groups"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_create_resolves_groups_onto_ports() {
    let c = start().await;
    let demo = c.login("demo").await;
    let web = create_group(&c, &demo, "web").await;

    // By name: the response echoes the request, the ports get the group.
    let image = c.image_id();
    let body = |sgs: Value| json!({"server": {"name": "s", "imageRef": image, "flavorRef": "1", "security_groups": sgs}});
    let r = c
        .post(&demo, "/servers", None, body(json!([{"name": "web"}])))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}])
    );
    let id = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = c.wait_status(&demo, &id, &["ACTIVE"], None).await;
    assert_eq!(s["security_groups"], json!([{"name": "web"}]));
    let ports = server_ports(&c, &demo, &id).await;
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["security_groups"], json!([web]));

    // By id, and the default when none are asked for.
    let s = c
        .boot(
            &demo,
            "by-id",
            None,
            json!({"security_groups": [{"name": web}]}),
        )
        .await;
    assert_eq!(s["security_groups"], json!([{"name": "web"}]));
    let s = c.boot(&demo, "plain", None, json!({})).await;
    assert_eq!(s["security_groups"], json!([{"name": "default"}]));
    let r = c.get(&demo, "/servers/detail", None).await;
    let all = r.body["servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|s| s["security_groups"].is_array()),
        "{}",
        r.text
    );

    // Unknown is Nova's 400; an ambiguous name is 409.
    let r = c
        .post(
            &demo,
            "/servers",
            None,
            body(json!([{"name": "does_not_exist"}])),
        )
        .await;
    let msg = r.fault(400);
    assert_eq!(
        msg,
        "Unable to find security_group with name or id 'does_not_exist'"
    );
    create_group(&c, &demo, "twin").await;
    create_group(&c, &demo, "twin").await;
    let r = c
        .post(&demo, "/servers", None, body(json!([{"name": "twin"}])))
        .await;
    let msg = r.fault(409);
    assert!(msg.starts_with("Multiple security_group matches"), "{msg}");
    // Another project's group is unknown here.
    let alt = c.login("alt_demo").await;
    let r = c
        .post(&alt, "/servers", None, body(json!([{"name": web}])))
        .await;
    r.fault(400);
}

#[tokio::test(flavor = "multi_thread")]
async fn add_and_remove_security_groups() {
    let c = start().await;
    let demo = c.login("demo").await;
    let reader = c.login("demo_reader").await;

    // Tempest: removing the only group leaves the server without the key.
    let s = c.boot(&demo, "all-gone", None, json!({})).await;
    let id = id_of(&s);
    let name = s["security_groups"][0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"removeSecurityGroup": {"name": name}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c.get(&demo, &format!("/servers/{id}"), None).await;
    assert!(
        r.body["server"].get("security_groups").is_none(),
        "{}",
        r.text
    );
    let r = c
        .get(&demo, &format!("/servers/{id}/os-security-groups"), None)
        .await;
    assert_eq!(r.body, json!({"security_groups": []}));
    let ports = server_ports(&c, &demo, &id).await;
    assert_eq!(ports[0]["security_groups"], json!([]));

    // Add back, by name and by id; twice is Neutron's duplicate (400).
    let web = create_group(&c, &demo, "web").await;
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"addSecurityGroup": {"name": "web"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"addSecurityGroup": {"name": "default"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}, {"name": "default"}])
    );
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"addSecurityGroup": {"name": web}}),
    )
    .await;
    let msg = r.fault(400);
    assert!(msg.contains("Duplicate items in the list"), "{msg}");

    // Nova's 404s: unknown group, group not on the server.
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"addSecurityGroup": {"name": "nope"}}),
    )
    .await;
    assert_eq!(
        r.fault(404),
        format!(
            "Security group nope is not found for project {}",
            demo.project_id
        )
    );
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"removeSecurityGroup": {"name": "web"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = action(
        &c,
        &demo,
        &id,
        None,
        json!({"removeSecurityGroup": {"name": "web"}}),
    )
    .await;
    assert_eq!(
        r.fault(404),
        format!("Security group web not associated with the instance {id}")
    );
    // Members only.
    let r = action(
        &c,
        &reader,
        &id,
        None,
        json!({"addSecurityGroup": {"name": "web"}}),
    )
    .await;
    r.fault(403);

    // A server without ports has nowhere to put a group.
    let bare = c
        .boot(&demo, "bare", Some("2.37"), json!({"networks": "none"}))
        .await;
    let bare_id = id_of(&bare);
    assert!(bare.get("security_groups").is_none(), "{bare}");
    let r = action(
        &c,
        &demo,
        &bare_id,
        None,
        json!({"addSecurityGroup": {"name": "web"}}),
    )
    .await;
    assert_eq!(
        r.fault(404),
        format!("instance_id {bare_id} could not be found as device id on any ports")
    );

    // Tempest: add and remove on a rescued server at 2.35, with a group made
    // through the proxy API (and deleted through it afterwards).
    let v = Some("2.35");
    let r = c
        .post(
            &demo,
            "/os-security-groups",
            v,
            json!({"security_group": {"name": "rescue-sg", "description": "d"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sg_id = id_of(&r.body["security_group"]);
    let r = action(
        &c,
        &demo,
        &id,
        v,
        json!({"rescue": {"adminPass": "s3cret-pw"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c.wait_status(&demo, &id, &["RESCUE"], v).await;
    let r = action(
        &c,
        &demo,
        &id,
        v,
        json!({"addSecurityGroup": {"name": "rescue-sg"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c
        .get(&demo, &format!("/servers/{id}/os-security-groups"), v)
        .await;
    let names: Vec<Value> = r.body["security_groups"]
        .as_array()
        .map(|a| a.iter().map(|g| g["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec![json!("default"), json!("rescue-sg")],
        "{}",
        r.text
    );
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-groups/{sg_id}"),
            v,
            None,
        )
        .await;
    assert!(r.fault(400).contains("in use"), "{}", r.text);
    let r = action(
        &c,
        &demo,
        &id,
        v,
        json!({"removeSecurityGroup": {"name": "rescue-sg"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-groups/{sg_id}"),
            v,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn nova_proxy_security_groups() {
    let c = start().await;
    let demo = c.login("demo").await;
    let v = Some("2.35");

    let r = c.get(&demo, "/os-security-groups", Some("2.36")).await;
    r.fault(404);
    let r = c.get(&demo, "/os-security-groups", v).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let groups = r.body["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], json!("default"));
    // Nova shows ingress rules only: from members of the group itself.
    let rules = groups[0]["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0]["group"],
        json!({"name": "default", "tenant_id": demo.project_id})
    );
    assert_eq!(rules[0]["ip_range"], json!({}));

    let create = |name: &str, desc: Option<&str>| {
        let mut sg = json!({"name": name});
        if let Some(d) = desc {
            sg["description"] = json!(d);
        }
        json!({"security_group": sg})
    };
    let r = c
        .post(&demo, "/os-security-groups", v, create("api", Some("d")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = r.body["security_group"].clone();
    let gid = id_of(&g);
    assert_eq!(g["rules"], json!([]));
    assert_eq!(g["tenant_id"], json!(demo.project_id));
    let r = c
        .post(
            &demo,
            "/os-security-groups",
            v,
            create("default", Some("d")),
        )
        .await;
    r.fault(403);
    let r = c
        .post(&demo, "/os-security-groups", v, create("x", None))
        .await;
    assert!(r
        .fault(400)
        .contains("'description' is a required property"));

    let r = c.get(&demo, "/os-security-groups/not-a-uuid", v).await;
    assert_eq!(r.fault(400), "Security group id should be uuid");
    let missing = uuid::Uuid::new_v4().to_string();
    let r = c
        .get(&demo, &format!("/os-security-groups/{missing}"), v)
        .await;
    r.fault(404);
    let r = c
        .compute(
            &demo,
            Method::PUT,
            &format!("/os-security-groups/{gid}"),
            v,
            Some(create("api2", Some("d2"))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["security_group"]["name"], json!("api2"));

    // Rules: a CIDR rule, its duplicate, a group rule, bad input.
    let rule = |extra: Value| {
        let mut r = json!({"parent_group_id": gid});
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({"security_group_rule": r})
    };
    let tcp22 = json!({"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"});
    let r = c
        .post(&demo, "/os-security-group-rules", v, rule(tcp22.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let created = r.body["security_group_rule"].clone();
    assert_eq!(created["ip_range"], json!({"cidr": "10.0.0.0/8"}));
    assert_eq!(created["group"], json!({}));
    assert_eq!(
        (created["from_port"].clone(), created["to_port"].clone()),
        (json!(22), json!(22))
    );
    assert_eq!(created["parent_group_id"], json!(gid));
    let rule_id = id_of(&created);
    let r = c
        .post(&demo, "/os-security-group-rules", v, rule(tcp22))
        .await;
    assert_eq!(
        r.fault(400),
        format!("This rule already exists in group {gid}")
    );
    let default_id = id_of(&groups[0]);
    let r = c
        .post(
            &demo,
            "/os-security-group-rules",
            v,
            rule(json!({"ip_protocol": "tcp", "group_id": default_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g_rule = r.body["security_group_rule"].clone();
    assert_eq!(
        g_rule["group"],
        json!({"name": "default", "tenant_id": demo.project_id})
    );
    assert_eq!(
        (g_rule["from_port"].clone(), g_rule["to_port"].clone()),
        (json!(1), json!(65535))
    );
    let r = c
        .post(
            &demo,
            "/os-security-group-rules",
            v,
            rule(json!({"ip_protocol": "tcp"})),
        )
        .await;
    assert_eq!(r.fault(400), "Not enough parameters to build a valid rule.");
    let r = c
        .post(
            &demo,
            "/os-security-group-rules",
            v,
            rule(json!({"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "bogus"})),
        )
        .await;
    r.fault(400);
    let r = c.get(&demo, &format!("/os-security-groups/{gid}"), v).await;
    assert_eq!(
        r.body["security_group"]["rules"].as_array().map(Vec::len),
        Some(2)
    );

    // The Neutron view agrees (two egress rules plus the two ingress).
    let r = net(
        &c,
        &demo,
        Method::GET,
        &format!("/security-groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(
        r.body["security_group"]["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-group-rules/{rule_id}"),
            v,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-group-rules/{rule_id}"),
            v,
            None,
        )
        .await;
    r.fault(404);

    // Listing is sorted by project and name.
    let r = c.get(&demo, "/os-security-groups", v).await;
    let names: Vec<Value> = r.body["security_groups"]
        .as_array()
        .map(|a| a.iter().map(|g| g["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![json!("api2"), json!("default")]);
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-groups/{gid}"),
            v,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = c
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-security-groups/{default_id}"),
            v,
            None,
        )
        .await;
    r.fault(400);
}
