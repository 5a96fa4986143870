//! Unit tests for `GET /servers` query parsing, filtering, sorting and
//! paging.

use super::tables::{IGNORED_SORT_KEYS, VALID_SORT_KEYS};
use super::*;
use crate::model::{FixedIp, FlavorSnapshot, Vif};
use crate::states::{PowerState, TaskState};
use chrono::Duration;
use std::collections::BTreeMap;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 2, 10, 0, 0).unwrap()
}

fn uuid(n: i64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A live, active instance in project `p1`, created (and updated) at
/// `t0 + n minutes`.
fn inst(n: i64) -> Instance {
    let created = t0() + Duration::minutes(n);
    Instance {
        id: n,
        uuid: uuid(n),
        display_name: format!("vm{n}"),
        display_description: None,
        project_id: "p1".into(),
        user_id: "u1".into(),
        image_ref: "img-1".into(),
        flavor: FlavorSnapshot {
            id: "1".into(),
            name: "m1.tiny".into(),
            vcpus: 1,
            ram: 512,
            disk: 1,
            ..Default::default()
        },
        vm_state: VmState::Active,
        task_state: None,
        power_state: PowerState::Running,
        progress: 0,
        host: Some("host1".into()),
        node: Some("node1".into()),
        availability_zone: Some("nova".into()),
        pinned_availability_zone: None,
        hostname: format!("vm{n}"),
        key_name: None,
        key_data: None,
        user_data: None,
        config_drive: false,
        access_ip_v4: None,
        access_ip_v6: None,
        auto_disk_config: false,
        metadata: BTreeMap::new(),
        system_metadata: BTreeMap::new(),
        tags: vec![],
        locked_by: None,
        locked_reason: None,
        launch_index: 0,
        reservation_id: format!("r-{n:08}"),
        kernel_id: String::new(),
        ramdisk_id: String::new(),
        root_device_name: Some("/dev/vda".into()),
        created_at: created,
        updated_at: created,
        launched_at: Some(created + Duration::seconds(30)),
        terminated_at: None,
        deleted_at: None,
        deleted: false,
        vifs: vec![],
        security_groups: vec!["default".into()],
        fault: None,
        scheduler_hints: BTreeMap::new(),
        block_device_mapping: vec![],
        personality: vec![],
        admin_pass: None,
        trusted_image_certificates: None,
        server_groups: vec![],
        image_properties: BTreeMap::new(),
        generation: 0,
    }
}

fn with(n: i64, f: impl FnOnce(&mut Instance)) -> Instance {
    let mut i = inst(n);
    f(&mut i);
    i
}

fn hard_deleted(n: i64) -> Instance {
    with(n, |i| {
        i.deleted = true;
        i.vm_state = VmState::Deleted;
        i.deleted_at = Some(i.updated_at);
    })
}

fn soft_deleted(n: i64) -> Instance {
    with(n, |i| i.vm_state = VmState::SoftDeleted)
}

fn vif(ips: &[(&str, u8)]) -> Vif {
    Vif {
        port_id: "port".into(),
        network_id: "net".into(),
        network_label: "private".into(),
        mac: "fa:16:3e:00:00:01".into(),
        fixed_ips: ips
            .iter()
            .map(|(a, v)| FixedIp {
                address: a.to_string(),
                version: *v,
                subnet_id: String::new(),
            })
            .collect(),
        tag: None,
        created_by_nova: true,
    }
}

fn ctx(is_admin: bool, minor: u32) -> ListContext {
    ListContext {
        is_admin,
        project_id: "p1".into(),
        version: Microversion::new(2, minor),
        max_limit: DEFAULT_MAX_LIMIT,
        detail: false,
    }
}
fn admin(minor: u32) -> ListContext {
    ctx(true, minor)
}
fn user(minor: u32) -> ListContext {
    ctx(false, minor)
}

/// `a=1&b&c=` -> pairs (already "decoded": no escapes used here).
fn pairs(qs: &str) -> Vec<(String, String)> {
    qs.split('&')
        .filter(|s| !s.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

fn parse(qs: &str, c: &ListContext) -> Result<ListQuery, Fault> {
    parse_list_query(&pairs(qs), c)
}

fn q(qs: &str, c: &ListContext) -> ListQuery {
    match parse(qs, c) {
        Ok(q) => q,
        Err(e) => panic!("{qs}: unexpected {e}"),
    }
}

fn err(qs: &str, c: &ListContext) -> Fault {
    match parse(qs, c) {
        Ok(_) => panic!("{qs}: expected an error"),
        Err(e) => e,
    }
}

/// Ids of the rows that match, in row order (no sorting or paging).
fn matching(qs: &str, c: &ListContext, rows: &[Instance]) -> Vec<i64> {
    let query = q(qs, c);
    rows.iter()
        .filter(|i| query.matches(i))
        .map(|i| i.id)
        .collect()
}

/// Ids of the listed page, in list order, and the next-link flag.
fn page(qs: &str, c: &ListContext, rows: &[Instance]) -> Result<(Vec<i64>, bool), Fault> {
    let all: Vec<&Instance> = rows.iter().collect();
    let (page, more) = parse(qs, c)?.apply(&all)?;
    Ok((page.iter().map(|i| i.id).collect(), more))
}

fn listed(qs: &str, c: &ListContext, rows: &[Instance]) -> Vec<i64> {
    match page(qs, c, rows) {
        Ok((ids, _)) => ids,
        Err(e) => panic!("{qs}: unexpected {e}"),
    }
}

// -- the allow-list and unknown names ---------------------------------

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

// -- how each filter matches ------------------------------------------

#[test]
fn name_remaps() {
    let rows = [
        inst(1),
        with(2, |i| {
            i.image_ref = "img-10".into();
            i.flavor.id = "11".into();
            i.display_description = Some("desc2".into());
        }),
    ];
    // image -> image_ref, exact.
    assert_eq!(matching("image=img-1", &user(1), &rows), vec![1]);
    assert_eq!(matching("image=img", &user(1), &rows), Vec::<i64>::new());
    assert_eq!(matching("image_ref=img-10", &admin(1), &rows), vec![2]);
    // flavor -> exact on the flavor id; unknown flavor: empty, no error.
    assert_eq!(matching("flavor=1", &user(1), &rows), vec![1]);
    assert_eq!(matching("flavor=11", &user(1), &rows), vec![2]);
    assert_eq!(matching("flavor=999", &user(1), &rows), Vec::<i64>::new());
    // description is accepted but filters nothing.
    assert_eq!(matching("description=zzz", &admin(1), &rows), vec![1, 2]);
    assert_eq!(
        matching("display_description=desc", &admin(1), &rows),
        vec![2]
    );
    // name and display_name both: the one first seen later wins.
    assert_eq!(
        matching("display_name=vm1&name=vm2", &admin(1), &rows),
        vec![2]
    );
    assert_eq!(
        matching("name=vm2&display_name=vm1", &admin(1), &rows),
        vec![1]
    );
}

#[test]
fn regex_columns_are_unanchored() {
    let names = ["t1", "t14", "test11", "t2", "T1"];
    let rows: Vec<Instance> = names
        .iter()
        .enumerate()
        .map(|(n, name)| with(n as i64 + 1, |i| i.display_name = name.to_string()))
        .collect();
    assert_eq!(matching("name=t1", &user(1), &rows), vec![1, 2, 3]);
    assert_eq!(matching("name=^t1$", &user(1), &rows), vec![1]);
    assert_eq!(matching("name=t1|t2", &user(1), &rows), vec![1, 2, 3, 4]);
    assert_eq!(matching("name=.", &user(1), &rows), vec![1, 2, 3, 4, 5]);
}

#[test]
fn invalid_regexes_are_400_from_the_schema() {
    let e = err("name=(", &user(1));
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Invalid input for query parameters name. Value: (. '(' is not a 'regex'"
    );
    assert_eq!(
        err("name=", &user(1)).message,
        "Invalid input for query parameters name. Value: . '' is not a 'regex'"
    );
    // The schema runs before the allow-list.
    assert_eq!(err("node=[", &user(1)).code, 400);
    assert_eq!(err("ip=*", &user(1)).code, 400);
    assert_eq!(err("tags=(", &user(26)).code, 400);
    // launch_index is not format-checked: an uncompilable one matches nothing.
    let rows = [inst(1)];
    assert_eq!(
        matching("launch_index=(", &admin(1), &rows),
        Vec::<i64>::new()
    );
    assert_eq!(matching("launch_index=0", &admin(1), &rows), vec![1]);
}

#[test]
fn regex_columns_see_the_db_text() {
    let rows = [
        inst(1),
        with(2, |i| {
            i.power_state = PowerState::Shutdown;
            i.progress = 50;
            i.config_drive = true;
            i.auto_disk_config = true;
            i.launch_index = 2;
            i.launched_at = None;
            i.locked_by = Some("owner".into());
        }),
    ];
    let a = admin(1);
    assert_eq!(matching("power_state=^1$", &a, &rows), vec![1]);
    assert_eq!(matching("power_state=^4$", &a, &rows), vec![2]);
    assert_eq!(matching("progress=^50$", &a, &rows), vec![2]);
    assert_eq!(matching("progress=^0$", &a, &rows), vec![1]);
    assert_eq!(matching("config_drive=^True$", &a, &rows), vec![2]);
    assert_eq!(matching("config_drive=^$", &a, &rows), vec![1]);
    assert_eq!(matching("auto_disk_config=^1$", &a, &rows), vec![2]);
    assert_eq!(matching("auto_disk_config=^0$", &a, &rows), vec![1]);
    assert_eq!(matching("launch_index=^2$", &a, &rows), vec![2]);
    assert_eq!(
        matching("created_at=^2024-01-02 10:01:00$", &a, &rows),
        vec![1]
    );
    assert_eq!(matching("created_at=10:02", &a, &rows), vec![2]);
    // NULL never matches, not even `.*`.
    assert_eq!(matching("launched_at=.*", &a, &rows), vec![1]);
    assert_eq!(
        matching("launched_at=2024-01-02 10:01:30", &a, &rows),
        vec![1]
    );
    assert_eq!(matching("locked_by=.*", &a, &rows), vec![2]);
    assert_eq!(matching("key_name=.*", &a, &rows), Vec::<i64>::new());
}

#[test]
fn exact_columns_are_exact() {
    let rows = [inst(1), with(2, |i| i.host = None)];
    let a = admin(1);
    assert_eq!(matching("host=host1", &a, &rows), vec![1]);
    assert_eq!(matching("host=host", &a, &rows), Vec::<i64>::new());
    assert_eq!(matching("host=HOST1", &a, &rows), Vec::<i64>::new());
    assert_eq!(matching(&format!("uuid={}", uuid(2)), &a, &rows), vec![2]);
    assert_eq!(matching("uuid=00000000", &a, &rows), Vec::<i64>::new());
    assert_eq!(matching("vm_state=activ", &a, &rows), Vec::<i64>::new());
    assert_eq!(matching("vm_state=active", &a, &rows), vec![1, 2]);
    // NULL task_state never equals anything.
    assert_eq!(matching("task_state=None", &a, &rows), Vec::<i64>::new());
}

#[test]
fn ip_filters() {
    let rows = [
        with(1, |i| {
            i.vifs = vec![vif(&[("10.0.0.1", 4), ("fd00::1", 6)])]
        }),
        with(2, |i| i.vifs = vec![vif(&[("110.0.0.2", 4)])]),
        with(3, |i| {
            i.vifs = vec![vif(&[("192.168.0.9", 4)]), vif(&[("10.0.0.13", 4)])]
        }),
        with(4, |i| i.vifs = vec![vif(&[("fd00::4", 6)])]),
        with(5, |i| i.access_ip_v4 = Some("10.0.0.1".into())),
    ];
    let c = user(5);
    assert_eq!(matching("ip=10.0.0.1", &c, &rows), vec![1, 3]);
    assert_eq!(matching("ip=0.0.2", &c, &rows), Vec::<i64>::new());
    assert_eq!(matching("ip=fd00", &c, &rows), Vec::<i64>::new());
    assert_eq!(matching("ip=.*0.2$", &c, &rows), vec![2]);
    assert_eq!(matching("ip6=fd00::", &c, &rows), vec![1, 4]);
    assert_eq!(matching("ip6=10", &c, &rows), Vec::<i64>::new());
    // Both: either one matching is enough.
    assert_eq!(matching("ip=10.0.0.13&ip6=fd00::4", &c, &rows), vec![3, 4]);
}

#[test]
fn tag_filters() {
    let rows = [
        with(1, |i| i.tags = vec!["a".into(), "b".into()]),
        with(2, |i| i.tags = vec!["a".into()]),
        with(3, |i| i.tags = vec!["c".into()]),
        inst(4),
    ];
    let c = user(26);
    assert_eq!(matching("tags=a,b", &c, &rows), vec![1]);
    assert_eq!(matching("tags=a", &c, &rows), vec![1, 2]);
    assert_eq!(matching("tags-any=a,c", &c, &rows), vec![1, 2, 3]);
    assert_eq!(matching("not-tags=a,b", &c, &rows), vec![2, 3, 4]);
    assert_eq!(matching("not-tags-any=a,c", &c, &rows), vec![4]);
    assert_eq!(matching("tags=a&not-tags-any=b", &c, &rows), vec![2]);
    assert_eq!(matching("tags=A", &c, &rows), Vec::<i64>::new());
    assert_eq!(matching("tags=a,b", &user(25), &rows), vec![1, 2, 3, 4]);
}

#[test]
fn locked_is_a_strict_boolean() {
    let rows = [with(1, |i| i.locked_by = Some("owner".into())), inst(2)];
    let c = user(73);
    for v in ["true", "TRUE", "yes", "1", "on", "t", "Y", " true "] {
        assert_eq!(matching(&format!("locked={v}"), &c, &rows), vec![1], "{v}");
    }
    for v in ["false", "0", "no", "off", "n", "F"] {
        assert_eq!(matching(&format!("locked={v}"), &c, &rows), vec![2], "{v}");
    }
    let e = err("locked=maybe", &c);
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Invalid input received: Unrecognized value 'maybe', acceptable values are: \
         '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
    );
    assert_eq!(err("locked=", &c).code, 400);
    assert_eq!(err("locked=maybe", &admin(73)).code, 400);
}

// -- status ------------------------------------------------------------

fn status_rows() -> Vec<Instance> {
    vec![
        inst(1),
        with(2, |i| i.task_state = Some(TaskState::Rebooting)),
        with(3, |i| i.vm_state = VmState::Stopped),
        with(4, |i| i.vm_state = VmState::Error),
        hard_deleted(5),
        soft_deleted(6),
        with(7, |i| {
            i.vm_state = VmState::Active;
            i.task_state = Some(TaskState::RebootingHard);
        }),
    ]
}

#[test]
fn status_maps_to_states() {
    let rows = status_rows();
    let c = user(1);
    assert_eq!(matching("status=ACTIVE", &c, &rows), vec![1, 2, 7]);
    assert_eq!(matching("status=active", &c, &rows), vec![1, 2, 7]);
    assert_eq!(matching("status=REBOOT", &c, &rows), vec![2]);
    assert_eq!(matching("status=HARD_REBOOT", &c, &rows), vec![7]);
    assert_eq!(
        matching("status=REBOOT&status=HARD_REBOOT", &c, &rows),
        vec![2, 7]
    );
    assert_eq!(matching("status=ERROR", &c, &rows), vec![4]);
    // Soft-deleted rows stay hidden unless asked for.
    assert_eq!(
        matching("status=SOFT_DELETED", &c, &rows),
        Vec::<i64>::new()
    );
    assert_eq!(
        matching("status=SOFT_DELETED&soft_deleted=1", &admin(1), &rows),
        vec![6]
    );
    // status replaces a direct vm_state; a direct task_state survives a
    // status whose row default matched, not one that set task states.
    assert_eq!(
        matching("vm_state=stopped&status=ACTIVE", &admin(1), &rows),
        vec![1, 2, 7]
    );
    assert_eq!(
        matching("status=ACTIVE&task_state=rebooting", &admin(1), &rows),
        vec![2]
    );
    assert_eq!(
        matching("task_state=pausing&status=REBOOT", &admin(1), &rows),
        vec![2]
    );
}

#[test]
fn unknown_status_by_version() {
    let rows = status_rows();
    for qs in ["status=BOGUS", "status=UNKNOWN", "status="] {
        let e = err(qs, &user(38));
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "Invalid status value"),
            "{qs}"
        );
        let query = q(qs, &user(37));
        assert!(query.is_always_empty());
        assert!(rows.iter().all(|i| !query.matches(i)));
    }
    // Below 2.38 the early empty answer comes before the policy check.
    let query = q("status=BOGUS&all_tenants=1&limit=1", &user(37));
    let all: Vec<&Instance> = rows.iter().collect();
    let (got, more) = query.apply(&all).unwrap();
    assert!(got.is_empty() && !more);
    // A known status among unknown ones is enough.
    assert_eq!(
        matching("status=BOGUS&status=ERROR", &user(38), &rows),
        vec![4]
    );
}

