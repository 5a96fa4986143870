//! Starting the all-in-one server: open the data directory, bootstrap,
//! settle what a stop cut short and resume unfinished operations, bind, and serve until Ctrl-C/SIGTERM.

use crate::app::{router, App};
use crate::config::Config;
use std::sync::Arc;

/// A running server (used by tests and benchmarks too).
pub struct Running {
    pub app: Arc<App>,
    pub addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
    /// This process's liveness lease and takeover duty
    /// ([`crate::compute::owners`]): dropping it ends them; `task` stops
    /// them cleanly (leases given up) when a signal ends serving.
    pub life: crate::compute::owners::Life,
    /// Where the agent API listens (with `--agent-listen`).
    pub agent_addr: Option<std::net::SocketAddr>,
}

/// Opens, bootstraps and starts serving on `cfg.listen` (port 0 picks one).
pub async fn start(mut cfg: Config) -> Result<Running, String> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    cfg.listen = addr;
    let app = App::open(cfg)?;
    if let Some(q) = app.compute.qemu.clone() {
        let msg = q.init().await?;
        tracing::info!("qemu driver: {msg}");
        eprintln!("rova: qemu driver: {msg}");
    }
    crate::bootstrap::run(&app).await?;
    // Before anything resumes: work on an agent's host goes to the agent.
    let agent_addr = match app.cfg.agent_listen {
        Some(at) => Some(crate::agent_api::control::start(&app, at).await?),
        None => None,
    };
    let life = crate::compute::owners::start(&app).await?;
    crate::compute::settle::at_start(&app).await?;
    crate::compute::volumes::settle_at_start(&app)
        .await
        .map_err(|f| f.message)?;
    life.start_takeover();
    crate::compute::periodic::spawn(app.clone());
    crate::compute::liveness::spawn(&app);
    let svc = tower::ServiceExt::<axum::extract::Request>::map_request(
        router(app.clone()),
        crate::app::rewrite_project_path,
    );
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(svc);
    let stopping = life.stopper();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, svc)
            .with_graceful_shutdown(shutdown_signal())
            .await;
        stopping.stop().await;
    });
    Ok(Running {
        app,
        addr,
        task,
        life,
        agent_addr,
    })
}

pub async fn serve(cfg: Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    let running = start(cfg).await?;
    let dir = running.app.cfg.data_dir.display().to_string();
    println!(
        "rova: serving on http://{} (ready in {} ms)",
        running.addr,
        started.elapsed().as_millis()
    );
    println!("rova: database {}", running.app.store.database().redacted());
    if let Some(a) = running.agent_addr {
        println!(
            "rova: agent API https://{a} (mutual TLS; agents enroll with `rova control enroll`)"
        );
    }
    println!("rova: identity http://{}/identity/v3", running.addr);
    println!("rova: compute  http://{}/compute/v2.1", running.addr);
    println!("rova: image    http://{}/image", running.addr);
    println!("rova: network  http://{}/network", running.addr);
    println!(
        "rova: volume   http://{}/volume/v3/<project id>",
        running.addr
    );
    println!("rova: credentials in {dir}/passwords.json; try:");
    println!("rova:   OS_CLIENT_CONFIG_FILE={dir}/clouds.yaml openstack --os-cloud rova-demo server list");
    running.task.await.map_err(|e| e.to_string())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
