//! Field-level checks shaped like Nova's JSON-schema parameter types
//! (`parameter_types.py`) with the same failure texts. Each check follows
//! the keyword order of Nova's schema (type, then pattern/format, then
//! lengths), because Nova reports the first failing keyword.
//!
//! A failure at any depth below the body is framed as
//! `Invalid input for field/attribute <key>. Value: <str(value)>. <message>`
//! where `<key>` is the innermost path element (an object key or a list
//! index); only a failure on the body itself is reported bare.

use super::py;
use crate::error::Fault;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Display;

pub(crate) type VResult<T> = Result<T, Fault>;

/// Nova's `InvalidName` text for a bad `name`-format value.
pub const INVALID_NAME: &str = "An invalid 'name' value was provided. The name must be: \
printable characters. Can not start or end with whitespace.";

/// The metadata key pattern as Nova prints it.
pub const METADATA_KEY_PATTERN: &str = "^[a-zA-Z0-9-_:. ]{1,255}$";
/// The tag pattern as Nova prints it.
pub const TAG_PATTERN: &str = "^[^,/]*$";
/// Longest tag.
pub const MAX_TAG_LENGTH: usize = 60;
/// Most tags on one server.
pub const MAX_TAG_COUNT: usize = 50;

const HOSTNAME_PATTERN: &str = "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$";
const FQDN_PATTERN: &str = "^[a-zA-Z0-9-._]*$";
/// Stand-in for Nova's generated "any printable character" regex, which is
/// thousands of characters long.
const DESCRIPTION_PATTERN: &str = "^[<printable characters>]*$";
const BOOLEAN_ENUM: &str = "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', \
'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']";

/// A schema failure below the body: Nova's "field/attribute" framing.
pub fn invalid(field: &str, value: &Value, message: impl Display) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {}. {message}",
        py::str_of(value)
    ))
}

/// A JSON-schema primitive type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Int,
    Bool,
    Null,
    Obj,
    Arr,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "integer",
            Ty::Bool => "boolean",
            Ty::Null => "null",
            Ty::Obj => "object",
            Ty::Arr => "array",
        }
    }
    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Int => int_value(v).is_some(),
            Ty::Bool => v.is_boolean(),
            Ty::Null => v.is_null(),
            Ty::Obj => v.is_object(),
            Ty::Arr => v.is_array(),
        }
    }
}

/// An integral JSON number (jsonschema also counts `2.0` as an integer).
pub(crate) fn int_value(v: &Value) -> Option<i128> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    let f = n.as_f64()?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 {
        Some(f as i128)
    } else {
        None
    }
}

/// `<repr> is not of type 'a', 'b'`.
pub(crate) fn type_message(v: &Value, types: &[Ty]) -> String {
    let names: Vec<String> = types.iter().map(|t| format!("'{}'", t.name())).collect();
    format!("{} is not of type {}", py::repr(v), names.join(", "))
}

pub(crate) fn check_type(field: &str, v: &Value, types: &[Ty]) -> VResult<()> {
    if types.iter().any(|t| t.matches(v)) {
        Ok(())
    } else {
        Err(invalid(field, v, type_message(v, types)))
    }
}

/// Python `len()` of a string: code points.
pub(crate) fn char_len(s: &str) -> usize {
    s.chars().count()
}

pub(crate) fn min_length(field: &str, v: &Value, s: &str, min: usize) -> VResult<()> {
    if char_len(s) >= min {
        return Ok(());
    }
    let what = if min == 1 {
        "should be non-empty"
    } else {
        "is too short"
    };
    Err(invalid(field, v, format!("{} {what}", py::repr_str(s))))
}

pub(crate) fn max_length(field: &str, v: &Value, s: &str, max: usize) -> VResult<()> {
    if char_len(s) <= max {
        return Ok(());
    }
    let what = if max == 0 {
        "is expected to be empty"
    } else {
        "is too long"
    };
    Err(invalid(field, v, format!("{} {what}", py::repr_str(s))))
}

pub(crate) fn pattern_fail(field: &str, v: &Value, pattern: &str) -> Fault {
    invalid(
        field,
        v,
        format!("{} does not match {}", py::repr(v), py::repr_str(pattern)),
    )
}

pub(crate) fn format_fail(field: &str, v: &Value, format: &str) -> Fault {
    invalid(field, v, format!("{} is not a '{format}'", py::repr(v)))
}

