//! The remaining volume actions of `POST /volumes/{id}/action`: the
//! admin's `os-force_delete` and `os-force_detach`,
//! `os-update_readonly_flag`, and the image metadata actions
//! (`os-set_image_metadata`, `os-unset_image_metadata`,
//! `os-show_image_metadata`).

use super::*;
use crate::volume::DeleteMode;

/// The action `name` on volume `v`; `None` when it is not one of these.
pub(super) async fn more(
    app: &Arc<App>,
    r: &Req,
    v: &Volume,
    name: &str,
    body: &Value,
) -> Option<Result<Response, Fault>> {
    let now = app.clock.now();
    let arg = || wrapped(body, name).cloned().unwrap_or_default();
    let res = match name {
        "os-force_delete" => force_delete(app, r, v).await,
        "os-force_detach" => {
            if let Err(f) = r
                .ctx
                .require_admin("volume_extension:volume_admin_actions:force_detach")
            {
                return Some(Err(f));
            }
            let att = arg()
                .get("attachment_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            app.volumes
                .legacy_detach(&v.id, att, now)
                .await
                .map(|()| r.answer(StatusCode::ACCEPTED, None))
        }
        "os-update_readonly_flag" => {
            let flag = match arg().get("readonly") {
                Some(x) => fields::boolean("readonly", x),
                None => Err(Fault::bad_request("Must specify readonly in request.")),
            };
            match flag {
                Ok(ro) => app
                    .volumes
                    .update(v, now, |v| v.readonly = Some(ro))
                    .await
                    .map(|_| r.answer(StatusCode::ACCEPTED, None)),
                Err(f) => Err(f),
            }
        }
        "os-set_image_metadata" => {
            let a = arg();
            let Some(Value::Object(meta)) = a.get("metadata") else {
                return Some(Err(Fault::bad_request("Malformed request body")));
            };
            let mut set = BTreeMap::new();
            for (k, val) in meta {
                let Some(s) = val.as_str() else {
                    return Some(Err(invalid_input(format!(
                        "Invalid metadata value for {k}"
                    ))));
                };
                set.insert(k.clone(), s.to_string());
            }
            app.volumes
                .update(v, now, |v| v.image_metadata.extend(set))
                .await
                .map(|v| r.answer(StatusCode::OK, Some(json!({"metadata": v.image_metadata}))))
        }
        "os-unset_image_metadata" => {
            let Some(key) = arg().get("key").and_then(Value::as_str).map(str::to_string) else {
                return Some(Err(Fault::bad_request("Malformed request body")));
            };
            if !v.image_metadata.contains_key(&key) {
                return Some(Err(Fault::not_found(format!(
                    "Glance metadata for volume {} cannot be found.",
                    v.id
                ))));
            }
            app.volumes
                .update(v, now, |v| {
                    v.image_metadata.remove(&key);
                })
                .await
                .map(|_| r.answer(StatusCode::OK, None))
        }
        "os-show_image_metadata" => {
            Ok(r.answer(StatusCode::OK, Some(json!({"metadata": v.image_metadata}))))
        }
        _ => return None,
    };
    Some(res)
}

/// `os-force_delete`: the admin deletes the volume whatever its status.
async fn force_delete(app: &Arc<App>, r: &Req, v: &Volume) -> Result<Response, Fault> {
    r.ctx
        .require_admin("volume_extension:volume_admin_actions:force_delete")?;
    let how = DeleteMode {
        force: true,
        cascade: false,
        admin: true,
    };
    app.volumes.delete_as(v, how, app.clock.now()).await?;
    Ok(r.answer(StatusCode::ACCEPTED, None))
}
