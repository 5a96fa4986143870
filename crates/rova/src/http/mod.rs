//! The HTTP edge shared by every API: Nova-shaped error responses, request
//! ids, the authenticated request context, JSON body parsing and link
//! building, and the edge guard every API sits behind. Handlers stay thin:
//! they parse here and call a service.

pub mod ctx;
pub mod edge;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rova_core::Fault;
use serde_json::{json, Value};
use std::borrow::Cow;

pub use ctx::Ctx;

/// A compute-style error: `{"<key>": {"code": N, "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError(pub Fault);

impl From<Fault> for ApiError {
    fn from(f: Fault) -> Self {
        ApiError(f)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let f = self.0;
        if f.code >= 500 {
            tracing::error!(code = f.code, message = %f.message, "server error");
        }
        let status = StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ f.wire_key(): { "code": f.code, "message": f.message } });
        (status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON request body the way Nova does: anything that is not a JSON
/// document is 400 "Malformed request body"; a non-JSON content type is 415.
pub fn parse_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, Fault> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.is_empty() && !ct.contains("json") && !ct.starts_with("text/plain") {
            return Err(Fault::new(415, "Unsupported Content-Type"));
        }
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Fault::bad_request("Malformed request body"));
    }
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed request body"))
}

/// A header's value as text. A value that is not visible ASCII is still
/// returned (its bytes decoded as UTF-8, lossily) so that callers refuse it
/// as the malformed value it is instead of taking it as absent.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// `http://host[:port]` as the client addressed us.
pub fn host_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// A JSON response with a status.
pub fn json_status(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// An empty response (204 and friends).
pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// Adds a header if the value is valid.
pub fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The message of every 500: what went wrong inside stays in the log, under
/// the request id the client is given.
pub fn unexpected_error_message(request_id: &str) -> String {
    format!(
        "Unexpected API Error. Please report this with the request id {request_id}; \
         the service log has the details."
    )
}

/// Middleware: gives every request an id (`req-<uuid>`) and echoes it in
/// `x-openstack-request-id` and `x-compute-request-id`. It is also where
/// internal failures are contained: a panic in a handler becomes a 500 (not
/// a dropped connection), and a 500's own text (which may name storage or
/// driver internals) goes to the log while the client gets the API's error
/// body with a generic message and the request id.
pub async fn request_id(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures_util::FutureExt;
    let id = RequestId(format!("req-{}", uuid::Uuid::new_v4()));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let api = edge::Api::of(&path);
    // Every event while the request is handled carries these (an ERROR
    // span, so they are there at every log level); the project is
    // recorded once the token is known.
    let span = tracing::error_span!(
        "request",
        request_id = %id.0,
        method = %method,
        path = %path,
        project_id = tracing::field::Empty,
        server_id = tracing::field::Empty,
    );
    if let Some(server) = server_in_path(&path) {
        span.record("server_id", server);
    }
    let mut resp = match tracing::Instrument::instrument(
        std::panic::AssertUnwindSafe(next.run(req)).catch_unwind(),
        span.clone(),
    )
    .await
    {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(request_id = %id.0, %method, %path, panic = %what, "handler panicked");
            api.error(Fault::internal(unexpected_error_message(&id.0)))
        }
    };
    if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
        let (_, body) = resp.into_parts();
        let detail = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        tracing::error!(request_id = %id.0, %method, %path,
            detail = %String::from_utf8_lossy(&detail), "internal error");
        resp = api.error(Fault::internal(unexpected_error_message(&id.0)));
    }
    set_header(&mut resp, "x-openstack-request-id", &id.0);
    set_header(&mut resp, "x-compute-request-id", &id.0);
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
    });
    resp
}

/// The server a compute path names (`…/servers/{id}…`), for the logs.
fn server_in_path(path: &str) -> Option<&str> {
    let mut segs = path.split('/');
    segs.by_ref().find(|s| *s == "servers")?;
    segs.next()
        .filter(|s| s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

/// The request id of the current request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn call(path: &str) -> (StatusCode, HeaderMap, Value) {
        let app: Router = Router::new()
            .route(
                "/compute/v2.1/boom",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("handler bug");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/compute/v2.1/leak",
                get(|| async { ApiError(Fault::internal("storage write failed: /secret/path")) }),
            )
            .route(
                "/identity/v3/leak",
                get(|| async {
                    crate::identity::api::KsError(Fault::internal("db gone: /secret/path"))
                }),
            )
            .layer(axum::middleware::from_fn(request_id));
        let req = axum::http::Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = app
            .oneshot(req)
            .await
            .expect("a response, not a dropped connection");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&body).expect("a JSON body"),
        )
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_in_novas_format() {
        let (status, headers, body) = call("/compute/v2.1/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = headers["x-openstack-request-id"].to_str().expect("id");
        let msg = body["computeFault"]["message"]
            .as_str()
            .expect("computeFault");
        assert_eq!(body["computeFault"]["code"], 500);
        assert!(msg.contains(id) && !msg.contains("handler bug"), "{msg}");
    }

    #[tokio::test]
    async fn internal_error_text_stays_in_the_log() {
        let (status, headers, body) = call("/compute/v2.1/leak").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = headers["x-openstack-request-id"].to_str().expect("id");
        let msg = body["computeFault"]["message"]
            .as_str()
            .expect("computeFault");
        assert!(msg.contains(id) && !msg.contains("secret"), "{msg}");
        // each API keeps its own error shape
        let (status, _, body) = call("/identity/v3/leak").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let msg = body["error"]["message"].as_str().expect("Keystone error");
        assert!(
            msg.starts_with("Unexpected API Error") && !msg.contains("secret"),
            "{msg}"
        );
    }
}
