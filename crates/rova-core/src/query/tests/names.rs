//! Which filter names each caller may use: the non-admin allow-list,
//! version-gated names, admin-only schema names, underscore and joined
//! table names, unknown names by version and repeated names.

use super::*;

#[test]
fn non_admin_base_filters_and_silently_dropped_ones() {
    let rows = [
        inst(1),
        with(2, |i| {
            i.host = Some("host2".into());
            i.node = Some("node2".into());
            i.image_ref = "img-2".into();
            i.flavor.id = "2".into();
            i.uuid = "special".into();
            i.vifs = vec![vif(&[("10.0.0.2", 4)])];
        }),
    ];
    for qs in [
        "host=host2",
        "node=node2",
        "uuid=special",
        "image_ref=img-2",
        "project_id=p9",
        "user_id=u9",
        "deleted=true",
        "kernel_id=x",
        "tenant_id=p9",
    ] {
        assert_eq!(matching(qs, &user(1), &rows), vec![1, 2], "{qs} ignored");
    }
    assert_eq!(matching("host=host2", &admin(1), &rows), vec![2]);
    assert_eq!(matching("node=node2", &admin(1), &rows), vec![2]);
    assert_eq!(matching("uuid=special", &admin(1), &rows), vec![2]);
    assert_eq!(
        matching("reservation_id=r-00000002", &user(1), &rows),
        vec![2]
    );
    assert_eq!(matching("name=vm2", &user(1), &rows), vec![2]);
    assert_eq!(matching("image=img-2", &user(1), &rows), vec![2]);
    assert_eq!(matching("flavor=2", &user(1), &rows), vec![2]);
    assert_eq!(matching("ip=10.0.0.2", &user(1), &rows), vec![2]);
}

#[test]
fn version_gated_filters_for_non_admins() {
    type Mutate = fn(&mut Instance);
    let cases: &[(&str, u32, Mutate, &[i64])] = &[
        (
            "ip6=fd00::2",
            5,
            |i| i.vifs = vec![vif(&[("fd00::2", 6)])],
            &[2],
        ),
        ("tags=x", 26, |i| i.tags = vec!["x".into()], &[2]),
        ("tags-any=x,y", 26, |i| i.tags = vec!["x".into()], &[2]),
        ("not-tags=x", 26, |i| i.tags = vec!["x".into()], &[1]),
        ("not-tags-any=x", 26, |i| i.tags = vec!["x".into()], &[1]),
        ("changes-before=2024-01-02T10:01:30Z", 66, |_| {}, &[1]),
        (
            "locked=true",
            73,
            |i| i.locked_by = Some("owner".into()),
            &[2],
        ),
        (
            "availability_zone=zone2",
            83,
            |i| i.availability_zone = Some("zone2".into()),
            &[2],
        ),
        ("config_drive=True", 83, |i| i.config_drive = true, &[2]),
        (
            "key_name=kp2",
            83,
            |i| i.key_name = Some("kp2".into()),
            &[2],
        ),
        (
            "created_at=2030",
            83,
            |i| i.created_at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
            &[2],
        ),
        (
            "launched_at=2031",
            83,
            |i| i.launched_at = Some(Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap()),
            &[2],
        ),
        (
            "terminated_at=2032",
            83,
            |i| i.terminated_at = Some(Utc.with_ymd_and_hms(2032, 1, 1, 0, 0, 0).unwrap()),
            &[2],
        ),
        (
            "power_state=4",
            83,
            |i| i.power_state = PowerState::Shutdown,
            &[2],
        ),
        (
            "task_state=rebooting",
            83,
            |i| i.task_state = Some(TaskState::Rebooting),
            &[2],
        ),
        (
            "vm_state=stopped",
            83,
            |i| i.vm_state = VmState::Stopped,
            &[2],
        ),
        ("progress=50", 83, |i| i.progress = 50, &[2]),
        ("user_id=u2", 83, |i| i.user_id = "u2".into(), &[2]),
        (
            "hostname=special",
            90,
            |i| i.hostname = "special".into(),
            &[2],
        ),
    ];
    for (qs, min, mutate, want) in cases {
        let rows = [inst(1), with(2, mutate)];
        assert_eq!(
            matching(qs, &user(min - 1), &rows),
            vec![1, 2],
            "{qs} below 2.{min}"
        );
        assert_eq!(
            matching(qs, &user(*min), &rows),
            want.to_vec(),
            "{qs} at 2.{min}"
        );
    }
}

