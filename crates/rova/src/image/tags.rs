//! An image's tags as the database keeps them: rows of their own
//! (`image_tags`, one per image and tag, id `<image>/<tag>`, with the
//! tag's place among the image's), written together with the image's row
//! by every write of an image ([`Images::put`], [`Images::update`]): the
//! rows are made to match the record's `tags`, all or nothing. Readers
//! get an image with its tags from the rows.

use super::{Image, Images};
use crate::store::{Group, TxView};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One tag of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub image_id: String,
    pub tag: String,
    /// Its place among the image's tags.
    pub position: u32,
}

/// The index of tag rows by image.
pub const BY_IMAGE: &str = "image";

fn tag_key(image: &str, tag: &str) -> String {
    format!("{image}/{tag}")
}

/// Makes image `img`'s tag rows in `view` match its `tags` (rows of tags
/// it no longer has deleted, new or moved ones written).
fn sync(img: &Image, view: &mut TxView<'_, Tag>) {
    let want: std::collections::HashSet<String> =
        img.tags.iter().map(|t| tag_key(&img.id, t)).collect();
    for key in view.find_ids(BY_IMAGE, &img.id) {
        if !want.contains(&key) {
            view.delete(&key);
        }
    }
    for (position, tag) in img.tags.iter().enumerate() {
        let row = Tag {
            image_id: img.id.clone(),
            tag: tag.clone(),
            position: position as u32,
        };
        let key = tag_key(&img.id, tag);
        if view.get(&key).as_ref() != Some(&row) {
            view.put(&key, row);
        }
    }
}

impl Images {
    /// `row` with its tags from the tag rows (the row itself when they
    /// are the ones it holds).
    pub(super) fn assemble(&self, row: Arc<Image>) -> Arc<Image> {
        let tags = self.tags_of(&row.id);
        if tags == row.tags {
            return row;
        }
        let mut img = (*row).clone();
        img.tags = tags;
        Arc::new(img)
    }

    /// Image `id` with its tags.
    pub fn get(&self, id: &str) -> Option<Arc<Image>> {
        self.table.get(id).map(|r| self.assemble(r))
    }

    /// The images `keep` accepts (it sees each image without its tags),
    /// with their tags.
    pub fn filter(&self, keep: impl FnMut(&Image) -> bool) -> Vec<Arc<Image>> {
        self.table
            .filter(keep)
            .into_iter()
            .map(|r| self.assemble(r))
            .collect()
    }

    /// Stores image `img` whole (inserted or replaced) with its tags, in
    /// one transaction.
    pub async fn put(&self, img: Image) -> Result<Arc<Image>, Fault> {
        self.write(img, None).await
    }

    /// Inserts image `img` with its tags (`conflict` when its id is
    /// taken), in one transaction.
    pub async fn insert_new(&self, img: Image, conflict: Fault) -> Result<Arc<Image>, Fault> {
        self.write(img, Some(conflict)).await
    }

    /// [`Images::put`], or with `new` only when the id is free.
    async fn write(&self, img: Image, new: Option<Fault>) -> Result<Arc<Image>, Fault> {
        let id = img.id.clone();
        // Answered as written: the image may be deleted again (a backup
        // rotation) before the caller reads it back.
        let written = Arc::new(img);
        let queued = {
            let mut g = Group::new();
            g.with(&self.table, |v| {
                if let Some(taken) = new.filter(|_| v.get(&id).is_some()) {
                    return Err(taken);
                }
                v.put_shared(&id, written.clone(), None);
                Ok(())
            })
            .and_then(|()| {
                g.with(&self.tags, |v| {
                    sync(&written, v);
                    Ok(())
                })
            })
            .and_then(|()| g.queue())
        };
        queued?.outcome().await?;
        Ok(written)
    }

    /// Changes image `id` (`missing` when there is none), its tag rows
    /// made to match in the same transaction.
    pub async fn update<R>(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut Image) -> Result<R, Fault>,
    ) -> Result<(Arc<Image>, R), Fault> {
        let (row, r) = self
            .table
            .update_with(
                id,
                missing,
                |img| {
                    // The record may lack its tags (they are rows); read
                    // under the image's lock, which every tag write holds.
                    img.tags = self.tags_of(id);
                    change(img)
                },
                &self.tags,
                |img, view| {
                    sync(img, view);
                    Ok(())
                },
            )
            .await?;
        Ok((self.assemble(row), r))
    }

    /// Image `id`'s tags, in their order.
    fn tags_of(&self, id: &str) -> Vec<String> {
        let mut rows = self.tags.find(BY_IMAGE, id);
        rows.sort_by_key(|t| t.position);
        rows.iter().map(|t| t.tag.clone()).collect()
    }

    /// Deletes image `id`'s record with its members and tags, all or
    /// nothing; whether there was one.
    pub(super) async fn delete_rows(&self, id: &str) -> Result<bool, Fault> {
        let queued = {
            let mut g = Group::new();
            g.with(&self.table, |v| {
                let there = v.get(id).is_some();
                if there {
                    v.delete(id);
                }
                Ok(there)
            })
            .and_then(|there| {
                g.with(&self.members, |v| {
                    v.delete_found(super::members::BY_IMAGE, id);
                    Ok(())
                })?;
                g.with(&self.tags, |v| {
                    v.delete_found(BY_IMAGE, id);
                    Ok(())
                })?;
                Ok(there)
            })
            .and_then(|there| g.queue().map(|q| (there, q)))
        };
        let (there, q) = queued?;
        q.outcome().await?;
        Ok(there)
    }
}
