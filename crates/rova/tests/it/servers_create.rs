//! POST /servers over HTTP: Nova's request validation rule by rule (nova-facts
//! §e), the 202 response (§f), multiple create, quota, and that a rejected
//! request leaves nothing behind.

use crate::common::{self, Resp, TestCloud, User};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A minimal valid `server` body with `extra` merged over it.
fn body(cloud: &TestCloud, extra: Value) -> Value {
    let mut s = json!({"name": "vm", "imageRef": cloud.image_id(), "flavorRef": "1"});
    if let (Some(obj), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

/// The minimal valid body without `key`.
fn without(cloud: &TestCloud, key: &str) -> Value {
    let mut s = body(cloud, json!({}));
    if let Some(o) = s.as_object_mut() {
        o.remove(key);
    }
    s
}

async fn create(cloud: &TestCloud, u: &User, version: Option<&str>, server: Value) -> Resp {
    cloud
        .post(u, "/servers", version, json!({"server": server}))
        .await
}

/// Posts the body and asserts a Nova fault with `code`; returns the message.
async fn reject(
    cloud: &TestCloud,
    u: &User,
    version: Option<&str>,
    server: Value,
    code: u16,
) -> String {
    create(cloud, u, version, server).await.fault(code)
}

/// Nothing was created for `u`'s project (list and detail, deleted too).
async fn assert_nothing_created(cloud: &TestCloud, u: &User) {
    let r = cloud.get(u, "/servers/detail", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["servers"], json!([]), "{}", r.text);
    assert!(
        cloud.app.compute.instances.all().is_empty(),
        "no instance rows at all after rejected requests"
    );
    assert_eq!(
        cloud
            .app
            .compute
            .usage_of(&u.project_id)
            .expect("usage")
            .instances,
        0,
        "quota released"
    );
}

fn schema_msg(msg: &str, field: &str, tail: &str) {
    assert!(
        msg.starts_with(&format!(
            "Invalid input for field/attribute {field}. Value: "
        )),
        "framing of {msg:?}"
    );
    assert!(msg.ends_with(tail), "{msg:?} should end with {tail:?}");
}

#[tokio::test]
async fn valid_create_returns_202_with_location_and_password() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let r = create(&cloud, &demo, None, body(&cloud, json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = &r.body["server"];
    let id = s["id"].as_str().expect("id");
    let loc = r.header("location").expect("Location header");
    assert!(
        loc.ends_with(&format!("/compute/v2.1/servers/{id}")),
        "{loc}"
    );
    assert_eq!(s["links"][0]["rel"], "self");
    assert_eq!(s["links"][0]["href"], json!(loc));
    assert_eq!(s["links"][1]["rel"], "bookmark");
    assert!(s["links"][1]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/compute/servers/{id}")));
    assert_eq!(s["OS-DCF:diskConfig"], "MANUAL");
    assert_eq!(s["security_groups"], json!([{"name": "default"}]));
    let pw = s["adminPass"].as_str().expect("adminPass");
    assert_eq!(pw.len(), 12, "generated password length");
    assert!(pw.chars().any(|c| c.is_ascii_digit()) && pw.chars().any(|c| c.is_ascii_uppercase()));
    let obj = s.as_object().unwrap();
    assert_eq!(
        obj.len(),
        5,
        "exactly id, links, diskConfig, security_groups, adminPass: {}",
        r.text
    );

    // A given password is echoed; the server really builds.
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"name": "p", "adminPass": "s3cret"})),
    )
    .await;
    assert_eq!(r.body["server"]["adminPass"], "s3cret");
    let id2 = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = cloud.wait_status(&demo, &id2, &["ACTIVE"], None).await;
    assert_eq!(s["name"], "p");
    assert_eq!(s["tenant_id"], json!(demo.project_id));
    assert_eq!(s["user_id"], json!(demo.user_id));
}

