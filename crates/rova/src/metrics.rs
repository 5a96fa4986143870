//! Prometheus metrics (`GET /metrics`, the text exposition format): HTTP
//! requests by method, route template and status with a latency histogram
//! by route, operations ended by kind and outcome, each service's
//! heartbeat age and state, guests per host, and the database's reading
//! connections and queued writes. The HTTP figures are gathered by a
//! middleware ([`track`]) that learns the matched route template from a
//! route layer ([`mark_route`]), so ids never become label values; the
//! others are read from their owners when the endpoint is scraped.
//! Counts are this process's since it started (Prometheus sums replicas).

use crate::app::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One route's latency histogram.
#[derive(Default, Clone)]
struct Histogram {
    /// Observations at or under each bucket's bound (not cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_secs += secs;
    }
}

/// Counters keyed by label values.
#[derive(Default)]
pub struct Counters(Mutex<BTreeMap<Vec<String>, u64>>);

impl Counters {
    pub fn add(&self, labels: &[&str]) {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        *self.0.lock().entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        self.0.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The HTTP figures.
#[derive(Default)]
pub struct Http {
    requests: Counters,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

/// Where the route layer writes the matched route template of a request.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Route layer: records the matched route template for [`track`].
pub async fn mark_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_string());
    }
    next.run(req).await
}

/// Outermost middleware: counts every request and times it by route.
pub async fn track(State(http): State<Arc<Http>>, mut req: Request, next: Next) -> Response {
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = method_label(req.method()).to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let route = slot
        .0
        .get()
        .cloned()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = resp.status().as_u16().to_string();
    http.requests.add(&[&method, &route, &status]);
    http.latency
        .lock()
        .entry((method, route))
        .or_default()
        .observe(secs);
    resp
}

/// The method as a label: the standard ones by name, any other as
/// `other` (a client's invented methods must not grow the series).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A label value as the exposition format quotes it.
fn quoted(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn labels(names: &[&str], values: &[String]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}={}", quoted(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition for `app`.
pub fn render(app: &App) -> String {
    let mut out = String::new();
    let http = &app.http_metrics;
    head(
        &mut out,
        "rova_http_requests_total",
        "counter",
        "HTTP requests answered, by method, route template and status.",
    );
    for (k, v) in http.requests.snapshot() {
        let l = labels(&["method", "route", "status"], &k);
        let _ = writeln!(out, "rova_http_requests_total{l} {v}");
    }
    head(
        &mut out,
        "rova_http_request_duration_seconds",
        "histogram",
        "Time to answer an HTTP request, by method and route template.",
    );
    let latency: Vec<((String, String), Histogram)> = http
        .latency
        .lock()
        .iter()
        .map(|(k, h)| (k.clone(), h.clone()))
        .collect();
    for ((method, route), h) in latency {
        let base = format!("method={},route={}", quoted(&method), quoted(&route));
        let mut cum = 0;
        for (b, n) in BUCKETS.iter().zip(h.buckets) {
            cum += n;
            let _ = writeln!(
                out,
                "rova_http_request_duration_seconds_bucket{{{base},le=\"{b}\"}} {cum}"
            );
        }
        let _ = writeln!(
            out,
            "rova_http_request_duration_seconds_bucket{{{base},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "rova_http_request_duration_seconds_sum{{{base}}} {}",
            h.sum_secs
        );
        let _ = writeln!(
            out,
            "rova_http_request_duration_seconds_count{{{base}}} {}",
            h.count
        );
    }
    head(
        &mut out,
        "rova_operations_total",
        "counter",
        "Server operations ended, by kind (the instance action) and outcome.",
    );
    for (k, v) in app.compute.ops_ended.snapshot() {
        let l = labels(&["kind", "outcome"], &k);
        let _ = writeln!(out, "rova_operations_total{l} {v}");
    }
    services(app, &mut out);
    database(app, &mut out);
    out
}

/// Heartbeat age and state per service, guests per host.
fn services(app: &App, out: &mut String) {
    let fleet = &app.compute.fleet;
    let now = chrono::Utc::now();
    let recs: Vec<crate::compute::fleet::ServiceRecord> = crate::compute::api::all_services(app)
        .into_iter()
        .map(|s| s.rec)
        .collect();
    head(
        out,
        "rova_service_heartbeat_age_seconds",
        "gauge",
        "Seconds since each service's last heartbeat.",
    );
    for r in &recs {
        if let Some(t) = fleet.liveness.last_seen(&r.binary, &r.host) {
            let age = (now - t).num_milliseconds() as f64 / 1000.0;
            let l = labels(&["binary", "host"], &[r.binary.clone(), r.host.clone()]);
            let _ = writeln!(out, "rova_service_heartbeat_age_seconds{l} {age}");
        }
    }
    head(
        out,
        "rova_service_up",
        "gauge",
        "1 while a service is up (heartbeat current, not forced down).",
    );
    for r in &recs {
        let l = labels(&["binary", "host"], &[r.binary.clone(), r.host.clone()]);
        let _ = writeln!(out, "rova_service_up{l} {}", u8::from(fleet.service_up(r)));
    }
    head(
        out,
        "rova_guests",
        "gauge",
        "Servers placed on each host (its claims).",
    );
    for h in fleet.hosts() {
        let l = labels(&["host"], std::slice::from_ref(&h.name));
        let _ = writeln!(out, "rova_guests{l} {}", fleet.instances_on(&h.name).len());
    }
}

/// The database connections' use.
fn database(app: &App, out: &mut String) {
    let use_ = app.store.usage();
    head(
        out,
        "rova_db_reader_connections",
        "gauge",
        "Reading connections, by state.",
    );
    let _ = writeln!(
        out,
        "rova_db_reader_connections{{state=\"busy\"}} {}",
        use_.readers_busy
    );
    let _ = writeln!(
        out,
        "rova_db_reader_connections{{state=\"idle\"}} {}",
        use_.readers.saturating_sub(use_.readers_busy)
    );
    head(
        out,
        "rova_db_writes_queued",
        "gauge",
        "Writes queued for the writer's connection and not yet committed.",
    );
    let _ = writeln!(out, "rova_db_writes_queued {}", use_.writes_queued);
}

/// `GET /metrics`.
pub async fn endpoint(State(app): State<Arc<App>>) -> Response {
    let mut resp = (StatusCode::OK, render(&app)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let m = |s: &str| axum::http::Method::from_bytes(s.as_bytes()).ok();
        assert_eq!(m("GET").map(|m| method_label(&m)), Some("GET"));
        assert_eq!(m("FROB").map(|m| method_label(&m)), Some("other"));
        assert_eq!(m("FROB2").map(|m| method_label(&m)), Some("other"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn histogram_puts_each_observation_in_one_bucket() {
        let mut h = Histogram::default();
        for s in [0.0005, 0.003, 0.003, 20.0] {
            h.observe(s);
        }
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[2], 2);
        assert_eq!(h.buckets.iter().sum::<u64>(), 3, "20 s is only in +Inf");
        assert_eq!(h.count, 4);
    }
}
