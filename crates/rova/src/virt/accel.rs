//! The accelerator probe: decides between KVM and TCG. `/dev/kvm` opening
//! is not enough (a nested or paravirtual KVM may not run stock guests), so
//! KVM is chosen only when a tiny real-mode guest — a 64 KiB BIOS ROM that
//! writes "K" to the serial port — actually runs under it.

pub use crate::virt::vmspec::Accel;
use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!(
                "unknown accelerator choice {other:?} (expected auto, kvm or tcg)"
            )),
        }
    }
}

impl fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        })
    }
}

/// How long the probe guest gets to print its mark.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The probe ROM size (a valid x86 BIOS size).
const ROM_SIZE: usize = 64 * 1024;
/// Offset of the reset vector (physical 0xFFFFFFF0) inside the ROM.
const RESET_VECTOR: usize = 0xFFF0;
/// Real-mode code at the reset vector:
/// `mov dx,0x3f8; mov al,'K'; out dx,al; mov al,0x0a; out dx,al; cli; hlt; jmp $-1`.
const PROBE_CODE: [u8; 13] = [
    0xBA, 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
    0xB0, b'K', // mov al, 'K'
    0xEE, // out dx, al
    0xB0, 0x0A, // mov al, '\n'
    0xEE, // out dx, al
    0xFA, // cli
    0xF4, // hlt
    0xEB, 0xFD, // jmp back to hlt
];

/// The probe BIOS image: padding with the code in the last 16 bytes.
fn probe_rom() -> Vec<u8> {
    let mut rom = vec![0xFFu8; ROM_SIZE];
    rom[RESET_VECTOR..RESET_VECTOR + 16].fill(0);
    rom[RESET_VECTOR..RESET_VECTOR + PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    rom
}

/// Auto: KVM only when /dev/kvm opens AND a tiny guest really runs under
/// it; else TCG. Returns the accelerator and a human-readable reason.
pub async fn resolve(binary: &str, choice: AccelChoice) -> (Accel, String) {
    match choice {
        AccelChoice::Tcg => (Accel::Tcg, "TCG requested by configuration".to_string()),
        AccelChoice::Kvm => match probe_kvm(binary).await {
            Ok(()) => (
                Accel::Kvm,
                "KVM requested by configuration; the KVM probe guest ran".to_string(),
            ),
            Err(e) => (
                Accel::Kvm,
                format!("KVM requested by configuration although the KVM probe failed: {e}"),
            ),
        },
        AccelChoice::Auto => {
            if let Err(e) = open_dev_kvm() {
                return (
                    Accel::Tcg,
                    format!("using TCG: /dev/kvm is not usable ({e})"),
                );
            }
            match probe_kvm(binary).await {
                Ok(()) => (
                    Accel::Kvm,
                    "using KVM: /dev/kvm opens and the probe guest ran under it".to_string(),
                ),
                Err(e) => (
                    Accel::Tcg,
                    format!("using TCG: /dev/kvm opens but the KVM probe failed: {e}"),
                ),
            }
        }
    }
}

fn open_dev_kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Runs the probe guest under KVM (`-cpu host`); Ok when it printed "K".
pub async fn probe_kvm(binary: &str) -> Result<(), String> {
    run_probe(binary, "kvm", Some("host"), PROBE_TIMEOUT).await
}

/// Boots the probe ROM with `-accel <accel>` and waits up to `timeout` for
/// "K" on its serial port (stdout). The process is killed afterwards.
async fn run_probe(
    binary: &str,
    accel: &str,
    cpu: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let rom_path =
        std::env::temp_dir().join(format!("rova-accel-probe-{}.rom", uuid::Uuid::new_v4()));
    tokio::fs::write(&rom_path, probe_rom())
        .await
        .map_err(|e| format!("cannot write probe ROM {}: {e}", rom_path.display()))?;
    let result = run_probe_rom(binary, accel, cpu, &rom_path, timeout).await;
    let _ = tokio::fs::remove_file(&rom_path).await;
    result
}

async fn run_probe_rom(
    binary: &str,
    accel: &str,
    cpu: Option<&str>,
    rom: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(["-accel", accel]);
    if let Some(cpu) = cpu {
        cmd.args(["-cpu", cpu]);
    }
    cmd.args([
        "-M",
        "pc",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .arg("-bios")
    .arg(rom)
    .args(["-serial", "stdio", "-m", "16"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("probe child has no pipes".to_string());
    };
    let err_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        buf
    });
    // Read stdout until the mark shows up, the process exits, or time runs out.
    let seen = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 256];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if buf[..n].contains(&b'K') => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let stderr = tokio::time::timeout(Duration::from_secs(2), err_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    match seen {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "probe guest under {accel} exited without output{detail}"
        )),
        Err(_) => Err(format!(
            "probe guest under {accel} printed nothing within {timeout:?}{detail}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = "qemu-system-x86_64";

    #[test]
    fn choice_parses() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("KVM".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        assert!("xen".parse::<AccelChoice>().is_err());
        assert_eq!(AccelChoice::Auto.to_string(), "auto");
    }

    #[test]
    fn rom_layout() {
        let rom = probe_rom();
        assert_eq!(rom.len(), 65536);
        assert_eq!(
            &rom[0xFFF0..0xFFFD],
            &[0xBA, 0xF8, 0x03, 0xB0, 0x4B, 0xEE, 0xB0, 0x0A, 0xEE, 0xFA, 0xF4, 0xEB, 0xFD]
        );
    }

    /// The probe program itself is right: under TCG it prints "K".
    #[tokio::test]
    async fn probe_rom_prints_k_under_tcg() {
        run_probe(QEMU, "tcg", None, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| {
                panic!("the probe guest must print K under TCG ({QEMU} is required): {e}")
            });
    }

    #[tokio::test]
    async fn probe_failure_is_reported() {
        let err = run_probe(
            "rova-no-such-qemu-binary",
            "tcg",
            None,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(err.contains("rova-no-such-qemu-binary"), "{err}");
        // A bogus accelerator makes QEMU exit; its stderr is in the error.
        let err = run_probe(QEMU, "nosuchaccel", None, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.contains("nosuchaccel"), "{err}");
    }

    #[tokio::test]
    async fn resolve_gives_an_accel_and_a_reason() {
        let (accel, reason) = resolve(QEMU, AccelChoice::Auto).await;
        eprintln!("resolve(auto) on this machine: {accel} ({reason})");
        assert!(!reason.is_empty());
        assert!(
            (accel == Accel::Kvm && reason.contains("using KVM"))
                || (accel == Accel::Tcg && reason.contains("using TCG")),
            "{accel}: {reason}"
        );
        let (accel, reason) = resolve(QEMU, AccelChoice::Tcg).await;
        assert_eq!(accel, Accel::Tcg);
        assert!(reason.contains("TCG"));
        // An explicit KVM choice is honoured whatever the probe says.
        let (accel, reason) = resolve(QEMU, AccelChoice::Kvm).await;
        assert_eq!(accel, Accel::Kvm);
        assert!(reason.contains("probe"), "{reason}");
    }
}