#[tokio::test]
async fn missing_name_and_flavor_ref() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(&cloud, &demo, None, without(&cloud, "name"), 400).await;
    schema_msg(&m, "server", "'name' is a required property");
    let m = reject(&cloud, &demo, None, without(&cloud, "flavorRef"), 400).await;
    schema_msg(&m, "server", "'flavorRef' is a required property");
    // No `server` at all.
    let r = cloud
        .post(&demo, "/servers", None, json!({"srv": {}}))
        .await;
    let m = r.fault(400);
    assert_eq!(m, "'server' is a required property");
    // Empty flavorRef.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"flavorRef": ""})),
        400,
    )
    .await;
    schema_msg(&m, "flavorRef", "'' should be non-empty");
    // Missing imageRef without block devices.
    let m = reject(&cloud, &demo, None, without(&cloud, "imageRef"), 400).await;
    assert_eq!(m, "Missing imageRef attribute");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"imageRef": ""})),
        400,
    )
    .await;
    assert_eq!(m, "Missing imageRef attribute");
    // Malformed JSON.
    let r = cloud
        .http
        .post(format!("{}/compute/v2.1/servers", cloud.base))
        .header("X-Auth-Token", &demo.token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"badRequest": {"code": 400, "message": "Malformed request body"}})
    );
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn bad_name_whitespace_and_length() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let invalid_name =
        "An invalid 'name' value was provided. The name must be: printable characters. \
                        Can not start or end with whitespace.";
    for bad in [" lead", "trail ", "\tx", "bell\u{7}"] {
        let m = reject(&cloud, &demo, None, body(&cloud, json!({"name": bad})), 400).await;
        assert_eq!(m, invalid_name, "name {bad:?}");
    }
    let m = reject(&cloud, &demo, None, body(&cloud, json!({"name": ""})), 400).await;
    schema_msg(&m, "name", "'' should be non-empty");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"name": "n".repeat(256)})),
        400,
    )
    .await;
    schema_msg(&m, "name", "is too long");
    let m = reject(&cloud, &demo, None, body(&cloud, json!({"name": 5})), 400).await;
    schema_msg(&m, "name", "5 is not of type 'string'");
    // Inner spaces and 255 characters are fine.
    let r = create(&cloud, &demo, None, body(&cloud, json!({"name": "a b"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"name": "n".repeat(255)})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unknown_keys_are_rejected() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(&cloud, &demo, None, body(&cloud, json!({"foo": 1})), 400).await;
    schema_msg(
        &m,
        "server",
        "Additional properties are not allowed ('foo' was unexpected)",
    );
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": body(&cloud, json!({})), "extra": {}}),
        )
        .await;
    assert_eq!(
        r.fault(400),
        "Additional properties are not allowed ('extra' was unexpected)"
    );
    // Version-gated keys are unknown below their version.
    let m = reject(
        &cloud,
        &demo,
        Some("2.18"),
        body(&cloud, json!({"description": "d"})),
        400,
    )
    .await;
    schema_msg(&m, "server", "('description' was unexpected)");
    let m = reject(
        &cloud,
        &demo,
        Some("2.51"),
        body(&cloud, json!({"networks": "none", "tags": ["a"]})),
        400,
    )
    .await;
    schema_msg(&m, "server", "('tags' was unexpected)");
    let m = reject(
        &cloud,
        &demo,
        Some("2.89"),
        body(&cloud, json!({"networks": "auto", "hostname": "hh"})),
        400,
    )
    .await;
    schema_msg(&m, "server", "('hostname' was unexpected)");
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn networks_required_from_2_37_auto_and_none() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(&cloud, &demo, Some("2.37"), body(&cloud, json!({})), 400).await;
    schema_msg(&m, "server", "'networks' is a required property");
    // 2.36 does not require it.
    let r = create(
        &cloud,
        &demo,
        Some("2.36"),
        body(&cloud, json!({"name": "old"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Wrong case or other strings are not "auto"/"none".
    for bad in [json!("AUTO"), json!("None"), json!("any"), json!({})] {
        let m = reject(
            &cloud,
            &demo,
            Some("2.37"),
            body(&cloud, json!({"networks": bad})),
            400,
        )
        .await;
        schema_msg(
            &m,
            "networks",
            "is not valid under any of the given schemas",
        );
    }

    let auto = cloud
        .boot(&demo, "auto", Some("2.37"), json!({"networks": "auto"}))
        .await;
    assert_eq!(auto["status"], "ACTIVE");
    let addrs = auto["addresses"].as_object().expect("addresses");
    assert_eq!(addrs.len(), 1, "one NIC on the shared network: {auto}");
    assert!(addrs.contains_key("private"));

    let none = cloud
        .boot(&demo, "none", Some("2.37"), json!({"networks": "none"}))
        .await;
    assert_eq!(none["status"], "ACTIVE");
    assert_eq!(none["addresses"], json!({}), "no NICs with networks=none");

    // An explicit network list with the network uuid works too.
    let net = cloud.network_id();
    let listed = cloud
        .boot(
            &demo,
            "listed",
            Some("2.37"),
            json!({"networks": [{"uuid": net}]}),
        )
        .await;
    let nics = listed["addresses"]["private"].as_array().map(Vec::len);
    assert!(nics.unwrap_or(0) >= 1, "{listed}");
}

#[tokio::test]
async fn network_entries_are_checked() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    // Before 2.37 the uuid is any string but must be UUID-like.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"networks": [{"uuid": "not-a-uuid"}]})),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Bad networks format: network uuid is not in proper format (not-a-uuid)"
    );
    // From 2.37 the schema checks the format.
    let m = reject(
        &cloud,
        &demo,
        Some("2.37"),
        body(&cloud, json!({"networks": [{"uuid": "not-a-uuid"}]})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "networks",
        "is not valid under any of the given schemas",
    );
    // Neither port nor uuid.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"networks": [{}]})),
        400,
    )
    .await;
    assert_eq!(m, "Bad network format: missing 'uuid'");
    // port together with fixed_ip.
    let port = "2f4c3a5e-1111-4222-8333-944455556666";
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"networks": [{"port": port, "fixed_ip": "10.0.0.5"}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        format!("Specified Fixed IP '10.0.0.5' cannot be used with port '{port}': the two cannot be specified together.")
    );
    // The same port twice.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"networks": [{"port": port}, {"port": port}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        format!("Port ID '{port}' was specified twice: you cannot attach a port multiple times.")
    );
    // Port must look like a uuid.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"networks": [{"port": "p1"}]})),
        400,
    )
    .await;
    schema_msg(&m, "port", "'p1' is not a 'uuid'");
    // fixed_ip must be an address.
    let net = cloud.network_id();
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"networks": [{"uuid": net, "fixed_ip": "10.0.0"}]}),
        ),
        400,
    )
    .await;
    schema_msg(
        &m,
        "fixed_ip",
        "is not valid under any of the given schemas",
    );
    // Unknown network and unknown port: 400 after lookup.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"networks": [{"uuid": "2f4c3a5e-0000-4222-8333-944455556666"}]}),
        ),
        400,
    )
    .await;
    assert!(m.contains("could not be found"), "{m}");
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"networks": [{"port": port}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // max_count > 1 with a fixed IP.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"max_count": 2, "networks": [{"uuid": net, "fixed_ip": "10.0.0.9"}]}),
        ),
        400,
    )
    .await;
    assert!(m.starts_with("Failed to launch instances: "), "{m}");
    // `tag` on a network entry only at 2.32 and 2.42+.
    let m = reject(
        &cloud,
        &demo,
        Some("2.37"),
        body(&cloud, json!({"networks": [{"uuid": net, "tag": "t"}]})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "networks",
        "is not valid under any of the given schemas",
    );
    assert_nothing_created(&cloud, &demo).await;
    let r = create(
        &cloud,
        &demo,
        Some("2.42"),
        body(&cloud, json!({"networks": [{"uuid": net, "tag": "t"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn personality_until_2_56_and_unknown_at_2_57() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let file = json!([{"path": "/etc/motd", "contents": "aGVsbG8="}]);
    let r = create(
        &cloud,
        &demo,
        Some("2.56"),
        body(&cloud, json!({"networks": "auto", "personality": file})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let m = reject(
        &cloud,
        &demo,
        Some("2.57"),
        body(&cloud, json!({"networks": "auto", "personality": file})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "server",
        "Additional properties are not allowed ('personality' was unexpected)",
    );
    // The injected-file quotas are 403s.
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"path": format!("/f{i}"), "contents": "aGk="}))
        .collect();
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"personality": six})),
        403,
    )
    .await;
    assert_eq!(m, "Personality file limit exceeded");
    let long_path = format!("/{}", "p".repeat(255));
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"personality": [{"path": long_path, "contents": "aGk="}]}),
        ),
        403,
    )
    .await;
    assert_eq!(m, "Personality file path exceeds maximum 255");
    let big = "QUFB".repeat(2561); // 10244 base64 characters
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"personality": [{"path": "/big", "contents": big}]}),
        ),
        403,
    )
    .await;
    assert_eq!(m, "Personality file content exceeds maximum 10240");
}

