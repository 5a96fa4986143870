//! Unit tests for POST /servers validation (`create.rs`), by rule and by
//! microversion boundary.

use super::*;
use serde_json::json;

const IMG: &str = "70a599e0-31e7-49b7-b260-868f441e862b";
const NET: &str = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";
const PORT: &str = "ce531f90-199f-48c0-816c-13e38010b442";
const PORT2: &str = "ce531f90-199f-48c0-816c-13e38010b443";
const VOL: &str = "5ab1c8e4-16d0-4b18-9d2e-3f6c1a7e4b2d";

fn mv(minor: u32) -> Microversion {
    Microversion::new(2, minor)
}

/// A minimal valid server object for the version (networks at 2.37+).
fn base(minor: u32) -> Value {
    let mut s = json!({"name": "vm", "imageRef": IMG, "flavorRef": "1"});
    if minor >= 37 {
        s["networks"] = json!("auto");
    }
    s
}

fn with(minor: u32, extra: Value) -> Value {
    let mut s = base(minor);
    if let (Some(obj), Some(add)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in add {
            if v.is_null() && k.starts_with('-') {
                obj.remove(&k[1..]);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    json!({ "server": s })
}

fn ok(body: Value, minor: u32) -> CreateServer {
    match parse_create(&body, mv(minor), &CreateLimits::default()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected fault at 2.{minor}: {e}"),
    }
}

fn err(body: Value, minor: u32) -> (u16, String) {
    let e = parse_create(&body, mv(minor), &CreateLimits::default()).expect_err("expected a fault");
    (e.code, e.message)
}

fn unexpected(key: &str) -> String {
    format!("Additional properties are not allowed ('{key}' was unexpected)")
}

#[test]
fn minimal_request_and_defaults() {
    let c = ok(with(1, json!({})), 1);
    assert_eq!(c.name, "vm");
    assert_eq!(c.image_ref.as_deref(), Some(IMG));
    assert_eq!(c.flavor_ref, "1");
    assert_eq!(c.min_count, 1);
    assert_eq!(c.max_count, 1);
    assert_eq!(c.networks, NetworksRequest::Unspecified);
    assert!(!c.config_drive);
    assert!(!c.return_reservation_id);
    assert!(c.metadata.is_empty());
    assert!(c.block_device_mapping.is_empty());
    assert!(!c.legacy_bdm);
    assert_eq!(c.security_groups, None);
    assert_eq!(c.description.as_deref(), Some("vm"));
    assert!(c.scheduler_hints.is_empty());
}

#[test]
fn envelope_rules() {
    assert_eq!(
        err(json!({}), 1),
        (400, "'server' is a required property".into())
    );
    assert_eq!(err(json!([]), 1).1, "[] is not of type 'object'");
    assert_eq!(
        err(json!({"server": base(1), "foo": 1}), 1).1,
        unexpected("foo")
    );
    assert_eq!(
        err(json!({"server": "x"}), 1).1,
        "Invalid input for field/attribute server. Value: x. 'x' is not of type 'object'"
    );
    // The server property is checked before the envelope's extras.
    assert_eq!(
        err(json!({"server": {"name": ""}, "foo": 1}), 1).1,
        "Invalid input for field/attribute name. Value: . '' should be non-empty"
    );
}

#[test]
fn unknown_server_key() {
    let (code, msg) = err(with(1, json!({"foo": "bar"})), 1);
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        format!(
            "Invalid input for field/attribute server. Value: {{'flavorRef': '1', 'foo': 'bar', 'imageRef': '{IMG}', 'name': 'vm'}}. {}",
            unexpected("foo")
        )
    );
    let (_, msg) = err(with(1, json!({"foo": 1, "bar": 2})), 1);
    assert!(msg.ends_with("Additional properties are not allowed ('bar', 'foo' were unexpected)"));
}

#[test]
fn required_keys() {
    let (code, msg) = err(json!({"server": {"flavorRef": "1"}}), 1);
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "Invalid input for field/attribute server. Value: {'flavorRef': '1'}. 'name' is a required property"
    );
    assert!(err(json!({"server": {"name": "a"}}), 1)
        .1
        .ends_with("'flavorRef' is a required property"));
    // networks becomes required at 2.37.
    let no_net = json!({"server": {"name": "a", "flavorRef": "1", "imageRef": IMG}});
    assert_eq!(
        ok(no_net.clone(), 36).networks,
        NetworksRequest::Unspecified
    );
    assert!(err(no_net, 37)
        .1
        .ends_with("'networks' is a required property"));
}

#[test]
fn names() {
    assert_eq!(
        err(with(1, json!({"name": " vm"})), 1),
        (400, fields::INVALID_NAME.into())
    );
    assert_eq!(
        err(with(1, json!({"name": "vm "})), 1).1,
        "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace."
    );
    assert_eq!(
        err(with(1, json!({"name": ""})), 1).1,
        "Invalid input for field/attribute name. Value: . '' should be non-empty"
    );
    assert!(err(with(1, json!({"name": "n".repeat(256)})), 1)
        .1
        .ends_with("is too long"));
    assert_eq!(
        ok(with(1, json!({"name": "n".repeat(255)})), 1).name.len(),
        255
    );
    assert_eq!(ok(with(1, json!({"name": "a  b"})), 1).name, "a  b");
}

#[test]
fn image_ref_rules() {
    assert_eq!(
        err(with(1, json!({"imageRef": "not-a-uuid"})), 1).1,
        "Invalid input for field/attribute imageRef. Value: not-a-uuid. 'not-a-uuid' is not valid under any of the given schemas"
    );
    assert_eq!(
        err(with(1, json!({"imageRef": "http://glance/images/x"})), 1).0,
        400
    );
    assert_eq!(
        err(with(1, json!({"-imageRef": null})), 1),
        (400, "Missing imageRef attribute".into())
    );
    assert_eq!(
        err(with(1, json!({"imageRef": ""})), 1).1,
        "Missing imageRef attribute"
    );
    let bfv = json!({"imageRef": "", "block_device_mapping_v2": [
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(ok(with(1, bfv), 1).image_ref, None);
    let bfv = json!({"-imageRef": null, "block_device_mapping_v2": [
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(ok(with(1, bfv), 1).image_ref, None);
}

#[test]
fn flavor_ref_forms() {
    assert_eq!(ok(with(1, json!({"flavorRef": 42})), 1).flavor_ref, "42");
    assert_eq!(
        ok(
            with(1, json!({"flavorRef": "http://nova/v2.1/flavors/abc?x=1"})),
            1
        )
        .flavor_ref,
        "abc"
    );
    assert_eq!(
        ok(with(1, json!({"flavorRef": "flavors/7"})), 1).flavor_ref,
        "7"
    );
    assert_eq!(
        err(with(1, json!({"flavorRef": ""})), 1).1,
        "Invalid input for field/attribute flavorRef. Value: . '' should be non-empty"
    );
    assert!(err(with(1, json!({"flavorRef": [1]})), 1)
        .1
        .ends_with("is not of type 'string', 'integer'"));
    assert_eq!(id_from_href("https://h:8774/v2.1/flavors/3#frag"), "3");
    assert_eq!(id_from_href("3"), "3");
}

#[test]
fn admin_pass_and_key_name() {
    let c = ok(with(1, json!({"adminPass": "", "key_name": "k1"})), 1);
    assert_eq!(c.admin_pass.as_deref(), Some(""));
    assert_eq!(c.key_name.as_deref(), Some("k1"));
    assert!(err(with(1, json!({"adminPass": 5})), 1)
        .1
        .ends_with("5 is not of type 'string'"));
    assert!(err(with(1, json!({"key_name": ""})), 1)
        .1
        .ends_with("'' should be non-empty"));
    assert_eq!(
        err(with(1, json!({"key_name": " k"})), 1).1,
        fields::INVALID_NAME
    );
}

#[test]
fn metadata_rules() {
    let c = ok(with(1, json!({"metadata": {"a": "1", "b": ""}})), 1);
    assert_eq!(c.metadata.len(), 2);
    assert_eq!(
        err(with(1, json!({"metadata": {"a/b": "1"}})), 1).1,
        "Invalid input for field/attribute metadata. Value: {'a/b': '1'}. 'a/b' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'"
    );
    assert_eq!(
        err(with(1, json!({"metadata": {"k": "v".repeat(256)}})), 1).0,
        400
    );
    assert_eq!(
        err(with(1, json!({"metadata": {"k".repeat(256): "v"}})), 1).0,
        400
    );
    let many: Map<String, Value> = (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(
        err(with(1, json!({ "metadata": many })), 1),
        (403, "Maximum number of metadata items exceeds 128".into())
    );
    let limits = CreateLimits {
        metadata_items: 1,
        ..Default::default()
    };
    let e = parse_create(
        &with(1, json!({"metadata": {"a": "1", "b": "2"}})),
        mv(1),
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (403, "Maximum number of metadata items exceeds 1")
    );
}

#[test]
fn personality_rules_and_2_57_boundary() {
    let file = json!([{"path": "/etc/motd", "contents": "aGVsbG8="}]);
    let c = ok(with(56, json!({ "personality": file })), 56);
    assert_eq!(c.personality.len(), 1);
    assert_eq!(c.personality[0].path, "/etc/motd");
    assert_eq!(c.personality[0].contents, "aGVsbG8=");
    let (code, msg) = err(with(57, json!({ "personality": file })), 57);
    assert_eq!(code, 400);
    assert!(msg.ends_with(&unexpected("personality")));

    assert_eq!(
        err(
            with(
                1,
                json!({"personality": [{"path": "/a", "contents": "abc"}]})
            ),
            1
        )
        .1,
        "Invalid input for field/attribute contents. Value: abc. 'abc' is not a 'base64'"
    );
    assert_eq!(
        err(with(1, json!({"personality": [{"path": "/a", "contents": "", "mode": 1}]})), 1).1,
        format!("Invalid input for field/attribute 0. Value: {{'contents': '', 'mode': 1, 'path': '/a'}}. {}", unexpected("mode"))
    );
    assert!(err(with(1, json!({"personality": [{"contents": ""}]})), 1)
        .1
        .ends_with("'path' is a required property"));

    let six: Vec<Value> = (0..6)
        .map(|i| json!({"path": format!("/f{i}"), "contents": ""}))
        .collect();
    assert_eq!(
        err(with(1, json!({ "personality": six })), 1),
        (403, "Personality file limit exceeded".into())
    );
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"path": format!("/f{i}"), "contents": ""}))
        .collect();
    assert_eq!(
        ok(with(1, json!({ "personality": five })), 1)
            .personality
            .len(),
        5
    );
    let long_path = format!("/{}", "p".repeat(255));
    assert_eq!(
        err(
            with(
                1,
                json!({"personality": [{"path": long_path, "contents": ""}]})
            ),
            1
        ),
        (403, "Personality file path exceeds maximum 255".into())
    );
    // The limit applies to the base64 text as sent, not the decoded bytes:
    // 10240 base64 characters decode to 7680 bytes and still pass, 10244 fail.
    let at_limit = "QUJD".repeat(2560);
    assert_eq!(at_limit.len(), 10240);
    assert!(parse_create(
        &with(
            1,
            json!({"personality": [{"path": "/a", "contents": at_limit}]})
        ),
        mv(1),
        &CreateLimits::default()
    )
    .is_ok());
    let over = "QUJD".repeat(2561);
    assert_eq!(
        err(
            with(
                1,
                json!({"personality": [{"path": "/a", "contents": over}]})
            ),
            1
        ),
        (403, "Personality file content exceeds maximum 10240".into())
    );
    // Path is reported before content when both are over.
    let both = json!({"personality": [{"path": "/".repeat(300), "contents": "QUJD".repeat(2561)}]});
    assert_eq!(
        err(with(1, both), 1).1,
        "Personality file path exceeds maximum 255"
    );
}

#[test]
fn user_data_rules() {
    assert_eq!(
        ok(with(1, json!({"user_data": "aGk="})), 1)
            .user_data
            .as_deref(),
        Some("aGk=")
    );
    assert_eq!(
        err(with(1, json!({"user_data": null})), 1).1,
        "Invalid input for field/attribute user_data. Value: None. None is not of type 'string'"
    );
    assert_eq!(
        err(with(90, json!({"user_data": null})), 90).1,
        "Invalid input for field/attribute user_data. Value: None. None is not of type 'string'"
    );
    assert_eq!(
        err(with(1, json!({"user_data": "not base64!"})), 1).1,
        "Invalid input for field/attribute user_data. Value: not base64!. 'not base64!' is not a 'base64'"
    );
    let max = "A".repeat(65532) + "AAA=";
    assert_eq!(max.len(), 65536);
    let (code, msg) = err(with(1, json!({ "user_data": max })), 1);
    assert_eq!(code, 400);
    assert!(msg.ends_with("is too long"));
    let fits = "A".repeat(65532);
    assert!(parse_create(
        &with(1, json!({ "user_data": fits })),
        mv(1),
        &CreateLimits::default()
    )
    .is_ok());
}

#[test]
fn access_ips_and_disk_config() {
    let c = ok(
        with(
            1,
            json!({"accessIPv4": "192.168.0.10", "accessIPv6": "fe80::1", "OS-DCF:diskConfig": "MANUAL"}),
        ),
        1,
    );
    assert_eq!(c.access_ip_v4.as_deref(), Some("192.168.0.10"));
    assert_eq!(c.access_ip_v6.as_deref(), Some("fe80::1"));
    assert_eq!(c.auto_disk_config, Some(false));
    assert_eq!(
        err(with(1, json!({"accessIPv6": "1.1.1.1.1"})), 1).1,
        "Invalid input for field/attribute accessIPv6. Value: 1.1.1.1.1. '1.1.1.1.1' is not a 'ipv6'"
    );
    assert_eq!(
        err(with(1, json!({"accessIPv4": "1.1.1"})), 1).1,
        "Invalid input for field/attribute accessIPv4. Value: 1.1.1. '1.1.1' is not a 'ipv4'"
    );
    assert_eq!(
        err(with(1, json!({"OS-DCF:diskConfig": "BAD"})), 1).1,
        "Invalid input for field/attribute OS-DCF:diskConfig. Value: BAD. 'BAD' is not one of ['AUTO', 'MANUAL']"
    );
}

#[test]
fn config_drive_and_reservation_id() {
    assert!(ok(with(1, json!({"config_drive": true})), 1).config_drive);
    assert!(ok(with(1, json!({"config_drive": "yes"})), 1).config_drive);
    assert!(!ok(with(1, json!({"config_drive": "False"})), 1).config_drive);
    assert!(!ok(with(1, json!({"config_drive": "0"})), 1).config_drive);
    assert!(err(with(1, json!({"config_drive": "maybe"})), 1)
        .1
        .contains("'maybe' is not one of [True, 'True'"));
    assert!(ok(with(1, json!({"return_reservation_id": true})), 1).return_reservation_id);
    assert!(!ok(with(1, json!({"return_reservation_id": false})), 1).return_reservation_id);
    // Raw truthiness: the string "False" counts as true.
    assert!(ok(with(1, json!({"return_reservation_id": "False"})), 1).return_reservation_id);
    assert_eq!(
        err(with(1, json!({"return_reservation_id": "x"})), 1).0,
        400
    );
}

#[test]
fn min_and_max_count() {
    let c = ok(with(1, json!({"min_count": "2", "max_count": 3})), 1);
    assert_eq!((c.min_count, c.max_count), (2, 3));
    let c = ok(with(1, json!({"min_count": 3})), 1);
    assert_eq!((c.min_count, c.max_count), (3, 3));
    let c = ok(with(1, json!({"max_count": 4})), 1);
    assert_eq!((c.min_count, c.max_count), (1, 4));
    assert_eq!(
        err(with(1, json!({"min_count": 3, "max_count": 2})), 1),
        (400, "min_count must be <= max_count".into())
    );
    assert_eq!(
        err(with(1, json!({"min_count": 0})), 1).1,
        "Invalid input for field/attribute min_count. Value: 0. 0 is less than the minimum of 1"
    );
    assert_eq!(
        err(with(1, json!({"max_count": "abc"})), 1).1,
        "Invalid input for field/attribute max_count. Value: abc. 'abc' does not match '^[0-9]*$'"
    );
    assert!(err(with(1, json!({"max_count": -1})), 1)
        .1
        .ends_with("-1 is less than the minimum of 1"));
}

#[test]
fn networks_before_2_37() {
    let c = ok(
        with(
            1,
            json!({"networks": [{"uuid": NET, "fixed_ip": "10.0.0.5"}, {"port": PORT}, {"uuid": NET, "port": null}]}),
        ),
        1,
    );
    let NetworksRequest::List(list) = c.networks else {
        panic!("list expected")
    };
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].uuid.as_deref(), Some(NET));
    assert_eq!(list[0].fixed_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        list[1],
        NetworkRequest {
            port: Some(PORT.into()),
            ..Default::default()
        }
    );
    assert_eq!(list[2].uuid.as_deref(), Some(NET));
    assert_eq!(
        ok(with(1, json!({"networks": []})), 1).networks,
        NetworksRequest::List(vec![])
    );

    assert_eq!(
        err(with(1, json!({"networks": [{"uuid": "foo"}]})), 1),
        (
            400,
            "Bad networks format: network uuid is not in proper format (foo)".into()
        )
    );
    assert_eq!(
        err(with(36, json!({"networks": [{"uuid": "auto"}]})), 36).1,
        "Bad networks format: network uuid is not in proper format (auto)"
    );
    assert_eq!(
        err(with(1, json!({"networks": [{"fixed_ip": "10.0.0.5"}]})), 1),
        (400, "Bad network format: missing 'uuid'".into())
    );
    assert_eq!(
        err(with(1, json!({"networks": [{}]})), 1).1,
        "Bad network format: missing 'uuid'"
    );
    assert_eq!(
        err(
            with(1, json!({"networks": [{"port": PORT}, {"port": PORT}]})),
            1
        )
        .1,
        format!("Port ID '{PORT}' was specified twice: you cannot attach a port multiple times.")
    );
    assert_eq!(
        err(with(1, json!({"networks": [{"port": PORT, "fixed_ip": "10.0.0.5"}]})), 1).1,
        format!("Specified Fixed IP '10.0.0.5' cannot be used with port '{PORT}': the two cannot be specified together.")
    );
    assert_eq!(
        err(with(1, json!({"networks": [{"port": "nope"}]})), 1).1,
        "Invalid input for field/attribute port. Value: nope. 'nope' is not a 'uuid'"
    );
    assert_eq!(
        err(with(1, json!({"networks": [{"uuid": NET, "fixed_ip": "x"}]})), 1).1,
        "Invalid input for field/attribute fixed_ip. Value: x. 'x' is not valid under any of the given schemas"
    );
    assert_eq!(
        err(with(1, json!({"networks": "auto"})), 1).1,
        "Invalid input for field/attribute networks. Value: auto. 'auto' is not of type 'array'"
    );
    assert_eq!(
        err(with(1, json!({"networks": [{"uuid": NET, "foo": 1}]})), 1).1,
        format!(
            "Invalid input for field/attribute 0. Value: {{'foo': 1, 'uuid': '{NET}'}}. {}",
            unexpected("foo")
        )
    );
}

#[test]
fn networks_from_2_37() {
    assert_eq!(
        ok(with(37, json!({"networks": "auto"})), 37).networks,
        NetworksRequest::Auto
    );
    assert_eq!(
        ok(with(37, json!({"networks": "none"})), 37).networks,
        NetworksRequest::None
    );
    assert_eq!(
        err(with(37, json!({"networks": "AUTO"})), 37).1,
        "Invalid input for field/attribute networks. Value: AUTO. 'AUTO' is not valid under any of the given schemas"
    );
    assert_eq!(
        err(with(37, json!({"networks": [{"uuid": "foo"}]})), 37).1,
        "Invalid input for field/attribute networks. Value: [{'uuid': 'foo'}]. [{'uuid': 'foo'}] is not valid under any of the given schemas"
    );
    let list = ok(with(37, json!({"networks": [{"uuid": NET}]})), 37).networks;
    assert_eq!(
        list,
        NetworksRequest::List(vec![NetworkRequest {
            uuid: Some(NET.into()),
            ..Default::default()
        }])
    );
    assert_eq!(
        err(
            with(37, json!({"networks": [{"fixed_ip": "10.0.0.1"}]})),
            37
        )
        .1,
        "Bad network format: missing 'uuid'"
    );
    assert!(err(
        with(37, json!({"networks": [{"port": PORT}, {"port": PORT}]})),
        37
    )
    .1
    .contains("was specified twice"));
}

#[test]
fn network_tag_versions() {
    let tagged = json!({"networks": [{"uuid": NET, "tag": "nic1"}]});
    assert!(err(with(31, tagged.clone()), 31)
        .1
        .ends_with(&unexpected("tag")));
    for minor in [32, 33, 36] {
        let c = ok(with(minor, tagged.clone()), minor);
        let NetworksRequest::List(list) = c.networks else {
            panic!("list expected")
        };
        assert_eq!(list[0].tag.as_deref(), Some("nic1"), "2.{minor}");
    }
    for minor in [37, 41] {
        assert!(err(with(minor, tagged.clone()), minor)
            .1
            .ends_with("is not valid under any of the given schemas"));
    }
    let c = ok(with(42, tagged.clone()), 42);
    let NetworksRequest::List(list) = c.networks else {
        panic!("list expected")
    };
    assert_eq!(list[0].tag.as_deref(), Some("nic1"));
    assert_eq!(
        err(
            with(33, json!({"networks": [{"uuid": NET, "tag": "a/b"}]})),
            33
        )
        .1,
        "Invalid input for field/attribute tag. Value: a/b. 'a/b' does not match '^[^,/]*$'"
    );
}

#[test]
fn multiple_create_conflicts() {
    assert_eq!(
        err(with(1, json!({"max_count": 2, "networks": [{"uuid": NET, "fixed_ip": "10.0.0.5"}]})), 1),
        (
            400,
            "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.".into()
        )
    );
    assert_eq!(
        err(with(1, json!({"max_count": 2, "networks": [{"port": PORT}]})), 1).1,
        "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports."
    );
    assert!(
        ok(
            with(
                1,
                json!({"max_count": 1, "networks": [{"port": PORT}, {"port": PORT2}]})
            ),
            1
        )
        .networks
            != NetworksRequest::Unspecified
    );
    assert_eq!(
        ok(with(37, json!({"max_count": 3, "networks": "auto"})), 37).max_count,
        3
    );
}

#[test]
fn security_groups() {
    let c = ok(
        with(
            1,
            json!({"security_groups": [{"name": "web"}, {"name": "default"}, {"name": "web"}, {}]}),
        ),
        1,
    );
    assert_eq!(
        c.security_groups,
        Some(vec!["web".to_string(), "default".to_string()])
    );
    assert_eq!(
        ok(with(1, json!({"security_groups": []})), 1).security_groups,
        Some(vec![])
    );
    assert_eq!(
        err(
            with(1, json!({"security_groups": [{"name": "a", "id": 1}]})),
            1
        )
        .1,
        format!(
            "Invalid input for field/attribute 0. Value: {{'id': 1, 'name': 'a'}}. {}",
            unexpected("id")
        )
    );
    assert_eq!(
        err(with(1, json!({"security_groups": [{"name": ""}]})), 1).1,
        "Invalid input for field/attribute name. Value: . '' should be non-empty"
    );
    assert_eq!(
        err(with(1, json!({"security_groups": ["web"]})), 1).1,
        "Invalid input for field/attribute 0. Value: web. 'web' is not of type 'object'"
    );
}

#[test]
fn availability_zone_forms() {
    let c = ok(with(1, json!({"availability_zone": "nova"})), 1);
    assert_eq!(c.availability_zone.as_deref(), Some("nova"));
    assert_eq!(
        (c.forced_host.as_deref(), c.forced_node.as_deref()),
        (None, None)
    );
    let c = ok(with(1, json!({"availability_zone": "nova:host1"})), 1);
    assert_eq!(c.availability_zone.as_deref(), Some("nova"));
    assert_eq!(c.forced_host.as_deref(), Some("host1"));
    let c = ok(with(1, json!({"availability_zone": "nova:host1:node1"})), 1);
    assert_eq!(c.forced_host.as_deref(), Some("host1"));
    assert_eq!(c.forced_node.as_deref(), Some("node1"));
    let c = ok(with(1, json!({"availability_zone": "nova::node1"})), 1);
    assert_eq!(
        (c.forced_host.as_deref(), c.forced_node.as_deref()),
        (None, Some("node1"))
    );
    let c = ok(with(1, json!({"availability_zone": ":host1"})), 1);
    assert_eq!(
        (c.availability_zone.as_deref(), c.forced_host.as_deref()),
        (None, Some("host1"))
    );
    assert_eq!(
        err(with(1, json!({"availability_zone": "a:b:c:d"})), 1),
        (
            400,
            "Invalid input received: Unable to parse availability_zone".into()
        )
    );
    assert_eq!(
        err(with(1, json!({"availability_zone": " nova"})), 1).1,
        fields::INVALID_NAME
    );
    assert!(err(with(1, json!({"availability_zone": ""})), 1)
        .1
        .ends_with("'' should be non-empty"));
}

#[test]
fn description_boundary_2_19() {
    assert!(err(with(18, json!({"description": "d"})), 18)
        .1
        .ends_with(&unexpected("description")));
    assert_eq!(
        ok(with(18, json!({})), 18).description.as_deref(),
        Some("vm")
    );
    assert_eq!(ok(with(19, json!({})), 19).description, None);
    assert_eq!(
        ok(with(19, json!({"description": null})), 19).description,
        None
    );
    assert_eq!(
        ok(with(19, json!({"description": ""})), 19)
            .description
            .as_deref(),
        Some("")
    );
    assert_eq!(
        ok(with(19, json!({"description": "text"})), 19)
            .description
            .as_deref(),
        Some("text")
    );
    assert!(err(with(19, json!({"description": "d".repeat(256)})), 19)
        .1
        .ends_with("is too long"));
    let (code, msg) = err(with(19, json!({"description": "bad\u{7}"})), 19);
    assert_eq!(code, 400);
    assert!(msg.starts_with("Invalid input for field/attribute description."));
}

#[test]
fn tags_boundary_2_52() {
    assert!(err(with(51, json!({"tags": ["a"]})), 51)
        .1
        .ends_with(&unexpected("tags")));
    assert_eq!(
        ok(with(52, json!({"tags": ["a", "b", "a"]})), 52).tags,
        vec!["a", "b"]
    );
    assert_eq!(
        err(with(52, json!({"tags": ["a,b"]})), 52).1,
        "Invalid input for field/attribute 0. Value: a,b. 'a,b' does not match '^[^,/]*$'"
    );
    assert!(err(with(52, json!({"tags": ["x".repeat(61)]})), 52)
        .1
        .ends_with("is too long"));
    assert!(err(with(52, json!({"tags": [""]})), 52)
        .1
        .ends_with("'' should be non-empty"));
    let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
    assert!(err(with(52, json!({ "tags": many })), 52)
        .1
        .starts_with("Invalid input for field/attribute tags."));
}

#[test]
fn trusted_certs_boundary_2_63() {
    let certs = json!({"trusted_image_certificates": ["cert-1", "cert-2"]});
    assert!(err(with(62, certs.clone()), 62)
        .1
        .ends_with(&unexpected("trusted_image_certificates")));
    assert_eq!(
        ok(with(63, certs), 63).trusted_image_certificates,
        Some(vec!["cert-1".to_string(), "cert-2".to_string()])
    );
    assert_eq!(
        ok(with(63, json!({"trusted_image_certificates": null})), 63).trusted_image_certificates,
        None
    );
    assert_eq!(
        err(with(63, json!({"trusted_image_certificates": []})), 63).1,
        "Invalid input for field/attribute trusted_image_certificates. Value: []. [] should be non-empty"
    );
    assert_eq!(
        err(with(63, json!({"trusted_image_certificates": ["a", "a"]})), 63).1,
        "Invalid input for field/attribute trusted_image_certificates. Value: ['a', 'a']. ['a', 'a'] has non-unique elements"
    );
    assert_eq!(
        err(with(63, json!({"trusted_image_certificates": [""]})), 63).1,
        "Invalid input for field/attribute 0. Value: . '' should be non-empty"
    );
    let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
    assert!(
        err(with(63, json!({ "trusted_image_certificates": many })), 63)
            .1
            .ends_with("is too long")
    );
    let bfv = json!({"-imageRef": null, "trusted_image_certificates": ["c"], "block_device_mapping_v2": [
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(
        err(with(63, bfv), 63),
        (
            400,
            "Image certificate validation is not supported when booting from volume".into()
        )
    );
}

#[test]
fn host_and_hypervisor_boundary_2_74() {
    let req = json!({"host": "compute-1", "hypervisor_hostname": "node-1.example"});
    let (_, msg) = err(with(73, req.clone()), 73);
    assert!(msg.ends_with(
        "Additional properties are not allowed ('host', 'hypervisor_hostname' were unexpected)"
    ));
    let c = ok(with(74, req), 74);
    assert_eq!(c.requested_host.as_deref(), Some("compute-1"));
    assert_eq!(
        c.requested_hypervisor_hostname.as_deref(),
        Some("node-1.example")
    );
    assert_eq!(
        err(with(74, json!({"host": "bad host"})), 74).1,
        "Invalid input for field/attribute host. Value: bad host. 'bad host' does not match '^[a-zA-Z0-9-._]*$'"
    );
    assert_eq!(
        err(with(74, json!({"host": "h1", "availability_zone": "nova:h2"})), 74),
        (
            400,
            "One mechanism with host and/or hypervisor_hostname and another mechanism with zone:host:node are mutually exclusive.".into()
        )
    );
    assert!(ok(
        with(74, json!({"host": "h1", "availability_zone": "nova"})),
        74
    )
    .requested_host
    .is_some());
}

#[test]
fn hostname_boundaries_2_90_and_2_94() {
    assert!(err(with(89, json!({"hostname": "web"})), 89)
        .1
        .ends_with(&unexpected("hostname")));
    assert_eq!(
        ok(with(90, json!({"hostname": "web-1"})), 90)
            .hostname
            .as_deref(),
        Some("web-1")
    );
    assert_eq!(
        err(with(90, json!({"hostname": "w"})), 90).1,
        "Invalid input for field/attribute hostname. Value: w. 'w' does not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'"
    );
    assert!(err(with(93, json!({"hostname": "web.example.org"})), 93)
        .1
        .contains("does not match"));
    assert_eq!(
        ok(with(94, json!({"hostname": "web.example.org"})), 94)
            .hostname
            .as_deref(),
        Some("web.example.org")
    );
    assert_eq!(
        ok(with(94, json!({"hostname": "w"})), 94)
            .hostname
            .as_deref(),
        Some("w")
    );
    assert!(err(with(94, json!({"hostname": "h".repeat(256)})), 94)
        .1
        .ends_with("is too long"));
    assert_eq!(
        err(with(90, json!({"hostname": "web-1", "max_count": 2})), 90),
        (
            400,
            "Unable to allocate a single hostname to multiple instances".into()
        )
    );
    assert!(ok(
        with(
            90,
            json!({"hostname": "web-1", "min_count": 1, "max_count": 1})
        ),
        90
    )
    .hostname
    .is_some());
}

#[test]
fn scheduler_hints() {
    let body = json!({"server": base(1), "os:scheduler_hints": {
        "group": NET, "same_host": [IMG], "different_host": IMG, "query": "[\"=\", 1, 1]",
        "target_cell": "cell1", "different_cell": ["c"], "build_near_host_ip": "10.0.0.1",
        "cidr": "/24", "custom": {"any": "thing"}, "_nova_check_type": "x"}});
    let c = ok(body, 1);
    assert_eq!(c.group_hint(), Some(NET));
    assert!(c.scheduler_hints.contains_key("custom"));
    assert!(!c.scheduler_hints.contains_key("_nova_check_type"));
    assert_eq!(c.scheduler_hints.len(), 9);

    let alias = json!({"server": base(1), "OS-SCH-HNT:scheduler_hints": {"group": NET}});
    assert_eq!(ok(alias, 1).group_hint(), Some(NET));
    let both = json!({"server": base(1), "os:scheduler_hints": {"a": 1},
        "OS-SCH-HNT:scheduler_hints": {"b": 2}});
    let c = ok(both, 1);
    assert!(c.scheduler_hints.contains_key("a") && !c.scheduler_hints.contains_key("b"));
    assert_eq!(
        ok(
            json!({"server": base(1), "os:scheduler_hints": {"group": [NET]}}),
            1
        )
        .scheduler_hints["group"],
        json!([NET])
    );

    let bad = |hints: Value| err(json!({"server": base(1), "os:scheduler_hints": hints}), 1);
    assert_eq!(
        bad(json!({"group": "foo"})),
        (400, "Invalid input for field/attribute group. Value: foo. 'foo' is not valid under any of the given schemas".into())
    );
    assert!(bad(json!({"different_host": ["foo"]}))
        .1
        .ends_with("is not valid under any of the given schemas"));
    assert_eq!(
        bad(json!({"same_host": ["foo"]})).1,
        "Invalid input for field/attribute 0. Value: foo. 'foo' is not a 'uuid'"
    );
    assert!(bad(json!({"same_host": 1}))
        .1
        .ends_with("1 is not of type 'string', 'array'"));
    assert!(bad(json!({"query": 1}))
        .1
        .ends_with("1 is not of type 'string', 'object'"));
    assert_eq!(bad(json!({"target_cell": " x"})).1, fields::INVALID_NAME);
    assert!(bad(json!({"different_cell": [1]}))
        .1
        .ends_with("1 is not of type 'string'"));
    assert!(bad(json!({"build_near_host_ip": "x"}))
        .1
        .ends_with("is not valid under any of the given schemas"));
    assert_eq!(
        bad(json!({"cidr": "24"})).1,
        "Invalid input for field/attribute cidr. Value: 24. '24' does not match '^/[0-9a-f.:]+$'"
    );
    assert_eq!(
        bad(json!("x")).1,
        "Invalid input for field/attribute os:scheduler_hints. Value: x. 'x' is not of type 'object'"
    );
    // Both spellings go through the schema even though os: wins.
    assert!(err(
        json!({"server": base(1), "os:scheduler_hints": {}, "OS-SCH-HNT:scheduler_hints": {"group": "x"}}),
        1
    )
    .1
    .contains("field/attribute group"));
}

#[test]
fn bdm_syntax_mix_and_schema() {
    let both = json!({"block_device_mapping": [{"volume_id": VOL, "device_name": "vda"}],
        "block_device_mapping_v2": [{"source_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(
        err(with(1, both), 1),
        (
            400,
            "Using different block_device_mapping syntaxes is not allowed in the same request."
                .into()
        )
    );
    // Empty lists do not count as using a syntax.
    let empty_legacy = json!({"block_device_mapping": [],
        "block_device_mapping_v2": [{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert!(!ok(with(1, empty_legacy), 1).legacy_bdm);
    assert_eq!(
        err(with(1, json!({"block_device_mapping_v2": [{"source_type": "volume", "uuid": VOL, "bogus": 1}]})), 1).1,
        format!(
            "Invalid input for field/attribute 0. Value: {{'bogus': 1, 'source_type': 'volume', 'uuid': '{VOL}'}}. {}",
            unexpected("bogus")
        )
    );
}

#[test]
fn bdm_v2_rules() {
    let v2 = |items: Value| with(1, json!({ "block_device_mapping_v2": items }));
    assert_eq!(
        err(
            v2(json!([{"source_type": "blank", "uuid": VOL, "destination_type": "local"}])),
            1
        ),
        (
            400,
            "Block Device Mapping is Invalid: Invalid device UUID.".into()
        )
    );
    assert_eq!(
        err(
            v2(json!([{"source_type": "volume", "destination_type": "volume", "boot_index": 0}])),
            1
        )
        .1,
        "Block Device Mapping is Invalid: Missing device UUID."
    );
    // image -> local only with imageRef and boot_index 0.
    let img_local = json!([{"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0}]);
    let c = ok(v2(img_local.clone()), 1);
    assert_eq!(c.block_device_mapping.len(), 1);
    let no_image =
        json!({"server": {"name": "vm", "flavorRef": "1", "block_device_mapping_v2": img_local}});
    assert_eq!(
        err(no_image, 1).1,
        "Block Device Mapping is Invalid: Mapping image to local is not supported."
    );
    assert_eq!(
        err(v2(json!([{"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 1}])), 1).1,
        "Block Device Mapping is Invalid: Mapping image to local is not supported."
    );
    // image/blank -> volume need a size.
    assert_eq!(
        err(v2(json!([{"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0}])), 1).1,
        "Images with destination_type 'volume' need to have a non-zero size specified"
    );
    assert!(ok(v2(json!([{"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0, "volume_size": 10}])), 1)
        .block_device_mapping[0]
        .volume_size
        == Some(10));
    assert_eq!(
        err(
            v2(json!([
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
            {"source_type": "blank", "destination_type": "volume", "boot_index": -1}])),
            1
        )
        .1,
        "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size"
    );
    assert_eq!(
        err(v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "disk_bus": "nvme0"}])), 1).1,
        "Block Device Mapping is Invalid."
    );
}

#[test]
fn bdm_boot_sequence() {
    let seq = "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.";
    let v2 = |items: Value| with(1, json!({ "block_device_mapping_v2": items }));
    // An image plus a data volume without any boot index: Nova adds no
    // implicit root for the v2 syntax.
    assert_eq!(
        err(
            v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL}])),
            1
        ),
        (400, seq.into())
    );
    assert_eq!(
        err(v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1}])), 1).1,
        seq
    );
    assert!(ok(
        v2(json!([
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": "1"},
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
            {"source_type": "blank", "destination_type": "local", "boot_index": -1, "guest_format": "swap", "volume_size": 1},
            {"source_type": "blank", "destination_type": "local", "boot_index": null}
        ])),
        1
    )
    .block_device_mapping
    .len()
        == 4);
    assert_eq!(
        err(v2(json!([
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0},
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 2}])), 1).1,
        seq
    );
}

#[test]
fn bdm_root_device_and_multi_instance() {
    let v2 = json!({"block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1, "device_name": "/dev/vda"}]});
    assert_eq!(
        err(with(1, v2), 1).1,
        "The volume cannot be assigned the same device name as the root device vda"
    );
    let multi = json!({"max_count": 2, "block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1}]});
    assert_eq!(
        err(with(1, multi), 1),
        (
            400,
            "Cannot attach one or more volumes to multiple instances".into()
        )
    );
    let snap_multi = json!({"min_count": 2, "block_device_mapping_v2": [
        {"source_type": "snapshot", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(ok(with(1, snap_multi), 1).min_count, 2);
}

#[test]
fn bdm_legacy_conversion() {
    let legacy = json!({"-imageRef": null, "block_device_mapping": [
        {"volume_id": VOL, "device_name": "vda", "delete_on_termination": "1"},
        {"virtual_name": "swap", "device_name": "vdb", "volume_size": 1}]});
    let c = ok(with(1, legacy), 1);
    assert!(c.legacy_bdm);
    assert_eq!(c.image_ref, None);
    let b = &c.block_device_mapping;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].source_type.as_deref(), Some("volume"));
    assert_eq!(b[0].uuid.as_deref(), Some(VOL));
    assert_eq!(b[0].boot_index, Some(0));
    assert_eq!(b[0].device_name.as_deref(), Some("/dev/vda"));
    assert!(b[0].delete_on_termination);
    assert_eq!(b[1].guest_format.as_deref(), Some("swap"));
    assert_eq!(b[1].boot_index, Some(-1));

    // With an image, a non-root legacy volume rides on the implicit image root.
    let with_image = json!({"block_device_mapping": [{"volume_id": VOL, "device_name": "vdb"}]});
    let c = ok(with(1, with_image), 1);
    assert_eq!(c.image_ref.as_deref(), Some(IMG));
    assert_eq!(c.block_device_mapping[0].boot_index, Some(-1));

    // Without an image and without a vda root there is nothing to boot.
    let no_root = json!({"-imageRef": null, "block_device_mapping": [{"volume_id": VOL, "device_name": "vdb"}]});
    assert!(err(with(1, no_root), 1).1.contains("Boot sequence"));

    assert_eq!(
        err(
            with(1, json!({"block_device_mapping": [{"device_name": "vdb"}]})),
            1
        ),
        (
            400,
            "Block Device Mapping is Invalid: Unrecognized legacy format.".into()
        )
    );
    assert!(err(
        with(
            1,
            json!({"block_device_mapping": [{"volume_id": VOL, "tag": "x"}]})
        ),
        42
    )
    .1
    .ends_with(&unexpected("tag")));
}

#[test]
fn bdm_tag_and_volume_type_boundaries() {
    let tagged = json!({"block_device_mapping_v2": [
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "tag": "disk1"}]});
    assert!(err(with(31, tagged.clone()), 31)
        .1
        .ends_with(&unexpected("tag")));
    assert_eq!(
        ok(with(32, tagged.clone()), 32).block_device_mapping[0]
            .tag
            .as_deref(),
        Some("disk1")
    );
    assert!(err(with(33, tagged.clone()), 33)
        .1
        .ends_with(&unexpected("tag")));
    assert!(err(with(41, tagged.clone()), 41)
        .1
        .ends_with(&unexpected("tag")));
    assert_eq!(
        ok(with(42, tagged), 42).block_device_mapping[0]
            .tag
            .as_deref(),
        Some("disk1")
    );

    let typed = json!({"block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0, "volume_size": 1, "volume_type": "ssd"}]});
    assert!(err(with(66, typed.clone()), 66)
        .1
        .ends_with(&unexpected("volume_type")));
    assert_eq!(
        ok(with(67, typed), 67).block_device_mapping[0]
            .volume_type
            .as_deref(),
        Some("ssd")
    );
    assert_eq!(
        err(with(67, json!({"block_device_mapping_v2": [
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "volume_type": "ssd"}]})), 67).1,
        "Block Device Mapping is Invalid: Specifying volume type to existing volume is not supported."
    );
    assert_eq!(
        err(with(67, json!({"block_device_mapping_v2": [
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0, "volume_type": "ssd"}]})), 67).1,
        "Block Device Mapping is Invalid: Specifying a volume_type with destination_type=local is not supported."
    );
}

#[test]
fn schema_errors_come_before_semantic_ones() {
    // min > max (semantic) loses to a bad key (schema).
    let (_, msg) = err(
        with(1, json!({"min_count": 3, "max_count": 2, "foo": 1})),
        1,
    );
    assert!(msg.ends_with(&unexpected("foo")));
    // Properties are checked in schema order: name before flavorRef.
    let (_, msg) = err(json!({"server": {"name": "", "flavorRef": ""}}), 1);
    assert!(msg.contains("field/attribute name"));
    // min/max before the AZ parse, which is before BDM rules.
    let (_, msg) = err(
        with(
            1,
            json!({"min_count": 3, "max_count": 2, "availability_zone": "a:b:c:d"}),
        ),
        1,
    );
    assert_eq!(msg, "min_count must be <= max_count");
    let (_, msg) = err(
        with(
            1,
            json!({"availability_zone": "a:b:c:d", "block_device_mapping_v2": [{"source_type": "blank", "uuid": VOL}]}),
        ),
        1,
    );
    assert_eq!(
        msg,
        "Invalid input received: Unable to parse availability_zone"
    );
}

#[test]
fn az_parser_directly() {
    assert_eq!(
        parse_availability_zone("z").unwrap(),
        (Some("z".into()), None, None)
    );
    assert_eq!(parse_availability_zone("::").unwrap(), (None, None, None));
    assert_eq!(
        parse_availability_zone("z:h:").unwrap(),
        (Some("z".into()), Some("h".into()), None)
    );
    assert_eq!(parse_availability_zone(":::").unwrap_err().code, 400);
}