#[test]
fn status_deleted() {
    let rows = status_rows();
    let e = err("status=DELETED", &user(1));
    assert_eq!(
        (e.code, e.message.as_str()),
        (403, "Only administrators may list deleted instances")
    );
    assert_eq!(err("status=deleted", &user(90)).code, 403);
    assert_eq!(matching("status=DELETED", &admin(1), &rows), vec![5]);
    // Only when DELETED is the sole state does it imply deleted=true.
    assert_eq!(
        matching("status=DELETED&status=ERROR", &admin(1), &rows),
        vec![4]
    );
    assert_eq!(
        matching("status=DELETED&status=ERROR", &user(1), &rows),
        vec![4]
    );
}

// -- time filters and deleted rows -------------------------------------

#[test]
fn changes_since_and_before() {
    // Updated at t0+1m .. t0+6m; 4 hard-deleted, 5 soft-deleted.
    let rows = [
        inst(1),
        inst(2),
        inst(3),
        hard_deleted(4),
        soft_deleted(5),
        inst(6),
    ];
    let c = user(66);
    assert_eq!(
        matching("changes-since=2024-01-02T10:03:00Z", &c, &rows),
        vec![3, 4, 5, 6]
    );
    assert_eq!(
        matching("changes-since=2024-01-02T10:03:00.000001Z", &c, &rows),
        vec![4, 5, 6]
    );
    assert_eq!(
        matching("changes-before=2024-01-02T10:04:00Z", &c, &rows),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        matching(
            "changes-since=2024-01-02T10:02:00Z&changes-before=2024-01-02T10:05:00Z",
            &c,
            &rows
        ),
        vec![2, 3, 4, 5]
    );
    // Equal bounds are fine; offsets are honoured; no zone means UTC.
    assert_eq!(
        matching(
            "changes-since=2024-01-02T10:02:00Z&changes-before=2024-01-02T12:02:00+02:00",
            &c,
            &rows
        ),
        vec![2]
    );
    assert_eq!(
        matching("changes-since=2024-01-02 10:06", &c, &rows),
        vec![6]
    );
    assert_eq!(
        matching("changes-since=2024-01-02T05:05:00-0500", &c, &rows),
        vec![5, 6]
    );
    let e = err(
        "changes-since=2024-01-02T10:05:00Z&changes-before=2024-01-02T10:04:00Z",
        &c,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "The value of changes-since must be less than or equal to changes-before."
        )
    );
    let e = err("changes-since=yesterday", &c);
    assert_eq!(
        e.message,
        "Invalid input for query parameters changes-since. Value: yesterday. 'yesterday' is not a 'date-time'"
    );
    assert_eq!(err("changes-since=2024-13-01", &c).code, 400);
}

