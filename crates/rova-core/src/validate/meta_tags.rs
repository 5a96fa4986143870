//! Request bodies of the server-metadata API (`/servers/{id}/metadata`) and
//! the server-tags API (`/servers/{id}/tags`): metadata maps, the single
//! `meta` item, the tag list and a single tag from the URL.

use super::create::{check_metadata_quota, CreateLimits};
use super::fields::{self, check_additional, check_required, invalid, object};
use super::py;
use crate::error::Fault;
use serde_json::Value;
use std::collections::BTreeMap;

pub use super::fields::{MAX_TAG_COUNT, MAX_TAG_LENGTH};

/// A `metadata` object: keys `^[a-zA-Z0-9-_:. ]{1,255}$`, string values of
/// at most 255 characters (400), and at most `limits.metadata_items` items
/// (403). Callers merging with existing metadata re-check the merged size
/// with [`check_metadata_quota`].
pub fn validate_metadata(
    value: &Value,
    limits: &CreateLimits,
) -> Result<BTreeMap<String, String>, Fault> {
    let map = fields::metadata("metadata", value)?;
    check_metadata_quota(map.len(), limits)?;
    Ok(map)
}

/// The body of POST and PUT `/servers/{id}/metadata`: `{"metadata": {...}}`.
pub fn parse_metadata_body(
    body: &Value,
    limits: &CreateLimits,
) -> Result<BTreeMap<String, String>, Fault> {
    let root = object(None, body)?;
    let map = root
        .get("metadata")
        .map(|m| fields::metadata("metadata", m))
        .transpose()?;
    check_required(None, body, root, &["metadata"])?;
    check_additional(None, body, root, &["metadata"])?;
    let map = map.unwrap_or_default();
    check_metadata_quota(map.len(), limits)?;
    Ok(map)
}

/// The body of PUT `/servers/{id}/metadata/{key}`: `{"meta": {key: value}}`
/// with exactly one item whose key is the URL key.
pub fn parse_meta_item(body: &Value, url_key: &str) -> Result<(String, String), Fault> {
    let root = object(None, body)?;
    let mut item = None;
    if let Some(meta) = root.get("meta") {
        let map = fields::metadata("meta", meta)?;
        let count = meta.as_object().map_or(0, |o| o.len());
        if count < 1 {
            return Err(invalid(
                "meta",
                meta,
                format!("{} should be non-empty", py::repr(meta)),
            ));
        }
        if count > 1 {
            return Err(Fault::bad_request("Request body contains too many items"));
        }
        item = map.into_iter().next();
    }
    check_required(None, body, root, &["meta"])?;
    check_additional(None, body, root, &["meta"])?;
    match item {
        Some((k, v)) if k == url_key => Ok((k, v)),
        _ => Err(Fault::bad_request("Request body and URI mismatch")),
    }
}

/// A single tag from the URL (PUT `/servers/{id}/tags/{tag}`).
pub fn validate_tag(tag: &str) -> Result<(), Fault> {
    let detail = if tag.contains([',', '/']) {
        Some(format!(
            "{} does not match {}",
            py::repr_str(tag),
            py::repr_str(fields::TAG_PATTERN)
        ))
    } else if tag.is_empty() {
        Some("'' should be non-empty".to_string())
    } else if fields::char_len(tag) > MAX_TAG_LENGTH {
        Some(format!("{} is too long", py::repr_str(tag)))
    } else {
        None
    };
    match detail {
        None => Ok(()),
        Some(err) => Err(Fault::bad_request(format!(
            "Tag '{tag}' is invalid. It must be a non empty string without characters '/' and \
             ','. Validation error message: {err}"
        ))),
    }
}

/// The body of PUT `/servers/{id}/tags`: `{"tags": [...]}` with at most 50
/// valid tags; duplicates dropped keeping the first occurrence.
pub fn parse_tags_body(body: &Value) -> Result<Vec<String>, Fault> {
    let root = object(None, body)?;
    let tags = root
        .get("tags")
        .map(|t| fields::tag_list("tags", t))
        .transpose()?;
    check_required(None, body, root, &["tags"])?;
    check_additional(None, body, root, &["tags"])?;
    Ok(tags.unwrap_or_default())
}

