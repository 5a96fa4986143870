//! Restart safety and the power-state sync: re-attaching to guests a
//! previous agent left running, and reporting (as a [`GuestEvent`]) a
//! guest whose QEMU exited on its own so that its server becomes SHUTOFF.

use super::QemuDriver;
use crate::virt::env::GuestEvent;
use crate::virt::qmp;
use rova_core::states::VmState;
use serde_json::Value;

impl QemuDriver {
    /// Re-attaches to the guests a previous agent left running: restarts
    /// their metadata listeners; guests whose process is gone are left to
    /// the power-state sync.
    pub(super) async fn attach_all(&self) {
        let Ok(env) = self.env() else { return };
        for inst in env.instances().await {
            let Some(host) = inst.host.clone() else {
                continue;
            };
            if self.running(&host, &inst.uuid) {
                // The bridge data path serves the metadata per network.
                if self.datapath.is_none() {
                    if let Err(e) = self.ensure_metadata(env, &host, &inst.uuid) {
                        tracing::warn!(uuid = %inst.uuid, "re-attach: {}", e.message);
                    }
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
    /// was ACTIVE (or RESCUED, RESIZED) becomes SHUTOFF, as Nova's
    /// `_sync_power_states` does: the driver reports it, the environment
    /// applies it unless the record changed meanwhile.
    pub(super) async fn sync_power_states(&self) {
        let Ok(env) = self.env() else { return };
        for inst in env.instances().await {
            if inst.task_state.is_some() {
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
            let uuid = inst.uuid.clone();
            let changed = env
                .report(GuestEvent::PoweredOff {
                    uuid: uuid.clone(),
                    host: host.clone(),
                    was: inst.vm_state,
                    seen_at: env.now(),
                })
                .await;
            if changed {
                tracing::info!(%uuid, "the guest powered off; the server is now SHUTOFF");
                self.stop_metadata(&host, &uuid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QemuConfig;
    use crate::virt::stub_env::{instance, scratch_dir, stub_now, StubEnv};
    use rova_core::states::TaskState;

    /// A guest whose process is gone is reported to the environment as
    /// powered off — only when its server was running and idle — and a
    /// driver without an environment does nothing.
    #[tokio::test]
    async fn a_guest_whose_process_is_gone_is_reported_powered_off() {
        let dir = scratch_dir("qemu-sync");
        let driver = QemuDriver::new(QemuConfig::default(), &dir);
        driver.sync_power_states().await;

        let gone = instance(
            "00000000-0000-4000-8000-000000000001",
            "gone",
            "rova-qemu-1",
        );
        let mut busy = instance(
            "00000000-0000-4000-8000-000000000002",
            "busy",
            "rova-qemu-1",
        );
        busy.task_state = Some(TaskState::Rebooting);
        let mut stopped = instance("00000000-0000-4000-8000-000000000003", "off", "rova-qemu-1");
        stopped.vm_state = VmState::Stopped;
        let env = StubEnv::with(vec![gone.clone(), busy, stopped]);
        driver.set_env(env.clone());
        driver.sync_power_states().await;
        assert_eq!(
            env.events.lock().clone(),
            vec![GuestEvent::PoweredOff {
                uuid: gone.uuid.clone(),
                host: "rova-qemu-1".into(),
                was: VmState::Active,
                seen_at: stub_now(),
            }]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
