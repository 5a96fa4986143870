//! Volumes on a real guest: the disks a server's attached volumes give
//! its QEMU process at launch (a volume-backed server's root disk among
//! them), and plugging a volume into a running guest or pulling it out
//! through QMP (`blockdev-add` + `device_add` of a virtio-blk device;
//! `device_del`, waiting for the guest to let go, then `blockdev-del`).
//!
//! A swap (Nova's `swap_volume`) copies the old volume into the new one
//! and moves the guest's disk onto it as libvirt's block copy does:
//! `blockdev-add` of the new file, `blockdev-mirror` (`sync: full`) from
//! the old drive, `block-job-complete` once the job is ready (the device
//! reads the new node from then on), `blockdev-del` of the old node. A
//! guest that is not running has the bytes copied file to file and reads
//! the new volume at its next launch, from the server's mappings.
//!
//! A volume's drive is `v<volume id's hex digits>` and its device that
//! with another `v` in front, whether it was there at launch or plugged in
//! later, so a detach finds it either way. Its serial is the volume id cut to virtio's 20 bytes, as
//! Nova's libvirt driver does.

use super::{fault, QemuDriver};
use crate::compute::driver::DriverFault;
use crate::virt::qmp::Qmp;
use crate::virt::vmspec::Disk;
use rova_core::model::{BlockDeviceMapping, Instance};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// How long a guest has to release a device it is asked to give up
/// (Nova's libvirt driver waits about as long before it gives up).
pub(super) const DETACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The drive (node) name of volume `id`: `v` and its first 30 hex digits
/// (QEMU's node names have at most 31 characters).
pub(super) fn node_name(volume_id: &str) -> String {
    let hex: String = volume_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(30)
        .collect();
    format!("v{hex}")
}

/// The device id of volume `id` (what the launch command line calls the
/// device of drive `node_name`).
fn device_id(volume_id: &str) -> String {
    format!("v{}", node_name(volume_id))
}

/// The serial a guest sees for volume `id` (`/sys/block/vdX/serial`).
pub(super) fn serial(volume_id: &str) -> String {
    volume_id.chars().take(20).collect()
}

/// The PCI slot of a data volume at `/dev/vdX`: `0x0a` plus the letter's
/// place (`vdb` → `0x0b` … `vdv` → `0x1f`), above the slots the guest's
/// other devices take in command line order; later letters get whatever
/// slot is free.
pub(super) fn pci_slot(device: &str) -> Option<u8> {
    let letter = device.strip_prefix("/dev/")?.strip_prefix("vd")?;
    let mut chars = letter.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let place = (c as u32).checked_sub('a' as u32)?;
    (1..=21).contains(&place).then(|| 0x0a + place as u8)
}

fn volume_disk(b: &BlockDeviceMapping) -> Option<Disk> {
    let id = b.uuid.as_deref()?;
    Some(Disk {
        path: b.volume_file()?.into(),
        format: "raw".into(),
        serial: serial(id),
        readonly: false,
        id: Some(node_name(id)),
        pci_slot: None,
    })
}

/// The volume a volume-backed server boots from, as its root disk.
pub(super) fn root_volume(inst: &Instance) -> Option<Disk> {
    inst.block_device_mapping
        .iter()
        .filter(|b| b.is_attached_volume() && b.boot_index == Some(0))
        .find_map(volume_disk)
}

/// The server's other attached volumes, in device name order.
pub(super) fn data_volumes(inst: &Instance) -> Vec<Disk> {
    let mut maps: Vec<&BlockDeviceMapping> = inst
        .block_device_mapping
        .iter()
        .filter(|b| b.is_attached_volume() && b.boot_index != Some(0))
        .collect();
    maps.sort_by(|a, b| a.device_name.cmp(&b.device_name));
    maps.into_iter()
        .filter_map(|b| {
            let mut d = volume_disk(b)?;
            d.pci_slot = b.device_name.as_deref().and_then(pci_slot);
            Some(d)
        })
        .collect()
}

impl QemuDriver {
    /// Plugs volume `volume_id` (the raw file `path`) into the running
    /// guest of `inst`. A guest that is not running gets it at its next
    /// launch, from the server's mappings.
    pub(super) async fn attach_volume(
        &self,
        inst: &Instance,
        volume_id: &str,
        device: &str,
        path: &Path,
    ) -> Result<(), DriverFault> {
        let Some(host) = inst.host.as_deref() else {
            return Ok(());
        };
        if !self.running(host, &inst.uuid) {
            return Ok(());
        }
        if !path.exists() {
            return Err(fault(format!("volume file {} is missing", path.display())));
        }
        let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        let node = node_name(volume_id);
        let added = q
            .execute(
                "blockdev-add",
                json!({"driver": "raw", "node-name": node,
                       "file": {"driver": "file", "filename": path.to_string_lossy()}}),
            )
            .await;
        if let Err(e) = added {
            return Err(fault(format!("blockdev-add of volume {volume_id}: {e}")));
        }
        let mut dev = json!({"driver": "virtio-blk-pci", "drive": node,
                             "id": device_id(volume_id), "serial": serial(volume_id)});
        if let Some(slot) = pci_slot(device) {
            dev["addr"] = json!(format!("{slot:#04x}"));
        }
        let plugged = q.execute("device_add", dev).await;
        if let Err(e) = plugged {
            let _ = q.execute("blockdev-del", json!({"node-name": node})).await;
            return Err(fault(format!("device_add of volume {volume_id}: {e}")));
        }
        Ok(())
    }

