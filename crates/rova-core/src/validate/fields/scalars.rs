//! Booleans, integers (or digit strings), `flavorRef` and `diskConfig`.

use super::*;

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

#[cfg(test)]
mod tests {
    use crate::validate::fields::*;
    use serde_json::json;

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
