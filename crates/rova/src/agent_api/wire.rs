//! The agent API's transport: JSON over HTTP/1.1 inside mutually
//! authenticated TLS. [`serve`] runs a router on a listener, one TLS
//! handshake per connection, and hands each request the host the peer's
//! certificate names ([`Peer`]); [`Client`] posts a JSON request (or moves
//! an image's bytes) to a peer
//! over a kept-alive connection when it has an idle one (a TLS handshake
//! per call cost the agents more CPU than the calls), and a request that
//! fails on a reused connection is sent once more on a fresh one (calls
//! carry request ids, so a peer that saw the first acts once).

use super::tls;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rova_core::Fault;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The host the caller's certificate names; `None` for a caller without
/// a certificate (only enrollment admits one).
#[derive(Debug, Clone)]
pub struct Peer(pub Option<String>);

impl Peer {
    /// The caller's host, or 401 with Nova's error body.
    pub fn host(&self) -> Result<&str, Fault> {
        self.0
            .as_deref()
            .ok_or_else(|| Fault::unauthorized("A client certificate is required."))
    }
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` with `config` until the task is dropped;
/// its connections (kept alive between requests) end with it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    router: Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        conns.spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await else {
                return;
            };
            let peer = Peer(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first().and_then(tls::peer_host)),
            );
            let svc = tower::ServiceExt::map_request(
                router,
                move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(peer.clone());
                    req
                },
            );
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// Why a call to a peer failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No answer: not reachable, the handshake refused, the connection
    /// cut, or the deadline passed. The call may be tried again.
    Unreachable(String),
    /// The peer answered with an error status and Nova-style body.
    Refused(Fault),
}

impl CallError {
    pub fn message(&self) -> String {
        match self {
            CallError::Unreachable(m) => m.clone(),
            CallError::Refused(f) => f.message.clone(),
        }
    }
}

/// A caller of one kind of peer: its TLS configuration and the name the
/// peer's certificate must carry, and its idle connections.
#[derive(Clone)]
pub struct Client {
    connector: tokio_rustls::TlsConnector,
    idle: Arc<parking_lot::Mutex<Idle>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
/// Idle connections by (address, certificate name), with when each went
/// idle.
type Idle = std::collections::HashMap<(String, String), Vec<(Sender, std::time::Instant)>>;

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 16;
/// An idle connection older than this is not reused (a peer that went
/// away without closing it would hold a call until its deadline).
const IDLE_FOR: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(config: rustls::ClientConfig) -> Self {
        Client {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            idle: Arc::default(),
        }
    }

    /// POSTs `body` as JSON to `https://addr/path`, the peer's certificate
    /// checked for `name`, and reads the JSON answer; `deadline` bounds
    /// the whole exchange.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        addr: &str,
        name: &str,
        path: &str,
        body: &B,
        deadline: Duration,
    ) -> Result<R, CallError> {
        let down = |what: &str, e: &dyn std::fmt::Display| {
            CallError::Unreachable(format!("{addr}: {what}: {e}"))
        };
        let json = Bytes::from(serde_json::to_vec(body).map_err(|e| down("encoding", &e))?);
        let call = Call {
            method: hyper::Method::POST,
            path,
            content_type: "application/json",
            body: json,
        };
        let bytes = self.within(addr, name, call, deadline).await?;
        serde_json::from_slice(&bytes).map_err(|e| down("decoding", &e))
    }

    /// GETs `https://addr/path` and reads the answer's bytes.
    pub async fn get_bytes(
        &self,
        addr: &str,
        name: &str,
        path: &str,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        let call = Call {
            method: hyper::Method::GET,
            path,
            content_type: "application/octet-stream",
            body: Bytes::new(),
        };
        self.within(addr, name, call, deadline).await
    }

    /// PUTs `body` (bytes) to `https://addr/path`.
    pub async fn put_bytes(
        &self,
        addr: &str,
        name: &str,
        path: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<(), CallError> {
        let call = Call {
            method: hyper::Method::PUT,
            path,
            content_type: "application/octet-stream",
            body,
        };
        self.within(addr, name, call, deadline).await.map(|_| ())
    }

    async fn within(
        &self,
        addr: &str,
        name: &str,
        call: Call<'_>,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        tokio::time::timeout(deadline, self.exchange(addr, name, call))
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Unreachable(format!(
                    "{addr}: no answer within {} s",
                    deadline.as_secs()
                )))
            })
    }

    /// A new connection to `addr`, the peer's certificate checked for
    /// `name`.
    async fn dial(&self, addr: &str, name: &str) -> Result<Sender, CallError> {
        let down = |what: &str, e: &dyn std::fmt::Display| {
            CallError::Unreachable(format!("{addr}: {what}: {e}"))
        };
        let server = ServerName::try_from(name.to_string()).map_err(|e| down("name", &e))?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| down("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let stream = self
            .connector
            .connect(server, tcp)
            .await
            .map_err(|e| down("TLS", &e))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| down("HTTP", &e))?;
        tokio::spawn(conn.with_upgrades());
        Ok(send)
    }

    /// GETs `https://addr/path` asking to switch protocols (`Upgrade:
    /// protocol`) on a connection of its own; the byte stream the peer
    /// then carries (a guest's console, say).
    pub async fn upgrade(
        &self,
        addr: &str,
        name: &str,
        path: &str,
        protocol: &str,
        deadline: Duration,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, CallError> {
        let down = |what: &str, e: &dyn std::fmt::Display| {
            CallError::Unreachable(format!("{addr}: {what}: {e}"))
        };
        let call = async {
            let mut send = self.dial(addr, name).await?;
            let req = hyper::Request::builder()
                .method(hyper::Method::GET)
                .uri(path)
                .header("host", name)
                .header("connection", "upgrade")
                .header("upgrade", protocol)
                .body(Full::new(Bytes::new()))
                .map_err(|e| down("request", &e))?;
            let resp = send.send_request(req).await.map_err(|e| down("send", &e))?;
            if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                let status = resp.status();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(CallError::Refused(refusal(status, &bytes)));
            }
            hyper::upgrade::on(resp)
                .await
                .map(TokioIo::new)
                .map_err(|e| down("upgrade", &e))
        };
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| Err(down("no answer", &format!("within {deadline:?}"))))
    }

    /// An idle connection to the peer that is still open, if there is one.
    async fn reuse(&self, key: &(String, String)) -> Option<Sender> {
        loop {
            let (mut send, since) = self.idle.lock().get_mut(key).and_then(Vec::pop)?;
            if since.elapsed() < IDLE_FOR && !send.is_closed() && send.ready().await.is_ok() {
                return Some(send);
            }
        }
    }

    async fn exchange(&self, addr: &str, name: &str, call: Call<'_>) -> Result<Bytes, CallError> {
        let down = |what: &str, e: &dyn std::fmt::Display| {
            CallError::Unreachable(format!("{addr}: {what}: {e}"))
        };
        let request = || {
            hyper::Request::builder()
                .method(call.method.clone())
                .uri(call.path)
                .header("host", name)
                .header("content-type", call.content_type)
                .body(Full::new(call.body.clone()))
                .map_err(|e| down("request", &e))
        };
        let key = (addr.to_string(), name.to_string());
        let sent = match self.reuse(&key).await {
            Some(mut send) => match send.send_request(request()?).await {
                Ok(resp) => Some((send, resp)),
                // The peer closed it meanwhile: once more, fresh.
                Err(_) => None,
            },
            None => None,
        };
        let (send, resp) = match sent {
            Some(s) => s,
            None => {
                let mut send = self.dial(addr, name).await?;
                let resp = send
                    .send_request(request()?)
                    .await
                    .map_err(|e| down("send", &e))?;
                (send, resp)
            }
        };
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| down("reading", &e))?
            .to_bytes();
        {
            let mut idle = self.idle.lock();
            let list = idle.entry(key).or_default();
            list.retain(|(_, since)| since.elapsed() < IDLE_FOR);
            if list.len() < IDLE_PER_PEER {
                list.push((send, std::time::Instant::now()));
            }
        }
        if !status.is_success() {
            return Err(CallError::Refused(refusal(status, &bytes)));
        }
        Ok(bytes)
    }
}

/// A peer's error answer (a Nova-style body) as a fault.
fn refusal(status: hyper::StatusCode, bytes: &[u8]) -> Fault {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let message = v
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    Fault::new(status.as_u16(), message)
}

/// One request: method, path, body and its type.
struct Call<'a> {
    method: hyper::Method,
    path: &'a str,
    content_type: &'static str,
    body: Bytes,
}
