//! `GET /image/v2/images` and `GET /image/v2/images/{id}`: parsing
//! Glance's list query (filters, time operators, sorting, marker paging),
//! visibility, matching, ordering and the page with its `next` link.

use super::*;
use crate::image::members::Member;

/// A comparison operator in a Glance time filter (`created_at=gt:...`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Parsed `GET /v2/images` query.
#[derive(Debug, Default)]
pub(super) struct ListQuery {
    limit: usize,
    marker: Option<String>,
    /// (key, descending)
    sort: Vec<(String, bool)>,
    /// Attribute filters: key -> accepted values (`in:` gives several).
    attrs: Vec<(String, Vec<String>)>,
    visibility: Option<String>,
    /// Which shared images offered to the caller are listed (`None`:
    /// Glance's default, the accepted ones).
    member_status: Option<String>,
    tags: Vec<String>,
    os_hidden: Option<bool>,
    protected: Option<bool>,
    size_min: Option<u64>,
    size_max: Option<u64>,
    times: Vec<(String, TimeOp, chrono::DateTime<chrono::Utc>)>,
    /// Extra-property filters.
    props: Vec<(String, String)>,
}

fn parse_bool_param(name: &str, v: &str) -> Result<bool, Fault> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(Fault::bad_request(format!(
            "Invalid value '{v}' for parameter '{name}'"
        ))),
    }
}

fn check_sort_key(k: &str) -> Result<(), Fault> {
    if SORT_KEYS.contains(&k) {
        Ok(())
    } else {
        Err(Fault::bad_request(format!(
            "Invalid sort key: {k}. It must be one of the following: {}.",
            SORT_KEYS.join(", ")
        )))
    }
}

fn parse_dir(d: &str) -> Result<bool, Fault> {
    match d {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(Fault::bad_request(format!("Invalid sort direction: {d}"))),
    }
}

pub(super) fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, Fault> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let mut sort_keys: Vec<String> = Vec::new();
    let mut sort_dirs: Vec<String> = Vec::new();
    let mut new_sort: Option<String> = None;
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| Fault::bad_request("limit param must be an integer"))?;
                if n < 0 {
                    return Err(Fault::bad_request("limit param must be positive"));
                }
                q.limit = (n as usize).min(MAX_LIMIT);
            }
            "marker" => q.marker = Some(v.clone()),
            "sort_key" => sort_keys.extend(v.split(',').map(|s| s.trim().to_string())),
            "sort_dir" => sort_dirs.extend(v.split(',').map(|s| s.trim().to_string())),
            "sort" => new_sort = Some(v.clone()),
            "visibility" => {
                if v != "all" && !VISIBILITIES.contains(&v.as_str()) {
                    return Err(Fault::bad_request(format!("Invalid visibility value: {v}")));
                }
                q.visibility = Some(v.clone());
            }
            "tag" => q.tags.push(v.clone()),
            "os_hidden" => q.os_hidden = Some(parse_bool_param("os_hidden", v)?),
            "protected" => q.protected = Some(parse_bool_param("protected", v)?),
            "member_status" => {
                if !["accepted", "pending", "rejected", "all"].contains(&v.as_str()) {
                    return Err(Fault::bad_request(format!("Invalid status value: {v}")));
                }
                q.member_status = Some(v.clone());
            }
            "size_min" | "size_max" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| Fault::bad_request(format!("Invalid value for {k}: {v}")))?;
                if k == "size_min" {
                    q.size_min = Some(n);
                } else {
                    q.size_max = Some(n);
                }
            }
            "created_at" | "updated_at" => {
                let (op, val) = match v.split_once(':') {
                    Some((o, rest)) if ["eq", "neq", "gt", "gte", "lt", "lte"].contains(&o) => {
                        (o, rest)
                    }
                    _ => ("eq", v.as_str()),
                };
                let op = match op {
                    "neq" => TimeOp::Neq,
                    "gt" => TimeOp::Gt,
                    "gte" => TimeOp::Gte,
                    "lt" => TimeOp::Lt,
                    "lte" => TimeOp::Lte,
                    _ => TimeOp::Eq,
                };
                let t = chrono::DateTime::parse_from_rfc3339(val)
                    .map_err(|_| Fault::bad_request(format!("Invalid time format for {k}.")))?;
                q.times.push((k.clone(), op, t.with_timezone(&chrono::Utc)));
            }
            "id" | "name" | "status" | "owner" | "container_format" | "disk_format" => {
                let vals: Vec<String> = match v.strip_prefix("in:") {
                    Some(list) => list
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_string())
                        .collect(),
                    None => vec![v.clone()],
                };
                if k == "status" {
                    for s in &vals {
                        if !STATUSES.contains(&s.as_str()) {
                            return Err(Fault::bad_request(format!("Invalid status value: {s}")));
                        }
                    }
                }
                q.attrs.push((k.clone(), vals));
            }
            _ => q.props.push((k.clone(), v.clone())),
        }
    }
    if let Some(s) = new_sort {
        if !sort_keys.is_empty() || !sort_dirs.is_empty() {
            return Err(Fault::bad_request(
                "The sort and sort_key/sort_dir parameters cannot be used together.",
            ));
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
            check_sort_key(key)?;
            q.sort.push((key.to_string(), parse_dir(dir)?));
        }
    } else {
        if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
            return Err(Fault::bad_request(
                "Number of sort dirs does not match the number of sort keys",
            ));
        }
        let default_dir = match sort_dirs.first() {
            Some(d) => parse_dir(d)?,
            None => true,
        };
        for (i, key) in sort_keys.iter().enumerate() {
            check_sort_key(key)?;
            let desc = match sort_dirs.get(i) {
                Some(d) if sort_dirs.len() > 1 => parse_dir(d)?,
                _ => default_dir,
            };
            q.sort.push((key.clone(), desc));
        }
    }
    for tie in ["created_at", "id"] {
        if !q.sort.iter().any(|(k, _)| k == tie) {
            q.sort.push((tie.to_string(), true));
        }
    }
    Ok(q)
}

