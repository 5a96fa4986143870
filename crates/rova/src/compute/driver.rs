//! The virt driver seam. The compute service asks a driver to spawn and
//! destroy guests and to carry out server actions; the fake driver does it
//! in memory with configurable latency and injectable faults, deterministic
//! for tests. The QEMU driver (`crate::virt::qemu`) implements the same
//! trait with real guests.

use parking_lot::Mutex;
use rova_core::model::{FlavorSnapshot, Instance};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure the driver reports; becomes the instance fault.
#[derive(Debug, Clone)]
pub struct DriverFault {
    pub code: u16,
    pub message: String,
    pub details: String,
}

impl DriverFault {
    /// A driver failure (HTTP-ish code 500) with what went wrong.
    pub fn new(message: impl Into<String>, details: impl Into<String>) -> Self {
        DriverFault {
            code: 500,
            message: message.into(),
            details: details.into(),
        }
    }
}

/// What an operation carries beside the instance record.
#[derive(Debug, Clone, Default)]
pub struct OpArgs {
    /// The image an operation writes (snapshot, backup, shelve) or boots
    /// (rescue).
    pub image_id: Option<String>,
    /// The flavor a resize moves to.
    pub flavor: Option<FlavorSnapshot>,
    /// The host a move goes to.
    pub dest_host: Option<String>,
}

/// Which console of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// The serial port (a byte stream).
    Serial,
    /// The graphical console (RFB/VNC).
    Vnc,
}

/// Figures a real live migration reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveStats {
    pub total_ms: u64,
    pub downtime_ms: u64,
    pub memory_total: i64,
    pub memory_processed: i64,
}

/// What a hypervisor driver can do.
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pause between the simulated steps of an operation.
    fn step_delay(&self) -> Duration;
    /// Creates and starts the guest.
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// Carries out a named server action on the guest (`pause`, `reboot`,
    /// `rebuild`, `resize`, `shelve`, ... — the instance-action names).
    fn perform<'a>(
        &'a self,
        op: &'a str,
        args: &'a OpArgs,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>>;
    /// Stops and removes the guest (idempotent).
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// True for the simulated driver: the control plane then plays the
    /// guest's part itself (console text, migration progress, images).
    fn is_simulated(&self) -> bool {
        true
    }
    /// The guest's serial console log, when the driver keeps one.
    fn console_log(&self, _inst: &Instance) -> Option<Vec<u8>> {
        None
    }
    /// The local socket a console proxy connects to for this guest.
    fn console_socket(&self, _inst: &Instance, _kind: ConsoleKind) -> Option<PathBuf> {
        None
    }
    /// Moves a running guest to `dest` without stopping it.
    fn live_migrate<'a>(
        &'a self,
        _inst: &'a Instance,
        _dest: &'a str,
    ) -> BoxFut<'a, Result<LiveStats, DriverFault>> {
        Box::pin(async { Ok(LiveStats::default()) })
    }
}

/// An injected fault: the next `count` operations named `op` (on `host`,
/// or on any host) fail with `message`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InjectedFault {
    pub op: String,
    pub count: u32,
    pub message: String,
    #[serde(default)]
    pub host: Option<String>,
}

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
    faults: Mutex<Vec<InjectedFault>>,
    /// Extra delay per operation name ("make a step slow").
    slow: Mutex<SlowSteps>,
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
            faults: Mutex::new(Vec::new()),
            slow: Mutex::new(SlowSteps::new()),
            stored: None,
            released: tokio::sync::Notify::new(),
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
        *d.faults.lock() = row.faults;
        *d.slow.lock() = row
            .slow_ms
            .into_iter()
            .map(|(op, ms)| (op, Duration::from_millis(ms)))
            .collect();
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

    /// Fires the first pending fault for `op` on `host`, if any: its count
    /// goes down (durably) and its message is returned. A failed write is
    /// logged; the fault still fires.
    async fn take_fault(&self, op: &str, host: Option<&str>) -> Option<String> {
        let matches = |f: &InjectedFault| {
            f.op == op && f.count > 0 && (f.host.is_none() || f.host.as_deref() == host)
        };
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
                Some(format!("Injected fault in {op}"))
            }
        }
    }

    fn run<'a>(
        &'a self,
        op: &'a str,
        host: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let d = *self.latency.lock();
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            self.extra_delay(op).await;
            match self.take_fault(op, host).await {
                Some(message) => Err(DriverFault {
                    code: 500,
                    details: format!("injected fault in fake driver {op}"),
                    message,
                }),
                None => Ok(()),
            }
        })
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
        self.run("spawn", inst.host.as_deref())
    }
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        self.run("destroy", inst.host.as_deref())
    }
    fn perform<'a>(
        &'a self,
        op: &'a str,
        _args: &'a OpArgs,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            self.extra_delay(op).await;
            match self.take_fault(op, inst.host.as_deref()).await {
                Some(message) => Err(DriverFault {
                    code: 500,
                    details: format!("injected fault in fake driver {op}"),
                    message,
                }),
                None => Ok(()),
            }
        })
    }
}
