//! Moving a guest: resize and cold migration (stop, keep the disk for a
//! revert, grow it, start on the destination; a volume-backed server's
//! root volume goes along as it is), reverting a resize, and
//! live migration (a waiting QEMU on the destination, QMP `migrate` on the
//! source — both halves in this process, or each on its own agent), plus
//! polling an outgoing migration.

use super::launch::{boot_of, Boot, Shape};
use super::volumes::root_volume;
use super::{fault, FileSource, QemuDriver};
use crate::compute::driver::{DriverFault, DriverOp, LiveRequest, LiveStats};
use crate::virt::disk;
use crate::virt::env::GuestEnv;
use crate::virt::qmp::{self, Qmp};
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::VmState;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl QemuDriver {
    /// Resize / cold migration: the guest stops, its disk is kept for a
    /// revert, grown to the new flavor, and the guest starts on the
    /// destination with the new vCPUs and RAM.
    pub(super) async fn cold_move(
        &self,
        env: &Arc<dyn GuestEnv>,
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
        // A volume-backed server's root disk is its volume, which stays
        // as it is (shared by the hosts) and attached; the flavor's disk
        // size does not apply to it.
        if root_volume(inst).is_none() {
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
        }
        if src != dest {
            let _ = std::fs::remove_file(self.console_path(&dest, uuid));
            self.leave_host(&src, uuid);
        }
        if !self.is_local(&dest) {
            // Another agent's host: that agent starts it (finish_move).
            return Ok(());
        }
        if !was_running && inst.vm_state == VmState::Stopped {
            return Ok(());
        }
        self.launch(env, inst, &dest, flavor, Boot::Normal, None)
            .await
    }

    pub(super) async fn revert_resize(
        &self,
        env: &Arc<dyn GuestEnv>,
        dest: Option<&str>,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let cur = self.host_of(inst, None)?;
        let back = self.host_of(inst, dest)?;
        self.tear_down_on(&cur, uuid).await;
        let dir = self.inst_dir(uuid);
        if self.copies_disks() && !self.is_local(&back) {
            // This host's copies go; the source kept its own disks.
            self.leave_host(&cur, uuid);
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        let orig = dir.join("disk.resize-orig");
        if orig.exists() {
            std::fs::rename(&orig, dir.join("disk.qcow2"))
                .map_err(|e| fault(format!("restoring the disk: {e}")))?;
        }
        if !self.is_local(&back) {
            // The source is another agent's host: it starts the guest
            // again (finish_move).
            return Ok(());
        }
        self.start_reverted(env, inst, &back).await
    }

    /// The guest back on the source of a resize with its old flavor,
    /// unless it was stopped before the resize.
    async fn start_reverted(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        back: &str,
    ) -> Result<(), DriverFault> {
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
        self.launch(env, inst, back, &old, Boot::Normal, None).await
    }

    /// The destination agent's half of a cold move another agent's
    /// driver began (`op`: the resize, cold migration or revert it
    /// carried out there): the guest starts here on its disks as the move
    /// left them — shared by the hosts, or copied from `from` (the
    /// source's agent) when this host's instances path is its own; a
    /// revert finds the disks it kept here.
    pub(super) async fn do_finish_move(
        &self,
        op: &DriverOp,
        inst: &Instance,
        host: &str,
        from: Option<&dyn FileSource>,
    ) -> Result<(), DriverFault> {
        let env = self.env()?;
        let uuid = &inst.uuid;
        if self.running(host, uuid) {
            return Ok(());
        }
        let dir = self.inst_dir(uuid);
        let present = || root_volume(inst).is_some() || dir.join("disk.qcow2").exists();
        match op {
            DriverOp::Resize { flavor, .. } | DriverOp::Migrate { flavor, .. } => {
                if let (true, Some(src)) = (self.copies_disks(), from) {
                    self.copy_in(env, src, inst).await?;
                }
                if inst.vm_state == VmState::Stopped {
                    return Ok(());
                }
                if !present() {
                    return Err(no_shared_disk(uuid));
                }
                self.launch(env, inst, host, flavor, Boot::Normal, None)
                    .await
            }
            DriverOp::RevertResize { .. } => {
                let orig = dir.join("disk.resize-orig");
                if orig.exists() {
                    std::fs::rename(&orig, dir.join("disk.qcow2"))
                        .map_err(|e| fault(format!("restoring the disk: {e}")))?;
                }
                if !present() {
                    return Err(no_shared_disk(uuid));
                }
                self.start_reverted(env, inst, host).await
            }
            _ => Ok(()),
        }
    }

    /// Live-migrates the running guest to `dest`, a host of this driver,
    /// over a local TCP port.
    pub(super) async fn do_live_migrate(
        &self,
        inst: &Instance,
        dest: &str,
    ) -> Result<LiveStats, DriverFault> {
        let env = self.env()?;
        let src = self.host_of(inst, None)?;
        self.check_outgoing(inst, &src, dest)?;
        if !self.is_local(dest) {
            return Err(fault(format!(
                "host {dest} is not run by this driver: its agent must prepare the migration"
            )));
        }
        let port = free_port(std::net::Ipv4Addr::LOCALHOST.into())
            .map_err(|e| fault(format!("no free port for the migration: {e}")))?;
        let uri = format!("tcp:127.0.0.1:{port}");
        self.start_incoming(env, inst, dest, &uri, false).await?;
        let res = self.migrate_out(inst, &src, &uri, &[]).await;
        match &res {
            Ok(_) => self.resume_migrated(dest, inst).await,
            Err(_) => self.tear_down_on(dest, &inst.uuid).await,
        }
        res
    }

    /// The source's half when the destination is another agent's: the
    /// migration stream goes to the guest waiting at `uri` there; with
    /// `nbd` (a block migration) the disks are mirrored there first.
    pub(super) async fn do_live_migrate_to(
        &self,
        inst: &Instance,
        dest: &str,
        uri: &str,
        nbd: Option<&str>,
    ) -> Result<LiveStats, DriverFault> {
        let src = self.host_of(inst, None)?;
        self.check_outgoing(inst, &src, dest)?;
        if !uri.starts_with("tcp:") {
            return Err(fault(format!("not a migration address: {uri}")));
        }
        let started = Instant::now();
        let (mirrors, copied) = match nbd {
            Some(nbd) => self.mirror_disks(&src, &inst.uuid, nbd).await?,
            None => (Vec::new(), 0),
        };
        let mirror_ms = started.elapsed().as_millis() as u64;
        let mut stats = self.migrate_out(inst, &src, uri, &mirrors).await?;
        if nbd.is_some() {
            stats.disk_total = copied;
            stats.mirror_ms = mirror_ms;
        }
        Ok(stats)
    }

    fn check_outgoing(&self, inst: &Instance, src: &str, dest: &str) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        if src == dest {
            return Err(fault("the destination is the source host"));
        }
        if !self.running(src, uuid) {
            return Err(fault(format!("instance {uuid} is not running on {src}")));
        }
        Ok(())
    }

    /// The destination's half: the guest, with the same devices on the
    /// same (shared) disks, started on `host` waiting for the migration
    /// stream on a free port of `ip`; its address (`tcp:IP:PORT`). When
    /// this host's instances path is its own and `from` (the source's
    /// agent) is known, the disks are made here and exported over NBD for
    /// the source to mirror (a block migration): their address too; the
    /// guest then stays paused until adopted.
    pub(super) async fn do_prepare_incoming(
        &self,
        inst: &Instance,
        host: &str,
        ip: std::net::IpAddr,
        from: Option<&dyn FileSource>,
    ) -> Result<(String, Option<String>), DriverFault> {
        let env = self.env()?;
        if self.running(host, &inst.uuid) {
            return Err(fault(format!(
                "instance {} already runs on {host}",
                inst.uuid
            )));
        }
        let block = match from {
            Some(src) if self.copies_disks() => Some(src),
            _ => None,
        };
        if block.is_none()
            && !self.inst_dir(&inst.uuid).join("disk.qcow2").exists()
            && root_volume(inst).is_none()
        {
            return Err(no_shared_disk(&inst.uuid));
        }
        let port = free_port(ip).map_err(|e| fault(format!("no free port on {ip}: {e}")))?;
        let uri = match ip {
            std::net::IpAddr::V4(a) => format!("tcp:{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("tcp:[{a}]:{port}"),
        };
        let Some(src) = block else {
            self.start_incoming(env, inst, host, &uri, false).await?;
            return Ok((uri, None));
        };
        let res = async {
            self.prepare_block(env, src, inst).await?;
            self.start_incoming(env, inst, host, &uri, true).await?;
            self.export_disks(host, &inst.uuid, ip).await
        }
        .await;
        match res {
            Ok(nbd) => Ok((uri, Some(nbd))),
            Err(e) => {
                self.discard_incoming(host, &inst.uuid).await;
                Err(e)
            }
        }
    }

    /// A block migration's destination once the memory came: the NBD
    /// exports go and the console history the source kept to the end is
    /// copied (the guest is resumed next).
    pub(super) async fn finish_block(
        &self,
        inst: &Instance,
        host: &str,
        from: Option<&dyn FileSource>,
    ) {
        let Some(src) = from.filter(|_| self.copies_disks()) else {
            return;
        };
        self.unexport_disks(host, &inst.uuid).await;
        if let Err(e) = self.fetch_history(src, &inst.uuid).await {
            tracing::warn!(uuid = %inst.uuid, "copying the console history: {}", e.message);
        }
    }

    /// `start_incoming`: `paused` keeps the guest from running once the
    /// memory came (`-S`), until it is resumed.
    async fn start_incoming(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        dest: &str,
        uri: &str,
        paused: bool,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let _ = std::fs::remove_file(self.console_path(dest, uuid));
        let cd = self.existing_config_drive(uuid);
        let shape = Shape {
            flavor: &inst.flavor,
            boot: &boot_of(inst),
            config_drive: cd,
            incoming: Some(uri.to_string()),
        };
        let mut spec = self.spec(env, inst, dest, shape).await?;
        spec.paused = paused;
        let started = match self.plug(env, inst, dest).await {
            Ok(()) => self.exec(&spec).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            self.tear_down_on(dest, uuid).await;
            return Err(e);
        }
        Ok(())
    }

    /// QMP `migrate` on the source to `uri`; once it completed (and the
    /// disk `mirrors` of a block migration copied the last writes) the
    /// source guest quits and leaves `src` (its console log joins the
    /// history). A failed migration leaves the source running.
    async fn migrate_out(
        &self,
        inst: &Instance,
        src: &str,
        uri: &str,
        mirrors: &[String],
    ) -> Result<LiveStats, DriverFault> {
        let uuid = &inst.uuid;
        let started = Instant::now();
        // Requests left from an earlier migration do not apply to this one.
        self.live_asks.lock().remove(uuid);
        let res = async {
            let mut q = Qmp::connect(&self.qmp_sock(src, uuid), Duration::from_secs(5))
                .await
                .map_err(|e| fault(format!("QMP: {e}")))?;
            q.execute(
                "migrate-set-parameters",
                json!({"max-bandwidth": self.migration_bandwidth(), "downtime-limit": 300}),
            )
            .await
            .map_err(|e| fault(format!("migrate-set-parameters: {e}")))?;
            q.execute("migrate", json!({ "uri": uri }))
                .await
                .map_err(|e| fault(format!("migrate: {e}")))?;
            let st = self.wait_live(&mut q, uuid).await?;
            Self::finish_mirrors(&mut q, mirrors).await?;
            Ok(st)
        }
        .await;
        self.live_asks.lock().remove(uuid);
        if res.is_err() && !mirrors.is_empty() {
            if let Ok(mut q) = Qmp::connect(&self.qmp_sock(src, uuid), Duration::from_secs(5)).await
            {
                Self::cancel_mirrors(&mut q, mirrors).await;
            }
        }
        match res {
            Ok(st) => {
                let _ = qmp::run(&self.qmp_sock(src, uuid), "quit", Value::Null).await;
                self.wait_exit(src, uuid, Duration::from_secs(5)).await;
                self.tear_down_on(src, uuid).await;
                self.leave_host(src, uuid);
                let n = |p: &str| st.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                Ok(LiveStats {
                    total_ms: st
                        .get("total-time")
                        .and_then(Value::as_u64)
                        .unwrap_or(started.elapsed().as_millis() as u64),
                    downtime_ms: st.get("downtime").and_then(Value::as_u64).unwrap_or(0),
                    memory_total: n("/ram/total"),
                    memory_processed: n("/ram/transferred"),
                    ..LiveStats::default()
                })
            }
            Err(e) => {
                // The source keeps running (it may have stopped in the
                // final phase).
                let _ = qmp::run(&self.qmp_sock(src, uuid), "cont", Value::Null).await;
                Err(e)
            }
        }
    }
}

impl QemuDriver {
    /// Bytes per second a live migration's stream may use (Nova's
    /// `[libvirt]live_migration_bandwidth`, MiB/s; 0 is unlimited, which
    /// QEMU is told as 1 GiB/s).
    fn migration_bandwidth(&self) -> u64 {
        match self.cfg.live_migration_bandwidth_mib {
            0 => 1 << 30,
            n => n << 20,
        }
    }

    /// Polls an outgoing live migration until it completes, acting on the
    /// requests made meanwhile (`Driver::live_request`).
    async fn wait_live(&self, q: &mut Qmp, uuid: &str) -> Result<Value, DriverFault> {
        use tracing::Instrument;
        // (the guest's uuid on each line it logs)
        wait_migration(q, "live migration", || self.live_asks.lock().remove(uuid))
            .instrument(tracing::info_span!("guest", %uuid))
            .await
    }

    /// After a live migration the destination's guest runs as the
    /// source's did at the end; one that a force-complete paused is
    /// resumed unless the server itself was paused.
    pub(super) async fn resume_migrated(&self, host: &str, inst: &Instance) {
        if inst.vm_state == VmState::Paused {
            return;
        }
        let sock = self.qmp_sock(host, &inst.uuid);
        let paused = qmp::run(&sock, "query-status", Value::Null)
            .await
            .ok()
            .and_then(|st| st.get("status").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|s| s == "paused" || s == "postmigrate");
        if paused {
            if let Err(e) = qmp::run(&sock, "cont", Value::Null).await {
                tracing::warn!(uuid = %inst.uuid, "resuming a migrated guest: {e}");
            }
        }
    }
}

/// Polls an outgoing migration (live, or the save behind suspend) until it
/// completes; cancels it after five minutes. Between polls it acts on what
/// `asks` hands it: abort cancels the migration (the guest runs on),
/// force-complete pauses the guest and lifts the bandwidth cap (the
/// destination resumes it: `resume_migrated`).
pub(super) async fn wait_migration(
    q: &mut Qmp,
    what: &str,
    mut asks: impl FnMut() -> Option<LiveRequest>,
) -> Result<Value, DriverFault> {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        match asks() {
            Some(LiveRequest::Abort) => {
                q.execute("migrate_cancel", Value::Null)
                    .await
                    .map_err(|e| fault(format!("migrate_cancel: {e}")))?;
                tracing::info!("{what} aborted: cancelling it");
            }
            Some(LiveRequest::ForceComplete) => {
                q.execute("stop", Value::Null)
                    .await
                    .map_err(|e| fault(format!("stop: {e}")))?;
                q.execute(
                    "migrate-set-parameters",
                    json!({"max-bandwidth": 1u64 << 30}),
                )
                .await
                .map_err(|e| fault(format!("migrate-set-parameters: {e}")))?;
                tracing::info!("{what} forced to complete: guest paused, no bandwidth cap");
            }
            None => {}
        }
        let st = q
            .execute("query-migrate", Value::Null)
            .await
            .map_err(|e| fault(format!("query-migrate: {e}")))?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(st),
            Some("cancelled") => return Err(fault(format!("{what} cancelled"))),
            Some("failed") => {
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

/// A move between agents whose instances paths are not shared storage.
fn no_shared_disk(uuid: &str) -> DriverFault {
    fault(format!(
        "the disks of instance {uuid} are not on this host's instances path: \
         moving a guest between agents needs an instances path they share"
    ))
}

pub(super) fn free_port(ip: std::net::IpAddr) -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind((ip, 0))?;
    Ok(l.local_addr()?.port())
}
