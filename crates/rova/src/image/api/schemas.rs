//! The `image` and `images` JSON schemas under `/image/v2/schemas`.

use super::*;

fn image_schema() -> Value {
    let nullable_str = |desc: &str, max: u32| json!({"type": ["null", "string"], "maxLength": max, "description": desc});
    let ro_str = |desc: &str| json!({"type": "string", "readOnly": true, "description": desc});
    let ro_nullable =
        |ty: &str, desc: &str| json!({"type": ["null", ty], "readOnly": true, "description": desc});
    json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": nullable_str("Descriptive name for the image", 255),
            "status": {"type": "string", "readOnly": true, "description": "Status of the image", "enum": STATUSES},
            "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": VISIBILITIES},
            "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
            "checksum": ro_nullable("string", "md5 hash of image contents."),
            "os_hash_algo": ro_nullable("string", "Algorithm to calculate the os_hash_value"),
            "os_hash_value": ro_nullable("string", "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"),
            "owner": nullable_str("Owner of the image", 255),
            "size": ro_nullable("integer", "Size of image file in bytes"),
            "virtual_size": ro_nullable("integer", "Virtual size of image in bytes"),
            "container_format": {"type": ["null", "string"], "description": "Format of the container",
                "enum": CONTAINER_FORMATS.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>()},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk",
                "enum": DISK_FORMATS.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>()},
            "created_at": ro_str("Date and time of image registration"),
            "updated_at": ro_str("Date and time of the last image modification"),
            "tags": {"type": "array", "description": "List of strings related to the image",
                "items": {"type": "string", "maxLength": 255}},
            "direct_url": ro_str("URL to access the image file kept in external store"),
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": ro_str("An image self url"),
            "file": ro_str("An image file url"),
            "schema": ro_str("An image schema url"),
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                "items": {"type": "object"}},
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub(super) async fn schema_image(_caller: Caller) -> Response {
    ok_json(image_schema())
}

pub(super) async fn schema_images(_caller: Caller) -> Response {
    ok_json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }))
}
