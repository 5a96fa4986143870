//! Request-body helpers: the resource object under its key, typed
//! attribute getters, and the owner a create request may name.

use super::*;

/// The object under `key` in a request body; unknown attributes are 400.
/// `read_only` attributes are named as such.
pub(super) fn resource_body(
    body: &Bytes,
    key: &str,
    allowed: &[&str],
    read_only: &[&str],
) -> NResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("Resource body required"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        bad("The server could not comply with the request since it is either malformed or otherwise incorrect.")
    })?;
    let inner = v
        .get(key)
        .ok_or_else(|| bad(format!("Unable to find '{key}' in request body")))?;
    let m = inner
        .as_object()
        .ok_or_else(|| {
            bad(format!(
                "Invalid input for {key}. Reason: it must be an object."
            ))
        })?
        .clone();
    if let Some(k) = m.keys().find(|k| read_only.contains(&k.as_str())) {
        return Err(bad(format!("Cannot update read-only attribute {k}")));
    }
    let unknown: Vec<&str> = m
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(bad(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    Ok(m)
}

pub(super) fn get_str(m: &Map<String, Value>, key: &str, max: usize) -> NResult<Option<String>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{s}' exceeds maximum length of {max}."
        ))),
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' is not a valid string."
        ))),
    }
}

pub(super) fn get_bool(m: &Map<String, Value>, key: &str) -> NResult<Option<bool>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_bool(key, s).map(Some),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(v) => Err(bad(format!(
            "Invalid input for {key}. Reason: '{v}' cannot be converted to boolean."
        ))),
    }
}

pub(super) fn get_uint(m: &Map<String, Value>, key: &str) -> NResult<Option<u64>> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                bad(format!(
                    "Invalid input for {key}. Reason: '{v}' is not an integer."
                ))
            }),
    }
}

/// The only value this service supports for an attribute; anything else is
/// refused rather than silently dropped.
pub(super) fn only_value(m: &Map<String, Value>, key: &str, ok: &Value, what: &str) -> NResult<()> {
    match m.get(key) {
        Some(v) if v != ok => Err(bad(format!(
            "{what} is not supported by this service ({key}).",
        ))),
        _ => Ok(()),
    }
}

/// Checks the attributes this service accepts only at their default.
pub(super) fn check_port_extras(m: &Map<String, Value>) -> NResult<()> {
    if m.contains_key("port_security_enabled")
        && get_bool(m, "port_security_enabled")? != Some(true)
    {
        return Err(bad(
            "Disabling port security is not supported by this service.",
        ));
    }
    only_value(
        m,
        "allowed_address_pairs",
        &json!([]),
        "Allowed address pairs",
    )?;
    only_value(m, "extra_dhcp_opts", &json!([]), "Extra DHCP options")?;
    if let Some(v) = m.get("binding:vnic_type") {
        if v != "normal" {
            return Err(bad(format!(
                "Invalid input for binding:vnic_type. Reason: {v} is not in ['normal']."
            )));
        }
    }
    Ok(())
}

/// The owning project named in a create body (`project_id` / `tenant_id`),
/// defaulting to the caller's; only admins may name another project.
pub(super) fn owner_from(m: &Map<String, Value>, ctx: &Ctx) -> NResult<String> {
    let p = get_str(m, "project_id", 255)?;
    let t = get_str(m, "tenant_id", 255)?;
    let owner = match (p, t) {
        (Some(p), Some(t)) if p != t => {
            return Err(bad("'project_id' and 'tenant_id' do not match"))
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => ctx.project_id.clone(),
    };
    if owner != ctx.project_id && !ctx.is_admin() {
        return Err(bad(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        ));
    }
    Ok(owner)
}
