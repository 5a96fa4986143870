//! The checks Nova's `_validate_bdm` makes on converted mappings: the
//! root device name, the boot sequence, sizes and disk bus (lookup-free),
//! and the flavor-dependent limits for the caller that holds the flavor.

use super::*;

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
