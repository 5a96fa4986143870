//! Where and how many: `min_count` / `max_count` and multiple-create
//! conflicts, `availability_zone` (and its parser), `host` /
//! `hypervisor_hostname`, and `os:scheduler_hints`.

use super::*;

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
