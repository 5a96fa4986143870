//! The `server` object's schema for a microversion: which properties
//! exist (in Nova's schema order, which decides the first reported
//! error) and the per-property type and format checks, producing [`Raw`].

use super::*;

/// The `server` properties of the create schema for this microversion, in
/// Nova's schema order (which decides the first reported error).
pub(super) fn server_properties(v: Microversion) -> Vec<&'static str> {
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

pub(super) fn server_schema(sv: &Value, v: Microversion) -> VResult<Raw> {
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
