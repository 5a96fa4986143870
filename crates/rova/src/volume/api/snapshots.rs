//! Snapshots (`/snapshots`): create (of an `available` volume, or an
//! `in-use` one with `force` or from 3.66 on), list and detail (Cinder's
//! `name`, `status`, `volume_id` filters, `metadata` from 3.22, sorting
//! and paging as volumes have them), show, update (name, description and
//! their legacy `display_` spellings), delete, and the admin actions
//! `os-reset_status` and `os-force_delete`. A snapshot's metadata routes
//! are the volumes' ([`super::extras`]).
//!
//! Views by microversion, as Cinder's: the summary list shows the base
//! keys; create, update, show and the detail list add `group_snapshot_id`
//! (3.14), `user_id` (3.41) and `consumes_quota` (3.65); show and the
//! detail list add the extended attributes (`os-extended-snapshot-
//! attributes:project_id`, `:progress`).

use super::list::{listing, metadata_passes, parse_list, select, Listed};
use super::*;
use crate::volume::snapshot::{NewSnapshot, Snapshot, STATUSES};

const SORT_KEYS: &[&str] = &[
    "id",
    "status",
    "created_at",
    "updated_at",
    "display_name",
    "name",
    "volume_id",
    "project_id",
    "size",
];

/// Cinder's refusal of `force: false` from 3.66 on.
const FORCE_INVALID: &str = "Since microversion 3.66 the 'force' flag is invalid for this \
request.  For backward compatability, however, when the 'force' flag is passed with a value \
evaluating to True, it is silently ignored.";

impl Listed for Snapshot {
    fn id(&self) -> &str {
        &self.id
    }
    fn project(&self) -> &str {
        &self.project_id
    }
    fn sort_value(&self, key: &str) -> String {
        match key {
            "id" => self.id.clone(),
            "status" => self.status.clone(),
            "size" => format!("{:020}", self.size),
            "volume_id" => self.volume_id.clone(),
            "project_id" => self.project_id.clone(),
            "updated_at" => self.updated_at.map(|t| iso_z(&t)).unwrap_or_default(),
            "display_name" | "name" => self.name.clone().unwrap_or_default(),
            _ => format!("{}", self.created_at.format("%Y-%m-%dT%H:%M:%S%.9f")),
        }
    }
    fn passes(&self, key: &str, want: &str) -> bool {
        match key {
            "name" | "display_name" => self.name.as_deref() == Some(want),
            "status" => self.status == want,
            "volume_id" => self.volume_id == want,
            "metadata" => metadata_passes(&self.metadata, want),
            _ => true,
        }
    }
}

// ---- views ----

/// The keys every view has (Cinder's summary).
fn summary(s: &Snapshot) -> Value {
    json!({
        "id": s.id,
        "created_at": iso_micro(&s.created_at),
        "updated_at": s.updated_at.as_ref().map(iso_micro),
        "name": s.name,
        "description": s.description,
        "volume_id": s.volume_id,
        "status": s.status,
        "size": s.size,
        "metadata": s.metadata,
    })
}

/// The v3 detail: create and update answer it.
fn detail(r: &Req, s: &Snapshot) -> Value {
    let mut o = summary(s);
    let m = o.as_object_mut().expect("an object");
    if r.minor >= 14 {
        m.insert("group_snapshot_id".into(), Value::Null);
    }
    if r.minor >= 41 {
        m.insert("user_id".into(), json!(s.user_id));
    }
    if r.minor >= 65 {
        m.insert("consumes_quota".into(), json!(true));
    }
    o
}

/// The detail with the extended attributes: show and the detail list.
fn extended(r: &Req, s: &Snapshot) -> Value {
    let mut o = detail(r, s);
    o["os-extended-snapshot-attributes:project_id"] = json!(s.project_id);
    o["os-extended-snapshot-attributes:progress"] = json!(s.progress);
    o
}

// ---- handlers ----

pub(super) async fn create(
    State(app): A,
    caller: Caller,
    Path(_project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:create_snapshot")?;
    let body = parse_json(&headers, &body)?;
    let s = wrapped(&body, "snapshot")?;
    const KNOWN: &[&str] = &[
        "name",
        "display_name",
        "description",
        "volume_id",
        "force",
        "metadata",
    ];
    only_known("snapshot", s, KNOWN)?;
    let Some(volume_id) = s.get("volume_id") else {
        return Err(fields::invalid(
            "snapshot",
            &Value::Object(s.clone()),
            "'volume_id' is a required property",
        )
        .into());
    };
    let volume_id = optional_uuid("volume_id", Some(volume_id))?;
    let name = text("name", s.get("name").or(s.get("display_name")), 255)?.flatten();
    let description = text("description", s.get("description"), 255)?.flatten();
    let force = match s.get("force") {
        None => None,
        Some(f) => Some(fields::boolean("force", f)?),
    };
    let metadata = match s.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => fields::metadata("metadata", m)?,
    };
    if r.minor >= 66 && force == Some(false) {
        return Err(Fault::bad_request(FORCE_INVALID).into());
    }
    let Some(volume_id) = volume_id else {
        return Err(crate::volume::not_found("None").into());
    };
    let vol = r.volume(&app, &volume_id)?;
    let req = NewSnapshot {
        name,
        description,
        metadata,
        allow_in_use: force == Some(true) || r.minor >= 66,
    };
    let snap = app
        .volumes
        .create_snapshot(
            app.clock.now(),
            &r.ctx.project_id,
            &r.ctx.user_id,
            &vol.id,
            req,
        )
        .await?;
    Ok(r.answer(
        StatusCode::ACCEPTED,
        Some(json!({"snapshot": detail(&r, &snap)})),
    ))
}

