//! The guests' metadata service, reached at `http://169.254.169.254`.
//! Two ways in: with QEMU user networking, one HTTP/1.x listener on a unix
//! socket per instance, reached through slirp's `guestfwd` (`cmd:socat -
//! UNIX-CONNECT:<sock>`), the instance known from the socket; on the bridge
//! data path, one TCP listener per network bound to that network's bridge,
//! the instance known from the network and the connection's source address
//! (its port's fixed IP), as Neutron's metadata proxy knows it. Never from
//! anything the guest sends. This module owns the listener's lifecycle (bind, stop,
//! socket file removal), the HTTP mapping (methods, status codes, body
//! limits). The instance record, the facts it lacks and the password store
//! are reached through [`GuestEnv`]; what is served comes from
//! `rova_core::metadata`.

use crate::virt::env::{GuestEnv, PasswordPost, Unavailable};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rova_core::metadata::{is_password_path, lookup};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest request body the service reads; longer ones are refused (413)
/// without being read.
pub const MAX_BODY: usize = 1024 * 1024;

/// A running listener. Dropping it (or [`MetadataHandle::stop`]) stops
/// accepting connections and removes its socket file, if it has one.
pub struct MetadataHandle {
    path: PathBuf,
    /// Device and inode of the socket file we bound, so that a newer
    /// listener bound on the same path is never unlinked by this one.
    ident: Option<(u64, u64)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MetadataHandle {
    /// Stops accepting and removes the socket file (same as dropping).
    pub fn stop(self) {
        drop(self);
    }

    /// The unix socket this listener is bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MetadataHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server task may already be gone; nothing to tell then.
            let _ = tx.send(());
        }
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .is_some_and(|m| Some((m.dev(), m.ino())) == self.ident);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), "removing metadata socket: {e}");
            }
        }
    }
}

impl std::fmt::Debug for MetadataHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataHandle")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What every request of one listener shares.
struct Guest {
    env: Arc<dyn GuestEnv>,
    uuid: String,
}

/// What every request of one network's listener shares.
struct OnNetwork {
    env: Arc<dyn GuestEnv>,
    network_id: String,
}

/// Serves the metadata of the instances on network `network_id` on
/// `listener` (a TCP socket bound to the network's bridge): each
/// connection's instance is the one whose port on that network holds the
/// source address. Must be called inside a tokio runtime.
pub fn serve_network(
    env: Arc<dyn GuestEnv>,
    network_id: &str,
    listener: std::net::TcpListener,
) -> Result<MetadataHandle, String> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| "the metadata service needs a running tokio runtime".to_string())?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("adopting the metadata listener: {e}"))?
    };
    let state = Arc::new(OnNetwork {
        env,
        network_id: network_id.to_string(),
    });
    let router = Router::new().fallback(handle_on_network).with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shown = network_id.to_string();
    rt.spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, service).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::warn!(network = %shown, "metadata service stopped: {e}");
        }
    });
    Ok(MetadataHandle {
        path: PathBuf::new(),
        ident: None,
        shutdown: Some(tx),
    })
}

/// A request on a network's listener: the instance from the source
/// address, then as on a guest's own socket.
async fn handle_on_network(
    State(net): State<Arc<OnNetwork>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = peer.ip().to_canonical().to_string();
    let uuid = match net.env.instance_at(&net.network_id, &ip).await {
        Ok(Some(uuid)) => uuid,
        Ok(None) => return not_found(),
        Err(Unavailable) => return unavailable(),
    };
    let guest = Arc::new(Guest {
        env: net.env.clone(),
        uuid,
    });
    handle(State(guest), method, uri, headers, body).await
}

/// Binds `socket` (creating its parent directory and removing a stale
/// socket file first) and serves the metadata of instance `uuid` over
/// HTTP/1.x until the handle is stopped or dropped. Must be called inside
/// a tokio runtime.
pub fn serve(env: Arc<dyn GuestEnv>, uuid: &str, socket: &Path) -> Result<MetadataHandle, String> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| "the metadata service needs a running tokio runtime".to_string())?;
    if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(socket)
            .map_err(|e| format!("removing stale socket {}: {e}", socket.display()))?,
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a unix socket; not replacing it",
                socket.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("inspecting {}: {e}", socket.display())),
    }
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(socket)
            .map_err(|e| format!("binding metadata socket {}: {e}", socket.display()))?
    };
    let ident = std::fs::symlink_metadata(socket)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let guest = Arc::new(Guest {
        env,
        uuid: uuid.to_string(),
    });
    let router = Router::new().fallback(handle).with_state(guest);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let path = socket.to_path_buf();
    let shown = path.display().to_string();
    rt.spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            // A dropped sender means the handle is gone: stop too.
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::warn!(socket = %shown, "metadata service stopped: {e}");
        }
    });
    Ok(MetadataHandle {
        path,
        ident,
        shutdown: Some(tx),
    })
}