pub(crate) fn one_of_fail(field: &str, v: &Value) -> Fault {
    invalid(
        field,
        v,
        format!(
            "{} is not valid under any of the given schemas",
            py::repr(v)
        ),
    )
}

pub(crate) fn enum_fail(field: &str, v: &Value, choices: &[&str]) -> Fault {
    let items: Vec<String> = choices.iter().map(|c| py::repr_str(c)).collect();
    invalid(
        field,
        v,
        format!("{} is not one of [{}]", py::repr(v), items.join(", ")),
    )
}

/// `'x' is a required property`, framed at the object's own key (bare at
/// the body).
pub(crate) fn check_required(
    field: Option<&str>,
    v: &Value,
    obj: &Map<String, Value>,
    required: &[&str],
) -> VResult<()> {
    for key in required {
        if !obj.contains_key(*key) {
            let msg = format!("{} is a required property", py::repr_str(key));
            return Err(at(field, v, msg));
        }
    }
    Ok(())
}

/// `additionalProperties: false` without pattern properties.
pub(crate) fn check_additional(
    field: Option<&str>,
    v: &Value,
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> VResult<()> {
    let mut extras: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if extras.is_empty() {
        return Ok(());
    }
    extras.sort();
    let verb = if extras.len() == 1 { "was" } else { "were" };
    let names: Vec<String> = extras.iter().map(|k| py::repr_str(k)).collect();
    let msg = format!(
        "Additional properties are not allowed ({} {verb} unexpected)",
        names.join(", ")
    );
    Err(at(field, v, msg))
}

fn at(field: Option<&str>, v: &Value, msg: String) -> Fault {
    match field {
        Some(f) => invalid(f, v, msg),
        None => Fault::bad_request(msg),
    }
}

/// `{'type': 'object'}` returning the map.
pub(crate) fn object<'a>(field: Option<&str>, v: &'a Value) -> VResult<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(at(field, v, type_message(v, &[Ty::Obj]))),
    }
}

/// `{'type': 'array'}` returning the items.
pub(crate) fn array<'a>(field: &str, v: &'a Value) -> VResult<&'a Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(invalid(field, v, type_message(v, &[Ty::Arr]))),
    }
}

/// `{'type': 'string'}`.
pub fn string(field: &str, v: &Value) -> VResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(invalid(field, v, type_message(v, &[Ty::Str]))),
    }
}

/// A string with `maxLength`.
pub(crate) fn string_max(field: &str, v: &Value, max: usize) -> VResult<String> {
    let s = string(field, v)?;
    max_length(field, v, &s, max)?;
    Ok(s)
}

/// Nova's `name` rule: printable, no leading or trailing whitespace.
pub fn is_valid_name(s: &str) -> bool {
    if !s.chars().all(py::nova_printable) {
        return false;
    }
    let edge_ok = |c: Option<char>| c.is_none_or(|c| !py::is_space_separator(c));
    edge_ok(s.chars().next()) && edge_ok(s.chars().last())
}

/// `parameter_types.name`: string, name format, 1–255 characters.
pub fn name(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_valid_name(&s) {
        return Err(Fault::bad_request(INVALID_NAME));
    }
    min_length(field, v, &s, 1)?;
    max_length(field, v, &s, 255)?;
    Ok(s)
}

/// `parameter_types.description`: string or null, printable, 0–255.
pub fn description(field: &str, v: &Value) -> VResult<Option<String>> {
    check_type(field, v, &[Ty::Str, Ty::Null])?;
    let Some(s) = v.as_str() else {
        return Ok(None);
    };
    if !s.chars().all(py::nova_printable) {
        return Err(pattern_fail(field, v, DESCRIPTION_PATTERN));
    }
    max_length(field, v, s, 255)?;
    Ok(Some(s.to_string()))
}

