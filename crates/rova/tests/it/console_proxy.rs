//! The console proxy end to end: console URLs from remote-consoles, the
//! token checks before the websocket upgrade, single use, expiry, and the
//! bytes bridged between a websocket client and a guest's unix socket
//! (played here by a test listener, as the fake driver has no console).

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
async fn console_url(cloud: &TestCloud, u: &User, id: &str, protocol: &str, kind: &str) -> String {
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
fn token_of(url: &str) -> String {
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
fn set_socket(cloud: &TestCloud, token: &str, path: &Path) {
    let mut tokens = cloud.app.compute.console_tokens.lock();
    let t = tokens.get_mut(token).expect("token issued");
    t.socket = Some(path.to_path_buf());
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects with subprotocol "binary"; Ok(ws, chosen protocol) or the
/// HTTP status of the refusal.
async fn connect(url: &str) -> Result<(Ws, Option<String>), u16> {
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

async fn next_binary(ws: &mut Ws) -> Vec<u8> {
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

#[tokio::test]
async fn console_urls_point_at_the_proxy() {
    let cloud = common::start().await;
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

    // The page the novnc URL names is served.
    let page = cloud.http.get(&url).send().await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page
        .text()
        .await
        .unwrap_or_default()
        .contains("/websockify"));

    // The fake driver has no console socket: a valid token is refused with
    // 409 and stays unconsumed (admins still see it).
    let ws_url = format!("ws://{host}/websockify?token={token}");
    assert_eq!(connect(&ws_url).await.err(), Some(409));
    let admin = cloud.login("admin").await;
    let r = cloud
        .get(
            &admin,
            &format!("/os-console-auth-tokens/{token}"),
            Some("2.31"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["console"]["instance_uuid"], json!(id));
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
    set_socket(&cloud, &token, &guest);
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
    let r = cloud
        .get(
            &admin,
            &format!("/os-console-auth-tokens/{token}"),
            Some("2.31"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(connect(&ws_url).await.err(), Some(401));
    ws.close(None).await.expect("close");
    assert_eq!(connect(&ws_url).await.err(), Some(401));

    // A fresh token still works after the first session ended.
    let token2 = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &token2, &guest);
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
    set_socket(&cloud, &stoken, &guest);
    assert_eq!(
        connect(&format!("ws://{host}/websockify?token={stoken}"))
            .await
            .err(),
        Some(403)
    );
    // A novnc token on the serial endpoint: 403 as well.
    let vtoken = token_of(&console_url(&cloud, &demo, &id, "vnc", "novnc").await);
    set_socket(&cloud, &vtoken, &guest);
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
    set_socket(&cloud, &dtoken, &guest);
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
