//! `GET /volumes` and `/volumes/detail`: the project's volumes (every
//! project's for an admin with `all_tenants`), Cinder's exact-match
//! filters, `sort`/`sort_key`/`sort_dir`, and marker/limit paging with a
//! `next` link. The query, selection and paging are shared with the
//! snapshot lists ([`Listed`]).

use super::*;
use crate::store::Table;
use serde::{de::DeserializeOwned, Serialize};

/// The list query: filters, sort and page.
pub(super) struct ListQuery {
    all_tenants: bool,
    project: Option<String>,
    pub(super) filters: Vec<(String, String)>,
    limit: Option<usize>,
    /// Rows skipped after the marker (Cinder's `offset`).
    offset: usize,
    marker: Option<String>,
    sort: Vec<(String, bool)>,
}

/// A row a list shows: how it is sorted and filtered.
pub(super) trait Listed {
    fn id(&self) -> &str;
    fn project(&self) -> &str;
    /// The text that orders it by sort key `key`.
    fn sort_value(&self, key: &str) -> String;
    /// Whether it passes the exact-match filter `key` = `want` (unknown
    /// filters are ignored, as Cinder ignores those its resource-filter
    /// file does not list).
    fn passes(&self, key: &str, want: &str) -> bool;
}

/// A `metadata` filter (`{'k': 'v'}`, Python's quotes or JSON's): every
/// pair in `have`.
pub(super) fn metadata_passes(have: &BTreeMap<String, String>, want: &str) -> bool {
    serde_json::from_str::<BTreeMap<String, String>>(&want.replace('\'', "\""))
        .map(|m| m.iter().all(|(k, x)| have.get(k) == Some(x)))
        .unwrap_or(false)
}

const SORT_KEYS: &[&str] = &[
    "id",
    "status",
    "size",
    "availability_zone",
    "created_at",
    "updated_at",
    "display_name",
    "name",
    "bootable",
];

pub(super) fn parse_list(q: Option<&str>, sort_keys: &[&str]) -> Result<ListQuery, Fault> {
    let mut out = ListQuery {
        all_tenants: false,
        project: None,
        filters: Vec::new(),
        limit: None,
        offset: 0,
        marker: None,
        sort: Vec::new(),
    };
    let pairs: Vec<(String, String)> = q
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let mut sort_key = None;
    let mut sort_dir = None;
    for (k, v) in pairs {
        match k.as_str() {
            "all_tenants" => out.all_tenants = !matches!(v.as_str(), "0" | "false" | "False"),
            "project_id" => out.project = Some(v),
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| invalid_input("limit must be an integer"))?;
                if n < 0 {
                    return Err(invalid_input("limit must be >= 0"));
                }
                out.limit = Some(n as usize);
            }
            "marker" => out.marker = Some(v),
            "offset" => {
                out.offset = v
                    .parse()
                    .map_err(|_| invalid_input("offset must be an integer >= 0"))?;
            }
            "sort" => {
                for part in v.split(',') {
                    let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
                    out.sort.push((key.trim().to_string(), sort_desc(dir)?));
                }
            }
            "sort_key" => sort_key = Some(v),
            "sort_dir" => sort_dir = Some(sort_desc(&v)?),
            "with_count" => {}
            _ => out.filters.push((k, v)),
        }
    }
    if let Some(k) = sort_key {
        out.sort.push((k, sort_dir.unwrap_or(true)));
    }
    for (k, _) in &out.sort {
        if !sort_keys.contains(&k.as_str()) {
            return Err(invalid_input(format!("Invalid sort key {k}")));
        }
    }
    if out.sort.is_empty() {
        out.sort.push(("created_at".into(), true));
    }
    Ok(out)
}

fn sort_desc(dir: &str) -> Result<bool, Fault> {
    match dir.trim() {
        "desc" => Ok(true),
        "asc" => Ok(false),
        d => Err(invalid_input(format!(
            "Unknown sort direction {d}, must be 'desc' or 'asc'"
        ))),
    }
}