#[tokio::test]
async fn user_data_base64_and_length() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"user_data": "abc"})),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Invalid input for field/attribute user_data. Value: abc. 'abc' is not a 'base64'"
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"user_data": "A".repeat(65536)})),
        400,
    )
    .await;
    schema_msg(&m, "user_data", "is too long");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"user_data": null})),
        400,
    )
    .await;
    schema_msg(&m, "user_data", "None is not of type 'string'");
    assert_nothing_created(&cloud, &demo).await;
    // The maximum length is accepted and stored as sent (admin sees it at 2.3+).
    let max = "A".repeat(65532);
    let r = create(&cloud, &demo, None, body(&cloud, json!({"user_data": max}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.body["server"]["id"].as_str().unwrap();
    let admin = cloud.login("admin").await;
    let s = cloud
        .get(&admin, &format!("/servers/{id}"), Some("2.3"))
        .await;
    assert_eq!(s.body["server"]["OS-EXT-SRV-ATTR:user_data"], json!(max));
}

#[tokio::test]
async fn metadata_limits_and_quota() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let long_key = "k".repeat(256);
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"metadata": {long_key.clone(): "v"}})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "metadata",
        &format!("'{long_key}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{{1,255}}$'"),
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"metadata": {"bad/key": "v"}})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "metadata",
        "'bad/key' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'",
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"metadata": {"k": "v".repeat(256)}})),
        400,
    )
    .await;
    schema_msg(&m, "k", "is too long");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"metadata": {"k": 1}})),
        400,
    )
    .await;
    schema_msg(&m, "k", "1 is not of type 'string'");
    let many: serde_json::Map<String, Value> =
        (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"metadata": many})),
        403,
    )
    .await;
    assert_eq!(m, "Maximum number of metadata items exceeds 128");
    assert_nothing_created(&cloud, &demo).await;
    // 255-character keys and values and 128 items are fine.
    let mut ok: serde_json::Map<String, Value> =
        (0..127).map(|i| (format!("k{i}"), json!("v"))).collect();
    ok.insert("k".repeat(255), json!("v".repeat(255)));
    let s = cloud.boot(&demo, "md", None, json!({"metadata": ok})).await;
    assert_eq!(s["metadata"].as_object().unwrap().len(), 128);
    assert_eq!(s["metadata"]["k".repeat(255)], json!("v".repeat(255)));
}

