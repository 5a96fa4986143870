//! Image members (Glance's image sharing): the projects a `shared` image
//! is offered to, each with the status its project gave the offer
//! (`pending`, `accepted`, `rejected`). Members are rows of their own
//! (`image_members`, one per image and project, id `<image>/<project>`),
//! each written together with its image's row, all or nothing, so an image
//! deleted meanwhile refuses a new member and an image's delete takes its
//! members with it.

use super::{Image, Images};
use crate::store::TxView;
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One project's membership of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The statuses a membership may have.
pub const STATUSES: [&str; 3] = ["pending", "accepted", "rejected"];

/// The index of member rows by image.
pub const BY_IMAGE: &str = "image";

/// Glance's `image_member_quota`.
pub const MEMBER_QUOTA: usize = 128;

/// The id of `member`'s row for image `image`.
pub fn member_key(image: &str, member: &str) -> String {
    format!("{image}/{member}")
}

impl Images {
    /// `project`'s membership of image `image`, if any.
    pub fn membership(&self, image: &str, project: &str) -> Option<Arc<Member>> {
        self.members.get(&member_key(image, project))
    }

    /// The members of image `image`, oldest first.
    pub fn members_of(&self, image: &str) -> Vec<Arc<Member>> {
        let mut rows = self.members.find(BY_IMAGE, image);
        rows.sort_by(|a, b| (a.created_at, &a.member_id).cmp(&(b.created_at, &b.member_id)));
        rows
    }

    /// Image `image_id` written unchanged with `along`'s writes to its
    /// member rows, all or nothing (the image's 404 when it is gone).
    async fn with_members(
        &self,
        image_id: &str,
        along: impl FnOnce(&Image, &mut TxView<'_, Member>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let missing = || Fault::not_found(format!("No image found with ID {image_id}"));
        self.table
            .with_children(image_id, missing, &self.members, along)
            .await
            .map(drop)
    }

    /// Offers image `image_id` to `project` (`pending`). 409 when it is a
    /// member already; 413 past the member quota.
    pub async fn add_member(
        &self,
        image_id: &str,
        project: &str,
        now: DateTime<Utc>,
    ) -> Result<Member, Fault> {
        let row = Member {
            image_id: image_id.to_string(),
            member_id: project.to_string(),
            status: "pending".into(),
            created_at: now,
            updated_at: now,
        };
        let made = row.clone();
        self.with_members(image_id, |_, view| {
            let key = member_key(image_id, project);
            if view.get(&key).is_some() {
                return Err(Fault::conflict(format!(
                    "Member {project} is duplicated for image {image_id}"
                )));
            }
            if view.find_ids(BY_IMAGE, image_id).len() >= MEMBER_QUOTA {
                return Err(Fault::new(
                    413,
                    format!(
                        "Image member limit exceeded for image {image_id}: \
                         Maximum number of image members exceeded ({MEMBER_QUOTA})."
                    ),
                ));
            }
            view.put(&key, row);
            Ok(())
        })
        .await?;
        Ok(made)
    }

    /// Sets `project`'s membership status (`missing` when it has none).
    pub async fn set_member_status(
        &self,
        image_id: &str,
        project: &str,
        status: &str,
        now: DateTime<Utc>,
        missing: impl FnOnce() -> Fault,
    ) -> Result<Member, Fault> {
        let mut out: Option<Member> = None;
        self.with_members(image_id, |_, view| {
            let key = member_key(image_id, project);
            let mut m = view.get(&key).ok_or_else(missing)?;
            m.status = status.to_string();
            m.updated_at = now;
            out = Some(m.clone());
            view.put(&key, m);
            Ok(())
        })
        .await?;
        out.ok_or_else(|| Fault::internal("membership vanished"))
    }

    /// Takes image `image_id` away from `project` (`missing` when it is
    /// not a member).
    pub async fn remove_member(
        &self,
        image_id: &str,
        project: &str,
        missing: impl FnOnce() -> Fault,
    ) -> Result<(), Fault> {
        self.with_members(image_id, |_, view| {
            let key = member_key(image_id, project);
            if view.get(&key).is_none() {
                return Err(missing());
            }
            view.delete(&key);
            Ok(())
        })
        .await
    }
}
