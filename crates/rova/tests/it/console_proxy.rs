//! The console proxy end to end: console URLs from remote-consoles, the
//! token checks before the websocket upgrade, single use, expiry, and the
//! bytes bridged between a websocket client and a guest's unix socket
//! (played here by a test listener), the simulated guests' RFB screen,
//! and the noVNC files served from the configured directory (a stand-in
//! directory here; the installed package is exercised by Tempest).

use crate::common::{self, TestCloud, User};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Asks remote-consoles for a console and returns its URL.
pub(crate) async fn console_url(
    cloud: &TestCloud,
    u: &User,
    id: &str,
    protocol: &str,
    kind: &str,
) -> String {
    let r = cloud
        .post(
            u,
            &format!("/servers/{id}/remote-consoles"),
            Some("2.6"),
            json!({"remote_console": {"protocol": protocol, "type": kind}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["remote_console"]["type"], json!(kind));
    r.body["remote_console"]["url"]
        .as_str()
        .expect("url")
        .to_string()
}

/// The token at the end of a console URL (raw or percent-encoded `=`).
pub(crate) fn token_of(url: &str) -> String {
    let (_, t) = url
        .rsplit_once("token%3D")
        .or_else(|| url.rsplit_once("token="))
        .expect("token in url");
    t.to_string()
}

/// A guest console stand-in: greets like a VNC server, then echoes.
fn fake_vnc_guest() -> PathBuf {
    let path = std::env::temp_dir().join(format!("rova-it-con-{}.sock", uuid::Uuid::new_v4()));
    let listener = UnixListener::bind(&path).expect("bind unix socket");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(b"RFB 003.008\n").await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    path
}

/// Points an issued token at a socket (what a real driver fills in).
async fn set_socket(cloud: &TestCloud, token: &str, path: &Path) {
    cloud
        .app
        .compute
        .console_tokens
        .update(
            token,
            || rova_core::Fault::not_found("token not issued"),
            |t| {
                t.socket = Some(path.to_path_buf());
                Ok(())
            },
        )
        .await
        .expect("token issued");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET /os-console-auth-tokens/{token}` as `admin` (2.31).
pub(crate) async fn auth_token(cloud: &TestCloud, admin: &User, token: &str) -> common::Resp {
    cloud
        .get(
            admin,
            &format!("/os-console-auth-tokens/{token}"),
            Some("2.31"),
        )
        .await
}

/// Connects with subprotocol "binary"; Ok(ws, chosen protocol) or the
/// HTTP status of the refusal.
pub(crate) async fn connect(url: &str) -> Result<(Ws, Option<String>), u16> {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "binary".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            let proto = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok((ws, proto))
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect to {url} failed oddly: {e}"),
    }
}

pub(crate) async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("message ok");
        match m {
            Message::Binary(b) => return b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// A stand-in noVNC directory: the two pages, one module, one hidden file
/// and a file beside the directory that must stay out of reach.
fn fake_novnc() -> PathBuf {
    let base = std::env::temp_dir().join(format!("rova-it-novnc-{}", uuid::Uuid::new_v4()));
    let dir = base.join("novnc");
    std::fs::create_dir_all(dir.join("core")).expect("mkdir");
    let page = |title: &str| {
        format!("<!DOCTYPE html>\n<html lang=\"en\"><head><title>noVNC {title}</title>\n<script type=\"module\" src=\"core/rfb.js\"></script></head><body></body></html>\n")
    };
    std::fs::write(dir.join("vnc.html"), page("full")).expect("write");
    std::fs::write(dir.join("vnc_lite.html"), page("lite")).expect("write");
    std::fs::write(dir.join("core/rfb.js"), "export default class RFB {}\n").expect("write");
    std::fs::write(dir.join("core/.secret"), "hidden").expect("write");
    std::fs::write(dir.join("package.json"), "{\"version\": \"1.3.0\"}").expect("write");
    std::fs::write(base.join("secret.txt"), "outside").expect("write");
    dir
}

/// Sends `request` as raw bytes and reads until the server ends the
/// connection, which must happen promptly: a refusal is answered at once.
async fn raw_exchange(host: &str, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(host)
        .await
        .expect("tcp connect");
    s.write_all(request.as_bytes()).await.expect("send request");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the server closes the connection at once")
        .expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

/// A websocket upgrade request written as Tempest's test_novnc writes it.
fn tempest_upgrade(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Cookie: path=x\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
    )
}

/// Asserts a raw response is `status` with an empty body.
fn assert_bare_refusal(resp: &str, status: u16) {
    assert!(
        resp.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {resp:?}"
    );
    let (head, body) = resp.split_once("\r\n\r\n").expect("a full response head");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body, "", "no body a websocket client would read as data");
}

#[tokio::test]
async fn console_urls_point_at_the_proxy() {
    let novnc = fake_novnc();
    let cloud = common::start_with(|c| c.novnc_path = novnc.clone()).await;
    let demo = cloud.login("demo").await;
    let id = cloud.boot(&demo, "con", None, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let host = cloud.base.trim_start_matches("http://").to_string();

    let url = console_url(&cloud, &demo, &id, "vnc", "novnc").await;
    let token = token_of(&url);
    assert_eq!(
        url,
        format!(
            "{}/vnc_auto.html?path=websockify%3Ftoken%3D{token}",
            cloud.base
        )
    );
    let serial = console_url(&cloud, &demo, &id, "serial", "serial").await;
    let stoken = token_of(&serial);
    assert_eq!(serial, format!("ws://{host}/serial?token={stoken}"));
    assert_ne!(token, stoken);

    // The page the novnc URL names is noVNC's, from the configured
    // directory (vnc_auto.html falls back to vnc_lite.html).
    let page = cloud.http.get(&url).send().await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(
        page.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .text()
        .await
        .unwrap_or_default()
        .contains("<title>noVNC lite</title>"));

    // Before it is used, admins see the serial token.
    let admin = cloud.login("admin").await;
    let r = auth_token(&cloud, &admin, &stoken).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["console"]["instance_uuid"], json!(id));
    // A simulated guest's serial port echoes what is typed, as a tty does
    // (Tempest's serial console test types into it and reads it back).
    let ws_url = format!("ws://{host}/serial?token={stoken}");
    let (mut ws, _) = connect(&ws_url).await.expect("serial connects");
    ws.send(Message::Binary(b"typed\r".to_vec().into()))
        .await
        .expect("send");
    let mut echoed = Vec::new();
    while echoed.len() < 6 {
        echoed.extend(next_binary(&mut ws).await);
    }
    assert_eq!(echoed, b"typed\r");
    // The token opened its one session.
    assert_eq!(connect(&ws_url).await.err(), Some(401));
    let _ = std::fs::remove_dir_all(novnc.parent().expect("base"));
}

#[tokio::test]
async fn novnc_files_are_served_from_the_configured_directory_only() {
    let novnc = fake_novnc();
    let cloud = common::start_with(|c| c.novnc_path = novnc.clone()).await;
    let host = cloud.base.trim_start_matches("http://").to_string();
    let get = |path: &str| {
        let req = cloud.http.get(format!("{}{path}", cloud.base));
        async move {
            let r = req.send().await.expect("get");
            let ctype = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (
                r.status().as_u16(),
                ctype,
                r.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, _, body) = get("/vnc.html").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>noVNC full</title>"), "{body}");
    let (status, ctype, body) = get("/core/rfb.js").await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert_eq!(body, "export default class RFB {}\n");
    let (status, ctype, body) = get("/package.json").await;
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    assert!(body.contains("1.3.0"), "{body}");
    // Missing and hidden files are 404 with Nova's error body.
    for path in [
        "/core/missing.js",
        "/core/.secret",
        "/vendor/none/x.js",
        "/defaults.json",
    ] {
        let (status, ctype, body) = get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["itemNotFound"]["code"], json!(404), "{path}: {body}");
    }
    // `..` cannot climb out of the directory (sent raw: HTTP clients
    // would resolve the dots themselves).
    let resp = raw_exchange(
        &host,
        &format!(
            "GET /core/../../secret.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
    assert!(!resp.contains("outside"), "{resp}");
    let _ = std::fs::remove_dir_all(novnc.parent().expect("base"));
}

#[tokio::test]
async fn a_missing_novnc_directory_is_a_clear_503() {
    let missing = std::env::temp_dir().join(format!("rova-it-no-novnc-{}", uuid::Uuid::new_v4()));
    let cloud = common::start_with(|c| c.novnc_path = missing.clone()).await;
    let r = cloud
        .http
        .get(format!(
            "{}/vnc_auto.html?path=websockify%3Ftoken%3Dx",
            cloud.base
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 503);
    let v: serde_json::Value = r.json().await.expect("json body");
    assert_eq!(v["serviceUnavailable"]["code"], json!(503));
    let msg = v["serviceUnavailable"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("novnc"), "{msg}");
}

#[tokio::test]
async fn bad_and_used_tokens_are_refused_at_once() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = cloud.boot(&demo, "bad", None, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let host = cloud.base.trim_start_matches("http://").to_string();
    let token = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);

    // Tempest's test_novnc_bad_token: "bad" before the real token.
    let resp = raw_exchange(
        &host,
        &tempest_upgrade(&host, &format!("/websockify?token=bad{token}")),
    )
    .await;
    assert_bare_refusal(&resp, 401);
    // No token at all.
    let resp = raw_exchange(&host, &tempest_upgrade(&host, "/websockify")).await;
    assert_bare_refusal(&resp, 401);

    // The good token opens one session; once used it is refused at once.
    let (ws, _) = connect(&format!("ws://{host}/websockify?token={token}"))
        .await
        .expect("the good token connects");
    let resp = raw_exchange(
        &host,
        &tempest_upgrade(&host, &format!("/websockify?token={token}")),
    )
    .await;
    assert_bare_refusal(&resp, 401);
    drop(ws);

    // Expired: ten minutes on, a fresh unused token is refused too.
    let token2 = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    cloud.app.clock.advance(chrono::Duration::minutes(11));
    let resp = raw_exchange(
        &host,
        &tempest_upgrade(&host, &format!("/websockify?token={token2}")),
    )
    .await;
    assert_bare_refusal(&resp, 401);
}

/// Opens a simulated guest's VNC console with a fresh token and reads the
/// server's RFB 3.8 greeting; returns the session and its token.
async fn sim_vnc_session(cloud: &TestCloud, u: &User, id: &str) -> (Ws, String) {
    let host = cloud.base.trim_start_matches("http://");
    let token = token_of(&console_url(cloud, u, id, "vnc", "novnc").await);
    let (mut ws, proto) = connect(&format!("ws://{host}/websockify?token={token}"))
        .await
        .expect("connects");
    assert_eq!(proto.as_deref(), Some("binary"));
    assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n", "the greeting");
    (ws, token)
}

#[tokio::test]
async fn simulated_guests_speak_rfb_over_the_proxy() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = cloud.boot(&demo, "sim", None, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let host = cloud.base.trim_start_matches("http://").to_string();
    // Each handshake step is one message, as Tempest reads them.
    let (mut ws, token) = sim_vnc_session(&cloud, &demo, &id).await;
    ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
        .await
        .expect("send");
    assert_eq!(
        next_binary(&mut ws).await,
        vec![1, 1],
        "security type None offered"
    );
    ws.send(Message::binary(vec![1])).await.expect("send");
    assert_eq!(next_binary(&mut ws).await, vec![0, 0, 0, 0], "security ok");
    ws.send(Message::binary(vec![1])).await.expect("send");
    let init = next_binary(&mut ws).await;
    assert!(init.len() > 24 && init.len() < 126, "{init:?}");
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    assert_eq!(init.len(), 24 + name_len);
    let (w, h) = (
        u16::from_be_bytes([init[0], init[1]]),
        u16::from_be_bytes([init[2], init[3]]),
    );
    assert!(w > 0 && h > 0);
    assert!(std::str::from_utf8(&init[24..])
        .expect("utf-8")
        .starts_with("instance-"));
    // An incremental request waits (nothing changed); a full one for a
    // 2x2 corner in 16-bit colour comes back as one raw rectangle.
    let mut pf = vec![
        0u8, 0, 0, 0, 16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0,
    ];
    pf.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 2, 0, 2]);
    pf.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 2, 0, 2]);
    ws.send(Message::binary(pf)).await.expect("send");
    let update = next_binary(&mut ws).await;
    assert_eq!(&update[..4], &[0, 0, 0, 1]);
    assert_eq!(&update[4..16], &[0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0]);
    assert_eq!(update.len(), 16 + 2 * 2 * 2);
    // The token was used up by the session.
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={token}"))
            .await
            .err(),
        Some(401)
    );
    // RFB 3.3: the server names the security type (None) and goes
    // straight on to ClientInit.
    let (mut ws, _) = sim_vnc_session(&cloud, &demo, &id).await;
    ws.send(Message::binary(b"RFB 003.003\n".to_vec()))
        .await
        .expect("send");
    assert_eq!(next_binary(&mut ws).await, vec![0, 0, 0, 1]);
    ws.send(Message::binary(vec![1])).await.expect("send");
    assert_eq!(next_binary(&mut ws).await, init, "the same ServerInit");
    // A client that wants another security type is told why and dropped.
    let (mut ws, _) = sim_vnc_session(&cloud, &demo, &id).await;
    ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
        .await
        .expect("send");
    assert_eq!(next_binary(&mut ws).await, vec![1, 1]);
    ws.send(Message::binary(vec![2])).await.expect("send");
    let failed = next_binary(&mut ws).await;
    assert_eq!(&failed[..4], &[0, 0, 0, 1], "SecurityResult failed");
    assert!(String::from_utf8_lossy(&failed[8..]).contains("None"));
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the session ends after a refused security type"
    );
    // A stopped guest has no screen to show.
    let token2 = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    cloud.stop(&demo, &id).await;
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={token2}"))
            .await
            .err(),
        Some(409)
    );
}

#[tokio::test]
async fn vnc_proxy_bridges_and_tokens_are_single_use() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let id = cloud.boot(&demo, "vnc", None, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let host = cloud.base.trim_start_matches("http://").to_string();
    let guest = fake_vnc_guest();

    let token = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &token, &guest).await;
    let ws_url = format!("ws://{host}/websockify?token={token}");

    // A plain GET (no upgrade) with a good token is refused and does not
    // use the token up.
    let plain = cloud
        .http
        .get(format!("{}/websockify?token={token}", cloud.base))
        .send()
        .await
        .expect("plain get");
    assert!(plain.status().is_client_error(), "{}", plain.status());
    // Missing and unknown tokens are 401.
    assert_eq!(
        connect(&format!("ws://{host}/websockify")).await.err(),
        Some(401)
    );
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token=nope"))
            .await
            .err(),
        Some(401)
    );

    let (mut ws, proto) = connect(&ws_url).await.expect("connects");
    assert_eq!(proto.as_deref(), Some("binary"));
    assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n");
    ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
        .await
        .expect("send");
    assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n");
    ws.send(Message::text("as text")).await.expect("send text");
    assert_eq!(next_binary(&mut ws).await, b"as text");

    // Consumed: the admin API no longer knows it, and a second connect
    // (even while the first session is open) is refused.
    let r = auth_token(&cloud, &admin, &token).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(connect(&ws_url).await.err(), Some(401));
    ws.close(None).await.expect("close");
    assert_eq!(connect(&ws_url).await.err(), Some(401));

    // A fresh token still works after the first session ended.
    let token2 = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &token2, &guest).await;
    let (mut ws2, _) = connect(&format!("ws://{host}/websockify?token={token2}"))
        .await
        .expect("second session");
    assert_eq!(next_binary(&mut ws2).await, b"RFB 003.008\n");
    let _ = std::fs::remove_file(&guest);
}

#[tokio::test]
async fn expired_and_misrouted_tokens_are_refused() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = cloud.boot(&demo, "exp", None, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let host = cloud.base.trim_start_matches("http://").to_string();
    let guest = fake_vnc_guest();

    // A serial token on the VNC endpoint: 403, and not used up.
    let stoken = token_of(&console_url(&cloud, &demo, &id, "serial", "serial").await);
    set_socket(&cloud, &stoken, &guest).await;
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={stoken}"))
            .await
            .err(),
        Some(403)
    );
    // A novnc token on the serial endpoint: 403 as well.
    let vtoken = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &vtoken, &guest).await;
    assert_eq!(
        connect(&format!("ws://{host}/serial?token={vtoken}"))
            .await
            .err(),
        Some(403)
    );
    // The serial token still opens the serial endpoint and bridges bytes.
    let (mut ws, _) = connect(&format!("ws://{host}/serial?token={stoken}"))
        .await
        .expect("serial connects");
    assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n");
    ws.send(Message::binary(b"ls\n".to_vec()))
        .await
        .expect("send");
    assert_eq!(next_binary(&mut ws).await, b"ls\n");

    // Ten minutes later the unused novnc token has expired.
    cloud.app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={vtoken}"))
            .await
            .err(),
        Some(401)
    );

    // A token whose instance was deleted is refused.
    let dtoken = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &dtoken, &guest).await;
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::DELETE,
            &format!("/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    cloud.wait_status(&demo, &id, &["404"], None).await;
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={dtoken}"))
            .await
            .err(),
        Some(404)
    );
    let _ = std::fs::remove_file(&guest);
}
