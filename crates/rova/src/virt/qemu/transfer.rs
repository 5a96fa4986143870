//! Moving a guest between hosts that do not share an instances path:
//! its files read by another host ([`QemuDriver::read_file`]) and copied
//! from the source ([`FileSource`]) for a cold move; for a live one, its
//! disks made empty on the destination and exported there over NBD, and
//! the source's disks mirrored into them (QMP `drive-mirror`) before the
//! memory follows (a block migration, as libvirt does it with QEMU's NBD
//! server); the copies a finished move leaves behind dropped.

use super::volumes::root_volume;
use super::{fault, QemuDriver};
use crate::compute::driver::{BoxFut, DriverFault};
use crate::virt::disk;
use crate::virt::env::GuestEnv;
use crate::virt::qmp::{self, Qmp};
use rova_core::model::Instance;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The guest's disks a cold move copies.
const DISKS: [&str; 3] = ["disk.qcow2", "disk.eph0", "disk.swap"];
/// What does not change while the guest runs: copied before a block
/// migration (the disks are mirrored instead).
const STATIC: [&str; 3] = ["config.iso", "config.vfat", "console.history"];
/// The pseudo-file describing the root disk: its size and backing image.
const ROOT_INFO: &str = "root.json";
/// The prefix of a cached image's name (`base-<image id>`).
const BASE: &str = "base-";
/// Most bytes read from a file at once.
pub const CHUNK: u64 = crate::agent_api::types::FILE_CHUNK;

/// Where a move's destination reads the guest's files: the source's
/// agent.
pub trait FileSource: Send + Sync {
    /// Up to [`CHUNK`] bytes of the guest's file `name` from `offset`
    /// (`None`: the source has no such file).
    fn read<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
    ) -> BoxFut<'a, Result<Option<Vec<u8>>, String>>;
}

/// The root disk as the destination of a block migration must make it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RootInfo {
    virtual_size: u64,
    /// The cached image it is an overlay of.
    backing: Option<String>,
}

