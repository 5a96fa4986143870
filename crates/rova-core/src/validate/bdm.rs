//! Block device mappings on create: the schema of `block_device_mapping`
//! (legacy) and `block_device_mapping_v2` items, the v2 `from_api` rules,
//! the legacy-to-v2 conversion (root device and implicit image mapping),
//! and the checks Nova's `_validate_bdm` makes that need no lookups (boot
//! sequence, sizes, disk bus). Flavor-dependent limits are offered as a
//! separate helper for the caller that holds the flavor.

use super::fields::{self, check_additional, check_type, object, Ty, VResult};
use crate::error::Fault;
use crate::microversion::Microversion;
use crate::model::BlockDeviceMapping;
use serde_json::{Map, Value};

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
const ROOT_DEVICE: &str = "vda";

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

fn opt_string(item: &BdmItem, key: &str) -> Option<String> {
    item.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `bool_from_string` (lenient): `1 t true on y yes`, any case.
fn lenient_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        ),
        _ => false,
    }
}

fn boot_index(item: &BdmItem) -> Option<i64> {
    match item.get("boot_index")? {
        Value::String(s) => Some(s.parse::<i64>().unwrap_or(if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        })),
        v => {
            fields::int_value(v).map(|n| n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        }
    }
}

fn volume_size(item: &BdmItem) -> Option<u64> {
    match item.get("volume_size")? {
        Value::String(s) => s.parse().ok(),
        v => fields::int_value(v).and_then(|n| u64::try_from(n).ok()),
    }
    .filter(|n| *n > 0)
}

/// `/dev/` prefixed once, as Nova stores device names.
fn prepend_dev(name: &str) -> String {
    format!("/dev/{}", name.strip_prefix("/dev/").unwrap_or(name))
}

fn strip_dev(name: Option<&str>) -> Option<&str> {
    name.map(|n| n.strip_prefix("/dev/").unwrap_or(n))
}

/// The parts of a mapping both formats share.
fn common_fields(item: &BdmItem) -> BlockDeviceMapping {
    let no_device = fields::truthy(item.get("no_device"));
    let delete_on_termination = match item.get("delete_on_termination") {
        // Nova skips the string conversion for no_device entries and keeps
        // the raw value's truthiness.
        Some(v) if no_device => fields::truthy(Some(v)),
        Some(v) => lenient_bool(v),
        None => false,
    };
    BlockDeviceMapping {
        volume_size: volume_size(item),
        device_name: opt_string(item, "device_name")
            .filter(|d| !d.is_empty())
            .map(|d| prepend_dev(&d)),
        delete_on_termination,
        no_device,
        ..Default::default()
    }
}

/// Nova's `BlockDeviceDict.from_api` for one v2 item.
pub(crate) fn from_api(item: &BdmItem, image_uuid_specified: bool) -> VResult<BlockDeviceMapping> {
    let no_device = fields::truthy(item.get("no_device"));
    let source = item.get("source_type").and_then(Value::as_str);
    let dest = item.get("destination_type").and_then(Value::as_str);
    let uuid = item
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    let volume_type = item
        .get("volume_type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    if !no_device {
        if source == Some("blank") && uuid.is_some() {
            return Err(bdm_invalid("Invalid device UUID."));
        }
        if source != Some("blank") && uuid.is_none() {
            return Err(bdm_invalid("Missing device UUID."));
        }
        if source.is_none() {
            // Nova would fail building `<source_type>_id`; report the missing
            // required field instead.
            return Err(bdm_invalid("Some required fields are missing"));
        }
        if source == Some("image") && dest == Some("local") {
            let index = boot_index(item).unwrap_or(-1);
            if !(image_uuid_specified && index == 0) {
                return Err(bdm_invalid("Mapping image to local is not supported."));
            }
        }
        if dest == Some("local") && volume_type.is_some() {
            return Err(bdm_invalid(
                "Specifying a volume_type with destination_type=local is not supported.",
            ));
        }
        if source == Some("volume") && volume_type.is_some() {
            return Err(bdm_invalid(
                "Specifying volume type to existing volume is not supported.",
            ));
        }
    }
    if item.contains_key("virtual_name") {
        return Err(bdm_invalid("Following fields are invalid: virtual_name"));
    }
    let mut bdm = common_fields(item);
    bdm.source_type = source.map(str::to_string);
    bdm.destination_type = dest.map(str::to_string);
    bdm.uuid = if source == Some("blank") {
        None
    } else {
        uuid.map(str::to_string)
    };
    bdm.boot_index = boot_index(item);
    bdm.guest_format = opt_string(item, "guest_format");
    bdm.device_type = opt_string(item, "device_type");
    bdm.disk_bus = opt_string(item, "disk_bus");
    bdm.tag = opt_string(item, "tag");
    bdm.volume_type = volume_type.map(str::to_string);
    Ok(bdm)
}

