//! POST /servers: the request envelope and `server` schema per
//! microversion, then the checks Nova's controller and `compute.API.create`
//! make that need no lookups, in Nova's order. Produces a typed
//! [`CreateServer`]; anything needing images, flavors, networks, keypairs,
//! AZs or policy stays with the caller.
//!
//! This module holds the typed result and [`parse_create`] (the order of
//! the checks); `schema` checks the `server` object, `networks` the
//! `networks` key, `properties` the properties with their own small
//! schemas, and `refs` parses AZ and href strings.

use super::bdm::{self, BdmItem};
use super::fields::{
    self, check_additional, check_required, check_type, invalid, object, Ty, VResult,
};
use super::py;
use crate::error::Fault;
use crate::microversion::Microversion;
use crate::model::{BlockDeviceMapping, InjectedFile};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Per-project limits create checks (Nova's quota defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateLimits {
    /// `metadata_items` (`maxServerMeta`), default 128.
    pub metadata_items: usize,
    /// `injected_files` (`maxPersonality`), default 5.
    pub injected_files: usize,
    /// `injected_file_content_bytes` (`maxPersonalitySize`), default 10240.
    pub injected_file_content_bytes: usize,
    /// `injected_file_path_length`, default 255.
    pub injected_file_path_length: usize,
}

impl Default for CreateLimits {
    fn default() -> Self {
        CreateLimits {
            metadata_items: 128,
            injected_files: 5,
            injected_file_content_bytes: 10240,
            injected_file_path_length: 255,
        }
    }
}

/// One entry of a `networks` list. With a `port`, `uuid` is `None` (Nova
/// ignores the network id then).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkRequest {
    pub uuid: Option<String>,
    pub port: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// What the `networks` key asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworksRequest {
    /// Absent (only possible below 2.37): use whatever is available.
    #[default]
    Unspecified,
    /// `"auto"` (2.37+): get-me-a-network.
    Auto,
    /// `"none"` (2.37+): no NICs.
    None,
    /// An explicit list (may be empty).
    List(Vec<NetworkRequest>),
}

/// A validated POST /servers request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateServer {
    pub name: String,
    /// `None` when booting from volume (`imageRef` absent or `""` with BDMs).
    pub image_ref: Option<String>,
    /// The last path segment of `flavorRef` (a full URL works).
    pub flavor_ref: String,
    pub admin_pass: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Below 2.57 only; empty otherwise.
    pub personality: Vec<InjectedFile>,
    /// The base64 text as sent.
    pub user_data: Option<String>,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    pub networks: NetworksRequest,
    pub key_name: Option<String>,
    /// The zone part of `availability_zone` (`None` if absent or empty).
    pub availability_zone: Option<String>,
    /// Host forced with the legacy `az:host[:node]` form.
    pub forced_host: Option<String>,
    /// Node forced with the legacy `az:host:node` / `az::node` forms.
    pub forced_node: Option<String>,
    pub config_drive: bool,
    /// Below 2.19 this is the name (Nova's behaviour); from 2.19 the given
    /// value, `None` when absent or null.
    pub description: Option<String>,
    /// 2.52+; duplicates dropped.
    pub tags: Vec<String>,
    /// 2.90+.
    pub hostname: Option<String>,
    pub min_count: u64,
    pub max_count: u64,
    pub return_reservation_id: bool,
    /// The requested mappings in v2 form (legacy ones converted, with
    /// Nova's root assignment). Nova's implicit image mapping for image
    /// boots is not included.
    pub block_device_mapping: Vec<BlockDeviceMapping>,
    /// True when the request used the legacy `block_device_mapping` syntax.
    pub legacy_bdm: bool,
    /// Requested security group names (empty names dropped, deduplicated in
    /// first-seen order); `None` when the key was absent.
    pub security_groups: Option<Vec<String>>,
    /// `OS-DCF:diskConfig` (`AUTO` = true).
    pub auto_disk_config: Option<bool>,
    /// 2.74+ `host`.
    pub requested_host: Option<String>,
    /// 2.74+ `hypervisor_hostname`.
    pub requested_hypervisor_hostname: Option<String>,
    /// 2.63+; `None` when absent or null.
    pub trusted_image_certificates: Option<Vec<String>>,
    /// `os:scheduler_hints` (or its alias), `_nova*` keys removed.
    pub scheduler_hints: BTreeMap<String, Value>,
}

impl CreateServer {
    /// The `group` hint when it is a single server-group uuid.
    pub fn group_hint(&self) -> Option<&str> {
        self.scheduler_hints.get("group").and_then(Value::as_str)
    }
}

