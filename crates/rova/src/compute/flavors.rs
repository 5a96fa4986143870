//! Flavors as the database keeps them: the `flavors` rows and their two
//! child tables, `flavor_extra_specs` (one row per flavor and key) and
//! `flavor_projects` (one row per private flavor and project granted
//! access, Nova's `flavor_projects`). Every change to a flavor's child
//! rows is written together with its flavor row, all or nothing, so a
//! flavor deleted by another process meanwhile makes the change fail
//! instead of leaving rows behind. Readers get the flavor assembled with
//! its extra specs and projects.

use super::Flavor;
use crate::store::{Group, Guard, Store, Table, TxView};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One extra spec of a flavor: row `<flavor>/<key>` (a flavor id has no
/// `/`, so the first one splits the pair).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtraSpec {
    pub flavor_id: String,
    pub key: String,
    pub value: String,
}

/// A project's access to a private flavor: row `<flavor>/<project>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Access {
    pub flavor_id: String,
    pub project_id: String,
    /// Its place among the flavor's grants, in the order they were made.
    pub position: u64,
}

/// The index of both child tables by flavor.
const BY_FLAVOR: &str = "flavor";

fn child_id(flavor: &str, key: &str) -> String {
    format!("{flavor}/{key}")
}

/// The flavors and their child rows.
pub struct Flavors {
    rows: Table<Flavor>,
    specs: Table<ExtraSpec>,
    access: Table<Access>,
}

