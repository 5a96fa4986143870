//! Cinder's attachment records as other services drive them: the
//! attachments API (3.27+: create — a reservation, or a connection when a
//! connector is given —, update with a connector, `os-complete`, delete)
//! and the older volume actions clients still send (`os-reserve`,
//! `os-unreserve`, `os-begin_detaching`, `os-roll_detaching`, `os-attach`,
//! `os-detach`, `os-initialize_connection`). Nova's own attach path is in
//! `compute::volumes`; both write the same [`Attachment`]s in the volume's
//! row, each step one compare-and-swap on it.
//!
//! Statuses follow Cinder's `volume_attached` / `volume_detached`: an
//! attachment is `reserved`, then `attaching` once it has a connection,
//! then `attached` (the volume `reserved` → `attaching` → `in-use`); when
//! one goes, the volume's status is worked out from those left.

use super::backend::Location;
use super::{invalid_volume, not_found, Attachment, Volume, Volumes};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

/// Cinder's "VolumeAttachment X could not be found." (404).
pub fn attachment_not_found(id: &str) -> Fault {
    Fault::not_found(format!(
        "Volume attachment could not be found with filter: attachment_id = {id}."
    ))
}

impl Attachment {
    /// Its `attach_status` (records made before the field existed: by
    /// whether the attach finished).
    pub fn status(&self) -> &str {
        match &self.status {
            Some(s) => s,
            None if self.attached_at.is_some() => "attached",
            None => "reserved",
        }
    }
}

/// The volume's status and `attach_status` from the attachments it has
/// (Cinder's `_get_statuses_from_attachments`).
fn settle(v: &mut Volume) {
    let has = |s: &str| v.attachments.iter().any(|a| a.status() == s);
    let (status, attach) = if v.attachments.is_empty() {
        ("available", "detached")
    } else if has("attached") {
        ("in-use", "attached")
    } else if has("attaching") {
        ("attaching", "attaching")
    } else if has("detaching") {
        ("detaching", "attached")
    } else {
        ("reserved", "reserved")
    };
    v.status = status.into();
    v.attach_status = attach.into();
}

/// Attachment `att` leaves volume `v`, whose status follows from those
/// left; a 404 when it has no such attachment.
fn remove_attachment(v: &mut Volume, att: &str) -> Result<(), Fault> {
    let before = v.attachments.len();
    v.attachments.retain(|a| a.id != att);
    if v.attachments.len() == before {
        return Err(attachment_not_found(att));
    }
    settle(v);
    Ok(())
}

