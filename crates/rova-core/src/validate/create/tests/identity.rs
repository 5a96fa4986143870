//! The fields naming the server and what it boots: `name`, `imageRef`,
//! `flavorRef`, `adminPass`, `key_name`, `description` and `hostname`.

use super::*;

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
