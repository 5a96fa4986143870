//! Query semantics of `GET /servers` and `GET /servers/detail` (nova-facts
//! §c), as pure logic over [`Instance`]: validating and interpreting the raw
//! query pairs per microversion and caller role ([`parse_list_query`]),
//! filtering ([`ListQuery::matches`]), ordering ([`ListQuery::sort`]),
//! marker/limit paging ([`ListQuery::paginate`]) and the query string of the
//! `servers_links` "next" href ([`ListQuery::next_query`]). No I/O: the
//! caller hands in the rows and a uuid lookup.
//!
//! The order of checks follows Nova's, so when a request has several faults
//! the one Nova reports first is the one returned:
//!
//! 1. query schema (per microversion): value formats (`regex`, `date-time`,
//!    `limit`, the `sort_key` enum), then unknown names (dropped below 2.75,
//!    400 from 2.75);
//! 2. the non-admin allow-list (other names are silently dropped);
//! 3. admin-only 400 for `_`-prefixed and joined-table names;
//! 4. `status` (400 at 2.38+, an always-empty result below);
//! 5. `changes-since` / `changes-before`; `deleted`; `status=DELETED` (403
//!    for non-admins); tags; `all_tenants` (400 on a bad value); `locked`;
//!    the `get_all_tenants` policy (403); tenancy;
//! 6. sort keys (ignored keys dropped, `host`/`node` 403 for non-admins),
//!    sort directions (400);
//! 7. at paging time: an unknown marker (400).
//!
//! Where Nova's behaviour depends on its database, these choices are made:
//!
//! * Regex filters are unanchored searches with the `regex` crate,
//!   case-sensitive, `|` meaning alternation (SQLite/PostgreSQL behaviour;
//!   MySQL would be case-insensitive and escape `|`). A NULL column never
//!   matches. The text matched is what Nova's DB would hold: integers
//!   (`power_state` code, `progress`, `launch_index`) in decimal,
//!   `auto_disk_config` as `1`/`0`, `config_drive` as `True` or the empty
//!   string, and timestamps as MySQL `DATETIME` text `YYYY-MM-DD HH:MM:SS`
//!   (no fraction, no zone).
//! * A value that must be a regex (per the schema) and that the `regex`
//!   crate cannot compile (or that is empty) is rejected with Nova's schema
//!   400, so patterns valid only in Python's `re` (look-around,
//!   back-references) are refused. `launch_index` is not format-checked by
//!   Nova's schema; an uncompilable value there matches nothing.
//! * `ip` / `ip6` use the no-Neutron-extension path: a start-anchored regex
//!   over the fixed IPs of the right version; with both given a server
//!   matches if either does.
//! * `flavor` compares exactly with the embedded flavor's public id, so an
//!   unknown flavor yields an empty list. Sorting by `instance_type_id` sorts
//!   by that id as text.
//! * Sort tiebreakers are `created_at` then the internal `id` (as Nova),
//!   then `uuid` so the order is total. NULLs sort first ascending, last
//!   descending. Text compares by code point.
//! * `limit=0` returns an empty page before the marker is looked up, as
//!   Nova's DB layer does.
//! * Sort directions are validated even with `limit=0`.

use crate::error::Fault;
use crate::microversion::Microversion;
use crate::model::Instance;
use crate::states::{self, VmState};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use regex::Regex;
use std::cmp::Ordering;
use std::sync::OnceLock;

mod matching;
mod parse;
mod sort;
mod tables;
#[cfg(test)]
mod tests;
mod values;

use matching::{anchored, Cond, ExactCol, IpFilter, RegexCol, Visibility};
pub use parse::parse_list_query;
use sort::SortCol;
use tables::{
    ignored_sort_keys, non_admin_allowed, param_kind, sort_key_enum, Kind, FALSE_STRINGS,
    JOINED_TABLE_PARAMS, PAGING_SORTING, TAG_FILTERS, TRUE_STRINGS,
};
pub use values::parse_iso8601;
use values::{db_time, parse_bool, py_repr, quote_plus, strict_bool, validate_value};

/// `[api]max_limit`'s default.
pub const DEFAULT_MAX_LIMIT: usize = 1000;

/// Who is asking, at which version, on which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListContext {
    /// `context.is_admin` (admin role): lets every filter through.
    pub is_admin: bool,
    /// The caller's project; listing is scoped to it without `all_tenants`.
    pub project_id: String,
    /// The request's compute microversion.
    pub version: Microversion,
    /// `[api]max_limit` (normally [`DEFAULT_MAX_LIMIT`]).
    pub max_limit: usize,
    /// True for `/servers/detail`: only changes the policy rule named in the
    /// `all_tenants` 403.
    pub detail: bool,
}

