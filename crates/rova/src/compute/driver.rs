//! The virt driver seam. The compute service asks a driver to spawn and
//! destroy guests and to carry out server actions; the fake driver does it
//! in memory with configurable latency and injectable faults, deterministic
//! for tests. The QEMU driver (`crate::virt::qemu`) implements the same
//! trait with real guests.

use parking_lot::Mutex;
use rova_core::admission::Action;
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::Fault;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure the driver reports; becomes the instance fault.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DriverFault {
    pub code: u16,
    pub message: String,
    pub details: String,
}

impl DriverFault {
    /// The instance fault it leaves on the server, recorded at `now`.
    pub fn instance_fault(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> rova_core::model::InstanceFault {
        rova_core::model::InstanceFault {
            code: self.code,
            message: self.message.clone(),
            details: Some(self.details.clone()),
            created: now,
        }
    }

    /// A driver failure (HTTP-ish code 500) with what went wrong.
    pub fn new(message: impl Into<String>, details: impl Into<String>) -> Self {
        DriverFault {
            code: 500,
            message: message.into(),
            details: details.into(),
        }
    }
}

/// Everything a driver can be asked to do, without the operation's data:
/// what capabilities are declared over, and what the simulator's faults and
/// slow steps are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverOpKind {
    Spawn,
    Destroy,
    LiveMigrate,
    Reboot,
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Rebuild,
    Evacuate,
    Resize,
    Migrate,
    RevertResize,
    CreateImage,
    CreateBackup,
    Shelve,
    ShelveOffload,
    Unshelve,
    Rescue,
    Unrescue,
    ChangePassword,
    TriggerCrashDump,
    AttachInterface,
    DetachInterface,
    AttachVolume,
    DetachVolume,
    SwapVolume,
}

/// Each kind with its public name: `spawn`, `destroy`, or the
/// instance-action name of the server action. These are the names
/// `/rova/v1/sim/faults` and `/rova/v1/sim/slow` take (docs/simulation.md).
const NAMES: &[(DriverOpKind, &str)] = &[
    (DriverOpKind::Spawn, "spawn"),
    (DriverOpKind::Destroy, "destroy"),
    (DriverOpKind::LiveMigrate, "live-migration"),
    (DriverOpKind::Reboot, "reboot"),
    (DriverOpKind::Stop, "stop"),
    (DriverOpKind::Start, "start"),
    (DriverOpKind::Pause, "pause"),
    (DriverOpKind::Unpause, "unpause"),
    (DriverOpKind::Suspend, "suspend"),
    (DriverOpKind::Resume, "resume"),
    (DriverOpKind::Rebuild, "rebuild"),
    (DriverOpKind::Evacuate, "evacuate"),
    (DriverOpKind::Resize, "resize"),
    (DriverOpKind::Migrate, "migrate"),
    (DriverOpKind::RevertResize, "revertResize"),
    (DriverOpKind::CreateImage, "createImage"),
    (DriverOpKind::CreateBackup, "createBackup"),
    (DriverOpKind::Shelve, "shelve"),
    (DriverOpKind::ShelveOffload, "shelveOffload"),
    (DriverOpKind::Unshelve, "unshelve"),
    (DriverOpKind::Rescue, "rescue"),
    (DriverOpKind::Unrescue, "unrescue"),
    (DriverOpKind::ChangePassword, "changePassword"),
    (DriverOpKind::TriggerCrashDump, "trigger_crash_dump"),
    (DriverOpKind::AttachInterface, "attach_interface"),
    (DriverOpKind::DetachInterface, "detach_interface"),
    (DriverOpKind::AttachVolume, "attach_volume"),
    (DriverOpKind::DetachVolume, "detach_volume"),
    (DriverOpKind::SwapVolume, "swap_volume"),
];

impl DriverOpKind {
    /// Every kind.
    pub fn all() -> impl Iterator<Item = DriverOpKind> {
        NAMES.iter().map(|(k, _)| *k)
    }

