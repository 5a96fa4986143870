//! POST /servers: the request envelope and `server` schema per
//! microversion, then the checks Nova's controller and `compute.API.create`
//! make that need no lookups, in Nova's order. Produces a typed
//! [`CreateServer`]; anything needing images, flavors, networks, keypairs,
//! AZs or policy stays with the caller.

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

/// The `server` properties of the create schema for this microversion, in
/// Nova's schema order (which decides the first reported error).
fn server_properties(v: Microversion) -> Vec<&'static str> {
    let mut p = vec![
        "name",
        "imageRef",
        "flavorRef",
        "adminPass",
        "metadata",
        "networks",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
    ];
    if !v.at_least(57) {
        p.push("personality");
    }
    p.extend([
        "availability_zone",
        "block_device_mapping",
        "block_device_mapping_v2",
        "config_drive",
        "key_name",
        "min_count",
        "max_count",
        "return_reservation_id",
        "security_groups",
        "user_data",
    ]);
    if v.at_least(19) {
        p.push("description");
    }
    if v.at_least(52) {
        p.push("tags");
    }
    if v.at_least(63) {
        p.push("trusted_image_certificates");
    }
    if v.at_least(74) {
        p.extend(["host", "hypervisor_hostname"]);
    }
    if v.at_least(90) {
        p.push("hostname");
    }
    p
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

fn server_schema(sv: &Value, v: Microversion) -> VResult<Raw> {
    let obj = object(Some("server"), sv)?;
    let props = server_properties(v);
    let mut raw = Raw::default();
    for key in &props {
        let Some(val) = obj.get(*key) else { continue };
        match *key {
            "name" => raw.name = fields::name(key, val)?,
            "imageRef" => {
                let ok = val
                    .as_str()
                    .is_some_and(|s| s.is_empty() || fields::is_uuid_like(s));
                if !ok {
                    return Err(fields::one_of_fail(key, val));
                }
                raw.image_ref = val.as_str().map(str::to_string);
            }
            "flavorRef" => raw.flavor_ref = fields::flavor_ref(key, val)?,
            "adminPass" => raw.admin_pass = Some(fields::string(key, val)?),
            "metadata" => raw.metadata = fields::metadata(key, val)?,
            "networks" => raw.networks = Some(networks_schema(val, v)?),
            "OS-DCF:diskConfig" => raw.auto_disk_config = Some(fields::disk_config(key, val)?),
            "accessIPv4" => raw.access_ip_v4 = Some(fields::ipv4(key, val)?),
            "accessIPv6" => raw.access_ip_v6 = Some(fields::ipv6(key, val)?),
            "personality" => raw.personality = personality(key, val)?,
            "availability_zone" => raw.availability_zone = Some(fields::name(key, val)?),
            "block_device_mapping" => raw.bdm_legacy = bdm::schema_legacy(val)?,
            "block_device_mapping_v2" => raw.bdm_v2 = bdm::schema_v2(val, v)?,
            "config_drive" => raw.config_drive = fields::boolean(key, val)?,
            "key_name" => raw.key_name = Some(fields::name(key, val)?),
            "min_count" => raw.min_count = Some(fields::positive_integer(key, val)?),
            "max_count" => raw.max_count = Some(fields::positive_integer(key, val)?),
            "return_reservation_id" => {
                fields::boolean(key, val)?;
                // The controller tests the raw value: any string is true.
                raw.return_reservation_id = fields::truthy(Some(val));
            }
            "security_groups" => raw.security_groups = Some(security_groups(key, val)?),
            "user_data" => raw.user_data = Some(fields::base64(key, val, Some(65535))?),
            "description" => raw.description = fields::description(key, val)?,
            "tags" => raw.tags = fields::tag_list(key, val)?,
            "trusted_image_certificates" => raw.trusted_certs = trusted_certs(key, val)?,
            "host" => raw.host = Some(fields::fqdn(key, val)?),
            "hypervisor_hostname" => raw.hypervisor_hostname = Some(fields::fqdn(key, val)?),
            "hostname" => raw.hostname = Some(fields::hostname(key, val, v.at_least(94))?),
            _ => {}
        }
    }
    let mut required = vec!["name", "flavorRef"];
    if v.at_least(37) {
        required.push("networks");
    }
    check_required(Some("server"), sv, obj, &required)?;
    check_additional(Some("server"), sv, obj, &props)?;
    Ok(raw)
}

/// The network item keys for this microversion.
fn network_item_keys(v: Microversion) -> &'static [&'static str] {
    let tagged = (v.at_least(32) && !v.at_least(37)) || v.at_least(42);
    if tagged {
        &["fixed_ip", "port", "uuid", "tag"]
    } else {
        &["fixed_ip", "port", "uuid"]
    }
}

