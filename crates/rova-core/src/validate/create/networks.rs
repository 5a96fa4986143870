//! The `networks` key: `auto` / `none` or a list of items (uuid, port,
//! fixed_ip, tag by microversion), and Nova's `_get_requested_networks`
//! rules over that list.

use super::*;

/// The network item keys for this microversion.
pub(super) fn network_item_keys(v: Microversion) -> &'static [&'static str] {
    let tagged = (v.at_least(32) && !v.at_least(37)) || v.at_least(42);
    if tagged {
        &["fixed_ip", "port", "uuid", "tag"]
    } else {
        &["fixed_ip", "port", "uuid"]
    }
}

/// One network item; `strict_uuid` is the 2.37+ `format: uuid` on `uuid`.
pub(super) fn network_item(
    idx: &str,
    item: &Value,
    v: Microversion,
    strict_uuid: bool,
) -> VResult<Map<String, Value>> {
    let obj = object(Some(idx), item)?;
    let keys = network_item_keys(v);
    for key in keys {
        let Some(val) = obj.get(*key) else { continue };
        match *key {
            "fixed_ip" => drop(fields::ip_address(key, val)?),
            "port" => {
                check_type(key, val, &[Ty::Str, Ty::Null])?;
                if let Some(s) = val.as_str() {
                    if !fields::is_uuid_like(s) {
                        return Err(fields::format_fail(key, val, "uuid"));
                    }
                }
            }
            "uuid" if strict_uuid => drop(fields::uuid(key, val)?),
            "uuid" => drop(fields::string(key, val)?),
            "tag" => drop(fields::tag(key, val)?),
            _ => {}
        }
    }
    check_additional(Some(idx), item, obj, keys)?;
    Ok(obj.clone())
}

pub(super) fn networks_schema(val: &Value, v: Microversion) -> VResult<RawNetworks> {
    if !v.at_least(37) {
        let items = fields::array("networks", val)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(network_item(&i.to_string(), item, v, false)?);
        }
        return Ok(RawNetworks::List(out));
    }
    // 2.37+: oneOf [list of items, "auto" | "none"]; any mismatch inside the
    // list collapses into the generic oneOf message.
    match val {
        Value::String(s) if s == "auto" => Ok(RawNetworks::Auto),
        Value::String(s) if s == "none" => Ok(RawNetworks::None),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match network_item(&i.to_string(), item, v, true) {
                    Ok(m) => out.push(m),
                    Err(_) => return Err(fields::one_of_fail("networks", val)),
                }
            }
            Ok(RawNetworks::List(out))
        }
        _ => Err(fields::one_of_fail("networks", val)),
    }
}

/// Nova's `_get_requested_networks` for a list.
pub(super) fn requested_networks(items: &[Map<String, Value>]) -> VResult<Vec<NetworkRequest>> {
    let mut out: Vec<NetworkRequest> = Vec::with_capacity(items.len());
    let mut ports: Vec<String> = Vec::new();
    for item in items {
        let fixed_ip = item
            .get("fixed_ip")
            .and_then(Value::as_str)
            .map(str::to_string);
        let tag = item.get("tag").and_then(Value::as_str).map(str::to_string);
        let port = item
            .get("port")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        if let Some(port) = port {
            if ports.iter().any(|p| p == port) {
                return Err(Fault::bad_request(format!(
                    "Port ID '{port}' was specified twice: you cannot attach a port multiple times."
                )));
            }
            if let Some(addr) = &fixed_ip {
                return Err(Fault::bad_request(format!(
                    "Specified Fixed IP '{addr}' cannot be used with port '{port}': the two \
                     cannot be specified together."
                )));
            }
            ports.push(port.to_string());
            out.push(NetworkRequest {
                uuid: None,
                port: Some(port.to_string()),
                fixed_ip: None,
                tag,
            });
        } else {
            let Some(uuid) = item.get("uuid") else {
                return Err(Fault::bad_request("Bad network format: missing 'uuid'"));
            };
            let uuid = py::str_of(uuid);
            if !fields::is_uuid_like(&uuid) {
                return Err(Fault::bad_request(format!(
                    "Bad networks format: network uuid is not in proper format ({uuid})"
                )));
            }
            out.push(NetworkRequest {
                uuid: Some(uuid),
                port: None,
                fixed_ip,
                tag,
            });
        }
    }
    Ok(out)
}