#[test]
fn deleted_and_soft_deleted_visibility() {
    let rows = [inst(1), hard_deleted(2), soft_deleted(3)];
    let a = admin(1);
    assert_eq!(matching("", &user(1), &rows), vec![1]);
    assert_eq!(matching("", &a, &rows), vec![1]);
    assert_eq!(matching("deleted=true", &a, &rows), vec![2, 3]);
    assert_eq!(matching("deleted=true&soft_deleted=", &a, &rows), vec![2]);
    // soft_deleted is never parsed: any non-empty value is truthy.
    assert_eq!(
        matching("deleted=true&soft_deleted=false", &a, &rows),
        vec![2, 3]
    );
    assert_eq!(matching("deleted=false", &a, &rows), vec![1]);
    assert_eq!(
        matching("deleted=false&soft_deleted=1", &a, &rows),
        vec![1, 3]
    );
    assert_eq!(
        matching("deleted=false&soft_deleted=false", &a, &rows),
        vec![1, 3]
    );
    assert_eq!(matching("deleted=bogus", &a, &rows), vec![1]);
    assert_eq!(matching("deleted=YES", &a, &rows), vec![2, 3]);
    assert_eq!(matching("soft_deleted=1", &a, &rows), vec![1, 3]);
    // Non-admins cannot ask.
    assert_eq!(matching("deleted=true", &user(1), &rows), vec![1]);
    assert_eq!(
        matching("deleted=false&soft_deleted=1", &user(83), &rows),
        vec![1]
    );
    // changes-* shows everything...
    assert_eq!(
        matching("changes-since=2000-01-01", &user(1), &rows),
        vec![1, 2, 3]
    );
    assert_eq!(
        matching("changes-before=2999-01-01", &user(66), &rows),
        vec![1, 2, 3]
    );
    // ...unless deleted says otherwise.
    assert_eq!(
        matching("changes-since=2000-01-01&deleted=false", &a, &rows),
        vec![1]
    );
    assert_eq!(
        matching("changes-since=2000-01-01&deleted=true", &a, &rows),
        vec![2, 3]
    );
}