/// True when the image appears in a listing for this caller and
/// visibility filter. Without a filter Glance leaves out community images
/// the caller does not own (admins see everything).
pub(super) fn listed_for(
    img: &Image,
    ctx_project: &str,
    is_admin: bool,
    visibility: Option<&str>,
    (membership, member_status): (Option<&Member>, &str),
) -> bool {
    if !Images::listed(img, ctx_project, is_admin, membership, member_status) {
        return false;
    }
    match visibility {
        None => is_admin || img.visibility != "community" || img.owner == ctx_project,
        Some("all") => true,
        Some(v) => img.visibility == v,
    }
}

fn attr_string(img: &Image, key: &str) -> Option<String> {
    match key {
        "id" => Some(img.id.clone()),
        "name" => img.name.clone(),
        "status" => Some(img.status.clone()),
        "owner" => Some(img.owner.clone()),
        "visibility" => Some(img.visibility.clone()),
        "container_format" => img.container_format.clone(),
        "disk_format" => img.disk_format.clone(),
        _ => None,
    }
}

fn prop_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies every filter except visibility and paging.
fn matches(img: &Image, q: &ListQuery) -> bool {
    for (k, vals) in &q.attrs {
        match attr_string(img, k) {
            Some(s) if vals.contains(&s) => {}
            _ => return false,
        }
    }
    if !q.tags.iter().all(|t| img.tags.contains(t)) {
        return false;
    }
    if img.os_hidden != q.os_hidden.unwrap_or(false) {
        return false;
    }
    if q.protected.is_some_and(|p| p != img.protected) {
        return false;
    }
    if let Some(min) = q.size_min {
        if img.size.is_none_or(|s| s < min) {
            return false;
        }
    }
    if let Some(max) = q.size_max {
        if img.size.is_none_or(|s| s > max) {
            return false;
        }
    }
    for (k, op, t) in &q.times {
        let v = if k == "created_at" {
            img.created_at
        } else {
            img.updated_at
        };
        let ok = match op {
            TimeOp::Eq => v == *t,
            TimeOp::Neq => v != *t,
            TimeOp::Gt => v > *t,
            TimeOp::Gte => v >= *t,
            TimeOp::Lt => v < *t,
            TimeOp::Lte => v <= *t,
        };
        if !ok {
            return false;
        }
    }
    q.props.iter().all(|(k, want)| {
        img.properties
            .get(k)
            .is_some_and(|v| prop_string(v) == *want)
    })
}

fn cmp_key(a: &Image, b: &Image, key: &str) -> Ordering {
    match key {
        "size" => a.size.cmp(&b.size),
        "virtual_size" => a.virtual_size.cmp(&b.virtual_size),
        "min_disk" => a.min_disk.cmp(&b.min_disk),
        "min_ram" => a.min_ram.cmp(&b.min_ram),
        "created_at" => a.created_at.cmp(&b.created_at),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        _ => attr_string(a, key).cmp(&attr_string(b, key)),
    }
}

fn cmp_images(a: &Image, b: &Image, sort: &[(String, bool)]) -> Ordering {
    for (key, desc) in sort {
        let o = cmp_key(a, b, key);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Filters, sorts and pages: returns the page and whether it was full
/// (Glance then offers a `next` link).
pub(super) fn select_page(
    mut imgs: Vec<Arc<Image>>,
    q: &ListQuery,
    marker: Option<&Image>,
) -> (Vec<Arc<Image>>, bool) {
    imgs.retain(|i| matches(i, q));
    imgs.sort_by(|a, b| cmp_images(a, b, &q.sort));
    if let Some(m) = marker {
        imgs.retain(|i| cmp_images(i, m, &q.sort) == Ordering::Greater);
    }
    imgs.truncate(q.limit);
    let full = !imgs.is_empty() && imgs.len() == q.limit;
    (imgs, full)
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub(super) async fn list_images(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    RawQuery(raw): RawQuery,
) -> GResult<Response> {
    let pairs: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let q = parse_list_query(&pairs)?;
    let marker = match &q.marker {
        Some(m) => Some(
            app.images
                .visible(m, &ctx.project_id, ctx.is_admin())
                .ok_or_else(|| {
                    gerr(
                        400,
                        format!("Invalid marker. Image {m} could not be found."),
                    )
                })?,
        ),
        None => None,
    };
    let member_status = q.member_status.as_deref().unwrap_or("accepted");
    let candidates = app.images.filter(|i| {
        let membership = app.images.membership(&i.id, &ctx.project_id);
        i.status != "deleted"
            && listed_for(
                i,
                &ctx.project_id,
                ctx.is_admin(),
                q.visibility.as_deref(),
                (membership.as_deref(), member_status),
            )
    });
    let (page, full) = select_page(candidates, &q, marker.as_deref());
    let mut rest: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "marker").collect();
    let first = if rest.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{}", encode(&rest))
    };
    let mut body = json!({
        "images": page.iter().map(|i| image_json(i)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/images",
    });
    if full {
        if let Some(last) = page.last() {
            rest.push(("marker".into(), last.id.clone()));
            body["next"] = json!(format!("/v2/images?{}", encode(&rest)));
        }
    }
    Ok(ok_json(body))
}

pub(super) async fn show_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = app
        .images
        .visible(&id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| no_image(&id))?;
    Ok(ok_json(image_json(&img)))
}
