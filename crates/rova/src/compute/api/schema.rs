//! Small JSON-schema style checks shared by the flavor, flavor-access and
//! external-event routes, worded like Nova's validation failures
//! (`Invalid input for field/attribute <key>. Value: <v>. <why>`).

use rova_core::validate::fields::invalid;
use rova_core::Fault;
use serde_json::{Map, Value};

/// A rough Python `repr` of a JSON value, as Nova's messages print it.
pub fn repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// A failure framed at `field`, or bare for the body itself.
fn at(field: Option<&str>, v: &Value, msg: String) -> Fault {
    match field {
        Some(f) => invalid(f, v, msg),
        None => Fault::bad_request(msg),
    }
}

/// `{'type': 'object'}`.
pub fn object<'a>(field: Option<&str>, v: &'a Value) -> Result<&'a Map<String, Value>, Fault> {
    v.as_object()
        .ok_or_else(|| at(field, v, format!("{} is not of type 'object'", repr(v))))
}

/// `required`: `'x' is a required property`.
pub fn required(
    field: Option<&str>,
    v: &Value,
    obj: &Map<String, Value>,
    keys: &[&str],
) -> Result<(), Fault> {
    match keys.iter().find(|k| !obj.contains_key(**k)) {
        Some(k) => Err(at(field, v, format!("'{k}' is a required property"))),
        None => Ok(()),
    }
}

/// `additionalProperties: false` over a fixed set of keys.
pub fn no_additional(
    field: Option<&str>,
    v: &Value,
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), Fault> {
    let mut extras: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if extras.is_empty() {
        return Ok(());
    }
    extras.sort();
    let verb = if extras.len() == 1 { "was" } else { "were" };
    let names: Vec<String> = extras.iter().map(|k| format!("'{k}'")).collect();
    Err(at(
        field,
        v,
        format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            names.join(", ")
        ),
    ))
}

/// `{'type': 'string', 'minLength': min, 'maxLength': max}`.
pub fn string(field: &str, v: &Value, min: usize, max: usize) -> Result<String, Fault> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(field, v, format!("{} is not of type 'string'", repr(v))))?;
    let n = s.chars().count();
    if n < min {
        let why = if min == 1 {
            format!("{} should be non-empty", repr(v))
        } else {
            format!("{} is too short", repr(v))
        };
        return Err(invalid(field, v, why));
    }
    if n > max {
        return Err(invalid(field, v, format!("{} is too long", repr(v))));
    }
    Ok(s.to_string())
}

/// `{'type': 'string', 'enum': [...]}`.
pub fn one_of(field: &str, v: &Value, choices: &[&str]) -> Result<String, Fault> {
    let s = string(field, v, 0, usize::MAX)?;
    if choices.contains(&s.as_str()) {
        return Ok(s);
    }
    let items: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    Err(invalid(
        field,
        v,
        format!("{} is not one of [{}]", repr(v), items.join(", ")),
    ))
}
