//! What the server carries: `metadata`, `personality`, `user_data`,
//! access IPs and `OS-DCF:diskConfig`, `config_drive`,
//! `return_reservation_id`, `tags` and `trusted_image_certificates`.

use super::*;

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