/// oslo's `is_uuid_like`: 32 hex digits once hyphens, braces and a
/// `urn:uuid:` prefix are removed.
pub fn is_uuid_like(s: &str) -> bool {
    let t = s.replace("urn:", "").replace("uuid:", "");
    let t = t.trim_matches(|c| c == '{' || c == '}');
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// `{'type': 'string', 'format': 'uuid'}`.
pub fn uuid(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_uuid_like(&s) {
        return Err(format_fail(field, v, "uuid"));
    }
    Ok(s)
}

/// Python `ipaddress.IPv4Address` acceptance (no leading zeros).
pub fn is_ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Python `ipaddress.IPv6Address` acceptance, scope ids refused.
pub fn is_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// `{'type': 'string', 'format': 'ipv4'}`.
pub fn ipv4(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_ipv4(&s) {
        return Err(format_fail(field, v, "ipv4"));
    }
    Ok(s)
}

/// `{'type': 'string', 'format': 'ipv6'}`, returned in canonical form as
/// Nova stores it (its IPV6AddressField normalises through netaddr:
/// `0000:...:babe:220.12.22.2` becomes `::babe:dc0c:1602`).
pub fn ipv6(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    match s.parse::<std::net::Ipv6Addr>() {
        Ok(a) => Ok(a.to_string()),
        Err(_) => Err(format_fail(field, v, "ipv6")),
    }
}

/// `parameter_types.ip_address`: a string that is exactly one of IPv4/IPv6.
pub fn ip_address(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_ipv4(&s) && !is_ipv6(&s) {
        return Err(one_of_fail(field, v));
    }
    Ok(s)
}

/// Whether Python's `base64.b64decode` (non-validating mode, as oslo uses
/// it) accepts the text: characters outside the alphabet are skipped, the
/// data must end on a full quantum or be properly padded, and decoding stops
/// at the first complete padding.
pub fn is_base64(s: &str) -> bool {
    if !s.is_ascii() {
        return false;
    }
    let mut quad = 0u8;
    let mut pads = 0u8;
    for b in s.bytes() {
        if b == b'=' {
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    return true;
                }
            }
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
            continue;
        }
        pads = 0;
        quad = (quad + 1) % 4;
    }
    quad == 0
}

/// `{'type': 'string', 'format': 'base64'}` with an optional `maxLength`.
pub fn base64(field: &str, v: &Value, max: Option<usize>) -> VResult<String> {
    let s = string(field, v)?;
    if !is_base64(&s) {
        return Err(format_fail(field, v, "base64"));
    }
    if let Some(m) = max {
        max_length(field, v, &s, m)?;
    }
    Ok(s)
}

const TRUE_STRINGS: [&str; 10] = [
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
];
const FALSE_STRINGS: [&str; 10] = [
    "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no",
];

/// `parameter_types.boolean` (a boolean or one of the boolean strings),
/// converted as `bool_from_string` does.
pub fn boolean(field: &str, v: &Value) -> VResult<bool> {
    check_type(field, v, &[Ty::Bool, Ty::Str])?;
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if TRUE_STRINGS.contains(&s.as_str()) => Ok(true),
        Value::String(s) if FALSE_STRINGS.contains(&s.as_str()) => Ok(false),
        _ => Err(invalid(
            field,
            v,
            format!("{} is not one of {BOOLEAN_ENUM}", py::repr(v)),
        )),
    }
}

/// Integer-or-digit-string with Nova's keyword order
/// (`type, pattern, minimum[, maximum]`); returns the number.
fn int_or_digits(
    field: &str,
    v: &Value,
    pattern: &str,
    allow_empty: bool,
    min: i128,
    max: Option<i128>,
) -> VResult<i128> {
    check_type(field, v, &[Ty::Int, Ty::Str])?;
    let n = match v {
        Value::String(s) => {
            if !s.bytes().all(|b| b.is_ascii_digit()) || (!allow_empty && s.is_empty()) {
                return Err(pattern_fail(field, v, pattern));
            }
            if s.is_empty() {
                return Err(invalid(field, v, "'' should be non-empty"));
            }
            // Digit strings too long for i128 are simply huge.
            s.parse::<i128>().unwrap_or(i128::MAX)
        }
        _ => int_value(v).unwrap_or(0),
    };
    // Nova compares the converted number and reports it unquoted.
    let shown = if v.is_string() {
        n.to_string()
    } else {
        py::repr(v)
    };
    let frame = |msg: String| {
        Fault::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {shown}. {msg}"
        ))
    };
    if n < min {
        return Err(frame(format!("{shown} is less than the minimum of {min}")));
    }
    if let Some(max) = max {
        if n > max {
            return Err(frame(format!(
                "{shown} is greater than the maximum of {max}"
            )));
        }
    }
    Ok(n)
}

