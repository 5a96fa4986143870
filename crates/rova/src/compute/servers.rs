//! Server operations other than create and build: lookup with tenancy,
//! listing with Nova's query semantics, update, delete (hard or soft),
//! metadata and tags. Each write checks Nova's admission rules and then
//! changes the row with compare-and-swap under the table lock.
//!
//! A list in Nova's default order (`created_at`, `id`, `uuid`, one
//! direction) walks an index from the marker and stops after a page
//! ([`walked_page`]): the copy's ordered index when it holds every row,
//! the database's when instance rows are cached; any other order filters
//! and sorts every row.

use super::actions::{self, Logged};
use crate::app::App;
use crate::http::Ctx;
use crate::store::schema::Cell;
use crate::store::Table;
use chrono::{DateTime, Utc};
use rova_core::model::Instance;
use rova_core::query::{parse_list_query, ListContext, ListQuery};
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A server the caller may see: not deleted, and in the caller's project
/// unless the caller is an admin. Anything else is 404.
pub fn visible(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Instance>, Fault> {
    app.compute
        .instances
        .get(id)
        .filter(|i| !i.deleted && (ctx.is_admin() || i.project_id == ctx.project_id))
        .ok_or_else(|| Fault::instance_not_found(id))
}

/// Like [`visible`] but deleted servers count too (instance actions at 2.21+).
pub fn visible_even_deleted(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Instance>, Fault> {
    app.compute
        .instances
        .get(id)
        .filter(|i| ctx.is_admin() || i.project_id == ctx.project_id)
        .ok_or_else(|| Fault::instance_not_found(id))
}

/// Non-admins may not act on a locked server.
pub fn check_lock(inst: &Instance, ctx: &Ctx) -> Result<(), Fault> {
    if inst.locked() && !ctx.is_admin() {
        return Err(Fault::conflict(format!("Instance {} is locked", inst.uuid)));
    }
    Ok(())
}

/// The vm_state check of Nova's `check_instance_state` for a list of states.
pub fn check_vm_state(inst: &Instance, action: &str, allowed: &[VmState]) -> Result<(), Fault> {
    if !allowed.contains(&inst.vm_state) {
        return Err(Fault::invalid_state(
            action,
            &inst.uuid,
            "vm_state",
            inst.vm_state.as_str(),
        ));
    }
    Ok(())
}

/// The result of a list: the page and whether a next link is due.
#[derive(Default)]
pub struct Page {
    pub servers: Vec<Arc<Instance>>,
    pub more: bool,
    pub next_query: Option<String>,
}

/// The query context of a list request by `ctx`.
pub fn list_context(app: &App, ctx: &Ctx, detail: bool) -> ListContext {
    ListContext {
        is_admin: ctx.is_admin(),
        project_id: ctx.project_id.clone(),
        version: ctx.version,
        max_limit: app.cfg.max_limit,
        detail,
    }
}

/// GET /servers and /servers/detail.
pub fn list(
    app: &App,
    ctx: &Ctx,
    params: &[(String, String)],
    detail: bool,
) -> Result<Page, Fault> {
    let q = parse_list_query(params, &list_context(app, ctx, detail))?;
    let mut page = walked_page(app, &q).unwrap_or_else(|| sorted_page(app, &q))?;
    if detail {
        page.servers = page
            .servers
            .into_iter()
            .map(|i| app.compute.with_tags(i))
            .collect();
    }
    Ok(page)
}

/// Whether `row` passes `q`, its tags read from their rows when `q`
/// filters by tags.
fn keeps(app: &App, q: &ListQuery, row: &Arc<Instance>) -> bool {
    if q.uses_tags() {
        q.matches(&app.compute.with_tags(row.clone()))
    } else {
        q.matches(row)
    }
}

/// The instances' ordered index in list order: `(created_at, id)` (a
/// copy that holds every row; see [`with_list_indexes`]).
const BY_CREATED: &str = "list_order";
/// The same per project: `(project_id, created_at, id)`.
pub(crate) const BY_PROJECT: &str = "project_list_order";

/// An instance's place in Nova's default list order. The internal `id` is
/// unique, so the key is too; the index orders equal keys by row id (the
/// uuid), which is the full order's last tiebreaker anyway.
type OrderKey = (DateTime<Utc>, i64);
pub(crate) type ProjectOrderKey = (String, DateTime<Utc>, i64);

fn order_key(i: &Instance) -> OrderKey {
    (i.created_at, i.id)
}

/// The instances table, kept whole in memory, with the ordered indexes
/// [`walked_page`] walks.
pub fn with_list_indexes(table: Table<Instance>) -> Table<Instance> {
    table
        .ordered::<OrderKey>(BY_CREATED, |i| Some(order_key(i)))
        .ordered::<ProjectOrderKey>(BY_PROJECT, |i| {
            Some((i.project_id.clone(), i.created_at, i.id))
        })
}

/// The page of `q` by walking the list-order index of a copy that holds
/// every row: from the marker (or the start) in `q`'s direction, through
/// the one project `q` is pinned to if any, until `limit` rows match.
fn walk_copy(app: &App, q: &ListQuery, desc: bool) -> Result<Page, Fault> {
    let table = &app.compute.instances;
    let marker = q.find_marker(|m| table.get(m))?;
    let at = marker.as_deref().map(order_key);
    let limit = q.limit();
    let mut servers: Vec<Arc<Instance>> = Vec::with_capacity(limit.min(1024));
    let take = |row: &Arc<Instance>| {
        // The walk starts at the marker's key, included: of the rows with
        // that key (only the marker, ids being unique) keep those after it.
        let after = match (&marker, at) {
            (Some(m), Some(k)) if order_key(row) == k => {
                if desc {
                    row.uuid < m.uuid
                } else {
                    row.uuid > m.uuid
                }
            }
            _ => true,
        };
        if after && keeps(app, q, row) {
            servers.push(row.clone());
        }
        servers.len() < limit
    };
    match q.only_project() {
        Some(p) => {
            let first = (p.to_string(), DateTime::<Utc>::MIN_UTC, i64::MIN);
            let last = (p.to_string(), DateTime::<Utc>::MAX_UTC, i64::MAX);
            let at = at.map(|(t, id)| (p.to_string(), t, id));
            let range = from_marker(Bound::Included(first), Bound::Included(last), at, desc);
            table.walk(BY_PROJECT, range, desc, take)
        }
        None => {
            let range = from_marker(Bound::Unbounded, Bound::Unbounded, at, desc);
            table.walk(BY_CREATED, range, desc, take)
        }
    };
    Ok(paged(q, servers))
}

/// The part of `first..=last` a walk in direction `desc` covers when it
/// starts at key `at` (included).
fn from_marker<K>(
    first: Bound<K>,
    last: Bound<K>,
    at: Option<K>,
    desc: bool,
) -> (Bound<K>, Bound<K>) {
    match at {
        None => (first, last),
        Some(k) if desc => (first, Bound::Included(k)),
        Some(k) => (Bound::Included(k), last),
    }
}

/// A page of at most `limit` servers, with the next link when it is full.
fn paged(q: &ListQuery, servers: Vec<Arc<Instance>>) -> Page {
    let more = servers.len() == q.limit();
    let next_query = more
        .then(|| servers.last().map(|last| q.next_query(&last.uuid)))
        .flatten();
    Page {
        servers,
        more,
        next_query,
    }
}

/// Rows a walk reads from the database at a time.
const WALK_CHUNK: usize = 500;

/// The page of `q` in Nova's default order, `(created_at, id)`: walked
/// in memory when the copy holds every row ([`walk_copy`]), else read from
/// the database ([`walk_database`]). `None` when `q` asks for another
/// order; [`sorted_page`] then gives the same answer.
pub fn walked_page(app: &App, q: &ListQuery) -> Option<Result<Page, Fault>> {
    let desc = q.default_order()?;
    if q.empty_page() {
        return Some(Ok(Page::default()));
    }
    Some(if app.compute.instances.is_cached() {
        walk_database(app, q, desc)
    } else {
        walk_copy(app, q, desc)
    })
}

/// The page of `q` read from the database in Nova's default order,
/// `(created_at, id)`, by the index on `(created_ns, instance_id)` (with
/// the project first when `q` pins one): from the marker (or the start)
/// in `q`'s direction until `limit` rows match. Each chunk's keys, version
/// tokens and names come first; the columns rule out what they can
/// ([`ListQuery::column_filter`], the `name` regex), and only the rows
/// left are read whole (from the copy when it holds their version) and
/// matched.
fn walk_database(app: &App, q: &ListQuery, desc: bool) -> Result<Page, Fault> {
    let table = &app.compute.instances;
    let marker = q.find_marker(|m| table.get(m))?;
    let limit = q.limit();
    let filter = q.column_filter();
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Cell> = Vec::new();
    let mark = |params: &mut Vec<Cell>, c: Cell| {
        params.push(c);
        format!("?{}", params.len())
    };
    if let Some(d) = filter.deleted {
        let m = mark(&mut params, Cell::Bool(d));
        conds.push(format!("deleted = {m}"));
    }
    for (col, values) in &filter.exact {
        if values.is_empty() {
            return Ok(Page::default());
        }
        let marks: Vec<String> = values
            .iter()
            .map(|v| mark(&mut params, Cell::Text(v.clone())))
            .collect();
        conds.push(format!("{col} IN ({})", marks.join(", ")));
    }
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let fixed = params.len();
    let sql_for = |after: bool| {
        let mut all = conds.clone();
        if after {
            all.push(format!(
                "(created_ns, instance_id) {cmp} (?{}, ?{})",
                fixed + 1,
                fixed + 2
            ));
        }
        if all.is_empty() {
            all.push("1 = 1".into());
        }
        format!(
            "SELECT id, gen, display_name, created_ns, instance_id FROM instances \
             WHERE {} ORDER BY created_ns {dir}, instance_id {dir} LIMIT {WALK_CHUNK}",
            all.join(" AND ")
        )
    };
    let mut after: Option<(i64, i64)> = marker.as_deref().map(|m| (created_ns(m), m.id));
    let mut servers: Vec<Arc<Instance>> = Vec::with_capacity(limit.min(1024));
    loop {
        let mut p = params.clone();
        if let Some((t, id)) = after {
            p.push(Cell::Int(t));
            p.push(Cell::Int(id));
        }
        let rows = app.store.select(&sql_for(after.is_some()), p)?;
        let read = rows.len();
        let mut wanted: Vec<(String, i64)> = Vec::new();
        for r in &rows {
            let (Some(id), Some(gen)) =
                (r.first().and_then(Cell::text), r.get(1).and_then(Cell::int))
            else {
                continue;
            };
            let name = r.get(2).and_then(Cell::text);
            // A name whose NUL the column replaced is left to the full match.
            if name.is_some_and(|n| n.contains('\u{fffd}')) || q.name_allows(name) {
                wanted.push((id.to_string(), gen));
            }
        }
        if let Some(last) = rows.last() {
            let key = |i: usize| last.get(i).and_then(Cell::int).unwrap_or(0);
            after = Some((key(3), key(4)));
        }
        for row in table.resolve(&wanted)? {
            if keeps(app, q, &row) {
                servers.push(row);
                if servers.len() == limit {
                    break;
                }
            }
        }
        if servers.len() == limit || read < WALK_CHUNK {
            break;
        }
    }
    Ok(paged(q, servers))
}

/// The list-order key the `created_ns` column holds for `i`.
fn created_ns(i: &Instance) -> i64 {
    i.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The page of `q` by filtering every row, sorting the matches and
/// paging: any order.
pub fn sorted_page(app: &App, q: &ListQuery) -> Result<Page, Fault> {
    let mut all = app.compute.instances.all();
    if q.uses_tags() {
        all = all.into_iter().map(|i| app.compute.with_tags(i)).collect();
    }
    let mut rows: Vec<&Instance> = all.iter().map(|i| &**i).filter(|i| q.matches(i)).collect();
    q.sort(&mut rows);
    // Only a marker needs a lookup, once per request: a scan is far cheaper
    // than hashing every id into a map on every list.
    let lookup = |id: &str| all.iter().map(|i| &**i).find(|i| i.uuid == id);
    let (page, more) = q.paginate(rows, &lookup)?;
    let next_query = if more {
        page.last().map(|last| q.next_query(&last.uuid))
    } else {
        None
    };
    let servers = page
        .into_iter()
        .filter_map(|i| app.compute.instances.get(&i.uuid))
        .collect();
    Ok(Page {
        servers,
        more,
        next_query,
    })
}

/// Fields PUT /servers/{id} may change (already validated).
#[derive(Debug, Default, Clone)]
pub struct ServerUpdate {
    pub name: Option<String>,
    pub access_ip_v4: Option<Option<String>>,
    pub access_ip_v6: Option<Option<String>>,
    pub auto_disk_config: Option<bool>,
    pub description: Option<Option<String>>,
    pub hostname: Option<String>,
    pub pinned_availability_zone: Option<Option<String>>,
}

/// PUT /servers/{id}: not lock-checked, no state check (Nova's rules).
pub async fn update(
    app: &App,
    ctx: &Ctx,
    id: &str,
    u: ServerUpdate,
) -> Result<Arc<Instance>, Fault> {
    ctx.require_member("os_compute_api:servers:update")?;
    visible(app, ctx, id)?;
    let now = app.clock.now();
    let (inst, _) = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted {
                return Err(Fault::instance_not_found(id));
            }
            if let Some(n) = &u.name {
                i.display_name = n.clone();
            }
            if let Some(v) = &u.access_ip_v4 {
                i.access_ip_v4 = v.clone();
            }
            if let Some(v) = &u.access_ip_v6 {
                i.access_ip_v6 = v.clone();
            }
            if let Some(v) = u.auto_disk_config {
                i.auto_disk_config = v;
            }
            if let Some(v) = &u.description {
                i.display_description = v.clone();
            }
            if let Some(v) = &u.hostname {
                i.hostname = v.clone();
            }
            if let Some(pin) = &u.pinned_availability_zone {
                match (pin, &i.pinned_availability_zone) {
                    (None, _) => i.pinned_availability_zone = None,
                    (Some(new), Some(old)) if new == old => {}
                    (Some(_), Some(_)) => {
                        return Err(Fault::conflict(
                            "Cannot change the pinned availability zone of an instance to another one.",
                        ))
                    }
                    (Some(new), None) => {
                        if i.availability_zone.as_deref() != Some(new.as_str()) {
                            return Err(Fault::bad_request(format!(
                                "The requested availability zone {new} is not the current availability zone of the instance."
                            )));
                        }
                        i.pinned_availability_zone = Some(new.clone());
                    }
                }
            }
            Ok(())
        })
        .await?;
    Ok(inst)
}

/// DELETE /servers/{id}: soft delete when `reclaim_instance_interval` > 0
/// and the server has launched, else a hard delete run in the background.
pub async fn delete(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:servers:delete")?;
    let inst = visible(app, ctx, id)?;
    check_lock(&inst, ctx)?;
    let now = app.clock.now();
    let soft = app.cfg.reclaim_instance_interval > 0
        && inst.launched_at.is_some()
        && inst.vm_state != VmState::SoftDeleted;
    if soft {
        app.compute
            .update_instance_logged(id, ctx, now, Logged::bare("delete"), None, |i| {
                i.vm_state = VmState::SoftDeleted;
                i.task_state = None;
                i.power_state = PowerState::Shutdown;
                i.deleted_at = Some(now);
                Ok(())
            })
            .await?;
        return Ok(());
    }
    let log = Logged::with("delete", "compute_terminate_instance");
    app.compute
        .update_instance_logged(id, ctx, now, log, None, |i| {
            if i.deleted {
                return Err(Fault::instance_not_found(id));
            }
            i.task_state = Some(TaskState::Deleting);
            Ok(())
        })
        .await?;
    let app2 = app.clone();
    let id2 = id.to_string();
    let req = ctx.request_id.clone();
    tokio::spawn(async move {
        terminate(&app2, &id2, &req).await;
    });
    Ok(())
}

/// Tears a server down: driver, ports, shelved image, row, quota.
/// Idempotent.
pub async fn terminate(app: &Arc<App>, id: &str, request_id: &str) {
    let Some(inst) = app.compute.instances.get(id) else {
        return;
    };
    if inst.deleted {
        return;
    }
    let err = app
        .compute
        .driver_for(inst.host.as_deref())
        .destroy(&inst)
        .await
        .err();
    let now = app.clock.now();
    for vif in &inst.vifs {
        let _ = if vif.created_by_nova {
            app.networks.delete_port(&vif.port_id).await
        } else {
            app.networks.unbind_port(&vif.port_id, now).await
        };
    }
    super::scheduler::delete_shelved_image(app, &inst).await;
    super::volumes::release_server_volumes(app, &inst).await;
    let done = app
        .compute
        .update_instance_leaving_groups(id, now, |i| {
            if i.deleted {
                return Err(Fault::conflict("already deleted"));
            }
            i.vm_state = VmState::Deleted;
            i.task_state = None;
            i.power_state = PowerState::NoState;
            i.deleted = true;
            i.deleted_at = Some(now);
            i.terminated_at = Some(now);
            Ok(())
        })
        .await;
    if done.is_ok() {
        // Its quota is free now: usage is counted from the rows.
        super::scheduler::on_instance_deleted(app, &inst).await;
    }
    let e = err
        .as_ref()
        .map(|e| (e.message.as_str(), e.details.as_str()));
    actions::event_finish(app, id, request_id, "compute_terminate_instance", e).await;
}

const META_STATES: &[VmState] = &[
    VmState::Active,
    VmState::Paused,
    VmState::Suspended,
    VmState::Stopped,
];

/// Changes metadata: `replace` swaps the whole map, otherwise merges.
pub async fn set_metadata(
    app: &App,
    ctx: &Ctx,
    id: &str,
    items: BTreeMap<String, String>,
    replace: bool,
    delete_key: Option<&str>,
) -> Result<BTreeMap<String, String>, Fault> {
    ctx.require_member("os_compute_api:server-metadata:update")?;
    let inst = visible(app, ctx, id)?;
    check_lock(&inst, ctx)?;
    let action = if delete_key.is_some() {
        "delete metadata"
    } else {
        "update metadata"
    };
    let limit = app.compute.effective_quota(&inst.project_id).metadata_items;
    let now = app.clock.now();
    let (inst, _) = app
        .compute
        .update_instance(id, now, |i| {
            check_vm_state(i, action, META_STATES)?;
            if let Some(k) = delete_key {
                if i.metadata.remove(k).is_none() {
                    return Err(Fault::not_found("Metadata item was not found"));
                }
            } else {
                let mut next = if replace {
                    BTreeMap::new()
                } else {
                    i.metadata.clone()
                };
                next.extend(items);
                if limit >= 0 && next.len() as i64 > limit {
                    // Nova's MetadataLimitExceeded, checked on the merged map.
                    return Err(Fault::forbidden(format!(
                        "Maximum number of metadata items exceeds {limit}"
                    )));
                }
                i.metadata = next;
            }
            Ok(())
        })
        .await?;
    Ok(inst.metadata.clone())
}

const TAG_STATES: &[VmState] = &[
    VmState::Active,
    VmState::Paused,
    VmState::Suspended,
    VmState::Stopped,
];

pub use super::tags::TagChange;

/// Changes tags; returns the new list and whether an added tag was new.
pub async fn change_tags(
    app: &App,
    ctx: &Ctx,
    id: &str,
    change: TagChange,
) -> Result<(Vec<String>, bool), Fault> {
    ctx.require_member("os_compute_api:os-server-tags:update")?;
    visible(app, ctx, id)?;
    let now = app.clock.now();
    let action = match &change {
        TagChange::ReplaceAll(_) => "update tags",
        TagChange::Add(_) => "update tag",
        TagChange::Remove(_) => "delete tag",
        TagChange::Clear => "delete tags",
    };
    let check = |i: &Instance| check_vm_state(i, action, TAG_STATES);
    let (inst, created) = app.compute.update_tags(id, now, check, change).await?;
    Ok((inst.tags.clone(), created))
}