/// One network item; `strict_uuid` is the 2.37+ `format: uuid` on `uuid`.
fn network_item(
    idx: &str,
    item: &Value,
    v: Microversion,
    strict_uuid: bool,
) -> VResult<Map<String, Value>> {
    let obj = object(Some(idx), item)?;
    let keys = network_item_keys(v);
    for key in keys {
        let Some(val) = obj.get(*key) else { continue };
        match *key {
            "fixed_ip" => drop(fields::ip_address(key, val)?),
            "port" => {
                check_type(key, val, &[Ty::Str, Ty::Null])?;
                if let Some(s) = val.as_str() {
                    if !fields::is_uuid_like(s) {
                        return Err(fields::format_fail(key, val, "uuid"));
                    }
                }
            }
            "uuid" if strict_uuid => drop(fields::uuid(key, val)?),
            "uuid" => drop(fields::string(key, val)?),
            "tag" => drop(fields::tag(key, val)?),
            _ => {}
        }
    }
    check_additional(Some(idx), item, obj, keys)?;
    Ok(obj.clone())
}

fn networks_schema(val: &Value, v: Microversion) -> VResult<RawNetworks> {
    if !v.at_least(37) {
        let items = fields::array("networks", val)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(network_item(&i.to_string(), item, v, false)?);
        }
        return Ok(RawNetworks::List(out));
    }
    // 2.37+: oneOf [list of items, "auto" | "none"]; any mismatch inside the
    // list collapses into the generic oneOf message.
    match val {
        Value::String(s) if s == "auto" => Ok(RawNetworks::Auto),
        Value::String(s) if s == "none" => Ok(RawNetworks::None),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match network_item(&i.to_string(), item, v, true) {
                    Ok(m) => out.push(m),
                    Err(_) => return Err(fields::one_of_fail("networks", val)),
                }
            }
            Ok(RawNetworks::List(out))
        }
        _ => Err(fields::one_of_fail("networks", val)),
    }
}

/// Nova's `_get_requested_networks` for a list.
fn requested_networks(items: &[Map<String, Value>]) -> VResult<Vec<NetworkRequest>> {
    let mut out: Vec<NetworkRequest> = Vec::with_capacity(items.len());
    let mut ports: Vec<String> = Vec::new();
    for item in items {
        let fixed_ip = item
            .get("fixed_ip")
            .and_then(Value::as_str)
            .map(str::to_string);
        let tag = item.get("tag").and_then(Value::as_str).map(str::to_string);
        let port = item
            .get("port")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        if let Some(port) = port {
            if ports.iter().any(|p| p == port) {
                return Err(Fault::bad_request(format!(
                    "Port ID '{port}' was specified twice: you cannot attach a port multiple times."
                )));
            }
            if let Some(addr) = &fixed_ip {
                return Err(Fault::bad_request(format!(
                    "Specified Fixed IP '{addr}' cannot be used with port '{port}': the two \
                     cannot be specified together."
                )));
            }
            ports.push(port.to_string());
            out.push(NetworkRequest {
                uuid: None,
                port: Some(port.to_string()),
                fixed_ip: None,
                tag,
            });
        } else {
            let Some(uuid) = item.get("uuid") else {
                return Err(Fault::bad_request("Bad network format: missing 'uuid'"));
            };
            let uuid = py::str_of(uuid);
            if !fields::is_uuid_like(&uuid) {
                return Err(Fault::bad_request(format!(
                    "Bad networks format: network uuid is not in proper format ({uuid})"
                )));
            }
            out.push(NetworkRequest {
                uuid: Some(uuid),
                port: None,
                fixed_ip,
                tag,
            });
        }
    }
    Ok(out)
}

fn personality(field: &str, val: &Value) -> VResult<Vec<InjectedFile>> {
    let items = fields::array(field, val)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let obj = object(Some(&idx), item)?;
        let path = obj
            .get("path")
            .map(|p| fields::string("path", p))
            .transpose()?;
        let contents = obj
            .get("contents")
            .map(|c| fields::base64("contents", c, None))
            .transpose()?;
        check_additional(Some(&idx), item, obj, &["path", "contents"])?;
        // Nova indexes both keys unconditionally; report a missing one
        // instead of failing hard.
        check_required(Some(&idx), item, obj, &["path", "contents"])?;
        out.push(InjectedFile {
            path: path.unwrap_or_default(),
            contents: contents.unwrap_or_default(),
        });
    }
    Ok(out)
}