    /// The public name (see [`NAMES`]).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("unknown")
    }

    /// The kind a public name stands for.
    pub fn from_name(name: &str) -> Option<DriverOpKind> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }

    /// The driver operation a server action needs, if any (lock, reset
    /// state, metadata... need none).
    pub fn of_action(action: Action) -> Option<DriverOpKind> {
        use DriverOpKind as K;
        Some(match action {
            Action::Delete | Action::ForceDelete => K::Destroy,
            Action::Stop => K::Stop,
            Action::Start => K::Start,
            Action::RebootSoft | Action::RebootHard => K::Reboot,
            Action::Rebuild => K::Rebuild,
            Action::Resize => K::Resize,
            Action::RevertResize => K::RevertResize,
            Action::Migrate => K::Migrate,
            Action::LiveMigrate => K::LiveMigrate,
            Action::Evacuate => K::Evacuate,
            Action::Pause => K::Pause,
            Action::Unpause => K::Unpause,
            Action::Suspend => K::Suspend,
            Action::Resume => K::Resume,
            Action::Shelve => K::Shelve,
            Action::ShelveOffload => K::ShelveOffload,
            Action::Unshelve => K::Unshelve,
            Action::Rescue => K::Rescue,
            Action::Unrescue => K::Unrescue,
            Action::ChangePassword => K::ChangePassword,
            Action::CreateImage => K::CreateImage,
            Action::CreateBackup => K::CreateBackup,
            Action::TriggerCrashDump => K::TriggerCrashDump,
            Action::AttachInterface => K::AttachInterface,
            Action::DetachInterface => K::DetachInterface,
            Action::AttachVolume => K::AttachVolume,
            Action::DetachVolume => K::DetachVolume,
            Action::SwapVolume => K::SwapVolume,
            Action::Restore
            | Action::ConfirmResize
            | Action::ResetState
            | Action::InjectNetworkInfo
            | Action::Lock
            | Action::Unlock
            | Action::ConsoleOutput
            | Action::RemoteConsole
            | Action::UpdateMetadata
            | Action::DeleteMetadata => return None,
        })
    }
}

/// A server action the driver carries out on a guest, with what it needs
/// beside the instance record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub enum DriverOp {
    /// A hard reboot resets the guest; a soft one asks it to power off.
    Reboot {
        hard: bool,
    },
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Rebuild,
    /// The host the server is rebuilt on (its own host is down).
    Evacuate {
        dest: String,
    },
    /// The flavor the guest moves to and the host it moves to.
    Resize {
        #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
        flavor: FlavorSnapshot,
        dest: String,
    },
    /// A cold migration: `flavor` is the guest's own.
    Migrate {
        #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
        flavor: FlavorSnapshot,
        dest: String,
    },
    /// Back to the source host (when the move had one).
    RevertResize {
        dest: Option<String>,
    },
    /// The image the snapshot is written into.
    CreateImage {
        image_id: String,
    },
    /// The image the backup is written into.
    CreateBackup {
        image_id: String,
    },
    /// The image the disk is kept in (none for a volume-backed server).
    Shelve {
        image_id: Option<String>,
    },
    ShelveOffload,
    /// The host the guest starts on.
    Unshelve {
        dest: String,
    },
    /// The image the rescue boots (none: the server's own).
    Rescue {
        image_id: Option<String>,
    },
    Unrescue,
    ChangePassword,
    TriggerCrashDump,
    /// A NIC plugged in: the port and its MAC.
    AttachInterface {
        port_id: String,
        mac: String,
    },
    /// A NIC unplugged.
    DetachInterface {
        port_id: String,
    },
    /// A volume plugged in as `device` (`/dev/vdb`, …), its bytes at
    /// `path`.
    AttachVolume {
        volume_id: String,
        device: String,
        path: std::path::PathBuf,
    },
    /// A volume unplugged.
    DetachVolume {
        volume_id: String,
    },
    /// The guest's disk `device` moves from volume `old` (its bytes at
    /// `old_path`) to volume `new` (at `new_path`), the bytes copied
    /// first: Nova's `swap_volume`.
    SwapVolume {
        old: String,
        new: String,
        device: String,
        old_path: std::path::PathBuf,
        new_path: std::path::PathBuf,
    },
}

