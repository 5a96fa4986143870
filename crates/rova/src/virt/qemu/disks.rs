//! The guest's disks: images resolved (through the [`GuestEnv`]) to files
//! in this machine's image cache, the root disk as an overlay over them,
//! the flavor's ephemeral and swap disks, the config drive, the kernel and
//! initramfs of AMI-style images, and exporting the root disk into an
//! image (snapshot, backup, shelve).

use super::{fault, QemuDriver};
use crate::compute::driver::DriverFault;
use crate::virt::env::GuestEnv;
use crate::virt::qmp::Qmp;
use crate::virt::vmspec::VmSpec;
use crate::virt::{configdrive, disk};
use rova_core::model::{FlavorSnapshot, Instance};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl QemuDriver {
    /// (path, format) of an image's bytes in this machine's image cache,
    /// `qemu/_base/<id>` (Nova's `_base`): a hard link (or a copy) made on
    /// first use from an active image, so the backing files and kernels of
    /// existing guests outlive the image's deletion (unshelve deletes the
    /// shelved image, users delete images servers booted from).
    pub(super) async fn image_file(
        &self,
        env: &Arc<dyn GuestEnv>,
        id: &str,
    ) -> Result<(PathBuf, String), DriverFault> {
        let base_dir = self.data_dir.join("qemu").join("_base");
        let cached = base_dir.join(id);
        let img = env.image(id).await?.filter(|i| i.active);
        if !cached.exists() {
            let Some(src) = img.as_ref().map(|i| &i.file) else {
                return Err(fault(format!(
                    "Image {id} could not be found or is not active."
                )));
            };
            std::fs::create_dir_all(&base_dir)
                .map_err(|e| fault(format!("creating {}: {e}", base_dir.display())))?;
            let tmp = base_dir.join(format!(".{id}.{}", uuid::Uuid::new_v4()));
            std::fs::hard_link(src, &tmp)
                .or_else(|_| std::fs::copy(src, &tmp).map(|_| ()))
                .and_then(|_| std::fs::rename(&tmp, &cached))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    fault(format!("caching image {id}: {e}"))
                })?;
        }
        let mut head = [0u8; 8];
        let n = std::fs::File::open(&cached)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| fault(format!("reading image {id}: {e}")))?;
        let detected = disk::detect_format(&head[..n]);
        let format = match img.as_ref().and_then(|i| i.disk_format.as_deref()) {
            Some("raw") | Some("iso") => "raw",
            _ => detected,
        };
        Ok((cached, format.to_string()))
    }

    /// Kernel, initramfs and command line for booting `image_id` (`None`
    /// kernel: the disk boots through the BIOS).
    pub(super) async fn boot_files(
        &self,
        env: &Arc<dyn GuestEnv>,
        image_id: &str,
        inst: &Instance,
    ) -> Result<(Option<PathBuf>, Option<PathBuf>, String), DriverFault> {
        let hints = env.image(image_id).await?.unwrap_or_default();
        let kernel_id = hints
            .kernel_id
            .or_else(|| Some(inst.kernel_id.clone()).filter(|s| !s.is_empty()));
        let ramdisk_id = hints
            .ramdisk_id
            .or_else(|| Some(inst.ramdisk_id.clone()).filter(|s| !s.is_empty()));
        let kernel = match kernel_id {
            Some(k) => Some(self.image_file(env, &k).await?.0),
            None => None,
        };
        let initrd = match ramdisk_id {
            Some(r) => Some(self.image_file(env, &r).await?.0),
            None => None,
        };
        let append = hints
            .command_line
            .unwrap_or_else(|| "console=ttyS0 panic=-1 quiet".into());
        Ok((kernel, initrd, append))
    }

    /// Creates the root disk from `image_id` unless it exists.
    pub(super) async fn ensure_root(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        image_id: &str,
        flavor: &FlavorSnapshot,
    ) -> Result<PathBuf, DriverFault> {
        let dir = self.inst_dir(&inst.uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| fault(format!("creating {}: {e}", dir.display())))?;
        let root = dir.join("disk.qcow2");
        if root.exists() {
            return Ok(root);
        }
        let (base, format) = self.image_file(env, image_id).await?;
        let size = (flavor.disk > 0).then_some(flavor.disk * 1024 * 1024 * 1024);
        disk::create_overlay(&base, &format, &root, size)
            .await
            .map_err(|e| fault(format!("creating the root disk: {e}")))?;
        Ok(root)
    }

    /// Creates the flavor's ephemeral (GB) and swap (MB) disks, blank,
    /// unless they exist.
    pub(super) async fn ensure_flavor_disks(
        &self,
        uuid: &str,
        flavor: &FlavorSnapshot,
    ) -> Result<(), DriverFault> {
        let dir = self.inst_dir(uuid);
        for (file, bytes) in [
            ("disk.eph0", flavor.ephemeral * 1024 * 1024 * 1024),
            ("disk.swap", flavor.swap * 1024 * 1024),
        ] {
            let path = dir.join(file);
            if bytes > 0 && !path.exists() {
                disk::create_blank(&path, "qcow2", bytes)
                    .await
                    .map_err(|e| fault(format!("creating {file}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Builds the config drive when the server asked for one (or it is
    /// forced); `None` otherwise. An operation that hands the guest a
    /// password (spawn, rebuild, rescue) builds it afresh; otherwise an
    /// existing drive is kept, as Nova never rewrites one (the password is
    /// not kept once the guest has it, so it could not be written again).
    pub(super) async fn config_drive(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
    ) -> Result<Option<PathBuf>, DriverFault> {
        if !(inst.config_drive || self.cfg.force_config_drive) {
            return Ok(None);
        }
        let vfat = self.cfg.config_drive_format == "vfat";
        let out = self
            .inst_dir(&inst.uuid)
            .join(if vfat { "config.vfat" } else { "config.iso" });
        if inst.admin_pass.is_none() && out.exists() {
            return Ok(Some(out));
        }
        let facts = env.guest_facts(inst).await?;
        let files = rova_core::metadata::config_drive_files(inst, &facts);
        let format = if vfat {
            configdrive::DriveFormat::Vfat
        } else {
            configdrive::DriveFormat::Iso9660
        };
        configdrive::build(&files, format, &out)
            .await
            .map_err(|e| fault(format!("building the config drive: {e}")))?;
        Ok(Some(out))
    }

    /// Exports the root disk into image `image_id` (a standalone qcow2),
    /// point-in-time while the guest keeps running.
    pub(super) async fn export_root(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        inst: &Instance,
        image_id: &str,
    ) -> Result<(), DriverFault> {
        let dir = self.inst_dir(&inst.uuid);
        let root = dir.join("disk.qcow2");
        let tmp = dir.join(format!("backup-{image_id}.qcow2"));
        let out = dir.join(format!("export-{image_id}.qcow2"));
        let _ = std::fs::remove_file(&tmp);
        let src = if self.running(host, &inst.uuid) {
            let job = format!("backup-{}", &image_id[..8.min(image_id.len())]);
            let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
                .await
                .map_err(|e| fault(format!("QMP: {e}")))?;
            q.execute(
                "drive-backup",
                json!({"device": VmSpec::drive_id(0), "job-id": job, "target": tmp.to_string_lossy(),
                       "sync": "full", "format": "qcow2"}),
            )
            .await
            .map_err(|e| fault(format!("drive-backup: {e}")))?;
            let done = q
                .wait_event("BLOCK_JOB_COMPLETED", Duration::from_secs(600))
                .await
                .map_err(|e| fault(format!("disk export: {e}")))?;
            if let Some(err) = done.pointer("/data/error").and_then(Value::as_str) {
                return Err(fault(format!("disk export failed: {err}")));
            }
            tmp.clone()
        } else {
            root.clone()
        };
        let res = disk::convert(&src, Some("qcow2"), &out, "qcow2").await;
        let _ = std::fs::remove_file(&tmp);
        res.map_err(|e| fault(format!("converting the disk: {e}")))?;
        let virtual_size = disk::info(&out).await.ok().map(|i| i.virtual_size);
        let bytes = std::fs::read(&out).map_err(|e| fault(format!("reading the export: {e}")));
        let _ = std::fs::remove_file(&out);
        env.save_image(image_id, bytes?, virtual_size)
            .await
            .map_err(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QemuConfig;
    use crate::virt::env::ImageInfo;
    use crate::virt::stub_env::{instance, scratch_dir, StubEnv};

    /// Images come from the environment: an active one is cached under
    /// `_base` with its format (declared raw wins over the bytes), its
    /// boot hints pick the kernel and command line, and an inactive or
    /// unknown one is refused.
    #[tokio::test]
    async fn images_resolve_through_the_environment() {
        let dir = scratch_dir("qemu-disks");
        let driver = QemuDriver::new(QemuConfig::default(), &dir);
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write image");
            p
        };
        let env = StubEnv::with(vec![]);
        let info = |file: PathBuf, active: bool, fmt: Option<&str>| ImageInfo {
            file,
            active,
            disk_format: fmt.map(str::to_string),
            ..Default::default()
        };
        let mut root = info(file("root", b"QFI\xfb\0\0\0\x03"), true, Some("qcow2"));
        root.kernel_id = Some("kern".into());
        root.command_line = Some("console=ttyS0 quiet".into());
        {
            let mut images = env.images.lock();
            images.insert("root".into(), root);
            images.insert(
                "kern".into(),
                info(file("kern", b"QFI\xfbkernel"), true, Some("raw")),
            );
            images.insert("queued".into(), info(file("queued", b""), false, None));
        }
        let env: Arc<dyn GuestEnv> = env;

        let (cached, format) = driver
            .image_file(&env, "root")
            .await
            .expect("root resolves");
        assert_eq!(format, "qcow2");
        assert!(cached.ends_with("qemu/_base/root") && cached.is_file());
        let (_, format) = driver
            .image_file(&env, "kern")
            .await
            .expect("kernel resolves");
        assert_eq!(format, "raw", "the declared raw format wins over the bytes");
        for missing in ["queued", "nope"] {
            let err = driver.image_file(&env, missing).await.expect_err("refused");
            assert!(err.message.contains("could not be found or is not active"));
        }

        let inst = instance("00000000-0000-4000-8000-000000000009", "vm", "rova-qemu-1");
        let (kernel, initrd, append) = driver
            .boot_files(&env, "root", &inst)
            .await
            .expect("boot files");
        assert!(kernel.is_some_and(|k| k.ends_with("qemu/_base/kern")));
        assert_eq!(initrd, None);
        assert_eq!(append, "console=ttyS0 quiet");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