// -- tenancy -------------------------------------------------------------

#[test]
fn tenancy_and_all_tenants() {
    let rows = [
        inst(1),
        with(2, |i| i.project_id = "p2".into()),
        with(3, |i| i.project_id = "p3".into()),
    ];
    let a = admin(1);
    assert_eq!(matching("", &a, &rows), vec![1]);
    assert_eq!(matching("project_id=p2", &a, &rows), vec![1]);
    assert_eq!(matching("tenant_id=p2", &a, &rows), vec![1]);
    for qs in [
        "all_tenants",
        "all_tenants=",
        "all_tenants=1",
        "all_tenants=True",
        "all_tenants=yes",
    ] {
        assert_eq!(matching(qs, &a, &rows), vec![1, 2, 3], "{qs}");
        assert!(q(qs, &a).all_tenants());
    }
    for qs in ["all_tenants=0", "all_tenants=false", "all_tenants=off"] {
        assert_eq!(matching(qs, &a, &rows), vec![1], "{qs}");
        assert!(!q(qs, &a).all_tenants());
        assert_eq!(matching(qs, &user(1), &rows), vec![1], "{qs}");
    }
    let e = err("all_tenants=bogus", &a);
    assert_eq!(e.code, 400);
    assert!(e.message.starts_with(
        "Invalid input received: Unrecognized value 'bogus', acceptable values are: '0', '1',"
    ));
    // The bad value is reported before the policy check.
    assert_eq!(err("all_tenants=bogus", &user(1)).code, 400);
    assert_eq!(matching("all_tenants=1&project_id=p2", &a, &rows), vec![2]);
    assert_eq!(matching("all_tenants=1&tenant_id=p3", &a, &rows), vec![3]);
    assert_eq!(
        matching("all_tenants=1&tenant_id=p3&project_id=p2", &a, &rows),
        vec![2]
    );
    assert_eq!(
        matching("all_tenants=1&project_id=p2&tenant_id=p3", &a, &rows),
        vec![3]
    );
    let e = err("all_tenants=1", &user(1));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            403,
            "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed."
        )
    );
    assert_eq!(err("all_tenants", &user(90)).code, 403);
    let detail = ListContext {
        detail: true,
        ..user(1)
    };
    assert_eq!(
        err("all_tenants=1", &detail).message,
        "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed."
    );
}

