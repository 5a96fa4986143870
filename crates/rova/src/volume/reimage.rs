//! Re-imaging a volume (Cinder's `os-reimage`, what Nova's rebuild of a
//! volume-backed server asks for from microversion 2.93): the volume's
//! bytes are written again from an image (converted to raw as a volume
//! made from an image is) and its image metadata becomes the new image's.
//! The volume is `downloading` meanwhile and goes back to the status it
//! had (an in-use root volume stays attached), or to `error` when the
//! bytes could not be written.

use super::{invalid_input, invalid_volume, needs_conversion, not_found, FromImage, Volumes};
use crate::image::Image;
use crate::volume::backend::Source;
use chrono::{DateTime, Utc};
use rova_core::Fault;
use std::path::PathBuf;

/// The statuses a volume may be re-imaged from (Cinder's, with the
/// attached ones a rebuild re-images).
const REIMAGEABLE: &[&str] = &["available", "error", "in-use", "reserved"];

impl Volumes {
    /// Rewrites volume `id` from image `img`, whose bytes are `file`, and
    /// waits until it is done. Whoever uses the volume must have let go of
    /// it (a rebuild stops the guest first).
    pub async fn reimage(
        &self,
        id: &str,
        img: &Image,
        file: PathBuf,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let from = FromImage::of(img);
        let mut before = String::new();
        let mut size = 0;
        self.table
            .update(
                id,
                || not_found(id),
                |v| {
                    if !REIMAGEABLE.contains(&v.status.as_str()) {
                        return Err(invalid_volume(format!(
                            "Volume {id} status must be available, error, in-use or \
                             reserved to reimage, but the current status is {}.",
                            v.status
                        )));
                    }
                    if from.floor > v.size {
                        return Err(invalid_input(format!(
                            "Image {} needs a volume of {}GB, larger than volume {id} of {}GB.",
                            img.id, from.floor, v.size
                        )));
                    }
                    before = std::mem::replace(&mut v.status, "downloading".into());
                    size = v.size;
                    v.updated_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        let backend = self.backend.clone();
        let format = img.disk_format.clone().filter(|f| needs_conversion(f));
        let vid = id.to_string();
        let written = tokio::task::spawn_blocking(move || {
            let source = match &format {
                Some(f) => Source::Convert(&file, f),
                None => Source::Copy(&file),
            };
            backend.create(&vid, size, source)
        })
        .await;
        let why = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let ok = why.is_none();
        self.end(id, "downloading", |v| {
            if ok {
                v.status = before;
                v.image_metadata = from.metadata;
                v.bootable = true;
            } else {
                v.status = "error".into();
            }
        })
        .await;
        match why {
            None => Ok(()),
            Some(e) => {
                tracing::error!(volume = id, "volume reimage failed: {e}");
                Err(Fault::internal(format!(
                    "Volume {id} could not be re-imaged from image {}: {e}",
                    img.id
                )))
            }
        }
    }
}
