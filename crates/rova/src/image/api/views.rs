//! Glance v2's JSON rendering of an image.

use super::*;

/// An image as Glance v2 renders it: the base attributes plus every extra
/// property as a top-level key.
pub fn image_json(img: &Image) -> Value {
    let mut m = Map::new();
    for (k, v) in &img.properties {
        m.insert(k.clone(), v.clone());
    }
    let base = json!({
        "id": img.id,
        "name": img.name,
        "status": img.status,
        "visibility": img.visibility,
        "owner": img.owner,
        "container_format": img.container_format,
        "disk_format": img.disk_format,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "protected": img.protected,
        "os_hidden": img.os_hidden,
        "tags": img.tags,
        "created_at": iso_z(&img.created_at),
        "updated_at": iso_z(&img.updated_at),
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(b) = base {
        m.extend(b);
    }
    Value::Object(m)
}

pub(super) fn ok_json(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}