async fn list(
    app: Arc<App>,
    caller: Caller,
    headers: HeaderMap,
    query: Option<String>,
    full: bool,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let mut q = parse_list(query.as_deref(), SORT_KEYS)?;
    if r.minor < 22 {
        q.filters.retain(|(k, _)| k != "metadata");
    }
    let found = select(&app.volumes.snapshots, &r, &q)?;
    let at = if full {
        "snapshots/detail"
    } else {
        "snapshots"
    };
    Ok(listing(&r, &q, ("snapshots", at), found, |s| match full {
        true => extended(&r, s),
        false => summary(s),
    }))
}

pub(super) async fn list_summary(
    State(app): A,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Res {
    list(app, caller, headers, q, false).await
}

pub(super) async fn list_detail(
    State(app): A,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Res {
    list(app, caller, headers, q, true).await
}

pub(super) async fn show(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let s = r.snapshot(&app, &id)?;
    Ok(r.answer(StatusCode::OK, Some(json!({"snapshot": extended(&r, &s)}))))
}

pub(super) async fn update(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:update_snapshot")?;
    let body = parse_json(&headers, &body)?;
    let u = wrapped(&body, "snapshot")?;
    const KNOWN: &[&str] = &["name", "description", "display_name", "display_description"];
    only_known("snapshot", u, KNOWN)?;
    if u.is_empty() {
        return Err(fields::invalid(
            "snapshot",
            &Value::Object(u.clone()),
            "{} is not valid under any of the given schemas",
        )
        .into());
    }
    let name = text("name", u.get("name").or(u.get("display_name")), 255)?;
    let description = text(
        "description",
        u.get("description").or(u.get("display_description")),
        255,
    )?;
    let s = r.snapshot(&app, &id)?;
    let s = app
        .volumes
        .update_snapshot(&s, app.clock.now(), |s| {
            if let Some(n) = name {
                s.name = n;
            }
            if let Some(d) = description {
                s.description = d;
            }
        })
        .await?;
    Ok(r.answer(StatusCode::OK, Some(json!({"snapshot": detail(&r, &s)}))))
}

pub(super) async fn delete(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:delete_snapshot")?;
    let s = r.snapshot(&app, &id)?;
    app.volumes
        .delete_snapshot(&s, false, app.clock.now())
        .await?;
    Ok(r.answer(StatusCode::ACCEPTED, None))
}

/// The snapshot statuses as Python prints the tuple.
fn statuses_tuple() -> String {
    let quoted: Vec<String> = STATUSES.iter().map(|s| format!("'{s}'")).collect();
    format!("({})", quoted.join(", "))
}

pub(super) async fn action(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let s = r.snapshot(&app, &id)?;
    let body = parse_json(&headers, &body)?;
    let Some(name) = body.as_object().and_then(|o| o.keys().next()) else {
        return Err(Fault::bad_request("Malformed request body").into());
    };
    let now = app.clock.now();
    match name.as_str() {
        "os-reset_status" => {
            r.ctx
                .require_admin("volume_extension:snapshot_admin_actions:reset_status")?;
            let a = wrapped(&body, "os-reset_status")?;
            only_known("os-reset_status", a, &["status"])?;
            let Some(asked) = a.get("status") else {
                return Err(fields::invalid(
                    "os-reset_status",
                    &Value::Object(a.clone()),
                    "'status' is a required property",
                )
                .into());
            };
            let asked = fields::string("status", asked)?;
            let status = asked.to_lowercase();
            if !STATUSES.contains(&status.as_str()) {
                return Err(Fault::bad_request(format!(
                    "Snapshot status: {asked} is invalid, valid statuses are: {}.",
                    statuses_tuple()
                ))
                .into());
            }
            app.volumes
                .update_snapshot(&s, now, |s| s.status = status)
                .await?;
        }
        "os-update_snapshot_status" => {
            // What Nova reports back for a snapshot it takes of an
            // attached volume: `creating` may end `available` or `error`,
            // `deleting` may end `error_deleting`.
            r.member("snapshot_extension:snapshot_actions:update_snapshot_status")?;
            let a = wrapped(&body, "os-update_snapshot_status")?;
            let Some(asked) = a.get("status").and_then(Value::as_str) else {
                return Err(Fault::bad_request("'status' must be specified.").into());
            };
            let allowed: &[&str] = match s.status.as_str() {
                "creating" => &["creating", "available", "error"],
                "deleting" => &["deleting", "error_deleting"],
                other => {
                    return Err(Fault::bad_request(format!(
                        "Snapshot status {other} not allowed for update_snapshot_status"
                    ))
                    .into())
                }
            };
            if !allowed.contains(&asked) {
                return Err(Fault::bad_request(format!(
                    "Provided snapshot status {asked} not allowed for snapshot with status {}.",
                    s.status
                ))
                .into());
            }
            let progress = a
                .get("progress")
                .and_then(Value::as_str)
                .map(str::to_string);
            let status = asked.to_string();
            app.volumes
                .update_snapshot(&s, now, |s| {
                    s.status = status;
                    if let Some(p) = progress {
                        s.progress = p;
                    }
                })
                .await?;
        }
        "os-force_delete" => {
            r.ctx
                .require_admin("volume_extension:snapshot_admin_actions:force_delete")?;
            app.volumes.delete_snapshot(&s, true, now).await?;
        }
        other => {
            return Err(Fault::bad_request(format!("There is no such action: {other}")).into());
        }
    }
    Ok(r.answer(StatusCode::ACCEPTED, None))
}
