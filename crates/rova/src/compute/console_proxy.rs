//! The console proxy: websocket endpoints that join a client to a guest's
//! console, and the noVNC web client those console URLs open.
//! `GET /websockify?token=..` serves VNC (RFB) and `GET /serial?token=..`
//! the serial port. The console auth token issued by
//! `super::consoles::create` is checked before the upgrade (unknown,
//! expired or used → 401, issued for the other endpoint → 403) and
//! consumed when the connection is made, so each token opens one session.
//! A refused upgrade is answered at once with the status, no body and
//! `Connection: close`, so a websocket client sees the connection end
//! instead of waiting on it. After the upgrade the proxy only copies
//! bytes: websocket messages to the guest's unix socket and socket reads
//! back as binary messages, until either side ends. A simulated guest has
//! no socket; its VNC console is `super::sim_vnc`, its serial port a
//! terminal that echoes what is typed.
//!
//! The noVNC pages (`/vnc_auto.html`, `/vnc.html`, `/vnc_lite.html`) and
//! their asset folders are served from the configured directory
//! (`--novnc-path`, default `/usr/share/novnc`), as Nova's novncproxy
//! serves the installed noVNC; without it they answer 503.

use super::consoles;
use super::driver::{ConsoleIo, ConsoleKind, ConsoleStream};
use crate::app::App;
use crate::http::ApiError;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rova_core::states::VmState;
use rova_core::Fault;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long closing the websocket may take once a side has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The proxy's routes, mounted at the root beside the APIs: the two
/// websockets, then the noVNC pages, the settings files noVNC's UI fetches
/// and its asset folders (at the root, as noVNC links its assets
/// relatively). Each route is written out so the RBAC matrix test can read
/// it.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/websockify", get(websockify))
        .route("/serial", get(serial))
        .route("/vnc_auto.html", get(novnc_file))
        .route("/vnc.html", get(novnc_file))
        .route("/vnc_lite.html", get(novnc_file))
        .route("/package.json", get(novnc_file))
        .route("/defaults.json", get(novnc_file))
        .route("/mandatory.json", get(novnc_file))
        .route("/app/{*rest}", get(novnc_file))
        .route("/core/{*rest}", get(novnc_file))
        .route("/vendor/{*rest}", get(novnc_file))
        .route("/include/{*rest}", get(novnc_file))
}

async fn websockify(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrading = ws.is_ok();
    open(&app, query.as_deref(), ws, ConsoleKind::Vnc)
        .await
        .unwrap_or_else(|r| refuse(r, upgrading))
}

async fn serial(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrading = ws.is_ok();
    open(&app, query.as_deref(), ws, ConsoleKind::Serial)
        .await
        .unwrap_or_else(|r| refuse(r, upgrading))
}

/// A refusal before the upgrade: a status and a plain-text reason.
type Refusal = (StatusCode, String);

/// The answer to a refused connection, which always ends it. To a
/// websocket upgrade it is the bare status (a body would be read as
/// websocket data, as Tempest's client does); to a plain request the
/// reason comes as text.
fn refuse((status, reason): Refusal, upgrading: bool) -> Response {
    tracing::info!(
        status = status.as_u16(),
        "console connection refused: {reason}"
    );
    let close = [(header::CONNECTION, "close")];
    if upgrading {
        (status, close).into_response()
    } else {
        (status, close, reason).into_response()
    }
}

/// Serves one file of the noVNC client; `/vnc_auto.html` (the page
/// console URLs name) falls back to `vnc_lite.html`, which noVNC ≥ 1.0
/// ships in its place.
async fn novnc_file(State(app): State<Arc<App>>, uri: Uri) -> Response {
    read_novnc(&app.cfg.novnc_path, uri.path())
        .await
        .unwrap_or_else(|f| ApiError(f).into_response())
}