enum RawNetworks {
    Auto,
    None,
    List(Vec<Map<String, Value>>),
}

/// The schema-validated `server` object, before Nova's controller logic.
#[derive(Default)]
struct Raw {
    name: String,
    image_ref: Option<String>,
    flavor_ref: String,
    admin_pass: Option<String>,
    metadata: BTreeMap<String, String>,
    networks: Option<RawNetworks>,
    auto_disk_config: Option<bool>,
    access_ip_v4: Option<String>,
    access_ip_v6: Option<String>,
    personality: Vec<InjectedFile>,
    availability_zone: Option<String>,
    bdm_legacy: Vec<BdmItem>,
    bdm_v2: Vec<BdmItem>,
    config_drive: bool,
    key_name: Option<String>,
    min_count: Option<u64>,
    max_count: Option<u64>,
    return_reservation_id: bool,
    security_groups: Option<Vec<String>>,
    user_data: Option<String>,
    description: Option<String>,
    tags: Vec<String>,
    trusted_certs: Option<Vec<String>>,
    host: Option<String>,
    hypervisor_hostname: Option<String>,
    hostname: Option<String>,
}

/// Parses and validates a POST /servers body.
pub fn parse_create(
    body: &Value,
    v: Microversion,
    limits: &CreateLimits,
) -> Result<CreateServer, Fault> {
    // --- schema ---------------------------------------------------------
    let root = object(None, body)?;
    let raw = root
        .get("server")
        .map(|s| server_schema(s, v))
        .transpose()?;
    let hints_os = root
        .get("os:scheduler_hints")
        .map(|h| hints("os:scheduler_hints", h))
        .transpose()?;
    let hints_alias = root
        .get("OS-SCH-HNT:scheduler_hints")
        .map(|h| hints("OS-SCH-HNT:scheduler_hints", h))
        .transpose()?;
    check_required(None, body, root, &["server"])?;
    check_additional(
        None,
        body,
        root,
        &["server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"],
    )?;
    let raw = raw.ok_or_else(|| Fault::bad_request("'server' is a required property"))?;

    // --- controller (servers.py create) ---------------------------------
    let description = if v.at_least(19) {
        raw.description.clone()
    } else {
        Some(raw.name.clone())
    };
    let scheduler_hints = hints_os.or(hints_alias).unwrap_or_default();

    let min_count = raw.min_count.unwrap_or(1);
    let max_count = raw.max_count.unwrap_or(min_count);
    if min_count > max_count {
        return Err(Fault::bad_request("min_count must be <= max_count"));
    }

    let trusted_image_certificates = raw.trusted_certs.clone().filter(|c| !c.is_empty());

    let (availability_zone, forced_host, forced_node) = match raw.availability_zone.as_deref() {
        Some(az) => parse_availability_zone(az)?,
        None => (None, None, None),
    };
    if v.at_least(74)
        && (raw.host.is_some() || raw.hypervisor_hostname.is_some())
        && (forced_host.is_some() || forced_node.is_some())
    {
        return Err(Fault::bad_request(
            "One mechanism with host and/or hypervisor_hostname and another mechanism with \
             zone:host:node are mutually exclusive.",
        ));
    }

    if !raw.bdm_legacy.is_empty() && !raw.bdm_v2.is_empty() {
        return Err(Fault::bad_request(
            "Using different block_device_mapping syntaxes is not allowed in the same request.",
        ));
    }
    let image_given = raw.image_ref.as_deref().is_some_and(|i| !i.is_empty());
    let mut v2_bdms = Vec::with_capacity(raw.bdm_v2.len());
    for item in &raw.bdm_v2 {
        v2_bdms.push(bdm::from_api(item, image_given)?);
    }
    let has_bdms = !raw.bdm_legacy.is_empty() || !v2_bdms.is_empty();
    let image_ref = match raw.image_ref.as_deref() {
        Some(i) if !i.is_empty() => Some(i.to_string()),
        _ if has_bdms => None,
        _ => return Err(Fault::bad_request("Missing imageRef attribute")),
    };

    let networks = match &raw.networks {
        None => NetworksRequest::Unspecified,
        Some(RawNetworks::Auto) => NetworksRequest::Auto,
        Some(RawNetworks::None) => NetworksRequest::None,
        Some(RawNetworks::List(items)) => NetworksRequest::List(requested_networks(items)?),
    };
    let flavor_ref = id_from_href(&raw.flavor_ref);

    // --- compute API (compute/api.py create) ----------------------------
    if max_count > 1 {
        if let NetworksRequest::List(list) = &networks {
            if list
                .iter()
                .any(|n| n.uuid.is_some() && n.fixed_ip.is_some())
            {
                return Err(Fault::bad_request(
                    "Failed to launch instances: max_count cannot be greater than 1 if an \
                     fixed_ip is specified.",
                ));
            }
            if list.iter().any(|n| n.port.is_some()) {
                return Err(Fault::bad_request(
                    "Failed to launch instances: Unable to launch multiple instances with a \
                     single configured port ID. Please launch your instance one by one with \
                     different ports.",
                ));
            }
        }
        if raw.hostname.is_some() {
            return Err(Fault::bad_request(
                "Unable to allocate a single hostname to multiple instances",
            ));
        }
    }
    let scheduler_hints: BTreeMap<String, Value> = scheduler_hints
        .into_iter()
        .filter(|(k, _)| !k.starts_with("_nova"))
        .collect();
    if trusted_image_certificates.is_some() && image_ref.is_none() {
        return Err(Fault::bad_request(
            "Image certificate validation is not supported when booting from volume",
        ));
    }

    let legacy_bdm = !raw.bdm_legacy.is_empty();
    let (block_device_mapping, implicit_image_root) = if legacy_bdm {
        bdm::convert_legacy(&raw.bdm_legacy, image_ref.as_deref())?
    } else {
        if image_ref.is_some() {
            bdm::check_root_device_name(&v2_bdms)?;
        }
        (v2_bdms, false)
    };
    if (min_count > 1 || max_count > 1)
        && block_device_mapping
            .iter()
            .any(|b| b.source_type.as_deref() == Some("volume"))
    {
        return Err(Fault::bad_request(
            "Cannot attach one or more volumes to multiple instances",
        ));
    }

    check_metadata_quota(raw.metadata.len(), limits)?;
    check_injected_files(&raw.personality, limits)?;

    if !block_device_mapping.is_empty() {
        bdm::validate_bdms(&block_device_mapping, implicit_image_root)?;
    }

    Ok(CreateServer {
        name: raw.name,
        image_ref,
        flavor_ref,
        admin_pass: raw.admin_pass,
        metadata: raw.metadata,
        personality: raw.personality,
        user_data: raw.user_data,
        access_ip_v4: raw.access_ip_v4,
        access_ip_v6: raw.access_ip_v6,
        networks,
        key_name: raw.key_name,
        availability_zone,
        forced_host,
        forced_node,
        config_drive: raw.config_drive,
        description,
        tags: raw.tags,
        hostname: raw.hostname,
        min_count,
        max_count,
        return_reservation_id: raw.return_reservation_id,
        block_device_mapping,
        legacy_bdm,
        security_groups: raw.security_groups,
        auto_disk_config: raw.auto_disk_config,
        requested_host: raw.host,
        requested_hypervisor_hostname: raw.hypervisor_hostname,
        trusted_image_certificates,
        scheduler_hints,
    })
}

