//! The JSON-schema primitives the field rules are built from: types
//! ([`Ty`]), lengths, `required` / `additionalProperties`, the failure
//! texts of each keyword, and plain object / array / string reads.

use super::*;

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
    use crate::validate::fields::*;
    use serde_json::json;

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
}
