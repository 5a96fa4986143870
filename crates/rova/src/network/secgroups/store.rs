//! Security groups as the database keeps them: the `security_groups`
//! rows and their rules, rows of their own in `security_group_rules` (one
//! per rule, keyed by the rule's id, with its group, project and remote
//! group as columns). A rule is written together with its group's row
//! (whose revision it bumps), all or nothing, so two processes adding
//! rules to one group are serialised by the group row's version token and
//! a group deleted meanwhile refuses the rule. Readers get a group with
//! its rules, in the order they were added.

use super::{SecurityGroup, SecurityGroupRule};
use crate::store::{Store, Table, TxView};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A rule as stored: the rule, and its place among its group's rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleRow {
    #[serde(flatten)]
    pub rule: SecurityGroupRule,
    #[serde(default)]
    pub position: u64,
}

/// The index of rule rows by group.
const BY_GROUP: &str = "group";
/// The index of rule rows by remote group.
const BY_REMOTE: &str = "remote";

/// The groups and their rule rows.
pub struct SecurityGroups {
    groups: Table<SecurityGroup>,
    rules: Table<RuleRow>,
}

impl SecurityGroups {
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        Ok(SecurityGroups {
            groups: Table::load("security_group", store)?,
            rules: Table::load("security_group_rule", store)?
                .indexed(BY_GROUP, |r: &RuleRow| {
                    Some(r.rule.security_group_id.clone())
                })
                .indexed(BY_REMOTE, |r: &RuleRow| r.rule.remote_group_id.clone()),
        })
    }

    /// `row` with its rules, in the order they were added.
    fn assemble(&self, row: &SecurityGroup) -> Arc<SecurityGroup> {
        let mut rows = self.rules.find(BY_GROUP, &row.id);
        rows.sort_by(|a, b| (a.position, &a.rule.id).cmp(&(b.position, &b.rule.id)));
        let mut g = row.clone();
        g.rules = rows.iter().map(|r| r.rule.clone()).collect();
        Arc::new(g)
    }

    /// Group `id` with its rules.
    pub fn get(&self, id: &str) -> Option<Arc<SecurityGroup>> {
        self.groups.get(id).map(|g| self.assemble(&g))
    }

    /// Every group, with its rules.
    pub fn all(&self) -> Vec<Arc<SecurityGroup>> {
        self.groups.all().iter().map(|g| self.assemble(g)).collect()
    }

    /// The groups `keep` accepts, with their rules. `keep` sees each
    /// group without its rules.
    pub fn filter(&self, keep: impl FnMut(&SecurityGroup) -> bool) -> Vec<Arc<SecurityGroup>> {
        self.groups
            .filter(keep)
            .iter()
            .map(|g| self.assemble(g))
            .collect()
    }

    /// Rule `id`, with its group.
    pub fn rule(&self, id: &str) -> Option<(Arc<SecurityGroup>, SecurityGroupRule)> {
        let row = self.rules.get(id)?;
        let group = self.get(&row.rule.security_group_id)?;
        Some((group, row.rule.clone()))
    }

    /// Inserts group `g` with the rules it holds, all or nothing
    /// (`conflict` when the id is taken).
    pub async fn insert_new(
        &self,
        g: SecurityGroup,
        conflict: Fault,
    ) -> Result<Arc<SecurityGroup>, Fault> {
        let id = g.id.clone();
        let rules = g.rules.clone();
        let row = self
            .groups
            .insert_with(&id, g, conflict, None, &self.rules, |_, view| {
                for (position, rule) in rules.into_iter().enumerate() {
                    let rid = rule.id.clone();
                    let position = position as u64;
                    view.put(&rid, RuleRow { rule, position });
                }
                Ok(())
            })
            .await?;
        Ok(self.assemble(&row))
    }

    /// Changes a group's own fields (not its rules).
    pub async fn update(
        &self,
        id: &str,
        missing: impl FnOnce() -> Fault,
        change: impl FnOnce(&mut SecurityGroup) -> Result<(), Fault>,
    ) -> Result<Arc<SecurityGroup>, Fault> {
        let (row, ()) = self.groups.update(id, missing, change).await?;
        Ok(self.assemble(&row))
    }

    /// Deletes group `id` with its rules and the other groups' rules that
    /// name it as their remote group (Neutron's cascade), all or nothing.
    /// The ids of the other groups that lost rules, or `None` when there
    /// was no such group.
    pub async fn delete(&self, id: &str) -> Result<Option<Vec<String>>, Fault> {
        let mut touched: Vec<String> = Vec::new();
        let gone = self
            .groups
            .remove_with(id, &self.rules, |_, view| {
                for rid in view.find_ids(BY_GROUP, id) {
                    view.delete(&rid);
                }
                for rid in view.find_ids(BY_REMOTE, id) {
                    if let Some(r) = view.get(&rid) {
                        touched.push(r.rule.security_group_id.clone());
                    }
                    view.delete(&rid);
                }
                Ok(())
            })
            .await?;
        touched.retain(|g| g != id);
        touched.sort();
        touched.dedup();
        Ok(gone.map(|_| touched))
    }

    /// Adds `rule` to its group, bumping the group's revision, unless
    /// `duplicate` finds an equal rule among the group's (its id is then
    /// the error).
    pub async fn add_rule(
        &self,
        rule: SecurityGroupRule,
        revision: impl FnOnce(&mut SecurityGroup),
        duplicate: impl Fn(&SecurityGroupRule) -> bool,
    ) -> Result<Result<(), String>, Fault> {
        let sg_id = rule.security_group_id.clone();
        let mut dup: Option<String> = None;
        let made = self
            .with_rules(&sg_id, revision, |view| {
                let mine: Vec<RuleRow> = view
                    .find_ids(BY_GROUP, &sg_id)
                    .iter()
                    .filter_map(|r| view.get(r))
                    .collect();
                if let Some(r) = mine.iter().find(|r| duplicate(&r.rule)) {
                    dup = Some(r.rule.id.clone());
                    return Err(Fault::conflict("duplicate"));
                }
                let position = mine.iter().map(|r| r.position + 1).max().unwrap_or(0);
                let rid = rule.id.clone();
                view.put(&rid, RuleRow { rule, position });
                Ok(())
            })
            .await;
        match (made, dup) {
            (_, Some(existing)) => Ok(Err(existing)),
            (Ok(_), None) => Ok(Ok(())),
            (Err(e), None) => Err(e),
        }
    }

    /// Removes rule `rule_id` of group `sg_id`, bumping the group's
    /// revision (404 when the group has no such rule).
    pub async fn delete_rule(
        &self,
        sg_id: &str,
        rule_id: &str,
        revision: impl FnOnce(&mut SecurityGroup),
    ) -> Result<(), Fault> {
        self.with_rules(sg_id, revision, |view| {
            let ours = view
                .get(rule_id)
                .is_some_and(|r| r.rule.security_group_id == sg_id);
            if !ours {
                return Err(Fault::not_found("gone"));
            }
            view.delete(rule_id);
            Ok(())
        })
        .await
    }

    /// Group `sg_id`'s row changed by `revision` and written with
    /// `along`'s writes to the rule rows, all or nothing (404 when the
    /// group is gone).
    async fn with_rules(
        &self,
        sg_id: &str,
        revision: impl FnOnce(&mut SecurityGroup),
        along: impl FnOnce(&mut TxView<'_, RuleRow>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let change = |g: &mut SecurityGroup| {
            revision(g);
            Ok(())
        };
        self.groups
            .update_with(
                sg_id,
                || Fault::not_found("gone"),
                change,
                &self.rules,
                |_, view| along(view),
            )
            .await
            .map(drop)
    }
}
