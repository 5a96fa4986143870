//! List handling shared by every Neutron collection: parsing filters,
//! `fields`, sorting and marker paging from the query string; selecting
//! and ordering rows; the list and single-resource response bodies.

use super::*;

/// Parsed list query: filters (repeated values OR together), `fields`,
/// paging and sorting.
#[derive(Debug, Default)]
pub(super) struct ListParams {
    pub(super) filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    limit: Option<usize>,
    marker: Option<String>,
    /// (key, descending)
    sort: Vec<(String, bool)>,
    page_reverse: bool,
    /// The query as given, for building links.
    raw: Vec<(String, String)>,
}

pub(super) fn parse_bool(key: &str, v: &str) -> NResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' cannot be converted to boolean."
        ))),
    }
}

pub(super) fn parse_params(raw: Option<&str>) -> NResult<ListParams> {
    let pairs: Vec<(String, String)> = raw
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut p = ListParams::default();
    let mut keys: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "fields" => p.fields.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "limit" => {
                let n: i64 = v.parse().map_err(|_| {
                    bad(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    ))
                })?;
                if n < 0 {
                    return Err(bad(format!(
                        "Limit must be an integer 0 or greater and not '{v}'"
                    )));
                }
                p.limit = (n > 0).then_some(n as usize);
            }
            "marker" => p.marker = Some(v.clone()),
            "sort_key" => keys.push(v.clone()),
            "sort_dir" => dirs.push(v.clone()),
            "page_reverse" => p.page_reverse = parse_bool("page_reverse", v)?,
            _ => match p.filters.iter_mut().find(|(fk, _)| fk == k) {
                Some((_, vals)) => vals.push(v.clone()),
                None => p.filters.push((k.clone(), vec![v.clone()])),
            },
        }
    }
    if keys.len() != dirs.len() && !dirs.is_empty() {
        return Err(bad("The number of sort_keys and sort_dirs must be same"));
    }
    for (i, k) in keys.iter().enumerate() {
        let desc = match dirs.get(i).map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(d) => {
                return Err(bad(format!(
                    "{d} is invalid value for sort_dir, valid values are 'asc' and 'desc'"
                )))
            }
        };
        p.sort.push((k.clone(), desc));
    }
    p.raw = pairs;
    Ok(p)
}

