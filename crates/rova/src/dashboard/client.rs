//! The dashboard's way to the APIs: a request sent in process to Rova's
//! own router (the identity, compute, image and network APIs behind their
//! edge guard), with the session's token, and the JSON answer read back.

use super::session::Dash;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use serde_json::Value;
use tower::ServiceExt;

/// The compute microversion the dashboard speaks (lock reasons, tags,
/// server groups in `server show`, ...).
pub const COMPUTE_VERSION: &str = "2.100";
/// The last microversion whose hypervisor views carry capacity and usage.
pub const HYPERVISOR_VERSION: &str = "2.87";

/// One API answer.
pub struct ApiResp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl ApiResp {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error message of any API's error body (Nova's
    /// `{"kind": {"message"}}`, Keystone's `{"error": {...}}`, Glance's
    /// and Neutron's shapes), or the status when there is none.
    pub fn message(&self) -> String {
        fn find(v: &Value, depth: u8) -> Option<String> {
            let obj = v.as_object()?;
            if let Some(m) = obj.get("message").and_then(Value::as_str) {
                return Some(m.to_string());
            }
            if depth == 0 {
                return None;
            }
            obj.values().find_map(|inner| find(inner, depth - 1))
        }
        find(&self.body, 2).unwrap_or_else(|| format!("The request failed ({}).", self.status))
    }
}

/// A request to the APIs.
pub struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub token: Option<&'a str>,
    pub microversion: &'a str,
    pub body: Option<Value>,
    /// A body passed through as it is (an image upload, streamed).
    pub raw: Option<Body>,
    pub headers: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, path: impl Into<String>, token: Option<&'a str>) -> Call<'a> {
        Call {
            method,
            path: path.into(),
            token,
            microversion: COMPUTE_VERSION,
            body: None,
            raw: None,
            headers: Vec::new(),
        }
    }

    /// Sends `body` as `application/octet-stream`, streamed.
    pub fn stream(mut self, body: Body) -> Self {
        self.raw = Some(body);
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn microversion(mut self, v: &'a str) -> Self {
        self.microversion = v;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends the request through the API router and reads the answer.
    pub async fn send(self, dash: &Dash) -> ApiResp {
        let mut req = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .header(
                "openstack-api-version",
                format!("compute {}", self.microversion),
            );
        if let Some(t) = self.token {
            req = req.header("x-auth-token", t);
        }
        for (name, value) in &self.headers {
            req = req.header(*name, value.as_str());
        }
        let body = match (&self.body, self.raw) {
            (_, Some(raw)) => {
                req = req.header("content-type", "application/octet-stream");
                raw
            }
            (Some(v), None) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            (None, None) => Body::empty(),
        };
        let Ok(req) = req.body(body) else {
            return failed(400, "The request could not be built.");
        };
        let resp = match dash.api().oneshot(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        ApiResp {
            status,
            headers,
            body,
        }
    }
}

fn failed(status: u16, message: &str) -> ApiResp {
    ApiResp {
        status,
        headers: HeaderMap::new(),
        body: serde_json::json!({"error": {"message": message}}),
    }
}

/// Percent-encodes one query or path component.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `http://host[:port]` as the browser addressed the dashboard.
pub fn public_base(headers: &HeaderMap) -> String {
    crate::http::host_url(headers)
}
