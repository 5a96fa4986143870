//! The OpenStack tree's JSON documents: `meta_data.json` (with version
//! gating), `vendor_data.json`, `vendor_data2.json`, and user data decoding.

use super::{
    content_files, guest_hostname, GuestFacts, OsVersion, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE,
    NEWTON_TWO, OCATA, ROCKY, VICTORIA,
};
use crate::model::Instance;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{json, Map, Value};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode base64 text leniently (whitespace ignored, padding optional).
pub(crate) fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact.as_bytes()).ok()
}

/// The instance's user data as raw bytes, or `None` when it has none.
/// Text that is not valid base64 (the API validates it, so this should not
/// happen) is served as its own bytes.
pub fn decode_user_data(inst: &Instance) -> Option<Vec<u8>> {
    let ud = inst.user_data.as_ref()?;
    Some(decode_b64(ud).unwrap_or_else(|| ud.as_bytes().to_vec()))
}

/// `meta_data.json` for one version. `for_config_drive` adds `admin_pass`
/// (never served over HTTP).
pub fn meta_data(
    inst: &Instance,
    facts: &GuestFacts,
    ver: OsVersion,
    for_config_drive: bool,
) -> Value {
    let mut m = Map::new();
    m.insert("uuid".into(), json!(inst.uuid));
    if !inst.metadata.is_empty() {
        m.insert("meta".into(), json!(inst.metadata));
    }
    let files: Vec<Value> = content_files(inst)
        .into_iter()
        .map(|(key, path, _)| json!({"path": path, "content_path": format!("/content/{key}")}))
        .collect();
    if !files.is_empty() {
        m.insert("files".into(), Value::Array(files));
    }
    if for_config_drive {
        if let Some(pass) = inst.admin_pass.as_deref().filter(|p| !p.is_empty()) {
            m.insert("admin_pass".into(), json!(pass));
        }
    }
    if let (Some(name), Some(data)) = (&inst.key_name, &inst.key_data) {
        let mut pk = Map::new();
        pk.insert(name.clone(), json!(data));
        m.insert("public_keys".into(), Value::Object(pk));
        m.insert(
            "keys".into(),
            json!([{"name": name, "type": facts.key_type, "data": data}]),
        );
    }
    m.insert("hostname".into(), json!(guest_hostname(inst, facts)));
    m.insert("name".into(), json!(inst.display_name));
    m.insert("launch_index".into(), json!(inst.launch_index));
    m.insert("availability_zone".into(), json!(inst.availability_zone));
    if ver.at_least(GRIZZLY) {
        let seed = base64::engine::general_purpose::STANDARD.encode(&facts.random_seed);
        m.insert("random_seed".into(), json!(seed));
    }
    if ver.at_least(LIBERTY) {
        m.insert("project_id".into(), json!(inst.project_id));
    }
    if ver.at_least(NEWTON_ONE) {
        m.insert("devices".into(), Value::Array(devices(inst, facts, ver)));
    }
    if ver.at_least(VICTORIA) {
        let mut cpus = facts.dedicated_cpus.clone();
        cpus.sort_unstable();
        cpus.dedup();
        m.insert("dedicated_cpus".into(), json!(cpus));
    }
    Value::Object(m)
}

/// Tagged devices (`devices`, 2016-06-30+): NICs with a tag (or a VLAN or
/// trust flag) and block devices with a tag.
fn devices(inst: &Instance, facts: &GuestFacts, ver: OsVersion) -> Vec<Value> {
    let mut out = Vec::new();
    for vif in &inst.vifs {
        let port = facts.ports.get(&vif.port_id).cloned().unwrap_or_default();
        // The driver records device metadata only for these NICs.
        if vif.tag.is_none() && port.vlan.is_none() && port.vf_trusted.is_none() {
            continue;
        }
        let mut d = Map::new();
        if ver.at_least(OCATA) {
            if let Some(vlan) = port.vlan {
                d.insert("vlan".into(), json!(vlan));
            }
        }
        if ver.at_least(ROCKY) {
            d.insert("vf_trusted".into(), json!(port.vf_trusted.unwrap_or(false)));
        }
        if vif.tag.is_none() && d.is_empty() {
            continue;
        }
        d.insert("type".into(), json!("nic"));
        d.insert("mac".into(), json!(vif.mac));
        insert_bus(&mut d, port.address.as_ref());
        if let Some(tag) = &vif.tag {
            d.insert("tags".into(), json!([tag]));
        }
        out.push(Value::Object(d));
    }
    for bdm in &inst.block_device_mapping {
        let Some(tag) = &bdm.tag else { continue };
        let mut d = Map::new();
        d.insert("type".into(), json!("disk"));
        if let Some(serial) = &bdm.uuid {
            d.insert("serial".into(), json!(serial));
        }
        if let Some(path) = &bdm.device_name {
            d.insert("path".into(), json!(path));
        }
        let addr = bdm
            .uuid
            .as_ref()
            .and_then(|u| facts.disk_addresses.get(u))
            .or_else(|| {
                bdm.device_name
                    .as_ref()
                    .and_then(|n| facts.disk_addresses.get(n))
            });
        insert_bus(&mut d, addr);
        d.insert("tags".into(), json!([tag]));
        out.push(Value::Object(d));
    }
    out
}

fn insert_bus(d: &mut Map<String, Value>, addr: Option<&super::DeviceAddress>) {
    let (bus, address) = match addr {
        Some(a) => (a.bus.as_str(), a.address.as_str()),
        None => ("none", "none"),
    };
    d.insert("bus".into(), json!(bus));
    d.insert("address".into(), json!(address));
}

/// `vendor_data.json` (2013-10-17+): the StaticJSON content, or `None`
/// (404) when StaticJSON is not configured or the version is older.
pub fn vendor_data(facts: &GuestFacts, ver: OsVersion) -> Option<Value> {
    if !ver.at_least(HAVANA) {
        return None;
    }
    facts.vendor_data.clone()
}

/// `vendor_data2.json` (2016-10-06+): `{"static": ..., <target>: ...}`;
/// a dynamic target whose name is already present is dropped.
pub fn vendor_data2(facts: &GuestFacts, ver: OsVersion) -> Option<Value> {
    if !ver.at_least(NEWTON_TWO) {
        return None;
    }
    let mut m = Map::new();
    if let Some(s) = &facts.vendor_data {
        m.insert("static".into(), s.clone());
    }
    for (name, v) in &facts.vendor_data_dynamic {
        if !m.contains_key(name) {
            m.insert(name.clone(), v.clone());
        }
    }
    Some(Value::Object(m))
}
