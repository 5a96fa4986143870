//! Where a volume's bytes live. Backends sit behind [`BlockBackend`]; the
//! embedded default is [`FileBackend`]: one sparse raw file per volume in
//! a directory (which several hosts may share, as with an NFS export).
//! A backend only moves bytes; the volume's state is the database's.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

/// What a new volume starts from.
pub enum Source<'a> {
    /// Zeros.
    Blank,
    /// A copy of these bytes (an image's, another volume's), the rest of
    /// the volume zeros.
    Copy(&'a Path),
    /// An image file in a disk format other than raw (`qcow2`, `vmdk`,
    /// …): its disk contents, converted to raw as Cinder does, the rest
    /// zeros.
    Convert(&'a Path, &'a str),
}

/// How a hypervisor reaches a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A raw file (QEMU's `file` driver).
    File(PathBuf),
}

/// A place volumes are kept. Every call is idempotent: a create of a
/// volume that exists replaces it, a delete of one that does not exist
/// succeeds, so an operation cut short can run its step again.
pub trait BlockBackend: Send + Sync {
    /// Its name in the volume's `os-vol-host-attr:host` (`host@backend`).
    fn name(&self) -> &'static str;
    /// Makes volume `id` of `size_gb` GiB from `source`.
    fn create(&self, id: &str, size_gb: u64, source: Source<'_>) -> io::Result<()>;
    /// Grows volume `id` to `size_gb` GiB (its bytes kept).
    fn extend(&self, id: &str, size_gb: u64) -> io::Result<()>;
    /// Removes volume `id`.
    fn delete(&self, id: &str) -> io::Result<()>;
    /// Where volume `id` is.
    fn locate(&self, id: &str) -> Location;
    /// Makes snapshot `snap` of volume `volume`: its bytes as they are
    /// now, kept apart from the volume (which goes on changing, and may be
    /// written while the snapshot is taken: the copy is crash-consistent,
    /// as a forced snapshot of an in-use volume is in Cinder).
    fn create_snapshot(&self, volume: &str, snap: &str) -> io::Result<()>;
    /// Removes snapshot `snap`.
    fn delete_snapshot(&self, snap: &str) -> io::Result<()>;
    /// Where snapshot `snap` is (a volume made from it copies it).
    fn locate_snapshot(&self, snap: &str) -> Location;
    /// Writes volume `id`'s disk contents to a new file `to` in image
    /// disk format `format` (`raw`, `qcow2`, `vmdk`, `vdi`, `vhd`,
    /// `vhdx`, `ploop`), as Cinder's upload to an image does.
    fn export(&self, id: &str, to: &Path, format: &str) -> io::Result<()>;
}

/// Volumes as sparse raw files in one directory.
pub struct FileBackend {
    dir: PathBuf,
}

impl FileBackend {
    pub fn new(dir: PathBuf) -> Self {
        FileBackend { dir }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("volume-{id}"))
    }

    fn snapshot_path(&self, snap: &str) -> PathBuf {
        self.dir.join(format!("snapshot-{snap}"))
    }
}

