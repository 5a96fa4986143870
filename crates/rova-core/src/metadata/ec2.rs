//! The EC2-style tree (`<ver>/meta-data/...`, `<ver>/user-data`) as a
//! small node model, rendered either as Nova's HTTP listings or as the
//! config drive's single `meta-data.json`.

use super::network::first_fixed_ipv4;
use super::{guest_hostname, openstack::decode_user_data, GuestFacts, EC2_VERSIONS};
use crate::model::Instance;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A node of the EC2 tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A directory. `name` replaces the key in the parent's listing (Nova's
    /// `_name`, used by `public-keys/` to list `0=<keyname>`).
    Dir {
        entries: BTreeMap<String, Node>,
        name: Option<String>,
    },
    /// A scalar or a list of strings (rendered newline-joined).
    Leaf(Value),
    /// Raw bytes (user data).
    Bytes(Vec<u8>),
}

impl Node {
    fn dir(entries: BTreeMap<String, Node>) -> Node {
        Node::Dir {
            entries,
            name: None,
        }
    }
    fn leaf(v: impl Into<Value>) -> Node {
        Node::Leaf(v.into())
    }

    /// A direct child of a directory.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Dir { entries, .. } => entries.get(key),
            _ => None,
        }
    }

    /// Walk a path of keys (empty path: this node).
    pub fn find(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The HTTP body: a listing for directories (sorted keys, `/` after
    /// sub-directories, `_name` when set), the value for leaves.
    pub fn render(&self) -> Vec<u8> {
        match self {
            Node::Dir { entries, .. } => {
                let lines: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| match v {
                        Node::Dir { name: Some(n), .. } => n.clone(),
                        Node::Dir { name: None, .. } => format!("{k}/"),
                        _ => k.clone(),
                    })
                    .collect();
                lines.join("\n").into_bytes()
            }
            Node::Bytes(b) => b.clone(),
            Node::Leaf(v) => render_value(v).into_bytes(),
        }
    }

    /// JSON form for the config drive (`_name` dropped, bytes as text).
    pub fn to_json(&self) -> Value {
        match self {
            Node::Dir { entries, .. } => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            Node::Leaf(v) => v.clone(),
            Node::Bytes(b) => json!(String::from_utf8_lossy(b)),
        }
    }
}

/// Python's `str()` of a value, lists newline-joined.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Array(items) => items
            .iter()
            .map(render_value)
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// `i-%08x` from the internal id.
pub fn ec2_instance_id(inst: &Instance) -> String {
    format!("i-{:08x}", inst.id)
}

/// A stable EC2-style id (`ami-xxxxxxxx`, `aki-…`, `ari-…`) for a uuid:
/// the low 32 bits of an FNV-1a hash (Rova keeps no EC2 id mapping table).
pub fn ec2_style_id(prefix: &str, uuid: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in uuid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{prefix}-{h:08x}")
}

fn strip_dev(name: &str) -> &str {
    name.strip_prefix("/dev/").unwrap_or(name)
}

/// EC2 `block-device-mapping` (Nova's `instance_block_mapping`).
fn block_device_mapping(inst: &Instance, facts: &GuestFacts) -> BTreeMap<String, Node> {
    let mut m = BTreeMap::new();
    let Some(root) = inst.root_device_name.as_deref() else {
        m.insert("ami".into(), Node::leaf("sda1"));
        m.insert("ephemeral0".into(), Node::leaf("sda2"));
        m.insert("root".into(), Node::leaf("/dev/sda1"));
        m.insert("swap".into(), Node::leaf("sda3"));
        return m;
    };
    m.insert("ami".into(), Node::leaf(strip_dev(root)));
    m.insert("root".into(), Node::leaf(root));
    if let Some(e) = &facts.ephemeral_device {
        m.insert("ephemeral0".into(), Node::leaf(e.as_str()));
    }
    if let Some(s) = &facts.swap_device {
        m.insert("swap".into(), Node::leaf(s.as_str()));
    }
    let mut ebs: Vec<&str> = inst
        .block_device_mapping
        .iter()
        .filter(|b| !b.no_device && b.destination_type.as_deref() == Some("volume"))
        .filter_map(|b| b.device_name.as_deref())
        .filter(|d| strip_dev(d) != strip_dev(root))
        .collect();
    ebs.sort_unstable();
    for (i, d) in ebs.into_iter().enumerate() {
        m.insert(format!("ebs{i}"), Node::leaf(strip_dev(d)));
    }
    m
}

