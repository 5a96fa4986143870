//! Scheduling against the simulated fleet: turns an instance (its flavor,
//! requested zone, scheduler hints and server group) into a
//! `rova_core::scheduler::RequestSpec`, runs the pure host selection under
//! the fleet's claim lock and records the claim in the same critical
//! section. Also the claim bookkeeping other operations call: release on
//! delete, failed build and shelve offload.
//!
//! Nothing here touches instance rows except through the callers; this
//! module decides where and keeps the books.

use super::fleet::Claim;
use crate::app::App;
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::scheduler::{select_host, NoValidHost, RequestSpec};
use std::sync::Arc;

/// The system_metadata key holding a create request's requested host.
pub const REQUESTED_HOST_KEY: &str = "rova_requested_host";

/// Where a claim landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub host: String,
    pub availability_zone: String,
}

/// The request spec of an instance with `flavor` (its own, or the new one
/// of a resize): resources, the zone it asked for, its hints and group.
pub fn request_spec(app: &App, inst: &Instance, flavor: &FlavorSnapshot) -> RequestSpec {
    let mut spec = RequestSpec {
        instance_uuid: inst.uuid.clone(),
        resources: super::fleet::flavor_resources(flavor, inst.is_volume_backed()),
        availability_zone: inst.pinned_availability_zone.clone(),
        ..Default::default()
    };
    spec.apply_hints(&inst.scheduler_hints);
    spec.group = inst
        .server_groups
        .first()
        .and_then(|g| app.compute.server_groups.get(g))
        .and_then(|g| g.spec(super::server_groups::members(app, &g.uuid)));
    spec
}

/// Chooses a host for `spec` and records `consumer`'s claim there, atomically.
pub fn claim(app: &App, consumer: &str, spec: &RequestSpec) -> Result<Placed, NoValidHost> {
    claim_checked(app, consumer, spec, false).0
}

/// [`claim`], and with `checked` (where processes share the database) the
/// write of the claim's allocation row with the capacity guard, whose
/// outcome decides: a refusal means the host is full (every process's
/// allocations counted) and the claim is gone.
pub fn claim_checked(
    app: &App,
    consumer: &str,
    spec: &RequestSpec,
    checked: bool,
) -> (Result<Placed, NoValidHost>, Option<crate::store::Staged>) {
    let fleet = &app.compute.fleet;
    let weights = fleet.weights;
    let guard_of = |host: &str| capacity_guard(app, host);
    let check = checked.then_some((consumer, &guard_of as &dyn Fn(&str) -> _));
    let (host, staged) = fleet.with_claims_checked(check, |states, claims| {
        let host = select_host(states, spec, &weights)?;
        claims.insert(
            consumer.to_string(),
            Claim {
                host: host.clone(),
                instance_uuid: spec.instance_uuid.clone(),
                resources: spec.resources,
            },
        );
        Ok(host)
    });
    let placed = host.map(|host| {
        let availability_zone = fleet
            .host(&host)
            .map(|h| h.availability_zone.clone())
            .unwrap_or_else(|| fleet.default_zone());
        Placed {
            host,
            availability_zone,
        }
    });
    (placed, staged)
}

/// The scheduling step of a build: the instance's own claim, on none of
/// the `ignore`d hosts (those the database found full).
/// The allocation row's guarded write comes back with it (see
/// [`claim_checked`]).
pub fn schedule_build(
    app: &App,
    inst: &Instance,
    ignore: &[String],
) -> (Result<Placed, NoValidHost>, Option<crate::store::Staged>) {
    let mut spec = request_spec(app, inst, &inst.flavor);
    spec.requested_host = inst.system_metadata.get(REQUESTED_HOST_KEY).cloned();
    spec.ignore_hosts.extend(ignore.iter().cloned());
    claim_checked(app, &inst.uuid, &spec, true)
}

/// The database guard that keeps a host's allocation rows within its vCPU
/// and RAM capacity (allocation ratios and reserved memory applied), read
/// from its `resource_providers` row, as Placement checks allocations
/// against inventory. This process's claims
/// choose the host; the guard, on the claim's own row, decides, counting
/// every process's rows.
/// Only on PostgreSQL: an SQLite file is served by one process, whose
/// claims (taken under one lock) are already the whole truth.
pub fn capacity_guard(app: &App, host: &str) -> Option<crate::store::Guard> {
    if !matches!(app.store.database(), crate::store::Database::Postgres(_)) {
        return None;
    }
    app.compute.fleet.host(host)?;
    Some(crate::store::Guard::Capacity {
        node: host.to_string(),
    })
}

/// Drops every claim of an instance (failed build, shelve offload).
pub fn release_instance(app: &App, uuid: &str) {
    app.compute.fleet.release_instance(uuid);
}

/// The image a shelve left for a server that is being deleted goes first,
/// as Nova's delete of a SHELVED or SHELVED_OFFLOADED server deletes it
/// before the instance: once the server reads as gone, so does its image.
pub async fn delete_shelved_image(app: &Arc<App>, inst: &Instance) {
    if let Some(img) = inst
        .system_metadata
        .get("shelved_image_id")
        .filter(|s| !s.is_empty())
    {
        let _ = app.images.delete(img).await;
    }
}

/// A server is gone: its claims are released (it left its groups with
/// the write that deleted it, [`super::Compute::update_instance_leaving_groups`]).
pub async fn on_instance_deleted(app: &Arc<App>, inst: &Instance) {
    release_instance(app, &inst.uuid);
}
