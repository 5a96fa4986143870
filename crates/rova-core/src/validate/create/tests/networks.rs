//! `networks` before and from 2.37, network tags, and `security_groups`.

use super::*;

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
