//! The schema pass over `block_device_mapping` (legacy) and
//! `block_device_mapping_v2` items: allowed keys per microversion and the
//! type / pattern / enum rule of each property.

use super::*;

/// One schema-checked request item.
pub(crate) type BdmItem = Map<String, Value>;

const LEGACY_KEYS: [&str; 8] = [
    "virtual_name",
    "volume_id",
    "snapshot_id",
    "volume_size",
    "device_name",
    "delete_on_termination",
    "no_device",
    "connection_info",
];

const V2_KEYS: [&str; 8] = [
    "source_type",
    "uuid",
    "image_id",
    "destination_type",
    "guest_format",
    "device_type",
    "disk_bus",
    "boot_index",
];

const SOURCE_TYPES: [&str; 4] = ["volume", "image", "snapshot", "blank"];
const DESTINATION_TYPES: [&str; 2] = ["local", "volume"];
/// Nova's `DiskBus.ALL`.
pub const DISK_BUSES: [&str; 9] = [
    "fdc", "ide", "sata", "scsi", "usb", "virtio", "xen", "lxc", "uml",
];
/// The root device name Nova assumes when the image names none.
pub(super) const ROOT_DEVICE: &str = "vda";

/// `Block Device Mapping is Invalid: <details>` (400).
pub(crate) fn bdm_invalid(details: &str) -> Fault {
    Fault::bad_request(format!("Block Device Mapping is Invalid: {details}"))
}

fn v2_keys(v: Microversion) -> Vec<&'static str> {
    let mut keys: Vec<&str> = LEGACY_KEYS.to_vec();
    keys.extend(V2_KEYS);
    if v == Microversion::new(2, 32) || v.at_least(42) {
        keys.push("tag");
    }
    if v.at_least(67) {
        keys.push("volume_type");
    }
    keys
}

fn enum_string(field: &str, val: &Value, choices: &[&str]) -> VResult<()> {
    let s = fields::string(field, val)?;
    if choices.contains(&s.as_str()) {
        Ok(())
    } else {
        Err(fields::enum_fail(field, val, choices))
    }
}

fn check_property(key: &str, val: &Value) -> VResult<()> {
    match key {
        "virtual_name" | "guest_format" | "device_type" | "disk_bus" => {
            fields::string_max(key, val, 255).map(drop)
        }
        "volume_id" | "snapshot_id" | "image_id" => fields::uuid(key, val).map(drop),
        "volume_size" => fields::volume_size(key, val).map(drop),
        "device_name" => {
            let s = fields::string(key, val)?;
            fields::min_length(key, val, &s, 1)?;
            fields::max_length(key, val, &s, 255)?;
            if !s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-'))
            {
                return Err(fields::pattern_fail(key, val, "^[a-zA-Z0-9._/-]*$"));
            }
            Ok(())
        }
        "delete_on_termination" => fields::boolean(key, val).map(drop),
        "connection_info" => fields::string_max(key, val, 16_777_215).map(drop),
        "source_type" => enum_string(key, val, &SOURCE_TYPES),
        "destination_type" => enum_string(key, val, &DESTINATION_TYPES),
        "uuid" => {
            let s = fields::string(key, val)?;
            fields::min_length(key, val, &s, 1)?;
            fields::max_length(key, val, &s, 255)?;
            if !s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            {
                return Err(fields::pattern_fail(key, val, "^[a-zA-Z0-9._-]*$"));
            }
            Ok(())
        }
        "boot_index" => {
            check_type(key, val, &[Ty::Int, Ty::Str, Ty::Null])?;
            if let Some(s) = val.as_str() {
                let digits = s.strip_prefix('-').unwrap_or(s);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fields::pattern_fail(key, val, "^-?[0-9]+$"));
                }
            }
            Ok(())
        }
        "tag" => fields::tag(key, val).map(drop),
        "volume_type" => {
            check_type(key, val, &[Ty::Str, Ty::Null])?;
            if let Some(s) = val.as_str() {
                fields::max_length(key, val, s, 255)?;
            }
            Ok(())
        }
        // `no_device` takes any value.
        _ => Ok(()),
    }
}

fn check_list(field: &str, v: &Value, keys: &[&str]) -> VResult<Vec<BdmItem>> {
    let items = fields::array(field, v)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let obj = object(Some(&idx), item)?;
        for key in keys {
            if let Some(val) = obj.get(*key) {
                check_property(key, val)?;
            }
        }
        check_additional(Some(&idx), item, obj, keys)?;
        out.push(obj.clone());
    }
    Ok(out)
}

/// Schema pass over `block_device_mapping` (legacy items).
pub(crate) fn schema_legacy(v: &Value) -> VResult<Vec<BdmItem>> {
    check_list("block_device_mapping", v, &LEGACY_KEYS)
}

