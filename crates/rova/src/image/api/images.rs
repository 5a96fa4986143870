//! Creating, updating (JSON patch) and deleting images: attribute and
//! property validation, the patch document, and who may modify an image.

use super::*;

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn enum_or_null(key: &str, v: &Value, allowed: &[&str]) -> Result<Option<String>, Fault> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
        other => Err(schema_error(format!(
            "{other} is not one of {allowed:?}\n\nFailed validating 'enum' in schema['properties']['{key}']"
        ))),
    }
}

fn non_negative(key: &str, v: &Value) -> Result<u64, Fault> {
    v.as_u64().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'integer' or is less than the minimum of 0\n\nFailed validating in schema['properties']['{key}']"
        ))
    })
}

fn boolean(key: &str, v: &Value) -> Result<bool, Fault> {
    v.as_bool().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'boolean'\n\nFailed validating 'type' in schema['properties']['{key}']"
        ))
    })
}

fn tag_list(v: &Value) -> Result<Vec<String>, Fault> {
    let arr = v.as_array().ok_or_else(|| {
        schema_error(format!("{v} is not of type 'array'\n\nFailed validating 'type' in schema['properties']['tags']"))
    })?;
    let mut out: Vec<String> = Vec::new();
    for t in arr {
        let s = t.as_str().ok_or_else(|| {
            schema_error(format!("{t} is not of type 'string'\n\nFailed validating 'type' in schema['properties']['tags']['items']"))
        })?;
        if s.chars().count() > 255 {
            return Err(schema_error(format!("'{s}' is too long")));
        }
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    if out.len() > TAG_QUOTA {
        return Err(Fault::new(413, format!(
            "Maximum tag count exceeded: attempted to add {} tags, exceeding the limit of {TAG_QUOTA}",
            out.len()
        )));
    }
    Ok(out)
}

/// Is `key` one of the image's base attributes?
fn is_base(key: &str) -> bool {
    matches!(
        key,
        "id" | "name"
            | "visibility"
            | "owner"
            | "container_format"
            | "disk_format"
            | "min_disk"
            | "min_ram"
            | "protected"
            | "os_hidden"
            | "tags"
    ) || READ_ONLY.contains(&key)
}

/// Sets one base attribute after validating it. `creating` allows `id`.
fn set_base(img: &mut Image, ctx: &Ctx, key: &str, v: &Value, creating: bool) -> Result<(), Fault> {
    match key {
        "id" if creating => {
            let s = v.as_str().filter(|s| is_uuid(s)).ok_or_else(|| {
                schema_error(format!("{v} does not match '^([0-9a-fA-F]){{8}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{12}}$'"))
            })?;
            img.id = s.to_ascii_lowercase();
        }
        "name" => {
            img.name = match v {
                Value::Null => None,
                Value::String(s) if s.chars().count() <= 255 => Some(s.clone()),
                other => {
                    return Err(schema_error(format!(
                        "{other} is not valid under any of the given schemas\n\nFailed validating 'oneOf' in schema['properties']['name']"
                    )))
                }
            }
        }
        "visibility" => {
            let vis = enum_or_null(key, v, VISIBILITIES)?
                .ok_or_else(|| schema_error("None is not one of ['community', 'public', 'private', 'shared']"))?;
            if vis == "public" && vis != img.visibility && !ctx.is_admin() {
                return Err(not_authorized("publicize_image"));
            }
            img.visibility = vis;
        }
        "owner" => {
            let owner = match v {
                Value::String(s) if s.chars().count() <= 255 => s.clone(),
                Value::Null => String::new(),
                other => return Err(schema_error(format!("{other} is not of type 'string'"))),
            };
            if owner != img.owner && !ctx.is_admin() {
                return Err(Fault::forbidden(if creating {
                    format!("You are not permitted to create images owned by '{owner}'.")
                } else {
                    "You are not permitted to modify 'owner' on this image.".to_string()
                }));
            }
            img.owner = owner;
        }
        "container_format" | "disk_format" => {
            let allowed = if key == "container_format" { CONTAINER_FORMATS } else { DISK_FORMATS };
            let val = enum_or_null(key, v, allowed)?;
            if !creating && img.status != "queued" {
                let cur = if key == "container_format" { &img.container_format } else { &img.disk_format };
                if *cur != val {
                    return Err(Fault::forbidden(format!(
                        "Attribute {key} can be only replaced for a queued image."
                    )));
                }
            }
            if key == "container_format" {
                img.container_format = val;
            } else {
                img.disk_format = val;
            }
        }
        "min_disk" => img.min_disk = non_negative(key, v)?,
        "min_ram" => img.min_ram = non_negative(key, v)?,
        "protected" => img.protected = boolean(key, v)?,
        "os_hidden" => img.os_hidden = boolean(key, v)?,
        "tags" => img.tags = tag_list(v)?,
        _ => return Err(Fault::forbidden(format!("Attribute '{key}' is read-only."))),
    }
    Ok(())
}

fn set_extra(img: &mut Image, key: &str, v: &Value) -> Result<(), Fault> {
    if key.is_empty() || key.chars().count() > 255 {
        return Err(schema_error(format!(
            "'{key}' is not a valid property name"
        )));
    }
    let s = v.as_str().ok_or_else(|| {
        schema_error(format!(
            "{v} is not of type 'string'\n\nFailed validating 'type' in schema['additionalProperties']"
        ))
    })?;
    if s.chars().count() > 65535 {
        return Err(schema_error(format!("value of '{key}' is too long")));
    }
    img.properties
        .insert(key.to_string(), Value::String(s.to_string()));
    if img.properties.len() > PROPERTY_QUOTA {
        return Err(Fault::new(
            413,
            format!(
                "Attempted to add {} properties, exceeding the limit of {PROPERTY_QUOTA}",
                img.properties.len()
            ),
        ));
    }
    Ok(())
}

fn forbid_reserved(key: &str) -> Result<(), Fault> {
    if RESERVED.contains(&key) {
        return Err(Fault::forbidden(format!("Attribute '{key}' is reserved.")));
    }
    if READ_ONLY.contains(&key) {
        return Err(Fault::forbidden(format!("Attribute '{key}' is read-only.")));
    }
    Ok(())
}

/// Builds a new image from a `POST /v2/images` body.
pub(super) fn image_from_body(
    body: &Map<String, Value>,
    ctx: &Ctx,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Image, Fault> {
    let mut img = Image::queued(&ctx.project_id, "shared", now);
    for (k, v) in body {
        forbid_reserved(k)?;
        if is_base(k) {
            set_base(&mut img, ctx, k, v, true)?;
        } else {
            set_extra(&mut img, k, v)?;
        }
    }
    Ok(img)
}

fn json_body(body: &Bytes) -> Result<Value, Fault> {
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed JSON in request body."))
}

pub(super) async fn create_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    if !ctx.is_member() {
        return Err(not_authorized("add_image").into());
    }
    let v = json_body(&body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| gerr(400, "Request body must be a JSON object."))?;
    let img = image_from_body(obj, &ctx, app.clock.now())?;
    let id = img.id.clone();
    let created = app
        .images
        .insert_new(
            img,
            Fault::conflict(format!("Image with identifier {id} already exists!")),
        )
        .await?;
    let mut resp = (StatusCode::CREATED, axum::Json(image_json(&created))).into_response();
    crate::http::set_header(
        &mut resp,
        "location",
        &format!("{}/image/v2/images/{id}", host_url(&headers)),
    );
    Ok(resp)
}

/// One JSON-patch operation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PatchOp {
    Add(String, Value),
    Replace(String, Value),
    Remove(String),
}

