//! The application: every service wired together, shared by all handlers as
//! `Arc<App>`, plus the HTTP router that mounts each API.

use crate::clock::Clock;
use crate::compute::Compute;
use crate::config::Config;
use crate::identity::Identity;
use crate::image::Images;
use crate::network::Networks;
use crate::store::Store;
use crate::volume::Volumes;
use axum::Router;
use std::sync::Arc;

pub struct App {
    pub cfg: Config,
    pub clock: Clock,
    /// `http://host:port` the catalog advertises.
    pub public_url: String,
    pub store: Arc<Store>,
    pub identity: Identity,
    pub images: Images,
    pub networks: Networks,
    pub compute: Compute,
    pub volumes: Arc<Volumes>,
    /// The HTTP figures `/metrics` shows.
    pub http_metrics: Arc<crate::metrics::Http>,
}

impl App {
    /// Opens the data directory and loads every table.
    pub fn open(cfg: Config) -> Result<Arc<App>, String> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| format!("creating data dir {}: {e}", cfg.data_dir.display()))?;
        crate::store::make_private(&cfg.data_dir)?;
        let database = cfg
            .database
            .clone()
            .unwrap_or_else(|| crate::store::Database::default_in(&cfg.data_dir));
        let store = Store::connect(&database)?;
        let public_url = format!("http://{}", cfg.listen);
        let app = App {
            identity: Identity::load(&store, &cfg.data_dir, cfg.token_ttl_secs)?,
            images: Images::load(&store, &cfg.data_dir)?,
            networks: Networks::load(&store)?,
            compute: Compute::load(&store, &cfg)?,
            volumes: Arc::new(Volumes::load(&store, &cfg.data_dir)?),
            clock: Clock::load(&store)?,
            http_metrics: Arc::default(),
            public_url,
            store,
            cfg,
        };
        let app = Arc::new(app);
        if let Some(q) = &app.compute.qemu {
            q.set_env(crate::compute::guest_env::ComputeGuestEnv::of(&app));
        }
        Ok(app)
    }
}

/// Every API mounted under its prefix.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(crate::identity::api::router())
        .merge(crate::image::api::router())
        .merge(crate::network::api::router())
        .merge(crate::volume::api::router())
        .merge(crate::sim_api::router())
        .merge(crate::compute::api::router(app.clone()))
        .route("/metrics", axum::routing::get(crate::metrics::endpoint))
        // Every JSON API (and the fallback) answers oversized or malformed
        // requests and extractor rejections with its own error body; the
        // console proxy, merged after, keeps websockify's plain answers.
        .fallback(crate::http::edge::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::http::edge::MAX_BODY,
        ))
        .layer(axum::middleware::from_fn(crate::http::edge::guard))
        .merge(crate::compute::console_proxy::router())
        .merge(crate::dashboard::router(app.clone()))
        .route_layer(axum::middleware::from_fn(crate::metrics::mark_route))
        .layer(axum::middleware::from_fn(crate::http::request_id))
        .layer(axum::middleware::from_fn_with_state(
            app.http_metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(app)
}

/// A compute URL may carry the caller's project id after the version
/// (`/compute/v2.1/{project_id}/servers`). This strips that segment before
/// routing and records it, so the compute API can check it matches the
/// token and echo it in links.
pub fn rewrite_project_path(mut req: axum::extract::Request) -> axum::extract::Request {
    const PREFIX: &str = "/compute/v2.1/";
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return req;
    };
    let (seg, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let looks_like_project = !seg.is_empty()
        && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && seg.len() >= 8;
    if !looks_like_project {
        return req;
    }
    let new_path = format!("{PREFIX}{tail}");
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let project = PathProject(seg.to_string());
    if let Ok(uri) = pq.parse::<axum::http::Uri>() {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(project);
    }
    req
}

/// The project id that appeared in the request path, if any.
#[derive(Debug, Clone)]
pub struct PathProject(pub String);