// -- sorting ---------------------------------------------------------------

#[test]
fn default_sort_is_created_at_desc_then_id() {
    let rows = [inst(1), inst(3), inst(2)];
    assert_eq!(listed("", &user(1), &rows), vec![3, 2, 1]);
    // Same created_at: id, in the first direction.
    let same: Vec<Instance> = (1..=3).map(|n| with(n, |i| i.created_at = t0())).collect();
    assert_eq!(listed("", &user(1), &same), vec![3, 2, 1]);
    assert_eq!(listed("sort_dir=asc", &user(1), &same), vec![1, 2, 3]);
    assert_eq!(
        q("", &user(1)).sort_keys(),
        vec![("created_at", "desc"), ("id", "desc")]
    );
    assert_eq!(
        q("sort_dir=asc", &user(1)).sort_keys(),
        vec![("created_at", "asc"), ("id", "asc")]
    );
}

fn sort_rows() -> Vec<Instance> {
    vec![
        with(1, |i| {
            i.display_name = "b".into();
            i.created_at = t0() + Duration::minutes(1);
        }),
        with(2, |i| {
            i.display_name = "a".into();
            i.created_at = t0() + Duration::minutes(1);
            i.vm_state = VmState::Stopped;
        }),
        with(3, |i| {
            i.display_name = "b".into();
            i.created_at = t0() + Duration::minutes(1);
            i.vm_state = VmState::Stopped;
        }),
        with(4, |i| {
            i.display_name = "b".into();
            i.created_at = t0();
        }),
    ]
}

