//! `os-volume_upload_image`: a volume's bytes made into a new image
//! (Cinder's body schema, with `visibility` and `protected` from 3.1; a
//! public image needs the admin), answered 202 with the upload's summary
//! while the bytes are copied ([`crate::volume::upload`]).

use super::*;
use crate::volume::upload::{self, Upload};

/// Cinder's upload disk formats.
const DISK_FORMATS: &[&str] = &["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"];
/// Glance's container formats (an image Glance would refuse is a 400).
use crate::image::api::CONTAINER_FORMATS;
const VISIBILITIES: &[&str] = &["community", "public", "private", "shared"];
const KEY: &str = "os-volume_upload_image";

/// `'a' is not one of ['x', 'y']`, as jsonschema says it.
fn not_one_of(field: &str, v: &Value, allowed: &[&str]) -> Fault {
    let list: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    fields::invalid(
        field,
        v,
        format!(
            "{} is not one of [{}]",
            rova_core::validate::py::repr(v),
            list.join(", ")
        ),
    )
}

/// One of `allowed`, or `default` when absent.
fn choice(
    a: &Map<String, Value>,
    field: &str,
    allowed: &[&str],
    default: &str,
) -> Result<String, Fault> {
    match a.get(field) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
        Some(v) => Err(not_one_of(field, v, allowed)),
    }
}

/// The request, checked against Cinder's schema for microversion `minor`.
fn parse(body: &Value, minor: u32) -> Result<(Upload, bool), Fault> {
    let a = wrapped(body, KEY)?;
    let mut known = vec!["image_name", "force", "disk_format", "container_format"];
    if minor >= 1 {
        known.extend(["visibility", "protected"]);
    }
    only_known(KEY, a, &known)?;
    let image_name = match a.get("image_name") {
        None => {
            return Err(fields::invalid(
                KEY,
                &Value::Object(a.clone()),
                "'image_name' is a required property",
            ))
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(fields::invalid("image_name", &json!(s), "'' is too short"))
        }
        Some(Value::String(s)) if s.chars().count() > 255 => {
            return Err(fields::invalid(
                "image_name",
                &json!(s),
                format!("'{s}' is too long"),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(fields::invalid("image_name", v, "is not of type 'string'")),
    };
    if let Some(f) = a.get("force") {
        // Checked as Cinder does, then ignored (`enable_force_upload` off).
        fields::boolean("force", f)?;
    }
    let disk_format = choice(a, "disk_format", DISK_FORMATS, "raw")?;
    let container_format = match a.get("container_format") {
        None | Some(Value::Null) => "bare".to_string(),
        Some(Value::String(s)) if s.chars().count() > 255 => {
            return Err(fields::invalid(
                "container_format",
                &json!(s),
                format!("'{s}' is too long"),
            ))
        }
        Some(Value::String(s)) if CONTAINER_FORMATS.contains(&s.as_str()) => s.clone(),
        Some(Value::String(s)) => {
            return Err(Fault::bad_request(format!(
                "Invalid container format '{s}' for image."
            )))
        }
        Some(v) => {
            return Err(fields::invalid(
                "container_format",
                v,
                format!(
                    "{} is not of type 'string', 'null'",
                    rova_core::validate::py::repr(v)
                ),
            ))
        }
    };
    let visibility = choice(a, "visibility", VISIBILITIES, "private")?;
    let protected = match a.get("protected") {
        Some(p) => fields::boolean("protected", p)?,
        None => false,
    };
    let public = visibility == "public";
    let req = Upload {
        image_name,
        disk_format,
        container_format,
        visibility,
        protected,
    };
    Ok((req, public))
}

/// The action: checks, starts the upload and answers what Cinder does.
pub(super) async fn action(app: &Arc<App>, r: &Req, v: &Volume, body: &Value) -> Res {
    let (req, public) = parse(body, r.minor)?;
    r.member("volume_extension:volume_actions:upload_image")?;
    if public {
        r.ctx
            .require_admin("volume_extension:volume_actions:upload_public")?;
    }
    let (vol, img) = upload::upload(app, v, &r.ctx.project_id, req).await?;
    let mut answer = json!({
        "id": vol.id,
        "updated_at": vol.updated_at.as_ref().map(iso_micro),
        "status": "uploading",
        "display_description": vol.description,
        "size": vol.size,
        "volume_type": super::extras::default_type(),
        "image_id": img.id,
        "container_format": img.container_format,
        "disk_format": img.disk_format,
        "image_name": img.name,
        "protected": img.protected,
    });
    answer["visibility"] = json!(img.visibility);
    Ok(r.answer(StatusCode::ACCEPTED, Some(json!({ KEY: answer }))))
}