fn is_swap_or_ephemeral(name: &str) -> bool {
    if name == "swap" {
        return true;
    }
    match name.strip_prefix("ephemeral") {
        Some(n) => {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        }
        None => false,
    }
}

/// Nova's `BlockDeviceDict.from_legacy` for one legacy item.
fn from_legacy(item: &BdmItem) -> VResult<BlockDeviceMapping> {
    let mut bdm = common_fields(item);
    let virtual_name = item.get("virtual_name").and_then(Value::as_str);
    let snapshot = opt_string(item, "snapshot_id").filter(|s| !s.is_empty());
    let volume = opt_string(item, "volume_id").filter(|s| !s.is_empty());
    if virtual_name.is_some_and(is_swap_or_ephemeral) {
        bdm.source_type = Some("blank".into());
        bdm.destination_type = Some("local".into());
        bdm.delete_on_termination = true;
        if virtual_name == Some("swap") {
            bdm.guest_format = Some("swap".into());
        }
    } else if let Some(s) = snapshot {
        bdm.source_type = Some("snapshot".into());
        bdm.destination_type = Some("volume".into());
        bdm.uuid = Some(s);
    } else if let Some(v) = volume {
        bdm.source_type = Some("volume".into());
        bdm.destination_type = Some("volume".into());
        bdm.uuid = Some(v);
    } else if !bdm.no_device {
        return Err(bdm_invalid("Unrecognized legacy format."));
    }
    Ok(bdm)
}

/// Nova's `from_legacy_mapping` with root device `vda`: converts every item,
/// makes a volume/snapshot on `vda` the root (boot_index 0) and everything
/// else non-bootable. Returns the mappings and whether Nova would prepend an
/// implicit image mapping (image given and no volume root).
pub(crate) fn convert_legacy(
    items: &[BdmItem],
    image_ref: Option<&str>,
) -> VResult<(Vec<BlockDeviceMapping>, bool)> {
    let mut out = Vec::with_capacity(items.len());
    let mut volume_backed = false;
    for item in items {
        let mut bdm = from_legacy(item)?;
        let rootable = matches!(
            bdm.source_type.as_deref(),
            Some("volume" | "snapshot" | "image")
        );
        if rootable && strip_dev(bdm.device_name.as_deref()) == Some(ROOT_DEVICE) {
            bdm.boot_index = Some(0);
            volume_backed = true;
        } else if !bdm.no_device {
            bdm.boot_index = Some(-1);
        } else {
            bdm.boot_index = None;
        }
        out.push(bdm);
    }
    let implicit_image = !volume_backed && image_ref.is_some();
    Ok((out, implicit_image))
}

/// With an image, a v2 volume may not take the root device name.
pub(crate) fn check_root_device_name(bdms: &[BlockDeviceMapping]) -> VResult<()> {
    for bdm in bdms {
        if bdm.destination_type.as_deref() == Some("volume")
            && strip_dev(bdm.device_name.as_deref()) == Some(ROOT_DEVICE)
        {
            return Err(Fault::bad_request(format!(
                "The volume cannot be assigned the same device name as the root device {ROOT_DEVICE}"
            )));
        }
    }
    Ok(())
}

