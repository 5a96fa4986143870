//! Launching a guest: the [`VmSpec`] of its QEMU process (vCPUs and RAM,
//! the disks in boot order, kernel and initramfs, the serial, VNC, QMP and
//! metadata sockets, the accelerator) and starting it on a host.

use super::volumes::{data_volumes, root_volume};
use super::{fault, QemuDriver};
use crate::compute::driver::DriverFault;
use crate::virt::env::GuestEnv;
use crate::virt::vmspec::{Accel, Disk, TapNic, VmSpec};
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::VmState;
use std::path::PathBuf;
use std::sync::Arc;

/// How a guest is started: its size, disks, config drive and whether it
/// waits for incoming state.
pub(super) struct Shape<'a> {
    pub(super) flavor: &'a FlavorSnapshot,
    pub(super) boot: &'a Boot,
    pub(super) config_drive: Option<PathBuf>,
    pub(super) incoming: Option<String>,
}

/// Which disks a guest boots with.
pub(super) enum Boot {
    /// Its own root disk.
    Normal,
    /// The rescue image first, its own disk attached second.
    Rescue,
}

impl QemuDriver {
    /// The QEMU process of `inst` on `host` (sockets and runtime state
    /// directories made, the metadata listener running).
    pub(super) async fn spec(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
        shape: Shape<'_>,
    ) -> Result<VmSpec, DriverFault> {
        let Shape {
            flavor,
            boot,
            config_drive,
            incoming,
        } = shape;
        let uuid = &inst.uuid;
        let dir = self.inst_dir(uuid);
        let socks = self.sock_dir(host, uuid);
        let state = self.state_dir(host, uuid);
        for d in [&socks, &state] {
            std::fs::create_dir_all(d)
                .map_err(|e| fault(format!("creating {}: {e}", d.display())))?;
        }
        // The sockets (metadata, consoles, QMP) are for this service only:
        // the socket directory under the shared temp dir is private.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.run_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fault(format!("securing {}: {e}", self.run_dir.display())))?;
        }
        // User networking forwards the metadata address to a listener of
        // the guest's own; the bridge data path serves it per network.
        let md = match &self.datapath {
            None => Some(self.ensure_metadata(env, host, uuid)?),
            Some(_) => None,
        };
        let idx = crate::virt::datapath::host_index(host);
        let taps: Vec<TapNic> = match &self.datapath {
            None => Vec::new(),
            Some(_) => inst
                .vifs
                .iter()
                .map(|v| TapNic {
                    tap: crate::virt::datapath::tap_name(&v.port_id, idx),
                    mac: v.mac.clone(),
                    id: crate::virt::datapath::nic_id(&v.port_id),
                })
                .collect(),
        };
        let wrapper = self
            .datapath
            .as_ref()
            .map(|dp| dp.exec_prefix())
            .unwrap_or_default();
        // A volume-backed server's root disk is its boot volume.
        let root = root_volume(inst).unwrap_or_else(|| Disk {
            path: dir.join("disk.qcow2"),
            format: "qcow2".into(),
            serial: "root".into(),
            readonly: false,
            id: None,
            pci_slot: None,
        });
        let (image_for_boot, mut disks) = match boot {
            Boot::Normal => (boot_image(inst), vec![root]),
            Boot::Rescue => {
                let rescue_image = inst
                    .system_metadata
                    .get("rova_rescue_image")
                    .cloned()
                    .unwrap_or_else(|| boot_image(inst));
                let rescue = Disk {
                    path: dir.join("rescue.qcow2"),
                    format: "qcow2".into(),
                    serial: "rescue".into(),
                    readonly: false,
                    id: None,
                    pci_slot: None,
                };
                (rescue_image, vec![rescue, root])
            }
        };
        // Flavor ephemeral and swap disks, when the flavor has them.
        for (file, serial) in [("disk.eph0", "ephemeral0"), ("disk.swap", "swap")] {
            let path = dir.join(file);
            if path.exists() {
                disks.push(Disk {
                    path,
                    format: "qcow2".into(),
                    serial: serial.into(),
                    readonly: false,
                    id: None,
                    pci_slot: None,
                });
            }
        }
        disks.extend(data_volumes(inst));
        if let Some(cd) = config_drive {
            disks.push(Disk {
                path: cd,
                format: "raw".into(),
                serial: "config-2".into(),
                readonly: true,
                id: None,
                pci_slot: None,
            });
        }
        let (kernel, initrd, append) = self.boot_files(env, &image_for_boot, inst).await?;
        let (accel, _) = self.accel();
        let cpu_model = self.cfg.cpu_model.clone().or_else(|| match accel {
            Accel::Kvm => Some("host".into()),
            Accel::Tcg => None,
        });
        // Leftover sockets of a previous process would make QEMU fail.
        for s in ["qmp.sock", "serial.sock", "vnc.sock"] {
            let _ = std::fs::remove_file(socks.join(s));
        }
        Ok(VmSpec {
            binary: self.cfg.binary.clone(),
            name: format!("instance-{:08x}", inst.id),
            uuid: uuid.clone(),
            accel,
            cpu_model,
            vcpus: flavor.vcpus.max(1),
            memory_mb: flavor.ram.max(64),
            kernel,
            initrd,
            append,
            disks,
            serial_socket: socks.join("serial.sock"),
            serial_log: state.join("console.log"),
            qmp_socket: socks.join("qmp.sock"),
            vnc_socket: Some(socks.join("vnc.sock")),
            mac: inst.vifs.first().map(|v| v.mac.clone()),
            taps,
            wrapper,
            metadata_connector: md.map(|md| format!("socat - UNIX-CONNECT:{}", md.display())),
            pidfile: state.join("qemu.pid"),
            daemonize: true,
            incoming,
            paused: false,
        })
    }

    /// Launches the guest on `host` (building the config drive afresh).
    pub(super) async fn launch(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
        flavor: &FlavorSnapshot,
        boot: Boot,
        incoming: Option<String>,
    ) -> Result<(), DriverFault> {
        if self.running(host, &inst.uuid) {
            return Err(fault(format!(
                "instance {} is already running on {host}",
                inst.uuid
            )));
        }
        self.ensure_flavor_disks(&inst.uuid, flavor).await?;
        let cd = self.config_drive(env, inst).await?;
        let shape = Shape {
            flavor,
            boot: &boot,
            config_drive: cd,
            incoming,
        };
        let spec = self.spec(env, inst, host, shape).await?;
        self.plug(env, inst, host).await?;
        self.exec(&spec).await
    }
}

/// The image a server boots from.
pub(super) fn boot_image(inst: &Instance) -> String {
    inst.image_ref.clone()
}

pub(super) fn boot_of(inst: &Instance) -> Boot {
    if inst.vm_state == VmState::Rescued {
        Boot::Rescue
    } else {
        Boot::Normal
    }
}