#[tokio::test]
async fn min_and_max_count() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"min_count": 3, "max_count": 2})),
        400,
    )
    .await;
    assert_eq!(m, "min_count must be <= max_count");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"min_count": 0})),
        400,
    )
    .await;
    schema_msg(&m, "min_count", "0 is less than the minimum of 1");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"max_count": "two"})),
        400,
    )
    .await;
    schema_msg(&m, "max_count", "'two' does not match '^[0-9]*$'");
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn multiple_create_names_and_hostnames() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"name": "Web Srv", "min_count": "2"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let first = r.body["server"]["id"].as_str().unwrap().to_string();
    let admin = cloud.login("admin").await;
    let list = cloud.get(&demo, "/servers/detail", None).await;
    let mut names: Vec<String> = list.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["Web Srv-1", "Web Srv-2"]);
    let s1 = cloud
        .get(&admin, &format!("/servers/{first}"), Some("2.3"))
        .await;
    assert_eq!(
        s1.body["server"]["name"], "Web Srv-1",
        "the response is the first server"
    );
    assert_eq!(s1.body["server"]["OS-EXT-SRV-ATTR:hostname"], "web-srv-1");
    assert_eq!(s1.body["server"]["OS-EXT-SRV-ATTR:launch_index"], 0);
    // Both share one reservation id.
    let rid = s1.body["server"]["OS-EXT-SRV-ATTR:reservation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let same = cloud
        .get(&demo, &format!("/servers?reservation_id={rid}"), None)
        .await;
    assert_eq!(same.body["servers"].as_array().unwrap().len(), 2);
    // A hostname cannot go to several servers.
    let m = reject(
        &cloud,
        &demo,
        Some("2.90"),
        body(
            &cloud,
            json!({"networks": "auto", "hostname": "one", "max_count": 2}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Unable to allocate a single hostname to multiple instances"
    );
}

#[tokio::test]
async fn return_reservation_id() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let r = create(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"min_count": 2, "return_reservation_id": true}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(
        r.header("location").is_none(),
        "no Location with a reservation id"
    );
    let obj = r.body.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{}", r.text);
    let rid = r.body["reservation_id"].as_str().expect("reservation_id");
    assert_eq!(rid.len(), 10);
    assert!(rid.starts_with("r-"));
    assert!(rid[2..]
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    let l = cloud
        .get(&demo, &format!("/servers?reservation_id={rid}"), None)
        .await;
    assert_eq!(l.body["servers"].as_array().unwrap().len(), 2);
    // A string counts as true, even "False" (the controller tests the raw value).
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"return_reservation_id": "False"})),
    )
    .await;
    assert!(r.body.get("reservation_id").is_some(), "{}", r.text);
    // A real false gives the normal body.
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"return_reservation_id": false})),
    )
    .await;
    assert!(r.body.get("server").is_some(), "{}", r.text);
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"return_reservation_id": "maybe"})),
        400,
    )
    .await;
    schema_msg(&m, "return_reservation_id", "is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']");
}

#[tokio::test]
async fn hostname_rules_2_90_and_2_94() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let v90 = Some("2.90");
    let s = cloud
        .boot(&demo, "h1", v90, json!({"hostname": "my-host-1"}))
        .await;
    assert_eq!(
        s["OS-EXT-SRV-ATTR:hostname"], "my-host-1",
        "visible to non-admins at 2.90"
    );
    for bad in ["a.b", "-x", "x-", "a", "under_score"] {
        let m = reject(
            &cloud,
            &demo,
            v90,
            body(&cloud, json!({"networks": "auto", "hostname": bad})),
            400,
        )
        .await;
        assert!(
            m.starts_with("Invalid input for field/attribute hostname."),
            "{bad}: {m}"
        );
    }
    let m = reject(
        &cloud,
        &demo,
        v90,
        body(
            &cloud,
            json!({"networks": "auto", "hostname": "h".repeat(64)}),
        ),
        400,
    )
    .await;
    schema_msg(&m, "hostname", "is too long");
    // 2.94 allows FQDNs.
    let s = cloud
        .boot(
            &demo,
            "h2",
            Some("2.94"),
            json!({"hostname": "web.example.com"}),
        )
        .await;
    assert_eq!(s["OS-EXT-SRV-ATTR:hostname"], "web.example.com");
    let m = reject(
        &cloud,
        &demo,
        Some("2.94"),
        body(&cloud, json!({"networks": "auto", "hostname": "bad host"})),
        400,
    )
    .await;
    schema_msg(&m, "hostname", "does not match '^[a-zA-Z0-9-._]*$'");
    // Without a hostname it is derived from the display name.
    let s = cloud.boot(&demo, "My Server_1.x", v90, json!({})).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:hostname"], "my-server-1-x");
    // Below 2.90 a non-admin does not see it.
    let id = s["id"].as_str().unwrap();
    let r = cloud
        .get(&demo, &format!("/servers/{id}"), Some("2.89"))
        .await;
    assert!(r.body["server"].get("OS-EXT-SRV-ATTR:hostname").is_none());
}

