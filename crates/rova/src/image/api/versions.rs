//! The Glance versions document served at `/image` and `/image/versions`.

use super::*;

fn versions_doc(base: &str) -> Value {
    let href = format!("{base}/image/v2/");
    let mut list = vec![json!({"id": "v2.16", "status": "CURRENT",
        "links": [{"rel": "self", "href": href}]})];
    for minor in (0..16).rev() {
        list.push(json!({"id": format!("v2.{minor}"), "status": "SUPPORTED",
            "links": [{"rel": "self", "href": href}]}));
    }
    json!({ "versions": list })
}

pub(super) async fn versions(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(versions_doc(&host_url(&headers))),
    )
        .into_response()
}
