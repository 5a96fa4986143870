//! Sorting: the default order, sort keys and directions, ties, NULLs,
//! ignored, unknown and version- or admin-gated keys.

use super::*;

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

#[test]
fn default_order_is_recognised_however_it_was_asked_for() {
    // Nova's default order, one way or the other: an index in
    // (created_at, id, uuid) order serves it.
    for (qs, want) in [
        ("", Some(true)),
        ("sort_dir=desc", Some(true)),
        ("sort_dir=asc", Some(false)),
        ("sort_key=created_at", Some(true)),
        ("sort_key=created_at&sort_dir=asc", Some(false)),
        // Only ignored keys (below 2.75): the default again.
        ("sort_key=deleted", Some(true)),
        ("sort_key=display_name", None),
        ("sort_key=created_at&sort_key=uuid", None),
        (
            "sort_key=created_at&sort_dir=desc&sort_key=display_name",
            None,
        ),
        ("sort_key=uuid", None),
    ] {
        assert_eq!(q(qs, &user(1)).default_order(), want, "{qs}");
    }
}

#[test]
fn only_project_is_the_one_project_every_match_is_in() {
    let member = user(1);
    assert_eq!(
        q("", &member).only_project(),
        Some(member.project_id.as_str())
    );
    // A member's tenant_id / project_id filters are dropped: still theirs.
    assert_eq!(
        q("project_id=other", &member).only_project(),
        Some(member.project_id.as_str())
    );
    let a = admin(1);
    assert_eq!(q("", &a).only_project(), Some(a.project_id.as_str()));
    assert_eq!(q("all_tenants=1", &a).only_project(), None);
    assert_eq!(
        q("all_tenants=1&project_id=p2", &a).only_project(),
        Some("p2")
    );
    assert_eq!(
        q("all_tenants=1&tenant_id=p3", &a).only_project(),
        Some("p3")
    );
}
