//! The server actions on a real guest: spawn, and every [`DriverOp`] —
//! pause/unpause (QMP stop/cont), suspend/resume (the guest state saved to
//! and restored from a file), stop/start, soft and hard reboot, rebuild
//! and evacuate, snapshots and backups, shelve/unshelve, rescue/unrescue
//! and crash dumps; resize and migration are in `migration`. A
//! volume-backed server's root disk is its volume: rebuild, evacuate and
//! unshelve boot it from that volume again (its snapshots are the compute
//! layer's, through the volume service).

use super::launch::{boot_image, boot_of, Boot};
use super::migration::wait_migration;
use super::volumes::root_volume;
use super::{fault, QemuDriver};
use crate::compute::driver::{DriverFault, DriverOp};
use crate::virt::disk;
use crate::virt::env::GuestEnv;
use crate::virt::qmp::Qmp;
use rova_core::model::Instance;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl QemuDriver {
    /// Creates the root disk and boots a new server on its host.
    pub(super) async fn do_spawn(&self, inst: &Instance) -> Result<(), DriverFault> {
        let env = self.env()?;
        let host = self.host_of(inst, None)?;
        let image = boot_image(inst);
        // The instance directory holds the console history and config
        // drive even when the root disk is a volume.
        let dir = self.inst_dir(&inst.uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| fault(format!("creating {}: {e}", dir.display())))?;
        if root_volume(inst).is_none() {
            if image.is_empty() {
                return Err(fault("the server has neither an image nor a boot volume"));
            }
            self.ensure_root(env, inst, &image, &inst.flavor).await?;
        }
        // A fresh console log per server life.
        self.forget_console(&host, &inst.uuid);
        self.launch(env, inst, &host, &inst.flavor, Boot::Normal, None)
            .await
    }

    /// Carries out one server action.
    pub(super) async fn do_perform(
        &self,
        op: &DriverOp,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let env = self.env()?;
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
            DriverOp::Resume => self.resume(env, &host?, inst).await,
            DriverOp::Stop => {
                self.power_off(&host?, uuid).await;
                Ok(())
            }
            DriverOp::Start => {
                let host = host?;
                if self.running(&host, uuid) {
                    return Ok(());
                }
                self.launch(env, inst, &host, &inst.flavor, boot_of(inst), None).await
            }
            DriverOp::Reboot { hard } => self.reboot(env, &host?, inst, *hard).await,
            DriverOp::Rebuild | DriverOp::Evacuate { .. } => {
                let host = match op {
                    DriverOp::Evacuate { dest } => dest.clone(),
                    _ => host?,
                };
                if let Some(old) = &inst.host {
                    self.tear_down_on(old, uuid).await;
                    if *old != host {
                        self.leave_host(old, uuid);
                    }
                }
                // A volume-backed server comes back on its root volume
                // (which a rebuild had re-imaged before this); another
                // gets a new root disk from its image — except an
                // evacuated one whose disk is on storage the hosts share,
                // which boots from that disk (Nova's recreate on shared
                // storage).
                if root_volume(inst).is_none() {
                    let root = self.inst_dir(uuid).join("disk.qcow2");
                    let keep = matches!(op, DriverOp::Evacuate { .. }) && root.exists();
                    if !keep {
                        let _ = std::fs::remove_file(&root);
                        self.ensure_root(env, inst, &inst.image_ref, &inst.flavor)
                            .await?;
                    }
                }
                self.forget_console(&host, uuid);
                let was_stopped = inst
                    .system_metadata
                    .get("rebuild_from_vm_state")
                    .is_some_and(|s| s == "stopped");
                if was_stopped {
                    return Ok(());
                }
                self.launch(env, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::Resize { flavor, dest } | DriverOp::Migrate { flavor, dest } => {
                self.cold_move(env, flavor, dest, inst).await
            }
            DriverOp::RevertResize { dest } => {
                self.revert_resize(env, dest.as_deref(), inst).await
            }
            DriverOp::CreateImage { image_id } | DriverOp::CreateBackup { image_id } => {
                let host = host?;
                self.export_root(env, &host, inst, image_id).await
            }
            DriverOp::Shelve { image_id } => {
                let host = host?;
                self.power_off(&host, uuid).await;
                if let Some(image) = image_id {
                    self.export_root(env, &host, inst, image).await?;
                }
                Ok(())
            }
            DriverOp::Unshelve { dest } => {
                let host = dest.clone();
                // A volume-backed server boots from its volume again; its
                // instance directory (config drive, console history) went
                // with the offload.
                let dir = self.inst_dir(uuid);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| fault(format!("creating {}: {e}", dir.display())))?;
                let root = dir.join("disk.qcow2");
                if root_volume(inst).is_none() && !root.exists() {
                    let image = inst
                        .system_metadata
                        .get("shelved_image_id")
                        .cloned()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| inst.image_ref.clone());
                    self.ensure_root(env, inst, &image, &inst.flavor).await?;
                }
                self.launch(env, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::Rescue { image_id } => {
                let host = host?;
                self.kill(&host, uuid).await;
                let image = image_id.clone().unwrap_or_else(|| boot_image(inst));
                let (base, format) = self.image_file(env, &image).await?;
                let rescue = self.inst_dir(uuid).join("rescue.qcow2");
                let _ = std::fs::remove_file(&rescue);
                disk::create_overlay(&base, &format, &rescue, None)
                    .await
                    .map_err(|e| fault(format!("creating the rescue disk: {e}")))?;
                let mut view = inst.clone();
                view.system_metadata
                    .insert("rova_rescue_image".into(), image);
                self.launch(env, &view, &host, &inst.flavor, Boot::Rescue, None).await
            }
            DriverOp::Unrescue => {
                let host = host?;
                self.kill(&host, uuid).await;
                let _ = std::fs::remove_file(self.inst_dir(uuid).join("rescue.qcow2"));
                self.launch(env, inst, &host, &inst.flavor, Boot::Normal, None).await
            }
            DriverOp::TriggerCrashDump => {
                let host = host?;
                if !self.running(&host, uuid) {
                    return Err(fault("the guest is not running"));
                }
                self.qmp(&host, uuid, "inject-nmi", Value::Null).await.map(|_| ())
            }
            DriverOp::AttachInterface { port_id, mac } => {
                self.attach_nic(inst, port_id, mac).await
            }
            DriverOp::DetachInterface { port_id } => self.detach_nic(inst, port_id).await,
            DriverOp::AttachVolume {
                volume_id,
                device,
                path,
            } => self.attach_volume(inst, volume_id, device, path).await,
            DriverOp::DetachVolume { volume_id } => self.detach_volume(inst, volume_id).await,
            DriverOp::SwapVolume {
                old,
                new,
                old_path,
                new_path,
                ..
            } => {
                self.swap_volume(inst, (old, new), (old_path, new_path))
                    .await
            }
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

    pub(super) async fn suspend(&self, host: &str, inst: &Instance) -> Result<(), DriverFault> {
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
        if let Err(e) = wait_migration(&mut q, "saving the guest state", || None).await {
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

    pub(super) async fn resume(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        inst: &Instance,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        let state = self.inst_dir(uuid).join("suspend.state");
        if !state.exists() {
            // Nothing saved (e.g. suspended by an older agent): boot.
            return self
                .launch(env, inst, host, &inst.flavor, boot_of(inst), None)
                .await;
        }
        let uri = format!("exec:cat {}", shell_quote(&state.to_string_lossy()));
        self.launch(env, inst, host, &inst.flavor, boot_of(inst), Some(uri))
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

    pub(super) async fn reboot(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        inst: &Instance,
        hard: bool,
    ) -> Result<(), DriverFault> {
        let uuid = &inst.uuid;
        if !self.running(host, uuid) {
            return self
                .launch(env, inst, host, &inst.flavor, boot_of(inst), None)
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
            self.launch(env, inst, host, &inst.flavor, boot_of(inst), None)
                .await
        } else {
            self.qmp(host, uuid, "system_reset", Value::Null)
                .await
                .map(|_| ())
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