impl DriverOp {
    pub fn kind(&self) -> DriverOpKind {
        use DriverOpKind as K;
        match self {
            DriverOp::Reboot { .. } => K::Reboot,
            DriverOp::Stop => K::Stop,
            DriverOp::Start => K::Start,
            DriverOp::Pause => K::Pause,
            DriverOp::Unpause => K::Unpause,
            DriverOp::Suspend => K::Suspend,
            DriverOp::Resume => K::Resume,
            DriverOp::Rebuild => K::Rebuild,
            DriverOp::Evacuate { .. } => K::Evacuate,
            DriverOp::Resize { .. } => K::Resize,
            DriverOp::Migrate { .. } => K::Migrate,
            DriverOp::RevertResize { .. } => K::RevertResize,
            DriverOp::CreateImage { .. } => K::CreateImage,
            DriverOp::CreateBackup { .. } => K::CreateBackup,
            DriverOp::Shelve { .. } => K::Shelve,
            DriverOp::ShelveOffload => K::ShelveOffload,
            DriverOp::Unshelve { .. } => K::Unshelve,
            DriverOp::Rescue { .. } => K::Rescue,
            DriverOp::Unrescue => K::Unrescue,
            DriverOp::ChangePassword => K::ChangePassword,
            DriverOp::AttachInterface { .. } => K::AttachInterface,
            DriverOp::DetachInterface { .. } => K::DetachInterface,
            DriverOp::AttachVolume { .. } => K::AttachVolume,
            DriverOp::DetachVolume { .. } => K::DetachVolume,
            DriverOp::SwapVolume { .. } => K::SwapVolume,
            DriverOp::TriggerCrashDump => K::TriggerCrashDump,
        }
    }

    /// The public name: the instance-action name.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The host whose driver carries the operation out when that is not
    /// the server's own: an evacuation rebuilds the guest on the
    /// destination (its own host is down), an unshelve starts it on the
    /// host it was scheduled to.
    pub fn rebuilt_on(&self) -> Option<&str> {
        match self {
            DriverOp::Evacuate { dest } | DriverOp::Unshelve { dest } => Some(dest),
            _ => None,
        }
    }

    /// The host a move run on the server's own host takes its guest to
    /// (resize, cold migration, and a revert back to its source).
    pub fn moves_to(&self) -> Option<&str> {
        match self {
            DriverOp::Resize { dest, .. } | DriverOp::Migrate { dest, .. } => Some(dest),
            DriverOp::RevertResize { dest } => dest.as_deref(),
            _ => None,
        }
    }
}

/// Nova's answer when the virt driver cannot do an operation (its API turns
/// the driver's `NotImplementedError` into 501 `notImplemented`).
pub fn not_supported(kind: DriverOpKind) -> Fault {
    let msg = match kind {
        DriverOpKind::ChangePassword => "Unable to set password on instance",
        _ => "The requested functionality is not supported.",
    };
    Fault::new(501, msg)
}

/// Refuses `action` up front when the driver cannot carry it out.
pub fn require(driver: &dyn Driver, action: Action) -> Result<(), Fault> {
    match DriverOpKind::of_action(action) {
        Some(k) if !driver.supports(k) => Err(not_supported(k)),
        _ => Ok(()),
    }
}

/// Which console of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// The serial port (a byte stream).
    Serial,
    /// The graphical console (RFB/VNC).
    Vnc,
}

/// A byte stream to a guest's console.
pub trait ConsoleIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> ConsoleIo for T {}
pub type ConsoleStream = Box<dyn ConsoleIo>;

/// Figures a real live migration reports.
#[derive(
    Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LiveStats {
    pub total_ms: u64,
    pub downtime_ms: u64,
    pub memory_total: i64,
    pub memory_processed: i64,
    /// A block migration's disks: bytes the mirrors copied before the
    /// memory went, and how long that took (QEMU's `total_ms` counts
    /// only the memory).
    #[serde(default)]
    pub disk_total: i64,
    #[serde(default)]
    pub mirror_ms: u64,
}

/// A request about a live migration in flight (Nova's
/// `os-migrations` force_complete and abort).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LiveRequest {
    /// Finish now: the guest is paused so that its memory stops changing,
    /// and the stream goes at full speed.
    ForceComplete,
    /// Cancel: the guest keeps running on its source.
    Abort,
}