#[tokio::test]
async fn description_from_2_19() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .boot(&demo, "d1", Some("2.19"), json!({"description": "my desc"}))
        .await;
    assert_eq!(s["description"], "my desc");
    let s = cloud
        .boot(&demo, "d2", Some("2.19"), json!({"description": null}))
        .await;
    assert_eq!(s["description"], Value::Null);
    let s = cloud.boot(&demo, "d3", Some("2.19"), json!({})).await;
    assert_eq!(
        s["description"],
        Value::Null,
        "absent description is null at 2.19"
    );
    // Below 2.19 the description is the name.
    let s = cloud.boot(&demo, "named", None, json!({})).await;
    let id = s["id"].as_str().unwrap();
    assert!(s.get("description").is_none(), "no description key at 2.1");
    let r = cloud
        .get(&demo, &format!("/servers/{id}"), Some("2.19"))
        .await;
    assert_eq!(r.body["server"]["description"], "named");
    let m = reject(
        &cloud,
        &demo,
        Some("2.19"),
        body(&cloud, json!({"description": "d".repeat(256)})),
        400,
    )
    .await;
    schema_msg(&m, "description", "is too long");
    let m = reject(
        &cloud,
        &demo,
        Some("2.19"),
        body(&cloud, json!({"description": "bad\u{1}"})),
        400,
    )
    .await;
    assert!(
        m.starts_with("Invalid input for field/attribute description."),
        "{m}"
    );
}

#[tokio::test]
async fn tags_from_2_52() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .boot(&demo, "t", Some("2.52"), json!({"tags": ["a", "b", "a"]}))
        .await;
    assert_eq!(s["tags"], json!(["a", "b"]), "duplicates dropped");
    let fifty_one: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    let m = reject(
        &cloud,
        &demo,
        Some("2.52"),
        body(&cloud, json!({"networks": "auto", "tags": fifty_one})),
        400,
    )
    .await;
    schema_msg(&m, "tags", "is too long");
    for bad in ["a,b", "a/b", ""] {
        let m = reject(
            &cloud,
            &demo,
            Some("2.52"),
            body(&cloud, json!({"networks": "auto", "tags": [bad]})),
            400,
        )
        .await;
        assert!(
            m.starts_with("Invalid input for field/attribute 0."),
            "{bad:?}: {m}"
        );
    }
    let m = reject(
        &cloud,
        &demo,
        Some("2.52"),
        body(
            &cloud,
            json!({"networks": "auto", "tags": ["t".repeat(61)]}),
        ),
        400,
    )
    .await;
    schema_msg(&m, "0", "is too long");
}