#[test]
fn sort_keys_dirs_and_ties() {
    let rows = sort_rows();
    let c = user(1);
    assert_eq!(
        listed("sort_key=display_name&sort_dir=asc", &c, &rows),
        vec![2, 4, 1, 3]
    );
    assert_eq!(
        listed("sort_key=display_name&sort_dir=desc", &c, &rows),
        vec![3, 1, 4, 2]
    );
    // No dir: the default desc.
    assert_eq!(listed("sort_key=display_name", &c, &rows), vec![3, 1, 4, 2]);
    // Two keys, each with its dir; ties fall back to the first dir.
    assert_eq!(
        listed(
            "sort_key=vm_state&sort_dir=asc&sort_key=display_name&sort_dir=desc",
            &c,
            &rows
        ),
        vec![4, 1, 3, 2]
    );
    // Fewer dirs than keys: the first dir fills in.
    let query = q("sort_key=vm_state&sort_key=display_name&sort_dir=asc", &c);
    assert_eq!(
        query.sort_keys(),
        vec![
            ("vm_state", "asc"),
            ("display_name", "asc"),
            ("created_at", "asc"),
            ("id", "asc")
        ]
    );
    assert_eq!(
        listed(
            "sort_key=vm_state&sort_key=display_name&sort_dir=asc",
            &c,
            &rows
        ),
        vec![4, 1, 2, 3]
    );
    // created_at given explicitly is not appended again.
    assert_eq!(
        q("sort_key=created_at&sort_dir=asc&sort_key=uuid", &c).sort_keys(),
        vec![("created_at", "asc"), ("uuid", "asc"), ("id", "asc")]
    );
    // Whitespace around values is stripped.
    assert_eq!(
        listed("sort_key=display_name&sort_dir= asc ", &c, &rows),
        vec![2, 4, 1, 3]
    );
}

#[test]
fn sort_direction_errors() {
    let c = user(1);
    let e = err("sort_key=display_name&sort_dir=asc&sort_dir=desc", &c);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "Invalid input received: Sort direction size exceeds sort key size"
        )
    );
    for d in ["up", "ASC", "Desc", ""] {
        let e = err(&format!("sort_dir={d}"), &c);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'"
            ),
            "{d}"
        );
    }
}

#[test]
fn nulls_sort_first_ascending() {
    let rows = [
        inst(1),
        with(2, |i| i.host = None),
        with(3, |i| i.host = Some("a".into())),
    ];
    let a = admin(1);
    assert_eq!(
        listed("sort_key=host&sort_dir=asc", &a, &rows),
        vec![2, 3, 1]
    );
    assert_eq!(
        listed("sort_key=host&sort_dir=desc", &a, &rows),
        vec![1, 3, 2]
    );
}

#[test]
fn ignored_and_unknown_sort_keys() {
    let rows = sort_rows();
    let query = q(
        "sort_key=deleted&sort_dir=asc&sort_key=display_name&sort_dir=desc",
        &admin(74),
    );
    assert_eq!(
        query.sort_keys(),
        vec![
            ("display_name", "desc"),
            ("created_at", "desc"),
            ("id", "desc")
        ]
    );
    // `id` is dropped with its `asc`: the default created_at desc, id desc.
    assert_eq!(
        listed("sort_key=id&sort_dir=asc", &user(1), &rows),
        vec![3, 2, 1, 4]
    );
    for k in IGNORED_SORT_KEYS.iter().filter(|k| **k != "locked") {
        assert!(parse(&format!("sort_key={k}"), &user(74)).is_ok(), "{k}");
        let e = err(&format!("sort_key={k}"), &user(75));
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with(&format!(
                "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of ['locked', 'access_ip_v4',"
            )),
            "{}",
            e.message
        );
    }
    // Never-known keys are 400 at every version.
    assert_eq!(err("sort_key=bogus", &user(1)).code, 400);
    assert_eq!(err("sort_key=bogus", &admin(74)).code, 400);
    // An ignored key dropped with its dir can leave too many dirs.
    assert_eq!(
        err("sort_key=deleted&sort_dir=asc&sort_dir=desc", &admin(1)).code,
        400
    );
    // Every valid key sorts.
    for k in VALID_SORT_KEYS {
        let all: Vec<&Instance> = rows.iter().collect();
        let (got, _) = q(&format!("sort_key={k}"), &admin(75)).apply(&all).unwrap();
        assert_eq!(got.len(), 4, "{k}");
    }
}

#[test]
fn locked_sort_key_from_2_73() {
    let rows = [with(1, |i| i.locked_by = Some("owner".into())), inst(2)];
    assert_eq!(
        listed("sort_key=locked&sort_dir=asc", &user(73), &rows),
        vec![2, 1]
    );
    assert_eq!(
        listed("sort_key=locked&sort_dir=desc", &user(73), &rows),
        vec![1, 2]
    );
    // Ignored below 2.73 (created_at asc then).
    assert_eq!(
        listed("sort_key=locked&sort_dir=asc", &user(72), &rows),
        vec![2, 1]
    );
    assert_eq!(
        q("sort_key=locked&sort_dir=asc", &user(72)).sort_keys(),
        vec![("created_at", "desc"), ("id", "desc")]
    );
}