/// 400 when adding one tag to a server that already has the maximum.
pub fn tag_limit_exceeded() -> Fault {
    Fault::bad_request(format!(
        "The number of tags exceeded the per-server limit {MAX_TAG_COUNT}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: std::fmt::Debug>(r: Result<T, Fault>) -> (u16, String) {
        let e = r.expect_err("expected a fault");
        (e.code, e.message)
    }

    #[test]
    fn metadata_maps() {
        let l = CreateLimits::default();
        let m = validate_metadata(&json!({"a": "1", "b c": "2"}), &l).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            err(validate_metadata(&json!({"": "x"}), &l)),
            (
                400,
                "Invalid input for field/attribute metadata. Value: {'': 'x'}. '' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'".into()
            )
        );
        assert_eq!(
            err(validate_metadata(&json!({"k": null}), &l)).1,
            "Invalid input for field/attribute k. Value: None. None is not of type 'string'"
        );
        assert_eq!(
            err(validate_metadata(&json!({"k": "v".repeat(256)}), &l)).0,
            400
        );
        assert_eq!(
            err(validate_metadata(&json!("x"), &l)).1,
            "Invalid input for field/attribute metadata. Value: x. 'x' is not of type 'object'"
        );
        let small = CreateLimits {
            metadata_items: 2,
            ..Default::default()
        };
        assert_eq!(
            err(validate_metadata(
                &json!({"a": "1", "b": "2", "c": "3"}),
                &small
            )),
            (403, "Maximum number of metadata items exceeds 2".into())
        );
        assert_eq!(check_metadata_quota(128, &l), Ok(()));
        assert_eq!(
            err(check_metadata_quota(129, &l)).1,
            "Maximum number of metadata items exceeds 128"
        );
    }

    #[test]
    fn metadata_bodies() {
        let l = CreateLimits::default();
        assert_eq!(
            parse_metadata_body(&json!({"metadata": {}}), &l)
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            err(parse_metadata_body(&json!({}), &l)).1,
            "'metadata' is a required property"
        );
        assert_eq!(
            err(parse_metadata_body(
                &json!({"metadata": {}, "meta": {}}),
                &l
            ))
            .1,
            "Additional properties are not allowed ('meta' was unexpected)"
        );
        let many: serde_json::Map<String, Value> =
            (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            err(parse_metadata_body(&json!({ "metadata": many }), &l)),
            (403, "Maximum number of metadata items exceeds 128".into())
        );
    }

    #[test]
    fn meta_item() {
        assert_eq!(
            parse_meta_item(&json!({"meta": {"k": "v"}}), "k").unwrap(),
            ("k".to_string(), "v".to_string())
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {"k": "v"}}), "other")),
            (400, "Request body and URI mismatch".into())
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {"a": "1", "b": "2"}}), "a")),
            (400, "Request body contains too many items".into())
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {}}), "a")).1,
            "Invalid input for field/attribute meta. Value: {}. {} should be non-empty"
        );
        assert_eq!(
            err(parse_meta_item(&json!({}), "a")).1,
            "'meta' is a required property"
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {"a/": "1"}}), "a/")).1,
            "Invalid input for field/attribute meta. Value: {'a/': '1'}. 'a/' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'"
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {"k": 1}}), "k")).1,
            "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'"
        );
        assert_eq!(
            err(parse_meta_item(&json!({"meta": {"k": "v"}, "x": 1}), "k")).1,
            "Additional properties are not allowed ('x' was unexpected)"
        );
    }

    #[test]
    fn single_tags() {
        assert_eq!(validate_tag("fine tag"), Ok(()));
        assert_eq!(validate_tag(&"x".repeat(60)), Ok(()));
        assert_eq!(
            err(validate_tag("a/b")),
            (
                400,
                "Tag 'a/b' is invalid. It must be a non empty string without characters '/' and ','. Validation error message: 'a/b' does not match '^[^,/]*$'".into()
            )
        );
        assert!(err(validate_tag("a,b"))
            .1
            .ends_with("'a,b' does not match '^[^,/]*$'"));
        assert!(err(validate_tag(&"x".repeat(61)))
            .1
            .ends_with("is too long"));
        assert!(err(validate_tag("")).1.ends_with("'' should be non-empty"));
        assert_eq!(
            tag_limit_exceeded().message,
            "The number of tags exceeded the per-server limit 50"
        );
    }

    #[test]
    fn tag_bodies() {
        assert_eq!(
            parse_tags_body(&json!({"tags": ["a", "b", "a"]})).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            parse_tags_body(&json!({"tags": []})).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            err(parse_tags_body(&json!({}))).1,
            "'tags' is a required property"
        );
        assert_eq!(
            err(parse_tags_body(&json!({"tags": ["ok", "b/ad"]}))).1,
            "Invalid input for field/attribute 1. Value: b/ad. 'b/ad' does not match '^[^,/]*$'"
        );
        assert_eq!(
            err(parse_tags_body(&json!({"tags": "a"}))).1,
            "Invalid input for field/attribute tags. Value: a. 'a' is not of type 'array'"
        );
        let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
        assert!(err(parse_tags_body(&json!({ "tags": many })))
            .1
            .ends_with("is too long"));
        assert_eq!(
            err(parse_tags_body(&json!({"tags": [], "x": 1}))).1,
            "Additional properties are not allowed ('x' was unexpected)"
        );
    }
}
