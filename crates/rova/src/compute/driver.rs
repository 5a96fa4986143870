//! The virt driver seam. The compute service asks a driver to spawn and
//! destroy guests; the fake driver does it in memory with configurable
//! latency and injectable faults, deterministic for tests. The QEMU driver
//! will implement the same trait.

use parking_lot::Mutex;
use rova_core::model::Instance;
use std::future::Future;
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

/// What a hypervisor driver can do.
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pause between the simulated steps of an operation.
    fn step_delay(&self) -> Duration;
    /// Creates and starts the guest.
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// Stops and removes the guest (idempotent).
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>>;
    /// The simulated driver, when this is it (tests inject faults through it).
    fn as_fake(&self) -> Option<&FakeDriver> {
        None
    }
}

/// An injected fault: the next `count` operations named `op` fail.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    pub op: String,
    pub count: u32,
    pub message: String,
}

/// The simulated driver.
pub struct FakeDriver {
    latency: Mutex<Duration>,
    faults: Mutex<Vec<InjectedFault>>,
}

impl FakeDriver {
    pub fn new(latency_ms: u64) -> Self {
        FakeDriver {
            latency: Mutex::new(Duration::from_millis(latency_ms)),
            faults: Mutex::new(Vec::new()),
        }
    }

    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock() = d;
    }

    pub fn inject(&self, f: InjectedFault) {
        self.faults.lock().push(f);
    }

    fn take_fault(&self, op: &str) -> Option<String> {
        let mut faults = self.faults.lock();
        let pos = faults.iter().position(|f| f.op == op && f.count > 0)?;
        faults[pos].count -= 1;
        let msg = faults[pos].message.clone();
        if faults[pos].count == 0 {
            faults.remove(pos);
        }
        Some(msg)
    }

    fn run<'a>(&'a self, op: &'static str) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            let d = *self.latency.lock();
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            match self.take_fault(op) {
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
    fn spawn<'a>(&'a self, _inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        self.run("spawn")
    }
    fn destroy<'a>(&'a self, _inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        self.run("destroy")
    }
    fn as_fake(&self) -> Option<&FakeDriver> {
        Some(self)
    }
}
