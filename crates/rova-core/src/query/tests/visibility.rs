//! Which rows are visible at all: `changes-since` / `changes-before`,
//! deleted and soft-deleted rows, and tenancy with `all_tenants`.

use super::*;

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

/// What the database decides from columns (`column_filter`, `name_allows`)
/// never rules out a row the full match keeps, and it does rule rows out.
#[test]
fn the_column_filter_never_drops_a_matching_row() {
    let rows = [
        inst(1),
        with(2, |i| i.display_name = "web-2".into()),
        hard_deleted(3),
        soft_deleted(4),
        with(5, |i| {
            i.project_id = "p2".into();
            i.host = Some("h2".into());
        }),
        with(6, |i| i.user_id = "u2".into()),
    ];
    let queries = [
        "",
        "name=web",
        "name=^vm",
        "deleted=true",
        "deleted=false",
        "deleted=true&changes-since=2024-01-01T00:00:00Z",
        "changes-since=2024-01-01T00:00:00Z",
        "all_tenants=1",
        "all_tenants=1&project_id=p2",
        "all_tenants=1&host=h2",
        "all_tenants=1&user_id=u2",
        "all_tenants=1&uuid=nope",
    ];
    let mut ruled_out = 0;
    for qs in queries {
        let c = admin(66);
        let query = q(qs, &c);
        let f = query.column_filter();
        for i in &rows {
            let by_columns = f.deleted.is_none_or(|d| d == i.deleted)
                && f.exact.iter().all(|(col, values)| {
                    let v = match *col {
                        "project_id" => Some(i.project_id.as_str()),
                        "user_id" => Some(i.user_id.as_str()),
                        "host" => i.host.as_deref(),
                        "id" => Some(i.uuid.as_str()),
                        other => panic!("unexpected column {other}"),
                    };
                    v.is_some_and(|v| values.iter().any(|w| w == v))
                })
                && query.name_allows(Some(&i.display_name));
            if query.matches(i) {
                assert!(
                    by_columns,
                    "{qs}: row {} matches but the columns rule it out",
                    i.id
                );
            } else if !by_columns {
                ruled_out += 1;
            }
        }
    }
    assert!(ruled_out > 10, "the columns decide something ({ruled_out})");
}