/// Every request: route by method and path for the socket's instance.
async fn handle(
    State(guest): State<Arc<Guest>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = percent_decode(uri.path());
    let password = is_password_path(&path);
    let post = password && method == Method::POST;
    if method != Method::GET && method != Method::HEAD && !post {
        let allow = if password {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    let inst = match guest.env.instance(&guest.uuid).await {
        Ok(Some(inst)) => inst,
        Ok(None) => return not_found(),
        Err(Unavailable) => return unavailable(),
    };
    if post {
        return post_password(&*guest.env, &guest.uuid, &headers, body).await;
    }
    let Ok(facts) = guest.env.guest_facts(&inst).await else {
        return unavailable();
    };
    match lookup(&inst, &facts, &path) {
        Ok(served) => {
            let mut r = (StatusCode::OK, served.body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(served.content_type),
            );
            close(r)
        }
        Err(_) => not_found(),
    }
}

/// POST to the password path: the body (at most [`MAX_BODY`]) goes to
/// the environment, which checks and stores it atomically.
async fn post_password(
    env: &dyn GuestEnv,
    uuid: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return too_large();
    };
    match env.post_password(uuid, bytes.to_vec()).await {
        PasswordPost::Stored => close(StatusCode::OK.into_response()),
        PasswordPost::Conflict => text(StatusCode::CONFLICT, "409 Conflict\n"),
        PasswordPost::BadRequest(msg) => text(
            StatusCode::BAD_REQUEST,
            &format!("400 Bad Request\n\n{msg}\n"),
        ),
        PasswordPost::NotFound => not_found(),
        PasswordPost::Unavailable => unavailable(),
        PasswordPost::Failed(why) => {
            tracing::warn!(instance = uuid, "storing guest password: {why}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
        }
    }
}

fn unavailable() -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n")
}

fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "404 Not Found\n\nThe resource could not be found.\n",
    )
}

fn too_large() -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "413 Request Entity Too Large\n",
    )
}

/// A plain-text response that closes the connection.
fn text(status: StatusCode, body: &str) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    close(r)
}

/// Guests open one connection per request (busybox wget); closing after
/// each response keeps no idle connections behind a stopped listener.
fn close(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `%XX` escapes decoded; a path that does not decode to UTF-8 is kept as
/// sent (it then simply matches nothing).
fn percent_decode(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, serve};
    use crate::virt::stub_env::{instance, scratch_dir, StubEnv};
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request over the socket; (status, body).
    async fn request(sock: &Path, req: &str) -> (u16, String) {
        let mut s = tokio::net::UnixStream::connect(sock)
            .await
            .expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        (status, body.unwrap_or_default())
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n")
    }

    /// The service answers from its environment alone: the instance it
    /// is bound to, a password post handed over, 404 for an instance the
    /// environment lacks, 503 once the environment is gone.
    #[tokio::test]
    async fn serves_from_its_environment_alone() {
        let uuid = "5a1c0f3e-0000-4000-8000-00000000abcd";
        let env = StubEnv::with(vec![instance(uuid, "stubby", "h1")]);
        let dir = scratch_dir("md-stub");
        let sock = dir.join("md.sock");
        let h = serve(env.clone(), uuid, &sock).expect("serve");
        let (status, body) = request(&sock, &get("/openstack/latest/meta_data.json")).await;
        assert_eq!(status, 200, "{body}");
        let md: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(md["uuid"], uuid);
        assert_eq!(md["name"], "stubby");

        let post = "POST /openstack/latest/password HTTP/1.0\r\nContent-Length: 6\r\n\r\nsecret";
        let (status, _) = request(&sock, post).await;
        assert_eq!(status, 200);
        assert_eq!(
            env.passwords.lock().clone(),
            vec![(uuid.to_string(), b"secret".to_vec())]
        );

        let ghost_sock = dir.join("ghost.sock");
        let ghost = serve(env.clone(), "not-there", &ghost_sock).expect("serve ghost");
        let (status, _) = request(&ghost_sock, &get("/openstack/latest/meta_data.json")).await;
        assert_eq!(status, 404);

        env.gone.store(true, Ordering::SeqCst);
        let (status, _) = request(&sock, &get("/openstack/latest/meta_data.json")).await;
        assert_eq!(status, 503);
        h.stop();
        ghost.stop();
        assert!(!sock.exists(), "stopping removes the socket");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/latest/meta-data"), "/latest/meta-data");
        assert_eq!(percent_decode("/open%73tack/latest"), "/openstack/latest");
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/a%zz"), "/a%zz");
        assert_eq!(percent_decode("/a%ff"), "/a%ff");
        assert_eq!(percent_decode("%41"), "A");
    }
}
