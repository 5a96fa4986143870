//! The simulated mode's admin API under `/rova/v1/sim` (admin token
//! required): read and advance the virtual clock (running the periodic
//! tasks at once), inject driver faults ("the next N `spawn`s on host H
//! fail with message M"), make an operation slow, and change the
//! simulated step latency. Hosts are marked dead with Nova's own
//! `os-services` force-down API. The clock offset, faults (with their
//! remaining counts) and slow steps are stored, so they survive a restart
//! until fired or cleared; the step latency is configuration.
//!
//! Routes:
//! - `GET  /rova/v1/sim/clock` → `{"now", "offset_seconds"}`
//! - `POST /rova/v1/sim/clock` `{"advance_seconds": N}` → clock + tasks run
//!   (N at most ten years; the clock stays before year 9999)
//! - `GET  /rova/v1/sim/faults` → pending faults and slow steps
//! - `POST /rova/v1/sim/faults` `{"operation", "step"?, "count"?, "message"?, "host"?}`
//!   (`step`: one of the operation's named steps, `driver::STEPS`)
//! - `POST /rova/v1/sim/slow` `{"operation", "delay_ms"}` (at most an hour)
//! - `POST /rova/v1/sim/latency` `{"step_ms"}` (at most an hour)
//! - `DELETE /rova/v1/sim/faults` → clears faults and slow steps
//! - `GET  /rova/v1/sim/agents` → each host's agent: alive (reporting),
//!   up (Nova's service_is_up), last heartbeat
//! - `POST /rova/v1/sim/agents/{host}` `{"alive": false}` stops the host's
//!   heartbeats, as if its nova-compute died (down after
//!   `service_down_time`, `host_status` UNKNOWN); `{"alive": true}` starts
//!   them again, and the host does what a restarted nova-compute does with
//!   servers evacuated away from it

use crate::app::App;
use crate::compute::driver::{FakeDriver, InjectedFault};
use crate::http::{empty, parse_json, ApiResult};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/rova/v1/sim/clock", get(clock_show).post(clock_advance))
        .route(
            "/rova/v1/sim/faults",
            get(faults_list).post(fault_add).delete(faults_clear),
        )
        .route("/rova/v1/sim/slow", post(slow_set))
        .route("/rova/v1/sim/latency", post(latency_set))
        .route("/rova/v1/sim/agents", get(agents_list))
        .route("/rova/v1/sim/agents/{host}", post(agent_set))
}

fn agent_body(app: &App, host: &str) -> Value {
    let fleet = &app.compute.fleet;
    let live = &fleet.liveness;
    json!({
        "host": host,
        "alive": !live.halted("nova-compute", host),
        "up": fleet.compute_up(host),
        "last_seen": live.last_seen("nova-compute", host).map(|t| t.to_rfc3339()),
    })
}

async fn agents_list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let agents: Vec<Value> = app
        .compute
        .fleet
        .hosts()
        .iter()
        .map(|h| agent_body(&app, &h.name))
        .collect();
    Ok(axum::Json(json!({"agents": agents})).into_response())
}

async fn agent_set(
    State(app): State<Arc<App>>,
    axum::extract::Path(host): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let v = parse_json(&headers, &body)?;
    let alive = v
        .get("alive")
        .and_then(Value::as_bool)
        .ok_or_else(|| Fault::bad_request("'alive' must be a boolean"))?;
    if app.compute.fleet.host(&host).is_none() {
        return Err(Fault::not_found(format!("Compute host {host} could not be found.")).into());
    }
    let live = &app.compute.fleet.liveness;
    let was_halted = live.halted("nova-compute", &host);
    live.set_halted("nova-compute", &host, !alive).await?;
    if alive && was_halted {
        crate::compute::migrate::source_restarted(&app, &host).await;
    }
    Ok(axum::Json(json!({"agent": agent_body(&app, &host)})).into_response())
}

fn admin(app: &App, headers: &HeaderMap) -> Result<(), Fault> {
    let token = headers
        .get("x-auth-token")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| Fault::unauthorized("The request you have made requires authentication."))?;
    let info = app.identity.validate(token, chrono::Utc::now())?;
    if !info.roles.iter().any(|r| r == "admin") {
        return Err(Fault::policy("rova:sim"));
    }
    Ok(())
}