impl Listed for Volume {
    fn id(&self) -> &str {
        &self.id
    }
    fn project(&self) -> &str {
        &self.project_id
    }
    fn sort_value(&self, key: &str) -> String {
        match key {
            "id" => self.id.clone(),
            "status" => self.status.clone(),
            "size" => format!("{:020}", self.size),
            "availability_zone" => self.availability_zone.clone(),
            "updated_at" => self.updated_at.map(|t| iso_z(&t)).unwrap_or_default(),
            "display_name" | "name" => self.name.clone().unwrap_or_default(),
            "bootable" => self.bootable.to_string(),
            _ => format!("{}", self.created_at.format("%Y-%m-%dT%H:%M:%S%.9f")),
        }
    }
    fn passes(&self, key: &str, want: &str) -> bool {
        match key {
            "name" | "display_name" => self.name.as_deref() == Some(want),
            "status" => self.status == want,
            "bootable" => self.bootable.to_string() == want.to_ascii_lowercase(),
            "availability_zone" => self.availability_zone == want,
            "size" => self.size.to_string() == want,
            "metadata" => metadata_passes(&self.metadata, want),
            _ => true,
        }
    }
}

/// The rows of `table` that list query `q` selects for the caller (its
/// project's; an admin's `all_tenants` every project's or `project_id`'s),
/// sorted and paged; and whether to link a next page (the page is full).
pub(super) fn select<T>(
    table: &Table<T>,
    r: &Req,
    q: &ListQuery,
) -> Result<(Vec<Arc<T>>, bool), Fault>
where
    T: Listed + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let everyone = r.admin() && q.all_tenants;
    let project = match (&q.project, everyone) {
        (Some(p), true) => Some(p.clone()),
        (_, true) => None,
        _ => Some(r.ctx.project_id.clone()),
    };
    let mut rows = table.filter(|v| {
        project.as_deref().is_none_or(|p| v.project() == p)
            && q.filters.iter().all(|(k, w)| v.passes(k, w))
    });
    rows.sort_by(|a, b| {
        for (key, desc) in &q.sort {
            let o = a.sort_value(key).cmp(&b.sort_value(key));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        b.id().cmp(a.id())
    });
    if let Some(m) = &q.marker {
        let at = rows
            .iter()
            .position(|v| v.id() == m)
            .ok_or_else(|| Fault::not_found(format!("Marker {m} could not be found.")))?;
        rows.drain(..=at);
    }
    rows.drain(..q.offset.min(rows.len()));
    // Cinder links a next page whenever a page is full, even when it
    // ends the list (the next page is then empty).
    let mut more = false;
    if let Some(n) = q.limit {
        more = n > 0 && rows.len() >= n;
        rows.truncate(n);
    }
    Ok((rows, more))
}

/// A list's answer: `{"<key>": items}`, with a `<key>_links` next link
/// (to `path`, e.g. `volumes/detail`) when a page follows.
pub(super) fn listing<T: Listed>(
    r: &Req,
    q: &ListQuery,
    (key, path): (&str, &str),
    (rows, more): (Vec<Arc<T>>, bool),
    view: impl Fn(&T) -> Value,
) -> Response {
    let items: Vec<Value> = rows.iter().map(|v| view(v)).collect();
    let mut body = json!({ key: items });
    if let (true, Some(last)) = (more, rows.last()) {
        let mut next = format!(
            "{}/volume/v3/{}/{path}?marker={}",
            r.base,
            r.ctx.project_id,
            last.id()
        );
        if let Some(n) = q.limit {
            next.push_str(&format!("&limit={n}"));
        }
        body[format!("{key}_links")] = json!([{"href": next, "rel": "next"}]);
    }
    r.answer(StatusCode::OK, Some(body))
}

async fn list(
    app: Arc<App>,
    caller: Caller,
    headers: HeaderMap,
    query: Option<String>,
    full: bool,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let q = parse_list(query.as_deref(), SORT_KEYS)?;
    let found = select(&app.volumes.table, &r, &q)?;
    let at = if full { "volumes/detail" } else { "volumes" };
    Ok(listing(&r, &q, ("volumes", at), found, |v| match full {
        true => detail(&r, v),
        false => summary(&r, v),
    }))
}

pub(super) async fn list_summary(
    State(app): A,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Res {
    list(app, caller, headers, q, false).await
}

pub(super) async fn list_detail(
    State(app): A,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Res {
    list(app, caller, headers, q, true).await
}