/// A parsed, validated server-list query. Build it with
/// [`parse_list_query`].
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Nova answered `{"servers": []}` early (unknown status below 2.38).
    nothing: bool,
    visibility: Visibility,
    conds: Vec<Cond>,
    ip: Option<IpFilter>,
    all_tenants: bool,
    /// Full sort order including the tiebreakers; `true` = descending.
    sort: Vec<(SortCol, bool)>,
    /// Effective page size: `min(limit, max_limit)`.
    limit: usize,
    marker: Option<String>,
    /// The query pairs that survive the schema (what Nova's `req.params`
    /// holds), in request order, for the next link.
    link_params: Vec<(String, String)>,
}

/// The part of a query that columns decide (see
/// [`ListQuery::column_filter`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnFilter {
    /// Only rows whose `deleted` flag is this.
    pub deleted: Option<bool>,
    /// Only rows whose column (`project_id`, `user_id`, `host`, `id`: the
    /// uuid) holds one of the values.
    pub exact: Vec<(&'static str, Vec<String>)>,
}

impl ListQuery {
    /// The query Nova short-circuits to `{"servers": []}`.
    fn nothing(ctx: &ListContext) -> Self {
        ListQuery {
            nothing: true,
            visibility: Visibility::All,
            conds: Vec::new(),
            ip: None,
            all_tenants: false,
            sort: Vec::new(),
            limit: ctx.max_limit,
            marker: None,
            link_params: Vec::new(),
        }
    }

    /// True when `inst` passes every filter: tenancy (the caller's project
    /// unless `all_tenants`), deleted / soft-deleted visibility, status and
    /// every column, tag, time and IP filter.
    pub fn matches(&self, inst: &Instance) -> bool {
        !self.nothing
            && self.visibility.matches(inst)
            && self.conds.iter().all(|c| c.matches(inst))
            && self.ip.as_ref().is_none_or(|f| f.matches(inst))
    }

    /// Whether a tag filter (`tags`, `tags-any`, `not-tags`,
    /// `not-tags-any`) is among the conditions: the rows matched must
    /// then carry their tags.
    pub fn uses_tags(&self) -> bool {
        self.conds.iter().any(|c| c.on_tags())
    }

    /// Nova's ordering of two rows: the sort keys with their directions,
    /// then `created_at` and `id` in the first direction, then `uuid`.
    pub fn compare(&self, a: &Instance, b: &Instance) -> Ordering {
        for (col, desc) in &self.sort {
            let o = col.value(a).cmp(&col.value(b));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let o = a.uuid.cmp(&b.uuid);
        match self.sort.first() {
            Some((_, true)) => o.reverse(),
            _ => o,
        }
    }

    /// Sorts rows in list order (see [`ListQuery::compare`]).
    pub fn sort(&self, rows: &mut [&Instance]) {
        rows.sort_by(|a, b| self.compare(a, b));
    }

    /// Applies the marker and the limit to rows already filtered and sorted.
    /// The marker is looked up with `lookup` (which must see deleted rows
    /// too); an unknown marker is 400 `marker [<m>] not found`. Rows
    /// strictly after the marker's position in the sort order are kept, then
    /// at most `limit` of them. Returns the page and whether a `next` link
    /// is due (the page holds exactly `min(limit, max_limit)` rows, which
    /// may happen on the last page too). `limit=0` gives an empty page, no
    /// link, and skips the marker lookup.
    pub fn paginate<'a>(
        &self,
        sorted: Vec<&'a Instance>,
        lookup: &dyn Fn(&str) -> Option<&'a Instance>,
    ) -> Result<(Vec<&'a Instance>, bool), Fault> {
        if self.empty_page() {
            return Ok((Vec::new(), false));
        }
        let mut rows = sorted;
        if let Some(at) = self.find_marker(lookup)? {
            rows.retain(|r| self.compare(r, at) == Ordering::Greater);
        }
        rows.truncate(self.limit);
        let more = rows.len() == self.limit;
        Ok((rows, more))
    }

    /// True when the page is empty whatever the rows (`limit=0`, or
    /// [`ListQuery::is_always_empty`]): no marker lookup, no next link.
    pub fn empty_page(&self) -> bool {
        self.nothing || self.limit == 0
    }

    /// The marker row found with `lookup` (which must see deleted rows
    /// too), `None` without a marker, 400 `marker [<m>] not found` for an
    /// unknown one.
    pub fn find_marker<R>(
        &self,
        lookup: impl FnOnce(&str) -> Option<R>,
    ) -> Result<Option<R>, Fault> {
        match &self.marker {
            None => Ok(None),
            Some(m) => lookup(m)
                .map(Some)
                .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found"))),
        }
    }