    /// Pulls volume `volume_id` out of the running guest of `inst` and
    /// waits until the guest has released it. A guest that does not let
    /// go in time is a fault: the volume stays attached.
    pub(super) async fn detach_volume(
        &self,
        inst: &Instance,
        volume_id: &str,
    ) -> Result<(), DriverFault> {
        let Some(host) = inst.host.as_deref() else {
            return Ok(());
        };
        if !self.running(host, &inst.uuid) {
            return Ok(());
        }
        let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        let dev = match device_of(&mut q, volume_id).await {
            Some(d) => d,
            None => device_id(volume_id),
        };
        if !has_device(&mut q, &dev).await? {
            // Gone already (an earlier detach finished after its caller
            // gave up): only the drive may be left.
            let _ = q
                .execute("blockdev-del", json!({"node-name": node_name(volume_id)}))
                .await;
            return Ok(());
        }
        q.execute("device_del", json!({"id": dev}))
            .await
            .map_err(|e| fault(format!("device_del of volume {volume_id}: {e}")))?;
        let until = tokio::time::Instant::now() + DETACH_TIMEOUT;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(DriverFault::new(
                    format!("Device detach failed for {volume_id}: the guest did not release it"),
                    format!(
                        "device_del {dev}: no DEVICE_DELETED within {}s",
                        DETACH_TIMEOUT.as_secs()
                    ),
                ));
            }
            match q.wait_event("DEVICE_DELETED", left).await {
                Ok(ev) if ev["data"]["device"].as_str() == Some(dev.as_str()) => break,
                Ok(_) => continue,
                // The wait timed out (checked above) or QMP went away.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        // A drive made by `blockdev-add` stays until deleted; one given at
        // launch (`-drive`) went with its device.
        let _ = q
            .execute("blockdev-del", json!({"node-name": node_name(volume_id)}))
            .await;
        Ok(())
    }
}

/// How long a swap's copy may take before it is given up.
const SWAP_TIMEOUT: Duration = Duration::from_secs(600);

impl QemuDriver {
    /// Moves the guest's disk `device` from volume `old` (file `old_path`)
    /// to volume `new` (file `new_path`), the bytes copied first.
    pub(super) async fn swap_volume(
        &self,
        inst: &Instance,
        (old, new): (&str, &str),
        (old_path, new_path): (&Path, &Path),
    ) -> Result<(), DriverFault> {
        if !new_path.exists() {
            return Err(fault(format!(
                "volume file {} is missing",
                new_path.display()
            )));
        }
        let running = inst.host.as_deref().filter(|h| self.running(h, &inst.uuid));
        let Some(host) = running else {
            return copy_file(old_path, new_path).await;
        };
        let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        let source = source_of(&mut q, old).await?;
        let target = node_name(new);
        q.execute(
            "blockdev-add",
            json!({"driver": "raw", "node-name": target,
                   "file": {"driver": "file", "filename": new_path.to_string_lossy()}}),
        )
        .await
        .map_err(|e| fault(format!("blockdev-add of volume {new}: {e}")))?;
        let mirrored = mirror(&mut q, &source, &target).await;
        if let Err(e) = mirrored {
            let _ = q
                .execute("blockdev-del", json!({"node-name": target}))
                .await;
            return Err(fault(format!("copying volume {old} to {new}: {e}")));
        }
        // A drive plugged in later is a node of its own, left behind by the
        // pivot; one given at launch went with it.
        let _ = q
            .execute("blockdev-del", json!({"node-name": node_name(old)}))
            .await;
        Ok(())
    }
}

/// The node the guest's disk of volume `volume` reads now: the volume's
/// own node, or (after a swap) whichever node its device was moved to.
async fn source_of(q: &mut Qmp, volume: &str) -> Result<String, DriverFault> {
    let node = node_name(volume);
    let blocks = q
        .execute("query-block", json!({}))
        .await
        .map_err(|e| fault(format!("query-block: {e}")))?;
    let found = blocks.as_array().into_iter().flatten().find(|b| {
        b["device"].as_str() == Some(node.as_str())
            || b["inserted"]["node-name"].as_str() == Some(node.as_str())
    });
    match found {
        Some(b) => Ok(b["inserted"]["node-name"]
            .as_str()
            .unwrap_or(node.as_str())
            .to_string()),
        None => Err(fault(format!(
            "volume {volume} is not plugged into the guest"
        ))),
    }
}

