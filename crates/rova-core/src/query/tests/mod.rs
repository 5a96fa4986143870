//! Unit tests for `GET /servers` query parsing, filtering, sorting and
//! paging: the shared fixtures here, one submodule per topic.

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
        op_owner: None,
        resize_hold: None,
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
                floating_ips: Vec::new(),
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

mod helpers;
mod matching;
mod names;
mod paging;
mod sorting;
mod status;
mod visibility;
