//! The agent API's trust: one CA per cloud shared by every process on the
//! database, one-time enrollment tokens bound to a host that expire after
//! an hour, certificates that name the token's host whatever the request
//! asked, and mutual TLS that admits an enrolled agent and refuses a
//! client without a certificate, with another CA's certificate, or one
//! that does not trust the cloud's CA. `rova control enroll` prints a
//! token.

use crate::common;
use rova::agent_api::{pki, tls};
use rova::store::{Database, Store};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn store(dir: &Path) -> Arc<Store> {
    std::fs::create_dir_all(dir).expect("dir");
    let db = common::test_database(dir).unwrap_or_else(|| Database::default_in(dir));
    Store::connect(&db).expect("store")
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[tokio::test]
async fn tokens_are_one_time_bound_to_their_host_and_expire() {
    let dir = crate::storage::temp_dir("pki");
    let s = store(&dir);
    let p = pki::Pki::load(&s).expect("pki");
    let token = p.new_token("compute-1", now()).await.expect("token");
    let ca = p.ensure_ca(now()).await.expect("ca");
    assert_eq!(
        pki::pinned_ca(&token),
        Some(ca.fingerprint().expect("fp").as_str())
    );

    // The request asks for another name: the certificate names the host.
    let (csr, _key) = pki::agent_request("someone-else").expect("csr");
    let issued = p.enroll(&token, &csr, now()).await.expect("enrolled");
    assert_eq!(issued.host, "compute-1");
    assert_eq!(issued.ca_pem, ca.cert_pem);
    let certs = tls::certs(&issued.cert_pem).expect("cert");
    assert_eq!(tls::peer_host(&certs[0]).as_deref(), Some("compute-1"));

    // Spent: a second redemption is refused.
    let (csr2, _) = pki::agent_request("compute-1").expect("csr");
    let again = p.enroll(&token, &csr2, now()).await;
    assert_eq!(again.map_err(|f| f.code), Err(401));
    // Expired after an hour.
    let late = p.new_token("compute-2", now()).await.expect("token");
    let expired = p
        .enroll(&late, &csr2, now() + chrono::Duration::seconds(3601))
        .await;
    assert_eq!(expired.map_err(|f| f.code), Err(401));
    // Still good within the hour.
    let ok = p
        .enroll(&late, &csr2, now() + chrono::Duration::seconds(3500))
        .await;
    assert_eq!(ok.map(|i| i.host).ok().as_deref(), Some("compute-2"));
    // Unknown token, bad request, bad host name.
    let unknown = p.enroll("rova1.nope.nope", &csr2, now()).await;
    assert_eq!(unknown.map_err(|f| f.code), Err(401));
    let t3 = p.new_token("compute-3", now()).await.expect("token");
    let bad = p.enroll(&t3, "not a request", now()).await;
    assert_eq!(bad.map_err(|f| f.code), Err(400));
    let named = p.new_token("bad name", now()).await;
    assert_eq!(named.map_err(|f| f.code), Err(400));

    // Another process on the database signs with the same CA.
    let other = pki::Pki::load(&store(&dir)).expect("pki");
    let ca2 = other.ensure_ca(now()).await.expect("ca");
    assert_eq!(ca2.fingerprint().ok(), ca.fingerprint().ok());
}

/// A TLS server on loopback that greets each authenticated client by the
/// host its certificate names.
async fn greeter(config: rustls::ServerConfig) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let host = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first().and_then(tls::peer_host))
                    .unwrap_or_default();
                let _ = tls.write_all(format!("hello {host}\n").as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// What a client with `config` hears from the greeter (`None`: the
/// connection failed).
async fn hear(addr: std::net::SocketAddr, config: rustls::ClientConfig) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await.ok()?;
    Some(out)
}

async fn enrolled(p: &pki::Pki, host: &str) -> rustls::ClientConfig {
    let token = p.new_token(host, now()).await.expect("token");
    let (csr, key) = pki::agent_request(host).expect("csr");
    let issued = p.enroll(&token, &csr, now()).await.expect("enrolled");
    tls::client_config(&issued.ca_pem, &issued.cert_pem, &key).expect("client config")
}

#[tokio::test]
async fn mutual_tls_admits_enrolled_agents_only() {
    let p = pki::Pki::load(&store(&crate::storage::temp_dir("mtls"))).expect("pki");
    let ca = p.ensure_ca(now()).await.expect("ca");
    let (cert, key) = p
        .server_cert(&["127.0.0.1".to_string()], now())
        .await
        .expect("server cert");
    let addr = greeter(tls::server_config(&ca.cert_pem, &cert, &key).expect("server")).await;

    let agent = enrolled(&p, "compute-1").await;
    assert_eq!(
        hear(addr, agent).await.as_deref(),
        Some("hello compute-1\n")
    );

    // No client certificate.
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::certs(&ca.cert_pem).expect("ca") {
        roots.add(c).expect("root");
    }
    let anonymous = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert_eq!(hear(addr, anonymous).await, None);

    // Another cloud's agent: its certificate is from another CA, and it
    // does not trust this cloud's.
    let stranger = pki::Pki::load(&store(&crate::storage::temp_dir("mtls-other"))).expect("pki");
    let theirs = enrolled(&stranger, "compute-1").await;
    assert_eq!(hear(addr, theirs).await, None);
    // This cloud's certificate, but trusting the other CA: the server is
    // not believed.
    let other_ca = stranger.ensure_ca(now()).await.expect("ca");
    let token = p.new_token("compute-9", now()).await.expect("token");
    let (csr, key) = pki::agent_request("compute-9").expect("csr");
    let issued = p.enroll(&token, &csr, now()).await.expect("enrolled");
    let confused = tls::client_config(&other_ca.cert_pem, &issued.cert_pem, &key).expect("config");
    assert_eq!(hear(addr, confused).await, None);
}

#[test]
fn control_enroll_prints_a_token() {
    let dir = crate::storage::temp_dir("enroll-cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("rova.sqlite").display());
    let run = |host: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rova"))
            .args(["control", "enroll", "--database", &url, "--host", host])
            .env_remove("ROVA_DATABASE_URL")
            .output()
            .expect("rova runs")
    };
    let out = run("compute-1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(pki::pinned_ca(&token).is_some(), "{token}");
    let out = run("no spaces allowed");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid host name"), "{err}");
}
