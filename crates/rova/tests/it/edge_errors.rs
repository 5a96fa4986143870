//! Requests refused at the HTTP edge — a body over the limit, a URI over
//! the limit, a path that does not decode to UTF-8, a token or version
//! header that is not text, an unknown path or method — answer with the
//! error body of the API they were sent to, as JSON.

use crate::common::{start, Resp, TestCloud};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use serde_json::json;

async fn send(req: RequestBuilder) -> Resp {
    Resp::of(req).await
}

fn assert_json(r: &Resp, code: u16) {
    assert_eq!(r.status.as_u16(), code, "body: {}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{}",
        r.text
    );
}

/// Nova's `{"<kind>": {"code", "message"}}`; returns the message.
fn nova(r: &Resp, code: u16, kind: &str) -> String {
    assert_json(r, code);
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(1), "{}", r.text);
    assert_eq!(r.body[kind]["code"], json!(code), "{}", r.text);
    r.body[kind]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

/// Keystone's `{"error": {"code", "message", "title"}}`; returns the message.
pub fn keystone(r: &Resp, code: u16, title: &str) -> String {
    assert_json(r, code);
    assert_eq!(r.body["error"]["code"], json!(code), "{}", r.text);
    assert_eq!(r.body["error"]["title"], json!(title), "{}", r.text);
    r.body["error"]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

/// Glance's (webob's) `{"message", "code": "N Reason", "title"}`.
fn glance(r: &Resp, code: u16) -> String {
    assert_json(r, code);
    let c = r.body["code"].as_str().expect("code").to_string();
    assert!(c.starts_with(&format!("{code} ")), "{}", r.text);
    assert!(r.body["title"].is_string(), "{}", r.text);
    r.body["message"].as_str().expect("message").to_string()
}

/// Neutron's `{"NeutronError": {"type", "message", "detail"}}`.
fn neutron(r: &Resp, code: u16, kind: &str) -> String {
    assert_json(r, code);
    assert_eq!(r.body["NeutronError"]["type"], json!(kind), "{}", r.text);
    r.body["NeutronError"]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

fn req(cloud: &TestCloud, method: Method, path: &str, token: &str) -> RequestBuilder {
    cloud
        .http
        .request(method, format!("{}{path}", cloud.base))
        .header("X-Auth-Token", token)
}

/// A JSON document a little over the 112 KiB body limit.
fn big_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"pad": "x".repeat(120 * 1024)})).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_413_in_each_apis_error_body() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let post = |path: &str| {
        req(&cloud, Method::POST, path, &demo.token)
            .header("content-type", "application/json")
            .body(big_body())
    };
    let r = send(post("/compute/v2.1/servers")).await;
    assert_eq!(nova(&r, 413, "overLimit"), "Request is too large.");
    let r = send(post("/identity/v3/auth/tokens")).await;
    assert_eq!(
        keystone(&r, 413, "Request Entity Too Large"),
        "Request is too large."
    );
    let r = send(post("/image/v2/images")).await;
    assert_eq!(glance(&r, 413), "Request is too large.");
    let r = send(post("/network/v2.0/ports")).await;
    assert_eq!(
        neutron(&r, 413, "HTTPRequestEntityTooLarge"),
        "Request is too large."
    );
    // The declared length is refused before authentication, as Nova's
    // sizelimit middleware does.
    let r = send(
        cloud
            .http
            .post(format!("{}/compute/v2.1/servers", cloud.base))
            .header("content-type", "application/json")
            .body(big_body()),
    )
    .await;
    nova(&r, 413, "overLimit");
    // Image data streams past the JSON limit.
    let r = send(
        req(&cloud, Method::POST, "/image/v2/images", &demo.token)
            .json(&json!({"name": "big", "disk_format": "raw", "container_format": "bare"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let r = send(
        req(
            &cloud,
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &demo.token,
        )
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 300 * 1024]),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    // Nothing was created, and a body under the limit still goes through.
    let servers = cloud.get(&demo, "/servers", None).await;
    assert_eq!(servers.body["servers"], json!([]));
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": {"name": "x".repeat(100 * 1024)}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "validated, not refused: {}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uri_over_the_limit_is_414_json() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let get = |path: String| send(req(&cloud, Method::GET, &path, &demo.token));
    let long = "n".repeat(9000);
    let r = get(format!("/compute/v2.1/servers?name={long}")).await;
    nova(&r, 414, "computeFault");
    let r = get(format!("/identity/v3/projects?name={long}")).await;
    keystone(&r, 414, "Request-URI Too Long");
    let r = get(format!("/network/v2.0/networks/{long}")).await;
    neutron(&r, 414, "HTTPRequestURITooLong");
    // Just under the limit is an ordinary request.
    let ok = "n".repeat(8000);
    let r = get(format!("/compute/v2.1/servers?name={ok}")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_that_is_not_utf8_is_400_json() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let get = |path: &str| send(req(&cloud, Method::GET, path, &demo.token));
    let m = nova(&get("/compute/v2.1/servers/%ff").await, 400, "badRequest");
    assert!(m.contains("UTF-8"), "{m}");
    let r = get("/compute/v2.1/servers/%C3%A9").await;
    nova(&r, 404, "itemNotFound");
    keystone(&get("/identity/v3/users/%ff%fe").await, 400, "Bad Request");
    glance(&get("/image/v2/images/%ff").await, 400);
    neutron(&get("/network/v2.0/ports/%ff").await, 400, "HTTPBadRequest");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_header_that_is_not_text_is_401_json() {
    let cloud = start().await;
    let bad = HeaderValue::from_bytes(b"gAAAA\xff\xfe").expect("obs-text is a valid value");
    let get = |path: &str| {
        send(
            cloud
                .http
                .get(format!("{}{path}", cloud.base))
                .header("X-Auth-Token", bad.clone()),
        )
    };
    for path in [
        "/compute/v2.1/servers",
        "/identity/v3/auth/projects",
        "/image/v2/images",
        "/network/v2.0/networks",
    ] {
        let r = get(path).await;
        let m = keystone(&r, 401, "Unauthorized");
        assert_eq!(m, "The request you have made requires authentication.");
        assert!(r.header("www-authenticate").is_some(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_header_that_is_not_ascii_is_400() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let value = HeaderValue::from_bytes("compute é".as_bytes()).expect("value");
    for path in ["/compute/v2.1/servers", "/compute/v2.1/"] {
        let r = send(
            req(&cloud, Method::GET, path, &demo.token)
                .header("OpenStack-API-Version", value.clone()),
        )
        .await;
        let m = nova(&r, 400, "badRequest");
        assert!(m.starts_with("API Version String "), "{m}");
        assert!(m.contains("is of invalid format"), "{m}");
    }
    let legacy = HeaderValue::from_bytes(b"2.\xff").expect("value");
    let r = send(
        req(&cloud, Method::GET, "/compute/v2.1/servers", &demo.token)
            .header("X-OpenStack-Nova-API-Version", legacy),
    )
    .await;
    nova(&r, 400, "badRequest");
    // A readable version is still honoured.
    let r = cloud.get(&demo, "/servers", Some("2.90")).await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("compute 2.90")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_and_methods_answer_json() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let r = send(req(&cloud, Method::GET, "/no/such/api", &demo.token)).await;
    nova(&r, 404, "itemNotFound");
    let r = send(req(
        &cloud,
        Method::PUT,
        "/identity/v3/auth/tokens",
        &demo.token,
    ))
    .await;
    keystone(&r, 405, "Method Not Allowed");
    assert!(r.header("allow").is_some(), "Allow is kept");
    let r = send(req(
        &cloud,
        Method::PUT,
        "/network/v2.0/networks",
        &demo.token,
    ))
    .await;
    neutron(&r, 405, "HTTPMethodNotAllowed");
    let r = send(req(
        &cloud,
        Method::PUT,
        "/image/v2/schemas/image",
        &demo.token,
    ))
    .await;
    glance(&r, 405);
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) off
/// `stream`; `None` when the server closed the connection instead.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head.get(9..12)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some((status, head));
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `first` and then a plain GET over one kept-alive connection and
/// returns both answers' status codes (`None`: the connection was closed).
async fn two_on_one_connection(
    cloud: &TestCloud,
    first: Vec<u8>,
    token: &str,
) -> (u16, Option<u16>) {
    use tokio::io::AsyncWriteExt;
    let addr = cloud.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(&first).await.expect("write first");
    let (code, head) = read_response(&mut s).await.expect("first answer");
    assert!(!head.contains("connection: close"), "{head}");
    let second =
        format!("GET /image/v2/images HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\n\r\n");
    if s.write_all(second.as_bytes()).await.is_err() {
        return (code, None);
    }
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), read_response(&mut s))
        .await
        .expect("second answer in time");
    (code, next.map(|(c, _)| c))
}

fn post_bytes(addr: &str, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// An answer given without the handler reading the body (a refused size,
/// a bad token) leaves the kept-alive connection usable: a client that
/// reuses it right away (as connection pools do) gets its next answer
/// rather than a reset.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_body_leaves_the_connection_usable() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let addr = cloud.base.trim_start_matches("http://").to_string();
    // Over the JSON limit on the image API (its uploads stream, its JSON
    // does not).
    let first = post_bytes(&addr, "/image/v2/images", &demo.token, &big_body());
    assert_eq!(
        two_on_one_connection(&cloud, first, &demo.token).await,
        (413, Some(200))
    );
    // Under the limit, refused by authentication before anything reads it.
    let body =
        serde_json::to_vec(&json!({"server": {"name": "x".repeat(100 * 1024)}})).expect("json");
    let first = post_bytes(&addr, "/compute/v2.1/servers", "not-a-token", &body);
    assert_eq!(
        two_on_one_connection(&cloud, first, &demo.token).await,
        (401, Some(200))
    );
    // The same on an unknown path.
    let first = post_bytes(&addr, "/compute/v2.1/nothing-here", &demo.token, &body);
    assert_eq!(
        two_on_one_connection(&cloud, first, &demo.token).await,
        (404, Some(200))
    );
}
