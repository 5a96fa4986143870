//! Guest metadata from one source: the OpenStack and EC2 trees that the
//! metadata service serves over HTTP and that the config drive carries as
//! files, plus the server-password endpoint's rules.
//!
//! Everything here is pure: the caller supplies the [`Instance`] and the
//! facts the instance record does not hold ([`GuestFacts`]: DHCP domain,
//! subnets, vendor data, today's date, random seed bytes, device
//! addresses). Behaviour follows Nova's `nova/api/metadata/base.py`,
//! `password.py`, `nova/virt/netutils.py` and `nova/virt/configdrive.py`
//! as summarised in the reference notes (section i).

mod ec2;
mod network;
mod openstack;
mod password;
#[cfg(test)]
mod tests;

pub use ec2::{ec2_instance_id, ec2_metadata, ec2_style_id, Node};
pub use network::network_data;
pub use openstack::{decode_user_data, meta_data, vendor_data, vendor_data2};
pub use password::{
    password_chunks, password_request, stored_password, PasswordOutcome, PASSWORD_CHUNKS,
    PASSWORD_CHUNK_LEN, PASSWORD_MAX_SIZE,
};

use crate::model::Instance;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// OpenStack metadata versions, oldest first. `latest` is the last one.
pub const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10", // Folsom
    "2013-04-04", // Grizzly
    "2013-10-17", // Havana
    "2015-10-15", // Liberty
    "2016-06-30", // Newton one
    "2016-10-06", // Newton two
    "2017-02-22", // Ocata
    "2018-08-27", // Rocky
    "2020-10-14", // Victoria
    "2025-04-04", // Epoxy
];

/// EC2 metadata versions, oldest first. `latest` is the last one.
pub const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
];

/// Nova's default `[api]config_drive_skip_versions`.
pub const DEFAULT_CONFIG_DRIVE_SKIP_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
];

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_TEXT: &str = "text/plain";

pub(crate) const GRIZZLY: &str = "2013-04-04";
pub(crate) const HAVANA: &str = "2013-10-17";
pub(crate) const LIBERTY: &str = "2015-10-15";
pub(crate) const NEWTON_ONE: &str = "2016-06-30";
pub(crate) const NEWTON_TWO: &str = "2016-10-06";
pub(crate) const OCATA: &str = "2017-02-22";
pub(crate) const ROCKY: &str = "2018-08-27";
pub(crate) const VICTORIA: &str = "2020-10-14";

/// A resolved OpenStack metadata version (`latest` already mapped to the
/// newest dated version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsVersion(usize);

impl OsVersion {
    /// Parse a dated version or `latest`; `None` for unknown versions.
    pub fn parse(v: &str) -> Option<OsVersion> {
        if v == "latest" {
            return Some(OsVersion(OPENSTACK_VERSIONS.len() - 1));
        }
        OPENSTACK_VERSIONS
            .iter()
            .position(|x| *x == v)
            .map(OsVersion)
    }
    /// The newest version.
    pub fn latest() -> OsVersion {
        OsVersion(OPENSTACK_VERSIONS.len() - 1)
    }
    /// The dated name of this version.
    pub fn name(self) -> &'static str {
        OPENSTACK_VERSIONS[self.0]
    }
    /// True when this version is `required` or newer.
    pub fn at_least(self, required: &str) -> bool {
        match OPENSTACK_VERSIONS.iter().position(|x| *x == required) {
            Some(i) => self.0 >= i,
            None => false,
        }
    }
}

/// One subnet of a network, as Neutron describes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubnetFact {
    /// Subnet id; matched against `FixedIp::subnet_id` when that is set.
    pub id: String,
    /// e.g. `10.0.0.0/24` or `fd00::/64`.
    pub cidr: String,
    /// 4 or 6.
    pub ip_version: u8,
    pub gateway: Option<String>,
    /// `enable_dhcp` (a DHCP server serves this subnet).
    pub dhcp: bool,
    /// `ipv6_address_mode` (`slaac`, `dhcpv6-stateful`, ...), if any.
    pub ipv6_address_mode: Option<String>,
    /// DNS nameserver addresses.
    pub dns: Vec<String>,
    /// Extra host routes: (destination cidr, nexthop).
    pub routes: Vec<(String, String)>,
}