/// What a hypervisor driver can do.
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pause between the simulated steps of an operation.
    fn step_delay(&self) -> Duration;
    /// Creates and starts the guest.
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// Whether this driver can do `op` (its declared capabilities). The API
    /// refuses an operation the driver cannot do before anything changes.
    fn supports(&self, _op: DriverOpKind) -> bool {
        true
    }
    /// Carries out a server action on the guest.
    fn perform<'a>(
        &'a self,
        op: &'a DriverOp,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>>;
    /// Stops and removes the guest (idempotent).
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// True for the simulated driver: the control plane then plays the
    /// guest's part itself (console text, migration progress, images).
    fn is_simulated(&self) -> bool {
        true
    }
    /// Which storage holds the instance disks of the host this driver
    /// serves: hosts reporting the same id share it (live migration
    /// between them copies no disk), `None` when the driver keeps no
    /// disks (simulated) and a live migration may be either kind.
    fn instance_storage(&self) -> Option<String> {
        None
    }
    /// The guest's serial console log, when the driver keeps one.
    fn console_log<'a>(&'a self, _inst: &'a Instance) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async { None })
    }
    /// The local socket a console proxy connects to for this guest.
    fn console_socket(&self, _inst: &Instance, _kind: ConsoleKind) -> Option<PathBuf> {
        None
    }
    /// A connection to the guest's console (`None`: it has none): by
    /// default to [`Driver::console_socket`]; an agent's guest's through
    /// its agent.
    fn console_stream<'a>(
        &'a self,
        inst: &'a Instance,
        kind: ConsoleKind,
    ) -> BoxFut<'a, Result<Option<ConsoleStream>, String>> {
        Box::pin(async move {
            let Some(path) = self.console_socket(inst, kind) else {
                return Ok(None);
            };
            let s = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
            Ok(Some(Box::new(s) as ConsoleStream))
        })
    }
    /// A named step of a long operation (build, resize, live migration;
    /// [`STEPS`]) that the driver may fail: `ops` are the operation names a
    /// fault may carry to fail here, `host` where the step runs. Real
    /// drivers fail inside their own calls; only the simulator fails here.
    fn fail_point<'a>(
        &'a self,
        _ops: &'a [&'a str],
        _step: &'static str,
        _host: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async { Ok(()) })
    }
    /// Moves a running guest to `dest` without stopping it.
    fn live_migrate<'a>(
        &'a self,
        _inst: &'a Instance,
        _dest: &'a str,
    ) -> BoxFut<'a, Result<LiveStats, DriverFault>> {
        Box::pin(async { Ok(LiveStats::default()) })
    }
    /// The guest moved to another host for good (a confirmed resize or
    /// cold migration): the disks the move left on the source go. Only
    /// logged when it fails (Nova's confirm is a cast to the source).
    fn drop_moved<'a>(&'a self, _inst: &'a Instance) -> BoxFut<'a, ()> {
        Box::pin(async {})
    }
    /// Hands a request about the live migration of `inst` in flight to
    /// the driver carrying it out (a driver whose migrations are
    /// simulated by the control plane ignores it).
    fn live_request<'a>(
        &'a self,
        _inst: &'a Instance,
        _req: LiveRequest,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async { Ok(()) })
    }
}

use super::fault_steps::slow_step;
pub use super::fault_steps::{default_step, steps_of, InjectedFault, STEPS};

/// The simulated driver's pending faults and slow steps as stored: one
/// row (id [`SIM_FAULTS_ROW`]) of kind `sim_faults`, so they survive a
/// restart until fired or cleared.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StoredFaults {
    pub faults: Vec<InjectedFault>,
    /// Extra delay in milliseconds per operation name.
    pub slow_ms: std::collections::BTreeMap<String, u64>,
}

const SIM_FAULTS_ROW: &str = "fake";

type SlowSteps = std::collections::HashMap<String, Duration>;

/// The simulated driver.
pub struct FakeDriver {
    latency: Mutex<Duration>,
    faults: Arc<Mutex<Vec<InjectedFault>>>,
    /// Extra delay per operation name ("make a step slow").
    slow: Arc<Mutex<SlowSteps>>,
    /// Operations this simulated hypervisor declares it cannot do.
    unsupported: Mutex<std::collections::HashSet<DriverOpKind>>,
    /// Where faults and slow steps are kept (absent: memory only).
    stored: Option<crate::store::Table<StoredFaults>>,
    /// Wakes operations held by a slow step when slow steps are cleared
    /// (they survive a restart, so a restarted service's own operations
    /// may be held until the operator clears them).
    released: tokio::sync::Notify,
}

