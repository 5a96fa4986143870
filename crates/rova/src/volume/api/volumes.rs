//! One volume: show, update (name, description, metadata), delete
//! (`force` for admins, `cascade` to its snapshots) and the actions
//! (`os-extend`, `os-reset_status`, `os-set_bootable`,
//! `os-volume_upload_image`).

use super::*;

pub(super) async fn show(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let v = r.volume(&app, &id)?;
    Ok(r.answer(StatusCode::OK, Some(json!({"volume": detail(&r, &v)}))))
}

pub(super) async fn update(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:update")?;
    let v = r.volume(&app, &id)?;
    let body = parse_json(&headers, &body)?;
    let u = wrapped(&body, "volume")?;
    const KNOWN: &[&str] = &[
        "name",
        "description",
        "display_name",
        "display_description",
        "metadata",
    ];
    only_known("volume", u, KNOWN)?;
    if r.minor >= 53 && u.is_empty() {
        return Err(fields::invalid(
            "volume",
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
    let metadata = match u.get("metadata") {
        None => None,
        Some(m) => Some(fields::metadata("metadata", m)?),
    };
    let v = app
        .volumes
        .update(&v, app.clock.now(), |v| {
            if let Some(n) = name {
                v.name = n;
            }
            if let Some(d) = description {
                v.description = d;
            }
            if let Some(m) = metadata {
                v.metadata = m;
            }
        })
        .await?;
    Ok(r.answer(StatusCode::OK, Some(json!({"volume": plain(&r, &v)}))))
}

pub(super) async fn delete(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:delete")?;
    let cascade = bool_param(q.as_deref(), "cascade")?;
    let force = bool_param(q.as_deref(), "force")?;
    let v = r.volume(&app, &id)?;
    if force {
        r.ctx
            .require_admin("volume_extension:volume_admin_actions:force_delete")?;
    }
    let how = crate::volume::DeleteMode {
        force,
        cascade,
        admin: r.admin(),
    };
    app.volumes.delete_as(&v, how, app.clock.now()).await?;
    Ok(r.answer(StatusCode::ACCEPTED, None))
}

/// Query parameter `name` as Cinder's `get_bool_param` reads it (absent:
/// false; oslo's boolean strings; anything else a 400).
fn bool_param(q: Option<&str>, name: &str) -> Result<bool, Fault> {
    let Some(val) = q.and_then(|q| {
        form_urlencoded::parse(q.as_bytes()).find_map(|(k, v)| (k == name).then(|| v.into_owned()))
    }) else {
        return Ok(false);
    };
    match val.to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(Fault::bad_request(format!(
            "Value '{val}' for '{name}' is not a boolean."
        ))),
    }
}

pub(super) async fn action(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let v = r.volume(&app, &id)?;
    let body = parse_json(&headers, &body)?;
    let Some((name, arg)) = body.as_object().and_then(|o| o.iter().next()) else {
        return Err(Fault::bad_request("Malformed request body").into());
    };
    let now = app.clock.now();
    match name.as_str() {
        "os-extend" => {
            r.member("volume:extend")?;
            let a = wrapped(&body, "os-extend")?;
            let n = a
                .get("new_size")
                .ok_or_else(|| Fault::bad_request("'new_size' is a required property"))?;
            let size = fields::volume_size("new_size", n)?;
            app.volumes.extend(&v, size, now).await?;
        }
        "os-reset_status" => {
            r.ctx
                .require_admin("volume_extension:volume_admin_actions:reset_status")?;
            let a = wrapped(&body, "os-reset_status")?;
            let status = a.get("status").and_then(Value::as_str).map(str::to_string);
            let attach = a
                .get("attach_status")
                .and_then(Value::as_str)
                .map(str::to_string);
            let migration = a.get("migration_status").and_then(Value::as_str);
            if status.is_none() && attach.is_none() && migration.is_none() {
                return Err(invalid_input(
                    "Must specify 'status', 'attach_status' or 'migration_status' for update.",
                )
                .into());
            }
            if let Some(a) = &attach {
                if !["attached", "detached"].contains(&a.as_str()) {
                    return Err(invalid_input(format!(
                        "Must specify a valid attach status, {a} is invalid."
                    ))
                    .into());
                }
            }
            let migration = migration.map(|m| (m != "none").then(|| m.to_string()));
            app.volumes
                .update(&v, now, |v| {
                    if let Some(s) = status {
                        v.status = s;
                    }
                    if let Some(a) = attach {
                        v.attach_status = a;
                    }
                    if let Some(m) = migration {
                        v.migration_status = m;
                    }
                })
                .await?;
        }
        "os-volume_upload_image" => return super::upload::action(&app, &r, &v, &body).await,
        "os-set_bootable" => {
            r.member("volume_extension:volume_actions:update_bootable")?;
            let a = wrapped(&body, "os-set_bootable")?;
            let b = match a.get("bootable") {
                Some(x) => fields::boolean("bootable", x)?,
                None => false,
            };
            app.volumes.update(&v, now, |v| v.bootable = b).await?;
            return Ok(r.answer(StatusCode::OK, None));
        }
        other => {
            if let Some(done) = super::attachments::legacy(&app, &r, &v, other, &body).await {
                return Ok(done?);
            }
            if let Some(done) = super::admin_actions::more(&app, &r, &v, other, &body).await {
                return Ok(done?);
            }
            return Err(Fault::bad_request(format!("There is no such action: {other}")).into());
        }
    }
    let _ = arg;
    Ok(r.answer(StatusCode::ACCEPTED, None))
}
