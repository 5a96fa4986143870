//! NICs plugged into and pulled out of a running guest on the bridge
//! data path (`os-interface` attach and detach): the port's tap is made
//! on the guest's host, then QMP `netdev_add` + `device_add` give the
//! guest a virtio-net device with the port's MAC; detaching asks the guest
//! to let go (`device_del`, waiting for `DEVICE_DELETED`), then removes
//! the netdev and the tap. A guest that is not running only has its
//! record changed: its next start plugs what its record says.

use super::volumes::{has_device, DETACH_TIMEOUT};
use super::{fault, QemuDriver};
use crate::compute::driver::DriverFault;
use crate::virt::datapath::{nic_id, Datapath};
use crate::virt::qmp::Qmp;
use rova_core::model::Instance;
use serde_json::json;
use std::time::Duration;

impl QemuDriver {
    fn datapath_or_501(&self) -> Result<&Datapath, DriverFault> {
        self.datapath.as_ref().ok_or_else(|| DriverFault {
            code: 501,
            message: "The requested functionality is not supported.".into(),
            details: "NICs are hot-plugged on the bridge data path only (--qemu-network bridge)"
                .into(),
        })
    }

    /// Plugs port `port_id` (already among the instance's VIFs) into the
    /// running guest.
    pub(super) async fn attach_nic(
        &self,
        inst: &Instance,
        port_id: &str,
        mac: &str,
    ) -> Result<(), DriverFault> {
        let dp = self.datapath_or_501()?;
        let env = self.env()?;
        let Some(host) = inst.host.as_deref() else {
            return Ok(());
        };
        if !self.running(host, &inst.uuid) {
            return Ok(());
        }
        let plug = dp
            .plug_port(env, inst, host, port_id)
            .await
            .map_err(|e| fault(format!("plugging port {port_id}: {e}")))?;
        let id = nic_id(port_id);
        let res = async {
            let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
                .await
                .map_err(|e| fault(format!("QMP: {e}")))?;
            q.execute(
                "netdev_add",
                json!({"type": "tap", "id": format!("net-{id}"), "ifname": plug.tap,
                       "script": "no", "downscript": "no"}),
            )
            .await
            .map_err(|e| fault(format!("netdev_add for port {port_id}: {e}")))?;
            let added = q
                .execute(
                    "device_add",
                    json!({"driver": "virtio-net-pci", "netdev": format!("net-{id}"),
                           "id": format!("nic-{id}"), "mac": mac}),
                )
                .await;
            if let Err(e) = added {
                let _ = q
                    .execute("netdev_del", json!({"id": format!("net-{id}")}))
                    .await;
                return Err(fault(format!("device_add for port {port_id}: {e}")));
            }
            Ok(())
        }
        .await;
        if res.is_err() {
            dp.unplug_port(env, host, &inst.uuid, port_id).await;
        }
        res
    }

    /// Pulls port `port_id`'s NIC out of the running guest and unplugs
    /// its tap. A guest that does not let go in time is a fault.
    pub(super) async fn detach_nic(
        &self,
        inst: &Instance,
        port_id: &str,
    ) -> Result<(), DriverFault> {
        let dp = self.datapath_or_501()?;
        let env = self.env()?;
        let Some(host) = inst.host.as_deref() else {
            return Ok(());
        };
        if self.running(host, &inst.uuid) {
            let id = nic_id(port_id);
            let dev = format!("nic-{id}");
            let mut q = Qmp::connect(&self.qmp_sock(host, &inst.uuid), Duration::from_secs(5))
                .await
                .map_err(|e| fault(format!("QMP: {e}")))?;
            if has_device(&mut q, &dev).await? {
                q.execute("device_del", json!({"id": dev}))
                    .await
                    .map_err(|e| fault(format!("device_del for port {port_id}: {e}")))?;
                let until = tokio::time::Instant::now() + DETACH_TIMEOUT;
                loop {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        return Err(DriverFault::new(
                            format!("Failed to detach network adapter device for port {port_id}: the guest did not release it"),
                            format!("device_del {dev}: no DEVICE_DELETED within {}s", DETACH_TIMEOUT.as_secs()),
                        ));
                    }
                    match q.wait_event("DEVICE_DELETED", left).await {
                        Ok(ev) if ev["data"]["device"].as_str() == Some(dev.as_str()) => break,
                        Ok(_) => continue,
                        Err(e) => return Err(fault(format!("waiting for {dev} to go: {e}"))),
                    }
                }
            }
            // The netdev may be gone with the device already.
            let _ = q
                .execute("netdev_del", json!({"id": format!("net-{id}")}))
                .await;
        }
        dp.unplug_port(env, host, &inst.uuid, port_id).await;
        Ok(())
    }
}
