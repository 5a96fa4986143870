//! `GET /volumes` and `/volumes/detail`: the project's volumes (every
//! project's for an admin with `all_tenants`), Cinder's exact-match
//! filters, `sort`/`sort_key`/`sort_dir`, and marker/limit paging with a
//! `next` link.

use super::*;

/// The list query: filters, sort and page.
struct ListQuery {
    all_tenants: bool,
    project: Option<String>,
    filters: Vec<(String, String)>,
    limit: Option<usize>,
    marker: Option<String>,
    sort: Vec<(String, bool)>,
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

fn parse_list(q: Option<&str>) -> Result<ListQuery, Fault> {
    let mut out = ListQuery {
        all_tenants: false,
        project: None,
        filters: Vec::new(),
        limit: None,
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
            "sort" => {
                for part in v.split(',') {
                    let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
                    out.sort.push((key.trim().to_string(), sort_desc(dir)?));
                }
            }
            "sort_key" => sort_key = Some(v),
            "sort_dir" => sort_dir = Some(sort_desc(&v)?),
            "offset" | "with_count" => {}
            _ => out.filters.push((k, v)),
        }
    }
    if let Some(k) = sort_key {
        out.sort.push((k, sort_dir.unwrap_or(true)));
    }
    for (k, _) in &out.sort {
        if !SORT_KEYS.contains(&k.as_str()) {
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

fn sort_value(v: &Volume, key: &str) -> String {
    match key {
        "id" => v.id.clone(),
        "status" => v.status.clone(),
        "size" => format!("{:020}", v.size),
        "availability_zone" => v.availability_zone.clone(),
        "updated_at" => v.updated_at.map(|t| iso_z(&t)).unwrap_or_default(),
        "display_name" | "name" => v.name.clone().unwrap_or_default(),
        "bootable" => v.bootable.to_string(),
        _ => format!("{}", v.created_at.format("%Y-%m-%dT%H:%M:%S%.9f")),
    }
}

/// Whether a volume passes one exact-match filter (unknown ones ignored,
/// as Cinder ignores filters its resource-filter file does not list).
fn passes(v: &Volume, key: &str, want: &str) -> bool {
    match key {
        "name" | "display_name" => v.name.as_deref() == Some(want),
        "status" => v.status == want,
        "bootable" => v.bootable.to_string() == want.to_ascii_lowercase(),
        "availability_zone" => v.availability_zone == want,
        "size" => v.size.to_string() == want,
        "metadata" => serde_json::from_str::<BTreeMap<String, String>>(&want.replace('\'', "\""))
            .map(|m| m.iter().all(|(k, x)| v.metadata.get(k) == Some(x)))
            .unwrap_or(false),
        _ => true,
    }
}

fn listed(app: &App, r: &Req, q: &ListQuery) -> Result<(Vec<Arc<Volume>>, bool), Fault> {
    let everyone = r.admin() && q.all_tenants;
    let project = match (&q.project, everyone) {
        (Some(p), true) => Some(p.clone()),
        (_, true) => None,
        _ => Some(r.ctx.project_id.clone()),
    };
    let mut vols = app.volumes.table.filter(|v| {
        project.as_deref().is_none_or(|p| v.project_id == p)
            && q.filters.iter().all(|(k, w)| passes(v, k, w))
    });
    vols.sort_by(|a, b| {
        for (key, desc) in &q.sort {
            let o = sort_value(a, key).cmp(&sort_value(b, key));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        b.id.cmp(&a.id)
    });
    if let Some(m) = &q.marker {
        let at = vols
            .iter()
            .position(|v| &v.id == m)
            .ok_or_else(|| Fault::not_found(format!("Marker {m} could not be found.")))?;
        vols.drain(..=at);
    }
    let mut more = false;
    if let Some(n) = q.limit {
        more = vols.len() > n;
        vols.truncate(n);
    }
    Ok((vols, more))
}

async fn list(
    app: Arc<App>,
    caller: Caller,
    headers: HeaderMap,
    query: Option<String>,
    full: bool,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let q = parse_list(query.as_deref())?;
    let (vols, more) = listed(&app, &r, &q)?;
    let items: Vec<Value> = vols
        .iter()
        .map(|v| if full { detail(&r, v) } else { summary(&r, v) })
        .collect();
    let mut body = json!({ "volumes": items });
    if let (true, Some(last)) = (more, vols.last()) {
        let path = if full { "volumes/detail" } else { "volumes" };
        let mut next = format!(
            "{}/volume/v3/{}/{path}?marker={}",
            r.base, r.ctx.project_id, last.id
        );
        if let Some(n) = q.limit {
            next.push_str(&format!("&limit={n}"));
        }
        body["volumes_links"] = json!([{"href": next, "rel": "next"}]);
    }
    Ok(r.answer(StatusCode::OK, Some(body)))
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
