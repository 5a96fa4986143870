//! The console proxy: websocket endpoints that join a client to a guest's
//! local console socket. `GET /websockify?token=..` serves VNC (RFB) and
//! `GET /serial?token=..` the serial port. The console auth token issued
//! by `super::consoles::create` is checked before the upgrade (unknown or
//! expired → 401, issued for the other endpoint → 403) and consumed when
//! the connection is made, so each token opens one session. After that
//! the proxy only copies bytes: websocket messages to the socket and
//! socket reads back as binary messages, until either side ends.

use super::consoles;
use super::driver::ConsoleKind;
use crate::app::App;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long closing the websocket may take once a side has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The proxy's routes, mounted at the root beside the APIs.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/websockify", get(websockify))
        .route("/serial", get(serial))
        .route("/vnc_auto.html", get(vnc_page))
}

async fn websockify(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(&app, query.as_deref(), ws, ConsoleKind::Vnc)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serial(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(&app, query.as_deref(), ws, ConsoleKind::Serial)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Rova ships no noVNC; the page the novnc URL names says where to point a
/// VNC websocket client instead.
async fn vnc_page() -> Response {
    const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Rova VNC console</title></head>\
<body><p>Rova serves no VNC viewer. Connect a VNC websocket client \
(subprotocol <code>binary</code>) to <code>/websockify?token=TOKEN</code>, \
where TOKEN is the token in this page's <code>path</code> parameter.</p></body></html>\n";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// A refusal before the upgrade: a status and a plain-text reason.
type Refusal = (StatusCode, String);

/// The `token` parameter of a query string.
pub fn token_from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

/// Checks the token and the guest's console, connects to its socket,
/// consumes the token and upgrades.
async fn open(
    app: &App,
    query: Option<&str>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    kind: ConsoleKind,
) -> Result<Response, Refusal> {
    let invalid = || {
        (
            StatusCode::UNAUTHORIZED,
            "The token is invalid or has expired.".to_string(),
        )
    };
    let token = token_from_query(query).ok_or_else(|| {
        (
            StatusCode::UNAUTHORIZED,
            "A console token is required (?token=...).".to_string(),
        )
    })?;
    let issued = consoles::lookup(app, &token).ok_or_else(invalid)?;
    if consoles::console_kind(&issued.console_type) != Some(kind) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "The token is for a {} console, which this endpoint does not serve.",
                issued.console_type
            ),
        ));
    }
    let inst = app
        .compute
        .instances
        .get(&issued.instance_uuid)
        .filter(|i| !i.deleted)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("Instance {} could not be found.", issued.instance_uuid),
            )
        })?;
    let path = issued
        .socket
        .clone()
        .or_else(|| app.compute.driver.console_socket(&inst, kind))
        .ok_or_else(|| {
            (
                StatusCode::CONFLICT,
                format!(
                    "Instance {} has no {} console to connect to.",
                    inst.uuid, issued.console_type
                ),
            )
        })?;
    let ws = ws.map_err(|r| (r.status(), r.body_text()))?;
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("Cannot reach the console of instance {}: {e}", inst.uuid),
        )
    })?;
    // Single use: whoever removes the token owns the session.
    if app.compute.console_tokens.lock().remove(&token).is_none() {
        return Err(invalid());
    }
    tracing::info!(instance = %inst.uuid, console = %issued.console_type, "console connected");
    let uuid = inst.uuid.clone();
    Ok(ws
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            pipe(socket, stream).await;
            tracing::info!(instance = %uuid, "console closed");
        }))
}

/// Connects to the unix socket at `socket` and bridges it to `ws` until
/// either side ends.
pub async fn bridge(ws: WebSocket, socket: &Path) -> Result<(), String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    pipe(ws, stream).await;
    Ok(())
}

/// Copies websocket messages (binary, or text as its bytes) to `stream`
/// and everything read from `stream` back as binary messages. When either
/// side ends, the socket is shut down and the websocket closed.
pub async fn pipe(ws: WebSocket, stream: UnixStream) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = stream.into_split();
    let to_guest = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let data = match msg {
                Message::Binary(_) | Message::Text(_) => msg.into_data(),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if ws_tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = to_guest => {}
        _ = to_client => {}
    }
    let _ = wr.shutdown().await;
    let _ = tokio::time::timeout(CLOSE_GRACE, ws_tx.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as TMessage;

    fn sock_path() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rova-cp-{}.sock", uuid::Uuid::new_v4()))
    }

    /// Serves `bridge` to the unix socket at `path` on a loopback port.
    async fn bridge_server(path: std::path::PathBuf) -> std::net::SocketAddr {
        let app: Router = Router::new().route(
            "/ws",
            get(move |ws: WebSocketUpgrade| {
                let path = path.clone();
                async move {
                    ws.protocols(["binary"]).on_upgrade(move |s| async move {
                        let _ = bridge(s, &path).await;
                    })
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        addr
    }

    async fn next_binary<S>(ws: &mut S) -> Vec<u8>
    where
        S: futures_util::Stream<Item = Result<TMessage, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("message in time")
                .expect("stream open")
                .expect("message ok");
            match m {
                TMessage::Binary(b) => return b.to_vec(),
                TMessage::Ping(_) | TMessage::Pong(_) => continue,
                other => panic!("expected binary, got {other:?}"),
            }
        }
    }

    #[test]
    fn token_is_read_from_the_query() {
        assert_eq!(token_from_query(Some("token=abc")), Some("abc".into()));
        assert_eq!(
            token_from_query(Some("x=1&token=a%2Db")),
            Some("a-b".into())
        );
        assert_eq!(token_from_query(Some("token=")), None);
        assert_eq!(token_from_query(Some("tok=abc")), None);
        assert_eq!(token_from_query(None), None);
    }

    #[tokio::test]
    async fn bridge_copies_both_ways_and_closes_with_the_socket() {
        let path = sock_path();
        let listener = UnixListener::bind(&path).unwrap();
        let guest = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"RFB 003.008\n").await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 9 {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "client data arrives before EOF");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"bye").await.unwrap();
            got
            // dropping `s` ends the guest side
        });
        let addr = bridge_server(path.clone()).await;
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "binary".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("binary")
        );
        assert_eq!(next_binary(&mut ws).await, b"RFB 003.008\n");
        ws.send(TMessage::binary(b"\x01\x02\x03\x04".to_vec()))
            .await
            .unwrap();
        ws.send(TMessage::text("hello")).await.unwrap();
        assert_eq!(guest.await.unwrap(), b"\x01\x02\x03\x04hello");
        assert_eq!(next_binary(&mut ws).await, b"bye");
        // The guest hung up: the websocket ends too.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(TMessage::Close(_))) => break,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await;
        assert!(end.is_ok(), "websocket closed after the guest side ended");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn closing_the_websocket_closes_the_socket() {
        let path = sock_path();
        let listener = UnixListener::bind(&path).unwrap();
        let guest = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            // Reads to EOF: returns only once the proxy shuts the socket.
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        let addr = bridge_server(path.clone()).await;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        ws.send(TMessage::binary(b"abc".to_vec())).await.unwrap();
        ws.close(None).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), guest)
            .await
            .expect("socket closed in time")
            .unwrap();
        assert_eq!(got, b"abc");
        let _ = std::fs::remove_file(&path);
    }
}
