//! The QEMU driver: one QEMU process per server, supervised by the agent
//! of the host the server is on.
//!
//! Layout (all under the data directory — an agent's state directory
//! under `rova agent` — unless noted):
//! - `qemu/instances/<uuid>/` (`rova agent`: `--instances-path`, default
//!   `instances/`) — the instance's disks, shared by every agent of this
//!   process (Nova's shared `instances_path`): `disk.qcow2` (a qcow2
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
//!
//! Everything the driver needs from the rest of the service (images, the
//! facts a guest is told, instance records, the clock, where to report a
//! guest that stopped) comes through its [`GuestEnv`], handed over once
//! with [`QemuDriver::set_env`].
//!
//! This module owns the driver's state, its paths, the console history and
//! the [`Driver`] trait; the rest is split by concern:
//! - `process` — the QEMU process: pidfile, QMP, power-off, kill, exec,
//!   tear-down and the per-guest metadata listener;
//! - `disks` — images to local files, root/ephemeral/swap disks, config
//!   drives, and exporting the root disk into an image;
//! - `launch` — the VM description (disks, kernel, sockets) and launching;
//! - `ops` — spawn and the server actions (pause … rescue);
//! - `migration` — resize/cold migration, revert, live migration;
//! - `sync` — re-attaching after a restart and the power-state sync;
//! - `transfer` — moves between agents that do not share an instances
//!   path: files copied from the source, block migration over NBD;
//! - `volumes` — volumes at launch and hot-plugged through QMP;
//! - `nics` — NICs hot-plugged through QMP (bridge data path).
//!
//! With `--qemu-network bridge` the guests' NICs are taps on the bridge
//! data path ([`crate::virt::datapath`]), plugged before QEMU starts and
//! unplugged when it is torn down; QEMU then runs in the data path's
//! network namespace.

mod disks;
mod launch;
mod migration;
mod nics;
mod ops;
mod process;
mod sync;
mod transfer;
mod volumes;

pub use transfer::FileSource;

use crate::compute::driver::{
    BoxFut, ConsoleKind, Driver, DriverFault, DriverOp, DriverOpKind, LiveRequest, LiveStats,
};
use crate::config::{GuestNetwork, QemuConfig};
use crate::virt::accel::{self, AccelChoice};
use crate::virt::datapath::Datapath;
use crate::virt::env::{GuestEnv, Unavailable};
use crate::virt::metadata_server::MetadataHandle;
use crate::virt::vmspec::Accel;
use parking_lot::Mutex;
use rova_core::model::Instance;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Largest console log returned (Nova's `MAX_CONSOLE_BYTES`).
const MAX_CONSOLE_BYTES: usize = 100 * 1024;

/// The QEMU driver.
pub struct QemuDriver {
    cfg: QemuConfig,
    data_dir: PathBuf,
    run_dir: PathBuf,
    env: OnceLock<Arc<dyn GuestEnv>>,
    accel: OnceLock<(Accel, String)>,
    /// One lock per guest: operations on a guest never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Metadata listeners by (host, uuid).
    metadata: Mutex<HashMap<(String, String), MetadataHandle>>,
    /// The bridge data path, with `--qemu-network bridge`.
    datapath: Option<Datapath>,
    /// The hosts whose guests this process runs: `rova-qemu-1` … N under
    /// `rova serve`, the agent's own host under `rova agent`.
    hosts: Vec<String>,
    /// Where instance directories live (Nova's `instances_path`).
    instances: PathBuf,
    /// Whether `instances` is storage other hosts share: a guest
    /// evacuated away from here keeps its disks then.
    shared_instances: bool,
    /// Requests about the live migrations this process is sending, by
    /// guest (taken by the loop that polls the migration).
    live_asks: Mutex<HashMap<String, LiveRequest>>,
}

/// The storage id kept in `dir` (made when missing: written whole to a
/// file of this process, then linked into place, so two processes
/// starting together agree on the first one linked).
fn storage_id_in(dir: &Path) -> std::io::Result<String> {
    let path = dir.join(".rova-storage-id");
    let read = |p: &Path| -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(p) {
            Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".rova-storage-id.{}", std::process::id()));
    std::fs::write(&tmp, uuid::Uuid::new_v4().to_string())?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    read(&path)?.ok_or_else(|| std::io::Error::other("empty storage id file"))
}

fn fault(msg: impl Into<String>) -> DriverFault {
    let m = msg.into();
    DriverFault::new(m.clone(), m)
}

impl From<Unavailable> for DriverFault {
    fn from(e: Unavailable) -> Self {
        fault(e.to_string())
    }
}

