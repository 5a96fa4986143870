//! The project's own test guest in the image service: in QEMU mode the
//! bootstrap registers `rova-guest-kernel` (aki), `rova-guest-ramdisk`
//! (ari) and `rova-guest` (a blank qcow2 root disk whose `kernel_id` and
//! `ramdisk_id` properties point at the other two, as Nova's AMI-style
//! images do) when the assets built by `guest/build.sh` are present, and
//! says how to build them when they are not. It is handed the image
//! service and the configuration it needs by the bootstrap.

use crate::config::QemuConfig;
use crate::image::{Image, Images};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const GUEST_IMAGE: &str = "rova-guest";
pub const GUEST_KERNEL: &str = "rova-guest-kernel";
pub const GUEST_RAMDISK: &str = "rova-guest-ramdisk";

/// Size of the guest image's root disk.
const ROOT_GB: u64 = 1;

/// Where the guest assets are: configured paths, else the build cache.
pub fn asset_paths(q: &QemuConfig) -> (PathBuf, PathBuf) {
    let cache = std::env::var_os("ROVA_GUEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/rova/guest")))
        .unwrap_or_else(|| PathBuf::from(".cache/rova/guest"));
    (
        q.guest_kernel
            .clone()
            .unwrap_or_else(|| cache.join("vmlinuz")),
        q.guest_initrd
            .clone()
            .unwrap_or_else(|| cache.join("initramfs.cpio.gz")),
    )
}

fn record(
    name: &str,
    owner: &str,
    disk_format: &str,
    container_format: &str,
    properties: BTreeMap<String, Value>,
    min_disk: u64,
) -> Image {
    Image {
        name: Some(name.to_string()),
        container_format: Some(container_format.into()),
        disk_format: Some(disk_format.into()),
        min_disk,
        properties,
        ..Image::queued(owner, "public", chrono::Utc::now())
    }
}

/// Registers the guest images unless they exist. Returns a line for the
/// operator (what was registered, or how to build the assets). `data_dir`
/// holds a scratch file while the root disk is made.
pub async fn register(
    images: &Images,
    qemu: &QemuConfig,
    data_dir: &Path,
    owner: &str,
) -> Result<String, String> {
    let exists = |name: &str| {
        !images
            .filter(|i| i.name.as_deref() == Some(name) && i.status == "active")
            .is_empty()
    };
    if exists(GUEST_IMAGE) {
        return Ok(format!("image {GUEST_IMAGE} is registered"));
    }
    let (kernel, initrd) = asset_paths(qemu);
    if !kernel.is_file() || !initrd.is_file() {
        return Ok(format!(
            "no guest assets at {} / {}: build them with `bash guest/build.sh` \
             (or set ROVA_GUEST_KERNEL and ROVA_GUEST_INITRD), then restart to register image {GUEST_IMAGE}",
            kernel.display(),
            initrd.display()
        ));
    }
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let k = images
        .create(
            record(GUEST_KERNEL, owner, "aki", "aki", BTreeMap::new(), 0),
            Some(&read(&kernel)?),
        )
        .await
        .map_err(|e| e.message)?;
    let r = images
        .create(
            record(GUEST_RAMDISK, owner, "ari", "ari", BTreeMap::new(), 0),
            Some(&read(&initrd)?),
        )
        .await
        .map_err(|e| e.message)?;
    let tmp = data_dir.join("guest-root.qcow2");
    let _ = std::fs::remove_file(&tmp);
    super::disk::create_blank(&tmp, "qcow2", ROOT_GB * 1024 * 1024 * 1024).await?;
    let bytes = read(&tmp)?;
    let _ = std::fs::remove_file(&tmp);
    let mut props = BTreeMap::new();
    props.insert("kernel_id".to_string(), json!(k.id));
    props.insert("ramdisk_id".to_string(), json!(r.id));
    props.insert(
        "os_command_line".to_string(),
        json!("console=ttyS0 panic=-1 quiet"),
    );
    props.insert("os_distro".to_string(), json!("rova-guest"));
    props.insert("hw_rng_model".to_string(), json!("virtio"));
    let mut root = record(GUEST_IMAGE, owner, "qcow2", "bare", props, ROOT_GB);
    images
        .write_bytes(&mut root, &bytes)
        .map_err(|e| e.message)?;
    root.virtual_size = Some(ROOT_GB * 1024 * 1024 * 1024);
    let id = root.id.clone();
    images.put(root).await.map_err(|e| e.message)?;
    Ok(format!(
        "registered image {GUEST_IMAGE} ({id}) from {} and {}",
        kernel.display(),
        initrd.display()
    ))
}