/// 403 `Maximum number of metadata items exceeds <limit>` when over quota.
pub fn check_metadata_quota(count: usize, limits: &CreateLimits) -> Result<(), Fault> {
    if count > limits.metadata_items {
        return Err(Fault::forbidden(format!(
            "Maximum number of metadata items exceeds {}",
            limits.metadata_items
        )));
    }
    Ok(())
}

/// Nova's injected-file quota: the count first, then the longest path and
/// the longest contents, measured with `len()` on the strings as sent (the
/// contents still base64). Path wins when both are over.
fn check_injected_files(files: &[InjectedFile], limits: &CreateLimits) -> VResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    if files.len() > limits.injected_files {
        return Err(Fault::forbidden("Personality file limit exceeded"));
    }
    let max_path = files.iter().map(|f| fields::char_len(&f.path)).max();
    let max_content = files.iter().map(|f| fields::char_len(&f.contents)).max();
    if max_path.unwrap_or(0) > limits.injected_file_path_length {
        return Err(Fault::forbidden(format!(
            "Personality file path exceeds maximum {}",
            limits.injected_file_path_length
        )));
    }
    if max_content.unwrap_or(0) > limits.injected_file_content_bytes {
        return Err(Fault::forbidden(format!(
            "Personality file content exceeds maximum {}",
            limits.injected_file_content_bytes
        )));
    }
    Ok(())
}

mod networks;
mod properties;
mod refs;
mod schema;

use networks::*;
use properties::*;
pub use refs::*;
use schema::*;

#[cfg(test)]
mod tests;
