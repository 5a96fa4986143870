//! Remote consoles: `POST /servers/{id}/remote-consoles` (2.6+) and the
//! legacy per-type actions hand out a tokenised URL; tokens expire after
//! ten minutes and are readable by admins through
//! `os-console-auth-tokens`, as Nova's console auth tokens are. The
//! websocket proxy that serves the URLs and consumes the tokens is
//! `super::console_proxy`. Issued tokens are rows of kind `console_token`
//! (keyed by the token), so a URL handed out before a restart still works
//! after it; expired rows are pruned whenever a token is issued or looked up.

use super::driver::ConsoleKind;
use super::servers;
use crate::app::App;
use crate::http::Ctx;
use chrono::{DateTime, Duration, Utc};
use rova_core::admission::{admit, Action};
use rova_core::Fault;
use std::path::PathBuf;

/// An issued console token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsoleToken {
    /// The token itself (the row's key).
    pub token: String,
    pub instance_uuid: String,
    pub console_type: String,
    pub host: String,
    pub port: u16,
    pub internal_access_path: Option<String>,
    pub expires: DateTime<Utc>,
    /// The guest's local console socket as the driver reported it when the
    /// token was issued; the proxy asks the driver again when this is None.
    pub socket: Option<PathBuf>,
}

/// The guest console a console type is served from by the proxy, if any.
pub fn console_kind(console_type: &str) -> Option<ConsoleKind> {
    match console_type {
        "novnc" => Some(ConsoleKind::Vnc),
        "serial" => Some(ConsoleKind::Serial),
        _ => None,
    }
}

/// The console types each protocol offers at the caller's version: `None`
/// for a protocol Rova does not know (RDP included: it was removed).
pub fn type_matches(ctx: &Ctx, protocol: &str, console_type: &str) -> Option<bool> {
    Some(match protocol {
        "vnc" => matches!(console_type, "novnc" | "xvpvnc"),
        "spice" => {
            console_type == "spice-html5" || (console_type == "spice-direct" && ctx.at_least(99))
        }
        "serial" => console_type == "serial",
        "mks" if ctx.at_least(8) => console_type == "webmks",
        _ => return None,
    })
}

/// The RDP refusal shared by the legacy and remote-console APIs.
pub fn rdp_removed() -> Fault {
    Fault::bad_request("Unsupported console type: RDP consoles are no longer supported")
}

/// Validates protocol/type for remote-consoles at the caller's version.
pub fn check_protocol(ctx: &Ctx, protocol: &str, console_type: &str) -> Result<(), Fault> {
    match type_matches(ctx, protocol, console_type) {
        Some(true) => Ok(()),
        Some(false) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute type. Value: {console_type}. '{console_type}' is not valid for protocol {protocol}"
        ))),
        None if protocol == "rdp" => Err(rdp_removed()),
        None => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute protocol. Value: {protocol}. '{protocol}' is not one of the supported protocols"
        ))),
    }
}

/// Issues a token and returns the console URL.
pub async fn create(
    app: &App,
    ctx: &Ctx,
    id: &str,
    protocol: &str,
    console_type: &str,
) -> Result<String, Fault> {
    ctx.require_member("os_compute_api:os-remote-consoles")?;
    let inst = servers::visible(app, ctx, id)?;
    admit(
        Action::RemoteConsole,
        &super::actions_run::subject(&inst),
        ctx.is_admin(),
    )?;
    if inst.vm_state != rova_core::states::VmState::Active {
        return Err(Fault::conflict(format!("Instance {id} is not ready")));
    }
    prune(app).await;
    let token = uuid::Uuid::new_v4().to_string();
    let base = &app.public_url;
    let url = match console_type {
        "novnc" => format!("{base}/vnc_auto.html?path=websockify%3Ftoken%3D{token}"),
        "xvpvnc" => format!("{base}/console?token={token}"),
        "spice-html5" => format!("{base}/spice_auto.html?token={token}"),
        "serial" => format!(
            "{}/serial?token={token}",
            base.replacen("http://", "ws://", 1)
        ),
        _ => format!("{base}/console?token={token}"),
    };
    let port = match protocol {
        "serial" => 10000,
        "spice" => 5900,
        _ => 5900,
    };
    let socket =
        console_kind(console_type).and_then(|kind| app.compute.driver.console_socket(&inst, kind));
    app.compute
        .console_tokens
        .put(
            &token,
            ConsoleToken {
                token: token.clone(),
                instance_uuid: inst.uuid.clone(),
                console_type: console_type.to_string(),
                host: "127.0.0.1".into(),
                port,
                internal_access_path: None,
                expires: app.clock.now() + Duration::minutes(10),
                socket,
            },
        )
        .await?;
    Ok(url)
}

/// Looks a token up; expired tokens are gone.
pub async fn lookup(app: &App, token: &str) -> Option<ConsoleToken> {
    let now = prune(app).await;
    app.compute
        .console_tokens
        .get(token)
        .filter(|t| t.expires > now)
        .map(|t| (*t).clone())
}

/// Deletes the rows of expired tokens (a failed delete is only logged:
/// an expired row is never served); returns the time it judged by.
async fn prune(app: &App) -> DateTime<Utc> {
    let now = app.clock.now();
    let tokens = &app.compute.console_tokens;
    for stale in tokens.filter(|t| t.expires <= now) {
        if let Err(e) = tokens.remove(&stale.token).await {
            tracing::warn!("pruning an expired console token: {}", e.message);
        }
    }
    now
}

/// Consumes a token (single use): true for the one caller that removed it.
pub async fn consume(app: &App, token: &str) -> Result<bool, Fault> {
    Ok(app.compute.console_tokens.remove(token).await?.is_some())
}