/// A network the instance has ports on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetFact {
    pub network_id: String,
    pub mtu: Option<u32>,
    /// In Neutron's order; the first of each IP version is used.
    pub subnets: Vec<SubnetFact>,
}

/// Where a device sits on the guest's buses (`devices` in meta_data.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAddress {
    /// `pci`, `usb`, `scsi`, `ide` or `xen`.
    pub bus: String,
    /// e.g. `0000:00:03.0`.
    pub address: String,
}

/// Per-port facts the instance record does not hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PortFact {
    /// Tap device name; default `("tap" + port_id)[..14]`.
    pub devname: Option<String>,
    /// Binding VIF type; default `ovs`.
    pub vif_type: Option<String>,
    pub address: Option<DeviceAddress>,
    pub vlan: Option<u32>,
    pub vf_trusted: Option<bool>,
}

/// The facts a caller supplies beside the [`Instance`].
///
/// Serialisable so the facts can travel between processes. A field a
/// peer leaves out decodes to its [`GuestFacts::new`] default; `today`
/// and `random_seed` have none and must be present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestFacts {
    /// `[api]dhcp_domain`; default `novalocal`; empty means none.
    #[serde(default = "default_dhcp_domain")]
    pub dhcp_domain: String,
    /// The networks behind the instance's VIFs (matched by network id).
    #[serde(default)]
    pub networks: Vec<NetFact>,
    /// Port details keyed by port id.
    #[serde(default)]
    pub ports: BTreeMap<String, PortFact>,
    /// Bus addresses of tagged block devices, keyed by volume id or device
    /// name.
    #[serde(default)]
    pub disk_addresses: BTreeMap<String, DeviceAddress>,
    /// StaticJSON vendor data; `None` when StaticJSON is not a configured
    /// provider (then `vendor_data.json` is 404).
    #[serde(default = "default_vendor_data")]
    pub vendor_data: Option<Value>,
    /// Dynamic vendor data already fetched: (target name, response).
    #[serde(default)]
    pub vendor_data_dynamic: Vec<(String, Value)>,
    /// Today (UTC): hides future versions in the `/openstack` listing.
    pub today: NaiveDate,
    /// Bytes for `random_seed` (Nova uses 512 fresh random bytes).
    pub random_seed: Vec<u8>,
    /// Floating IPs, first one is `public-ipv4`.
    #[serde(default)]
    pub floating_ips: Vec<String>,
    /// The requester's address (EC2 `local-ipv4` fallback).
    #[serde(default)]
    pub requester_address: Option<String>,
    /// Pinned host CPUs (`dedicated_cpus`).
    #[serde(default)]
    pub dedicated_cpus: Vec<u32>,
    /// Keypair type (`ssh` or `x509`).
    #[serde(default = "default_key_type")]
    pub key_type: String,
    /// EC2 image id (`ami-id`); derived from `image_ref` when `None`.
    #[serde(default)]
    pub ami_id: Option<String>,
    /// EC2 block-device-mapping `ephemeral0` and `swap` device names.
    #[serde(default)]
    pub ephemeral_device: Option<String>,
    #[serde(default)]
    pub swap_device: Option<String>,
    /// EC2 versions left off the config drive.
    #[serde(default = "default_config_drive_skip_versions")]
    pub config_drive_skip_versions: Vec<String>,
}

fn default_dhcp_domain() -> String {
    "novalocal".to_string()
}

fn default_vendor_data() -> Option<Value> {
    Some(Value::Object(Default::default()))
}

fn default_key_type() -> String {
    "ssh".to_string()
}

fn default_config_drive_skip_versions() -> Vec<String> {
    DEFAULT_CONFIG_DRIVE_SKIP_VERSIONS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl GuestFacts {
    /// Nova's defaults with the two inputs that must be injected.
    pub fn new(today: NaiveDate, random_seed: Vec<u8>) -> GuestFacts {
        GuestFacts {
            dhcp_domain: default_dhcp_domain(),
            networks: Vec::new(),
            ports: BTreeMap::new(),
            disk_addresses: BTreeMap::new(),
            vendor_data: default_vendor_data(),
            vendor_data_dynamic: Vec::new(),
            today,
            random_seed,
            floating_ips: Vec::new(),
            requester_address: None,
            dedicated_cpus: Vec::new(),
            key_type: default_key_type(),
            ami_id: None,
            ephemeral_device: None,
            swap_device: None,
            config_drive_skip_versions: default_config_drive_skip_versions(),
        }
    }
}

/// A successful metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Served {
    fn text(body: impl Into<Vec<u8>>) -> Served {
        Served {
            content_type: CONTENT_TYPE_TEXT,
            body: body.into(),
        }
    }
    fn json(v: &Value) -> Served {
        Served {
            content_type: CONTENT_TYPE_JSON,
            body: to_json_bytes(v),
        }
    }
}

