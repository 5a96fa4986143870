//! The accelerator probe: decides between KVM and TCG. `/dev/kvm` opening
//! is not enough (a nested or paravirtual KVM may not run stock guests), so
//! KVM is chosen only when a tiny guest — a 64 KiB BIOS ROM that goes from
//! real mode through protected mode into 64-bit long mode with paging, as
//! every x86-64 kernel does, and then writes "K" to the serial port —
//! actually gets there under it. (A real-mode-only probe is not enough: on
//! a nested PVM host it passed while every Linux guest hung on its way to
//! protected mode.)

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
/// At the reset vector: `ljmp 0xF000:0x0000`, to the program at the ROM's
/// first byte (physical 0xF0000).
const RESET_JUMP: [u8; 5] = [0xEA, 0x00, 0x00, 0x00, 0xF0];
/// The probe program, assembled from `probe_rom.S` beside this file
/// (`as --32 -o p.o probe_rom.S && ld -m elf_i386 -Ttext=0 --oformat binary
/// -o p.bin p.o`): prints 'R' (real mode), 'P' (protected mode), then "K\n"
/// from long mode, and halts.
const PROBE_CODE: [u8; 198] = [
    0xFA, 0xBA, 0xF8, 0x03, 0xB0, 0x52, 0xEE, 0xB8, 0x00, 0xF0, 0x8E, 0xD8, 0x66, 0x0F, 0x01, 0x16,
    0xC0, 0x00, 0x0F, 0x20, 0xC0, 0x66, 0x83, 0xC8, 0x01, 0x0F, 0x22, 0xC0, 0x66, 0xEA, 0x24, 0x00,
    0x0F, 0x00, 0x08, 0x00, 0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0, 0x66, 0xBA,
    0xF8, 0x03, 0xB0, 0x50, 0xEE, 0xFC, 0xBF, 0x00, 0x10, 0x00, 0x00, 0x31, 0xC0, 0xB9, 0x00, 0x0C,
    0x00, 0x00, 0xF3, 0xAB, 0xC7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, 0xC7, 0x05,
    0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xC7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00,
    0x00, 0x00, 0x0F, 0x20, 0xE0, 0x83, 0xC8, 0x20, 0x0F, 0x22, 0xE0, 0xB8, 0x00, 0x10, 0x00, 0x00,
    0x0F, 0x22, 0xD8, 0xB9, 0x80, 0x00, 0x00, 0xC0, 0x0F, 0x32, 0x0D, 0x00, 0x01, 0x00, 0x00, 0x0F,
    0x30, 0x0F, 0x20, 0xC0, 0x0D, 0x00, 0x00, 0x00, 0x80, 0x0F, 0x22, 0xC0, 0xEA, 0x93, 0x00, 0x0F,
    0x00, 0x18, 0x00, 0x66, 0xBA, 0xF8, 0x03, 0xB0, 0x4B, 0xEE, 0xB0, 0x0A, 0xEE, 0xF4, 0xEB, 0xFD,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00,
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x92, 0xCF, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xAF, 0x00,
    0x1F, 0x00, 0xA0, 0x00, 0x0F, 0x00,
];

/// The probe BIOS image: the program at the start, the jump to it at the
/// reset vector, 0xFF elsewhere.
fn probe_rom() -> Vec<u8> {
    let mut rom = vec![0xFFu8; ROM_SIZE];
    rom[..PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    rom[RESET_VECTOR..].fill(0);
    rom[RESET_VECTOR..RESET_VECTOR + RESET_JUMP.len()].copy_from_slice(&RESET_JUMP);
    rom
}

/// How far a probe guest got, from what it printed.
fn stage(printed: &[u8]) -> &'static str {
    if printed.contains(&b'P') {
        "it reached protected mode but not long mode"
    } else if printed.contains(&b'R') {
        "it ran in real mode but did not reach protected mode"
    } else {
        "it printed nothing"
    }
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
    let mut printed = Vec::new();
    let seen = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 256];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    printed.extend_from_slice(&buf[..n]);
                    if printed.contains(&b'K') {
                        return true;
                    }
                }
            }
        }
    })
    .await;
    let reached = stage(&printed);
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
            "probe guest under {accel} exited before long mode ({reached}){detail}"
        )),
        Err(_) => Err(format!(
            "probe guest under {accel} did not reach long mode within {timeout:?} ({reached}){detail}"
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
        assert_eq!(&rom[0xFFF0..0xFFF5], &[0xEA, 0x00, 0x00, 0x00, 0xF0]);
        assert_eq!(&rom[..PROBE_CODE.len()], &PROBE_CODE);
        // the GDT pointer at the end names the GDT in the ROM (0xF0000 + 0xA0)
        assert_eq!(&PROBE_CODE[192..], &[0x1F, 0x00, 0xA0, 0x00, 0x0F, 0x00]);
    }

    /// The bytes above are `probe_rom.S` assembled (binutils come with the
    /// C toolchain the build needs).
    #[test]
    fn probe_code_is_the_assembled_source() {
        let dir = std::env::temp_dir().join(format!("rova-probe-asm-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/virt/probe_rom.S");
        let (obj, bin) = (dir.join("p.o"), dir.join("p.bin"));
        let ok = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("binutils (as, ld) are required");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(std::process::Command::new("as")
            .arg("--32")
            .arg("-o")
            .arg(&obj)
            .arg(&src));
        ok(std::process::Command::new("ld")
            .args([
                "-m",
                "elf_i386",
                "-e",
                "start",
                "-Ttext=0",
                "--oformat",
                "binary",
                "-o",
            ])
            .arg(&bin)
            .arg(&obj));
        let built = std::fs::read(&bin).expect("assembled probe");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(built, PROBE_CODE.to_vec());
    }

    #[test]
    fn stages_are_told_apart() {
        assert!(stage(b"").contains("nothing"));
        assert!(stage(b"R").contains("real mode"));
        assert!(stage(b"RP").contains("protected mode but not long mode"));
    }

    /// The probe program itself is right: under TCG it goes through real
    /// and protected mode and prints "K" from long mode.
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