#[test]
fn admins_get_every_schema_filter_at_2_1() {
    type Mutate = fn(&mut Instance);
    let cases: &[(&str, Mutate)] = &[
        ("availability_zone=zone2", |i| {
            i.availability_zone = Some("zone2".into())
        }),
        ("key_name=kp2", |i| i.key_name = Some("kp2".into())),
        ("vm_state=stopped", |i| i.vm_state = VmState::Stopped),
        ("task_state=rebooting", |i| {
            i.task_state = Some(TaskState::Rebooting)
        }),
        ("user_id=u2", |i| i.user_id = "u2".into()),
        ("hostname=special", |i| i.hostname = "special".into()),
        ("kernel_id=aki", |i| i.kernel_id = "aki-1".into()),
        ("ramdisk_id=ari", |i| i.ramdisk_id = "ari-1".into()),
        ("root_device_name=sdb", |i| {
            i.root_device_name = Some("/dev/sdb".into())
        }),
        ("access_ip_v4=^192", |i| {
            i.access_ip_v4 = Some("192.0.2.1".into())
        }),
        ("access_ip_v6=2001:db8", |i| {
            i.access_ip_v6 = Some("2001:db8::1".into())
        }),
        ("auto_disk_config=1", |i| i.auto_disk_config = true),
        ("launch_index=3", |i| i.launch_index = 3),
        ("locked_by=admin", |i| i.locked_by = Some("admin".into())),
        ("display_description=hello", |i| {
            i.display_description = Some("well hello".into())
        }),
    ];
    for (qs, mutate) in cases {
        let rows = [inst(1), with(2, mutate)];
        assert_eq!(matching(qs, &admin(1), &rows), vec![2], "{qs}");
    }
}

#[test]
fn schema_strips_names_below_their_version_even_for_admins() {
    let rows = [
        inst(1),
        with(2, |i| {
            i.tags = vec!["x".into()];
            i.locked_by = Some("owner".into());
        }),
    ];
    assert_eq!(matching("tags=x", &admin(25), &rows), vec![1, 2]);
    assert_eq!(matching("tags=x", &admin(26), &rows), vec![2]);
    assert_eq!(matching("locked=true", &admin(72), &rows), vec![1, 2]);
    // Not validated either when stripped.
    assert!(parse("locked=maybe", &admin(72)).is_ok());
    assert!(parse("changes-before=garbage", &admin(65)).is_ok());
    assert_eq!(
        err("changes-before=garbage", &admin(66)).message,
        "Invalid input for query parameters changes-before. Value: garbage. 'garbage' is not a 'date-time'"
    );
}

#[test]
fn underscore_names() {
    let rows = [inst(1), inst(2)];
    assert_eq!(matching("_foo=1", &user(1), &rows), vec![1, 2]);
    assert_eq!(matching("_foo=1", &user(75), &rows), vec![1, 2]);
    for minor in [1, 74, 75, 104] {
        let e = err("_foo=1", &admin(minor));
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "Invalid filter field: _foo.")
        );
    }
}

#[test]
fn joined_table_names() {
    let rows = [inst(1)];
    for name in JOINED_TABLE_PARAMS {
        let qs = format!("{name}=x");
        let e = err(&qs, &admin(1));
        assert_eq!(e.code, 400);
        assert_eq!(e.message, format!("Invalid filter field: {name}."));
        assert_eq!(err(&qs, &admin(75)).code, 400);
        assert_eq!(matching(&qs, &user(1), &rows), vec![1]);
        assert_eq!(matching(&qs, &user(75), &rows), vec![1]);
    }
}

#[test]
fn unknown_names_by_version() {
    let rows = [inst(1), inst(2)];
    for c in [admin(1), user(1), admin(74), user(74)] {
        assert_eq!(matching("foo=1&name=vm1", &c, &rows), vec![1]);
    }
    for c in [admin(75), user(75), admin(104)] {
        let e = err("foo=1&name=vm1", &c);
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "'foo' does not match any of the regexes: '^_'");
    }
    assert_eq!(
        err("zz=1&aa=2&zz=3", &user(75)).message,
        "'aa', 'zz' do not match any of the regexes: '^_'"
    );
    // Names Nova's schema never had, although they are columns.
    for qs in [
        "updated_at=2024",
        "hidden=1",
        "fixed_ip=10.0.0.1",
        "page_size=1",
        "offset=1",
    ] {
        assert_eq!(err(qs, &admin(75)).code, 400, "{qs}");
        assert!(parse(qs, &admin(74)).is_ok(), "{qs}");
    }
    // A bad value in a known name is reported before the unknown name.
    assert!(err("foo=1&limit=x", &admin(75))
        .message
        .starts_with("Invalid input for query parameters limit"));
}

#[test]
fn repeated_names_keep_the_last_value() {
    let rows = [inst(1), inst(2), with(3, |i| i.vm_state = VmState::Stopped)];
    assert_eq!(matching("name=vm1&name=vm2", &user(1), &rows), vec![2]);
    assert_eq!(
        matching("image=nope&image=img-1", &user(1), &rows),
        vec![1, 2, 3]
    );
    // status is the exception: every value counts.
    assert_eq!(
        matching("status=SHUTOFF&status=ACTIVE", &user(1), &rows),
        vec![1, 2, 3]
    );
    assert_eq!(matching("status=SHUTOFF", &user(1), &rows), vec![3]);
}