impl Flavors {
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        Ok(Flavors {
            rows: Table::load("flavor", store)?,
            specs: Table::load("flavor_extra_spec", store)?
                .indexed(BY_FLAVOR, |s: &ExtraSpec| Some(s.flavor_id.clone())),
            access: Table::load("flavor_project", store)?
                .indexed(BY_FLAVOR, |a: &Access| Some(a.flavor_id.clone())),
        })
    }

    /// `row` with its extra specs and projects from the child rows.
    fn assemble(&self, row: &Flavor) -> Arc<Flavor> {
        let mut f = row.clone();
        f.extra_specs = self
            .specs
            .find(BY_FLAVOR, &row.id)
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect();
        let mut grants = self.access.find(BY_FLAVOR, &row.id);
        grants.sort_by(|a, b| (a.position, &a.project_id).cmp(&(b.position, &b.project_id)));
        f.projects = grants.iter().map(|a| a.project_id.clone()).collect();
        Arc::new(f)
    }

    /// Flavor `id` with its extra specs and projects.
    pub fn get(&self, id: &str) -> Option<Arc<Flavor>> {
        self.rows.get(id).map(|r| self.assemble(&r))
    }

    /// Every flavor, with its extra specs and projects.
    pub fn all(&self) -> Vec<Arc<Flavor>> {
        self.rows.all().iter().map(|r| self.assemble(r)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Stores a new flavor (its extra specs and projects are not part of
    /// the row and must be empty). `conflict` when the id is taken; a
    /// flavor of the same name is refused by the database in the same
    /// transaction (Nova's unique flavor name), with `name_taken`. Grants
    /// left under the id (by a release that deleted a flavor's grants
    /// apart from it) are removed with the insert.
    pub async fn create(
        &self,
        flavor: Flavor,
        conflict: Fault,
        name_taken: Fault,
    ) -> Result<Arc<Flavor>, Fault> {
        let id = flavor.id.clone();
        let unique = Guard::Count {
            column: "name",
            value: flavor.name.clone(),
            limit: 1,
            message: name_taken.message.clone(),
        };
        let made = self
            .rows
            .insert_with(
                &id,
                flavor,
                conflict,
                Some(unique),
                &self.access,
                |f, view| {
                    for aid in view.find_ids(BY_FLAVOR, &f.id) {
                        view.delete(&aid);
                    }
                    Ok(())
                },
            )
            .await;
        match made {
            Ok(row) => Ok(self.assemble(&row)),
            Err(f) if f.code == 403 && f.message == name_taken.message => Err(name_taken),
            Err(f) => Err(f),
        }
    }

    /// Changes a flavor's own fields (not its extra specs or projects).
    pub async fn update(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut Flavor),
    ) -> Result<Arc<Flavor>, Fault> {
        let (row, ()) = self
            .rows
            .update(id, missing, |f| {
                change(f);
                Ok(())
            })
            .await?;
        Ok(self.assemble(&row))
    }

    /// Deletes a flavor with its extra specs and grants, all or nothing.
    pub async fn delete(&self, id: &str) -> Result<(), Fault> {
        let queued = {
            let mut g = Group::new();
            g.with(&self.rows, |v| {
                if v.get(id).is_some() {
                    v.delete(id);
                }
                Ok(())
            })
            .and_then(|()| {
                g.with(&self.specs, |v| {
                    v.delete_found(BY_FLAVOR, id);
                    Ok(())
                })
            })
            .and_then(|()| {
                g.with(&self.access, |v| {
                    v.delete_found(BY_FLAVOR, id);
                    Ok(())
                })
            })
            .and_then(|()| g.queue())
        };
        queued?.outcome().await
    }

    /// The flavor row written (unchanged) with `along`'s writes to table
    /// `child`, all or nothing.
    async fn with_child<U>(
        &self,
        id: &str,
        child: &Table<U>,
        along: impl FnOnce(&Flavor, &mut TxView<'_, U>) -> Result<(), Fault>,
    ) -> Result<Arc<Flavor>, Fault>
    where
        U: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let missing = || Fault::not_found(format!("Flavor {id} could not be found."));
        let row = self.rows.with_children(id, missing, child, along).await?;
        Ok(self.assemble(&row))
    }

    /// Sets extra specs (each key created or replaced), all or nothing.
    pub async fn set_specs(
        &self,
        id: &str,
        specs: BTreeMap<String, String>,
    ) -> Result<Arc<Flavor>, Fault> {
        self.with_child(id, &self.specs, |f, view| {
            for (key, value) in specs {
                let row = ExtraSpec {
                    flavor_id: f.id.clone(),
                    key: key.clone(),
                    value,
                };
                view.put(&child_id(&f.id, &key), row);
            }
            Ok(())
        })
        .await
    }

    /// Removes extra spec `key` (`missing` when the flavor has none).
    pub async fn delete_spec(
        &self,
        id: &str,
        key: &str,
        missing: impl FnOnce() -> Fault,
    ) -> Result<Arc<Flavor>, Fault> {
        self.remove_child(id, &self.specs, key, missing).await
    }

    /// Removes row `<id>/<key>` of table `child` with the flavor row
    /// written (`missing` when there is no such row).
    async fn remove_child<U>(
        &self,
        id: &str,
        child: &Table<U>,
        key: &str,
        missing: impl FnOnce() -> Fault,
    ) -> Result<Arc<Flavor>, Fault>
    where
        U: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.with_child(id, child, |f, view| {
            let cid = child_id(&f.id, key);
            if view.get(&cid).is_none() {
                return Err(missing());
            }
            view.delete(&cid);
            Ok(())
        })
        .await
    }

    /// Grants `project` access to flavor `id` (`exists` when it has it).
    pub async fn grant(
        &self,
        id: &str,
        project: &str,
        exists: impl FnOnce() -> Fault,
    ) -> Result<Arc<Flavor>, Fault> {
        self.with_child(id, &self.access, |f, view| {
            let aid = child_id(&f.id, project);
            if view.get(&aid).is_some() {
                return Err(exists());
            }
            let position = view
                .find_ids(BY_FLAVOR, &f.id)
                .iter()
                .filter_map(|g| view.get(g))
                .map(|a| a.position + 1)
                .max()
                .unwrap_or(0);
            let row = Access {
                flavor_id: f.id.clone(),
                project_id: project.to_string(),
                position,
            };
            view.put(&aid, row);
            Ok(())
        })
        .await
    }

    /// Takes `project`'s access to flavor `id` away (`missing` when it
    /// has none).
    pub async fn revoke(
        &self,
        id: &str,
        project: &str,
        missing: impl FnOnce() -> Fault,
    ) -> Result<Arc<Flavor>, Fault> {
        self.remove_child(id, &self.access, project, missing).await
    }
}
