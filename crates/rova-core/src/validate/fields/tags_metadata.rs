//! Server tags and the metadata map (schema only; quotas are the caller's).

use super::*;

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

#[cfg(test)]
mod tests {
    use crate::validate::fields::*;
    use serde_json::json;

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
}
