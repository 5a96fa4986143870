//! Block device mappings on create: legacy/v2 mixing and schema, the v2
//! rules, the boot sequence, the root device, legacy conversion, and the
//! tag / volume_type microversion boundaries.

use super::*;

#[test]
fn bdm_syntax_mix_and_schema() {
    let both = json!({"block_device_mapping": [{"volume_id": VOL, "device_name": "vda"}],
        "block_device_mapping_v2": [{"source_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(
        err(with(1, both), 1),
        (
            400,
            "Using different block_device_mapping syntaxes is not allowed in the same request."
                .into()
        )
    );
    // Empty lists do not count as using a syntax.
    let empty_legacy = json!({"block_device_mapping": [],
        "block_device_mapping_v2": [{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert!(!ok(with(1, empty_legacy), 1).legacy_bdm);
    assert_eq!(
        err(with(1, json!({"block_device_mapping_v2": [{"source_type": "volume", "uuid": VOL, "bogus": 1}]})), 1).1,
        format!(
            "Invalid input for field/attribute 0. Value: {{'bogus': 1, 'source_type': 'volume', 'uuid': '{VOL}'}}. {}",
            unexpected("bogus")
        )
    );
}

#[test]
fn bdm_v2_rules() {
    let v2 = |items: Value| with(1, json!({ "block_device_mapping_v2": items }));
    assert_eq!(
        err(
            v2(json!([{"source_type": "blank", "uuid": VOL, "destination_type": "local"}])),
            1
        ),
        (
            400,
            "Block Device Mapping is Invalid: Invalid device UUID.".into()
        )
    );
    assert_eq!(
        err(
            v2(json!([{"source_type": "volume", "destination_type": "volume", "boot_index": 0}])),
            1
        )
        .1,
        "Block Device Mapping is Invalid: Missing device UUID."
    );
    // image -> local only with imageRef and boot_index 0.
    let img_local = json!([{"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0}]);
    let c = ok(v2(img_local.clone()), 1);
    assert_eq!(c.block_device_mapping.len(), 1);
    let no_image =
        json!({"server": {"name": "vm", "flavorRef": "1", "block_device_mapping_v2": img_local}});
    assert_eq!(
        err(no_image, 1).1,
        "Block Device Mapping is Invalid: Mapping image to local is not supported."
    );
    assert_eq!(
        err(v2(json!([{"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 1}])), 1).1,
        "Block Device Mapping is Invalid: Mapping image to local is not supported."
    );
    // image/blank -> volume need a size.
    assert_eq!(
        err(v2(json!([{"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0}])), 1).1,
        "Images with destination_type 'volume' need to have a non-zero size specified"
    );
    assert!(ok(v2(json!([{"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0, "volume_size": 10}])), 1)
        .block_device_mapping[0]
        .volume_size
        == Some(10));
    assert_eq!(
        err(
            v2(json!([
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
            {"source_type": "blank", "destination_type": "volume", "boot_index": -1}])),
            1
        )
        .1,
        "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size"
    );
    assert_eq!(
        err(v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "disk_bus": "nvme0"}])), 1).1,
        "Block Device Mapping is Invalid."
    );
}

#[test]
fn bdm_boot_sequence() {
    let seq = "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.";
    let v2 = |items: Value| with(1, json!({ "block_device_mapping_v2": items }));
    // An image plus a data volume without any boot index: Nova adds no
    // implicit root for the v2 syntax.
    assert_eq!(
        err(
            v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL}])),
            1
        ),
        (400, seq.into())
    );
    assert_eq!(
        err(v2(json!([{"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1}])), 1).1,
        seq
    );
    assert!(ok(
        v2(json!([
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": "1"},
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
            {"source_type": "blank", "destination_type": "local", "boot_index": -1, "guest_format": "swap", "volume_size": 1},
            {"source_type": "blank", "destination_type": "local", "boot_index": null}
        ])),
        1
    )
    .block_device_mapping
    .len()
        == 4);
    assert_eq!(
        err(v2(json!([
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0},
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 2}])), 1).1,
        seq
    );
}

#[test]
fn bdm_root_device_and_multi_instance() {
    let v2 = json!({"block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1, "device_name": "/dev/vda"}]});
    assert_eq!(
        err(with(1, v2), 1).1,
        "The volume cannot be assigned the same device name as the root device vda"
    );
    let multi = json!({"max_count": 2, "block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0},
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 1}]});
    assert_eq!(
        err(with(1, multi), 1),
        (
            400,
            "Cannot attach one or more volumes to multiple instances".into()
        )
    );
    let snap_multi = json!({"min_count": 2, "block_device_mapping_v2": [
        {"source_type": "snapshot", "destination_type": "volume", "uuid": VOL, "boot_index": 0}]});
    assert_eq!(ok(with(1, snap_multi), 1).min_count, 2);
}

#[test]
fn bdm_legacy_conversion() {
    let legacy = json!({"-imageRef": null, "block_device_mapping": [
        {"volume_id": VOL, "device_name": "vda", "delete_on_termination": "1"},
        {"virtual_name": "swap", "device_name": "vdb", "volume_size": 1}]});
    let c = ok(with(1, legacy), 1);
    assert!(c.legacy_bdm);
    assert_eq!(c.image_ref, None);
    let b = &c.block_device_mapping;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].source_type.as_deref(), Some("volume"));
    assert_eq!(b[0].uuid.as_deref(), Some(VOL));
    assert_eq!(b[0].boot_index, Some(0));
    assert_eq!(b[0].device_name.as_deref(), Some("/dev/vda"));
    assert!(b[0].delete_on_termination);
    assert_eq!(b[1].guest_format.as_deref(), Some("swap"));
    assert_eq!(b[1].boot_index, Some(-1));

    // With an image, a non-root legacy volume rides on the implicit image root.
    let with_image = json!({"block_device_mapping": [{"volume_id": VOL, "device_name": "vdb"}]});
    let c = ok(with(1, with_image), 1);
    assert_eq!(c.image_ref.as_deref(), Some(IMG));
    assert_eq!(c.block_device_mapping[0].boot_index, Some(-1));

    // Without an image and without a vda root there is nothing to boot.
    let no_root = json!({"-imageRef": null, "block_device_mapping": [{"volume_id": VOL, "device_name": "vdb"}]});
    assert!(err(with(1, no_root), 1).1.contains("Boot sequence"));

    assert_eq!(
        err(
            with(1, json!({"block_device_mapping": [{"device_name": "vdb"}]})),
            1
        ),
        (
            400,
            "Block Device Mapping is Invalid: Unrecognized legacy format.".into()
        )
    );
    assert!(err(
        with(
            1,
            json!({"block_device_mapping": [{"volume_id": VOL, "tag": "x"}]})
        ),
        42
    )
    .1
    .ends_with(&unexpected("tag")));
}

#[test]
fn bdm_tag_and_volume_type_boundaries() {
    let tagged = json!({"block_device_mapping_v2": [
        {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "tag": "disk1"}]});
    assert!(err(with(31, tagged.clone()), 31)
        .1
        .ends_with(&unexpected("tag")));
    assert_eq!(
        ok(with(32, tagged.clone()), 32).block_device_mapping[0]
            .tag
            .as_deref(),
        Some("disk1")
    );
    assert!(err(with(33, tagged.clone()), 33)
        .1
        .ends_with(&unexpected("tag")));
    assert!(err(with(41, tagged.clone()), 41)
        .1
        .ends_with(&unexpected("tag")));
    assert_eq!(
        ok(with(42, tagged), 42).block_device_mapping[0]
            .tag
            .as_deref(),
        Some("disk1")
    );

    let typed = json!({"block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "volume", "uuid": IMG, "boot_index": 0, "volume_size": 1, "volume_type": "ssd"}]});
    assert!(err(with(66, typed.clone()), 66)
        .1
        .ends_with(&unexpected("volume_type")));
    assert_eq!(
        ok(with(67, typed), 67).block_device_mapping[0]
            .volume_type
            .as_deref(),
        Some("ssd")
    );
    assert_eq!(
        err(with(67, json!({"block_device_mapping_v2": [
            {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": 0, "volume_type": "ssd"}]})), 67).1,
        "Block Device Mapping is Invalid: Specifying volume type to existing volume is not supported."
    );
    assert_eq!(
        err(with(67, json!({"block_device_mapping_v2": [
            {"source_type": "image", "destination_type": "local", "uuid": IMG, "boot_index": 0, "volume_type": "ssd"}]})), 67).1,
        "Block Device Mapping is Invalid: Specifying a volume_type with destination_type=local is not supported."
    );
}
