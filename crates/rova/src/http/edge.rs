//! The outermost guard in front of every JSON API (identity, compute, image,
//! network, the simulator's API): it refuses what no handler should see —
//! a request URI longer than [`MAX_URI`] (414), a path whose
//! percent-escapes do not decode to UTF-8 (400) and a declared body length
//! over [`MAX_BODY`] (413; image data uploads stream past it) — and reads
//! every other request body whole before a handler runs, so that no answer
//! leaves unread bytes on a kept-alive connection. It rewrites every error
//! that did not come out of an API's own error type (axum's extractor
//! rejections such as the body-size limit's 413, the routers' bare 404/405)
//! into the error body of the API the path belongs to. The request body
//! limit itself ([`MAX_BODY`]) is installed next to this guard in
//! `app::router`.
//!
//! Responses that already carry JSON pass through untouched, and so does
//! everything below 400.

use crate::http::ApiError;
use crate::identity::api::KsError;
use crate::image::api::GlanceError;
use crate::network::api::NeutronError;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rova_core::Fault;

/// Largest request body a JSON API accepts: oslo.middleware's
/// `max_request_body_size` default, which Nova, Keystone, Glance and
/// Neutron all sit behind. (Image data uploads stream their body and keep
/// their own, larger limit.)
pub const MAX_BODY: usize = 114_688;

/// Longest request target (path and query) accepted: eventlet's
/// `url_length_limit`, the limit the OpenStack APIs answered 414 at for
/// years. hyper refuses anything over 65534 bytes itself, before any
/// handler runs, with an empty 414.
pub const MAX_URI: usize = 8192;

/// Which API a path belongs to, and so which error body it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Identity,
    Image,
    Network,
    /// The compute API, the simulator's API and anything unknown: Nova's
    /// `{"<kind>": {"code", "message"}}`.
    Compute,
}

impl Api {
    pub fn of(path: &str) -> Api {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/identity") {
            Api::Identity
        } else if under("/image") {
            Api::Image
        } else if under("/network") {
            Api::Network
        } else {
            Api::Compute
        }
    }

    /// `f` rendered the way this API renders its own errors.
    pub fn error(self, f: Fault) -> Response {
        match self {
            Api::Identity => KsError(f).into_response(),
            Api::Image => GlanceError(f).into_response(),
            Api::Network => {
                NeutronError::new(f.code, webob_class(f.code), f.message).into_response()
            }
            Api::Compute => ApiError(f).into_response(),
        }
    }
}

/// The webob exception class Neutron names in `NeutronError.type`.
fn webob_class(code: u16) -> &'static str {
    match code {
        400 => "HTTPBadRequest",
        401 => "HTTPUnauthorized",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        409 => "HTTPConflict",
        413 => "HTTPRequestEntityTooLarge",
        414 => "HTTPRequestURITooLong",
        415 => "HTTPUnsupportedMediaType",
        _ => "HTTPInternalServerError",
    }
}

/// The message for an error whose body said nothing useful.
fn default_message(code: u16) -> String {
    match code {
        404 => "The resource could not be found.".into(),
        405 => "The method specified is not allowed for this resource.".into(),
        // oslo.middleware's sizelimit message.
        413 => "Request is too large.".into(),
        414 => "The request URI is too long.".into(),
        415 => "Unsupported Content-Type".into(),
        c => StatusCode::from_u16(c)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_string(),
    }
}

/// Decodes `%XX` escapes (leaving malformed ones as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The fallback for a path no API serves: 404 in the body of the API
/// its prefix names.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    Api::of(uri.path()).error(Fault::not_found(default_message(404)))
}

/// Up to this many declared bytes of a refused body are read and dropped
/// before the 413 goes out; a larger body is refused without reading it.
const MAX_DRAIN: u64 = 8 * 1024 * 1024;