/// `parameter_types.positive_integer` (`min_count`, `max_count`).
pub fn positive_integer(field: &str, v: &Value) -> VResult<u64> {
    let n = int_or_digits(field, v, "^[0-9]*$", true, 1, None)?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// `parameter_types.volume_size`: 1..=2147483647.
pub fn volume_size(field: &str, v: &Value) -> VResult<u64> {
    let n = int_or_digits(field, v, "^[0-9]+$", false, 1, Some(0x7fff_ffff))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `parameter_types.flavor_ref`: string (non-empty) or integer; returns
/// the text form.
pub fn flavor_ref(field: &str, v: &Value) -> VResult<String> {
    check_type(field, v, &[Ty::Str, Ty::Int])?;
    match v {
        Value::String(s) => {
            min_length(field, v, s, 1)?;
            Ok(s.clone())
        }
        other => Ok(py::repr(other)),
    }
}

/// `parameter_types.disk_config` converted to `auto_disk_config`.
pub fn disk_config(field: &str, v: &Value) -> VResult<bool> {
    let s = string(field, v)?;
    match s.as_str() {
        "AUTO" => Ok(true),
        "MANUAL" => Ok(false),
        _ => Err(enum_fail(field, v, &["AUTO", "MANUAL"])),
    }
}

/// `parameter_types.hostname` (RFC 1123 label, 2–63).
pub fn hostname_label(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    let b = s.as_bytes();
    let ok = b.len() >= 2
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return Err(pattern_fail(field, v, HOSTNAME_PATTERN));
    }
    min_length(field, v, &s, 2)?;
    max_length(field, v, &s, 63)?;
    Ok(s)
}

/// `parameter_types.fqdn` (1–255 of `[a-zA-Z0-9-._]`).
pub fn fqdn(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        return Err(pattern_fail(field, v, FQDN_PATTERN));
    }
    min_length(field, v, &s, 1)?;
    max_length(field, v, &s, 255)?;
    Ok(s)
}

/// `hostname` as accepted on create, PUT and rebuild: a label at
/// 2.90–2.93, an FQDN from 2.94.
pub fn hostname(field: &str, v: &Value, fqdn_allowed: bool) -> VResult<String> {
    if fqdn_allowed {
        fqdn(field, v)
    } else {
        hostname_label(field, v)
    }
}

/// `parameter_types.tag`: 1–60 characters without `,` or `/`.
pub fn tag(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if s.contains([',', '/']) {
        return Err(pattern_fail(field, v, TAG_PATTERN));
    }
    min_length(field, v, &s, 1)?;
    max_length(field, v, &s, MAX_TAG_LENGTH)?;
    Ok(s)
}

/// An array of tags with `maxItems` 50 (items are checked first); duplicates
/// are dropped keeping the first occurrence.
pub fn tag_list(field: &str, v: &Value) -> VResult<Vec<String>> {
    let items = array(field, v)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let t = tag(&i.to_string(), item)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if items.len() > MAX_TAG_COUNT {
        return Err(invalid(field, v, format!("{} is too long", py::repr(v))));
    }
    Ok(out)
}

/// Whether a metadata key matches `^[a-zA-Z0-9-_:. ]{1,255}$`.
pub fn is_metadata_key(k: &str) -> bool {
    let n = char_len(k);
    (1..=255).contains(&n)
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'.' | b' '))
}