/// The id of the device that reads volume `volume`: after a swap that is
/// the device of the volume swapped out, not the one its id names.
async fn device_of(q: &mut Qmp, volume: &str) -> Option<String> {
    let node = node_name(volume);
    let blocks = q.execute("query-block", json!({})).await.ok()?;
    let qdev = blocks.as_array()?.iter().find_map(|b| {
        let ours = b["device"].as_str() == Some(node.as_str())
            || b["inserted"]["node-name"].as_str() == Some(node.as_str());
        ours.then(|| b["qdev"].as_str().map(str::to_string))?
    })?;
    // `qdev` is the device's id, or the QOM path of its backend
    // (`/machine/peripheral/<id>/virtio-backend`).
    match qdev.strip_prefix("/machine/peripheral/") {
        Some(rest) => rest.split('/').next().map(str::to_string),
        None => Some(qdev),
    }
}

/// Mirrors node `source` into node `target` and pivots onto it.
async fn mirror(q: &mut Qmp, source: &str, target: &str) -> Result<(), String> {
    let job = format!("swap-{target}");
    q.execute(
        "blockdev-mirror",
        json!({"job-id": job, "device": source, "target": target, "sync": "full"}),
    )
    .await?;
    let until = tokio::time::Instant::now() + SWAP_TIMEOUT;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            let _ = q.execute("block-job-cancel", json!({"device": job})).await;
            return Err(format!("not ready within {}s", SWAP_TIMEOUT.as_secs()));
        }
        let ev = q.wait_event("BLOCK_JOB_READY", left).await;
        match ev {
            Ok(ev) if ev["data"]["device"].as_str() == Some(job.as_str()) => break,
            Ok(_) => continue,
            Err(e) => {
                // The job may have ended in error instead.
                if let Some(err) = job_error(q, &job) {
                    return Err(err);
                }
                if !e.contains("timed out") {
                    return Err(e);
                }
            }
        }
    }
    q.execute("block-job-complete", json!({"device": job}))
        .await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err("the copy did not complete".into());
        }
        let ev = q.wait_event("BLOCK_JOB_COMPLETED", left).await?;
        if ev["data"]["device"].as_str() != Some(job.as_str()) {
            continue;
        }
        return match ev["data"]["error"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        };
    }
}

/// The error of block job `job` if it ended with one (an event buffered).
fn job_error(q: &mut Qmp, job: &str) -> Option<String> {
    q.take_events()
        .into_iter()
        .filter(|e| e["event"].as_str() == Some("BLOCK_JOB_COMPLETED"))
        .filter(|e| e["data"]["device"].as_str() == Some(job))
        .map(|e| {
            e["data"]["error"]
                .as_str()
                .unwrap_or("the copy ended before it was ready")
                .to_string()
        })
        .next()
}

/// Copies file `from` into file `to`, whose size stays as it is.
async fn copy_file(from: &Path, to: &Path) -> Result<(), DriverFault> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::{Read, Write};
        let mut src = std::fs::File::open(&from)?;
        let mut dst = std::fs::OpenOptions::new().write(true).open(&to)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n])?;
        }
        dst.sync_all()
    })
    .await;
    match copied {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(fault(format!("copying the volume's bytes: {e}"))),
        Err(e) => Err(fault(format!("copying the volume's bytes: {e}"))),
    }
}

/// Whether the guest has a device with id `dev` (QOM path
/// `/machine/peripheral/<id>`).
pub(super) async fn has_device(q: &mut Qmp, dev: &str) -> Result<bool, DriverFault> {
    let list = q
        .execute("qom-list", json!({"path": "/machine/peripheral"}))
        .await
        .map_err(|e| fault(format!("qom-list: {e}")))?;
    Ok(list
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p["name"].as_str() == Some(dev))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_guests_swap_copies_the_bytes_and_keeps_the_new_size() {
        let dir = std::env::temp_dir().join(format!("rova-swap-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (old, new) = (dir.join("old"), dir.join("new"));
        std::fs::write(&old, b"MARKER-and-more").expect("old");
        std::fs::write(&new, vec![7u8; 64]).expect("new");
        copy_file(&old, &new).await.expect("copied");
        let got = std::fs::read(&new).expect("read");
        assert_eq!(got.len(), 64, "the new volume keeps its size");
        assert!(got.starts_with(b"MARKER-and-more"));
        assert_eq!(got[15..], vec![7u8; 49][..]);
        assert!(copy_file(&dir.join("gone"), &new).await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn data_volumes_have_fixed_slots_by_device_letter() {
        assert_eq!(pci_slot("/dev/vdb"), Some(0x0b));
        assert_eq!(pci_slot("/dev/vdv"), Some(0x1f));
        assert_eq!(pci_slot("/dev/vda"), None, "the root disk");
        assert_eq!(pci_slot("/dev/vdw"), None, "past the last slot");
        assert_eq!(pci_slot("/dev/sdb"), None);
        assert_eq!(pci_slot("/dev/vdbb"), None);
        assert_eq!(serial("0123456789abcdef0123456789"), "0123456789abcdef0123");
        let id = "1a071387-8160-4ffa-a820-b63a19907a9c";
        assert_eq!(node_name(id), "v1a07138781604ffaa820b63a19907a");
        assert!(node_name(id).len() <= 31);
        assert_eq!(device_id(id), "vv1a07138781604ffaa820b63a19907a");
    }
}