/// Removes `path`; one already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl BlockBackend for FileBackend {
    fn name(&self) -> &'static str {
        "file"
    }

    fn create(&self, id: &str, size_gb: u64, source: Source<'_>) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path(id);
        // Written beside and renamed: a volume file is whole or absent.
        let part = self.dir.join(format!(".volume-{id}.part"));
        match source {
            Source::Blank => {
                File::create(&part)?;
            }
            Source::Copy(from) => sparse_copy(from, &part)?,
            Source::Convert(from, format) => convert_to_raw(from, format, &part)?,
        }
        let f = OpenOptions::new().write(true).open(&part)?;
        let want = size_gb * GIB;
        if f.metadata()?.len() > want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the source is larger than the volume",
            ));
        }
        f.set_len(want)?;
        f.sync_all()?;
        fs::rename(&part, &path)
    }

    fn extend(&self, id: &str, size_gb: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(id))?;
        let want = size_gb * GIB;
        if f.metadata()?.len() < want {
            f.set_len(want)?;
        }
        f.sync_all()
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        remove(&self.path(id))
    }

    fn locate(&self, id: &str) -> Location {
        Location::File(self.path(id))
    }

    fn create_snapshot(&self, volume: &str, snap: &str) -> io::Result<()> {
        // Copied beside and renamed, as a volume is: whole or absent.
        let part = self.dir.join(format!(".snapshot-{snap}.part"));
        sparse_copy(&self.path(volume), &part)?;
        File::open(&part)?.sync_all()?;
        fs::rename(&part, self.snapshot_path(snap))
    }

    fn delete_snapshot(&self, snap: &str) -> io::Result<()> {
        remove(&self.snapshot_path(snap))
    }

    fn locate_snapshot(&self, snap: &str) -> Location {
        Location::File(self.snapshot_path(snap))
    }

    fn export(&self, id: &str, to: &Path, format: &str) -> io::Result<()> {
        let from = self.path(id);
        if format == "raw" {
            return sparse_copy(&from, to);
        }
        // qemu-img's names for two of Glance's disk formats.
        let out_format = match format {
            "vhd" => "vpc",
            "ploop" => "parallels",
            other => other,
        };
        qemu_img_convert("raw", out_format, &from, to)
    }
}

