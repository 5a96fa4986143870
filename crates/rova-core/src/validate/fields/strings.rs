//! String formats: `name`, `description`, `uuid` and `base64`.

use super::*;

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

#[cfg(test)]
mod tests {
    use crate::validate::fields::*;
    use serde_json::json;

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
}
