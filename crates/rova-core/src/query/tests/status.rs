//! The `status` filter: status to vm/task states, unknown statuses by
//! version, and `status=deleted`.

use super::*;

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
