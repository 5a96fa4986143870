//! The per-guest metadata service over real unix sockets: raw HTTP/1.0
//! and HTTP/1.1 requests as busybox wget sends them, identity by socket,
//! the password endpoint against the compute API, deleted instances and
//! the listener's lifecycle.

use crate::common::{self, TestCloud, User};
use base64::Engine;
use reqwest::StatusCode;
use rova::compute::guest_env::ComputeGuestEnv;
use rova::virt::metadata_server::{serve, MetadataHandle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// One parsed HTTP response.
pub(crate) struct HttpResp {
    status: u16,
    /// Lower-cased header names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("json: {e}: {}", self.text()))
    }
}

/// Sends raw request bytes and reads the response until the server closes
/// the connection (it answers `Connection: close`).
async fn raw(sock: &Path, request: &[u8]) -> HttpResp {
    let fut = async {
        let mut s = UnixStream::connect(sock).await.expect("connect");
        s.write_all(request).await.expect("write request");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read response");
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("response within 10 s (connection closed by the server)");
    parse(&buf)
}

fn parse(buf: &[u8]) -> HttpResp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).expect("utf-8 head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResp {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// `GET` as busybox wget sends it (HTTP/1.0, no keep-alive).
pub(crate) async fn get10(sock: &Path, path: &str) -> HttpResp {
    let req = format!("GET {path} HTTP/1.0\r\nHost: 169.254.169.254\r\nUser-Agent: Wget\r\n\r\n");
    raw(sock, req.as_bytes()).await
}

/// `GET` over HTTP/1.1 asking for keep-alive: the server still closes.
async fn get11(sock: &Path, path: &str) -> HttpResp {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n");
    raw(sock, req.as_bytes()).await
}

async fn post11(sock: &Path, path: &str, body: &[u8]) -> HttpResp {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(sock, &req).await
}

pub(crate) fn sock_dir() -> PathBuf {
    // Short path: sun_path holds at most 107 bytes.
    std::env::temp_dir().join(format!(
        "rmd-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ))
}

pub(crate) struct Dir(pub(crate) PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const USER_DATA: &[u8] = b"#!/bin/sh\necho hello \xff\x00 world\n";

/// Boots a server at 2.56 (personality allowed) with user data, a keypair,
/// metadata and one injected file; returns its id.
async fn boot_full(cloud: &TestCloud, demo: &User, name: &str) -> String {
    let r = cloud
        .post(
            demo,
            "/os-keypairs",
            Some("2.2"),
            json!({"keypair": {"name": format!("{name}-key")}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let b64 = base64::engine::general_purpose::STANDARD;
    let server = cloud
        .boot(
            demo,
            name,
            Some("2.56"),
            json!({
                "networks": "auto",
                "user_data": b64.encode(USER_DATA),
                "key_name": format!("{name}-key"),
                "metadata": {"a": "b"},
                "personality": [{"path": "/etc/motd", "contents": b64.encode(b"welcome\n")}],
            }),
        )
        .await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    server["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn guest_reads_its_metadata_by_socket() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = boot_full(&cloud, &demo, "alpha").await;
    let other = cloud
        .boot(&demo, "beta", Some("2.56"), json!({"networks": "auto"}))
        .await;
    let other_id = other["id"].as_str().expect("id").to_string();
    let dir = Dir(sock_dir());
    let sock = dir.0.join("a").join("md.sock");
    let sock_b = dir.0.join("b").join("md.sock");
    let h = serve(ComputeGuestEnv::of(&cloud.app), &id, &sock).expect("serve alpha");
    let hb = serve(ComputeGuestEnv::of(&cloud.app), &other_id, &sock_b).expect("serve beta");
    assert_eq!(h.path(), sock.as_path());
    assert!(sock.exists() && sock_b.exists());

    // meta_data.json over HTTP/1.0 and HTTP/1.1.
    for r in [
        get10(&sock, "/openstack/latest/meta_data.json").await,
        get11(&sock, "/openstack/latest/meta_data.json").await,
    ] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("connection"), Some("close"));
        let md = r.json();
        assert_eq!(md["uuid"], json!(id));
        assert_eq!(md["name"], "alpha");
        assert_eq!(md["hostname"], "alpha.novalocal");
        assert_eq!(md["meta"], json!({"a": "b"}));
        let keys = md["public_keys"].as_object().expect("public_keys");
        let kp = cloud.get(&demo, "/os-keypairs/alpha-key", None).await.body["keypair"]
            ["public_key"]
            .clone();
        assert_eq!(keys.get("alpha-key"), Some(&kp), "{md}");
        assert_eq!(md["keys"][0]["type"], "ssh");
        assert_eq!(md["files"][0]["path"], "/etc/motd");
        let seed = md["random_seed"].as_str().expect("random_seed");
        let seed = base64::engine::general_purpose::STANDARD
            .decode(seed)
            .expect("seed b64");
        assert_eq!(seed.len(), 512);
        assert!(md.get("admin_pass").is_none(), "never over HTTP");
    }

    // User data: the exact bytes, including non-UTF-8 ones.
    let r = get10(&sock, "/openstack/latest/user_data").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, USER_DATA);
    let r = get10(&sock, "/latest/user-data").await;
    assert_eq!((r.status, r.body.as_slice()), (200, USER_DATA));
    // The injected file.
    let r = get10(&sock, "/openstack/content/0000").await;
    assert_eq!((r.status, r.text().as_str()), (200, "welcome\n"));

    // Version listings.
    let r = get10(&sock, "/openstack").await;
    assert_eq!(r.status, 200);
    let versions: Vec<String> = r.text().lines().map(str::to_string).collect();
    assert_eq!(versions.first().map(String::as_str), Some("2012-08-10"));
    assert_eq!(versions.last().map(String::as_str), Some("latest"));
    assert!(versions.iter().any(|v| v == "2018-08-27"), "{versions:?}");
    let r = get10(&sock, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().lines().any(|l| l == "2009-04-04"), "{}", r.text());
    let r = get10(&sock, "/openstack/latest").await;
    let files = r.text();
    assert!(
        files.contains("meta_data.json")
            && files.contains("user_data")
            && files.contains("password"),
        "{files}"
    );

    // EC2 tree.
    let internal = cloud.app.compute.instances.get(&id).expect("row").id;
    let r = get10(&sock, "/latest/meta-data/instance-id").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("i-{internal:08x}"));
    let r = get11(&sock, "/2009-04-04/meta-data/hostname").await;
    assert_eq!((r.status, r.text().as_str()), (200, "alpha.novalocal"));

    // network_data.json is built from the live network and its subnet.
    let r = get10(&sock, "/openstack/latest/network_data.json").await;
    assert_eq!(r.status, 200);
    let nd = r.json();
    assert_eq!(nd["links"].as_array().map(Vec::len), Some(1), "{nd}");
    assert_eq!(
        nd["networks"][0]["network_id"],
        json!(cloud.network_id()),
        "{nd}"
    );

    // Unknown paths and versions.
    for p in [
        "/nope",
        "/openstack/latest/nope.json",
        "/openstack/1999-01-01/meta_data.json",
        "/latest/meta-data/nope",
    ] {
        let r = get10(&sock, p).await;
        assert_eq!(r.status, 404, "{p}: {}", r.text());
        assert!(r.text().starts_with("404 Not Found"), "{p}: {}", r.text());
    }

    // HEAD: headers only.
    let r = raw(&sock, b"HEAD /openstack/latest/user_data HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(USER_DATA.len().to_string().as_str())
    );
    assert!(r.body.is_empty());

    // Other methods.
    let r = raw(
        &sock,
        b"PUT /openstack/latest/meta_data.json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    let r = post11(&sock, "/openstack/latest/meta_data.json", b"x").await;
    assert_eq!(r.status, 405);

    // Identity is by socket, never by header.
    let r = raw(
        &sock_b,
        format!("GET /openstack/latest/meta_data.json HTTP/1.0\r\nX-Instance-ID: {id}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let md = r.json();
    assert_eq!(md["uuid"], json!(other_id));
    assert_eq!(md["name"], "beta");
    assert!(md.get("public_keys").is_none());
    assert_eq!(
        get10(&sock_b, "/openstack/latest/user_data").await.status,
        404
    );

    h.stop();
    hb.stop();
}

#[tokio::test]
async fn guest_password_is_posted_once_and_read_through_the_api() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = boot_full(&cloud, &demo, "pw").await;
    let dir = Dir(sock_dir());
    let sock = dir.0.join("md.sock");
    let h = serve(ComputeGuestEnv::of(&cloud.app), &id, &sock).expect("serve");

    let r = get10(&sock, "/openstack/latest/password").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    // Larger than a password may be: 400, nothing stored.
    let r = post11(&sock, "/openstack/latest/password", &[b'x'; 1021]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Over the body limit: refused from the Content-Length alone.
    let r = raw(
        &sock,
        b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\nabc",
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());

    let r = post11(&sock, "/openstack/2013-04-04/password", b"s3cret").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post11(&sock, "/openstack/latest/password", b"other").await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = get11(&sock, "/openstack/latest/password").await;
    assert_eq!((r.status, r.text().as_str()), (200, "s3cret"));
    // Before Grizzly there is no password endpoint.
    assert_eq!(
        post11(&sock, "/openstack/2012-08-10/password", b"x")
            .await
            .status,
        405
    );

    let r = cloud
        .get(&demo, &format!("/servers/{id}/os-server-password"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"password": "s3cret"}));

    // Cleared through the API: the guest may post a new one.
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::DELETE,
            &format!("/servers/{id}/os-server-password"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = post11(&sock, "/openstack/latest/password", b"again").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = cloud
        .get(&demo, &format!("/servers/{id}/os-server-password"), None)
        .await;
    assert_eq!(r.body, json!({"password": "again"}));
    drop(h);
}

#[tokio::test]
async fn deleted_instance_is_404_and_stop_removes_the_socket() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let server = cloud
        .boot(&demo, "gone", Some("2.56"), json!({"networks": "auto"}))
        .await;
    let id = server["id"].as_str().expect("id").to_string();
    let dir = Dir(sock_dir());
    let sock = dir.0.join("md.sock");

    // A stale socket file from an earlier run is replaced.
    std::fs::create_dir_all(&dir.0).expect("mkdir");
    let stale = std::os::unix::net::UnixListener::bind(&sock).expect("stale bind");
    drop(stale);
    assert!(sock.exists());
    let first =
        serve(ComputeGuestEnv::of(&cloud.app), &id, &sock).expect("serve over a stale socket");
    assert_eq!(
        get10(&sock, "/openstack/latest/meta_data.json")
            .await
            .status,
        200
    );

    // Re-serving on the same path (a guest restart) takes the path over;
    // dropping the older handle must leave the newer socket alone.
    let second = serve(ComputeGuestEnv::of(&cloud.app), &id, &sock).expect("serve again");
    drop(first);
    assert!(sock.exists(), "the newer listener's socket stays");
    assert_eq!(
        get10(&sock, "/openstack/latest/meta_data.json")
            .await
            .status,
        200
    );

    // Deleted: 404 everywhere, including the password POST.
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::DELETE,
            &format!("/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    cloud.wait_status(&demo, &id, &["404"], None).await;
    for p in [
        "/openstack/latest/meta_data.json",
        "/latest/meta-data/instance-id",
        "/openstack",
    ] {
        assert_eq!(get10(&sock, p).await.status, 404, "{p}");
    }
    assert_eq!(
        post11(&sock, "/openstack/latest/password", b"x")
            .await
            .status,
        404
    );

    // A missing instance is 404 too.
    let ghost = dir.0.join("ghost.sock");
    let hg = serve(
        ComputeGuestEnv::of(&cloud.app),
        "00000000-0000-0000-0000-000000000000",
        &ghost,
    )
    .expect("serve ghost");
    assert_eq!(
        get10(&ghost, "/openstack/latest/meta_data.json")
            .await
            .status,
        404
    );
    drop(hg);
    assert!(!ghost.exists());

    // stop(): the file is gone and connecting fails.
    second.stop();
    assert!(!sock.exists(), "socket file removed");
    assert!(UnixStream::connect(&sock).await.is_err());

    // Something that is not a socket is never replaced.
    std::fs::write(&sock, b"keep me").expect("write file");
    let err = serve(ComputeGuestEnv::of(&cloud.app), &id, &sock).expect_err("regular file refused");
    assert!(err.contains("not a unix socket"), "{err}");
    assert_eq!(std::fs::read(&sock).expect("still there"), b"keep me");
}

#[test]
fn serve_needs_a_runtime() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cloud = rt.block_on(common::start());
    let dir = Dir(sock_dir());
    let r: Result<MetadataHandle, String> =
        serve(ComputeGuestEnv::of(&cloud.app), "x", &dir.0.join("md.sock"));
    assert!(r.expect_err("no runtime").contains("tokio runtime"));
    let _guard = rt.enter();
    drop(cloud);
}
