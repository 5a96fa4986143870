//! The request envelope: the minimal request and its defaults, the
//! `server` wrapper, unknown and required keys, and schema errors
//! reported before semantic ones.

use super::*;

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