/// `parameter_types.metadata` (schema only, no quota).
pub fn metadata(field: &str, v: &Value) -> VResult<BTreeMap<String, String>> {
    let obj = object(Some(field), v)?;
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        if is_metadata_key(k) {
            let s = string_max(k, val, 255)?;
            out.insert(k.clone(), s);
        }
    }
    let mut bad: Vec<&String> = obj.keys().filter(|k| !is_metadata_key(k)).collect();
    if !bad.is_empty() {
        bad.sort();
        let verb = if bad.len() == 1 { "does" } else { "do" };
        let names: Vec<String> = bad.iter().map(|k| py::repr_str(k)).collect();
        return Err(invalid(
            field,
            v,
            format!(
                "{} {verb} not match any of the regexes: {}",
                names.join(", "),
                py::repr_str(METADATA_KEY_PATTERN)
            ),
        ));
    }
    Ok(out)
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg<T: std::fmt::Debug>(r: VResult<T>) -> (u16, String) {
        let e = r.expect_err("expected a fault");
        (e.code, e.message)
    }

    #[test]
    fn framing_and_types() {
        assert_eq!(
            msg(string("adminPass", &json!(1))),
            (
                400,
                "Invalid input for field/attribute adminPass. Value: 1. 1 is not of type 'string'"
                    .into()
            )
        );
        assert_eq!(
            msg(description("description", &json!(5))).1,
            "Invalid input for field/attribute description. Value: 5. 5 is not of type 'string', 'null'"
        );
        assert_eq!(int_value(&json!(2.0)), Some(2));
        assert_eq!(int_value(&json!(2.5)), None);
        assert_eq!(int_value(&json!(true)), None);
    }

    #[test]
    fn names() {
        assert_eq!(name("name", &json!("ok name")).unwrap(), "ok name");
        assert_eq!(
            msg(name("name", &json!(" lead"))),
            (400, INVALID_NAME.into())
        );
        assert_eq!(msg(name("name", &json!("trail "))).1, INVALID_NAME);
        assert_eq!(msg(name("name", &json!("tab\there"))).1, INVALID_NAME);
        assert_eq!(msg(name("name", &json!("\u{3000}x"))).1, INVALID_NAME);
        assert_eq!(msg(name("name", &json!("emoji \u{1f600}"))).1, INVALID_NAME);
        assert!(name("name", &json!("caf\u{e9} \u{4e2d}")).is_ok());
        assert_eq!(
            msg(name("name", &json!(""))).1,
            "Invalid input for field/attribute name. Value: . '' should be non-empty"
        );
        let long = "a".repeat(256);
        assert_eq!(
            msg(name("name", &json!(long))).1,
            format!("Invalid input for field/attribute name. Value: {long}. '{long}' is too long")
        );
        assert!(name("name", &json!("a".repeat(255))).is_ok());
        assert_eq!(
            msg(name("name", &json!(7))).1,
            "Invalid input for field/attribute name. Value: 7. 7 is not of type 'string'"
        );
    }

    #[test]
    fn descriptions() {
        assert_eq!(description("d", &json!(null)).unwrap(), None);
        assert_eq!(description("d", &json!("")).unwrap(), Some(String::new()));
        assert_eq!(
            description("d", &json!(" spaced ")).unwrap(),
            Some(" spaced ".into())
        );
        let e = msg(description("description", &json!("a\nb")));
        assert_eq!(e.0, 400);
        assert!(e.1.starts_with(
            "Invalid input for field/attribute description. Value: a\nb. 'a\\nb' does not match"
        ));
        assert_eq!(
            msg(description("description", &json!("x".repeat(256)))).1,
            format!(
                "Invalid input for field/attribute description. Value: {0}. '{0}' is too long",
                "x".repeat(256)
            )
        );
    }

    #[test]
    fn uuids() {
        assert!(is_uuid_like("0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"));
        assert!(is_uuid_like("0F2E1D3C4B5A69788A9B0C1D2E3F4A5B"));
        assert!(is_uuid_like("{0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b}"));
        assert!(is_uuid_like(
            "urn:uuid:0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
        ));
        assert!(!is_uuid_like("0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5"));
        assert!(!is_uuid_like("zf2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"));
        assert_eq!(
            msg(uuid("port", &json!("nope"))).1,
            "Invalid input for field/attribute port. Value: nope. 'nope' is not a 'uuid'"
        );
    }

    #[test]
    fn ips() {
        assert!(is_ipv4("10.0.0.1"));
        assert!(!is_ipv4("10.0.0.01"));
        assert!(!is_ipv4("1.1.1.1.1"));
        assert!(is_ipv6("::1"));
        assert!(is_ipv6("2001:db8::ffff:1.2.3.4"));
        assert!(!is_ipv6("fe80::1%eth0"));
        assert_eq!(
            msg(ipv6("accessIPv6", &json!("1.1.1.1.1"))).1,
            "Invalid input for field/attribute accessIPv6. Value: 1.1.1.1.1. '1.1.1.1.1' is not a 'ipv6'"
        );
        assert_eq!(
            msg(ipv4("accessIPv4", &json!("::1"))).1,
            "Invalid input for field/attribute accessIPv4. Value: ::1. '::1' is not a 'ipv4'"
        );
        assert_eq!(
            msg(ip_address("fixed_ip", &json!("bad"))).1,
            "Invalid input for field/attribute fixed_ip. Value: bad. 'bad' is not valid under any of the given schemas"
        );
        assert_eq!(ip_address("fixed_ip", &json!("::2")).unwrap(), "::2");
    }

    #[test]
    fn base64_like_python() {
        assert!(is_base64(""));
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGVsbG8h"));
        assert!(is_base64("aGVs\nbG8h"));
        assert!(is_base64("YQ==trailing-ignored"));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("YQ="));
        assert!(!is_base64("abcde"));
        assert!(!is_base64("not base64"));
        assert!(!is_base64("\u{e9}\u{e9}\u{e9}\u{e9}"));
        assert_eq!(
            msg(base64("user_data", &json!("abc"), Some(65535))).1,
            "Invalid input for field/attribute user_data. Value: abc. 'abc' is not a 'base64'"
        );
    }

    #[test]
    fn booleans() {
        for t in [
            "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
        ] {
            assert!(boolean("b", &json!(t)).unwrap(), "{t}");
        }
        for f in [
            "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no",
        ] {
            assert!(!boolean("b", &json!(f)).unwrap(), "{f}");
        }
        assert!(boolean("b", &json!(true)).unwrap());
        assert_eq!(
            msg(boolean("config_drive", &json!("maybe"))).1,
            format!("Invalid input for field/attribute config_drive. Value: maybe. 'maybe' is not one of {BOOLEAN_ENUM}")
        );
        assert_eq!(
            msg(boolean("config_drive", &json!(1))).1,
            "Invalid input for field/attribute config_drive. Value: 1. 1 is not of type 'boolean', 'string'"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(positive_integer("min_count", &json!(3)).unwrap(), 3);
        assert_eq!(positive_integer("min_count", &json!("007")).unwrap(), 7);
        assert_eq!(positive_integer("min_count", &json!(2.0)).unwrap(), 2);
        assert_eq!(
            msg(positive_integer("min_count", &json!(0))).1,
            "Invalid input for field/attribute min_count. Value: 0. 0 is less than the minimum of 1"
        );
        assert_eq!(
            msg(positive_integer("min_count", &json!("0"))).1,
            "Invalid input for field/attribute min_count. Value: 0. 0 is less than the minimum of 1"
        );
        assert_eq!(
            msg(positive_integer("max_count", &json!("abc"))).1,
            "Invalid input for field/attribute max_count. Value: abc. 'abc' does not match '^[0-9]*$'"
        );
        assert_eq!(
            msg(positive_integer("max_count", &json!(""))).1,
            "Invalid input for field/attribute max_count. Value: . '' should be non-empty"
        );
        assert_eq!(
            msg(positive_integer("max_count", &json!(-1))).1,
            "Invalid input for field/attribute max_count. Value: -1. -1 is less than the minimum of 1"
        );
        assert_eq!(
            msg(positive_integer("max_count", &json!(1.5))).1,
            "Invalid input for field/attribute max_count. Value: 1.5. 1.5 is not of type 'integer', 'string'"
        );
        assert_eq!(
            msg(volume_size("volume_size", &json!(2147483648u64))).1,
            "Invalid input for field/attribute volume_size. Value: 2147483648. 2147483648 is greater than the maximum of 2147483647"
        );
        assert_eq!(
            msg(volume_size("volume_size", &json!(""))).1,
            "Invalid input for field/attribute volume_size. Value: . '' does not match '^[0-9]+$'"
        );
        assert_eq!(volume_size("volume_size", &json!("10")).unwrap(), 10);
    }

    #[test]
    fn hostnames_and_fqdns() {
        assert_eq!(hostname_label("h", &json!("ab")).unwrap(), "ab");
        assert_eq!(hostname_label("h", &json!("a-1-b")).unwrap(), "a-1-b");
        assert_eq!(
            msg(hostname_label("hostname", &json!("a"))).1,
            "Invalid input for field/attribute hostname. Value: a. 'a' does not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'"
        );
        assert!(hostname_label("h", &json!("-ab")).is_err());
        assert!(hostname_label("h", &json!("a.b")).is_err());
        assert_eq!(
            msg(hostname_label("hostname", &json!("a".repeat(64)))).1,
            format!(
                "Invalid input for field/attribute hostname. Value: {0}. '{0}' is too long",
                "a".repeat(64)
            )
        );
        assert_eq!(
            fqdn("h", &json!("a.example_1-x.org")).unwrap(),
            "a.example_1-x.org"
        );
        assert!(fqdn("h", &json!("a")).is_ok());
        assert_eq!(
            msg(fqdn("host", &json!("a b"))).1,
            "Invalid input for field/attribute host. Value: a b. 'a b' does not match '^[a-zA-Z0-9-._]*$'"
        );
        assert_eq!(
            msg(fqdn("host", &json!(""))).1,
            "Invalid input for field/attribute host. Value: . '' should be non-empty"
        );
        assert!(fqdn("host", &json!("a".repeat(256))).is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(tag("0", &json!("ok tag")).unwrap(), "ok tag");
        assert_eq!(
            msg(tag("0", &json!("a/b"))).1,
            "Invalid input for field/attribute 0. Value: a/b. 'a/b' does not match '^[^,/]*$'"
        );
        assert!(tag("0", &json!("a,b")).is_err());
        assert!(tag("0", &json!("")).is_err());
        assert!(tag("0", &json!("x".repeat(61))).is_err());
        assert!(tag("0", &json!("x".repeat(60))).is_ok());
        let fifty: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
        assert_eq!(tag_list("tags", &json!(fifty)).unwrap().len(), 50);
        let many: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
        let e = msg(tag_list("tags", &json!(many)));
        assert!(e
            .1
            .starts_with("Invalid input for field/attribute tags. Value: ['t0', "));
        assert!(e.1.ends_with("'t50'] is too long"));
        assert_eq!(
            tag_list("tags", &json!(["a", "a", "b"])).unwrap(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn metadata_schema() {
        let m = metadata("metadata", &json!({"a-b_c:d. e": "v"})).unwrap();
        assert_eq!(m["a-b_c:d. e"], "v");
        assert_eq!(
            msg(metadata("metadata", &json!({"bad/key": "v"}))).1,
            "Invalid input for field/attribute metadata. Value: {'bad/key': 'v'}. 'bad/key' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'"
        );
        assert_eq!(
            msg(metadata("metadata", &json!({"": "v", "x/": "w"}))).1,
            "Invalid input for field/attribute metadata. Value: {'': 'v', 'x/': 'w'}. '', 'x/' do not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'"
        );
        assert_eq!(
            msg(metadata("metadata", &json!({"k": 1}))).1,
            "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'"
        );
        assert_eq!(
            msg(metadata("metadata", &json!({"k": "v".repeat(256)}))).1,
            format!(
                "Invalid input for field/attribute k. Value: {0}. '{0}' is too long",
                "v".repeat(256)
            )
        );
        assert!(metadata("metadata", &json!({"k".repeat(256): "v"})).is_err());
        assert_eq!(
            msg(metadata("metadata", &json!(["x"]))).1,
            "Invalid input for field/attribute metadata. Value: ['x']. ['x'] is not of type 'object'"
        );
    }

    #[test]
    fn required_and_additional() {
        let v = json!({"a": 1, "zz": 2, "b": 3});
        let o = v.as_object().unwrap();
        assert_eq!(
            msg(check_additional(None, &v, o, &["a"])).1,
            "Additional properties are not allowed ('b', 'zz' were unexpected)"
        );
        assert_eq!(
            msg(check_additional(Some("server"), &v, o, &["a", "b"])).1,
            "Invalid input for field/attribute server. Value: {'a': 1, 'b': 3, 'zz': 2}. Additional properties are not allowed ('zz' was unexpected)"
        );
        assert_eq!(
            msg(check_required(Some("server"), &v, o, &["a", "name"])).1,
            "Invalid input for field/attribute server. Value: {'a': 1, 'b': 3, 'zz': 2}. 'name' is a required property"
        );
    }

    #[test]
    fn misc() {
        assert_eq!(flavor_ref("flavorRef", &json!(42)).unwrap(), "42");
        assert_eq!(
            msg(flavor_ref("flavorRef", &json!(null))).1,
            "Invalid input for field/attribute flavorRef. Value: None. None is not of type 'string', 'integer'"
        );
        assert!(disk_config("d", &json!("AUTO")).unwrap());
        assert!(!disk_config("d", &json!("MANUAL")).unwrap());
        assert_eq!(
            msg(disk_config("OS-DCF:diskConfig", &json!("auto"))).1,
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: auto. 'auto' is not one of ['AUTO', 'MANUAL']"
        );
        assert!(truthy(Some(&json!("False"))));
        assert!(!truthy(Some(&json!(0))));
        assert!(!truthy(Some(&json!({}))));
        assert!(!truthy(None));
    }
}