/// The path does not exist (HTTP 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// The normalised path that was looked up.
    pub path: String,
}

pub(crate) fn to_json_bytes(v: &Value) -> Vec<u8> {
    // Serialising a Value cannot fail (no non-string keys, no I/O).
    serde_json::to_vec(v).unwrap_or_default()
}

/// The hostname the guest sees: `hostname[.dhcp_domain]`.
pub fn guest_hostname(inst: &Instance, facts: &GuestFacts) -> String {
    if facts.dhcp_domain.is_empty() {
        inst.hostname.clone()
    } else {
        format!("{}.{}", inst.hostname, facts.dhcp_domain)
    }
}

/// Personality files as (`NNNN` key, path, decoded bytes), in order.
pub fn content_files(inst: &Instance) -> Vec<(String, String, Vec<u8>)> {
    inst.personality
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let bytes = openstack::decode_b64(&f.contents)
                .unwrap_or_else(|| f.contents.as_bytes().to_vec());
            (format!("{i:04}"), f.path.clone(), bytes)
        })
        .collect()
}

/// Posix-style normalisation as Python's `posixpath.normpath("/" + p)`:
/// collapses `//` and `.`, resolves `..`, drops the trailing `/`.
pub fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Render a list as Nova's directory listing (newline-joined).
fn listing<S: AsRef<str>>(items: &[S]) -> Served {
    let v: Vec<&str> = items.iter().map(|s| s.as_ref()).collect();
    Served::text(v.join("\n"))
}

/// True when `path` names a password endpoint (`/openstack/<ver>/password`
/// for a version that has one): POSTs there go to [`password_request`].
pub fn is_password_path(path: &str) -> bool {
    let p = normalize_path(path);
    let toks: Vec<&str> = p.split('/').skip(1).collect();
    matches!(toks.as_slice(), ["openstack", ver, "password"]
        if OsVersion::parse(ver).is_some_and(|v| v.at_least(GRIZZLY)))
}

/// Resolve a metadata HTTP GET path for this instance.
///
/// Paths whose first segment is not `openstack` or `ec2` are EC2 paths;
/// `/` lists EC2 versions, `/openstack` lists dated OpenStack versions up
/// to today plus `latest`. `/openstack/<ver>/password` returns the stored
/// password (or an empty body).
pub fn lookup(inst: &Instance, facts: &GuestFacts, path: &str) -> Result<Served, NotFound> {
    let norm = normalize_path(path);
    let mut toks: Vec<&str> = norm.split('/').skip(1).collect();
    if toks.is_empty() {
        toks.push("");
    }
    if toks[0] != "ec2" && toks[0] != "openstack" {
        if toks[0].is_empty() {
            toks = vec!["ec2"];
        } else {
            toks.insert(0, "ec2");
        }
    }
    let nf = || NotFound { path: norm.clone() };
    if toks.len() == 1 {
        if toks[0] == "openstack" {
            let today = facts.today.format("%Y-%m-%d").to_string();
            let mut v: Vec<&str> = OPENSTACK_VERSIONS
                .iter()
                .copied()
                .filter(|v| *v <= today.as_str())
                .collect();
            v.push("latest");
            return Ok(listing(&v));
        }
        let mut v: Vec<&str> = EC2_VERSIONS.to_vec();
        v.push("latest");
        return Ok(listing(&v));
    }
    if toks[0] == "openstack" {
        openstack_item(inst, facts, &toks[1..]).ok_or_else(nf)
    } else {
        let tree = ec2_metadata(inst, facts, toks[1]).ok_or_else(nf)?;
        let node = tree.find(&toks[2..]).ok_or_else(nf)?;
        Ok(Served::text(node.render()))
    }
}