impl Volumes {
    /// One compare-and-swap on volume `id`'s row: `change` checks and
    /// changes it (its error leaves the row as it was), and the volume is
    /// stamped as changed at `now`.
    async fn step(
        &self,
        id: &str,
        missing: impl Fn() -> Fault,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Volume) -> Result<(), Fault>,
    ) -> Result<Arc<Volume>, Fault> {
        let (v, ()) = self
            .table
            .update(id, missing, |v| {
                change(v)?;
                v.updated_at = Some(now);
                Ok(())
            })
            .await?;
        Ok(v)
    }

    /// Volume `id`'s connection for a hypervisor: Nova's
    /// `connection_info` (`driver_volume_type` and `data`).
    pub fn connection_info(&self, id: &str) -> Value {
        let Location::File(path) = self.location(id);
        json!({
            "driver_volume_type": "file",
            "data": {"path": path.to_string_lossy(), "format": "raw", "volume_id": id},
        })
    }

    /// The attachment with id `att` and its volume, when `project` may
    /// see it (an admin sees every project's).
    pub fn attachment(
        &self,
        att: &str,
        project: &str,
        admin: bool,
    ) -> Result<(Arc<Volume>, Attachment), Fault> {
        self.table
            .filter(|v| v.attachments.iter().any(|a| a.id == att))
            .into_iter()
            .filter(|v| admin || v.project_id == project)
            .find_map(|v| {
                let a = v.attachments.iter().find(|a| a.id == att)?.clone();
                Some((v, a))
            })
            .ok_or_else(|| attachment_not_found(att))
    }

    /// Attachment create: reserves volume `id` for `instance`; with a
    /// connector the connection is made too.
    pub async fn attachment_create(
        &self,
        id: &str,
        instance: Option<String>,
        connector: Option<Value>,
        mode: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Attachment, Fault> {
        let att = uuid::Uuid::new_v4().to_string();
        let connection = connector.as_ref().map(|_| self.connection_info(id));
        let v = self
            .step(
                id,
                || not_found(id),
                now,
                |v| {
                    if v.status.contains("error") {
                        return Err(invalid_volume(format!(
                            "Volume attachments can not be created if the volume is in an \
                             error state. The Volume {id} currently has a status of: {} ",
                            v.status
                        )));
                    }
                    if !["available", "downloading"].contains(&v.status.as_str()) {
                        return Err(invalid_volume(format!(
                            "Volume {id} status must be available or downloading to reserve, \
                             but the current status is {}.",
                            v.status
                        )));
                    }
                    let status = if connector.is_some() {
                        "attaching"
                    } else {
                        "reserved"
                    };
                    v.attachments.push(Attachment {
                        id: att.clone(),
                        server_id: instance.clone().unwrap_or_default(),
                        device: mountpoint(connector.as_ref()),
                        attached_at: None,
                        host: host_of(connector.as_ref()),
                        status: Some(status.into()),
                        connector: connector.clone(),
                        connection_info: connection.clone(),
                        attach_mode: Some(mode.clone().unwrap_or_else(|| "null".into())),
                    });
                    settle(v);
                    Ok(())
                },
            )
            .await?;
        found(&v, &att)
    }

    /// Attachment update: the connection for `connector`.
    pub async fn attachment_update(
        &self,
        vol: &str,
        att: &str,
        connector: Value,
        now: DateTime<Utc>,
    ) -> Result<Attachment, Fault> {
        let connection = self.connection_info(vol);
        let v = self
            .step(
                vol,
                || attachment_not_found(att),
                now,
                |v| {
                    if v.status.contains("error") {
                        return Err(Fault::conflict(format!(
                            "Volume attachments can not be updated if the volume is in an \
                             error state. The Volume {vol} currently has a status of: {} ",
                            v.status
                        )));
                    }
                    let Some(a) = v.attachments.iter_mut().find(|a| a.id == att) else {
                        return Err(attachment_not_found(att));
                    };
                    a.device = mountpoint(Some(&connector)).or(a.device.take());
                    a.host = host_of(Some(&connector));
                    a.connector = Some(connector);
                    a.connection_info = Some(connection);
                    a.attached_at = Some(now);
                    a.status = Some("attaching".into());
                    settle(v);
                    Ok(())
                },
            )
            .await?;
        found(&v, att)
    }

    /// `os-complete`: the attachment is `attached`, the volume `in-use`.
    pub async fn attachment_complete(
        &self,
        vol: &str,
        att: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        self.step(
            vol,
            || attachment_not_found(att),
            now,
            |v| {
                let Some(a) = v.attachments.iter_mut().find(|a| a.id == att) else {
                    return Err(attachment_not_found(att));
                };
                a.status = Some("attached".into());
                a.attached_at.get_or_insert(now);
                v.status = "in-use".into();
                v.attach_status = "attached".into();
                Ok(())
            },
        )
        .await
        .map(drop)
    }

    /// Attachment delete: the record goes and the volume's status follows
    /// from those left, which are returned.
    pub async fn attachment_delete(
        &self,
        vol: &str,
        att: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Attachment>, Fault> {
        let v = self
            .step(
                vol,
                || attachment_not_found(att),
                now,
                |v| remove_attachment(v, att),
            )
            .await?;
        Ok(v.attachments.clone())
    }

    /// A legacy status step: volume `id` moves from one of `from` to `to`,
    /// or the action is refused with Cinder's text for it.
    pub async fn legacy_step(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        refusal: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        self.step(
            id,
            || not_found(id),
            now,
            |v| {
                if !from.contains(&v.status.as_str()) {
                    return Err(invalid_volume(refusal));
                }
                v.status = to.into();
                Ok(())
            },
        )
        .await
        .map(drop)
    }

    /// `os-unreserve`: an `attaching` volume with no attachment goes back
    /// to `available` (one with attachments keeps the status they give).
    pub async fn unreserve(&self, id: &str, now: DateTime<Utc>) -> Result<(), Fault> {
        self.step(
            id,
            || not_found(id),
            now,
            |v| {
                if v.status == "attaching" {
                    settle(v);
                }
                Ok(())
            },
        )
        .await
        .map(drop)
    }

    /// `os-attach`: the volume attached to `instance` (or a host) at
    /// `mountpoint`, `in-use`.
    pub async fn legacy_attach(
        &self,
        id: &str,
        instance: Option<String>,
        host: Option<String>,
        mountpoint: String,
        mode: String,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        self.step(
            id,
            || not_found(id),
            now,
            |v| {
                if !["available", "attaching", "reserved"].contains(&v.status.as_str()) {
                    return Err(invalid_volume(format!(
                        "Volume {id} status must be available or attaching or reserved to \
                             attach, but the current status is {}.",
                        v.status
                    )));
                }
                // A reservation for the same server becomes the attachment.
                let server = instance.clone().unwrap_or_default();
                v.attachments
                    .retain(|a| !(a.server_id == server && a.status() == "reserved"));
                v.attachments.push(Attachment {
                    id: uuid::Uuid::new_v4().to_string(),
                    server_id: server,
                    device: Some(mountpoint),
                    attached_at: Some(now),
                    host,
                    status: Some("attached".into()),
                    connector: None,
                    connection_info: None,
                    attach_mode: Some(mode),
                });
                settle(v);
                Ok(())
            },
        )
        .await
        .map(drop)
    }

    /// `os-detach`: attachment `att` (or the volume's only one) goes;
    /// nothing happens to a volume with no attachment.
    pub async fn legacy_detach(
        &self,
        id: &str,
        att: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        self.step(
            id,
            || not_found(id),
            now,
            |v| {
                // Cinder's API casts the detach to the volume service and
                // answers 202; a volume with nothing attached is left as it
                // is (the service only logs it).
                if v.attachments.is_empty() {
                    return Ok(());
                }
                let gone = match &att {
                    Some(a) => a.clone(),
                    None if v.attachments.len() == 1 => v.attachments[0].id.clone(),
                    None => {
                        return Err(invalid_volume(
                            "Volume has multiple attachments: an attachment_id is required.",
                        ))
                    }
                };
                remove_attachment(v, &gone)
            },
        )
        .await
        .map(drop)
    }
}

fn found(v: &Volume, att: &str) -> Result<Attachment, Fault> {
    v.attachments
        .iter()
        .find(|a| a.id == att)
        .cloned()
        .ok_or_else(|| attachment_not_found(att))
}

fn mountpoint(connector: Option<&Value>) -> Option<String> {
    connector?.get("mountpoint")?.as_str().map(str::to_string)
}

fn host_of(connector: Option<&Value>) -> Option<String> {
    connector?.get("host")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(statuses: &[&str]) -> Volume {
        let mut v: Volume = serde_json::from_value(json!({
            "id": "v", "project_id": "p", "user_id": "u", "name": null,
            "description": null, "status": "x", "size": 1,
            "availability_zone": "nova", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": null, "source_volid": null, "snapshot_id": null,
            "attach_status": "x", "migration_status": null, "host": null,
            "attachments": []
        }))
        .expect("volume");
        for (i, s) in statuses.iter().enumerate() {
            v.attachments.push(Attachment {
                id: i.to_string(),
                server_id: "s".into(),
                device: None,
                attached_at: None,
                host: None,
                status: Some(s.to_string()),
                connector: None,
                connection_info: None,
                attach_mode: None,
            });
        }
        v
    }

    #[test]
    fn the_volume_status_follows_its_attachments() {
        for (atts, want) in [
            (&[][..], ("available", "detached")),
            (&["reserved"][..], ("reserved", "reserved")),
            (&["attaching", "reserved"][..], ("attaching", "attaching")),
            (&["reserved", "attached"][..], ("in-use", "attached")),
        ] {
            let mut v = vol(atts);
            settle(&mut v);
            assert_eq!(
                (v.status.as_str(), v.attach_status.as_str()),
                want,
                "{atts:?}"
            );
        }
    }

    #[test]
    fn records_without_a_status_read_as_their_progress() {
        let mut a = vol(&["reserved"]).attachments.remove(0);
        a.status = None;
        assert_eq!(a.status(), "reserved");
        a.attached_at = Some(Utc::now());
        assert_eq!(a.status(), "attached");
    }
}
