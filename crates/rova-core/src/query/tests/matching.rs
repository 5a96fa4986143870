//! How each filter matches: name remaps, regex and exact columns, IP,
//! tag and `locked` filters.

use super::*;

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