async fn read_novnc(root: &Path, path: &str) -> Result<Response, Fault> {
    if !root.is_dir() {
        return Err(Fault::new(
            503,
            format!(
                "The noVNC web client is not installed: {} is not a directory \
                 (install Debian's novnc package, or point --novnc-path / ROVA_NOVNC_PATH at noVNC).",
                root.display()
            ),
        ));
    }
    let not_found = || Fault::not_found(format!("The noVNC file {path} could not be found."));
    let mut file = root.to_path_buf();
    for seg in path.trim_start_matches('/').split('/') {
        if seg.is_empty() || seg.starts_with('.') || seg.contains('\\') {
            return Err(not_found());
        }
        file.push(seg);
    }
    let mut candidates = vec![file];
    if path == "/vnc_auto.html" {
        candidates.push(root.join("vnc_lite.html"));
    }
    for f in candidates {
        // A directory or an unreadable file is simply not served.
        if let Ok(bytes) = tokio::fs::read(&f).await {
            return Ok(([(header::CONTENT_TYPE, content_type(&f))], bytes).into_response());
        }
    }
    Err(not_found())
}

/// The media type of a noVNC file, by extension (browsers load noVNC's
/// ES modules only with a JavaScript type).
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "ogg" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

/// The `token` parameter of a query string.
pub fn token_from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

/// Where a console session goes.
enum Target {
    /// The guest's console: its socket, or through its agent.
    Guest(ConsoleStream),
    /// A simulated guest's screen, served in-process.
    SimulatedVnc,
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
    let issued = consoles::lookup(app, &token).await.ok_or_else(invalid)?;
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
    let no_console = || {
        (
            StatusCode::CONFLICT,
            format!(
                "Instance {} has no {} console to connect to.",
                inst.uuid, issued.console_type
            ),
        )
    };
    let unreachable = |e: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!("Cannot reach the console of instance {}: {e}", inst.uuid),
        )
    };
    // The socket the token named (a guest of this process), else the
    // driver of the guest's host (an agent's guest through its agent).
    let driver = app.compute.driver_for(inst.host.as_deref());
    let stream = match &issued.socket {
        Some(path) => Some(Box::new(
            UnixStream::connect(path)
                .await
                .map_err(|e| unreachable(e.to_string()))?,
        ) as ConsoleStream),
        None => driver
            .console_stream(&inst, kind)
            .await
            .map_err(unreachable)?,
    };
    // Only a simulated guest gets the simulated screen.
    let target = match stream {
        Some(stream) => Target::Guest(stream),
        None if kind == ConsoleKind::Vnc
            && driver.is_simulated()
            && inst.vm_state == VmState::Active =>
        {
            Target::SimulatedVnc
        }
        None if kind == ConsoleKind::Serial
            && driver.is_simulated()
            && inst.vm_state == VmState::Active =>
        {
            Target::Guest(simulated_serial())
        }
        None => return Err(no_console()),
    };
    let ws = ws.map_err(|r| (r.status(), r.body_text()))?;
    // Single use: whoever removes the token owns the session.
    match consoles::consume(app, &token).await {
        Ok(true) => {}
        Ok(false) => return Err(invalid()),
        Err(f) => return Err((StatusCode::INTERNAL_SERVER_ERROR, f.message)),
    }
    tracing::info!(instance = %inst.uuid, console = %issued.console_type, "console connected");
    let uuid = inst.uuid.clone();
    let name = inst.instance_name();
    Ok(ws
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            match target {
                Target::Guest(stream) => pipe(socket, stream).await,
                Target::SimulatedVnc => super::sim_vnc::serve(socket, &name).await,
            }
            tracing::info!(instance = %uuid, "console closed");
        }))
}

/// A simulated guest's serial port: a terminal that echoes what is typed
/// into it, as a guest's tty does, and prints nothing of its own.
fn simulated_serial() -> ConsoleStream {
    let (client, mut guest) = tokio::io::duplex(4096);
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match guest.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if guest.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Box::new(client)
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
pub async fn pipe(ws: WebSocket, stream: impl ConsoleIo) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(stream);
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
