//! Turning the raw query pairs into a [`ListQuery`]: the search options
//! as Nova's `search_opts` evolves, [`parse_list_query`] with Nova's order
//! of checks, and the sort parameters.

use super::*;

#[derive(Debug, Clone, PartialEq)]
enum Opt {
    Text(String),
    List(Vec<String>),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// An insertion-ordered map with Python dict semantics: re-setting a key
/// keeps its position and replaces its value.
#[derive(Debug, Default)]
struct Opts(Vec<(String, Opt)>);

impl Opts {
    fn get(&self, k: &str) -> Option<&Opt> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }
    fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    fn set(&mut self, k: &str, v: Opt) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    fn remove(&mut self, k: &str) -> Option<Opt> {
        let i = self.0.iter().position(|(n, _)| n == k)?;
        Some(self.0.remove(i).1)
    }
    fn text(&self, k: &str) -> Option<&str> {
        match self.get(k) {
            Some(Opt::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// Validates and interprets the raw query pairs of `GET /servers` or
/// `GET /servers/detail` (in request order, repeats allowed, already
/// percent-decoded) for `ctx`. Errors are Nova's 400/403 faults; see the
/// module docs for their order.
pub fn parse_list_query(
    params: &[(String, String)],
    ctx: &ListContext,
) -> Result<ListQuery, Fault> {
    let v = ctx.version;

    // 1. The query schema: value checks, then unknown names.
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for (k, val) in params {
        match param_kind(k, v) {
            Some(kind) => {
                validate_value(k, val, kind, v)?;
                kept.push((k.clone(), val.clone()));
            }
            None => {
                if !unknown.contains(&k.as_str()) {
                    unknown.push(k);
                }
            }
        }
    }
    if v.at_least(75) && !unknown.is_empty() {
        unknown.sort_unstable();
        let names: Vec<String> = unknown.iter().map(|n| py_repr(n)).collect();
        let verb = if names.len() == 1 { "does" } else { "do" };
        return Err(Fault::bad_request(format!(
            "{} {verb} not match any of the regexes: '^_'",
            names.join(", ")
        )));
    }
    let last = |name: &str| -> Option<&str> {
        kept.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    // 2. `search_opts`: one entry per name, last value wins.
    let mut opts = Opts::default();
    for (k, val) in &kept {
        opts.set(k, Opt::Text(val.clone()));
    }
    if ctx.is_admin {
        for k in PAGING_SORTING {
            opts.remove(k);
        }
    } else {
        opts.0.retain(|(k, _)| non_admin_allowed(k, v));
    }

    // 3. Names an admin may not filter on.
    if ctx.is_admin {
        if let Some((k, _)) = opts
            .0
            .iter()
            .find(|(k, _)| JOINED_TABLE_PARAMS.contains(&k.as_str()) || k.starts_with('_'))
        {
            return Err(Fault::bad_request(format!("Invalid filter field: {k}.")));
        }
    }

    // 4. `status` (every value counts).
    opts.remove("status");
    let statuses: Vec<&str> = kept
        .iter()
        .filter(|(k, _)| k == "status")
        .map(|(_, s)| s.as_str())
        .collect();
    if !statuses.is_empty() {
        match states::states_for_statuses(&statuses) {
            None if v.at_least(38) => return Err(Fault::bad_request("Invalid status value")),
            None => return Ok(ListQuery::nothing(ctx)),
            Some(f) => {
                let mut vms: Vec<String> =
                    f.vm_states.iter().map(|s| s.as_str().to_string()).collect();
                vms.sort();
                opts.set("vm_state", Opt::List(vms));
                if let Some(ts) = f.task_states {
                    let mut ts: Vec<String> = ts.iter().map(|t| t.as_str().to_string()).collect();
                    ts.sort();
                    opts.set("task_state", Opt::List(ts));
                }
            }
        }
    }

    // 5. Time filters.
    let mut since = None;
    if let Some(s) = opts.text("changes-since") {
        let t = parse_iso8601(s)
            .ok_or_else(|| Fault::bad_request("Invalid filter field: changes-since."))?;
        since = Some(t);
        opts.set("changes-since", Opt::Time(t));
    }
    if let Some(s) = opts.text("changes-before") {
        let t = parse_iso8601(s)
            .ok_or_else(|| Fault::bad_request("Invalid filter field: changes-before."))?;
        if since.is_some_and(|since| t < since) {
            return Err(Fault::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
        opts.set("changes-before", Opt::Time(t));
    }

    // 6. Deleted rows.
    match opts.get("deleted") {
        None => {
            if !opts.contains("changes-since") && !opts.contains("changes-before") {
                opts.set("deleted", Opt::Bool(false));
            }
        }
        Some(d) => {
            let b = match d {
                Opt::Text(s) => parse_bool(s).unwrap_or(false),
                _ => false,
            };
            opts.set("deleted", Opt::Bool(b));
        }
    }
    if opts.get("vm_state") == Some(&Opt::List(vec!["deleted".to_string()])) {
        if ctx.is_admin {
            opts.set("deleted", Opt::Bool(true));
        } else {
            return Err(Fault::forbidden(
                "Only administrators may list deleted instances",
            ));
        }
    }

    // 7. Tags are comma-separated lists.
    if v.at_least(26) {
        for tf in TAG_FILTERS {
            if let Some(s) = opts.text(tf) {
                let list = s.split(',').map(str::to_string).collect();
                opts.set(tf, Opt::List(list));
            }
        }
    }

    // 8. all_tenants and locked.
    let all_tenants = match opts.text("all_tenants") {
        Some(s) if !s.is_empty() => strict_bool(s)?,
        Some(_) => true,
        None => opts.contains("all_tenants"),
    };
    opts.remove("all_tenants");
    if let Some(s) = opts.text("locked") {
        let b = strict_bool(s)?;
        opts.set("locked", Opt::Bool(b));
    }

    // 9. Tenancy.
    if all_tenants {
        if !ctx.is_admin {
            let action = if ctx.detail { "detail" } else { "index" };
            return Err(Fault::policy(&format!(
                "os_compute_api:servers:{action}:get_all_tenants"
            )));
        }
    } else {
        opts.remove("tenant_id");
        opts.set("project_id", Opt::Text(ctx.project_id.clone()));
    }

    // 10. Paging.
    let limit = match last("limit") {
        // Digits only (checked by the schema); saturate on overflow.
        Some(s) => s.parse::<usize>().unwrap_or(usize::MAX).min(ctx.max_limit),
        None => ctx.max_limit,
    };
    let marker = last("marker").map(str::to_string);

    // 11. Sorting.
    let sort = sort_params(&kept, ctx)?;

    // 12. Remap names and build the conditions.
    let mut filters = Opts::default();
    for (k, val) in opts.0 {
        let name = match k.as_str() {
            "image" => "image_ref",
            "name" => "display_name",
            "tenant_id" => "project_id",
            "flavor" => "instance_type_id",
            other => other,
        };
        filters.set(name, val);
    }
    let mut conds = Vec::new();
    let mut visibility = Visibility::All;
    let mut ip: Option<IpFilter> = None;
    let soft_deleted = filters.get("soft_deleted").map(|o| match o {
        Opt::Text(s) => !s.is_empty(),
        Opt::Bool(b) => *b,
        _ => true,
    });
    for (name, val) in &filters.0 {
        let name = name.as_str();
        if name == "deleted" {
            if let Opt::Bool(d) = val {
                visibility = if *d {
                    Visibility::Deleted {
                        include_soft: soft_deleted.unwrap_or(true),
                    }
                } else {
                    Visibility::Live {
                        include_soft: soft_deleted.unwrap_or(false),
                    }
                };
            }
        } else if let Some(col) = ExactCol::from_name(name) {
            match val {
                Opt::Text(s) => conds.push(Cond::Exact(col, vec![s.clone()])),
                Opt::List(l) if l.is_empty() => conds.push(Cond::Never),
                Opt::List(l) => conds.push(Cond::Exact(col, l.clone())),
                _ => conds.push(Cond::Never),
            }
        } else if let Some(col) = RegexCol::from_name(name) {
            let re = match val {
                Opt::Text(s) => Regex::new(s).ok(),
                _ => None,
            };
            conds.push(Cond::Regex(col, re));
        } else {
            match (name, val) {
                ("locked", Opt::Bool(b)) => conds.push(Cond::Locked(*b)),
                ("changes-since", Opt::Time(t)) => conds.push(Cond::ChangesSince(*t)),
                ("changes-before", Opt::Time(t)) => conds.push(Cond::ChangesBefore(*t)),
                ("tags", Opt::List(l)) => conds.push(Cond::TagsAll(l.clone())),
                ("tags-any", Opt::List(l)) => conds.push(Cond::TagsAny(l.clone())),
                ("not-tags", Opt::List(l)) => conds.push(Cond::NotTagsAll(l.clone())),
                ("not-tags-any", Opt::List(l)) => conds.push(Cond::NotTagsAny(l.clone())),
                ("ip", Opt::Text(s)) => {
                    ip.get_or_insert(IpFilter { v4: None, v6: None }).v4 = anchored(s);
                }
                ("ip6", Opt::Text(s)) => {
                    ip.get_or_insert(IpFilter { v4: None, v6: None }).v6 = anchored(s);
                }
                // Not an instance column (e.g. `description`): ignored.
                _ => {}
            }
        }
    }

    Ok(ListQuery {
        nothing: false,
        visibility,
        conds,
        ip,
        all_tenants,
        sort,
        limit,
        marker,
        link_params: kept,
    })
}

/// `sort_key` / `sort_dir` handling: defaults, ignored keys, admin-only
/// keys, direction checks and the tiebreakers.
fn sort_params(
    kept: &[(String, String)],
    ctx: &ListContext,
) -> Result<Vec<(SortCol, bool)>, Fault> {
    let values = |name: &str| -> Vec<String> {
        kept.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    let mut keys = values("sort_key");
    let mut dirs = values("sort_dir");
    if keys.is_empty() {
        keys.push("created_at".to_string());
    }
    if dirs.is_empty() {
        dirs.push("desc".to_string());
    }

    let ignored: Vec<&str> = ignored_sort_keys(ctx.version).collect();
    for key in keys.clone() {
        if ignored.contains(&key.as_str()) {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                if dirs.len() > i {
                    dirs.remove(i);
                }
                keys.remove(i);
            }
        } else if (key == "host" || key == "node") && !ctx.is_admin {
            return Err(Fault::forbidden(format!(
                "Only administrators can sort servers by {key}"
            )));
        }
    }

    let default_dir = dirs.first().cloned().unwrap_or_else(|| "desc".to_string());
    for d in &dirs {
        if d != "asc" && d != "desc" {
            return Err(Fault::bad_request(
                "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'",
            ));
        }
    }
    while dirs.len() < keys.len() {
        dirs.push(default_dir.clone());
    }
    if dirs.len() > keys.len() {
        return Err(Fault::bad_request(
            "Invalid input received: Sort direction size exceeds sort key size",
        ));
    }
    for tiebreak in ["created_at", "id"] {
        if !keys.iter().any(|k| k == tiebreak) {
            keys.push(tiebreak.to_string());
            dirs.push(default_dir.clone());
        }
    }
    Ok(keys
        .iter()
        .zip(&dirs)
        .filter_map(|(k, d)| SortCol::from_name(k).map(|c| (c, d == "desc")))
        .collect())
}