/// The lookup-free part of Nova's `_validate_bdm`: the boot sequence must
/// be exactly 0, 1, 2, ...; image/blank to volume need a size; the disk bus
/// must be known. `implicit_image_root` counts Nova's prepended image
/// mapping (boot_index 0).
pub(crate) fn validate_bdms(bdms: &[BlockDeviceMapping], implicit_image_root: bool) -> VResult<()> {
    let mut indexes: Vec<i64> = bdms
        .iter()
        .filter_map(|b| b.boot_index)
        .filter(|i| *i >= 0)
        .collect();
    if implicit_image_root {
        indexes.push(0);
    }
    indexes.sort_unstable();
    let in_sequence = indexes.iter().enumerate().all(|(i, v)| *v == i as i64);
    if indexes.is_empty() || !in_sequence {
        return Err(bdm_invalid(
            "Boot sequence for the instance and image/block device mapping combination is not valid.",
        ));
    }
    for bdm in bdms {
        let source = bdm.source_type.as_deref();
        let dest = bdm.destination_type.as_deref();
        let sized = bdm.volume_size.is_some_and(|s| s > 0);
        if source == Some("image") && dest == Some("volume") && !sized {
            return Err(Fault::bad_request(
                "Images with destination_type 'volume' need to have a non-zero size specified",
            ));
        }
        if source == Some("blank") && dest == Some("volume") && !sized {
            return Err(Fault::bad_request(
                "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size",
            ));
        }
        if let Some(bus) = bdm.disk_bus.as_deref().filter(|b| !b.is_empty()) {
            if !DISK_BUSES.contains(&bus) {
                // Nova's InvalidBDMDiskBus falls back to its parent's text.
                return Err(Fault::bad_request("Block Device Mapping is Invalid."));
            }
        }
    }
    Ok(())
}

fn is_local_blank(bdm: &BlockDeviceMapping) -> bool {
    bdm.source_type.as_deref() == Some("blank") && bdm.destination_type.as_deref() == Some("local")
}