fn fake(app: &App) -> Result<&Arc<FakeDriver>, Fault> {
    app.compute
        .fake
        .as_ref()
        .ok_or_else(|| Fault::conflict("The simulated driver is not in use."))
}

/// The longest simulated delay (a slow step or the step latency): an hour.
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// A delay field in milliseconds, 0 to [`MAX_DELAY_MS`].
fn delay_ms(v: &Value, field: &str) -> Result<u64, Fault> {
    v.get(field)
        .and_then(Value::as_u64)
        .filter(|ms| *ms <= MAX_DELAY_MS)
        .ok_or_else(|| {
            Fault::bad_request(format!(
                "'{field}' must be an integer from 0 to {MAX_DELAY_MS} (one hour)"
            ))
        })
}

fn clock_body(app: &App) -> Value {
    json!({"now": app.clock.now().to_rfc3339(), "offset_seconds": app.clock.offset().num_seconds()})
}

async fn clock_show(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Response> {
    admin(&app, &headers)?;
    Ok(axum::Json(clock_body(&app)).into_response())
}

async fn clock_advance(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&app, &headers)?;
    fake(&app)?;
    let v = parse_json(&headers, &body)?;
    let max = crate::clock::MAX_ADVANCE_SECONDS;
    let secs = v
        .get("advance_seconds")
        .and_then(Value::as_i64)
        .filter(|s| (0..=max).contains(s))
        .ok_or_else(|| {
            Fault::bad_request(format!(
                "'advance_seconds' must be an integer from 0 to {max} (ten years)"
            ))
        })?;
    app.clock.advance_seconds_stored(secs).await?;
    let done = crate::compute::periodic::run_once(&app).await;
    let mut b = clock_body(&app);
    b["tasks_run"] = json!(done.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>());
    Ok(axum::Json(b).into_response())
}

async fn faults_list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let f = fake(&app)?;
    let slow: Vec<Value> = f
        .slow_steps()
        .into_iter()
        .map(|(op, ms)| json!({"operation": op, "delay_ms": ms}))
        .collect();
    let faults: Vec<Value> = f
        .faults()
        .into_iter()
        .map(|x| {
            let mut v =
                json!({"operation": x.op, "count": x.count, "message": x.message, "host": x.host});
            if let Some(s) = x.step {
                v["step"] = json!(s);
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({"faults": faults, "slow": slow})).into_response())
}

async fn fault_add(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let f = fake(&app)?;
    let v = parse_json(&headers, &body)?;
    let op = v
        .get("operation")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Fault::bad_request("'operation' is required (e.g. spawn, destroy, pause, reboot)")
        })?;
    let count = match v.get("count") {
        None => 1,
        Some(c) => c
            .as_u64()
            .filter(|c| *c >= 1 && *c <= u32::MAX as u64)
            .ok_or_else(|| Fault::bad_request("'count' must be a positive integer"))?
            as u32,
    };
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Injected fault")
        .to_string();
    let host = v.get("host").and_then(Value::as_str).map(str::to_string);
    let step = match v.get("step") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let s = s.as_str().unwrap_or_default();
            let steps = crate::compute::driver::steps_of(op).ok_or_else(|| {
                Fault::bad_request(format!("Operation '{op}' has no named steps"))
            })?;
            if !steps.contains(&s) {
                return Err(Fault::bad_request(format!(
                    "'step' of {op} must be one of: {}",
                    steps.join(", ")
                ))
                .into());
            }
            Some(s.to_string())
        }
    };
    f.inject(InjectedFault {
        op: op.to_string(),
        count,
        message,
        host,
        step,
    })
    .await?;
    Ok(empty(StatusCode::CREATED))
}

async fn faults_clear(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Response> {
    admin(&app, &headers)?;
    fake(&app)?.clear().await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn slow_set(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let f = fake(&app)?;
    let v = parse_json(&headers, &body)?;
    let op = v
        .get("operation")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Fault::bad_request("'operation' is required"))?;
    let ms = delay_ms(&v, "delay_ms")?;
    f.set_slow(op, std::time::Duration::from_millis(ms)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn latency_set(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&app, &headers)?;
    let f = fake(&app)?;
    let v = parse_json(&headers, &body)?;
    let ms = delay_ms(&v, "step_ms")?;
    f.set_latency(std::time::Duration::from_millis(ms));
    Ok(empty(StatusCode::NO_CONTENT))
}