/// Decodes a JSON pointer naming a top-level attribute (`/name`,
/// `/hw_rescue_bus`; `~1` and `~0` escapes).
pub(super) fn pointer_key(path: &str) -> Result<String, Fault> {
    let rest = path.strip_prefix('/').ok_or_else(|| {
        Fault::bad_request(format!("Pointer `{path}` does not start with \"/\"."))
    })?;
    if rest.is_empty() || rest.contains('/') {
        return Err(Fault::bad_request(format!(
            "Invalid JSON pointer for this resource: '{path}'"
        )));
    }
    if rest.contains('~')
        && !rest
            .replace("~0", "")
            .replace("~1", "")
            .chars()
            .all(|c| c != '~')
    {
        return Err(Fault::bad_request(format!(
            "Pointer `{path}` contains \"~\" not part of a recognized escape sequence."
        )));
    }
    Ok(rest.replace("~1", "/").replace("~0", "~"))
}

/// Parses a PATCH body in the v2.1 (`{"op", "path", "value"}`) or the
/// legacy v2.0 (`{"replace": "/name", "value"}`) media type.
pub(super) fn parse_patch(body: &Value, v21: bool) -> Result<Vec<PatchOp>, Fault> {
    let arr = body.as_array().ok_or_else(|| {
        Fault::bad_request("Request body must be a JSON array of operation objects.")
    })?;
    let mut out = Vec::new();
    for raw in arr {
        let obj = raw
            .as_object()
            .ok_or_else(|| Fault::bad_request("Operations must be JSON objects."))?;
        let (op, path) = if v21 {
            let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| {
                Fault::bad_request(
                    "Operation objects must contain exactly one member named \"op\".",
                )
            })?;
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::bad_request("Unable to find `path` in JSON Schema change. It must be one of the following: add, remove, replace."))?;
            (op.to_string(), path.to_string())
        } else {
            let found: Vec<(&String, &Value)> = obj
                .iter()
                .filter(|(k, _)| ["add", "replace", "remove"].contains(&k.as_str()))
                .collect();
            match found.as_slice() {
                [(op, Value::String(path))] => (op.to_string(), path.clone()),
                _ => {
                    return Err(Fault::bad_request(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    ))
                }
            }
        };
        let key = pointer_key(&path)?;
        let value = || {
            obj.get("value").cloned().ok_or_else(|| {
                Fault::bad_request(
                    "Operation objects must contain exactly one member named \"value\".",
                )
            })
        };
        out.push(match op.as_str() {
            "add" => PatchOp::Add(key, value()?),
            "replace" => PatchOp::Replace(key, value()?),
            "remove" => PatchOp::Remove(key),
            other => {
                return Err(Fault::bad_request(format!(
                    "Invalid operation: `{other}`: Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace."
                )))
            }
        });
    }
    Ok(out)
}

