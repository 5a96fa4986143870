//! The QEMU command line as data: `VmSpec` describes one guest (machine,
//! accelerator, CPU/memory, direct kernel boot, disks, serial/QMP/VNC
//! sockets, the slirp network with the metadata forward or taps on
//! bridges) and `argv()`
//! renders it, escaping every value embedded in a comma-separated option.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which QEMU accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!(
                "unknown accelerator {other:?} (expected kvm or tcg)"
            )),
        }
    }
}

/// One disk attached as a virtio-blk PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
    /// Visible to the guest as `/sys/block/vdX/serial`.
    pub serial: String,
    pub readonly: bool,
    /// Its drive id, when it has to be found again later (a volume's, so
    /// it can be unplugged); otherwise `disk<index>`. The device is `v`
    /// and the drive id.
    pub id: Option<String>,
    /// Its PCI slot, when it must not depend on the order devices were
    /// added in (a volume plugged in while the guest ran has to be in the
    /// same slot when the guest is started again from saved state or
    /// migrated: the state names devices by their PCI address).
    pub pci_slot: Option<u8>,
}

/// One NIC on a tap: netdev `net-<id>`, device `nic-<id>` (the ids a
/// hot-unplug names it by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNic {
    pub tap: String,
    pub mac: String,
    pub id: String,
}

/// Everything QEMU needs to start one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The emulator, e.g. `qemu-system-x86_64` (not part of `argv()`).
    pub binary: String,
    pub name: String,
    pub uuid: String,
    pub accel: Accel,
    /// `-cpu` when set.
    pub cpu_model: Option<String>,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Direct kernel boot when set; `None` boots the first disk through
    /// the BIOS (that disk gets `bootindex=0`).
    pub kernel: Option<PathBuf>,
    /// Only used with a kernel.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (only with a kernel; omitted when empty).
    pub append: String,
    /// Attached in order, each as `virtio-blk-pci` with its serial; drive
    /// ids are `VmSpec::drive_id(index)`.
    pub disks: Vec<Disk>,
    /// Serial console: a listening unix socket (for a console proxy) that
    /// also appends everything to `serial_log`.
    pub serial_socket: PathBuf,
    pub serial_log: PathBuf,
    pub qmp_socket: PathBuf,
    /// VNC on a unix socket plus a VGA adapter; `None` means no display.
    pub vnc_socket: Option<PathBuf>,
    pub mac: Option<String>,
    /// The guest's NICs on the bridge data path, in order. Empty means
    /// QEMU user networking with `mac` and the metadata forward.
    pub taps: Vec<TapNic>,
    /// Programs the emulator runs under (`ip netns exec NS`), if any; not
    /// part of `argv()`.
    pub wrapper: Vec<String>,
    /// Shell command QEMU runs per guest connection to
    /// 169.254.169.254:80, e.g. `socat - UNIX-CONNECT:/x/md.sock`.
    pub metadata_connector: Option<String>,
    pub pidfile: PathBuf,
    pub daemonize: bool,
    /// `-incoming <uri>` (restore or migration target).
    pub incoming: Option<String>,
    /// `-S`: the guest does not run until told to (`cont`) — a block
    /// migration's destination waits for its disks' last writes.
    pub paused: bool,
}

/// Doubles every comma so `s` can sit inside a comma-separated QEMU option
/// value (QEMU's own escape for a literal comma).
pub fn escape_opt(s: &str) -> String {
    s.replace(',', ",,")
}

fn esc_path(p: &Path) -> String {
    escape_opt(&p.to_string_lossy())
}

impl VmSpec {
    /// The QEMU drive id of the disk at `index` in `disks` (what QMP block
    /// commands name as `device`).
    pub fn drive_id(index: usize) -> String {
        format!("disk{index}")
    }