fn openstack_item(inst: &Instance, facts: &GuestFacts, toks: &[&str]) -> Option<Served> {
    if toks[0] == "content" {
        if toks.len() != 2 {
            return None;
        }
        return content_files(inst)
            .into_iter()
            .find(|(k, _, _)| k == toks[1])
            .map(|(_, _, b)| Served::text(b));
    }
    let ver = OsVersion::parse(toks[0])?;
    let file = toks[1..].join("/");
    match file.as_str() {
        "" => Some(listing(&version_listing(inst, ver))),
        "meta_data.json" => Some(Served::json(&meta_data(inst, facts, ver, false))),
        "user_data" => decode_user_data(inst).map(Served::text),
        "password" if ver.at_least(GRIZZLY) => {
            Some(Served::text(stored_password(inst).unwrap_or_default()))
        }
        "vendor_data.json" => vendor_data(facts, ver).map(|v| Served::json(&v)),
        // Nova serves network_data.json as text/plain.
        "network_data.json" if ver.at_least(LIBERTY) => {
            Some(Served::text(to_json_bytes(&network_data(inst, facts))))
        }
        "vendor_data2.json" => vendor_data2(facts, ver).map(|v| Served::json(&v)),
        _ => None,
    }
}

/// What `GET /openstack/<ver>` lists.
pub fn version_listing(inst: &Instance, ver: OsVersion) -> Vec<&'static str> {
    let mut ret = vec!["meta_data.json"];
    if inst.user_data.is_some() {
        ret.push("user_data");
    }
    if ver.at_least(GRIZZLY) {
        ret.push("password");
    }
    if ver.at_least(HAVANA) {
        ret.push("vendor_data.json");
    }
    if ver.at_least(LIBERTY) {
        ret.push("network_data.json");
    }
    if ver.at_least(NEWTON_TWO) {
        ret.push("vendor_data2.json");
    }
    ret
}

/// Every file of the config drive as (relative path, bytes): EC2
/// `ec2/<ver>/meta-data.json` and `user-data` (versions not skipped),
/// `openstack/<ver>/...` for every version and `latest`, and
/// `openstack/content/NNNN`. No password file; `meta_data.json` carries
/// `admin_pass` when the instance has one.
pub fn config_drive_files(inst: &Instance, facts: &GuestFacts) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let ec2_versions = EC2_VERSIONS.iter().copied().chain(["latest"]);
    for ver in ec2_versions {
        if facts.config_drive_skip_versions.iter().any(|s| s == ver) {
            continue;
        }
        let Some(tree) = ec2_metadata(inst, facts, ver) else {
            continue;
        };
        if let Some(Node::Bytes(ud)) = tree.get("user-data") {
            files.push((format!("ec2/{ver}/user-data"), ud.clone()));
        }
        if let Some(md) = tree.get("meta-data") {
            files.push((
                format!("ec2/{ver}/meta-data.json"),
                to_json_bytes(&md.to_json()),
            ));
        }
    }
    let user_data = decode_user_data(inst);
    let os_versions = OPENSTACK_VERSIONS.iter().copied().chain(["latest"]);
    for name in os_versions {
        let Some(ver) = OsVersion::parse(name) else {
            continue;
        };
        let dir = format!("openstack/{name}");
        files.push((
            format!("{dir}/meta_data.json"),
            to_json_bytes(&meta_data(inst, facts, ver, true)),
        ));
        if let Some(ud) = &user_data {
            files.push((format!("{dir}/user_data"), ud.clone()));
        }
        if let Some(v) = vendor_data(facts, ver) {
            files.push((format!("{dir}/vendor_data.json"), to_json_bytes(&v)));
        }
        if ver.at_least(LIBERTY) {
            files.push((
                format!("{dir}/network_data.json"),
                to_json_bytes(&network_data(inst, facts)),
            ));
        }
        if let Some(v) = vendor_data2(facts, ver) {
            files.push((format!("{dir}/vendor_data2.json"), to_json_bytes(&v)));
        }
    }
    for (key, _, bytes) in content_files(inst) {
        files.push((format!("openstack/content/{key}"), bytes));
    }
    files
}
