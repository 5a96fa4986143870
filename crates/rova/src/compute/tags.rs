//! A server's tags as the database keeps them: rows of their own
//! (`instance_tags`, one per server and tag, id `<server>/<tag>`, with the
//! tag's place among the server's; Nova's `tags` table), never inside the
//! server's document. A change of tags writes the server's row and its tag
//! rows in one transaction ([`Compute::update_tags`]), a new server's tags
//! are written with its other rows ([`rows_of`]), and the write that marks
//! a server deleted takes its tags along, as Nova's instance destroy does.
//! Readers get a server with its tags from the rows ([`Compute::with_tags`]).

use super::Compute;
use crate::store::{Table, TxView};
use chrono::{DateTime, Utc};
use rova_core::model::Instance;
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One tag of a server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub instance_uuid: String,
    pub tag: String,
    /// Its place among the server's tags.
    pub position: u32,
}

/// The index of tag rows by server.
pub const BY_SERVER: &str = "server";

/// The tag table, indexed by server.
pub fn table(store: &Arc<crate::store::Store>) -> Result<Table<Tag>, String> {
    Ok(Table::load("instance_tag", store)?
        .indexed(BY_SERVER, |t: &Tag| Some(t.instance_uuid.clone())))
}

fn key(server: &str, tag: &str) -> String {
    format!("{server}/{tag}")
}

/// The rows of server `uuid`'s tags `tags`, keyed, in order.
pub fn rows_of(uuid: &str, tags: &[String]) -> Vec<(String, Tag)> {
    tags.iter()
        .enumerate()
        .map(|(position, tag)| {
            let row = Tag {
                instance_uuid: uuid.to_string(),
                tag: tag.clone(),
                position: position as u32,
            };
            (key(uuid, tag), row)
        })
        .collect()
}

/// Makes server `uuid`'s tag rows in `view` match `tags` (rows of tags it
/// no longer has deleted, new or moved ones written).
pub fn sync(uuid: &str, tags: &[String], view: &mut TxView<'_, Tag>) {
    let want: std::collections::HashSet<String> = tags.iter().map(|t| key(uuid, t)).collect();
    for k in view.find_ids(BY_SERVER, uuid) {
        if !want.contains(&k) {
            view.delete(&k);
        }
    }
    for (k, row) in rows_of(uuid, tags) {
        if view.get(&k).as_ref() != Some(&row) {
            view.put(&k, row);
        }
    }
}

/// A change of a server's tags.
pub enum TagChange {
    ReplaceAll(Vec<String>),
    Add(String),
    Remove(String),
    Clear,
}

/// `change` applied to `tags` (Nova's rules); whether an added tag was
/// new. `id` names the server in a refusal.
fn apply(tags: &mut Vec<String>, change: TagChange, id: &str) -> Result<bool, Fault> {
    match change {
        TagChange::ReplaceAll(new) => {
            tags.clear();
            for tag in new {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            Ok(false)
        }
        TagChange::Add(tag) => {
            // Nova checks the count before looking for the tag, so a full
            // server refuses even a tag it already has.
            if tags.len() >= rova_core::validate::MAX_TAG_COUNT {
                return Err(rova_core::validate::tag_limit_exceeded());
            }
            if tags.contains(&tag) {
                return Ok(false);
            }
            tags.push(tag);
            Ok(true)
        }
        TagChange::Remove(tag) => {
            let before = tags.len();
            tags.retain(|t| *t != tag);
            if tags.len() == before {
                return Err(Fault::not_found(format!(
                    "Instance {id} has no tag '{tag}'"
                )));
            }
            Ok(false)
        }
        TagChange::Clear => {
            tags.clear();
            Ok(false)
        }
    }
}

impl Compute {
    /// Server `uuid`'s tags, in their order.
    pub fn tags_of(&self, uuid: &str) -> Vec<String> {
        let mut rows = self.tags.find(BY_SERVER, uuid);
        rows.sort_by_key(|t| t.position);
        rows.iter().map(|t| t.tag.clone()).collect()
    }

    /// `inst` with its tags from the rows (the same value when it holds
    /// them already).
    pub fn with_tags(&self, inst: Arc<Instance>) -> Arc<Instance> {
        let tags = self.tags_of(&inst.uuid);
        if tags == inst.tags {
            return inst;
        }
        let mut i = (*inst).clone();
        i.tags = tags;
        Arc::new(i)
    }

    /// Changes server `id`'s tags: `check` may refuse the change from the
    /// server's record; the server's row (its time and generation moved
    /// on) and its tag rows are written in one transaction. The server
    /// with its new tags, and whether an added tag was new.
    pub async fn update_tags(
        &self,
        id: &str,
        now: DateTime<Utc>,
        check: impl FnOnce(&Instance) -> Result<(), Fault>,
        change: TagChange,
    ) -> Result<(Arc<Instance>, bool), Fault> {
        let missing = || Fault::instance_not_found(id);
        let change = self.stamped(now, None, |i: &mut Instance| {
            check(i)?;
            // Read under the server's lock, which every tag write holds.
            let mut tags = self.tags_of(id);
            let created = apply(&mut tags, change, id)?;
            i.tags = tags;
            Ok(created)
        });
        let (row, created) = self
            .instances
            .update_with(id, missing, change, &self.tags, |i, view| {
                sync(&i.uuid, &i.tags, view);
                Ok(())
            })
            .await?;
        Ok((self.with_tags(row), created))
    }
}