    /// `Some(descending)` when the order is Nova's default one, `created_at`
    /// then `id` (then `uuid`) all in one direction, whichever way the
    /// request asked for it (no `sort_key`, `sort_key=created_at`, only
    /// ignored keys, a `sort_dir` alone). A list in this order can walk an
    /// index kept in `(created_at, id, uuid)` order instead of sorting.
    pub fn default_order(&self) -> Option<bool> {
        match self.sort.as_slice() {
            [(SortCol::CreatedAt, a), (SortCol::Id, b)] if a == b => Some(*a),
            _ => None,
        }
    }

    /// The one project every row that [`ListQuery::matches`] belongs to,
    /// when the query pins one: the caller's own without `all_tenants`, or
    /// a single `project_id` / `tenant_id` value with it.
    pub fn only_project(&self) -> Option<&str> {
        self.conds.iter().find_map(|c| match c {
            Cond::Exact(ExactCol::ProjectId, values) => match values.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            },
            _ => None,
        })
    }

    /// Filter, sort and page in one go over every stored row (deleted ones
    /// included, which the marker lookup needs).
    pub fn apply<'a>(&self, all: &[&'a Instance]) -> Result<(Vec<&'a Instance>, bool), Fault> {
        let mut rows: Vec<&'a Instance> = all.iter().copied().filter(|i| self.matches(i)).collect();
        self.sort(&mut rows);
        let lookup = |uuid: &str| all.iter().copied().find(|i| i.uuid == uuid);
        self.paginate(rows, &lookup)
    }

    /// The query string (no leading `?`) of the `servers_links` "next"
    /// href. Nova takes the request's parameters that survived the schema,
    /// sorts the `(name, value)` pairs, keeps one value per name (the last
    /// after sorting, i.e. the greatest), sets `marker` to `last_id` (in
    /// place if present, else appended at the end) and form-encodes them.
    pub fn next_query(&self, last_id: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .link_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        let mut collapsed: Vec<(&str, &str)> = Vec::new();
        for (k, v) in pairs {
            match collapsed.iter_mut().find(|(n, _)| *n == k) {
                Some(e) => e.1 = v,
                None => collapsed.push((k, v)),
            }
        }
        match collapsed.iter_mut().find(|(n, _)| *n == "marker") {
            Some(e) => e.1 = last_id,
            None => collapsed.push(("marker", last_id)),
        }
        collapsed
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The effective page size, `min(limit, max_limit)`.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The `marker` given, if any.
    pub fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }

    /// True when `all_tenants` was given with a true (or empty) value.
    pub fn all_tenants(&self) -> bool {
        self.all_tenants
    }

    /// The effective `(sort_key, sort_dir)` pairs, tiebreakers included.
    pub fn sort_keys(&self) -> Vec<(&'static str, &'static str)> {
        self.sort
            .iter()
            .map(|(c, d)| (c.name(), if *d { "desc" } else { "asc" }))
            .collect()
    }

    /// What a database can decide from columns alone: rows outside it can
    /// never match (rows inside must still pass [`ListQuery::matches`]).
    pub fn column_filter(&self) -> ColumnFilter {
        let deleted = match self.visibility {
            Visibility::All | Visibility::Deleted { include_soft: true } => None,
            Visibility::Live { .. } => Some(false),
            Visibility::Deleted {
                include_soft: false,
            } => Some(true),
        };
        let exact = self
            .conds
            .iter()
            .filter_map(|c| match c {
                Cond::Exact(col, values) => {
                    let name = match col {
                        ExactCol::ProjectId => "project_id",
                        ExactCol::UserId => "user_id",
                        ExactCol::Host => "host",
                        ExactCol::Uuid => "id",
                        _ => return None,
                    };
                    Some((name, values.clone()))
                }
                _ => None,
            })
            .collect();
        ColumnFilter { deleted, exact }
    }

    /// Whether a row with this `display_name` can match the query's `name`
    /// filters (the rest of [`ListQuery::matches`] still applies).
    pub fn name_allows(&self, display_name: Option<&str>) -> bool {
        self.conds.iter().all(|c| match c {
            Cond::Regex(RegexCol::DisplayName, re) => match (re, display_name) {
                (Some(re), Some(text)) => re.is_match(text),
                _ => false,
            },
            _ => true,
        })
    }

    /// True when Nova would answer an empty list without looking (an
    /// unknown `status` below 2.38): no rows and no links.
    pub fn is_always_empty(&self) -> bool {
        self.nothing
    }
}