/// `qemu-img convert` of `from` (in `format`) to a new `to` in
/// `out_format`.
fn qemu_img_convert(format: &str, out_format: &str, from: &Path, to: &Path) -> io::Result<()> {
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-f", format, "-O", out_format])
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| io::Error::other(format!("running qemu-img (Debian's qemu-utils): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "qemu-img convert: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes the disk contents of image file `from` (in `format`) to a new
/// raw file `to` with `qemu-img convert` (sparse: zero regions stay holes).
/// A file that does not start with the format's magic (the simulated
/// cloud's images are a line of text whatever their `disk_format`) is
/// copied as it is.
fn convert_to_raw(from: &Path, format: &str, to: &Path) -> io::Result<()> {
    if !has_magic(from, format)? {
        return sparse_copy(from, to);
    }
    qemu_img_convert(format, "raw", from, to)
}

/// Whether `path` starts with the magic bytes of image `format` (the
/// formats with a header magic at offset 0; others never match).
fn has_magic(path: &Path, format: &str) -> io::Result<bool> {
    use std::io::Read;
    let magic: &[u8] = match format {
        "qcow2" => b"QFI\xfb",
        "vmdk" => b"KDMV",
        "vhdx" => b"vhdxfile",
        "qed" => b"QED\0",
        _ => return Ok(false),
    };
    let mut head = [0u8; 8];
    let mut f = File::open(path)?;
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(head[..got].starts_with(magic))
}

/// Copies `from` to a new file `to`, only the data regions `from` holds
/// (found with `SEEK_DATA`/`SEEK_HOLE`), so a copy stays as sparse as its
/// source; a file system without hole reporting gives one data region.
fn sparse_copy(from: &Path, to: &Path) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsRawFd;
    let mut src = File::open(from)?;
    let mut dst = File::create(to)?;
    let len = src.metadata()?.len();
    let seek = |f: &File, at: u64, whence: i32| -> Option<u64> {
        // SAFETY: lseek on an open descriptor has no memory effects.
        let r = unsafe { libc::lseek(f.as_raw_fd(), at as libc::off_t, whence) };
        (r >= 0).then_some(r as u64)
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let Some(start) = seek(&src, at, libc::SEEK_DATA) else {
            break; // only a hole is left
        };
        let end = seek(&src, start, libc::SEEK_HOLE).unwrap_or(len).min(len);
        src.seek(SeekFrom::Start(start))?;
        dst.seek(SeekFrom::Start(start))?;
        let mut left = end - start;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = src.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n])?;
            left -= n as u64;
        }
        at = end;
    }
    dst.set_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_volume_is_sparse_grows_and_goes() {
        let dir = std::env::temp_dir().join(format!("rova-vol-{}", uuid::Uuid::new_v4()));
        let b = FileBackend::new(dir.join("volumes"));
        b.create("v1", 2, Source::Blank).expect("create");
        let Location::File(p) = b.locate("v1");
        assert_eq!(fs::metadata(&p).expect("meta").len(), 2 * GIB);
        b.extend("v1", 3).expect("extend");
        assert_eq!(fs::metadata(&p).expect("meta").len(), 3 * GIB);
        let src = dir.join("img");
        fs::write(&src, b"ROVA").expect("write");
        b.create("v2", 1, Source::Copy(&src)).expect("copy");
        let Location::File(q) = b.locate("v2");
        let mut head = [0u8; 4];
        use std::io::Read;
        File::open(&q)
            .and_then(|mut f| f.read_exact(&mut head))
            .expect("read");
        assert_eq!(&head, b"ROVA");
        assert_eq!(fs::metadata(&q).expect("meta").len(), GIB);
        // A copy of a mostly empty volume takes no more room than it.
        b.create("v3", 3, Source::Copy(&p)).expect("clone");
        let Location::File(r) = b.locate("v3");
        use std::os::unix::fs::MetadataExt;
        assert!(fs::metadata(&r).expect("meta").blocks() < 1024, "sparse");
        // A snapshot keeps the bytes the volume had, as sparse as it.
        b.create_snapshot("v2", "s1").expect("snapshot");
        b.create_snapshot("v2", "s1")
            .expect("a second snapshot replaces it");
        let Location::File(s) = b.locate_snapshot("s1");
        fs::write(&q, b"CHANGED").expect("write the volume");
        File::open(&s)
            .and_then(|mut f| f.read_exact(&mut head))
            .expect("read");
        assert_eq!(&head, b"ROVA", "the bytes as they were");
        assert_eq!(fs::metadata(&s).expect("meta").len(), GIB);
        assert!(fs::metadata(&s).expect("meta").blocks() < 1024, "sparse");
        b.delete_snapshot("s1").expect("delete");
        b.delete_snapshot("s1").expect("a second delete succeeds");
        assert!(!s.exists());
        b.delete("v1").expect("delete");
        b.delete("v1").expect("a second delete succeeds");
        assert!(!p.exists());
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_qcow2_image_becomes_its_raw_disk_and_text_stays_bytes() {
        use std::io::Read;
        let dir = std::env::temp_dir().join(format!("rova-vol-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("dir");
        let b = FileBackend::new(dir.join("volumes"));
        let raw = dir.join("disk.raw");
        let mut disk = vec![0u8; 1 << 20];
        disk[..8].copy_from_slice(b"ROVADISK");
        fs::write(&raw, &disk).expect("write");
        let qcow = dir.join("disk.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow)
            .status()
            .expect("qemu-img (qemu-utils, installed by scripts/setup.sh)");
        assert!(made.success());
        b.create("q", 1, Source::Convert(&qcow, "qcow2"))
            .expect("convert");
        let Location::File(p) = b.locate("q");
        let mut head = [0u8; 8];
        File::open(&p)
            .and_then(|mut f| f.read_exact(&mut head))
            .expect("read");
        assert_eq!(
            &head, b"ROVADISK",
            "the disk's contents, not the qcow2 header"
        );
        assert_eq!(fs::metadata(&p).expect("meta").len(), GIB);
        // Labelled qcow2 but not one: copied as it is.
        let text = dir.join("text");
        fs::write(&text, b"simulated image\n").expect("write");
        b.create("t", 1, Source::Convert(&text, "qcow2"))
            .expect("copy");
        let Location::File(t) = b.locate("t");
        let mut head = [0u8; 9];
        File::open(&t)
            .and_then(|mut f| f.read_exact(&mut head))
            .expect("read");
        assert_eq!(&head, b"simulated");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
