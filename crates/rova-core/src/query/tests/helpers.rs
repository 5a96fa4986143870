//! The small helpers: ISO 8601 parsing, Python repr and quoting, and
//! the sort order being total and stable.

use super::*;

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
