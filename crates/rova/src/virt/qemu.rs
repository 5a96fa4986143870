//! The QEMU driver: one QEMU process per server, supervised by the agent
//! of the host the server is on.
//!
//! Layout (all under the data directory unless noted):
//! - `qemu/instances/<uuid>/` — the instance's disks, shared by every agent
//!   on this machine (Nova's shared `instances_path`): `disk.qcow2` (a qcow2
//!   overlay over the cached image), `config.iso`, `rescue.qcow2`,
//!   `disk.resize-orig` (kept for a resize revert), `suspend.state`;
//! - `qemu/<host>/<uuid>/` — one agent's runtime state for a guest it runs:
//!   `console.log` (the serial log) and `qemu.pid`;
//! - `$TMPDIR/rova-<hash>/<n>/<uuid>/` — the guest's unix sockets (QMP,
//!   serial, VNC, metadata), short enough for `sun_path`.
//!
//! QEMU runs daemonized, so it outlives a restart of the agent; `init`
//! re-attaches to running guests (pidfile + QMP) and restarts their
//! metadata listeners, and a periodic power-state sync turns a guest that
//! powered itself off into `SHUTOFF`, as Nova's `_sync_power_states` does.

use crate::app::App;
use crate::compute::driver::{
    BoxFut, ConsoleKind, Driver, DriverFault, DriverOp, DriverOpKind, LiveStats,
};
use crate::config::QemuConfig;
use crate::virt::accel::{self, AccelChoice};
use crate::virt::metadata_server::{self, MetadataHandle};
use crate::virt::qmp::{self, Qmp};
use crate::virt::vmspec::{Accel, Disk, VmSpec};
use crate::virt::{configdrive, disk};
use parking_lot::Mutex;
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::{PowerState, VmState};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Largest console log returned (Nova's `MAX_CONSOLE_BYTES`).
const MAX_CONSOLE_BYTES: usize = 100 * 1024;

/// The QEMU driver.
pub struct QemuDriver {
    cfg: QemuConfig,
    data_dir: PathBuf,
    run_dir: PathBuf,
    app: OnceLock<Weak<App>>,
    accel: OnceLock<(Accel, String)>,
    /// One lock per guest: operations on a guest never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Metadata listeners by (host, uuid).
    metadata: Mutex<HashMap<(String, String), MetadataHandle>>,
}

/// How a guest is started: its size, disks, config drive and whether it
/// waits for incoming state.
struct Shape<'a> {
    flavor: &'a FlavorSnapshot,
    boot: &'a Boot,
    config_drive: Option<PathBuf>,
    incoming: Option<String>,
}

/// Which disks a guest boots with.
enum Boot {
    /// Its own root disk.
    Normal,
    /// The rescue image first, its own disk attached second.
    Rescue,
}

fn fault(msg: impl Into<String>) -> DriverFault {
    let m = msg.into();
    DriverFault::new(m.clone(), m)
}

