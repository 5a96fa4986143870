//! The images page: the list (the image API's, so public, shared and the
//! project's own), delete for the images the user owns, and upload: the
//! page's script sends the file's bytes as they are to `images/upload`,
//! which creates the image through the API and streams the bytes on to
//! its data upload (no copy held in memory).

use super::client::{enc, Call};
use super::html::{self, esc, t};
use super::session::Dash;
use super::Out;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;

/// Glance's disk formats, offered in the upload form.
const DISK_FORMATS: &[&str] = &[
    "qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "ari", "aki", "ploop",
];

pub async fn images(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let v = dash.get(&s, "/image/v2/images?limit=1000").await?;
    let rows: String = v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let own = i["owner"].as_str() == Some(s.project_id.as_str()) || s.is_admin;
            let delete = html::button_form(
                &s,
                &format!("/dashboard/images/{}/delete", enc(&html::text(&i["id"]))),
                "Delete",
                &[],
                (!own).then_some("Only the image's owner may delete it."),
            );
            html::row(&[
                t(&i["name"]),
                t(&i["status"]),
                t(&i["visibility"]),
                t(&i["disk_format"]),
                t(&i["size"]),
                t(&i["created_at"]),
                delete,
            ])
        })
        .collect();
    let formats: String = DISK_FORMATS
        .iter()
        .map(|f| format!(r#"<option value="{f}">{f}</option>"#))
        .collect();
    let body = format!(
        r#"<h1>Images</h1>{table}
<h2>Upload</h2>
<form id="upload" class="stack" data-csrf="{csrf}">
<label for="img-name">Name</label><input id="img-name" name="name" required>
<label for="img-format">Disk format</label><select id="img-format" name="disk_format">{formats}</select>
<label for="img-file">File</label><input id="img-file" name="file" type="file" required>
<button type="submit">Upload</button>
<noscript><p class="alert">Uploading needs JavaScript (the file is sent as it is, not as a form).</p></noscript>
</form><div id="upload-state" role="status"></div>
<script src="/dashboard/static/upload.js" defer></script>"#,
        table = html::table(
            "Images",
            &[
                "Name",
                "Status",
                "Visibility",
                "Format",
                "Size (bytes)",
                "Created",
                ""
            ],
            &rows,
            ""
        ),
        csrf = esc(&s.csrf),
    );
    Ok(html::page(Some(&s), "Images", &body))
}

/// `PUT /dashboard/images/upload?name=..&disk_format=..` with the file's
/// bytes as the body and the CSRF token in `X-CSRF-Token`: creates the
/// image, then streams the body to its data. Answers a message fragment;
/// a refused upload deletes the image it created.
/// How much of a refused upload's body is read before the refusal (a
/// bigger one is cut off).
const REFUSED_BODY_READ: usize = 64 << 20;

pub async fn upload(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Out {
    let s = match dash.checked_header(&headers) {
        Ok(s) => s,
        Err(refusal) => {
            // The body is read (and dropped) before the refusal is sent:
            // a server that answers while the client is still sending and
            // then closes makes the client see a broken connection
            // instead of the 403.
            let _ = axum::body::to_bytes(body, REFUSED_BODY_READ).await;
            return Err(refusal.into());
        }
    };
    let mut name = String::new();
    let mut format = String::from("qcow2");
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "name" => name = v.trim().to_string(),
            "disk_format" => format = v.trim().to_string(),
            _ => {}
        }
    }
    let created = dash
        .call(
            &s,
            Call::new(Method::POST, "/image/v2/images", None).json(json!({
                "name": name, "disk_format": format, "container_format": "bare",
                "visibility": "private"})),
        )
        .await;
    if !created.ok() {
        let status = StatusCode::from_u16(created.status).unwrap_or(StatusCode::BAD_REQUEST);
        return Ok(html::fragment_status(status, &created.message()));
    }
    let id = html::text(&created.body["id"]);
    let path = format!("/image/v2/images/{}", enc(&id));
    let sent = dash
        .call(
            &s,
            Call::new(Method::PUT, format!("{path}/file"), None).stream(body),
        )
        .await;
    if !sent.ok() {
        dash.call(&s, Call::new(Method::DELETE, path, None)).await;
        let status = StatusCode::from_u16(sent.status).unwrap_or(StatusCode::BAD_REQUEST);
        return Ok(html::fragment_status(status, &sent.message()));
    }
    let size = dash
        .get(&s, &path)
        .await
        .map(|v: Value| html::text(&v["size"]))
        .unwrap_or_default();
    Ok(html::fragment_status(
        StatusCode::CREATED,
        &format!("Image {name} uploaded ({size} bytes)."),
    ))
}

pub async fn image_delete(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let path = format!("/image/v2/images/{}", enc(&id));
    super::delete_then(&dash, &headers, &body, path, "/dashboard/images").await
}