fn security_groups(field: &str, val: &Value) -> VResult<Vec<String>> {
    let items = fields::array(field, val)?;
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let obj = object(Some(&idx), item)?;
        let name = obj
            .get("name")
            .map(|n| fields::name("name", n))
            .transpose()?;
        check_additional(Some(&idx), item, obj, &["name"])?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

fn trusted_certs(field: &str, val: &Value) -> VResult<Option<Vec<String>>> {
    check_type(field, val, &[Ty::Arr, Ty::Null])?;
    let Some(items) = val.as_array() else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(invalid(field, val, "[] should be non-empty"));
    }
    if items.len() > 50 {
        return Err(invalid(
            field,
            val,
            format!("{} is too long", py::repr(val)),
        ));
    }
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(invalid(
                field,
                val,
                format!("{} has non-unique elements", py::repr(val)),
            ));
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let s = fields::string(&idx, item)?;
        fields::min_length(&idx, item, &s, 1)?;
        out.push(s);
    }
    Ok(Some(out))
}

/// A uuid string or a list of uuid strings (`group`, `different_host`).
fn uuid_or_uuid_list(v: &Value) -> bool {
    match v {
        Value::String(s) => fields::is_uuid_like(s),
        Value::Array(a) => a
            .iter()
            .all(|x| x.as_str().is_some_and(fields::is_uuid_like)),
        _ => false,
    }
}

/// The scheduler-hints schema: known keys checked, others allowed.
fn hints(field: &str, val: &Value) -> VResult<BTreeMap<String, Value>> {
    let obj = object(Some(field), val)?;
    for key in [
        "group",
        "different_host",
        "same_host",
        "query",
        "target_cell",
        "different_cell",
        "build_near_host_ip",
        "cidr",
    ] {
        let Some(h) = obj.get(key) else { continue };
        match key {
            "group" | "different_host" if !uuid_or_uuid_list(h) => {
                return Err(fields::one_of_fail(key, h));
            }
            "same_host" => {
                check_type(key, h, &[Ty::Str, Ty::Arr])?;
                if let Some(items) = h.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        fields::uuid(&i.to_string(), item)?;
                    }
                }
            }
            "query" => check_type(key, h, &[Ty::Str, Ty::Obj])?,
            "target_cell" => drop(fields::name(key, h)?),
            "different_cell" => {
                check_type(key, h, &[Ty::Str, Ty::Arr])?;
                if let Some(items) = h.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        fields::string(&i.to_string(), item)?;
                    }
                }
            }
            "build_near_host_ip" => drop(fields::ip_address(key, h)?),
            "cidr" => {
                let s = fields::string(key, h)?;
                let ok = s.strip_prefix('/').is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b'.' | b':'))
                });
                if !ok {
                    return Err(fields::pattern_fail(key, h, "^/[0-9a-f.:]+$"));
                }
            }
            _ => {}
        }
    }
    Ok(obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

type AzParts = (Option<String>, Option<String>, Option<String>);

/// Nova's `parse_availability_zone`: `az`, `az:host`, `az:host:node`,
/// `az::node`; more than two colons is a 400. Empty parts become `None`.
pub fn parse_availability_zone(az: &str) -> Result<AzParts, Fault> {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (zone, host, node) = match az.matches(':').count() {
        0 => (az, "", ""),
        1 => {
            let (z, h) = az.split_once(':').unwrap_or((az, ""));
            (z, h, "")
        }
        2 if az.contains("::") => {
            let (z, n) = az.split_once("::").unwrap_or((az, ""));
            (z, "", n)
        }
        2 => {
            let mut parts = az.splitn(3, ':');
            let z = parts.next().unwrap_or("");
            let h = parts.next().unwrap_or("");
            let n = parts.next().unwrap_or("");
            (z, h, n)
        }
        _ => {
            return Err(Fault::bad_request(
                "Invalid input received: Unable to parse availability_zone",
            ))
        }
    };
    Ok((some(zone), some(host), some(node)))
}

/// Nova's `get_id_from_href`: the last path segment of a URL-ish string.
pub fn id_from_href(href: &str) -> String {
    let mut rest = href;
    if let Some(idx) = rest.find(':') {
        let scheme = &rest[..idx];
        let is_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            rest = &rest[idx + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        rest = match after.find(['/', '?', '#']) {
            Some(i) => &after[i..],
            None => "",
        };
    }
    if let Some(i) = rest.find('#') {
        rest = &rest[..i];
    }
    if let Some(i) = rest.find('?') {
        rest = &rest[..i];
    }
    rest.rsplit('/').next().unwrap_or("").to_string()
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