    /// The command line, without the binary.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::with_capacity(64);
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));

        push(&["-machine", "pc"]);
        push(&["-nodefaults", "-no-user-config", "-display", "none"]);
        push(&["-name", &format!("guest={}", escape_opt(&self.name))]);
        push(&["-uuid", &self.uuid]);
        push(&["-accel", &self.accel.to_string()]);
        if let Some(cpu) = &self.cpu_model {
            push(&["-cpu", cpu]);
        }
        push(&["-smp", &self.vcpus.max(1).to_string()]);
        push(&["-m", &format!("{}M", self.memory_mb)]);

        // Direct kernel boot. These options take the value verbatim (they
        // are not comma-separated option lists), so no escaping.
        if let Some(kernel) = &self.kernel {
            push(&["-kernel", &kernel.to_string_lossy()]);
            if let Some(initrd) = &self.initrd {
                push(&["-initrd", &initrd.to_string_lossy()]);
            }
            if !self.append.is_empty() {
                push(&["-append", &self.append]);
            }
        }

        for (i, d) in self.disks.iter().enumerate() {
            let id = d.id.clone().unwrap_or_else(|| Self::drive_id(i));
            let mut drive = format!(
                "file={},if=none,id={id},format={}",
                esc_path(&d.path),
                escape_opt(&d.format)
            );
            if d.readonly {
                drive.push_str(",readonly=on");
            }
            push(&["-drive", &drive]);
            let mut dev = format!(
                "virtio-blk-pci,drive={id},id=v{id},serial={}",
                escape_opt(&d.serial)
            );
            if let Some(slot) = d.pci_slot {
                dev.push_str(&format!(",addr={slot:#04x}"));
            }
            if i == 0 && self.kernel.is_none() {
                dev.push_str(",bootindex=0");
            }
            push(&["-device", &dev]);
        }

        push(&[
            "-chardev",
            &format!(
                "socket,id=ser0,path={},server=on,wait=off,logfile={},logappend=on",
                esc_path(&self.serial_socket),
                esc_path(&self.serial_log)
            ),
        ]);
        push(&["-serial", "chardev:ser0"]);
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", esc_path(&self.qmp_socket)),
        ]);

        if let Some(vnc) = &self.vnc_socket {
            push(&["-vnc", &format!("unix:{}", esc_path(vnc))]);
            push(&["-device", "VGA"]);
        }

        if self.taps.is_empty() {
            let mut netdev = "user,id=n0,net=169.254.0.0/16".to_string();
            if let Some(cmd) = &self.metadata_connector {
                netdev.push_str(",guestfwd=tcp:169.254.169.254:80-cmd:");
                netdev.push_str(&escape_opt(cmd));
            }
            push(&["-netdev", &netdev]);
            let mut nic = "virtio-net-pci,netdev=n0".to_string();
            if let Some(mac) = &self.mac {
                nic.push_str(",mac=");
                nic.push_str(&escape_opt(mac));
            }
            push(&["-device", &nic]);
        }
        for nic in &self.taps {
            let id = escape_opt(&nic.id);
            push(&[
                "-netdev",
                &format!(
                    "tap,id=net-{id},ifname={},script=no,downscript=no",
                    escape_opt(&nic.tap)
                ),
            ]);
            push(&[
                "-device",
                &format!(
                    "virtio-net-pci,netdev=net-{id},id=nic-{id},mac={}",
                    escape_opt(&nic.mac)
                ),
            ]);
        }
        push(&["-device", "virtio-rng-pci"]);

        push(&["-pidfile", &self.pidfile.to_string_lossy()]);
        if self.daemonize {
            push(&["-daemonize"]);
        }
        if let Some(uri) = &self.incoming {
            push(&["-incoming", uri]);
        }
        if self.paused {
            push(&["-S"]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            binary: "qemu-system-x86_64".into(),
            name: "vm-1".into(),
            uuid: "0b5f8f2e-8a1c-4f1e-9d55-7d1f6c3b2a10".into(),
            accel: Accel::Tcg,
            cpu_model: None,
            vcpus: 2,
            memory_mb: 256,
            kernel: Some("/g/vmlinuz".into()),
            initrd: Some("/g/initramfs.cpio.gz".into()),
            append: "console=ttyS0 panic=-1".into(),
            disks: vec![
                Disk {
                    path: "/r/disk.qcow2".into(),
                    format: "qcow2".into(),
                    serial: "root".into(),
                    readonly: false,
                    id: None,
                    pci_slot: None,
                },
                Disk {
                    path: "/r/config,drive.iso".into(),
                    format: "raw".into(),
                    serial: "config".into(),
                    readonly: true,
                    id: None,
                    pci_slot: None,
                },
            ],
            serial_socket: "/r/serial.sock".into(),
            serial_log: "/r/console.log".into(),
            qmp_socket: "/r/qmp.sock".into(),
            vnc_socket: None,
            mac: Some("fa:16:3e:00:00:01".into()),
            taps: Vec::new(),
            wrapper: Vec::new(),
            metadata_connector: Some("socat - UNIX-CONNECT:/r/md.sock".into()),
            pidfile: "/r/qemu.pid".into(),
            daemonize: false,
            incoming: None,
            paused: false,
        }
    }

    /// The value following flag `flag` (all occurrences).
    fn values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    /// On the bridge data path every NIC is a tap with the port's MAC, in
    /// order, and there is no user-mode network.
    #[test]
    fn argv_taps_replace_user_networking() {
        let mut s = spec();
        let nic = |tap: &str, mac: &str, id: &str| TapNic {
            tap: tap.into(),
            mac: mac.into(),
            id: id.into(),
        };
        s.taps = vec![
            nic("tap0a1b2c3d-4e", "fa:16:3e:00:00:01", "0a1b2c3d"),
            nic("tap99887766-55", "fa:16:3e:00:00:02", "99887766"),
        ];
        let a = s.argv();
        assert_eq!(
            values(&a, "-netdev"),
            [
                "tap,id=net-0a1b2c3d,ifname=tap0a1b2c3d-4e,script=no,downscript=no",
                "tap,id=net-99887766,ifname=tap99887766-55,script=no,downscript=no"
            ]
        );
        let nics: Vec<&str> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("virtio-net"))
            .collect();
        assert_eq!(
            nics,
            [
                "virtio-net-pci,netdev=net-0a1b2c3d,id=nic-0a1b2c3d,mac=fa:16:3e:00:00:01",
                "virtio-net-pci,netdev=net-99887766,id=nic-99887766,mac=fa:16:3e:00:00:02"
            ]
        );
        assert!(!a.iter().any(|x| x.contains("guestfwd")));
    }

    #[test]
    fn escape_doubles_commas() {
        assert_eq!(escape_opt("a,b"), "a,,b");
        assert_eq!(escape_opt(",,"), ",,,,");
        assert_eq!(escape_opt("plain/path"), "plain/path");
        assert_eq!(escape_opt(""), "");
    }

    #[test]
    fn accel_parse_and_display() {
        assert_eq!("kvm".parse::<Accel>().unwrap(), Accel::Kvm);
        assert_eq!("TCG".parse::<Accel>().unwrap(), Accel::Tcg);
        assert!("hvf".parse::<Accel>().is_err());
        assert_eq!(Accel::Kvm.to_string(), "kvm");
        assert_eq!(Accel::Tcg.to_string(), "tcg");
    }

    #[test]
    fn argv_core_fragments() {
        let a = spec().argv();
        assert_ne!(a[0], "qemu-system-x86_64", "binary is not part of argv");
        assert_eq!(values(&a, "-machine"), ["pc"]);
        for f in ["-nodefaults", "-no-user-config"] {
            assert!(a.iter().any(|x| x == f), "{f} missing: {a:?}");
        }
        assert!(!a.iter().any(|x| x == "-daemonize"));
        assert_eq!(values(&a, "-display"), ["none"]);
        assert_eq!(values(&a, "-name"), ["guest=vm-1"]);
        assert_eq!(
            values(&a, "-uuid"),
            ["0b5f8f2e-8a1c-4f1e-9d55-7d1f6c3b2a10"]
        );
        assert_eq!(values(&a, "-accel"), ["tcg"]);
        assert!(values(&a, "-cpu").is_empty());
        assert_eq!(values(&a, "-smp"), ["2"]);
        assert_eq!(values(&a, "-m"), ["256M"]);
        assert_eq!(values(&a, "-kernel"), ["/g/vmlinuz"]);
        assert_eq!(values(&a, "-initrd"), ["/g/initramfs.cpio.gz"]);
        assert_eq!(values(&a, "-append"), ["console=ttyS0 panic=-1"]);
        assert_eq!(values(&a, "-pidfile"), ["/r/qemu.pid"]);
        assert!(values(&a, "-incoming").is_empty());
        assert!(!a.iter().any(|x| x == "-S"), "a guest runs once started");
        assert!(values(&a, "-vnc").is_empty());
        assert!(!values(&a, "-device").contains(&"VGA"));
    }

    #[test]
    fn argv_disks_in_order_with_serials_and_escaping() {
        let a = spec().argv();
        assert_eq!(
            values(&a, "-drive"),
            [
                "file=/r/disk.qcow2,if=none,id=disk0,format=qcow2",
                "file=/r/config,,drive.iso,if=none,id=disk1,format=raw,readonly=on",
            ]
        );
        let devs = values(&a, "-device");
        let blk: Vec<_> = devs
            .iter()
            .filter(|d| d.starts_with("virtio-blk-pci"))
            .collect();
        assert_eq!(
            blk,
            [
                &"virtio-blk-pci,drive=disk0,id=vdisk0,serial=root",
                &"virtio-blk-pci,drive=disk1,id=vdisk1,serial=config"
            ]
        );
        assert_eq!(VmSpec::drive_id(1), "disk1");
    }

    #[test]
    fn argv_serial_qmp_network() {
        let a = spec().argv();
        assert_eq!(
            values(&a, "-chardev"),
            ["socket,id=ser0,path=/r/serial.sock,server=on,wait=off,logfile=/r/console.log,logappend=on"]
        );
        assert_eq!(values(&a, "-serial"), ["chardev:ser0"]);
        assert_eq!(values(&a, "-qmp"), ["unix:/r/qmp.sock,server=on,wait=off"]);
        assert_eq!(
            values(&a, "-netdev"),
            ["user,id=n0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:socat - UNIX-CONNECT:/r/md.sock"]
        );
        let devs = values(&a, "-device");
        assert!(devs.contains(&"virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:01"));
        assert!(devs.contains(&"virtio-rng-pci"));
    }

    #[test]
    fn argv_optional_parts() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        s.cpu_model = Some("host".into());
        s.vnc_socket = Some("/r/vnc,1.sock".into());
        s.mac = None;
        s.metadata_connector = None;
        s.daemonize = true;
        s.incoming = Some("exec:cat /r/save.state".into());
        s.paused = true;
        s.initrd = None;
        s.append = String::new();
        s.name = "a,b".into();
        s.qmp_socket = "/r/q,mp.sock".into();
        s.serial_socket = "/r/s,1.sock".into();
        s.serial_log = "/r/l,1.log".into();
        let a = s.argv();
        assert_eq!(values(&a, "-accel"), ["kvm"]);
        assert_eq!(values(&a, "-cpu"), ["host"]);
        assert_eq!(values(&a, "-vnc"), ["unix:/r/vnc,,1.sock"]);
        assert!(values(&a, "-device").contains(&"VGA"));
        assert_eq!(values(&a, "-netdev"), ["user,id=n0,net=169.254.0.0/16"]);
        // Always a NIC, even without a MAC.
        assert!(values(&a, "-device").contains(&"virtio-net-pci,netdev=n0"));
        assert!(a.iter().any(|x| x == "-daemonize"));
        assert_eq!(values(&a, "-incoming"), ["exec:cat /r/save.state"]);
        assert!(a.iter().any(|x| x == "-S"));
        assert!(values(&a, "-initrd").is_empty());
        assert!(values(&a, "-append").is_empty());
        assert_eq!(values(&a, "-name"), ["guest=a,,b"]);
        assert_eq!(
            values(&a, "-qmp"),
            ["unix:/r/q,,mp.sock,server=on,wait=off"]
        );
        assert_eq!(
            values(&a, "-chardev"),
            ["socket,id=ser0,path=/r/s,,1.sock,server=on,wait=off,logfile=/r/l,,1.log,logappend=on"]
        );
        let mut s = spec();
        s.metadata_connector = Some("sh -c 'a,b'".into());
        assert_eq!(
            values(&s.argv(), "-netdev"),
            ["user,id=n0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:sh -c 'a,,b'"]
        );
    }

    #[test]
    fn argv_bios_boot_without_kernel() {
        let mut s = spec();
        s.kernel = None;
        let a = s.argv();
        assert!(values(&a, "-kernel").is_empty());
        assert!(values(&a, "-initrd").is_empty(), "initrd needs a kernel");
        assert!(values(&a, "-append").is_empty(), "append needs a kernel");
        let devs = values(&a, "-device");
        assert!(devs.contains(&"virtio-blk-pci,drive=disk0,id=vdisk0,serial=root,bootindex=0"));
        assert!(devs.contains(&"virtio-blk-pci,drive=disk1,id=vdisk1,serial=config"));
    }

    /// QEMU itself accepts the rendered command line, escaped commas in
    /// every path included: the guest comes up (a zero-filled "kernel" is
    /// loaded as an old-style image and just spins), its sockets and pidfile
    /// appear at the unescaped paths, and QMP reports the name and disks.
    #[tokio::test]
    async fn real_qemu_accepts_argv() {
        use crate::virt::qmp::Qmp;
        use serde_json::Value;
        use std::time::Duration;
        let dir = std::env::temp_dir().join(format!("rova-vmspec,{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("d,isk.raw");
        std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, vec![0u8; 64 * 1024]).unwrap();
        let mut s = spec();
        s.name = "vm,one".into();
        s.memory_mb = 64;
        s.vcpus = 1;
        s.kernel = Some(kernel);
        s.initrd = None;
        s.disks = vec![Disk {
            path: disk,
            format: "raw".into(),
            serial: "d0".into(),
            readonly: true,
            id: None,
            pci_slot: None,
        }];
        s.qmp_socket = dir.join("qmp.sock");
        s.serial_socket = dir.join("serial.sock");
        s.serial_log = dir.join("console.log");
        s.vnc_socket = Some(dir.join("vnc.sock"));
        s.metadata_connector = Some(format!(
            "socat - UNIX-CONNECT:{}",
            dir.join("md.sock").display()
        ));
        s.pidfile = dir.join("qemu.pid");
        let mut child = tokio::process::Command::new(&s.binary)
            .args(s.argv())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} is required for this test: {e}", s.binary));
        let mut q = match Qmp::connect(&s.qmp_socket, Duration::from_secs(15)).await {
            Ok(q) => q,
            Err(e) => {
                child.kill().await.ok();
                let out = child.wait_with_output().await.unwrap();
                panic!("{e}; qemu: {}", String::from_utf8_lossy(&out.stderr));
            }
        };
        let name = q.execute("query-name", Value::Null).await.unwrap();
        assert_eq!(name["name"], "vm,one");
        let blocks = q.execute("query-block", Value::Null).await.unwrap();
        let b0 = &blocks[0];
        assert_eq!(b0["device"], "disk0", "{blocks}");
        assert_eq!(b0["inserted"]["ro"], true, "{blocks}");
        assert!(
            b0["inserted"]["file"]
                .as_str()
                .unwrap()
                .ends_with("d,isk.raw"),
            "{blocks}"
        );
        assert!(s.serial_socket.exists());
        assert!(s.vnc_socket.as_ref().unwrap().exists());
        assert!(s.serial_log.exists());
        let pid: u32 = std::fs::read_to_string(&s.pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(Some(pid), child.id());
        q.execute("quit", Value::Null).await.unwrap();
        let st = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(st.success());
        std::fs::remove_dir_all(&dir).ok();
    }
}
