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
        for inst in env.instances() {
            let Some(host) = inst.host.clone() else {
                continue;
            };
            if self.running(&host, &inst.uuid) {
                if let Err(e) = self.ensure_metadata(env, &host, &inst.uuid) {
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
    /// was ACTIVE (or RESCUED, RESIZED) becomes SHUTOFF, as Nova's
    /// `_sync_power_states` does: the driver reports it, the environment
    /// applies it unless the record changed meanwhile.
    pub(super) async fn sync_power_states(&self) {
        let Ok(env) = self.env() else { return };
        for inst in env.instances() {
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