impl FakeDriver {
    pub fn new(latency_ms: u64) -> Self {
        FakeDriver {
            latency: Mutex::new(Duration::from_millis(latency_ms)),
            faults: Arc::new(Mutex::new(Vec::new())),
            slow: Arc::new(Mutex::new(SlowSteps::new())),
            unsupported: Mutex::new(std::collections::HashSet::new()),
            stored: None,
            released: tokio::sync::Notify::new(),
        }
    }

    /// Declares `op` supported or not (a hypervisor without a capability).
    pub fn set_supported(&self, op: DriverOpKind, yes: bool) {
        let mut u = self.unsupported.lock();
        if yes {
            u.remove(&op);
        } else {
            u.insert(op);
        }
    }

    /// The driver with the faults and slow steps kept in `store`.
    pub fn load(
        latency_ms: u64,
        store: &std::sync::Arc<crate::store::Store>,
    ) -> Result<Self, String> {
        let stored: crate::store::Table<StoredFaults> =
            crate::store::Table::load("sim_faults", store)?;
        let row = stored
            .get(SIM_FAULTS_ROW)
            .map(|r| (*r).clone())
            .unwrap_or_default();
        let d = FakeDriver::new(latency_ms);
        let apply =
            |faults: &Mutex<Vec<InjectedFault>>, slow: &Mutex<SlowSteps>, row: StoredFaults| {
                *faults.lock() = row.faults;
                *slow.lock() = row
                    .slow_ms
                    .into_iter()
                    .map(|(op, ms)| (op, Duration::from_millis(ms)))
                    .collect();
            };
        apply(&d.faults, &d.slow, row);
        // Faults and slow steps set through another process (or the row as
        // stored after a refused write) apply here too.
        let (faults, slow) = (d.faults.clone(), d.slow.clone());
        stored.watch(Box::new(move |_, after: Option<&StoredFaults>| {
            apply(&faults, &slow, after.cloned().unwrap_or_default());
        }));
        Ok(FakeDriver {
            stored: Some(stored),
            ..d
        })
    }