#[tokio::test]
async fn block_device_mapping_rules() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let vol = "9b2c6c2a-93f4-4b2e-b5d6-7e6ee3a10c41";
    let img = cloud.image_id();
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({
                "block_device_mapping": [{"volume_id": vol, "device_name": "vdb"}],
                "block_device_mapping_v2": [{"source_type": "volume", "uuid": vol, "destination_type": "volume", "boot_index": 1}],
            }),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Using different block_device_mapping syntaxes is not allowed in the same request."
    );

    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"source_type": "blank", "uuid": vol, "destination_type": "volume", "volume_size": 1}]),
            "Block Device Mapping is Invalid: Invalid device UUID.",
        ),
        (
            json!([{"source_type": "volume", "destination_type": "volume", "boot_index": 0}]),
            "Block Device Mapping is Invalid: Missing device UUID.",
        ),
        (
            json!([{"source_type": "image", "uuid": img, "destination_type": "local", "boot_index": 1}]),
            "Block Device Mapping is Invalid: Mapping image to local is not supported.",
        ),
        (
            json!([{"source_type": "blank", "destination_type": "volume", "boot_index": 0}]),
            "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size",
        ),
        (
            json!([{"source_type": "image", "uuid": img, "destination_type": "volume", "boot_index": 0}]),
            "Images with destination_type 'volume' need to have a non-zero size specified",
        ),
    ];
    for (bdms, want) in cases {
        let m = reject(
            &cloud,
            &demo,
            None,
            body(&cloud, json!({"block_device_mapping_v2": bdms})),
            400,
        )
        .await;
        assert_eq!(m, want, "{bdms}");
    }
    // Boot-from-volume without an image: the boot sequence must start at 0.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"imageRef": "", "block_device_mapping_v2": [
                {"source_type": "volume", "uuid": vol, "destination_type": "volume", "boot_index": 1}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid."
    );
    // Schema: unknown item keys and bad source types.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"block_device_mapping_v2": [{"source_type": "floppy", "uuid": vol}]}),
        ),
        400,
    )
    .await;
    schema_msg(
        &m,
        "source_type",
        "'floppy' is not one of ['volume', 'image', 'snapshot', 'blank']",
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"block_device_mapping": [{"device_name": "vdb"}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Block Device Mapping is Invalid: Unrecognized legacy format."
    );
    // volume_type needs 2.67.
    let m = reject(
        &cloud,
        &demo,
        Some("2.66"),
        body(
            &cloud,
            json!({"networks": "auto", "block_device_mapping_v2": [
                {"source_type": "blank", "destination_type": "volume", "volume_size": 1, "volume_type": "lvm", "boot_index": -1}]}),
        ),
        400,
    )
    .await;
    assert!(m.contains("('volume_type' was unexpected)"), "{m}");
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn lookups_flavor_image_key_az() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"flavorRef": "999"})),
        400,
    )
    .await;
    assert_eq!(m, "Invalid flavorRef provided.");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"imageRef": "8e1a5b1c-0d5c-4c7e-9a3e-1f2e3d4c5b6a"}),
        ),
        400,
    )
    .await;
    assert_eq!(m, "Can not find requested image");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"imageRef": "not-a-uuid"})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "imageRef",
        "is not valid under any of the given schemas",
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"key_name": "nokey"})),
        400,
    )
    .await;
    assert_eq!(m, "Invalid key_name provided.");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"availability_zone": "mars"})),
        400,
    )
    .await;
    assert_eq!(m, "The requested availability zone is not available");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"availability_zone": "a:b:c:d"})),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Invalid input received: Unable to parse availability_zone"
    );
    // Forcing a host needs admin.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"availability_zone": "nova:rova-sim-1"})),
        403,
    )
    .await;
    assert_eq!(
        m,
        "Policy doesn't allow os_compute_api:servers:create:forced_host to be performed."
    );
    assert_nothing_created(&cloud, &demo).await;

    // Each of them, when right, works: a full flavor URL, the AZ, a keypair.
    let r = cloud
        .post(
            &demo,
            "/os-keypairs",
            Some("2.2"),
            json!({"keypair": {"name": "k1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let s = cloud
        .boot(
            &demo,
            "ok",
            None,
            json!({"flavorRef": format!("{}/compute/flavors/42", cloud.base), "availability_zone": "nova", "key_name": "k1"}),
        )
        .await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["flavor"]["id"], "42");
    assert_eq!(s["key_name"], "k1");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova");
    // Another user's keypair is not yours.
    let alt = cloud.login("alt_demo").await;
    let m = reject(
        &cloud,
        &alt,
        None,
        body(&cloud, json!({"key_name": "k1"})),
        400,
    )
    .await;
    assert_eq!(m, "Invalid key_name provided.");
}

#[tokio::test]
async fn access_ips_disk_config_and_config_drive() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"accessIPv4": "1.2.3"})),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Invalid input for field/attribute accessIPv4. Value: 1.2.3. '1.2.3' is not a 'ipv4'"
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"accessIPv6": "1.2.3.4"})),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Invalid input for field/attribute accessIPv6. Value: 1.2.3.4. '1.2.3.4' is not a 'ipv6'"
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"OS-DCF:diskConfig": "auto"})),
        400,
    )
    .await;
    schema_msg(
        &m,
        "OS-DCF:diskConfig",
        "'auto' is not one of ['AUTO', 'MANUAL']",
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"config_drive": "maybe"})),
        400,
    )
    .await;
    schema_msg(&m, "config_drive", "'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']");
    assert_nothing_created(&cloud, &demo).await;

    let s = cloud
        .boot(
            &demo,
            "ips",
            None,
            json!({"accessIPv4": "192.0.2.7", "accessIPv6": "2001:db8::7", "OS-DCF:diskConfig": "AUTO", "config_drive": "yes"}),
        )
        .await;
    assert_eq!(s["accessIPv4"], "192.0.2.7");
    assert_eq!(s["accessIPv6"], "2001:db8::7");
    assert_eq!(s["OS-DCF:diskConfig"], "AUTO");
    assert_eq!(s["config_drive"], "True");
    for (given, shown) in [
        (json!("On"), "True"),
        (json!("No"), ""),
        (json!(false), ""),
        (json!(true), "True"),
    ] {
        let s = cloud
            .boot(&demo, "cd", None, json!({"config_drive": given}))
            .await;
        assert_eq!(s["config_drive"], shown, "config_drive {given}");
    }
    let s = cloud.boot(&demo, "plain", None, json!({})).await;
    assert_eq!(s["accessIPv4"], "");
    assert_eq!(s["accessIPv6"], "");
    assert_eq!(s["config_drive"], "");
}

