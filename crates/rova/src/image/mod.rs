//! Images (a Glance v2 subset): image records with Glance's fields, image
//! bytes stored as files under `<data>/images/`, and visibility rules
//! (public and community images for everyone, private/shared ones for the
//! owner project and admins, and the projects a shared image is offered
//! to: `members`). The compute API's image proxy reads the same records.
//! This module owns image records, their members and bytes.

pub mod api;
pub mod members;
pub mod tags;

use crate::store::{Store, Table};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A Glance image record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    /// queued, saving, active, killed, deleted, pending_delete, deactivated, uploading, importing
    pub status: String,
    /// public, private, shared, community
    pub visibility: String,
    /// Owning project id.
    pub owner: String,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub protected: bool,
    pub os_hidden: bool,
    /// Kept as rows of `image_tags` ([`tags`]), not in the image's
    /// document: filled when the image is read.
    #[serde(default, skip_serializing)]
    pub tags: Vec<String>,
    /// Every other (user/custom) property, e.g. `image_type`, `instance_uuid`,
    /// `hw_*`, `kernel_id`.
    pub properties: BTreeMap<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Image {
    /// A new, empty `queued` record with a fresh id: no name, formats,
    /// data or properties yet (callers fill what they know).
    pub fn queued(owner: &str, visibility: &str, now: DateTime<Utc>) -> Image {
        Image {
            id: uuid::Uuid::new_v4().to_string(),
            name: None,
            status: "queued".into(),
            visibility: visibility.into(),
            owner: owner.into(),
            container_format: None,
            disk_format: None,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: vec![],
            properties: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl Image {
    /// Takes the data fields `filled` got when its bytes were stored
    /// (size, checksums) and becomes `active`.
    pub fn take_data(&mut self, filled: &Image, now: DateTime<Utc>) {
        self.size = filled.size;
        self.virtual_size = filled.virtual_size;
        self.checksum = filled.checksum.clone();
        self.os_hash_algo = filled.os_hash_algo.clone();
        self.os_hash_value = filled.os_hash_value.clone();
        self.status = "active".into();
        self.updated_at = now;
    }
}

/// Suffix of an image file being written (renamed away when complete).
const PART_SUFFIX: &str = ".part";

/// The image service.
pub struct Images {
    /// The image records (without their tags: read images through
    /// [`Images::get`] and [`Images::filter`], write them through
    /// [`Images::put`] and [`Images::update`]).
    table: Table<Image>,
    /// Each image's tags ([`tags`]).
    tags: Table<tags::Tag>,
    /// The projects shared images are offered to ([`members`]).
    members: Table<members::Member>,
    dir: PathBuf,
}

impl Images {
    pub fn load(store: &Arc<Store>, data_dir: &Path) -> Result<Self, String> {
        let dir = data_dir.join("images");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Images {
            table: Table::load("image", store)?,
            tags: Table::load("image_tag", store)?
                .indexed(tags::BY_IMAGE, |t: &tags::Tag| Some(t.image_id.clone())),
            members: Table::load("image_member", store)?
                .indexed(members::BY_IMAGE, |m: &members::Member| {
                    Some(m.image_id.clone())
                }),
            dir,
        })
    }

    /// Path of an image's bytes.
    pub fn file_path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// True when the project may see the image without being offered it:
    /// its own, or a public or community one (admins see every image).
    pub fn open_to(img: &Image, project_id: &str, is_admin: bool) -> bool {
        is_admin
            || img.owner == project_id
            || img.visibility == "public"
            || img.visibility == "community"
    }

    /// True when the project may see the image: [`Images::open_to`], or a
    /// shared one offered to it (whatever the status it gave the offer,
    /// as Glance shows such an image by id).
    pub fn can_see(&self, img: &Image, project_id: &str, is_admin: bool) -> bool {
        Self::open_to(img, project_id, is_admin)
            || (img.visibility == "shared" && self.membership(&img.id, project_id).is_some())
    }

    /// The image if it exists and the caller may see it.
    pub fn visible(&self, id: &str, project_id: &str, is_admin: bool) -> Option<Arc<Image>> {
        self.get(id)
            .filter(|i| i.status != "deleted" && self.can_see(i, project_id, is_admin))
    }

    /// Every image a listing shows the caller by default (Glance's
    /// `member_status=accepted`: a shared image offered to the caller
    /// only once it accepted).
    pub fn list_visible(&self, project_id: &str, is_admin: bool) -> Vec<Arc<Image>> {
        self.filter(|i| {
            let status = self.membership(&i.id, project_id);
            i.status != "deleted"
                && Self::listed(i, project_id, is_admin, status.as_deref(), "accepted")
        })
    }

    /// Whether a listing with `member_status` (`accepted`, `pending`,
    /// `rejected` or `all`) shows the caller image `img`, given the
    /// caller's membership of it: an image [`Images::open_to`] the caller
    /// passes; a shared one offered to it passes when its status matches.
    pub fn listed(
        img: &Image,
        project_id: &str,
        is_admin: bool,
        membership: Option<&members::Member>,
        member_status: &str,
    ) -> bool {
        Self::open_to(img, project_id, is_admin)
            || (img.visibility == "shared"
                && membership.is_some_and(|m| member_status == "all" || m.status == member_status))
    }

    /// Creates an image record (status `queued` unless `bytes` are given, in
    /// which case they are stored and the image becomes `active`).
    pub async fn create(&self, mut img: Image, bytes: Option<&[u8]>) -> Result<Arc<Image>, Fault> {
        if let Some(b) = bytes {
            self.write_bytes(&mut img, b)?;
        }
        self.put(img).await
    }

    /// Stores bytes for an image and fills size and checksums. The bytes
    /// go to a private (0600) scratch file first and are renamed into place
    /// once on disk, so a crash never leaves half an image under its name.
    pub fn write_bytes(&self, img: &mut Image, bytes: &[u8]) -> Result<(), Fault> {
        use sha2::{Digest, Sha512};
        use std::io::Write;
        let fail = |e: std::io::Error| Fault::internal(format!("storing image data: {e}"));
        let part = self.part_path(&img.id);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&part).map_err(fail)?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(fail)?;
        drop(f);
        std::fs::rename(&part, self.file_path(&img.id)).map_err(fail)?;
        img.size = Some(bytes.len() as u64);
        img.virtual_size = Some(bytes.len() as u64);
        img.checksum = Some(md5_hex(bytes));
        img.os_hash_algo = Some("sha512".into());
        img.os_hash_value = Some(hex::encode(Sha512::digest(bytes)));
        img.status = "active".into();
        Ok(())
    }

    /// Gives image `id` the data that [`Images::write_bytes`] or
    /// [`Images::store_file`] put into `filled` (and its formats), in one
    /// transaction and only while the record still waits for it (`queued`
    /// or `saving`): an image deleted while its bytes were written stays
    /// deleted, and the bytes go. A blind write here would bring it back.
    pub async fn fill(&self, id: &str, filled: &Image) -> Result<Arc<Image>, Fault> {
        let now = chrono::Utc::now();
        let res = self
            .update(
                id,
                || Fault::not_found(format!("image {id} went during its upload")),
                |i| {
                    if !matches!(i.status.as_str(), "queued" | "saving") {
                        return Err(Fault::conflict(format!(
                            "image {id} is {} and takes no data",
                            i.status
                        )));
                    }
                    i.take_data(filled, now);
                    i.disk_format.clone_from(&filled.disk_format);
                    i.container_format.clone_from(&filled.container_format);
                    Ok(())
                },
            )
            .await;
        match res {
            Ok((img, ())) => Ok(img),
            Err(e) => {
                if self.get(id).is_none_or(|i| i.status == "deleted") {
                    let _ = std::fs::remove_file(self.file_path(id));
                }
                Err(e)
            }
        }
    }

    /// Where an image's bytes are written before they are whole (renamed
    /// into place by [`Images::store_file`]).
    pub fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{PART_SUFFIX}"))
    }

    /// Takes file `part` (written at [`Images::part_path`]) as image
    /// `img`'s bytes: checksums read from it in chunks (no whole copy in
    /// memory), then renamed into place; `virtual_size` is what the disk
    /// holds. Blocking: call it off the runtime's threads.
    pub fn store_file(
        &self,
        img: &mut Image,
        part: &Path,
        virtual_size: u64,
    ) -> std::io::Result<()> {
        use sha2::{Digest, Sha512};
        use std::io::Read;
        let mut f = std::fs::File::open(part)?;
        f.sync_all()?;
        let (mut md5, mut sha) = (md5::Md5::new(), Sha512::new());
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            sha.update(&buf[..n]);
            len += n as u64;
        }
        std::fs::rename(part, self.file_path(&img.id))?;
        img.size = Some(len);
        img.virtual_size = Some(virtual_size);
        img.checksum = Some(hex::encode(md5.finalize()));
        img.os_hash_algo = Some("sha512".into());
        img.os_hash_value = Some(hex::encode(sha.finalize()));
        img.status = "active".into();
        Ok(())
    }

    /// After a restart, as Glance leaves an upload that was cut short: an
    /// image still `saving` goes back to `queued` with its partial data
    /// removed, and scratch files of unfinished writes are deleted.
    /// Returns the ids put back.
    pub async fn settle_at_start(&self) -> Result<Vec<String>, Fault> {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(PART_SUFFIX) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut requeued = Vec::new();
        for img in self.filter(|i| i.status == "saving") {
            let _ = std::fs::remove_file(self.file_path(&img.id));
            let res = self
                .update(
                    &img.id,
                    || Fault::not_found("image"),
                    |i| {
                        i.status = "queued".into();
                        i.size = None;
                        i.virtual_size = None;
                        i.checksum = None;
                        i.os_hash_algo = None;
                        i.os_hash_value = None;
                        Ok(())
                    },
                )
                .await;
            if res.is_ok() {
                tracing::warn!(image = %img.id, "upload cut short by a restart: image back to queued");
                requeued.push(img.id.clone());
            }
        }
        Ok(requeued)
    }

    /// Deletes the record, with its members and tags, and its bytes.
    pub async fn delete(&self, id: &str) -> Result<(), Fault> {
        self.delete_rows(id).await?;
        let _ = std::fs::remove_file(self.file_path(id));
        Ok(())
    }
}

/// The MD5 of `data` in hex (Glance's legacy `checksum`).
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_known_values() {
        assert_eq!(super::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            super::md5_hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }
}