#[test]
fn host_and_node_sort_are_admin_only() {
    for k in ["host", "node"] {
        let e = err(&format!("sort_key={k}"), &user(1));
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            format!("Only administrators can sort servers by {k}")
        );
        assert!(parse(&format!("sort_key={k}"), &admin(1)).is_ok());
    }
}

// -- paging ----------------------------------------------------------------

#[test]
fn limit_validation() {
    let c = user(1);
    assert_eq!(
        err("limit=abc", &c).message,
        "Invalid input for query parameters limit. Value: abc. 'abc' does not match '^[0-9]*$'"
    );
    assert_eq!(
        err("limit=-1", &c).message,
        "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'"
    );
    assert_eq!(
        err("limit=", &c).message,
        "Invalid input for query parameters limit. Value: . '' should be non-empty"
    );
    assert_eq!(err("limit=1.5", &c).code, 400);
    // Every value is checked even though the last one counts.
    assert_eq!(err("limit=abc&limit=2", &c).code, 400);
    assert_eq!(q("limit=5&limit=2", &c).limit(), 2);
    assert_eq!(q("", &c).limit(), 1000);
    assert_eq!(q("limit=5000", &c).limit(), 1000);
    assert_eq!(q("limit=99999999999999999999999999", &c).limit(), 1000);
    assert_eq!(q("limit=007", &c).limit(), 7);
    let small = ListContext {
        max_limit: 3,
        ..user(1)
    };
    assert_eq!(q("limit=10", &small).limit(), 3);
    assert_eq!(q("", &small).limit(), 3);
}

#[test]
fn marker_and_limit_paging() {
    let rows: Vec<Instance> = (1..=5).map(inst).collect();
    let c = user(1);
    assert_eq!(page("limit=2", &c, &rows).unwrap(), (vec![5, 4], true));
    let m = |n: i64, limit: u32| format!("marker={}&limit={limit}", uuid(n));
    assert_eq!(page(&m(4, 2), &c, &rows).unwrap(), (vec![3, 2], true));
    // The last page still gets a link when it is exactly full.
    assert_eq!(page(&m(3, 2), &c, &rows).unwrap(), (vec![2, 1], true));
    assert_eq!(page(&m(2, 2), &c, &rows).unwrap(), (vec![1], false));
    assert_eq!(page(&m(1, 2), &c, &rows).unwrap(), (vec![], false));
    assert_eq!(page("", &c, &rows).unwrap(), (vec![5, 4, 3, 2, 1], false));
    let small = ListContext {
        max_limit: 2,
        ..user(1)
    };
    assert_eq!(page("", &small, &rows).unwrap(), (vec![5, 4], true));
    assert_eq!(page("limit=10", &small, &rows).unwrap(), (vec![5, 4], true));
    // Ascending too.
    assert_eq!(
        page(&format!("sort_dir=asc&{}", m(2, 2)), &c, &rows).unwrap(),
        (vec![3, 4], true)
    );
}

#[test]
fn marker_lookup() {
    let rows = [
        inst(1),
        inst(2),
        hard_deleted(3),
        inst(4),
        with(5, |i| i.project_id = "p2".into()),
    ];
    let c = user(1);
    let e = page("marker=nope", &c, &rows).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "marker [nope] not found")
    );
    // A deleted (hidden) marker still places the page.
    assert_eq!(
        page(&format!("marker={}", uuid(3)), &c, &rows).unwrap(),
        (vec![2, 1], false)
    );
    // So does a row of another project.
    assert_eq!(
        page(&format!("marker={}", uuid(5)), &c, &rows).unwrap(),
        (vec![4, 2, 1], false)
    );
    // limit=0: empty, no link, marker not even looked up.
    assert_eq!(
        page("limit=0&marker=nope", &c, &rows).unwrap(),
        (vec![], false)
    );
    assert_eq!(page("limit=0", &c, &rows).unwrap(), (vec![], false));
    // The paginate entry point with an explicit lookup.
    let query = q("marker=x&limit=1", &c);
    let sorted: Vec<&Instance> = rows.iter().collect();
    let lookup = |id: &str| if id == "x" { Some(&rows[1]) } else { None };
    let (got, more) = query.paginate(sorted, &lookup).unwrap();
    assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), vec![1]);
    assert!(more);
    assert_eq!(query.marker(), Some("x"));
}