/// The flavor-dependent part of Nova's `_validate_bdm`, for the caller that
/// holds the flavor: total ephemeral size (an unsized entry counts as the
/// whole `ephemeral_gb`), one swap no bigger than the flavor's, and at most
/// `max_local` local entries (negative: unlimited; Nova's default is 3).
pub fn check_bdm_flavor_limits(
    bdms: &[BlockDeviceMapping],
    ephemeral_gb: u64,
    swap_mb: u64,
    max_local: i64,
) -> Result<(), Fault> {
    let ephemeral: u64 = bdms
        .iter()
        .filter(|b| is_local_blank(b) && b.guest_format.as_deref() != Some("swap"))
        .map(|b| b.volume_size.unwrap_or(ephemeral_gb))
        .sum();
    if ephemeral > ephemeral_gb {
        return Err(Fault::bad_request(
            "Ephemeral disks requested are larger than the instance type allows. If no size is \
             given in one block device mapping, flavor ephemeral size will be used.",
        ));
    }
    let swaps: Vec<&BlockDeviceMapping> = bdms
        .iter()
        .filter(|b| is_local_blank(b) && b.guest_format.as_deref() == Some("swap"))
        .collect();
    if swaps.len() > 1 {
        return Err(bdm_invalid("More than one swap drive requested."));
    }
    if let Some(swap) = swaps.first() {
        if swap.volume_size.unwrap_or(0) > swap_mb {
            return Err(Fault::bad_request(
                "Swap drive requested is larger than instance type allows.",
            ));
        }
    }
    if let Ok(max) = usize::try_from(max_local) {
        let locals = bdms
            .iter()
            .filter(|b| b.destination_type.as_deref() == Some("local"))
            .count();
        if locals > max {
            return Err(bdm_invalid(
                "You specified more local devices than the limit allows",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U: &str = "0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

    fn item(v: Value) -> BdmItem {
        v.as_object().cloned().expect("object")
    }

    fn err<T: std::fmt::Debug>(r: VResult<T>) -> (u16, String) {
        let e = r.expect_err("expected a fault");
        (e.code, e.message)
    }

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

    #[test]
    fn from_api_rules() {
        assert_eq!(
            err(from_api(
                &item(json!({"source_type": "blank", "uuid": U})),
                false
            )),
            (
                400,
                "Block Device Mapping is Invalid: Invalid device UUID.".into()
            )
        );
        assert_eq!(
            err(from_api(&item(json!({"source_type": "volume"})), false)).1,
            "Block Device Mapping is Invalid: Missing device UUID."
        );
        assert_eq!(
            err(from_api(
                &item(json!({"destination_type": "volume"})),
                false
            ))
            .1,
            "Block Device Mapping is Invalid: Missing device UUID."
        );
        let img_local = json!({"source_type": "image", "destination_type": "local", "uuid": U, "boot_index": 0});
        assert!(from_api(&item(img_local.clone()), true).is_ok());
        assert_eq!(
            err(from_api(&item(img_local), false)).1,
            "Block Device Mapping is Invalid: Mapping image to local is not supported."
        );
        let img_local_1 = json!({"source_type": "image", "destination_type": "local", "uuid": U, "boot_index": "1"});
        assert!(from_api(&item(img_local_1), true).is_err());
        let img_local_none = json!({"source_type": "image", "destination_type": "local", "uuid": U, "boot_index": null});
        assert!(from_api(&item(img_local_none), true).is_err());
        assert_eq!(
            err(from_api(&item(json!({"source_type": "blank", "destination_type": "local", "volume_type": "ssd"})), false)).1,
            "Block Device Mapping is Invalid: Specifying a volume_type with destination_type=local is not supported."
        );
        assert_eq!(
            err(from_api(&item(json!({"source_type": "volume", "uuid": U, "destination_type": "volume", "volume_type": "ssd"})), false)).1,
            "Block Device Mapping is Invalid: Specifying volume type to existing volume is not supported."
        );
        assert!(from_api(&item(json!({"source_type": "image", "uuid": U, "destination_type": "volume", "volume_type": "ssd", "volume_size": 1})), false).is_ok());
        assert!(from_api(
            &item(json!({"source_type": "volume", "uuid": U, "volume_type": ""})),
            false
        )
        .is_ok());
        assert_eq!(
            err(from_api(
                &item(json!({"source_type": "volume", "uuid": U, "virtual_name": "x"})),
                false
            ))
            .1,
            "Block Device Mapping is Invalid: Following fields are invalid: virtual_name"
        );
        let nodev = from_api(
            &item(
                json!({"no_device": true, "device_name": "vdb", "delete_on_termination": "False"}),
            ),
            false,
        )
        .unwrap();
        assert!(nodev.no_device && nodev.delete_on_termination);
        assert_eq!(nodev.source_type, None);
    }

    #[test]
    fn from_api_conversion() {
        let b = from_api(
            &item(
                json!({"source_type": "volume", "destination_type": "volume", "uuid": U,
                "boot_index": "0", "volume_size": "5", "device_name": "vda",
                "delete_on_termination": "yes", "disk_bus": "virtio", "device_type": "disk",
                "guest_format": "ext4", "tag": "root"}),
            ),
            false,
        )
        .unwrap();
        assert_eq!(b.source_type.as_deref(), Some("volume"));
        assert_eq!(b.destination_type.as_deref(), Some("volume"));
        assert_eq!(b.uuid.as_deref(), Some(U));
        assert_eq!(b.boot_index, Some(0));
        assert_eq!(b.volume_size, Some(5));
        assert_eq!(b.device_name.as_deref(), Some("/dev/vda"));
        assert!(b.delete_on_termination);
        assert_eq!(b.disk_bus.as_deref(), Some("virtio"));
        assert_eq!(b.tag.as_deref(), Some("root"));
        let b = from_api(&item(json!({"source_type": "blank", "destination_type": "local", "device_name": "/dev/vdb", "boot_index": -1})), false).unwrap();
        assert_eq!(b.device_name.as_deref(), Some("/dev/vdb"));
        assert_eq!(b.boot_index, Some(-1));
        assert_eq!(b.uuid, None);
        assert!(!b.delete_on_termination);
    }

    #[test]
    fn legacy_conversion() {
        let items = vec![
            item(json!({"volume_id": U, "device_name": "/dev/vda"})),
            item(json!({"snapshot_id": U, "device_name": "vdb"})),
            item(json!({"virtual_name": "swap", "device_name": "vdc", "volume_size": 1})),
            item(json!({"virtual_name": "ephemeral0", "device_name": "vdd"})),
            item(json!({"no_device": true, "device_name": "vde"})),
        ];
        let (bdms, implicit) = convert_legacy(&items, Some(U)).unwrap();
        assert!(!implicit);
        assert_eq!(bdms[0].source_type.as_deref(), Some("volume"));
        assert_eq!(bdms[0].boot_index, Some(0));
        assert_eq!(bdms[1].source_type.as_deref(), Some("snapshot"));
        assert_eq!(bdms[1].destination_type.as_deref(), Some("volume"));
        assert_eq!(bdms[1].boot_index, Some(-1));
        assert_eq!(bdms[2].guest_format.as_deref(), Some("swap"));
        assert_eq!(bdms[2].destination_type.as_deref(), Some("local"));
        assert!(bdms[2].delete_on_termination);
        assert_eq!(bdms[3].source_type.as_deref(), Some("blank"));
        assert_eq!(bdms[3].guest_format, None);
        assert_eq!(bdms[4].boot_index, None);
        assert!(validate_bdms(&bdms, implicit).is_ok());

        let (bdms, implicit) = convert_legacy(
            &[item(json!({"volume_id": U, "device_name": "vdb"}))],
            Some(U),
        )
        .unwrap();
        assert!(implicit);
        assert!(validate_bdms(&bdms, implicit).is_ok());
        let (bdms, implicit) =
            convert_legacy(&[item(json!({"volume_id": U, "device_name": "vdb"}))], None).unwrap();
        assert!(!implicit);
        assert!(validate_bdms(&bdms, implicit).is_err());

        assert_eq!(
            err(convert_legacy(
                &[item(json!({"virtual_name": "ephemeral01"}))],
                None
            ))
            .1,
            "Block Device Mapping is Invalid: Unrecognized legacy format."
        );
        assert_eq!(
            err(convert_legacy(&[item(json!({"device_name": "vdb"}))], None)).1,
            "Block Device Mapping is Invalid: Unrecognized legacy format."
        );
        assert!(is_swap_or_ephemeral("ephemeral12"));
        assert!(!is_swap_or_ephemeral("ephemeral"));
    }

    fn bdm(source: &str, dest: &str, boot: Option<i64>, size: Option<u64>) -> BlockDeviceMapping {
        BlockDeviceMapping {
            source_type: Some(source.into()),
            destination_type: Some(dest.into()),
            uuid: (source != "blank").then(|| U.to_string()),
            boot_index: boot,
            volume_size: size,
            ..Default::default()
        }
    }

    #[test]
    fn boot_sequence_and_sizes() {
        let seq = "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.";
        assert!(validate_bdms(&[bdm("volume", "volume", Some(0), None)], false).is_ok());
        assert!(validate_bdms(
            &[
                bdm("volume", "volume", Some(1), None),
                bdm("volume", "volume", Some(0), None),
                bdm("blank", "local", Some(-1), None)
            ],
            false
        )
        .is_ok());
        assert_eq!(
            err(validate_bdms(&[bdm("volume", "volume", None, None)], false)),
            (400, seq.into())
        );
        assert_eq!(
            err(validate_bdms(
                &[bdm("volume", "volume", Some(1), None)],
                false
            ))
            .1,
            seq
        );
        assert_eq!(
            err(validate_bdms(
                &[
                    bdm("volume", "volume", Some(0), None),
                    bdm("volume", "volume", Some(2), None)
                ],
                false
            ))
            .1,
            seq
        );
        assert_eq!(
            err(validate_bdms(
                &[
                    bdm("volume", "volume", Some(0), None),
                    bdm("volume", "volume", Some(0), None)
                ],
                false
            ))
            .1,
            seq
        );
        assert_eq!(
            err(validate_bdms(
                &[bdm("image", "volume", Some(0), None)],
                false
            ))
            .1,
            "Images with destination_type 'volume' need to have a non-zero size specified"
        );
        assert!(validate_bdms(&[bdm("image", "volume", Some(0), Some(1))], false).is_ok());
        assert_eq!(
            err(validate_bdms(
                &[
                    bdm("volume", "volume", Some(0), None),
                    bdm("blank", "volume", None, None)
                ],
                false
            ))
            .1,
            "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size"
        );
        let mut b = bdm("volume", "volume", Some(0), None);
        b.disk_bus = Some("floppy".into());
        assert_eq!(
            err(validate_bdms(&[b], false)).1,
            "Block Device Mapping is Invalid."
        );
    }

    #[test]
    fn root_device_name() {
        let mut b = bdm("volume", "volume", Some(1), None);
        b.device_name = Some("/dev/vda".into());
        assert_eq!(
            err(check_root_device_name(&[b.clone()])).1,
            "The volume cannot be assigned the same device name as the root device vda"
        );
        b.device_name = Some("/dev/vdb".into());
        assert!(check_root_device_name(&[b]).is_ok());
    }

    #[test]
    fn flavor_limits() {
        let mut eph = bdm("blank", "local", Some(-1), Some(5));
        assert!(check_bdm_flavor_limits(&[eph.clone()], 5, 0, 3).is_ok());
        assert_eq!(
            err(check_bdm_flavor_limits(&[eph.clone()], 4, 0, 3)).1,
            "Ephemeral disks requested are larger than the instance type allows. If no size is given in one block device mapping, flavor ephemeral size will be used."
        );
        eph.volume_size = None;
        assert!(check_bdm_flavor_limits(&[eph.clone()], 4, 0, 3).is_ok());
        assert!(check_bdm_flavor_limits(&[eph.clone(), eph.clone()], 4, 0, 3).is_err());
        let mut swap = bdm("blank", "local", Some(-1), Some(512));
        swap.guest_format = Some("swap".into());
        assert!(check_bdm_flavor_limits(&[swap.clone()], 0, 512, 3).is_ok());
        assert_eq!(
            err(check_bdm_flavor_limits(&[swap.clone()], 0, 256, 3)).1,
            "Swap drive requested is larger than instance type allows."
        );
        assert_eq!(
            err(check_bdm_flavor_limits(
                &[swap.clone(), swap.clone()],
                0,
                1024,
                3
            ))
            .1,
            "Block Device Mapping is Invalid: More than one swap drive requested."
        );
        let local = bdm("image", "local", Some(0), None);
        let four = vec![local.clone(), local.clone(), local.clone(), local.clone()];
        assert_eq!(
            err(check_bdm_flavor_limits(&four, 0, 0, 3)).1,
            "Block Device Mapping is Invalid: You specified more local devices than the limit allows"
        );
        assert!(check_bdm_flavor_limits(&four, 0, 0, -1).is_ok());
    }
}