/// Does a rendered attribute match one of the wanted filter values?
fn value_matches(key: &str, v: &Value, wants: &[String]) -> NResult<bool> {
    for w in wants {
        let hit = match v {
            Value::Bool(b) => parse_bool(key, w)? == *b,
            Value::Number(n) => n.to_string() == *w,
            Value::String(s) => s == w,
            Value::Array(a) => a.iter().any(|e| e.as_str() == Some(w.as_str())),
            Value::Null | Value::Object(_) => false,
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

/// Filters, sorts, pages and projects rendered resources; `skip` names
/// filters the caller has already applied.
pub(super) fn select(
    mut items: Vec<Value>,
    p: &ListParams,
    attrs: &[&str],
    skip: &[&str],
) -> NResult<(Vec<Value>, bool)> {
    for (k, wants) in &p.filters {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            // Nothing here carries tags.
            "tags" | "tags-any" => items.clear(),
            "not-tags" | "not-tags-any" => {}
            _ if attrs.contains(&k.as_str()) => {
                let mut kept = Vec::with_capacity(items.len());
                for it in items {
                    if value_matches(k, &it[k.as_str()], wants)? {
                        kept.push(it);
                    }
                }
                items = kept;
            }
            _ => return Err(bad(format!("{k} is invalid attribute for filtering"))),
        }
    }
    let mut sort = p.sort.clone();
    for (k, _) in &sort {
        if !attrs.contains(&k.as_str()) {
            return Err(bad(format!("{k} is invalid attribute for sort_keys")));
        }
    }
    if sort.is_empty() {
        sort.push(("created_at".into(), false));
    }
    if !sort.iter().any(|(k, _)| k == "id") {
        sort.push(("id".into(), false));
    }
    let order = |a: &Value, b: &Value| {
        for (k, desc) in &sort {
            let o = cmp_values(&a[k.as_str()], &b[k.as_str()]);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    items.sort_by(order);
    if p.page_reverse {
        items.reverse();
    }
    if let Some(m) = &p.marker {
        let pos = items
            .iter()
            .position(|it| it["id"].as_str() == Some(m.as_str()));
        match pos {
            Some(i) => {
                items.drain(..=i);
            }
            None => {
                return Err(NeutronError::new(
                    404,
                    "HTTPNotFound",
                    format!("Marker {m} could not be found."),
                ))
            }
        }
    }
    let mut more = false;
    if let Some(limit) = p.limit {
        more = items.len() > limit;
        items.truncate(limit);
    }
    if p.page_reverse {
        items.reverse();
    }
    if !p.fields.is_empty() {
        items = items
            .into_iter()
            .map(|it| {
                let mut m = Map::new();
                for f in &p.fields {
                    if let Some(v) = it.get(f) {
                        m.insert(f.clone(), v.clone());
                    }
                }
                Value::Object(m)
            })
            .collect();
    }
    Ok((items, more))
}

/// A list response with Neutron's `<collection>_links` when paging.
pub(super) fn list_body(
    host: &str,
    collection: &str,
    path: &str,
    items: Vec<Value>,
    more: bool,
    p: &ListParams,
) -> Value {
    let mut body = Map::new();
    let mut links = Vec::new();
    if let Some(limit) = p.limit {
        let id_of = |v: Option<&Value>| v.and_then(|v| v["id"].as_str()).map(str::to_string);
        let link = |marker: String, reverse: bool| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &p.raw {
                if !["limit", "marker", "page_reverse"].contains(&k.as_str()) {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("limit", &limit.to_string());
            s.append_pair("marker", &marker);
            if reverse {
                s.append_pair("page_reverse", "True");
            }
            format!("{host}/network/v2.0/{path}?{}", s.finish())
        };
        // Going forwards, "next" follows the last item; paging backwards
        // swaps the roles.
        let (fwd_more, back_more) = if p.page_reverse {
            (p.marker.is_some(), more)
        } else {
            (more, p.marker.is_some())
        };
        if fwd_more {
            if let Some(m) = id_of(items.last()) {
                links.push(json!({"rel": "next", "href": link(m, false)}));
            }
        }
        if back_more {
            if let Some(m) = id_of(items.first()) {
                links.push(json!({"rel": "previous", "href": link(m, true)}));
            }
        }
    }
    body.insert(collection.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{collection}_links"), Value::Array(links));
    }
    Value::Object(body)
}

/// A collection's list answer: `items` (the rows the caller sees,
/// rendered) filtered, sorted, paged and projected as query `raw` asks.
pub(super) fn list_response(
    headers: &HeaderMap,
    raw: Option<&str>,
    collection: &str,
    attrs: &[&str],
    items: Vec<Value>,
) -> NResult<Response> {
    let p = parse_params(raw)?;
    let (items, more) = select(items, &p, attrs, &[])?;
    let body = list_body(&host_url(headers), collection, collection, items, more, &p);
    Ok(axum::Json(body).into_response())
}

/// Applies `fields` to a single rendered resource.
pub(super) fn project_fields(v: Value, raw: Option<&str>) -> Value {
    let fields: Vec<String> = raw
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "fields")
                .flat_map(|(_, v)| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        return v;
    }
    let mut m = Map::new();
    for f in fields {
        if let Some(x) = v.get(&f) {
            m.insert(f, x.clone());
        }
    }
    Value::Object(m)
}

pub(super) fn one(key: &str, v: Value) -> Response {
    axum::Json(json!({ key: v })).into_response()
}

pub(super) fn created(key: &str, v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(json!({ key: v }))).into_response()
}
