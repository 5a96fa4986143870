//! The guest's QEMU process on a host: finding it (pidfile checked
//! against `/proc`), talking QMP to it, powering it off or killing it,
//! starting it from a [`VmSpec`], tearing down what it leaves behind, and
//! its per-guest metadata listener.

use super::{fault, QemuDriver};
use crate::compute::driver::DriverFault;
use crate::virt::env::GuestEnv;
use crate::virt::metadata_server;
use crate::virt::qmp::{self, Qmp};
use crate::virt::vmspec::VmSpec;
use rova_core::model::Instance;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl QemuDriver {
    /// The QEMU process of this guest on this host, if it is alive.
    pub(super) fn pid(&self, host: &str, uuid: &str) -> Option<u32> {
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

    pub(super) fn running(&self, host: &str, uuid: &str) -> bool {
        self.pid(host, uuid).is_some()
    }

    pub(super) async fn qmp(
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

    pub(super) async fn wait_exit(&self, host: &str, uuid: &str, within: Duration) -> bool {
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
    pub(super) async fn kill(&self, host: &str, uuid: &str) {
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
    pub(super) async fn power_off(&self, host: &str, uuid: &str) -> bool {
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

    pub(super) fn ensure_metadata(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        uuid: &str,
    ) -> Result<PathBuf, DriverFault> {
        let sock = self.sock_dir(host, uuid).join("md.sock");
        let key = (host.to_string(), uuid.to_string());
        if self.metadata.lock().contains_key(&key) {
            return Ok(sock);
        }
        let h = metadata_server::serve(env.clone(), uuid, &sock)
            .map_err(|e| fault(format!("starting the metadata service: {e}")))?;
        self.metadata.lock().insert(key, h);
        Ok(sock)
    }

    pub(super) fn stop_metadata(&self, host: &str, uuid: &str) {
        if let Some(h) = self
            .metadata
            .lock()
            .remove(&(host.to_string(), uuid.to_string()))
        {
            h.stop();
        }
    }

    /// On the bridge data path: plugs the guest's NICs on `host` (before
    /// its QEMU starts, which opens the taps). Nothing with user
    /// networking.
    pub(super) async fn plug(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
    ) -> Result<(), DriverFault> {
        let Some(dp) = &self.datapath else {
            return Ok(());
        };
        dp.plug(env, inst, host)
            .await
            .map(|_| ())
            .map_err(|e| fault(format!("plugging the guest's network: {e}")))
    }

    /// Starts the QEMU process described by `spec` and waits for its QMP.
    pub(super) async fn exec(&self, spec: &VmSpec) -> Result<(), DriverFault> {
        let mut cmd = match spec.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = tokio::process::Command::new(first);
                c.args(rest).arg(&spec.binary);
                c
            }
            None => tokio::process::Command::new(&spec.binary),
        };
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

    /// `dest` when the operation names one, else the guest's host.
    pub(super) fn host_of(
        &self,
        inst: &Instance,
        dest: Option<&str>,
    ) -> Result<String, DriverFault> {
        dest.map(str::to_string)
            .or_else(|| inst.host.clone())
            .ok_or_else(|| fault(format!("instance {} has no host", inst.uuid)))
    }

    /// Removes every trace of the guest on `host` (process, sockets,
    /// runtime state).
    pub(super) async fn tear_down_on(&self, host: &str, uuid: &str) {
        self.kill(host, uuid).await;
        self.stop_metadata(host, uuid);
        if let (Some(dp), Some(env)) = (&self.datapath, self.env.get()) {
            dp.unplug(env, host, uuid).await;
        }
        let socks = self.sock_dir(host, uuid);
        let _ = std::fs::remove_dir_all(&socks);
        // The per-host and per-data-dir socket directories go with their
        // last guest (remove_dir leaves a non-empty directory alone).
        if let Some(parent) = socks.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        let _ = std::fs::remove_dir(&self.run_dir);
    }
}