impl QemuDriver {
    pub fn new(cfg: QemuConfig, data_dir: &Path) -> Self {
        let abs = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(abs.to_string_lossy().as_bytes()))
        };
        QemuDriver {
            cfg,
            data_dir: abs.clone(),
            run_dir: std::env::temp_dir().join(format!("rova-{}", &digest[..10])),
            app: OnceLock::new(),
            accel: OnceLock::new(),
            locks: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
        }
    }

    /// Hands the driver its application (once, right after it is built).
    pub fn set_app(&self, app: Weak<App>) {
        let _ = self.app.set(app);
    }

    fn app(&self) -> Result<Arc<App>, DriverFault> {
        self.app
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| fault("the compute service is shutting down"))
    }

    /// The accelerator in use and why.
    pub fn accel(&self) -> (Accel, String) {
        self.accel
            .get()
            .cloned()
            .unwrap_or((Accel::Tcg, "not probed yet".into()))
    }

    /// Probes the accelerator, re-attaches to guests left running by a
    /// previous agent, and starts the power-state sync. Called once at
    /// start-up.
    pub async fn init(self: &Arc<Self>) -> Result<String, String> {
        which(&self.cfg.binary).ok_or_else(|| {
            format!(
                "{} not found: install Debian's qemu-system-x86 (see guest/README.md)",
                self.cfg.binary
            )
        })?;
        let choice: AccelChoice = self.cfg.accel.parse()?;
        let (acc, why) = accel::resolve(&self.cfg.binary, choice).await;
        let _ = self.accel.set((acc, why.clone()));
        self.attach_all().await;
        let me = Arc::downgrade(self);
        let every = Duration::from_secs(self.cfg.sync_interval_secs.max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(d) = me.upgrade() else { return };
                d.sync_power_states().await;
            }
        });
        Ok(format!("accelerator {acc}: {why}"))
    }

    // ----- paths -------------------------------------------------------

    fn inst_dir(&self, uuid: &str) -> PathBuf {
        self.data_dir.join("qemu").join("instances").join(uuid)
    }
    fn state_dir(&self, host: &str, uuid: &str) -> PathBuf {
        self.data_dir.join("qemu").join(host).join(uuid)
    }
    fn sock_dir(&self, host: &str, uuid: &str) -> PathBuf {
        let short = host.rsplit('-').next().unwrap_or(host);
        self.run_dir.join(short).join(uuid)
    }
    fn pidfile(&self, host: &str, uuid: &str) -> PathBuf {
        self.state_dir(host, uuid).join("qemu.pid")
    }
    fn qmp_sock(&self, host: &str, uuid: &str) -> PathBuf {
        self.sock_dir(host, uuid).join("qmp.sock")
    }
    fn console_path(&self, host: &str, uuid: &str) -> PathBuf {
        self.state_dir(host, uuid).join("console.log")
    }

    fn lock_for(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .entry(uuid.to_string())
            .or_default()
            .clone()
    }

    // ----- process supervision -----------------------------------------

    /// The QEMU process of this guest on this host, if it is alive.
    fn pid(&self, host: &str, uuid: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pidfile(host, uuid))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // Guards against a recycled pid: the process must be this guest's.
        String::from_utf8_lossy(&cmdline)
            .contains(uuid)
            .then_some(pid)
    }

    fn running(&self, host: &str, uuid: &str) -> bool {
        self.pid(host, uuid).is_some()
    }

    async fn qmp(
        &self,
        host: &str,
        uuid: &str,
        cmd: &str,
        args: Value,
    ) -> Result<Value, DriverFault> {
        qmp::run(&self.qmp_sock(host, uuid), cmd, args)
            .await
            .map_err(|e| fault(format!("QMP {cmd} failed: {e}")))
    }

    async fn wait_exit(&self, host: &str, uuid: &str, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if !self.running(host, uuid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        !self.running(host, uuid)
    }

    /// Stops the process at once (QMP `quit`, then SIGKILL).
    async fn kill(&self, host: &str, uuid: &str) {
        let Some(pid) = self.pid(host, uuid) else {
            return;
        };
        let _ = qmp::run(&self.qmp_sock(host, uuid), "quit", Value::Null).await;
        if !self.wait_exit(host, uuid, Duration::from_secs(5)).await {
            let _ = tokio::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .await;
            self.wait_exit(host, uuid, Duration::from_secs(5)).await;
        }
    }

    /// Asks the guest to power off (ACPI power button) and waits up to the
    /// shutdown timeout; then stops it hard. True when the guest powered
    /// itself off.
    async fn power_off(&self, host: &str, uuid: &str) -> bool {
        if !self.running(host, uuid) {
            return true;
        }
        let timeout = Duration::from_secs(self.cfg.shutdown_timeout_secs);
        let clean = !timeout.is_zero()
            && self
                .qmp(host, uuid, "system_powerdown", Value::Null)
                .await
                .is_ok()
            && self.wait_exit(host, uuid, timeout).await;
        if !clean {
            self.kill(host, uuid).await;
        }
        clean
    }

    fn ensure_metadata(
        &self,
        app: &Arc<App>,
        host: &str,
        uuid: &str,
    ) -> Result<PathBuf, DriverFault> {
        let sock = self.sock_dir(host, uuid).join("md.sock");
        let key = (host.to_string(), uuid.to_string());
        if self.metadata.lock().contains_key(&key) {
            return Ok(sock);
        }
        let h = metadata_server::serve(app, uuid, &sock)
            .map_err(|e| fault(format!("starting the metadata service: {e}")))?;
        self.metadata.lock().insert(key, h);
        Ok(sock)
    }

    fn stop_metadata(&self, host: &str, uuid: &str) {
        if let Some(h) = self
            .metadata
            .lock()
            .remove(&(host.to_string(), uuid.to_string()))
        {
            h.stop();
        }
    }

    // ----- images and disks --------------------------------------------

    /// (path, format) of an active image's bytes.
    /// (path, format) of an image's bytes in this machine's image cache,
    /// `qemu/_base/<id>` (Nova's `_base`): a hard link (or a copy) made on
    /// first use from an active image, so the backing files and kernels of
    /// existing guests outlive the image's deletion (unshelve deletes the
    /// shelved image, users delete images servers booted from).
    fn image_file(&self, app: &App, id: &str) -> Result<(PathBuf, String), DriverFault> {
        let base_dir = self.data_dir.join("qemu").join("_base");
        let cached = base_dir.join(id);
        let img = app.images.table.get(id).filter(|i| i.status == "active");
        if !cached.exists() {
            if img.is_none() {
                return Err(fault(format!(
                    "Image {id} could not be found or is not active."
                )));
            }
            std::fs::create_dir_all(&base_dir)
                .map_err(|e| fault(format!("creating {}: {e}", base_dir.display())))?;
            let src = app.images.file_path(id);
            let tmp = base_dir.join(format!(".{id}.{}", uuid::Uuid::new_v4()));
            std::fs::hard_link(&src, &tmp)
                .or_else(|_| std::fs::copy(&src, &tmp).map(|_| ()))
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
    fn boot_files(
        &self,
        app: &App,
        image_id: &str,
        inst: &Instance,
    ) -> Result<(Option<PathBuf>, Option<PathBuf>, String), DriverFault> {
        let props = app
            .images
            .table
            .get(image_id)
            .map(|i| i.properties.clone())
            .unwrap_or_default();
        let prop = |k: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let kernel_id =
            prop("kernel_id").or_else(|| Some(inst.kernel_id.clone()).filter(|s| !s.is_empty()));
        let ramdisk_id =
            prop("ramdisk_id").or_else(|| Some(inst.ramdisk_id.clone()).filter(|s| !s.is_empty()));
        let kernel = match kernel_id {
            Some(k) => Some(self.image_file(app, &k)?.0),
            None => None,
        };
        let initrd = match ramdisk_id {
            Some(r) => Some(self.image_file(app, &r)?.0),
            None => None,
        };
        let append =
            prop("os_command_line").unwrap_or_else(|| "console=ttyS0 panic=-1 quiet".into());
        Ok((kernel, initrd, append))
    }

    /// Creates the root disk from `image_id` unless it exists.
    async fn ensure_root(
        &self,
        app: &App,
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
        let (base, format) = self.image_file(app, image_id)?;
        let size = (flavor.disk > 0).then_some(flavor.disk * 1024 * 1024 * 1024);
        disk::create_overlay(&base, &format, &root, size)
            .await
            .map_err(|e| fault(format!("creating the root disk: {e}")))?;
        Ok(root)
    }

    /// Creates the flavor's ephemeral (GB) and swap (MB) disks, blank,
    /// unless they exist.
    async fn ensure_flavor_disks(
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
    async fn config_drive(
        &self,
        app: &App,
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
        let facts = metadata_server::facts_for(app, inst);
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

    // ----- launching ---------------------------------------------------

    fn spec(
        &self,
        app: &Arc<App>,
        inst: &Instance,
        host: &str,
        shape: Shape<'_>,
    ) -> Result<VmSpec, DriverFault> {
        let Shape {
            flavor,
            boot,
            config_drive,
            incoming,
        } = shape;
        let uuid = &inst.uuid;
        let dir = self.inst_dir(uuid);
        let socks = self.sock_dir(host, uuid);
        let state = self.state_dir(host, uuid);
        for d in [&socks, &state] {
            std::fs::create_dir_all(d)
                .map_err(|e| fault(format!("creating {}: {e}", d.display())))?;
        }
        // The sockets (metadata, consoles, QMP) are for this service only:
        // the socket directory under the shared temp dir is private.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.run_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fault(format!("securing {}: {e}", self.run_dir.display())))?;
        }
        let md = self.ensure_metadata(app, host, uuid)?;
        let root = Disk {
            path: dir.join("disk.qcow2"),
            format: "qcow2".into(),
            serial: "root".into(),
            readonly: false,
        };
        let (image_for_boot, mut disks) = match boot {
            Boot::Normal => (boot_image(inst), vec![root]),
            Boot::Rescue => {
                let rescue_image = inst
                    .system_metadata
                    .get("rova_rescue_image")
                    .cloned()
                    .unwrap_or_else(|| boot_image(inst));
                let rescue = Disk {
                    path: dir.join("rescue.qcow2"),
                    format: "qcow2".into(),
                    serial: "rescue".into(),
                    readonly: false,
                };
                (rescue_image, vec![rescue, root])
            }
        };
        // Flavor ephemeral and swap disks, when the flavor has them.
        for (file, serial) in [("disk.eph0", "ephemeral0"), ("disk.swap", "swap")] {
            let path = dir.join(file);
            if path.exists() {
                disks.push(Disk {
                    path,
                    format: "qcow2".into(),
                    serial: serial.into(),
                    readonly: false,
                });
            }
        }
        if let Some(cd) = config_drive {
            disks.push(Disk {
                path: cd,
                format: "raw".into(),
                serial: "config-2".into(),
                readonly: true,
            });
        }
        let (kernel, initrd, append) = self.boot_files(app, &image_for_boot, inst)?;
        let (accel, _) = self.accel();
        let cpu_model = self.cfg.cpu_model.clone().or_else(|| match accel {
            Accel::Kvm => Some("host".into()),
            Accel::Tcg => None,
        });
        // Leftover sockets of a previous process would make QEMU fail.
        for s in ["qmp.sock", "serial.sock", "vnc.sock"] {
            let _ = std::fs::remove_file(socks.join(s));
        }
        Ok(VmSpec {
            binary: self.cfg.binary.clone(),
            name: format!("instance-{:08x}", inst.id),
            uuid: uuid.clone(),
            accel,
            cpu_model,
            vcpus: flavor.vcpus.max(1),
            memory_mb: flavor.ram.max(64),
            kernel,
            initrd,
            append,
            disks,
            serial_socket: socks.join("serial.sock"),
            serial_log: state.join("console.log"),
            qmp_socket: socks.join("qmp.sock"),
            vnc_socket: Some(socks.join("vnc.sock")),
            mac: inst.vifs.first().map(|v| v.mac.clone()),
            metadata_connector: Some(format!("socat - UNIX-CONNECT:{}", md.display())),
            pidfile: state.join("qemu.pid"),
            daemonize: true,
            incoming,
        })
    }

    /// Starts the QEMU process described by `spec` and waits for its QMP.
    async fn exec(&self, spec: &VmSpec) -> Result<(), DriverFault> {
        let mut cmd = tokio::process::Command::new(&spec.binary);
        cmd.args(spec.argv())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| fault("QEMU did not start within 60 s"))?
            .map_err(|e| fault(format!("cannot run {}: {e}", spec.binary)))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string();
            return Err(DriverFault {
                code: 500,
                message: format!("QEMU failed to start: {first}"),
                details: err.trim().to_string(),
            });
        }
        let q = Qmp::connect(&spec.qmp_socket, Duration::from_secs(15))
            .await
            .map_err(|e| {
                fault(format!(
                    "QEMU started but its QMP socket did not answer: {e}"
                ))
            })?;
        drop(q);
        Ok(())
    }

    /// Launches the guest on `host` (building the config drive afresh).
    async fn launch(
        &self,
        app: &Arc<App>,
        inst: &Instance,
        host: &str,
        flavor: &FlavorSnapshot,
        boot: Boot,
        incoming: Option<String>,
    ) -> Result<(), DriverFault> {
        if self.running(host, &inst.uuid) {
            return Err(fault(format!(
                "instance {} is already running on {host}",
                inst.uuid
            )));
        }
        self.ensure_flavor_disks(&inst.uuid, flavor).await?;
        let cd = self.config_drive(app, inst).await?;
        let shape = Shape {
            flavor,
            boot: &boot,
            config_drive: cd,
            incoming,
        };
        let spec = self.spec(app, inst, host, shape)?;
        self.exec(&spec).await
    }

    /// `dest` when the operation names one, else the guest's host.
    fn host_of(&self, inst: &Instance, dest: Option<&str>) -> Result<String, DriverFault> {
        dest.map(str::to_string)
            .or_else(|| inst.host.clone())
            .ok_or_else(|| fault(format!("instance {} has no host", inst.uuid)))
    }

    /// Removes every trace of the guest on `host` (process, sockets,
    /// runtime state).
    async fn tear_down_on(&self, host: &str, uuid: &str) {
        self.kill(host, uuid).await;
        self.stop_metadata(host, uuid);
        let socks = self.sock_dir(host, uuid);
        let _ = std::fs::remove_dir_all(&socks);
        // The per-host and per-data-dir socket directories go with their
        // last guest (remove_dir leaves a non-empty directory alone).
        if let Some(parent) = socks.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        let _ = std::fs::remove_dir(&self.run_dir);
    }

    /// Exports the root disk into image `image_id` (a standalone qcow2),
    /// point-in-time while the guest keeps running.
    async fn export_root(
        &self,
        app: &App,
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
        let bytes = std::fs::read(&out).map_err(|e| fault(format!("reading the export: {e}")));
        let _ = std::fs::remove_file(&out);
        let bytes = bytes?;
        let Some(cur) = app.images.table.get(image_id) else {
            return Err(fault(format!(
                "image {image_id} was deleted during the upload"
            )));
        };
        let mut img = (*cur).clone();
        img.disk_format = Some("qcow2".into());
        img.container_format = Some("bare".into());
        app.images
            .write_bytes(&mut img, &bytes)
            .map_err(|e| fault(e.message))?;
        if let Ok(info) = disk::info(&app.images.file_path(image_id)).await {
            img.virtual_size = Some(info.virtual_size);
        }
        img.updated_at = chrono::Utc::now();
        app.images
            .table
            .put(image_id, img)
            .await
            .map_err(|e| fault(e.message))?;
        Ok(())
    }

    // ----- the operations ----------------------------------------------

    async fn do_spawn(&self, inst: &Instance) -> Result<(), DriverFault> {
        let app = self.app()?;
        let host = self.host_of(inst, None)?;
        let image = boot_image(inst);
        if image.is_empty() {
            return Err(fault(
                "The QEMU driver boots image-backed servers only (no volume service).",
            ));
        }
        self.ensure_root(&app, inst, &image, &inst.flavor).await?;
        // A fresh console log per server life.
        self.forget_console(&host, &inst.uuid);
        self.launch(&app, inst, &host, &inst.flavor, Boot::Normal, None)
            .await
    }

    async fn do_perform(&self, op: &DriverOp, inst: &Instance) -> Result<(), DriverFault> {
        let app = self.app()?;
        let uuid = inst.uuid.as_str();
        let host = self.host_of(inst, None);
        match op {
            DriverOp::Pause => {
                let host = host?;
                self.qmp(&host, uuid, "stop", Value::Null).await.map(|_| ())
            }
            DriverOp::Unpause => {
                let host = host?;
                self.qmp(&host, uuid, "cont", Value::Null).await.map(|_| ())
            }
            DriverOp::Suspend => self.suspend(&host?, inst).await,
            DriverOp::Resume => self.resume(&app, &host?, inst).await,
            DriverOp::Stop => {
                self.power_off(&host?, uuid).await;
                Ok(())
            }
            DriverOp::Start => {
                let host = host?;
                if self.running(&host, uuid) {
                    return Ok(());
                }
                self.launch(&app, inst, &host, &inst.flavor, boot_of(inst), None).await
            }
            DriverOp::Reboot { hard } => self.reboot(&app, &host?, inst, *hard).await,
            DriverOp::Rebuild | DriverOp::Evacuate => {
                let host = host?;
                if let Some(old) = &inst.host {
                    self.tear_down_on(old, uuid).await;
                }
                let root = self.inst_dir(uuid).join("disk.qcow2");
                let _ = std::fs::remove_file(&root);
                self.ensure_root(&app, inst, &inst.image_ref, &inst.flavor).await?;
                self.forget_console(&host, uuid);
                let was_stopped = inst
                    .system_metadata
                    .get("rebuild_from_vm_state")
                    .is_some_and(|s| s == "stopped");
                if was_stopped {
                    return Ok(());
                }
                self.launch(&app, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::Resize { flavor, dest } | DriverOp::Migrate { flavor, dest } => {
                self.cold_move(&app, flavor, dest, inst).await
            }
            DriverOp::RevertResize { dest } => {
                self.revert_resize(&app, dest.as_deref(), inst).await
            }
            DriverOp::CreateImage { image_id } | DriverOp::CreateBackup { image_id } => {
                let host = host?;
                self.export_root(&app, &host, inst, image_id).await
            }
            DriverOp::Shelve { image_id } => {
                let host = host?;
                self.power_off(&host, uuid).await;
                if let Some(image) = image_id {
                    self.export_root(&app, &host, inst, image).await?;
                }
                Ok(())
            }
            DriverOp::Unshelve { dest } => {
                let host = dest.clone();
                let root = self.inst_dir(uuid).join("disk.qcow2");
                if !root.exists() {
                    let image = inst
                        .system_metadata
                        .get("shelved_image_id")
                        .cloned()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| inst.image_ref.clone());
                    self.ensure_root(&app, inst, &image, &inst.flavor).await?;
                }
                self.launch(&app, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::Rescue { image_id } => {
                let host = host?;
                self.kill(&host, uuid).await;
                let image = image_id.clone().unwrap_or_else(|| boot_image(inst));
                let (base, format) = self.image_file(&app, &image)?;
                let rescue = self.inst_dir(uuid).join("rescue.qcow2");
                let _ = std::fs::remove_file(&rescue);
                disk::create_overlay(&base, &format, &rescue, None)
                    .await
                    .map_err(|e| fault(format!("creating the rescue disk: {e}")))?;
                let mut view = inst.clone();
                view.system_metadata
                    .insert("rova_rescue_image".into(), image);
                self.launch(&app, &view, &host, &inst.flavor, Boot::Rescue, None).await
            }
            DriverOp::Unrescue => {
                let host = host?;
                self.kill(&host, uuid).await;
                let _ = std::fs::remove_file(self.inst_dir(uuid).join("rescue.qcow2"));
                self.launch(&app, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::TriggerCrashDump => {
                let host = host?;
                if !self.running(&host, uuid) {
                    return Err(fault("the guest is not running"));
                }
                self.qmp(&host, uuid, "inject-nmi", Value::Null).await.map(|_| ())
            }
            // Refused up front (see `supports`); kept for a caller that
            // did not ask.
            DriverOp::ChangePassword => Err(DriverFault {
                code: 501,
                message: "Setting the admin password is not supported by the QEMU driver: it needs a guest agent.".into(),
                details: "set_admin_password is not implemented for this driver".into(),
            }),
            // Offloading is the destroy that precedes it: nothing is left
            // to do on the hypervisor.
            DriverOp::ShelveOffload => Ok(()),
        }
    }

    async fn suspend(&self, host: &str, inst: &Instance) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let state = self.inst_dir(uuid).join("suspend.state");
        let _ = std::fs::remove_file(&state);
        let mut q = Qmp::connect(&self.qmp_sock(host, uuid), Duration::from_secs(5))
            .await
            .map_err(|e| fault(format!("QMP: {e}")))?;
        q.execute("stop", Value::Null)
            .await
            .map_err(|e| fault(format!("stop: {e}")))?;
        let uri = format!("exec:cat > {}", shell_quote(&state.to_string_lossy()));
        q.execute("migrate", json!({"uri": uri}))
            .await
            .map_err(|e| fault(format!("saving the guest state: {e}")))?;
        if let Err(e) = wait_migration(&mut q, "saving the guest state").await {
            let _ = q.execute("cont", Value::Null).await;
            return Err(e);
        }
        let _ = q.execute("quit", Value::Null).await;
        drop(q);
        self.wait_exit(host, uuid, Duration::from_secs(10)).await;
        if self.running(host, uuid) {
            self.kill(host, uuid).await;
        }
        Ok(())
    }

    async fn resume(&self, app: &Arc<App>, host: &str, inst: &Instance) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let state = self.inst_dir(uuid).join("suspend.state");
        if !state.exists() {
            // Nothing saved (e.g. suspended by an older agent): boot.
            return self
                .launch(app, inst, host, &inst.flavor, boot_of(inst), None)
                .await;
        }
        let uri = format!("exec:cat {}", shell_quote(&state.to_string_lossy()));
        self.launch(app, inst, host, &inst.flavor, boot_of(inst), Some(uri))
            .await?;
        let until = Instant::now() + Duration::from_secs(300);
        loop {
            let st = self.qmp(host, uuid, "query-status", Value::Null).await?;
            let status = st.get("status").and_then(Value::as_str).unwrap_or("");
            if status != "inmigrate" {
                break;
            }
            if Instant::now() > until {
                return Err(fault("restoring the guest state timed out"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.qmp(host, uuid, "cont", Value::Null).await?;
        let _ = std::fs::remove_file(&state);
        Ok(())
    }

    async fn reboot(
        &self,
        app: &Arc<App>,
        host: &str,
        inst: &Instance,
        hard: bool,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        if !self.running(host, uuid) {
            return self
                .launch(app, inst, host, &inst.flavor, boot_of(inst), None)
                .await;
        }
        if hard {
            // A paused guest stays stopped after a reset; resume it.
            self.qmp(host, uuid, "system_reset", Value::Null).await?;
            let _ = self.qmp(host, uuid, "cont", Value::Null).await;
            return Ok(());
        }
        // Soft: the guest powers off, then it is started again; a guest
        // that ignores the power button is reset instead.
        let timeout = Duration::from_secs(self.cfg.shutdown_timeout_secs.max(1));
        let _ = self.qmp(host, uuid, "system_powerdown", Value::Null).await;
        if self.wait_exit(host, uuid, timeout).await {
            self.launch(app, inst, host, &inst.flavor, boot_of(inst), None)
                .await
        } else {
            self.qmp(host, uuid, "system_reset", Value::Null)
                .await
                .map(|_| ())
        }
    }

    /// Resize / cold migration: the guest stops, its disk is kept for a
    /// revert, grown to the new flavor, and the guest starts on the
    /// destination with the new vCPUs and RAM.
    async fn cold_move(
        &self,
        app: &Arc<App>,
        flavor: &FlavorSnapshot,
        dest: &str,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let src = self.host_of(inst, None)?;
        let dest = dest.to_string();
        let was_running = self.running(&src, uuid);
        self.power_off(&src, uuid).await;
        self.tear_down_on(&src, uuid).await;
        let dir = self.inst_dir(uuid);
        let root = dir.join("disk.qcow2");
        let orig = dir.join("disk.resize-orig");
        std::fs::copy(&root, &orig)
            .map_err(|e| fault(format!("keeping the disk for a revert: {e}")))?;
        if flavor.disk > inst.flavor.disk {
            disk::resize(&root, flavor.disk * 1024 * 1024 * 1024)
                .await
                .map_err(|e| fault(format!("growing the disk: {e}")))?;
        }
        if src != dest {
            let _ = std::fs::remove_file(self.console_path(&dest, uuid));
            self.leave_host(&src, uuid);
        }
        if !was_running && inst.vm_state == VmState::Stopped {
            return Ok(());
        }
        self.launch(app, inst, &dest, flavor, Boot::Normal, None)
            .await
    }

    async fn revert_resize(
        &self,
        app: &Arc<App>,
        dest: Option<&str>,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let cur = self.host_of(inst, None)?;
        let back = self.host_of(inst, dest)?;
        self.tear_down_on(&cur, uuid).await;
        let dir = self.inst_dir(uuid);
        let orig = dir.join("disk.resize-orig");
        if orig.exists() {
            std::fs::rename(&orig, dir.join("disk.qcow2"))
                .map_err(|e| fault(format!("restoring the disk: {e}")))?;
        }
        let old: FlavorSnapshot = inst
            .system_metadata
            .get("old_flavor")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| inst.flavor.clone());
        let stopped = inst
            .system_metadata
            .get("old_vm_state")
            .is_some_and(|s| s == "stopped");
        if stopped {
            return Ok(());
        }
        self.launch(app, inst, &back, &old, Boot::Normal, None)
            .await
    }

    async fn do_live_migrate(&self, inst: &Instance, dest: &str) -> Result<LiveStats, DriverFault> {
        let app = self.app()?;
        let uuid = &inst.uuid;
        let src = self.host_of(inst, None)?;
        if src == dest {
            return Err(fault("the destination is the source host"));
        }
        if !self.running(&src, uuid) {
            return Err(fault(format!("instance {uuid} is not running on {src}")));
        }
        let port =
            free_port().map_err(|e| fault(format!("no free port for the migration: {e}")))?;
        let uri = format!("tcp:127.0.0.1:{port}");
        let _ = std::fs::remove_file(self.console_path(dest, uuid));
        // The destination: same devices, same disks (shared), waiting.
        let cd = self.existing_config_drive(uuid);
        let shape = Shape {
            flavor: &inst.flavor,
            boot: &boot_of(inst),
            config_drive: cd,
            incoming: Some(uri.clone()),
        };
        let spec = self.spec(&app, inst, dest, shape)?;
        if let Err(e) = self.exec(&spec).await {
            self.tear_down_on(dest, uuid).await;
            return Err(e);
        }
        let started = Instant::now();
        let res = async {
            let mut q = Qmp::connect(&self.qmp_sock(&src, uuid), Duration::from_secs(5))
                .await
                .map_err(|e| fault(format!("QMP: {e}")))?;
            q.execute(
                "migrate-set-parameters",
                json!({"max-bandwidth": 1_073_741_824u64, "downtime-limit": 300}),
            )
            .await
            .map_err(|e| fault(format!("migrate-set-parameters: {e}")))?;
            q.execute("migrate", json!({"uri": uri}))
                .await
                .map_err(|e| fault(format!("migrate: {e}")))?;
            wait_migration(&mut q, "live migration").await
        }
        .await;
        match res {
            Ok(st) => {
                let _ = qmp::run(&self.qmp_sock(&src, uuid), "quit", Value::Null).await;
                self.wait_exit(&src, uuid, Duration::from_secs(5)).await;
                self.tear_down_on(&src, uuid).await;
                self.leave_host(&src, uuid);
                let n = |p: &str| st.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                Ok(LiveStats {
                    total_ms: st
                        .get("total-time")
                        .and_then(Value::as_u64)
                        .unwrap_or(started.elapsed().as_millis() as u64),
                    downtime_ms: st.get("downtime").and_then(Value::as_u64).unwrap_or(0),
                    memory_total: n("/ram/total"),
                    memory_processed: n("/ram/transferred"),
                })
            }
            Err(e) => {
                self.tear_down_on(dest, uuid).await;
                // The source keeps running (it may have stopped in the
                // final phase).
                let _ = qmp::run(&self.qmp_sock(&src, uuid), "cont", Value::Null).await;
                Err(e)
            }
        }
    }

    /// The console history a guest brought from the hosts it left.
    fn history_path(&self, uuid: &str) -> PathBuf {
        self.inst_dir(uuid).join("console.history")
    }

    /// A new life for the guest: no console history.
    fn forget_console(&self, host: &str, uuid: &str) {
        let _ = std::fs::remove_file(self.console_path(host, uuid));
        let _ = std::fs::remove_file(self.history_path(uuid));
    }

    /// The guest moved away from `host` (its process already gone): the
    /// host's console log joins the history, so the console output keeps
    /// every line across moves, then the host's state goes.
    fn leave_host(&self, host: &str, uuid: &str) {
        use std::io::Write;
        if let Ok(bytes) = std::fs::read(self.console_path(host, uuid)) {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.history_path(uuid))
                .and_then(|mut f| f.write_all(&bytes));
            if let Err(e) = appended {
                tracing::warn!(%uuid, "keeping the console history: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(self.state_dir(host, uuid));
    }

    fn existing_config_drive(&self, uuid: &str) -> Option<PathBuf> {
        ["config.iso", "config.vfat"]
            .iter()
            .map(|n| self.inst_dir(uuid).join(n))
            .find(|p| p.exists())
    }

    async fn do_destroy(&self, inst: &Instance) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        for host in self.hosts() {
            self.tear_down_on(&host, uuid).await;
            let _ = std::fs::remove_dir_all(self.state_dir(&host, uuid));
        }
        let _ = std::fs::remove_dir_all(self.inst_dir(uuid));
        Ok(())
    }

    fn hosts(&self) -> Vec<String> {
        (1..=self.cfg.hosts.max(1))
            .map(|i| format!("rova-qemu-{i}"))
            .collect()
    }

    // ----- restart safety and power-state sync ---------------------------

    /// Re-attaches to the guests a previous agent left running: restarts
    /// their metadata listeners; guests whose process is gone are left to
    /// the power-state sync.
    async fn attach_all(&self) {
        let Ok(app) = self.app() else { return };
        for inst in app.compute.instances.all() {
            if inst.deleted {
                continue;
            }
            let Some(host) = inst.host.clone() else {
                continue;
            };
            if self.running(&host, &inst.uuid) {
                if let Err(e) = self.ensure_metadata(&app, &host, &inst.uuid) {
                    tracing::warn!(uuid = %inst.uuid, "re-attach: {}", e.message);
                }
                match qmp::run(
                    &self.qmp_sock(&host, &inst.uuid),
                    "query-status",
                    Value::Null,
                )
                .await
                {
                    Ok(st) => {
                        let status = st
                            .get("status")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_string();
                        tracing::info!(uuid = %inst.uuid, %status, "re-attached to a running guest");
                    }
                    Err(e) => tracing::warn!(uuid = %inst.uuid, "re-attach: QMP: {e}"),
                }
            }
        }
    }

    /// A guest that powered itself off (its QEMU exited) while the server
    /// was ACTIVE becomes SHUTOFF; one found paused by someone else is
    /// PAUSED, as Nova's `_sync_power_states` does.
    async fn sync_power_states(&self) {
        let Ok(app) = self.app() else { return };
        for inst in app.compute.instances.all() {
            if inst.deleted || inst.task_state.is_some() {
                continue;
            }
            let Some(host) = inst.host.clone() else {
                continue;
            };
            if !matches!(
                inst.vm_state,
                VmState::Active | VmState::Rescued | VmState::Resized
            ) {
                continue;
            }
            let lock = self.lock_for(&inst.uuid);
            let Ok(_g) = lock.try_lock() else { continue };
            if self.running(&host, &inst.uuid) {
                continue;
            }
            let now = app.clock.now();
            let uuid = inst.uuid.clone();
            let res = app
                .compute
                .update_instance(&uuid, now, |i| {
                    if i.deleted
                        || i.task_state.is_some()
                        || i.vm_state != inst.vm_state
                        || i.host.as_deref() != Some(host.as_str())
                    {
                        return Err(rova_core::Fault::conflict("changed"));
                    }
                    i.vm_state = VmState::Stopped;
                    i.power_state = PowerState::Shutdown;
                    Ok(())
                })
                .await;
            if res.is_ok() {
                tracing::info!(%uuid, "the guest powered off; the server is now SHUTOFF");
                self.stop_metadata(&host, &uuid);
            }
        }
    }
}

/// The image a server boots from.
fn boot_image(inst: &Instance) -> String {
    inst.image_ref.clone()
}

fn boot_of(inst: &Instance) -> Boot {
    if inst.vm_state == VmState::Rescued {
        Boot::Rescue
    } else {
        Boot::Normal
    }
}

/// Polls an outgoing migration (live, or the save behind suspend) until it
/// completes; cancels it after five minutes.
async fn wait_migration(q: &mut Qmp, what: &str) -> Result<Value, DriverFault> {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let st = q
            .execute("query-migrate", Value::Null)
            .await
            .map_err(|e| fault(format!("query-migrate: {e}")))?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(st),
            Some("failed") | Some("cancelled") => {
                let why = st
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                return Err(fault(format!("{what} failed: {why}")));
            }
            _ if Instant::now() > until => {
                let _ = q.execute("migrate_cancel", Value::Null).await;
                return Err(fault(format!("{what} timed out")));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The program's path when it is on `PATH` (or is a path itself).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.exists().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }
    fn step_delay(&self) -> Duration {
        Duration::ZERO
    }
    fn is_simulated(&self) -> bool {
        false
    }
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let lock = self.lock_for(&inst.uuid);
            let _g = lock.lock().await;
            let res = self.do_spawn(inst).await;
            if res.is_err() {
                if let Some(h) = &inst.host {
                    self.tear_down_on(h, &inst.uuid).await;
                }
            }
            res
        })
    }
    fn supports(&self, op: DriverOpKind) -> bool {
        // Setting the admin password needs a guest agent this driver lacks.
        op != DriverOpKind::ChangePassword
    }
    fn perform<'a>(
        &'a self,
        op: &'a DriverOp,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let lock = self.lock_for(&inst.uuid);
            let _g = lock.lock().await;
            self.do_perform(op, inst).await
        })
    }
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let lock = self.lock_for(&inst.uuid);
            let _g = lock.lock().await;
            let r = self.do_destroy(inst).await;
            drop(_g);
            self.locks.lock().remove(&inst.uuid);
            r
        })
    }
    fn console_log(&self, inst: &Instance) -> Option<Vec<u8>> {
        let host = inst.host.as_deref()?;
        let mut bytes = std::fs::read(self.history_path(&inst.uuid)).unwrap_or_default();
        bytes.extend(std::fs::read(self.console_path(host, &inst.uuid)).unwrap_or_default());
        let start = bytes.len().saturating_sub(MAX_CONSOLE_BYTES);
        Some(bytes[start..].to_vec())
    }
    fn console_socket(&self, inst: &Instance, kind: ConsoleKind) -> Option<PathBuf> {
        let host = inst.host.as_deref()?;
        if !self.running(host, &inst.uuid) {
            return None;
        }
        let name = match kind {
            ConsoleKind::Serial => "serial.sock",
            ConsoleKind::Vnc => "vnc.sock",
        };
        Some(self.sock_dir(host, &inst.uuid).join(name))
    }
    fn live_migrate<'a>(
        &'a self,
        inst: &'a Instance,
        dest: &'a str,
    ) -> BoxFut<'a, Result<LiveStats, DriverFault>> {
        Box::pin(async move {
            let lock = self.lock_for(&inst.uuid);
            let _g = lock.lock().await;
            self.do_live_migrate(inst, dest).await
        })
    }
}
