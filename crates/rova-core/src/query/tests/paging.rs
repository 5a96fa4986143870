//! Paging: `limit` validation, markers and the next link.

use super::*;

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
