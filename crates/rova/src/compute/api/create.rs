//! Turning validated request bodies (rova-core's schema layer) into the
//! compute service's commands: create → `BuildRequest`, PUT → `ServerUpdate`.

use crate::app::App;
use crate::compute::build::{BuildRequest, NetReq, NetworksReq};
use crate::compute::servers::ServerUpdate;
use crate::http::Ctx;
use rova_core::validate::{parse_create, parse_update, CreateLimits, NetworksRequest};
use rova_core::Fault;
use serde_json::Value;

/// The request limits from the configured quotas (-1 = unlimited).
pub fn limits(app: &App, project_id: &str) -> CreateLimits {
    let q = &app.compute.effective_quota(project_id);
    let clamp = |n: i64| if n < 0 { usize::MAX } else { n as usize };
    CreateLimits {
        metadata_items: clamp(q.metadata_items),
        injected_files: clamp(q.injected_files),
        injected_file_content_bytes: clamp(q.injected_file_content_bytes),
        injected_file_path_length: clamp(q.injected_file_path_length),
    }
}

pub fn build_request(v: &Value, ctx: &Ctx, app: &App) -> Result<BuildRequest, Fault> {
    let c = parse_create(v, ctx.version, &limits(app, &ctx.project_id))?;
    if (c.requested_host.is_some() || c.requested_hypervisor_hostname.is_some()) && !ctx.is_admin()
    {
        return Err(Fault::policy(
            "compute:servers:create:requested_destination",
        ));
    }
    let networks = match c.networks {
        NetworksRequest::Unspecified => NetworksReq::Unspecified,
        NetworksRequest::Auto => NetworksReq::Auto,
        NetworksRequest::None => NetworksReq::None,
        NetworksRequest::List(l) => NetworksReq::List(
            l.into_iter()
                .map(|n| NetReq {
                    uuid: n.uuid,
                    port: n.port,
                    fixed_ip: n.fixed_ip,
                    tag: n.tag,
                })
                .collect(),
        ),
    };
    Ok(BuildRequest {
        name: c.name,
        image_ref: c.image_ref.unwrap_or_default(),
        flavor_ref: c.flavor_ref,
        admin_pass: c.admin_pass,
        metadata: c.metadata,
        personality: c.personality,
        user_data: c.user_data,
        access_ip_v4: c.access_ip_v4,
        access_ip_v6: c.access_ip_v6,
        networks,
        key_name: c.key_name,
        availability_zone: c.availability_zone,
        forced_host: c.forced_host.or(c.requested_host),
        config_drive: c.config_drive,
        description: c.description,
        tags: c.tags,
        hostname: c.hostname,
        min_count: c.min_count,
        max_count: c.max_count,
        return_reservation_id: c.return_reservation_id,
        bdms: c.block_device_mapping,
        scheduler_hints: c.scheduler_hints,
        security_groups: c.security_groups.unwrap_or_default(),
        auto_disk_config: c.auto_disk_config.unwrap_or(false),
        trusted_image_certificates: c.trusted_image_certificates,
    })
}

pub fn update_request(v: &Value, ctx: &Ctx) -> Result<ServerUpdate, Fault> {
    let u = parse_update(v, ctx.version)?;
    Ok(ServerUpdate {
        name: u.name,
        access_ip_v4: u.access_ip_v4.map(Some),
        access_ip_v6: u.access_ip_v6.map(Some),
        auto_disk_config: u.auto_disk_config,
        description: u.description,
        hostname: u.hostname,
        pinned_availability_zone: u.pinned_availability_zone,
    })
}