fn valid_image_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl QemuDriver {
    /// Up to [`CHUNK`] bytes of guest `uuid`'s file `name` from `offset`
    /// (`None`: no such file here, or a name that is not a guest's file).
    pub async fn read_file(
        &self,
        uuid: &str,
        name: &str,
        offset: u64,
    ) -> Result<Option<Vec<u8>>, String> {
        let path = if let Some(id) = name.strip_prefix(BASE) {
            if !valid_image_id(id) {
                return Ok(None);
            }
            self.data_dir.join("qemu").join("_base").join(id)
        } else if name == ROOT_INFO {
            let root = self.inst_dir(uuid).join("disk.qcow2");
            if !root.exists() {
                return Ok(None);
            }
            let info = disk::info(&root).await?;
            let backing = info.backing.as_deref().and_then(|b| {
                Path::new(b)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            });
            let doc = RootInfo {
                virtual_size: info.virtual_size,
                backing,
            };
            let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
            return Ok(Some(bytes.get(offset as usize..).unwrap_or(&[]).to_vec()));
        } else if DISKS.contains(&name) || STATIC.contains(&name) {
            self.inst_dir(uuid).join(name)
        } else {
            return Ok(None);
        };
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            use std::io::{Read, Seek};
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            f.seek(std::io::SeekFrom::Start(offset))?;
            let mut out = Vec::new();
            f.take(CHUNK).read_to_end(&mut out)?;
            Ok(Some(out))
        });
        read.await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading {name}: {e}"))
    }

    /// Copies the source's file `name` to `to` (written whole, then
    /// renamed); false when the source has none.
    async fn fetch(src: &dyn FileSource, name: &str, to: &Path) -> Result<bool, DriverFault> {
        use tokio::io::AsyncWriteExt;
        let tmp = to.with_file_name(format!(".{name}.part"));
        let mut out: Option<tokio::fs::File> = None;
        let mut offset = 0u64;
        let res: Result<bool, String> = async {
            loop {
                let Some(chunk) = src.read(name, offset).await? else {
                    return Ok(false);
                };
                let f = match &mut out {
                    Some(f) => f,
                    None => out.insert(
                        tokio::fs::File::create(&tmp)
                            .await
                            .map_err(|e| e.to_string())?,
                    ),
                };
                f.write_all(&chunk).await.map_err(|e| e.to_string())?;
                offset += chunk.len() as u64;
                if (chunk.len() as u64) < CHUNK {
                    f.sync_all().await.map_err(|e| e.to_string())?;
                    tokio::fs::rename(&tmp, to)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(true);
                }
            }
        }
        .await;
        if !matches!(res, Ok(true)) {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res.map_err(|e| fault(format!("copying {name} from the source host: {e}")))
    }

    /// Image `id` in this host's image cache: from the image service, or
    /// (an image deleted meanwhile) the source's cached copy.
    async fn ensure_base(
        &self,
        env: &Arc<dyn GuestEnv>,
        src: &dyn FileSource,
        id: &str,
    ) -> Result<(PathBuf, String), DriverFault> {
        if let Ok(found) = self.image_file(env, id).await {
            return Ok(found);
        }
        let base_dir = self.data_dir.join("qemu").join("_base");
        std::fs::create_dir_all(&base_dir)
            .map_err(|e| fault(format!("creating {}: {e}", base_dir.display())))?;
        let path = base_dir.join(id);
        if !Self::fetch(src, &format!("{BASE}{id}"), &path).await? {
            return Err(fault(format!(
                "Image {id} could not be found, here or on the source host."
            )));
        }
        let format = disk::info(&path)
            .await
            .map(|i| i.format)
            .unwrap_or_else(|_| "raw".into());
        Ok((path, format))
    }

    /// The kernel and ramdisk a guest boots with, cached here.
    async fn ensure_boot_images(
        &self,
        env: &Arc<dyn GuestEnv>,
        src: &dyn FileSource,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let hints = env.image(&inst.image_ref).await?.unwrap_or_default();
        let mut ids: Vec<String> = [
            hints.kernel_id,
            hints.ramdisk_id,
            Some(inst.kernel_id.clone()),
            Some(inst.ramdisk_id.clone()),
        ]
        .into_iter()
        .flatten()
        .filter(|s| valid_image_id(s))
        .collect();
        ids.dedup();
        for id in ids {
            self.ensure_base(env, src, &id).await?;
        }
        Ok(())
    }

    /// A cold move's destination: the guest's disks, config drive and
    /// console history copied from the source, the root disk's backing
    /// image (and kernel) cached here and the root disk pointed at it.
    pub(super) async fn copy_in(
        &self,
        env: &Arc<dyn GuestEnv>,
        src: &dyn FileSource,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let root_info = Self::read_root_info(src).await?;
        let dir = self.copy_files(src, &inst.uuid, &[&DISKS, &STATIC]).await?;
        let root = dir.join("disk.qcow2");
        let backing = root_info.and_then(|i| i.backing);
        if let Some(id) = backing.filter(|_| root.exists()) {
            let (base, format) = self.ensure_base(env, src, &id).await?;
            disk::rebase_unsafe(&root, &base, &format)
                .await
                .map_err(|e| fault(format!("pointing the root disk at its image: {e}")))?;
        }
        self.ensure_boot_images(env, src, inst).await
    }

    /// The source's files of each group of `names`, copied into the
    /// guest's directory here (made if need be); one the source lacks is
    /// removed here (left from an earlier stay); the directory.
    async fn copy_files(
        &self,
        src: &dyn FileSource,
        uuid: &str,
        names: &[&[&str]],
    ) -> Result<PathBuf, DriverFault> {
        let dir = self.inst_dir(uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| fault(format!("creating {}: {e}", dir.display())))?;
        for name in names.iter().flat_map(|g| g.iter()) {
            let to = dir.join(name);
            if !Self::fetch(src, name, &to).await? {
                let _ = std::fs::remove_file(&to);
            }
        }
        Ok(dir)
    }

    async fn read_root_info(src: &dyn FileSource) -> Result<Option<RootInfo>, DriverFault> {
        match src.read(ROOT_INFO, 0).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fault(format!("the source's root disk: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => Err(fault(format!("the source's root disk: {e}"))),
        }
    }

    /// A block migration's destination before its QEMU starts: the
    /// config drive and console history copied, the root disk made as an
    /// empty overlay of the same image and size as the source's (the
    /// mirror fills in what differs from the image), the flavor's disks
    /// made blank.
    pub(super) async fn prepare_block(
        &self,
        env: &Arc<dyn GuestEnv>,
        src: &dyn FileSource,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let dir = self.copy_files(src, &inst.uuid, &[&STATIC]).await?;
        if root_volume(inst).is_none() {
            let info = Self::read_root_info(src).await?.ok_or_else(|| {
                fault(format!(
                    "instance {} has no root disk on the source host",
                    inst.uuid
                ))
            })?;
            let root = dir.join("disk.qcow2");
            let _ = std::fs::remove_file(&root);
            let made = match &info.backing {
                Some(id) => {
                    let (base, format) = self.ensure_base(env, src, id).await?;
                    disk::create_overlay(&base, &format, &root, Some(info.virtual_size)).await
                }
                None => disk::create_blank(&root, "qcow2", info.virtual_size).await,
            };
            made.map_err(|e| fault(format!("creating the root disk: {e}")))?;
        }
        for name in ["disk.eph0", "disk.swap"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        self.ensure_flavor_disks(&inst.uuid, &inst.flavor).await?;
        self.ensure_boot_images(env, src, inst).await
    }

    /// The guest's writable disks of its own (QMP drive ids): what a
    /// block migration mirrors (volumes are shared storage).
    async fn own_drives(&self, q: &mut Qmp, uuid: &str) -> Result<Vec<(String, String)>, String> {
        let dir = self.inst_dir(uuid);
        let blocks = q.execute("query-block", Value::Null).await?;
        Ok(blocks
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|b| {
                let ins = b.get("inserted")?;
                let file = ins.get("file")?.as_str()?;
                let ro = ins.get("ro").and_then(Value::as_bool).unwrap_or(true);
                if ro || !Path::new(file).starts_with(&dir) {
                    return None;
                }
                Some((
                    b.get("device")?.as_str()?.to_string(),
                    ins.get("node-name")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// The destination's disks exported over NBD on a free port of `ip`,
    /// writable, each under its drive id; the server's `IP:PORT`.
    pub(super) async fn export_disks(
        &self,
        host: &str,
        uuid: &str,
        ip: std::net::IpAddr,
    ) -> Result<String, DriverFault> {
        let mut q = Qmp::connect(&self.qmp_sock(host, uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        let port = super::migration::free_port(ip)
            .map_err(|e| fault(format!("no free port on {ip}: {e}")))?;
        q.execute(
            "nbd-server-start",
            json!({"addr": {"type": "inet", "data": {"host": ip.to_string(), "port": port.to_string()}}}),
        )
        .await
        .map_err(|e| fault(format!("nbd-server-start: {e}")))?;
        let drives = self
            .own_drives(&mut q, uuid)
            .await
            .map_err(|e| fault(format!("query-block: {e}")))?;
        for (dev, node) in drives {
            q.execute(
                "block-export-add",
                json!({"type": "nbd", "id": format!("mig-{dev}"), "node-name": node,
                       "writable": true, "name": dev}),
            )
            .await
            .map_err(|e| fault(format!("block-export-add {dev}: {e}")))?;
        }
        Ok(match ip {
            std::net::IpAddr::V4(a) => format!("{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        })
    }

    /// The NBD exports of a finished block migration go (before the
    /// guest runs here).
    pub(super) async fn unexport_disks(&self, host: &str, uuid: &str) {
        let sock = self.qmp_sock(host, uuid);
        if let Ok(exports) = qmp::run(&sock, "query-block-exports", Value::Null).await {
            for e in exports.as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(id) = e.get("id").and_then(Value::as_str) {
                    let _ = qmp::run(&sock, "block-export-del", json!({ "id": id })).await;
                }
            }
        }
        let _ = qmp::run(&sock, "nbd-server-stop", Value::Null).await;
    }

    /// The source's half of a block migration before the memory goes:
    /// each of its own disks mirrored into the export of the same name at
    /// `nbd`, until every mirror is in step (then guest writes go to both
    /// sides); the mirror jobs' ids and the bytes they copied.
    pub(super) async fn mirror_disks(
        &self,
        host: &str,
        uuid: &str,
        nbd: &str,
    ) -> Result<(Vec<String>, i64), DriverFault> {
        let mut q = Qmp::connect(&self.qmp_sock(host, uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        let drives = self
            .own_drives(&mut q, uuid)
            .await
            .map_err(|e| fault(format!("query-block: {e}")))?;
        let mut jobs = Vec::new();
        for (dev, _) in &drives {
            let job = format!("mirror-{dev}");
            let started = q
                .execute(
                    "drive-mirror",
                    json!({"job-id": job, "device": dev, "target": format!("nbd://{nbd}/{dev}"),
                           "format": "raw", "sync": "top", "mode": "existing"}),
                )
                .await;
            if let Err(e) = started {
                Self::cancel_mirrors(&mut q, &jobs).await;
                return Err(fault(format!("drive-mirror {dev}: {e}")));
            }
            jobs.push(job);
        }
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            let list = q
                .execute("query-block-jobs", Value::Null)
                .await
                .map_err(|e| fault(format!("query-block-jobs: {e}")))?;
            let list = list.as_array().map(Vec::as_slice).unwrap_or_default();
            let ready = |job: &String| {
                list.iter().any(|j| {
                    j.get("device").and_then(Value::as_str) == Some(job)
                        && j.get("ready").and_then(Value::as_bool) == Some(true)
                })
            };
            let gone = jobs.iter().find(|job| {
                !list
                    .iter()
                    .any(|j| j.get("device").and_then(Value::as_str) == Some(job.as_str()))
            });
            if let Some(job) = gone {
                Self::cancel_mirrors(&mut q, &jobs).await;
                return Err(fault(format!("the disk mirror {job} stopped")));
            }
            if jobs.iter().all(ready) {
                let copied = list
                    .iter()
                    .filter_map(|j| j.get("offset").and_then(Value::as_i64))
                    .sum();
                return Ok((jobs, copied));
            }
            if Instant::now() > until {
                Self::cancel_mirrors(&mut q, &jobs).await;
                return Err(fault("the disk mirrors did not catch up within 10 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Mirrors given up (a failed migration): the destination's copy is
    /// abandoned.
    pub(super) async fn cancel_mirrors(q: &mut Qmp, jobs: &[String]) {
        for job in jobs {
            let _ = q
                .execute("block-job-cancel", json!({"device": job, "force": true}))
                .await;
        }
    }

    /// After the memory went: every mirror completes (a ready mirror's
    /// cancel copies the last writes, then lets go of the target).
    /// (`q`: the source's QMP session, which carried the migration.)
    pub(super) async fn finish_mirrors(q: &mut Qmp, jobs: &[String]) -> Result<(), DriverFault> {
        if jobs.is_empty() {
            return Ok(());
        }
        for job in jobs {
            q.execute("block-job-cancel", json!({ "device": job }))
                .await
                .map_err(|e| fault(format!("block-job-cancel {job}: {e}")))?;
        }
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let list = q
                .execute("query-block-jobs", Value::Null)
                .await
                .map_err(|e| fault(format!("query-block-jobs: {e}")))?;
            let left = list
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|j| {
                    j.get("device")
                        .and_then(Value::as_str)
                        .is_some_and(|d| jobs.iter().any(|x| x == d))
                })
                .count();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(fault("the disk mirrors did not finish within 2 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The console history the source kept, copied over this host's.
    pub(super) async fn fetch_history(
        &self,
        src: &dyn FileSource,
        uuid: &str,
    ) -> Result<(), DriverFault> {
        let name = "console.history";
        Self::fetch(src, name, &self.inst_dir(uuid).join(name))
            .await
            .map(drop)
    }

    /// The guest moved away for good: the disks a move left on this host
    /// go — all of them when its instances path is not shared and the
    /// guest is neither placed nor running here, else only the copy kept
    /// for a revert.
    pub async fn drop_moved_disks(&self, inst: &Instance) {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        let here = inst.host.as_deref().is_some_and(|h| self.is_local(h))
            || self.hosts.iter().any(|h| self.running(h, &inst.uuid));
        let dir = self.inst_dir(&inst.uuid);
        if !self.shared_instances && !here {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let _ = std::fs::remove_file(dir.join("disk.resize-orig"));
        }
    }

    /// Whether a move to or from another agent copies the guest's files
    /// (this host's instances path is its own).
    pub(super) fn copies_disks(&self) -> bool {
        !self.shared_instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QemuConfig;
    use crate::virt::stub_env::{instance, scratch_dir};

    /// Another driver's files, read as the agent listener reads them.
    struct Local(Arc<QemuDriver>, String);

    impl FileSource for Local {
        fn read<'a>(
            &'a self,
            name: &'a str,
            offset: u64,
        ) -> BoxFut<'a, Result<Option<Vec<u8>>, String>> {
            Box::pin(self.0.read_file(&self.1, name, offset))
        }
    }

    /// Only a guest's own files (and cached images by a plain id) are
    /// served; a file larger than a chunk arrives whole; a file the
    /// source lacks leaves nothing behind; the disks a finished move
    /// left go only where the guest no longer is.
    #[tokio::test]
    async fn a_guests_files_are_served_by_name_and_copied_whole() {
        let dir = scratch_dir("qemu-transfer");
        let agent = |h: &str| {
            Arc::new(QemuDriver::for_agent(
                QemuConfig::default(),
                &dir.join(h),
                h,
                None,
            ))
        };
        let (a, b) = (agent("agent-1"), agent("agent-2"));
        let uuid = "00000000-0000-4000-8000-0000000000a1";
        let src_dir = a.inst_dir(uuid);
        std::fs::create_dir_all(&src_dir).expect("instance dir");
        let big: Vec<u8> = (0..CHUNK + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(src_dir.join("disk.eph0"), &big).expect("disk");
        std::fs::write(src_dir.join("disk.resize-orig"), b"orig").expect("orig");
        std::fs::write(dir.join("agent-1").join("guests.json"), b"[]").expect("guests");
        let base = a.data_dir.join("qemu").join("_base");
        std::fs::create_dir_all(&base).expect("base dir");
        std::fs::write(base.join("img-1"), b"image bytes").expect("image");

        for bad in [
            "../guests.json",
            "disk.eph0/../../guests.json",
            "guests.json",
            "disk.resize-orig",
            "base-",
            "base-../img-1",
            "base-img-1/../../x",
        ] {
            let got = a.read_file(uuid, bad, 0).await.expect("read");
            assert!(got.is_none(), "{bad} is not a guest's file");
        }
        let first = a.read_file(uuid, "disk.eph0", 0).await.expect("read");
        assert_eq!(first.map(|c| c.len() as u64), Some(CHUNK));

        let src = Local(a.clone(), uuid.to_string());
        let dest_dir = b.inst_dir(uuid);
        std::fs::create_dir_all(&dest_dir).expect("dest dir");
        let to = dest_dir.join("disk.eph0");
        assert!(QemuDriver::fetch(&src, "disk.eph0", &to)
            .await
            .expect("copy"));
        assert!(std::fs::read(&to).expect("copied") == big, "copied whole");
        let none = dest_dir.join("disk.swap");
        assert!(!QemuDriver::fetch(&src, "disk.swap", &none)
            .await
            .expect("no file"));
        let left: Vec<_> = std::fs::read_dir(&dest_dir)
            .expect("dest dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("disk.eph0")]);
        let img = b.data_dir.join("image-copy");
        assert!(QemuDriver::fetch(&src, "base-img-1", &img)
            .await
            .expect("image"));
        assert_eq!(std::fs::read(&img).expect("image copy"), b"image bytes");

        // The guest now on agent-2: agent-1 (its own instances path)
        // drops everything; agent-2, where it is placed, only a revert's
        // copy.
        let moved = instance(uuid, "vm", "agent-2");
        std::fs::write(dest_dir.join("disk.resize-orig"), b"orig").expect("orig");
        b.drop_moved_disks(&moved).await;
        assert!(dest_dir.join("disk.eph0").exists());
        assert!(!dest_dir.join("disk.resize-orig").exists());
        a.drop_moved_disks(&moved).await;
        assert!(!src_dir.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
