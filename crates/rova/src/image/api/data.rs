//! Image data: upload (`PUT .../file`) with its status transitions, and
//! download (`GET .../file`).

use super::*;

pub(super) async fn upload(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> GResult<Response> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
    {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !media.is_empty() && media != "application/octet-stream" {
            return Err(gerr(415, format!("Content type '{media}' is not supported for image data; use application/octet-stream")));
        }
    }
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("upload_image").into());
    }
    // Claim the upload: queued -> saving, so two uploads cannot race.
    let now = app.clock.now();
    app.images
        .update(
            &id,
            || no_image(&id),
            |img| {
                if img.status != "queued" {
                    return Err(Fault::conflict(format!(
                        "Image status transition from {} to saving is not allowed",
                        img.status
                    )));
                }
                let mut missing = Vec::new();
                if img.disk_format.is_none() {
                    missing.push("disk_format");
                }
                if img.container_format.is_none() {
                    missing.push("container_format");
                }
                match missing.as_slice() {
                    [] => {}
                    [one] => {
                        return Err(Fault::bad_request(format!(
                            "Property {one} must be set prior to saving data."
                        )))
                    }
                    many => {
                        return Err(Fault::bad_request(format!(
                            "Properties {} must be set prior to saving data.",
                            many.join(", ")
                        )))
                    }
                }
                img.status = "saving".into();
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    let bytes = match axum::body::to_bytes(body, MAX_UPLOAD).await {
        Ok(b) => b,
        Err(e) => {
            let _ = set_status(&app, &id, "queued").await;
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_big {
                gerr(
                    413,
                    format!("Image exceeds the storage quota: the limit is {MAX_UPLOAD} bytes."),
                )
            } else {
                gerr(400, format!("Error reading image data: {e}"))
            });
        }
    };
    let mut scratch = (*img).clone();
    let app2 = app.clone();
    let written = tokio::task::spawn_blocking(move || {
        app2.images
            .write_bytes(&mut scratch, &bytes)
            .map(|()| scratch)
    })
    .await
    .map_err(|e| Fault::internal(format!("image upload task failed: {e}")));
    let filled = match written {
        Ok(Ok(i)) => i,
        Ok(Err(f)) | Err(f) => {
            let _ = set_status(&app, &id, "queued").await;
            return Err(f.into());
        }
    };
    let now = app.clock.now();
    let res = app
        .images
        .update(
            &id,
            || no_image(&id),
            |img| {
                img.take_data(&filled, now);
                Ok(())
            },
        )
        .await;
    match res {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(f) if f.code == 404 => {
            let _ = std::fs::remove_file(app.images.file_path(&id));
            Err(gerr(410, format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            )))
        }
        Err(f) => Err(f.into()),
    }
}

async fn set_status(app: &App, id: &str, status: &str) -> Result<(), Fault> {
    app.images
        .update(
            id,
            || no_image(id),
            |img| {
                img.status = status.to_string();
                Ok(())
            },
        )
        .await
        .map(|_| ())
}

pub(super) async fn download(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if img.status == "deactivated" && !ctx.is_admin() {
        return Err(gerr(
            403,
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    if img.size.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let data = match tokio::fs::read(app.images.file_path(&id)).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => return Err(gerr(500, format!("reading image data: {e}"))),
    };
    let mut resp = (StatusCode::OK, data).into_response();
    crate::http::set_header(&mut resp, "content-type", "application/octet-stream");
    if let Some(md5) = &img.checksum {
        crate::http::set_header(&mut resp, "content-md5", md5);
    }
    Ok(resp)
}
