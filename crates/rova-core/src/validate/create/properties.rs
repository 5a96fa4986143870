//! The create properties with their own small schemas: `personality`,
//! `security_groups`, `trusted_image_certificates` and
//! `os:scheduler_hints`.

use super::*;

pub(super) fn personality(field: &str, val: &Value) -> VResult<Vec<InjectedFile>> {
    let items = fields::array(field, val)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let obj = object(Some(&idx), item)?;
        let path = obj
            .get("path")
            .map(|p| fields::string("path", p))
            .transpose()?;
        let contents = obj
            .get("contents")
            .map(|c| fields::base64("contents", c, None))
            .transpose()?;
        check_additional(Some(&idx), item, obj, &["path", "contents"])?;
        // Nova indexes both keys unconditionally; report a missing one
        // instead of failing hard.
        check_required(Some(&idx), item, obj, &["path", "contents"])?;
        out.push(InjectedFile {
            path: path.unwrap_or_default(),
            contents: contents.unwrap_or_default(),
        });
    }
    Ok(out)
}

pub(super) fn security_groups(field: &str, val: &Value) -> VResult<Vec<String>> {
    let items = fields::array(field, val)?;
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let obj = object(Some(&idx), item)?;
        let name = obj
            .get("name")
            .map(|n| fields::name("name", n))
            .transpose()?;
        check_additional(Some(&idx), item, obj, &["name"])?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

pub(super) fn trusted_certs(field: &str, val: &Value) -> VResult<Option<Vec<String>>> {
    check_type(field, val, &[Ty::Arr, Ty::Null])?;
    let Some(items) = val.as_array() else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(invalid(field, val, "[] should be non-empty"));
    }
    if items.len() > 50 {
        return Err(invalid(
            field,
            val,
            format!("{} is too long", py::repr(val)),
        ));
    }
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(invalid(
                field,
                val,
                format!("{} has non-unique elements", py::repr(val)),
            ));
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let s = fields::string(&idx, item)?;
        fields::min_length(&idx, item, &s, 1)?;
        out.push(s);
    }
    Ok(Some(out))
}

/// A uuid string or a list of uuid strings (`group`, `different_host`).
pub(super) fn uuid_or_uuid_list(v: &Value) -> bool {
    match v {
        Value::String(s) => fields::is_uuid_like(s),
        Value::Array(a) => a
            .iter()
            .all(|x| x.as_str().is_some_and(fields::is_uuid_like)),
        _ => false,
    }
}

/// The scheduler-hints schema: known keys checked, others allowed.
pub(super) fn hints(field: &str, val: &Value) -> VResult<BTreeMap<String, Value>> {
    let obj = object(Some(field), val)?;
    for key in [
        "group",
        "different_host",
        "same_host",
        "query",
        "target_cell",
        "different_cell",
        "build_near_host_ip",
        "cidr",
    ] {
        let Some(h) = obj.get(key) else { continue };
        match key {
            "group" | "different_host" if !uuid_or_uuid_list(h) => {
                return Err(fields::one_of_fail(key, h));
            }
            "same_host" => {
                check_type(key, h, &[Ty::Str, Ty::Arr])?;
                if let Some(items) = h.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        fields::uuid(&i.to_string(), item)?;
                    }
                }
            }
            "query" => check_type(key, h, &[Ty::Str, Ty::Obj])?,
            "target_cell" => drop(fields::name(key, h)?),
            "different_cell" => {
                check_type(key, h, &[Ty::Str, Ty::Arr])?;
                if let Some(items) = h.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        fields::string(&i.to_string(), item)?;
                    }
                }
            }
            "build_near_host_ip" => drop(fields::ip_address(key, h)?),
            "cidr" => {
                let s = fields::string(key, h)?;
                let ok = s.strip_prefix('/').is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b'.' | b':'))
                });
                if !ok {
                    return Err(fields::pattern_fail(key, h, "^/[0-9a-f.:]+$"));
                }
            }
            _ => {}
        }
    }
    Ok(obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}