#[test]
fn next_link_query() {
    let c = user(1);
    assert_eq!(
        q("name=vm&limit=2&marker=abc&sort_key=display_name", &c).next_query("LAST"),
        "limit=2&marker=LAST&name=vm&sort_key=display_name"
    );
    // No marker yet: appended at the end.
    assert_eq!(
        q("name=vm&limit=2", &c).next_query("LAST"),
        "limit=2&name=vm&marker=LAST"
    );
    assert_eq!(q("", &c).next_query("u-1"), "marker=u-1");
    // Repeated names collapse to one value: the last after sorting.
    assert_eq!(
        q("status=SHUTOFF&status=ACTIVE&limit=1", &c).next_query("x"),
        "limit=1&status=SHUTOFF&marker=x"
    );
    assert_eq!(
        q(
            "sort_key=uuid&sort_key=display_name&sort_dir=asc&sort_dir=desc",
            &c
        )
        .next_query("x"),
        "sort_dir=desc&sort_key=uuid&marker=x"
    );
    // Form encoding.
    assert_eq!(
        q("name=a b/c&limit=1", &c).next_query("x y"),
        "limit=1&name=a+b%2Fc&marker=x+y"
    );
    assert_eq!(
        q("changes-since=2024-01-02T10:00:00+02:00", &c).next_query("m"),
        "changes-since=2024-01-02T10%3A00%3A00%2B02%3A00&marker=m"
    );
    // Filters a non-admin may not use stay in the link; unknown names
    // the schema stripped (below 2.75) do not.
    assert_eq!(
        q("host=h&limit=1", &c).next_query("x"),
        "host=h&limit=1&marker=x"
    );
    assert_eq!(
        q("foo=1&limit=1&_x=2", &c).next_query("x"),
        "_x=2&limit=1&marker=x"
    );
    assert_eq!(
        q("tags=a&limit=1", &user(25)).next_query("x"),
        "limit=1&marker=x"
    );
    assert_eq!(
        q("tags=a&limit=1", &user(26)).next_query("x"),
        "limit=1&tags=a&marker=x"
    );
}

#[test]
fn full_walk_with_next_links() {
    let rows: Vec<Instance> = (1..=5)
        .map(|n| with(n, |i| i.display_name = format!("web-{n}")))
        .chain([with(6, |i| i.display_name = "db".into())])
        .collect();
    let all: Vec<&Instance> = rows.iter().collect();
    let c = user(1);
    let mut qs = "name=web&limit=2&sort_key=display_name&sort_dir=asc".to_string();
    let mut seen = Vec::new();
    loop {
        let query = q(&qs, &c);
        let (got, more) = query.apply(&all).unwrap();
        seen.extend(got.iter().map(|i| i.id));
        if !more {
            break;
        }
        let last = got.last().map(|i| i.uuid.clone()).unwrap();
        qs = query.next_query(&last);
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
}

// -- helpers ---------------------------------------------------------------

#[test]
fn iso8601_parsing() {
    let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
    let cases = [
        ("2024-01-02T10:00:00Z", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T10:00:00", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02 10:00:00", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T10:00", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T10", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T1030", at(2024, 1, 2, 10, 30, 0)),
        ("2024-01-02", at(2024, 1, 2, 0, 0, 0)),
        ("2024-1-2", at(2024, 1, 2, 0, 0, 0)),
        ("2024-01", at(2024, 1, 1, 0, 0, 0)),
        ("2024", at(2024, 1, 1, 0, 0, 0)),
        ("20240102", at(2024, 1, 2, 0, 0, 0)),
        ("20240102T103005", at(2024, 1, 2, 10, 30, 5)),
        ("2024-01-02T12:00:00+02:00", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T05:00:00-0500", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T12:00:00+02", at(2024, 1, 2, 10, 0, 0)),
        ("2024-01-02T00:30:00+01:00", at(2024, 1, 1, 23, 30, 0)),
    ];
    for (s, want) in cases {
        assert_eq!(parse_iso8601(s), Some(want), "{s}");
    }
    let frac = parse_iso8601("2024-01-02T10:00:00.5Z").unwrap();
    assert_eq!(
        frac,
        at(2024, 1, 2, 10, 0, 0) + Duration::microseconds(500_000)
    );
    let frac = parse_iso8601("2024-01-02T10:00:00,1234567").unwrap();
    assert_eq!(
        frac,
        at(2024, 1, 2, 10, 0, 0) + Duration::microseconds(123_456)
    );
    for bad in [
        "",
        "yesterday",
        "202401",
        "24-01-02",
        "2024-13-01",
        "2024-02-30",
        "2024-01-02T25:00:00",
        "2024-01-02T10:00:60",
        "2024-01-02T10:00:00+24:00",
        "0000-01-01",
        "2024-01-02T10:00:00 Z",
        "2024-01-02X10",
    ] {
        assert_eq!(parse_iso8601(bad), None, "{bad}");
    }
}

#[test]
fn python_repr_and_quoting() {
    assert_eq!(py_repr("abc"), "'abc'");
    assert_eq!(py_repr("it's"), "\"it's\"");
    assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
    assert_eq!(py_repr("a\\b\n"), "'a\\\\b\\n'");
    assert_eq!(quote_plus("a b&c=d/é~_.-"), "a+b%26c%3Dd%2F%C3%A9~_.-");
}

#[test]
fn sorting_is_total_and_stable_across_calls() {
    // Identical sort values everywhere but uuid: still a total order.
    let rows: Vec<Instance> = (1..=4)
        .map(|n| {
            with(n, |i| {
                i.id = 7;
                i.created_at = t0();
            })
        })
        .collect();
    let query = q("", &user(1));
    let mut a: Vec<&Instance> = rows.iter().collect();
    let mut b: Vec<&Instance> = rows.iter().rev().collect();
    query.sort(&mut a);
    query.sort(&mut b);
    let ua: Vec<&str> = a.iter().map(|i| i.uuid.as_str()).collect();
    let ub: Vec<&str> = b.iter().map(|i| i.uuid.as_str()).collect();
    assert_eq!(ua, ub);
    assert_eq!(ua, vec![uuid(4), uuid(3), uuid(2), uuid(1)]);
}
