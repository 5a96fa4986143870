//! Config drive images: lays out a list of (relative path, bytes) files in
//! a staging tree and builds an ISO9660 (`genisoimage`, or `xorriso`) or
//! VFAT (`mkfs.vfat` + `mcopy`) image labelled `config-2` from it.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

/// The filesystem of the config drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveFormat {
    Iso9660,
    Vfat,
}

/// The volume label guests look for.
pub const LABEL: &str = "config-2";
/// Size of a VFAT config drive.
const VFAT_SIZE: u64 = 64 * 1024 * 1024;

/// Checks `rel` is a plain relative path (no `..`, not absolute, not empty).
fn safe_relative(rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() {
        return Err("config drive file with an empty path".to_string());
    }
    let p = Path::new(rel);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("config drive path {rel:?} must not contain '..'"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("config drive path {rel:?} must be relative"))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("config drive path {rel:?} names no file"));
    }
    Ok(out)
}

/// Writes `files` under `root`.
async fn stage(root: &Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    tokio::fs::create_dir_all(root)
        .await
        .map_err(|e| format!("cannot create staging dir {}: {e}", root.display()))?;
    for (rel, bytes) in files {
        let target = root.join(safe_relative(rel)?);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        tokio::fs::write(&target, bytes)
            .await
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

enum RunError {
    /// The program is not installed.
    Missing,
    Failed(String),
}

async fn run_tool(program: &str, args: &[OsString], envs: &[(&str, &str)]) -> Result<(), RunError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = match cmd.output().await {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RunError::Missing),
        Err(e) => return Err(RunError::Failed(format!("cannot run {program}: {e}"))),
    };
    if out.status.success() {
        Ok(())
    } else {
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(RunError::Failed(format!(
            "{program} failed ({}): {msg}",
            out.status
        )))
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

async fn build_iso(dir: &Path, out: &Path) -> Result<(), String> {
    let mut args = vec![
        os("-quiet"),
        os("-o"),
        out.as_os_str().to_os_string(),
        os("-ldots"),
        os("-allow-lowercase"),
        os("-allow-multidot"),
        os("-l"),
        os("-publisher"),
        os("Rova"),
        os("-J"),
        os("-r"),
        os("-V"),
        os(LABEL),
        dir.as_os_str().to_os_string(),
    ];
    match run_tool("genisoimage", &args, &[]).await {
        Ok(()) => return Ok(()),
        Err(RunError::Failed(e)) => return Err(e),
        Err(RunError::Missing) => {}
    }
    args.splice(0..0, [os("-as"), os("mkisofs")]);
    match run_tool("xorriso", &args, &[]).await {
        Ok(()) => Ok(()),
        Err(RunError::Failed(e)) => Err(e),
        Err(RunError::Missing) => Err(
            "cannot build an ISO9660 config drive: neither genisoimage nor xorriso is installed \
             (install the genisoimage or xorriso package)"
                .to_string(),
        ),
    }
}

async fn build_vfat(dir: &Path, out: &Path) -> Result<(), String> {
    {
        let f = tokio::fs::File::create(out)
            .await
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        f.set_len(VFAT_SIZE)
            .await
            .map_err(|e| format!("cannot size {}: {e}", out.display()))?;
    }
    let mkfs_args = [os("-n"), os(LABEL), out.as_os_str().to_os_string()];
    let mut made = false;
    for prog in [
        "mkfs.vfat",
        "/usr/sbin/mkfs.vfat",
        "/sbin/mkfs.vfat",
        "mkfs.fat",
    ] {
        match run_tool(prog, &mkfs_args, &[]).await {
            Ok(()) => {
                made = true;
                break;
            }
            Err(RunError::Failed(e)) => return Err(e),
            Err(RunError::Missing) => {}
        }
    }
    if !made {
        return Err(
            "cannot build a VFAT config drive: mkfs.vfat is not installed (install the dosfstools package)"
                .to_string(),
        );
    }
    // mcopy DIR/* ::/ without a shell: name the top-level entries.
    let mut entries = Vec::new();
    let mut rd = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    while let Some(e) = rd
        .next_entry()
        .await
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
    {
        entries.push(e.path());
    }
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort();
    let mut args = vec![os("-s"), os("-i"), out.as_os_str().to_os_string()];
    args.extend(entries.into_iter().map(PathBuf::into_os_string));
    args.push(os("::/"));
    match run_tool("mcopy", &args, &[("MTOOLS_SKIP_CHECK", "1")]).await {
        Ok(()) => Ok(()),
        Err(RunError::Failed(e)) => Err(e),
        Err(RunError::Missing) => Err(
            "cannot build a VFAT config drive: mcopy is not installed (install the mtools package)"
                .to_string(),
        ),
    }
}

/// files: (relative path like "openstack/latest/meta_data.json", bytes).
/// Writes a staging tree next to `out` (removed afterwards) and builds the
/// image at `out`.
pub async fn build(
    files: &[(String, Vec<u8>)],
    format: DriveFormat,
    out: &Path,
) -> Result<(), String> {
    // Refuse bad paths before touching the disk.
    for (rel, _) in files {
        safe_relative(rel)?;
    }
    let name = out
        .file_name()
        .ok_or_else(|| format!("config drive path {} has no file name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let staging = out.with_file_name(format!(".{name}.staging-{}", uuid::Uuid::new_v4()));
    let result = async {
        stage(&staging, files).await?;
        match tokio::fs::remove_file(out).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace {}: {e}", out.display())),
        }
        match format {
            DriveFormat::Iso9660 => build_iso(&staging, out).await,
            DriveFormat::Vfat => build_vfat(&staging, out).await,
        }
    }
    .await;
    if tokio::fs::metadata(&staging).await.is_ok() {
        if let Err(e) = tokio::fs::remove_dir_all(&staging).await {
            tracing::warn!(dir = %staging.display(), "cannot remove config drive staging dir: {e}");
        }
    }
    if result.is_err() {
        let _ = tokio::fs::remove_file(out).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("rova-cd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn find(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "openstack/latest/meta_data.json".to_string(),
                br#"{"uuid": "5a1b9e7c-rova-test-uuid", "name": "cd-test"}"#.to_vec(),
            ),
            (
                "README-rova.txt".to_string(),
                b"top-level file: ROVA-TOPLEVEL-MARKER".to_vec(),
            ),
        ]
    }

    /// Reads one file back out of an ISO with `isoinfo` (Rock Ridge names).
    fn iso_file(img: &Path, path: &str) -> Vec<u8> {
        let out = std::process::Command::new("isoinfo")
            .arg("-i")
            .arg(img)
            .args(["-R", "-x", path])
            .output()
            .expect("isoinfo (genisoimage package) is needed to read the ISO back");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Leaves only `out` in the directory (staging removed).
    fn assert_only(dir: &Path, out: &Path) {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, vec![out.to_path_buf()], "staging tree left behind");
    }

    #[tokio::test]
    async fn builds_iso_with_label_and_contents() {
        let d = scratch_dir();
        let out = d.join("disk.config");
        build(&files(), DriveFormat::Iso9660, &out).await.unwrap();
        let img = std::fs::read(&out).unwrap();
        // Primary volume descriptor: type 1, "CD001", volume id at +40.
        let pvd = &img[32768..32768 + 2048];
        assert_eq!(pvd[0], 1);
        assert_eq!(&pvd[1..6], b"CD001");
        assert_eq!(&pvd[40..48], b"config-2");
        assert!(pvd[48..72].iter().all(|&b| b == b' '));
        assert!(find(&img, b"5a1b9e7c-rova-test-uuid"));
        assert!(find(&img, b"ROVA-TOPLEVEL-MARKER"));
        // Rock Ridge keeps the lowercase name.
        assert!(find(&img, b"meta_data.json"));
        assert_eq!(
            iso_file(&out, "/openstack/latest/meta_data.json"),
            files()[0].1
        );
        assert_eq!(iso_file(&out, "/README-rova.txt"), files()[1].1);
        assert_only(&d, &out);

        // Building again replaces the image.
        build(
            &[("x/y.txt".to_string(), b"SECOND-BUILD".to_vec())],
            DriveFormat::Iso9660,
            &out,
        )
        .await
        .unwrap();
        let img = std::fs::read(&out).unwrap();
        assert!(find(&img, b"SECOND-BUILD"));
        assert!(!find(&img, b"ROVA-TOPLEVEL-MARKER"));
        assert_only(&d, &out);
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn rejects_escaping_paths() {
        let d = scratch_dir();
        let out = d.join("disk.config");
        for bad in ["../evil", "openstack/../../evil", "/etc/passwd", "", "."] {
            let f = vec![(bad.to_string(), b"x".to_vec())];
            let err = build(&f, DriveFormat::Iso9660, &out).await.unwrap_err();
            assert!(
                err.contains("config drive path") || err.contains("empty"),
                "{bad}: {err}"
            );
        }
        // Nothing was written at all.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        assert!(safe_relative("./a/b").is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    /// With dosfstools and mtools installed the image is a FAT filesystem
    /// labelled config-2 holding the files; without them the error names
    /// the missing package.
    #[tokio::test]
    async fn vfat_builds_or_names_missing_package() {
        let d = scratch_dir();
        let out = d.join("disk.config");
        match build(&files(), DriveFormat::Vfat, &out).await {
            Ok(()) => {
                let img = std::fs::read(&out).unwrap();
                assert_eq!(img.len() as u64, VFAT_SIZE);
                assert_eq!(&img[510..512], &[0x55, 0xAA]);
                assert!(find(&img[..4096], b"config-2"));
                assert!(find(&img, b"5a1b9e7c-rova-test-uuid"));
                assert!(find(&img, b"ROVA-TOPLEVEL-MARKER"));
                // The tree is right: read the nested file back with mtools.
                let got = std::process::Command::new("mtype")
                    .arg("-i")
                    .arg(&out)
                    .arg("::/openstack/latest/meta_data.json")
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .output()
                    .unwrap();
                assert!(
                    got.status.success(),
                    "{}",
                    String::from_utf8_lossy(&got.stderr)
                );
                assert_eq!(got.stdout, files()[0].1);
                assert_only(&d, &out);
            }
            Err(e) => {
                assert!(
                    e.contains("dosfstools") || e.contains("mtools"),
                    "unexpected VFAT failure: {e}"
                );
                // The failed image and the staging tree are gone.
                assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
            }
        }
        std::fs::remove_dir_all(&d).ok();
    }
}