/// Schema pass over `block_device_mapping_v2` for this microversion
/// (`tag` at 2.32 and 2.42+, `volume_type` at 2.67+).
pub(crate) fn schema_v2(v: &Value, ver: Microversion) -> VResult<Vec<BdmItem>> {
    check_list("block_device_mapping_v2", v, &v2_keys(ver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_schema_fields() {
        let v = Microversion::new(2, 1);
        assert_eq!(
            err(schema_v2(&json!([{"source_type": "disk"}]), v)).1,
            "Invalid input for field/attribute source_type. Value: disk. 'disk' is not one of ['volume', 'image', 'snapshot', 'blank']"
        );
        assert_eq!(
            err(schema_v2(&json!([{"destination_type": "remote"}]), v)).1,
            "Invalid input for field/attribute destination_type. Value: remote. 'remote' is not one of ['local', 'volume']"
        );
        assert_eq!(
            err(schema_v2(&json!([{"uuid": "a b"}]), v)).1,
            "Invalid input for field/attribute uuid. Value: a b. 'a b' does not match '^[a-zA-Z0-9._-]*$'"
        );
        assert_eq!(
            err(schema_v2(&json!([{"boot_index": "x"}]), v)).1,
            "Invalid input for field/attribute boot_index. Value: x. 'x' does not match '^-?[0-9]+$'"
        );
        assert_eq!(
            err(schema_v2(&json!([{"boot_index": 1.5}]), v)).1,
            "Invalid input for field/attribute boot_index. Value: 1.5. 1.5 is not of type 'integer', 'string', 'null'"
        );
        assert_eq!(
            err(schema_v2(&json!([{"device_name": "vd a"}]), v)).1,
            "Invalid input for field/attribute device_name. Value: vd a. 'vd a' does not match '^[a-zA-Z0-9._/-]*$'"
        );
        assert_eq!(
            err(schema_v2(&json!([{"volume_size": 0}]), v)).1,
            "Invalid input for field/attribute volume_size. Value: 0. 0 is less than the minimum of 1"
        );
        assert_eq!(
            err(schema_v2(&json!([{"image_id": "x"}]), v)).1,
            "Invalid input for field/attribute image_id. Value: x. 'x' is not a 'uuid'"
        );
        assert_eq!(
            err(schema_v2(&json!([{"source_type": "blank", "foo": 1}]), v)).1,
            "Invalid input for field/attribute 0. Value: {'foo': 1, 'source_type': 'blank'}. Additional properties are not allowed ('foo' was unexpected)"
        );
        assert_eq!(
            err(schema_v2(&json!(["x"]), v)).1,
            "Invalid input for field/attribute 0. Value: x. 'x' is not of type 'object'"
        );
        assert_eq!(
            err(schema_v2(&json!({}), v)).1,
            "Invalid input for field/attribute block_device_mapping_v2. Value: {}. {} is not of type 'array'"
        );
        assert!(schema_v2(&json!([{"boot_index": "-1"}, {"boot_index": null}]), v).is_ok());
    }

    #[test]
    fn v2_tag_and_volume_type_versions() {
        let tagged = json!([{"source_type": "blank", "tag": "t"}]);
        for (minor, ok) in [
            (31, false),
            (32, true),
            (33, false),
            (41, false),
            (42, true),
            (90, true),
        ] {
            let r = schema_v2(&tagged, Microversion::new(2, minor));
            assert_eq!(r.is_ok(), ok, "2.{minor}");
            if !ok {
                assert!(err(r)
                    .1
                    .ends_with("Additional properties are not allowed ('tag' was unexpected)"));
            }
        }
        let typed = json!([{"source_type": "blank", "volume_type": "ssd"}]);
        assert!(schema_v2(&typed, Microversion::new(2, 66)).is_err());
        assert!(schema_v2(&typed, Microversion::new(2, 67)).is_ok());
        assert!(schema_v2(&json!([{"volume_type": null}]), Microversion::new(2, 67)).is_ok());
        assert!(schema_v2(&json!([{"tag": "a/b"}]), Microversion::new(2, 42)).is_err());
    }

    #[test]
    fn legacy_schema() {
        assert!(schema_legacy(
            &json!([{"volume_id": U, "device_name": "vda", "delete_on_termination": "true"}])
        )
        .is_ok());
        assert_eq!(
            err(schema_legacy(&json!([{"source_type": "volume"}]))).1,
            "Invalid input for field/attribute 0. Value: {'source_type': 'volume'}. Additional properties are not allowed ('source_type' was unexpected)"
        );
        assert_eq!(
            err(schema_legacy(&json!([{"volume_id": "nope"}]))).1,
            "Invalid input for field/attribute volume_id. Value: nope. 'nope' is not a 'uuid'"
        );
        assert!(schema_legacy(&json!([{"virtual_name": "x".repeat(256)}])).is_err());
    }
}