/// Applies patch operations to an image the way Glance's controller does.
pub(super) fn apply_patch(img: &mut Image, ctx: &Ctx, ops: &[PatchOp]) -> Result<(), Fault> {
    for op in ops {
        match op {
            PatchOp::Add(k, v) | PatchOp::Replace(k, v) => {
                forbid_reserved(k)?;
                if k == "id" {
                    return Err(Fault::forbidden("Attribute 'id' is read-only."));
                }
                if is_base(k) {
                    set_base(img, ctx, k, v, false)?;
                } else if matches!(op, PatchOp::Replace(..)) && !img.properties.contains_key(k) {
                    return Err(Fault::conflict(format!("Property {k} does not exist.")));
                } else {
                    set_extra(img, k, v)?;
                }
            }
            PatchOp::Remove(k) => {
                forbid_reserved(k)?;
                if is_base(k) {
                    return Err(Fault::forbidden(format!(
                        "Property {k} may not be removed."
                    )));
                }
                if img.properties.remove(k).is_none() {
                    return Err(Fault::conflict(format!("Property {k} does not exist.")));
                }
            }
        }
    }
    Ok(())
}

/// The caller may change the image (owner's members, or admin).
pub(crate) fn may_modify(img: &Image, ctx: &Ctx) -> bool {
    ctx.may_change(&img.owner)
}

pub(super) fn visible_or_404(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Image>, Fault> {
    app.images
        .visible(id, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| no_image(id))
}

pub(super) async fn update_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let v21 = match ct.as_str() {
        "application/openstack-images-v2.1-json-patch" => true,
        "application/openstack-images-v2.0-json-patch" => false,
        _ => {
            let mut resp = GlanceError(Fault::new(415, format!("Unsupported Content-Type {ct}")))
                .into_response();
            crate::http::set_header(
                &mut resp,
                "accept-patch",
                "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch",
            );
            return Ok(resp);
        }
    };
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    let ops = parse_patch(&json_body(&body)?, v21)?;
    let now = app.clock.now();
    let (img, _) = app
        .images
        .update(
            &id,
            || no_image(&id),
            |img| {
                apply_patch(img, &ctx, &ops)?;
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(ok_json(image_json(&img)))
}

pub(super) async fn delete_image(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("delete_image").into());
    }
    if img.protected {
        return Err(gerr(
            403,
            format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    app.images.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