#[tokio::test]
async fn quota_exceeded_is_403_and_multi_create_shrinks() {
    let cloud = common::start_with(|cfg| cfg.quota.instances = 2).await;
    let demo = cloud.login("demo").await;
    // max_count 3 fits only 2: Nova creates as many as fit (>= min_count).
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"name": "q", "max_count": 3})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let l = cloud.get(&demo, "/servers", None).await;
    assert_eq!(l.body["servers"].as_array().unwrap().len(), 2, "{}", l.text);
    let m = reject(&cloud, &demo, None, body(&cloud, json!({})), 403).await;
    assert_eq!(
        m,
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    );
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 2);
    assert_eq!(lim.body["limits"]["absolute"]["maxTotalInstances"], 2);
    // Still two servers; another project has its own quota.
    let l = cloud.get(&demo, "/servers", None).await;
    assert_eq!(l.body["servers"].as_array().unwrap().len(), 2);
    let alt = cloud.login("alt_demo").await;
    let m = reject(
        &cloud,
        &alt,
        None,
        body(&cloud, json!({"min_count": 3})),
        403,
    )
    .await;
    assert_eq!(
        m,
        "Quota exceeded for instances: Requested 3, but already used 0 of 2 instances"
    );
    let r = create(&cloud, &alt, None, body(&cloud, json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn cores_quota_is_403() {
    let cloud = common::start_with(|cfg| cfg.quota.cores = 3).await;
    let demo = cloud.login("demo").await;
    // m1.medium has 2 vcpus: two of them need 4 cores.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"flavorRef": "3", "min_count": 2})),
        403,
    )
    .await;
    assert_eq!(
        m,
        "Quota exceeded for cores: Requested 4, but already used 0 of 3 cores"
    );
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn rejected_requests_create_nothing() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let bad = [
        (json!({"flavorRef": "999"}), 400),
        (
            json!({"imageRef": "8e1a5b1c-0d5c-4c7e-9a3e-1f2e3d4c5b6a"}),
            400,
        ),
        (json!({"key_name": "none"}), 400),
        (json!({"availability_zone": "mars"}), 400),
        (
            json!({"networks": [{"uuid": "2f4c3a5e-0000-4222-8333-944455556666"}]}),
            400,
        ),
        (json!({"min_count": 11}), 403),
        (json!({"bogus": true}), 400),
    ];
    for (extra, code) in bad {
        reject(&cloud, &demo, None, body(&cloud, extra), code).await;
    }
    assert_nothing_created(&cloud, &demo).await;
    let l = cloud.get(&demo, "/servers", None).await;
    assert_eq!(l.body, json!({"servers": []}));
    // Ports were not left behind either.
    assert!(
        cloud
            .app
            .networks
            .ports
            .all()
            .iter()
            .all(|p| p.device_owner != "compute:nova"),
        "no compute ports after rejected creates"
    );
}

#[tokio::test]
async fn reader_cannot_create() {
    let cloud = common::start().await;
    let reader = cloud.login("demo_reader").await;
    let m = reject(&cloud, &reader, None, body(&cloud, json!({})), 403).await;
    assert_eq!(
        m,
        "Policy doesn't allow os_compute_api:servers:create to be performed."
    );
    assert_nothing_created(&cloud, &reader).await;
}

#[tokio::test]
async fn block_devices_are_checked_against_the_flavor() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let img = cloud.image_id();
    let root =
        json!({"source_type": "image", "uuid": img, "destination_type": "local", "boot_index": 0});
    // m1.tiny has no ephemeral disk and no swap.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"block_device_mapping_v2": [root, {"source_type": "blank", "destination_type": "local", "volume_size": 1, "boot_index": -1}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Ephemeral disks requested are larger than the instance type allows. If no size is given in one block device mapping, flavor ephemeral size will be used."
    );
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"block_device_mapping_v2": [root, {"source_type": "blank", "destination_type": "local", "guest_format": "swap", "volume_size": 1, "boot_index": -1}]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Swap drive requested is larger than instance type allows."
    );
    assert_nothing_created(&cloud, &demo).await;

    // A flavor with 2 GB ephemeral and 512 MB swap takes them.
    let admin = cloud.login("admin").await;
    let r = cloud
        .post(
            &admin,
            "/flavors",
            None,
            json!({"flavor": {"name": "eph", "id": "eph", "ram": 512, "vcpus": 1, "disk": 1,
                              "OS-FLV-EXT-DATA:ephemeral": 2, "swap": 512}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let eph = json!({"source_type": "blank", "destination_type": "local", "volume_size": 1, "boot_index": -1});
    let swap = json!({"source_type": "blank", "destination_type": "local", "guest_format": "swap", "volume_size": 512, "boot_index": -1});
    let s = cloud
        .boot(
            &demo,
            "bdm",
            None,
            json!({"flavorRef": "eph", "block_device_mapping_v2": [root, eph, swap]}),
        )
        .await;
    assert_eq!(s["status"], "ACTIVE");
    // Three ephemeral GB do not fit in two; four local devices exceed the limit of 3.
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"flavorRef": "eph", "block_device_mapping_v2": [root, eph, eph, eph]}),
        ),
        400,
    )
    .await;
    assert!(m.starts_with("Ephemeral disks requested are larger"), "{m}");
    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"flavorRef": "eph", "block_device_mapping_v2": [root, eph, eph, swap]}),
        ),
        400,
    )
    .await;
    assert_eq!(
        m,
        "Block Device Mapping is Invalid: You specified more local devices than the limit allows"
    );
}

