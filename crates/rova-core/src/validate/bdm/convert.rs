//! Turning request items into [`BlockDeviceMapping`]s: Nova's
//! `BlockDeviceDict.from_api` (v2) and `from_legacy` / `from_legacy_mapping`
//! (legacy, root device and the implicit image mapping).

use super::*;

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

pub(super) fn strip_dev(name: Option<&str>) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
