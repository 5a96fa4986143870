//! Disk images through `qemu-img`: inspect (`info`), create blank images
//! and qcow2 overlays on a base, grow, convert, and sniff the format of a
//! byte stream. Each call runs `qemu-img` as a child process and turns a
//! failure into an error carrying its stderr.

use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

const QEMU_IMG: &str = "qemu-img";

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: String,
    pub virtual_size: u64,
    pub actual_size: Option<u64>,
    /// The backing file as recorded in the image, if any.
    pub backing: Option<String>,
}

/// A path as a command-line argument that can never be taken for an option.
fn path_arg(p: &Path) -> OsString {
    if p.as_os_str().to_string_lossy().starts_with('-') {
        Path::new(".").join(p).into_os_string()
    } else {
        p.as_os_str().to_os_string()
    }
}

fn check_format(format: &str) -> Result<(), String> {
    match format {
        "qcow2" | "raw" => Ok(()),
        other => Err(format!(
            "unsupported disk format {other:?} (expected qcow2 or raw)"
        )),
    }
}

/// Runs `qemu-img` with `args`; Ok(stdout) on exit 0.
async fn qemu_img(args: Vec<OsString>) -> Result<Vec<u8>, String> {
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::process::Command::new(QEMU_IMG)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {QEMU_IMG} (is qemu-utils installed?): {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{QEMU_IMG} {shown} failed ({}): {}",
            out.status,
            stderr.trim()
        ))
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// `qemu-img info --output=json -U` (works on images a running guest holds).
pub async fn info(path: &Path) -> Result<ImageInfo, String> {
    let out = qemu_img(vec![
        os("info"),
        os("--output=json"),
        os("-U"),
        path_arg(path),
    ])
    .await?;
    let v: Value = serde_json::from_slice(&out)
        .map_err(|e| format!("unreadable qemu-img info for {}: {e}", path.display()))?;
    let format = v
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("qemu-img info for {} has no format", path.display()))?
        .to_string();
    let virtual_size = v
        .get("virtual-size")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("qemu-img info for {} has no virtual-size", path.display()))?;
    Ok(ImageInfo {
        format,
        virtual_size,
        actual_size: v.get("actual-size").and_then(Value::as_u64),
        backing: v
            .get("backing-filename")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Creates an empty image of `size_bytes` (`qcow2` or `raw`).
pub async fn create_blank(path: &Path, format: &str, size_bytes: u64) -> Result<(), String> {
    check_format(format)?;
    qemu_img(vec![
        os("create"),
        os("-q"),
        os("-f"),
        os(format),
        path_arg(path),
        os(&size_bytes.to_string()),
    ])
    .await
    .map(drop)
}

/// A backing file's absolute path (an overlay records it as given).
async fn absolute_base(base: &Path) -> Result<PathBuf, String> {
    tokio::fs::canonicalize(base)
        .await
        .map_err(|e| format!("base image {}: {e}", base.display()))
}

/// Creates a qcow2 `overlay` backed by `base` (recorded by absolute path).
/// The overlay is as large as the base, or `size_bytes` when that is given
/// and larger.
pub async fn create_overlay(
    base: &Path,
    base_format: &str,
    overlay: &Path,
    size_bytes: Option<u64>,
) -> Result<(), String> {
    check_format(base_format)?;
    let base_abs = absolute_base(base).await?;
    let base_size = info(&base_abs).await?.virtual_size;
    let mut args = vec![
        os("create"),
        os("-q"),
        os("-f"),
        os("qcow2"),
        os("-F"),
        os(base_format),
        os("-b"),
        base_abs.into_os_string(),
        path_arg(overlay),
    ];
    let size = size_bytes.unwrap_or(0).max(base_size);
    args.push(os(&size.to_string()));
    qemu_img(args).await.map(drop)
}

/// Points qcow2 `overlay` at `base` (absolute path) without reading
/// either: `base` holds the same bytes as the backing file it replaces
/// (the same image cached on another host).
pub async fn rebase_unsafe(overlay: &Path, base: &Path, base_format: &str) -> Result<(), String> {
    check_format(base_format)?;
    let base_abs = absolute_base(base).await?;
    qemu_img(vec![
        os("rebase"),
        os("-q"),
        os("-u"),
        os("-f"),
        os("qcow2"),
        os("-F"),
        os(base_format),
        os("-b"),
        base_abs.into_os_string(),
        path_arg(overlay),
    ])
    .await
    .map(drop)
}

/// Grows the image to `size_bytes` (no-op when already that size). A
/// smaller size is refused: shrinking would cut off guest data.
pub async fn resize(path: &Path, size_bytes: u64) -> Result<(), String> {
    let cur = info(path).await?;
    if size_bytes < cur.virtual_size {
        return Err(format!(
            "refusing to shrink {} from {} to {} bytes",
            path.display(),
            cur.virtual_size,
            size_bytes
        ));
    }
    if size_bytes == cur.virtual_size {
        return Ok(());
    }
    qemu_img(vec![
        os("resize"),
        os("-q"),
        os("-f"),
        os(&cur.format),
        path_arg(path),
        os(&size_bytes.to_string()),
    ])
    .await
    .map(drop)
}

/// Copies `src` (through its whole backing chain) into a standalone image
/// `dst` of `dst_format`. `src_format` skips format probing when known.
pub async fn convert(
    src: &Path,
    src_format: Option<&str>,
    dst: &Path,
    dst_format: &str,
) -> Result<(), String> {
    check_format(dst_format)?;
    let mut args = vec![os("convert"), os("-q")];
    if let Some(f) = src_format {
        check_format(f)?;
        args.push(os("-f"));
        args.push(os(f));
    }
    args.push(os("-O"));
    args.push(os(dst_format));
    args.push(path_arg(src));
    args.push(path_arg(dst));
    qemu_img(args).await.map(drop)
}

/// "qcow2" if the bytes start with the qcow magic (`QFI\xfb`), else "raw".
pub fn detect_format(bytes_head: &[u8]) -> &'static str {
    if bytes_head.starts_with(b"QFI\xfb") {
        "qcow2"
    } else {
        "raw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    const MIB: u64 = 1024 * 1024;

    fn scratch_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("rova-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn require_qemu_img() {
        let ok = std::process::Command::new(QEMU_IMG)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "qemu-img is required for this test but is not runnable (install qemu-utils)"
        );
    }

    #[test]
    fn detects_qcow2_magic() {
        assert_eq!(detect_format(b"QFI\xfb\x00\x00\x00\x03"), "qcow2");
        assert_eq!(detect_format(b"QFI"), "raw");
        assert_eq!(detect_format(b""), "raw");
        assert_eq!(detect_format(b"\xeb\x63\x90"), "raw");
    }

    #[tokio::test]
    async fn blank_overlay_convert_resize() {
        require_qemu_img();
        let d = scratch_dir();

        // A raw base with a marker at offset 4096.
        let base = d.join("base.raw");
        create_blank(&base, "raw", 8 * MIB).await.unwrap();
        {
            let mut f = std::fs::OpenOptions::new().write(true).open(&base).unwrap();
            f.seek(SeekFrom::Start(4096)).unwrap();
            f.write_all(b"ROVA-BASE-MARKER").unwrap();
        }
        let bi = info(&base).await.unwrap();
        assert_eq!(bi.format, "raw");
        assert_eq!(bi.virtual_size, 8 * MIB);
        assert_eq!(bi.backing, None);
        let head = std::fs::read(&base).unwrap();
        assert_eq!(detect_format(&head[..16]), "raw");

        let blank = d.join("blank.qcow2");
        create_blank(&blank, "qcow2", 4 * MIB).await.unwrap();
        let qi = info(&blank).await.unwrap();
        assert_eq!((qi.format.as_str(), qi.virtual_size), ("qcow2", 4 * MIB));
        let mut magic = [0u8; 4];
        std::fs::File::open(&blank)
            .unwrap()
            .read_exact(&mut magic)
            .unwrap();
        assert_eq!(detect_format(&magic), "qcow2");

        // Overlay without a size: as big as the base; with a bigger one: grown;
        // with a smaller one: still the base size.
        let ov = d.join("ov.qcow2");
        create_overlay(&base, "raw", &ov, None).await.unwrap();
        let oi = info(&ov).await.unwrap();
        assert_eq!(oi.format, "qcow2");
        assert_eq!(oi.virtual_size, 8 * MIB);
        let recorded = oi.backing.unwrap();
        assert!(Path::new(&recorded).is_absolute(), "{recorded}");
        assert!(recorded.ends_with("base.raw"));

        let ov_big = d.join("ov-big.qcow2");
        create_overlay(&base, "raw", &ov_big, Some(16 * MIB))
            .await
            .unwrap();
        assert_eq!(info(&ov_big).await.unwrap().virtual_size, 16 * MIB);
        let ov_small = d.join("ov-small.qcow2");
        create_overlay(&base, "raw", &ov_small, Some(MIB))
            .await
            .unwrap();
        assert_eq!(info(&ov_small).await.unwrap().virtual_size, 8 * MIB);

        // Standalone copy of the big overlay: no backing, right size, and
        // the base's data came along.
        let flat = d.join("flat.qcow2");
        convert(&ov_big, Some("qcow2"), &flat, "qcow2")
            .await
            .unwrap();
        let fi = info(&flat).await.unwrap();
        assert_eq!(fi.backing, None);
        assert_eq!(fi.format, "qcow2");
        assert_eq!(fi.virtual_size, 16 * MIB);
        let raw_again = d.join("flat.raw");
        convert(&flat, None, &raw_again, "raw").await.unwrap();
        let bytes = std::fs::read(&raw_again).unwrap();
        assert_eq!(bytes.len() as u64, 16 * MIB);
        assert_eq!(&bytes[4096..4096 + 16], b"ROVA-BASE-MARKER");

        // Grow; same size is a no-op; shrink is refused.
        resize(&flat, 32 * MIB).await.unwrap();
        assert_eq!(info(&flat).await.unwrap().virtual_size, 32 * MIB);
        resize(&flat, 32 * MIB).await.unwrap();
        let err = resize(&flat, 8 * MIB).await.unwrap_err();
        assert!(err.contains("refusing to shrink"), "{err}");
        assert_eq!(info(&flat).await.unwrap().virtual_size, 32 * MIB);

        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn errors_carry_stderr_and_bad_formats_are_refused() {
        require_qemu_img();
        let d = scratch_dir();
        let err = info(&d.join("missing.qcow2")).await.unwrap_err();
        assert!(err.contains("missing.qcow2"), "{err}");
        assert!(err.contains("No such file"), "{err}");
        let err = create_blank(&d.join("x.img"), "vmdk", MIB)
            .await
            .unwrap_err();
        assert!(err.contains("unsupported disk format"), "{err}");
        let err = create_overlay(&d.join("nobase"), "raw", &d.join("o"), None)
            .await
            .unwrap_err();
        assert!(err.contains("nobase"), "{err}");
        std::fs::remove_dir_all(&d).ok();
    }
}