/// The EC2 tree of one version (`latest` = 2009-04-04): `{"meta-data":
/// ..., "user-data": bytes}`; `None` for an unknown version.
pub fn ec2_metadata(inst: &Instance, facts: &GuestFacts, version: &str) -> Option<Node> {
    let idx = if version == "latest" {
        EC2_VERSIONS.len() - 1
    } else {
        EC2_VERSIONS.iter().position(|v| *v == version)?
    };
    let at_least = |req: &str| {
        EC2_VERSIONS
            .iter()
            .position(|v| *v == req)
            .is_some_and(|r| idx >= r)
    };
    let hostname = guest_hostname(inst, facts);
    let ami = facts.ami_id.clone().unwrap_or_else(|| {
        if inst.image_ref.is_empty() {
            String::new()
        } else {
            ec2_style_id("ami", &inst.image_ref)
        }
    });
    let local_ipv4 = first_fixed_ipv4(inst)
        .or_else(|| facts.requester_address.clone())
        .unwrap_or_default();
    let mut md: BTreeMap<String, Node> = BTreeMap::new();
    md.insert("ami-id".into(), Node::leaf(ami));
    md.insert("ami-launch-index".into(), Node::leaf(inst.launch_index));
    md.insert("ami-manifest-path".into(), Node::leaf("FIXME"));
    md.insert("instance-id".into(), Node::leaf(ec2_instance_id(inst)));
    md.insert("hostname".into(), Node::leaf(hostname.clone()));
    md.insert("local-ipv4".into(), Node::leaf(local_ipv4));
    md.insert(
        "reservation-id".into(),
        Node::leaf(inst.reservation_id.clone()),
    );
    md.insert(
        "security-groups".into(),
        Node::leaf(json!(inst.security_groups)),
    );
    if let Some(key_name) = &inst.key_name {
        let mut zero = BTreeMap::new();
        zero.insert("openssh-key".to_string(), Node::leaf(json!(inst.key_data)));
        let mut keys = BTreeMap::new();
        keys.insert(
            "0".to_string(),
            Node::Dir {
                entries: zero,
                name: Some(format!("0={key_name}")),
            },
        );
        md.insert("public-keys".into(), Node::dir(keys));
    }
    if at_least("2007-01-19") {
        md.insert("local-hostname".into(), Node::leaf(hostname.clone()));
        md.insert("public-hostname".into(), Node::leaf(hostname));
        let fip = facts.floating_ips.first().cloned().unwrap_or_default();
        md.insert("public-ipv4".into(), Node::leaf(fip));
    }
    if at_least("2007-08-29") {
        md.insert("instance-type".into(), Node::leaf(inst.flavor.name.clone()));
    }
    if at_least("2007-12-15") {
        md.insert(
            "block-device-mapping".into(),
            Node::dir(block_device_mapping(inst, facts)),
        );
        if !inst.kernel_id.is_empty() {
            md.insert(
                "kernel-id".into(),
                Node::leaf(ec2_style_id("aki", &inst.kernel_id)),
            );
        }
        if !inst.ramdisk_id.is_empty() {
            md.insert(
                "ramdisk-id".into(),
                Node::leaf(ec2_style_id("ari", &inst.ramdisk_id)),
            );
        }
    }
    if at_least("2008-02-01") {
        let mut p = BTreeMap::new();
        p.insert(
            "availability-zone".to_string(),
            Node::leaf(json!(inst.availability_zone)),
        );
        md.insert("placement".into(), Node::dir(p));
    }
    if at_least("2008-09-01") {
        md.insert("instance-action".into(), Node::leaf("none"));
    }
    let mut top = BTreeMap::new();
    top.insert("meta-data".to_string(), Node::dir(md));
    if let Some(ud) = decode_user_data(inst) {
        top.insert("user-data".to_string(), Node::Bytes(ud));
    }
    Some(Node::dir(top))
}
