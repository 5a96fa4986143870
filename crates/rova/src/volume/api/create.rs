//! `POST /volumes`: the body checked as Cinder's schema and create flow
//! check it (size, name, metadata, type, zone, and the source: one of an
//! image, another volume or a snapshot, which decides how small the
//! volume may be), then the volume added in `creating`.

use super::*;
use crate::volume::NewVolume;

pub(super) async fn create(
    State(app): A,
    caller: Caller,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:create")?;
    let _ = project;
    let body = parse_json(&headers, &body)?;
    let v = wrapped(&body, "volume")?;
    if r.minor >= 53 {
        const KNOWN: &[&str] = &[
            "name",
            "description",
            "display_name",
            "display_description",
            "volume_type",
            "metadata",
            "snapshot_id",
            "source_volid",
            "consistencygroup_id",
            "size",
            "availability_zone",
            "multiattach",
            "image_id",
            "imageRef",
            "group_id",
            "backup_id",
        ];
        only_known("volume", v, KNOWN)?;
    }
    let name = text("name", v.get("name").or(v.get("display_name")), 255)?.flatten();
    let description = text(
        "description",
        v.get("description").or(v.get("display_description")),
        255,
    )?
    .flatten();
    let metadata = match v.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => fields::metadata("metadata", m)?,
    };
    if matches!(v.get("multiattach"), Some(Value::Bool(true))) {
        return Err(Fault::bad_request(
            "multiattach parameter has been removed. The default behavior is to use \
             multiattach enabled volume types. Contact your administrator to create a \
             multiattach enabled volume type and use it to create multiattach volumes.",
        )
        .into());
    }
    if let Some(t) = v.get("volume_type").and_then(Value::as_str) {
        if t != DEFAULT_TYPE && t != DEFAULT_TYPE_ID {
            return Err(
                Fault::not_found(format!("Volume type with name {t} could not be found.")).into(),
            );
        }
    }
    if let Some(z) = v.get("availability_zone").and_then(Value::as_str) {
        if z != ZONE {
            return Err(
                invalid_input("Availability zone '{z}' is invalid.".replace("{z}", z)).into(),
            );
        }
    }
    let snapshot_id = optional_uuid("snapshot_id", v.get("snapshot_id"))?;
    let source_volid = optional_uuid("source_volid", v.get("source_volid"))?;
    let image_id = match v.get("imageRef").or(v.get("image_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(rova_core::validate::id_from_href(s)),
        Some(other) => {
            return Err(
                fields::invalid("imageRef", other, "is not of type 'string', 'null'").into(),
            )
        }
    };
    let size = match v.get("size") {
        None | Some(Value::Null) => None,
        Some(s) => Some(fields::volume_size("size", s)?),
    };
    // The sources are looked up (404s) before they are compared.
    let snapshot = match &snapshot_id {
        Some(s) => Some(r.snapshot(&app, s)?),
        None => None,
    };
    let source_vol = match &source_volid {
        Some(s) => Some(r.volume(&app, s)?),
        None => None,
    };
    let given = [snapshot.is_some(), source_vol.is_some(), image_id.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid_input(
            "May specify only one of backup, imageRef, snapshot, source volume",
        )
        .into());
    }
    let now = app.clock.now();
    if let Some(snap) = snapshot {
        crate::volume::snapshot::usable(&snap)?;
        let size = crate::volume::snapshot::volume_size_from(&snap, size)?;
        let req = NewVolume {
            size,
            name,
            description,
            metadata,
            source_volid: None,
            image_id: None,
        };
        let (project, user) = (&r.ctx.project_id, &r.ctx.user_id);
        let vol = app
            .volumes
            .create_from_snapshot(now, project, user, req, &snap)
            .await?;
        return Ok(r.answer(
            StatusCode::ACCEPTED,
            Some(json!({"volume": plain(&r, &vol)})),
        ));
    }
    // The source decides what may be copied and how small the volume may be.
    let mut image_metadata = BTreeMap::new();
    let mut source = None;
    let mut floor = 0u64;
    if let Some(s) = source_vol {
        let src = &s.id;
        if !["available", "in-use"].contains(&s.status.as_str()) {
            return Err(crate::volume::invalid_volume(
                "Originating source volume status must be one of 'available', 'in-use' values",
            )
            .into());
        }
        let crate::volume::backend::Location::File(path) = app.volumes.location(src);
        source = Some(path);
        floor = s.size;
        // A copy of a bootable volume is bootable: Cinder copies the
        // source's image metadata.
        image_metadata = s.image_metadata.clone();
        if size.is_some_and(|n| n < s.size) {
            return Err(invalid_input(format!(
                "Volume size '{}'GB cannot be smaller than original volume size  {}GB. \
                 They must be >= original volume size.",
                size.unwrap_or(0),
                s.size
            ))
            .into());
        }
    } else if let Some(img_id) = &image_id {
        let img = app
            .images
            .visible(img_id, &r.ctx.project_id, r.admin())
            .ok_or_else(|| Fault::not_found(format!("Image {img_id} could not be found.")))?;
        if img.status != "active" {
            return Err(invalid_input(format!("Image {img_id} is not active.")).into());
        }
        let from = crate::volume::FromImage::of(&img);
        let image_gb = from.image_gb;
        floor = from.floor;
        if let Some(n) = size {
            if n < image_gb {
                return Err(invalid_input(format!(
                    "Size of specified image {image_gb}GB is larger than volume size {n}GB."
                ))
                .into());
            }
            if n < img.min_disk {
                return Err(invalid_input(format!(
                    "Volume size {n}GB cannot be smaller than the image minDisk size {}GB.",
                    img.min_disk
                ))
                .into());
            }
        }
        image_metadata = from.metadata;
        source = Some(app.images.file_path(&img.id));
    }
    let size = match size.or((floor > 0).then_some(floor)) {
        Some(n) => n,
        None => {
            return Err(
                invalid_input("Volume size 'None' must be an integer and greater than 0").into(),
            )
        }
    };
    let req = NewVolume {
        size,
        name,
        description,
        metadata,
        source_volid,
        image_id,
    };
    let vol = app
        .volumes
        .create(
            now,
            &r.ctx.project_id,
            &r.ctx.user_id,
            req,
            image_metadata,
            source,
        )
        .await?;
    Ok(r.answer(
        StatusCode::ACCEPTED,
        Some(json!({"volume": plain(&r, &vol)})),
    ))
}