    /// Changes the faults and slow steps; with a store, the new state is
    /// durable before this returns (the row lock is held while memory
    /// changes and the write is queued, so writes reach the disk in order).
    async fn change<R>(
        &self,
        f: impl FnOnce(&mut Vec<InjectedFault>, &mut SlowSteps) -> R,
    ) -> Result<R, rova_core::Fault> {
        let Some(stored) = &self.stored else {
            return Ok(f(&mut self.faults.lock(), &mut self.slow.lock()));
        };
        stored
            .upsert(SIM_FAULTS_ROW, StoredFaults::default, |row| {
                let mut faults = self.faults.lock();
                let mut slow = self.slow.lock();
                let r = f(&mut faults, &mut slow);
                row.faults = faults.clone();
                row.slow_ms = slow
                    .iter()
                    .map(|(op, d)| (op.clone(), d.as_millis() as u64))
                    .collect();
                Ok(r)
            })
            .await
            .map(|(_, r)| r)
    }

    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock() = d;
    }

    pub async fn inject(&self, f: InjectedFault) -> Result<(), rova_core::Fault> {
        self.change(|faults, _| faults.push(f)).await
    }

    /// Faults still pending.
    pub fn faults(&self) -> Vec<InjectedFault> {
        self.faults.lock().clone()
    }

    /// Forgets every injected fault and slow step.
    pub async fn clear(&self) -> Result<(), rova_core::Fault> {
        self.change(|faults, slow| {
            faults.clear();
            slow.clear();
        })
        .await?;
        self.released.notify_waiters();
        Ok(())
    }

    /// Makes every `op` take `d` longer (zero removes it).
    pub async fn set_slow(&self, op: &str, d: Duration) -> Result<(), rova_core::Fault> {
        self.change(|_, s| {
            if d.is_zero() {
                s.remove(op);
            } else {
                s.insert(op.to_string(), d);
            }
        })
        .await
    }

    /// Slow steps in force.
    pub fn slow_steps(&self) -> Vec<(String, u64)> {
        self.slow
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_millis() as u64))
            .collect()
    }

    /// Holds `op` for its slow step, or until slow steps are cleared.
    async fn extra_delay(&self, op: &str) {
        let released = self.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        let d = self.slow.lock().get(op).copied();
        if let Some(d) = d {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = released => {}
            }
        }
    }

    /// Fires the first pending fault for `step` of one of `ops` on `host`,
    /// if any: its count goes down (durably) and its message is returned. A
    /// failed write is logged; the fault still fires.
    async fn take_fault(&self, ops: &[&str], step: &str, host: Option<&str>) -> Option<String> {
        let matches = |f: &InjectedFault| f.fires(ops, step, host);
        if !self.faults.lock().iter().any(matches) {
            return None;
        }
        let fired = self.change(|faults, _| {
            let pos = faults.iter().position(matches)?;
            faults[pos].count -= 1;
            let msg = faults[pos].message.clone();
            if faults[pos].count == 0 {
                faults.remove(pos);
            }
            Some(msg)
        });
        match fired.await {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("recording a fired fault: {}", e.message);
                Some(format!("Injected fault in {step}"))
            }
        }
    }

    fn run<'a>(
        &'a self,
        op: DriverOpKind,
        host: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let d = *self.latency.lock();
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            self.injected(op, host).await
        })
    }

    /// The injected fault for `op` (keyed by its name) at the operation's
    /// default step.
    async fn injected(&self, op: DriverOpKind, host: Option<&str>) -> Result<(), DriverFault> {
        let name = op.name();
        self.step_fault(&[name], default_step(name), host).await
    }

    /// The slow step held at `step` (see [`slow_step`]) and the injected
    /// fault, if one fires at `step` of `ops` on `host`.
    async fn step_fault(
        &self,
        ops: &[&str],
        step: &str,
        host: Option<&str>,
    ) -> Result<(), DriverFault> {
        for op in ops {
            if slow_step(op) == step {
                self.extra_delay(op).await;
            }
        }
        match self.take_fault(ops, step, host).await {
            Some(message) => {
                let name = ops.first().copied().unwrap_or(step);
                let details = if step == default_step(name) && step == name {
                    format!("injected fault in fake driver {name}")
                } else {
                    format!("injected fault in fake driver {name} at {step}")
                };
                Err(DriverFault {
                    code: 500,
                    details,
                    message,
                })
            }
            None => Ok(()),
        }
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn step_delay(&self) -> Duration {
        *self.latency.lock()
    }
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        self.run(DriverOpKind::Spawn, inst.host.as_deref())
    }
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        self.run(DriverOpKind::Destroy, inst.host.as_deref())
    }
    fn supports(&self, op: DriverOpKind) -> bool {
        !self.unsupported.lock().contains(&op)
    }
    fn perform<'a>(
        &'a self,
        op: &'a DriverOp,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        let kind = op.kind();
        if !self.supports(kind) {
            // Only reached by a caller that did not ask first.
            let f = not_supported(kind);
            return Box::pin(async move {
                Err(DriverFault {
                    code: f.code,
                    message: f.message,
                    details: format!("{} is not implemented for this driver", kind.name()),
                })
            });
        }
        Box::pin(self.injected(kind, inst.host.as_deref()))
    }
    fn fail_point<'a>(
        &'a self,
        ops: &'a [&'a str],
        step: &'static str,
        host: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(self.step_fault(ops, step, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_name_and_back() {
        let kinds: Vec<DriverOpKind> = DriverOpKind::all().collect();
        for k in &kinds {
            assert_eq!(DriverOpKind::from_name(k.name()), Some(*k), "{k:?}");
        }
        let mut names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), kinds.len(), "names are unique");
        assert_eq!(DriverOpKind::from_name("no-such-op"), None);
    }

    #[test]
    fn names_are_the_documented_simulator_names() {
        // docs/simulation.md: spawn, destroy, or the instance-action name.
        for (op, name) in [
            (DriverOp::Reboot { hard: true }, "reboot"),
            (DriverOp::Reboot { hard: false }, "reboot"),
            (DriverOp::RevertResize { dest: None }, "revertResize"),
            (DriverOp::ShelveOffload, "shelveOffload"),
            (
                DriverOp::CreateBackup {
                    image_id: "i".into(),
                },
                "createBackup",
            ),
            (DriverOp::ChangePassword, "changePassword"),
        ] {
            assert_eq!(op.name(), name);
        }
        assert_eq!(DriverOpKind::Spawn.name(), "spawn");
        assert_eq!(DriverOpKind::Destroy.name(), "destroy");
    }

    #[test]
    fn actions_map_to_their_operation() {
        use DriverOpKind as K;
        assert_eq!(DriverOpKind::of_action(Action::RebootHard), Some(K::Reboot));
        assert_eq!(DriverOpKind::of_action(Action::RebootSoft), Some(K::Reboot));
        assert_eq!(DriverOpKind::of_action(Action::Pause), Some(K::Pause));
        assert_eq!(
            DriverOpKind::of_action(Action::ChangePassword),
            Some(K::ChangePassword)
        );
        assert_eq!(DriverOpKind::of_action(Action::Lock), None);
        assert_eq!(DriverOpKind::of_action(Action::ResetState), None);
    }

    #[test]
    fn an_undeclared_capability_is_refused_with_nova_501() {
        let d = FakeDriver::new(0);
        assert!(require(&d, Action::Pause).is_ok());
        d.set_supported(DriverOpKind::Pause, false);
        let f = require(&d, Action::Pause).expect_err("refused");
        assert_eq!(f.code, 501);
        assert_eq!(f.wire_key(), "notImplemented");
        assert_eq!(f.message, "The requested functionality is not supported.");
        assert!(require(&d, Action::Unpause).is_ok());
        assert!(require(&d, Action::Lock).is_ok());
        d.set_supported(DriverOpKind::ChangePassword, false);
        let f = require(&d, Action::ChangePassword).expect_err("refused");
        assert_eq!(f.message, "Unable to set password on instance");
        d.set_supported(DriverOpKind::Pause, true);
        assert!(require(&d, Action::Pause).is_ok());
    }

    #[tokio::test]
    async fn a_step_fault_fires_only_at_its_step_and_a_stepless_one_at_the_default() {
        let d = FakeDriver::new(0);
        let f = |op: &str, step: Option<&str>| InjectedFault {
            op: op.into(),
            count: 1,
            message: format!("{op} {step:?}"),
            host: None,
            step: step.map(str::to_string),
        };
        d.inject(f("resize", Some("finish_resize")))
            .await
            .expect("inject");
        d.inject(f("resize", None)).await.expect("inject");
        let ops = ["resize"];
        assert!(d.fail_point(&ops, "prep_resize", None).await.is_ok());
        assert!(d
            .fail_point(&["migrate"], "finish_resize", None)
            .await
            .is_ok());
        let e = d.fail_point(&ops, "finish_resize", None).await;
        assert_eq!(
            e.expect_err("fires").message,
            "resize Some(\"finish_resize\")"
        );
        assert!(
            d.fail_point(&ops, "finish_resize", None).await.is_ok(),
            "count 1"
        );
        // The step-less fault is the resize's own driver call.
        let op = DriverOp::Resize {
            flavor: FlavorSnapshot::default(),
            dest: "h".into(),
        };
        let e = d.injected(op.kind(), None).await.expect_err("default step");
        assert_eq!(e.message, "resize None");
        assert_eq!(
            e.details,
            "injected fault in fake driver resize at resize_instance"
        );
        assert!(d.faults().is_empty());
        for (op, steps) in STEPS {
            assert!(steps.contains(&default_step(op)), "{op}");
        }
        assert_eq!(default_step("spawn"), "spawn");
        assert_eq!(steps_of("reboot"), None);
    }

    #[tokio::test]
    async fn fake_faults_are_keyed_by_the_public_name() {
        let d = FakeDriver::new(0);
        let host = Some("rova-sim-1");
        d.inject(InjectedFault {
            op: "reboot".into(),
            count: 1,
            message: "boom".into(),
            host: None,
            step: None,
        })
        .await
        .expect("inject");
        let hard = DriverOp::Reboot { hard: true }.kind();
        assert!(d.injected(DriverOpKind::Pause, host).await.is_ok());
        let f = d.injected(hard, host).await.expect_err("fault fires");
        assert_eq!(f.message, "boom");
        assert_eq!(f.details, "injected fault in fake driver reboot");
        assert!(d.injected(hard, host).await.is_ok(), "count was 1");
        d.inject(InjectedFault {
            op: "spawn".into(),
            count: 1,
            message: "disk full".into(),
            host: Some("rova-sim-2".into()),
            step: None,
        })
        .await
        .expect("inject");
        assert!(d.run(DriverOpKind::Spawn, host).await.is_ok(), "other host");
        assert!(d
            .run(DriverOpKind::Spawn, Some("rova-sim-2"))
            .await
            .is_err());
    }
}