#[tokio::test]
async fn security_groups_are_echoed_as_requested() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let twice = json!([{"name": "default"}, {"name": "default"}]);
    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"security_groups": twice})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        r.body["server"]["security_groups"], twice,
        "the request's list, as sent"
    );
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = cloud.wait_status(&demo, &id, &["ACTIVE"], None).await;
    assert_eq!(
        s["security_groups"],
        json!([{"name": "default"}]),
        "stored once"
    );

    let r = create(
        &cloud,
        &demo,
        None,
        body(&cloud, json!({"security_groups": []})),
    )
    .await;
    assert_eq!(r.body["server"]["security_groups"], json!([]));
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = cloud.wait_status(&demo, &id, &["ACTIVE"], None).await;
    assert_eq!(
        s["security_groups"],
        json!([{"name": "default"}]),
        "no groups means default"
    );

    let m = reject(
        &cloud,
        &demo,
        None,
        body(
            &cloud,
            json!({"security_groups": [{"name": "default", "id": "x"}]}),
        ),
        400,
    )
    .await;
    schema_msg(
        &m,
        "0",
        "Additional properties are not allowed ('id' was unexpected)",
    );
}

#[tokio::test]
async fn non_json_bodies() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let send = |ct: &'static str, body: &'static str| {
        let req = cloud
            .http
            .post(format!("{}/compute/v2.1/servers", cloud.base))
            .header("X-Auth-Token", &demo.token)
            .header("Content-Type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v)
        }
    };
    let (st, v) = send("application/xml", "<server/>").await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        v,
        json!({"badMediaType": {"code": 415, "message": "Unsupported Content-Type"}})
    );
    let (st, v) = send("application/json", "").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"badRequest": {"code": 400, "message": "Malformed request body"}})
    );
    let (st, v) = send("application/json", "[1]").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["badRequest"]["message"], "[1] is not of type 'object'");
    assert_nothing_created(&cloud, &demo).await;
}

#[tokio::test]
async fn requested_destination_needs_admin() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for extra in [
        json!({"host": "rova-sim-1"}),
        json!({"hypervisor_hostname": "rova-sim-1"}),
    ] {
        let mut b = body(&cloud, json!({"networks": "auto"}));
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let m = reject(&cloud, &demo, Some("2.74"), b.clone(), 403).await;
        assert_eq!(
            m,
            "Policy doesn't allow compute:servers:create:requested_destination to be performed."
        );
        // Below 2.74 the keys do not exist.
        let m = reject(&cloud, &demo, Some("2.73"), b, 400).await;
        assert!(m.contains("was unexpected"), "{m}");
    }
    let m = reject(
        &cloud,
        &demo,
        Some("2.74"),
        body(&cloud, json!({"networks": "auto", "host": "bad host"})),
        400,
    )
    .await;
    schema_msg(&m, "host", "does not match '^[a-zA-Z0-9-._]*$'");
    assert_nothing_created(&cloud, &demo).await;
}

/// Every body seen while a server builds, then once it is ACTIVE, and again
/// while it rebuilds: `progress` is 0 throughout, as Nova's drivers leave it
/// (only resize and migration move it). A non-zero value makes
/// `openstack server create --wait -f value -c id` print "Progress: N" into
/// the captured id.
#[tokio::test]
async fn progress_stays_zero_while_building_and_rebuilding() {
    let c = common::start_with(|cfg| cfg.sim_latency_ms = 20).await;
    let u = c.login("demo").await;
    let r = c
        .post(&u, "/servers", None, json!({"server": body(&c, json!({}))}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["server"]["id"].as_str().expect("id").to_string();

    // polls until `until` is seen; returns the statuses seen and every progress
    let watch = |until: &'static str| {
        let (c, u, id) = (&c, &u, &id);
        async move {
            let (mut statuses, mut progress) = (Vec::new(), Vec::new());
            for _ in 0..2000 {
                let s = c.get(u, &format!("/servers/{id}"), None).await.body["server"].clone();
                let st = s["status"].as_str().unwrap_or_default().to_string();
                if let Some(p) = s.get("progress") {
                    progress.push((st.clone(), p.clone()));
                }
                let done = st == until;
                statuses.push(st);
                if done {
                    return (statuses, progress);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            panic!("server never reached {until}: {statuses:?}");
        }
    };
    let (statuses, progress) = watch("ACTIVE").await;
    assert!(
        statuses.iter().any(|s| s == "BUILD"),
        "the build was observed: {statuses:?}"
    );
    assert!(progress.iter().all(|(_, p)| *p == json!(0)), "{progress:?}");
    assert_eq!(progress.last().map(|(s, _)| s.as_str()), Some("ACTIVE"));

    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            None,
            json!({"rebuild": {"imageRef": c.image_id()}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let (statuses, progress) = watch("ACTIVE").await;
    assert!(
        statuses.iter().any(|s| s == "REBUILD"),
        "the rebuild was observed: {statuses:?}"
    );
    assert!(progress.iter().all(|(_, p)| *p == json!(0)), "{progress:?}");
}