impl QemuDriver {
    pub fn new(cfg: QemuConfig, data_dir: &Path) -> Self {
        let abs = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(abs.to_string_lossy().as_bytes()))
        };
        let datapath =
            (cfg.network == GuestNetwork::Bridge).then(|| Datapath::new(cfg.netns.clone(), &abs));
        let hosts = (1..=cfg.hosts.max(1))
            .map(|i| format!("rova-qemu-{i}"))
            .collect();
        QemuDriver {
            cfg,
            datapath,
            hosts,
            instances: abs.join("qemu").join("instances"),
            shared_instances: false,
            live_asks: Mutex::new(HashMap::new()),
            data_dir: abs.clone(),
            run_dir: std::env::temp_dir().join(format!("rova-{}", &digest[..10])),
            env: OnceLock::new(),
            accel: OnceLock::new(),
            locks: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
        }
    }

    /// The driver of `rova agent` on `host`: its state under `state_dir`,
    /// instance disks under `instances_path` (shared with other agents:
    /// guests live-migrate on shared storage and an evacuated guest's
    /// disks stay) or, without one, `state_dir/instances`.
    pub fn for_agent(
        cfg: QemuConfig,
        state_dir: &Path,
        host: &str,
        instances_path: Option<PathBuf>,
    ) -> Self {
        let mut d = QemuDriver::new(cfg, state_dir);
        d.hosts = vec![host.to_string()];
        match instances_path {
            Some(p) => {
                let _ = std::fs::create_dir_all(&p);
                d.instances = std::fs::canonicalize(&p).unwrap_or(p);
                d.shared_instances = true;
            }
            None => d.instances = d.data_dir.join("instances"),
        }
        d
    }

    /// The id of the storage holding the instance directories
    /// ([`Driver::instance_storage`]): kept in `.rova-storage-id` there,
    /// written by the first process to need it, so every agent given the
    /// same shared instances path reports the same id.
    pub fn storage_id(&self) -> Option<String> {
        match storage_id_in(&self.instances) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(path = %self.instances.display(), "storage id: {e}");
                None
            }
        }
    }

    /// Whether this process runs `host`'s guests.
    fn is_local(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// The destination's half of a live migration from another agent:
    /// the guest started on `host`, waiting for the stream on `ip`; its
    /// address.
    /// address; with the NBD server its disks wait at for the source's
    /// mirror when they are copied from `from` (a block migration).
    pub async fn prepare_incoming(
        &self,
        inst: &Instance,
        host: &str,
        ip: std::net::IpAddr,
        from: Option<&dyn FileSource>,
    ) -> Result<(String, Option<String>), DriverFault> {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        self.do_prepare_incoming(inst, host, ip, from).await
    }

    /// The source's half of a live migration to another agent, whose
    /// guest waits at `uri` (and its disks at `nbd`: a block migration).
    pub async fn live_migrate_to(
        &self,
        inst: &Instance,
        dest: &str,
        uri: &str,
        nbd: Option<&str>,
    ) -> Result<LiveStats, DriverFault> {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        self.do_live_migrate_to(inst, dest, uri, nbd).await
    }

    /// A live migration prepared here failed: the waiting guest stops
    /// (disks shared with the source stay; copies made here go).
    pub async fn drop_incoming(&self, inst: &Instance, host: &str) {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        self.discard_incoming(host, &inst.uuid).await;
    }

    /// The waiting guest stops and this host's state for it goes, with
    /// the copies of its disks made here (disks shared with the source
    /// stay). The caller holds the guest's lock.
    async fn discard_incoming(&self, host: &str, uuid: &str) {
        self.tear_down_on(host, uuid).await;
        let _ = std::fs::remove_dir_all(self.state_dir(host, uuid));
        if self.copies_disks() {
            let _ = std::fs::remove_dir_all(self.inst_dir(uuid));
        }
    }

    /// A guest another agent moved here is this host's now: after a cold
    /// move (`op`) it starts here; its metadata service (user networking)
    /// answers for it here. `from` is the source's agent, whose files
    /// a move copies when this host's instances path is its own.
    pub async fn adopt(
        &self,
        op: Option<&DriverOp>,
        inst: &Instance,
        host: &str,
        from: Option<&dyn FileSource>,
    ) -> Result<(), DriverFault> {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        if let Some(op) = op {
            self.do_finish_move(op, inst, host, from).await?;
        }
        if !self.running(host, &inst.uuid) {
            return Ok(());
        }
        if op.is_none() {
            self.finish_block(inst, host, from).await;
            // A live migration's guest: resumed if a force-complete
            // (or a block migration) paused it.
            self.resume_migrated(host, inst).await;
        }
        if self.datapath.is_some() {
            return Ok(());
        }
        if let Ok(env) = self.env() {
            if let Err(e) = self.ensure_metadata(env, host, &inst.uuid) {
                tracing::warn!(uuid = %inst.uuid, "adopting a guest: {}", e.message);
            }
        }
        Ok(())
    }

    /// A guest evacuated away from this host while it was down: its
    /// process and this host's state for it go; its disks go too unless
    /// they are on shared storage, where the guest now runs elsewhere
    /// (Nova's `_destroy_evacuated_instances` with `destroy_disks` off).
    pub async fn destroy_evacuated(&self, inst: &Instance, host: &str) {
        let lock = self.lock_for(&inst.uuid);
        let _g = lock.lock().await;
        self.tear_down_on(host, &inst.uuid).await;
        let _ = std::fs::remove_dir_all(self.state_dir(host, &inst.uuid));
        if !self.shared_instances {
            let _ = std::fs::remove_dir_all(self.inst_dir(&inst.uuid));
        }
    }

    /// The console socket of guest `uuid` running on `host`.
    pub fn guest_console(&self, host: &str, uuid: &str, kind: ConsoleKind) -> Option<PathBuf> {
        if !self.is_local(host) || !self.running(host, uuid) {
            return None;
        }
        let name = match kind {
            ConsoleKind::Serial => "serial.sock",
            ConsoleKind::Vnc => "vnc.sock",
        };
        Some(self.sock_dir(host, uuid).join(name))
    }

    /// Hands the driver its environment (once, right after the service
    /// it runs under is built).
    pub fn set_env(&self, env: Arc<dyn GuestEnv>) {
        let _ = self.env.set(env);
    }

    /// The environment; a fault until [`QemuDriver::set_env`] was called.
    fn env(&self) -> Result<&Arc<dyn GuestEnv>, DriverFault> {
        self.env.get().ok_or_else(|| fault(Unavailable.to_string()))
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
        if let Some(dp) = &self.datapath {
            dp.check()?;
        }
        let (acc, why) = accel::resolve(&self.cfg.binary, choice).await;
        let _ = self.accel.set((acc, why.clone()));
        self.attach_all().await;
        if let (Some(dp), Ok(env)) = (&self.datapath, self.env()) {
            dp.resume(env).await;
        }
        if self.datapath.is_some() {
            // Security-group changes reach running guests within a second.
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let Some(d) = me.upgrade() else { return };
                    if let (Some(dp), Ok(env)) = (&d.datapath, d.env()) {
                        dp.enforce(env).await;
                    }
                }
            });
        }
        let me = Arc::downgrade(self);
        let every = Duration::from_secs(self.cfg.sync_interval_secs.max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(d) = me.upgrade() else { return };
                d.sync_power_states().await;
            }
        });
        let net = match (&self.datapath, &self.cfg.netns) {
            (None, _) => "user networking".to_string(),
            (Some(_), Some(ns)) => format!("bridge networking in namespace {ns}"),
            (Some(_), None) => "bridge networking".to_string(),
        };
        Ok(format!("accelerator {acc}: {why}; {net}"))
    }

    // ----- paths -------------------------------------------------------

    fn inst_dir(&self, uuid: &str) -> PathBuf {
        self.instances.join(uuid)
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
        for host in &self.hosts {
            self.tear_down_on(host, uuid).await;
            let _ = std::fs::remove_dir_all(self.state_dir(host, uuid));
        }
        let _ = std::fs::remove_dir_all(self.inst_dir(uuid));
        Ok(())
    }
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
    fn instance_storage(&self) -> Option<String> {
        self.storage_id()
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
        // Setting the admin password needs a guest agent this driver lacks;
        // NICs are hot-plugged on the bridge data path only.
        match op {
            DriverOpKind::ChangePassword => false,
            DriverOpKind::AttachInterface | DriverOpKind::DetachInterface => {
                self.datapath.is_some()
            }
            _ => true,
        }
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
    fn console_log<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let host = inst.host.as_deref()?;
            let mut bytes = std::fs::read(self.history_path(&inst.uuid)).unwrap_or_default();
            bytes.extend(std::fs::read(self.console_path(host, &inst.uuid)).unwrap_or_default());
            let start = bytes.len().saturating_sub(MAX_CONSOLE_BYTES);
            Some(bytes[start..].to_vec())
        })
    }
    fn console_socket(&self, inst: &Instance, kind: ConsoleKind) -> Option<PathBuf> {
        self.guest_console(inst.host.as_deref()?, &inst.uuid, kind)
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
    fn drop_moved<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, ()> {
        Box::pin(self.drop_moved_disks(inst))
    }
    /// Taken by the migration's polling loop within 50 ms (no guest lock:
    /// the migration holds it).
    fn live_request<'a>(
        &'a self,
        inst: &'a Instance,
        req: LiveRequest,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            self.live_asks.lock().insert(inst.uuid.clone(), req);
            Ok(())
        })
    }
}