/// Reads a body to its end (at most [`MAX_DRAIN`] bytes, ten seconds) and
/// drops it.
async fn drain(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen: u64 = 0;
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > MAX_DRAIN {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
}

/// Whether a request's body is data streamed to its handler (an image
/// upload) rather than a JSON document the guard reads whole.
fn streams_its_body(api: Api, method: &axum::http::Method, path: &str) -> bool {
    api == Api::Image && method == axum::http::Method::PUT && path.ends_with("/file")
}

/// Marks a response as the connection's last (`Connection: close`).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Middleware: the checks and rewriting described in the module comment.
pub async fn guard(req: Request, next: Next) -> Response {
    let api = Api::of(req.uri().path());
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_URI {
        return api.error(Fault::new(414, default_message(414)));
    }
    if std::str::from_utf8(&percent_decode(req.uri().path())).is_err() {
        return api.error(Fault::bad_request(
            "Malformed request URL: the path does not decode to UTF-8.",
        ));
    }
    // Like oslo.middleware's sizelimit, which sits before authentication:
    // a declared length over the limit is refused before anything reads
    // the body. Image data uploads stream theirs and are not bound by it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let streams = streams_its_body(api, req.method(), req.uri().path());
    if let Some(n) = declared.filter(|n| !streams && *n > MAX_BODY as u64) {
        // A body of moderate size is read and dropped first: answering and
        // closing while the client still sends makes its kernel see a reset,
        // and the client loses the 413 (lingering close, as web servers do).
        if n <= MAX_DRAIN {
            drain(req.into_body()).await;
            return api.error(Fault::new(413, default_message(413)));
        }
        return closing(api.error(Fault::new(413, default_message(413))));
    }
    // Every other body is read whole here, before any handler runs: a
    // handler that answers without reading it (an authentication failure,
    // a 404) would otherwise leave unread bytes on a kept-alive connection,
    // which hyper then closes under a client about to reuse it.
    let req = if streams {
        req
    } else {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => Request::from_parts(parts, axum::body::Body::from(bytes)),
            // Over the limit without a declared length (chunked), or cut
            // short: what is left of it is unread, so the connection closes.
            Err(_) => return closing(api.error(Fault::new(413, default_message(413)))),
        }
    };
    let resp = next.run(req).await;
    // A streamed upload refused part way has unread bytes behind it: tell
    // the client not to reuse the connection rather than let it find out.
    let resp = if streams && resp.status().as_u16() >= 400 {
        closing(resp)
    } else {
        resp
    };
    let code = resp.status().as_u16();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    if code < 400 || is_json {
        return resp;
    }
    // An error that bypassed the API's error type: keep its status and
    // headers (Allow, WWW-Authenticate, ...) but give it the API's body.
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    // axum's own rejection texts name its internals; the APIs' messages
    // are what clients look for.
    let message = if text.is_empty() || matches!(code, 404 | 405 | 413) {
        default_message(code)
    } else {
        text
    };
    let mut out = api.error(Fault::new(code, message));
    *out.status_mut() = parts.status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_their_api() {
        assert_eq!(Api::of("/identity/v3/auth/tokens"), Api::Identity);
        assert_eq!(Api::of("/identity"), Api::Identity);
        assert_eq!(Api::of("/identityx"), Api::Compute);
        assert_eq!(Api::of("/image/v2/images"), Api::Image);
        assert_eq!(Api::of("/network/v2.0/ports"), Api::Network);
        assert_eq!(Api::of("/compute/v2.1/servers"), Api::Compute);
        assert_eq!(Api::of("/"), Api::Compute);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b"), b"/a b");
        assert_eq!(percent_decode("/%ff"), vec![b'/', 0xff]);
        assert_eq!(percent_decode("/%"), b"/%");
        assert_eq!(percent_decode("/%f"), b"/%f");
        assert_eq!(percent_decode("/%zz"), b"/%zz");
        assert!(std::str::from_utf8(&percent_decode("/%C3%A9")).is_ok());
        assert!(std::str::from_utf8(&percent_decode("/servers/%ff")).is_err());
    }
}
