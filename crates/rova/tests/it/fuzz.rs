//! Request-parser fuzzing through the real router: structured-but-wrong
//! JSON bodies (mutations of valid bodies: wrong types, huge and negative
//! numbers, deep nesting, long and odd strings, nulls, missing and extra
//! keys) and hostile list query strings, sent as the appropriate user to
//! every parser — server create, update and each action, metadata, tags,
//! keypairs, server groups, flavors, quotas, Keystone auth, Glance create
//! and JSON-patch, Neutron networks/subnets/ports/security groups. Every
//! answer must be < 500, carry a JSON error body when it is a 4xx, and come
//! back within a generous bound. Seeded: `ROVA_FUZZ_SEED`, cases per target
//! `ROVA_FUZZ_CASES` (docs/fuzzing.md).

use crate::common::{start_with, TestCloud, User};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Cases per target in the bounded (CI) run.
const CI_CASES: usize = 24;
const DEFAULT_SEED: u64 = 0x005e_ed0f_f022;
/// A request slower than this is a failure (a hang, or work proportional
/// to a number the client chose).
const PER_REQUEST: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The generator.

/// A seeded generator of hostile JSON values, strings and query strings.
pub struct Gen {
    rng: StdRng,
    /// Also produce inputs of bugs known and being fixed elsewhere.
    known: bool,
    keys: Vec<String>,
}

/// A number JSON can spell but `serde_json::Value` cannot hold is carried
/// as a string with this prefix and spliced in raw after serializing.
const RAW: &str = "\u{1}RAW:";

impl Gen {
    pub fn new(seed: u64, known: bool) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            known,
            keys: Vec::new(),
        }
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.gen_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// An odd string: empty, very long, unicode, control characters,
    /// numbers and keywords spelled as strings, paths, injections.
    pub fn string(&mut self) -> String {
        match self.rng.gen_range(0..16) {
            0 => String::new(),
            1 => " ".repeat(self.rng.gen_range(1..4)),
            2 => "a".repeat(*self.pick(&[255, 256, 257, 4096, 65_536])),
            3 => "ünïcødé ☃ 😀 \u{202e}rtl \u{feff}".to_string(),
            4 => "nul\u{0}byte\u{7}\u{1b}[0m".to_string(),
            5 => self
                .pick(&[
                    "null", "true", "false", "None", "-1", "0", "1e309", "NaN", "Infinity",
                ])
                .to_string(),
            6 => self
                .pick(&[
                    "../../etc/passwd",
                    "%s%n%x",
                    "<script>x</script>",
                    "'; DROP TABLE t;--",
                    "${jndi:x}",
                ])
                .to_string(),
            7 => uuid::Uuid::from_u128(self.rng.gen()).to_string(),
            8 => {
                let n = self.rng.gen_range(1..64);
                (0..n)
                    .map(|_| self.rng.gen_range(0x20u8..0x7f) as char)
                    .collect()
            }
            9 => "  padded  \n\t".to_string(),
            10 => self
                .pick(&[
                    "10.0.0.1",
                    "10.0.0.0/33",
                    "fe80::1%eth0",
                    "::",
                    "300.1.1.1",
                    "0.0.0.0/0",
                    "fa:16:3e:zz:00:01",
                ])
                .to_string(),
            11 => self
                .pick(&[
                    "2024-01-01T00:00:00Z",
                    "9999-99-99",
                    "2024-02-30T25:61:61",
                    "-0001-01-01T00:00:00",
                    "1970",
                ])
                .to_string(),
            12 => self
                .pick(&[
                    "SOFT", "HARD", "auto", "none", "public", "private", "ingress", "IPv4",
                ])
                .to_string(),
            13 => {
                let n = self.rng.gen_range(1..200);
                (0..n)
                    .map(|_| char::from_u32(self.rng.gen_range(0x80..0x2_0000)).unwrap_or('?'))
                    .collect()
            }
            14 => "\\u0000\\\"\\\\".to_string(),
            _ => "x".to_string(),
        }
    }

    /// An edge number: huge, negative, fractional, or beyond i64/f64.
    fn number(&mut self) -> Value {
        match self.rng.gen_range(0..14) {
            0 => json!(0),
            1 => json!(-1),
            2 => json!(1),
            3 => json!(i64::MAX),
            4 => json!(i64::MIN),
            5 => json!(u64::MAX),
            6 => json!(2_147_483_648i64),
            7 => json!(-2_147_483_649i64),
            8 => json!(9_007_199_254_740_993i64),
            9 => json!(1.5),
            10 => json!(-0.0),
            11 => json!(1e308),
            12 => json!(self.rng.gen_range(-1000..100_000)),
            _ => Value::String(format!(
                "{RAW}{}",
                self.pick(&[
                    "1e400",
                    "-1e400",
                    "123456789012345678901234567890",
                    "1E2",
                    "-0",
                    "0.0000000000000000000001"
                ])
            )),
        }
    }

    /// A random value of a random type, nested up to `depth`.
    pub fn value(&mut self, depth: u32) -> Value {
        let top = if depth == 0 { 4 } else { 7 };
        match self.rng.gen_range(0..top) {
            0 => Value::Null,
            1 => json!(self.chance(0.5)),
            2 => self.number(),
            3 => Value::String(self.string()),
            4 | 5 => {
                let n = self.rng.gen_range(0..4);
                Value::Array((0..n).map(|_| self.value(depth - 1)).collect())
            }
            _ => {
                let n = self.rng.gen_range(0..4);
                let mut m = Map::new();
                for _ in 0..n {
                    let k = self.key();
                    m.insert(k, self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// A key: one the parser knows (from the valid bases), a sensitive
    /// one, or an odd one.
    fn key(&mut self) -> String {
        const EXTRA: &[&str] = &[
            "id",
            "name",
            "project_id",
            "tenant_id",
            "user_id",
            "host",
            "hypervisor_hostname",
            "adminPass",
            "metadata",
            "networks",
            "uuid",
            "port",
            "fixed_ip",
            "visibility",
            "owner",
            "status",
            "locked",
            "shared",
            "router:external",
            "device_owner",
            "binding:host_id",
            "is_default",
            "return_reservation_id",
            "__proto__",
            "",
            "ÿ",
            "NAME",
        ];
        const KNOWN: &[&str] = &["min_count", "max_count"];
        match self.rng.gen_range(0..10) {
            0..=5 if !self.keys.is_empty() => {
                let i = self.rng.gen_range(0..self.keys.len());
                self.keys[i].clone()
            }
            6 if self.known => self.pick(KNOWN).to_string(),
            6..=8 => self.pick(EXTRA).to_string(),
            _ => self.string(),
        }
    }

    /// Nested arrays/objects `n` deep (beyond serde_json's limit of 128
    /// for large `n`).
    fn deep(&mut self, n: usize) -> Value {
        let mut v = json!(1);
        for i in 0..n {
            v = match i % 2 {
                0 => json!([v]),
                _ => json!({"a": v}),
            };
        }
        v
    }

    /// Applies one to four mutations to `v` at random places.
    pub fn mutate(&mut self, v: &mut Value) {
        self.keys.clear();
        collect_keys(v, &mut self.keys);
        // Mostly one mutation, so most cases get past the outer checks
        // and reach the parsers of single fields.
        let n = *self.pick(&[1, 1, 1, 1, 1, 2, 2, 3, 4]);
        for _ in 0..n {
            let mut ptrs = Vec::new();
            pointers(v, String::new(), &mut ptrs);
            let at = ptrs[self.rng.gen_range(0..ptrs.len())].clone();
            self.mutate_at(v, &at);
        }
    }

    fn mutate_at(&mut self, root: &mut Value, at: &str) {
        let op = self.rng.gen_range(0..12);
        // Removing a key works on the parent.
        if op == 0 && !at.is_empty() {
            let (parent, last) = at.rsplit_once('/').unwrap_or(("", at));
            let last = unescape(last);
            match root.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        let fresh = match op {
            1 | 2 => Some(self.value(2)),
            3 => Some(self.number()),
            4 => Some(Value::String(self.string())),
            5 => Some(Value::Null),
            6 => {
                let d = *self.pick(&[8, 64, 127, 129, 200, 1000]);
                Some(self.deep(d))
            }
            _ => None,
        };
        let Some(node) = root.pointer_mut(at) else {
            return;
        };
        if let Some(f) = fresh {
            *node = f;
            return;
        }
        match op {
            // An extra key, or an extra element.
            7 | 8 => match node {
                Value::Object(m) => {
                    let k = self.key();
                    let v = self.value(1);
                    m.insert(k, v);
                }
                Value::Array(a) => {
                    let v = self.value(1);
                    a.push(v);
                }
                other => *other = json!([other.clone()]),
            },
            // The type flipped while keeping the content.
            9 => {
                *node = match node.take() {
                    Value::String(s) => s
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!([s])),
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(if b { "True".into() } else { "0".into() }),
                    Value::Array(a) => a.into_iter().next().unwrap_or(Value::Null),
                    Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                    Value::Null => json!({}),
                }
            }
            // Wrapped in a list or an object.
            10 => *node = json!([node.take()]),
            _ => *node = json!({ "value": node.take() }),
        }
    }

    /// The body text of one case from a valid base: usually the mutated
    /// base, sometimes an unrelated value or broken text.
    pub fn body(&mut self, base: &Value) -> Vec<u8> {
        // Known-bug inputs (edge is fixing their error bodies): invalid
        // UTF-8 and bodies over the 2 MiB limit.
        if self.known && self.chance(0.03) {
            return match self.chance(0.5) {
                true => b"{\"a\": \"\xff\xfe\xc3\x28\"}".to_vec(),
                false => {
                    let mut v = base.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.insert("pad".into(), json!("x".repeat(2_200_000)));
                    }
                    serialize(&v).into_bytes()
                }
            };
        }
        match self.rng.gen_range(0..20) {
            0 => serialize(&self.value(3)).into_bytes(),
            1 => {
                let text = serialize(base);
                let cut = self.rng.gen_range(0..text.len().max(1));
                text.as_bytes()[..cut].to_vec()
            }
            2 => self
                .pick(&[
                    &b""[..],
                    b"   ",
                    b"null",
                    b"[]",
                    b"{}",
                    b"{\"a\":1,\"a\":2}",
                    b"{'a': 1}",
                    b"\xef\xbb\xbf{}",
                ])
                .to_vec(),
            _ => {
                let mut v = base.clone();
                self.mutate(&mut v);
                serialize(&v).into_bytes()
            }
        }
    }

    /// An `OpenStack-API-Version` value: odd service names, versions out
    /// of range or unparsable (visible ASCII: a header can carry no more).
    pub fn version_header(&mut self) -> String {
        let service = *self.pick(&["compute", "COMPUTE", "volume", "", "compute compute"]);
        let v = match self.rng.gen_range(0..6) {
            0 => format!(
                "{}.{}",
                self.rng.gen_range(0..4),
                self.rng.gen_range(0..200)
            ),
            1 => format!(
                "2.{}",
                self.pick(&["99999999999999999999", "-1", "1.1", "", "x", "0x10", "+5"])
            ),
            2 => self
                .pick(&["latest", "LATEST", "2", ".", "2.", ".1", "2..1"])
                .to_string(),
            3 => format!("{}.{}", u64::MAX, u32::MAX),
            _ => self
                .string()
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(100)
                .collect(),
        };
        format!("{service} {v}")
    }

    /// A hostile query string over the parameter names a list knows.
    pub fn query(&mut self, names: &[&str]) -> String {
        // A URI over the edge's 8 KiB limit (414 in the API's JSON error);
        // under 64 KiB, which is as long as the client can send.
        if self.known && self.chance(0.03) {
            return format!("name={}", "q".repeat(20_000));
        }
        let n = self.rng.gen_range(1..7);
        let mut parts = Vec::new();
        for _ in 0..n {
            let k = match self.rng.gen_range(0..10) {
                0 => self.string().chars().take(200).collect(),
                _ => self.pick(names).to_string(),
            };
            let v = match self.rng.gen_range(0..8) {
                0 => match self.number() {
                    Value::String(s) => s.trim_start_matches(RAW).to_string(),
                    other => other.to_string(),
                },
                1 => self
                    .pick(&["true", "false", "True", "1", "0", "yes", ""])
                    .to_string(),
                2 => uuid::Uuid::from_u128(self.rng.gen()).to_string(),
                _ => self.string().chars().take(2000).collect(),
            };
            let enc: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(&k, &v)
                .finish();
            parts.push(match self.rng.gen_range(0..12) {
                0 => format!("{enc}%zz"),
                1 => format!(
                    "{}%",
                    k.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect::<String>()
                ),
                2 => k.chars().filter(char::is_ascii_alphanumeric).collect(),
                _ => enc,
            });
        }
        parts.join("&")
    }
}

/// A Neutron update body from a create body: without the attributes only
/// a create may set.
fn without_create_only(mut body: Value) -> Value {
    if let Some(inner) = body
        .as_object_mut()
        .and_then(|m| m.values_mut().next())
        .and_then(Value::as_object_mut)
    {
        for k in [
            "network_id",
            "cidr",
            "ip_version",
            "mac_address",
            "fixed_ips",
            "shared",
            "gateway_ip",
            "allocation_pools",
        ] {
            inner.remove(k);
        }
    }
    body
}

fn collect_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                collect_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_keys(x, out)),
        _ => {}
    }
}

/// JSON pointers of every node.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// JSON text with the raw-number markers spliced in.
fn serialize(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    let marker = "\"\\u0001RAW:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i]);
        let after = &rest[i + marker.len()..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&after[..end]);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// Targets.

#[derive(Clone, Copy, PartialEq)]
enum As {
    Member,
    Admin,
    Nobody,
}

enum Input {
    /// JSON bodies mutated from this valid one.
    Body(Value),
    /// A JSON-patch body (Glance's media type).
    Patch(Value),
    /// Query strings over these parameter names.
    Query(&'static [&'static str]),
    /// Odd path segments in place of `{}` in the path.
    Segment,
    /// Odd `OpenStack-API-Version` header values.
    VersionHeader,
}

struct Target {
    name: String,
    method: Method,
    path: String,
    who: As,
    /// Compute microversions to pick from.
    versions: Versions,
    input: Input,
}

/// Compute microversions a target is sent at (`None`: no header).
type Versions = &'static [Option<&'static str>];

const ANY_V: &[Option<&str>] = &[
    None,
    Some("2.1"),
    Some("2.19"),
    Some("2.37"),
    Some("2.57"),
    Some("2.67"),
    Some("2.90"),
    Some("latest"),
];
const V226: &[Option<&str>] = &[Some("2.26"), Some("latest")];
const NO_V: &[Option<&str>] = &[None];

fn t(
    name: &str,
    method: Method,
    path: String,
    who: As,
    versions: Versions,
    input: Input,
) -> Target {
    Target {
        name: name.to_string(),
        method,
        path,
        who,
        versions,
        input,
    }
}

struct Ids {
    server: String,
    /// The bootstrap (public) image: the boot image.
    image: String,
    /// An image of the demo project: the one the patch target edits.
    own_image: String,
    net: String,
    shared_net: String,
    subnet: String,
    port: String,
    sg: String,
    flavor_private: String,
    /// The compute service's id (2.53+ uuid).
    service: String,
    project: String,
    token: String,
    password: String,
}

const SERVER_Q: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "changes-since",
    "changes-before",
    "name",
    "status",
    "flavor",
    "image",
    "ip",
    "ip6",
    "all_tenants",
    "deleted",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "host",
    "node",
    "locked",
    "project_id",
    "tenant_id",
    "user_id",
    "reservation_id",
    "availability_zone",
    "config_drive",
    "key_name",
    "launched_at",
    "terminated_at",
    "power_state",
    "vm_state",
    "task_state",
    "description",
    "hostname",
    "soft_deleted",
    "fields",
    "created_at",
];
const FLAVOR_Q: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "minDisk",
    "minRam",
    "is_public",
];
const IMAGE_Q: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "sort",
    "name",
    "status",
    "visibility",
    "member_status",
    "owner",
    "tag",
    "created_at",
    "updated_at",
    "size_min",
    "size_max",
    "disk_format",
    "container_format",
    "protected",
    "os_hidden",
    "id",
    "minDisk",
    "minRam",
    "server",
    "type",
    "changes-since",
];
const NET_Q: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "page_reverse",
    "fields",
    "id",
    "name",
    "network_id",
    "project_id",
    "tenant_id",
    "shared",
    "router:external",
    "admin_state_up",
    "status",
    "cidr",
    "ip_version",
    "fixed_ips",
    "device_id",
    "device_owner",
    "mac_address",
    "security_group_id",
    "direction",
    "protocol",
    "tags",
    "tags-any",
    "not-tags",
    "description",
];
const MISC_Q: &[&str] = &[
    "limit",
    "marker",
    "user_id",
    "host",
    "hypervisor_hostname_pattern",
    "with_servers",
    "changes-since",
    "changes-before",
    "instance_uuid",
    "migration_type",
    "source_compute",
    "status",
    "all_projects",
    "project_id",
    "sort_key",
    "sort_dir",
    "tenant_id",
    "reserved",
];

fn targets(ids: &Ids) -> Vec<Target> {
    use As::*;
    let srv = &ids.server;
    let c = |p: &str| format!("/compute/v2.1{p}");
    let mut v = vec![
        t(
            "server create",
            Method::POST,
            c("/servers"),
            Member,
            &[None, Some("2.1"), Some("2.19"), Some("2.37")],
            Input::Body(
                json!({"server": {"name": "fz", "imageRef": ids.image, "flavorRef": "1",
                "networks": [{"uuid": ids.shared_net}], "metadata": {"a": "b"},
                "security_groups": [{"name": "default"}], "user_data": "aGVsbG8=",
                "availability_zone": "nova", "key_name": "fz-key", "config_drive": true,
                "accessIPv4": "10.1.1.1", "personality": [{"path": "/etc/motd", "contents": "aGk="}]},
                "os:scheduler_hints": {"same_host": [srv]}}),
            ),
        ),
        t(
            "server create (2.57+)",
            Method::POST,
            c("/servers"),
            Member,
            &[Some("2.57"), Some("2.67"), Some("latest")],
            Input::Body(
                json!({"server": {"name": "fz", "flavorRef": "1", "imageRef": ids.image,
                "networks": [{"uuid": ids.shared_net}], "description": "d", "tags": ["t"],
                "key_name": "fz-key", "user_data": "aGVsbG8=",
                "block_device_mapping_v2": [{"boot_index": 0, "uuid": ids.image, "source_type": "image",
                    "destination_type": "local", "delete_on_termination": true}]},
                "os:scheduler_hints": {"different_host": [srv]}}),
            ),
        ),
        t(
            "server update",
            Method::PUT,
            c(&format!("/servers/{srv}")),
            Member,
            &[Some("2.19"), Some("2.57"), Some("latest")],
            Input::Body(json!({"server": {"name": "fz", "description": "d",
                "accessIPv4": "10.0.0.9", "accessIPv6": "fe80::9"}})),
        ),
        t(
            "metadata merge",
            Method::POST,
            c(&format!("/servers/{srv}/metadata")),
            Member,
            NO_V,
            Input::Body(json!({"metadata": {"k": "v", "k2": "v2"}})),
        ),
        t(
            "metadata replace",
            Method::PUT,
            c(&format!("/servers/{srv}/metadata")),
            Member,
            NO_V,
            Input::Body(json!({"metadata": {"k": "v"}})),
        ),
        t(
            "metadata item",
            Method::PUT,
            c(&format!("/servers/{srv}/metadata/k")),
            Member,
            NO_V,
            Input::Body(json!({"meta": {"k": "v"}})),
        ),
        t(
            "tags replace",
            Method::PUT,
            c(&format!("/servers/{srv}/tags")),
            Member,
            V226,
            Input::Body(json!({"tags": ["a", "b"]})),
        ),
        t(
            "remote console",
            Method::POST,
            c(&format!("/servers/{srv}/remote-consoles")),
            Member,
            &[Some("2.6"), Some("2.8"), Some("latest")],
            Input::Body(json!({"remote_console": {"protocol": "vnc", "type": "novnc"}})),
        ),
        t(
            "keypair create",
            Method::POST,
            c("/os-keypairs"),
            Member,
            &[None, Some("2.2"), Some("2.10"), Some("2.91")],
            Input::Body(json!({"keypair": {"name": "fz-kp"}})),
        ),
        t(
            "server group create",
            Method::POST,
            c("/os-server-groups"),
            Member,
            &[None, Some("2.15")],
            Input::Body(json!({"server_group": {"name": "g", "policies": ["affinity"]}})),
        ),
        t(
            "server group create (2.64+)",
            Method::POST,
            c("/os-server-groups"),
            Member,
            &[Some("2.64"), Some("latest")],
            Input::Body(
                json!({"server_group": {"name": "g", "policy": "anti-affinity",
                "rules": {"max_server_per_host": 2}}}),
            ),
        ),
        t(
            "flavor create",
            Method::POST,
            c("/flavors"),
            Admin,
            &[None, Some("2.55"), Some("latest")],
            Input::Body(
                json!({"flavor": {"name": "fz", "ram": 512, "vcpus": 1, "disk": 1, "id": "fz-1",
                "swap": 0, "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true}}),
            ),
        ),
        t(
            "flavor update",
            Method::PUT,
            c("/flavors/1"),
            Admin,
            &[Some("2.55"), Some("latest")],
            Input::Body(json!({"flavor": {"description": "x"}})),
        ),
        t(
            "flavor extra specs",
            Method::POST,
            c("/flavors/1/os-extra_specs"),
            Admin,
            &[None, Some("2.86")],
            Input::Body(
                json!({"extra_specs": {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}}),
            ),
        ),
        t(
            "flavor access",
            Method::POST,
            c(&format!("/flavors/{}/action", ids.flavor_private)),
            Admin,
            NO_V,
            Input::Body(json!({"addTenantAccess": {"tenant": ids.project}})),
        ),
        t(
            "quota update",
            Method::PUT,
            c(&format!("/os-quota-sets/{}", ids.project)),
            Admin,
            &[None, Some("2.36"), Some("2.57")],
            Input::Body(
                json!({"quota_set": {"instances": 20, "cores": 40, "ram": 51200, "key_pairs": 100,
                "metadata_items": 128, "server_groups": 10, "server_group_members": 10, "force": true}}),
            ),
        ),
        t(
            "nova security group",
            Method::POST,
            c("/os-security-groups"),
            Member,
            &[None],
            Input::Body(json!({"security_group": {"name": "n", "description": "d"}})),
        ),
        t(
            "nova security group rule",
            Method::POST,
            c("/os-security-group-rules"),
            Member,
            &[None],
            Input::Body(
                json!({"security_group_rule": {"parent_group_id": ids.sg, "ip_protocol": "tcp",
                "from_port": 1, "to_port": 2, "cidr": "10.0.0.0/8", "group_id": null}}),
            ),
        ),
        t(
            "external events",
            Method::POST,
            c("/os-server-external-events"),
            Admin,
            &[None, Some("2.76"), Some("latest")],
            Input::Body(
                json!({"events": [{"name": "network-changed", "server_uuid": srv, "tag": "x",
                "status": "completed"}]}),
            ),
        ),
        t(
            "service update",
            Method::PUT,
            c("/os-services/enable"),
            Admin,
            &[None, Some("2.11")],
            Input::Body(json!({"host": "rova-sim-1", "binary": "nova-compute"})),
        ),
        t(
            "service update (2.53+)",
            Method::PUT,
            c(&format!("/os-services/{}", ids.service)),
            Admin,
            &[Some("2.53"), Some("latest")],
            Input::Body(json!({"status": "enabled", "forced_down": false})),
        ),
        t(
            "flavor extra spec item",
            Method::PUT,
            c("/flavors/1/os-extra_specs/hw:cpu_policy"),
            Admin,
            &[None, Some("2.86")],
            Input::Body(json!({"hw:cpu_policy": "shared"})),
        ),
        t(
            "nova security group update",
            Method::PUT,
            c(&format!("/os-security-groups/{}", ids.sg)),
            Member,
            &[None],
            Input::Body(json!({"security_group": {"name": "fz-sg", "description": "d"}})),
        ),
        // ---- Keystone ----
        t(
            "keystone password auth",
            Method::POST,
            "/identity/v3/auth/tokens".to_string(),
            Nobody,
            NO_V,
            Input::Body(
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"name": "Default"}, "password": ids.password}}},
                "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}}),
            ),
        ),
        t(
            "keystone token auth",
            Method::POST,
            "/identity/v3/auth/tokens".to_string(),
            Nobody,
            NO_V,
            Input::Body(
                json!({"auth": {"identity": {"methods": ["token"], "token": {"id": ids.token}},
                "scope": {"project": {"id": ids.project}}}}),
            ),
        ),
        // ---- Glance ----
        t(
            "image create",
            Method::POST,
            "/image/v2/images".to_string(),
            Member,
            NO_V,
            Input::Body(
                json!({"name": "i", "disk_format": "qcow2", "container_format": "bare",
                "visibility": "private", "min_disk": 0, "min_ram": 0, "tags": ["a"], "protected": false,
                "os_distro": "x", "hw_disk_bus": "virtio"}),
            ),
        ),
        t(
            "image patch",
            Method::PATCH,
            format!("/image/v2/images/{}", ids.own_image),
            Member,
            NO_V,
            Input::Patch(json!([
                {"op": "replace", "path": "/name", "value": "n"},
                {"op": "add", "path": "/foo", "value": "bar"},
                {"op": "remove", "path": "/foo"},
                {"op": "replace", "path": "/tags", "value": ["t"]},
                {"op": "replace", "path": "/min_ram", "value": 0}
            ])),
        ),
    ];
    // ---- Neutron ----
    let net_bodies = [
        (
            "networks",
            &ids.net,
            json!({"network": {"name": "n", "admin_state_up": true, "mtu": 1400, "description": "d",
                "port_security_enabled": true, "shared": false}}),
        ),
        (
            "subnets",
            &ids.subnet,
            json!({"subnet": {"network_id": ids.net, "cidr": "10.55.0.0/24", "ip_version": 4,
                "gateway_ip": "10.55.0.1", "allocation_pools": [{"start": "10.55.0.10", "end": "10.55.0.20"}],
                "enable_dhcp": true, "dns_nameservers": ["8.8.8.8"], "name": "s"}}),
        ),
        (
            "ports",
            &ids.port,
            json!({"port": {"network_id": ids.net, "fixed_ips": [{"subnet_id": ids.subnet, "ip_address": "10.66.0.15"}],
                "name": "p", "mac_address": "fa:16:3e:00:00:01", "security_groups": [ids.sg], "admin_state_up": true}}),
        ),
        (
            "security-groups",
            &ids.sg,
            json!({"security_group": {"name": "g", "description": "d", "stateful": true}}),
        ),
    ];
    for (res, id, body) in net_bodies {
        v.push(t(
            &format!("neutron {res} create"),
            Method::POST,
            format!("/network/v2.0/{res}"),
            Member,
            NO_V,
            Input::Body(body.clone()),
        ));
        v.push(t(
            &format!("neutron {res} update"),
            Method::PUT,
            format!("/network/v2.0/{res}/{id}"),
            Member,
            NO_V,
            Input::Body(without_create_only(body)),
        ));
    }
    v.push(t(
        "neutron security-group-rules create",
        Method::POST,
        "/network/v2.0/security-group-rules".to_string(),
        Member,
        NO_V,
        Input::Body(
            json!({"security_group_rule": {"security_group_id": ids.sg, "direction": "ingress",
            "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65535,
            "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null}}),
        ),
    ));
    // ---- server actions, each at microversions where its base is valid ----
    const OLD: &[Option<&str>] = &[None, Some("2.1"), Some("2.5")];
    let member_actions: [(Value, Versions); 27] = [
        (json!({"reboot": {"type": "SOFT"}}), ANY_V),
        (json!({"os-stop": null}), ANY_V),
        (json!({"os-start": null}), ANY_V),
        (json!({"pause": null}), ANY_V),
        (json!({"unpause": null}), ANY_V),
        (json!({"suspend": null}), ANY_V),
        (json!({"resume": null}), ANY_V),
        (
            json!({"lock": {"locked_reason": "r"}}),
            &[Some("2.73"), Some("latest")],
        ),
        (json!({"unlock": null}), ANY_V),
        (json!({"shelve": null}), ANY_V),
        (
            json!({"unshelve": {"availability_zone": "nova"}}),
            &[Some("2.77"), Some("latest")],
        ),
        (
            json!({"rescue": {"adminPass": "p", "rescue_image_ref": ids.image}}),
            ANY_V,
        ),
        (json!({"unrescue": null}), ANY_V),
        (
            json!({"resize": {"flavorRef": "2", "OS-DCF:diskConfig": "AUTO"}}),
            ANY_V,
        ),
        (json!({"confirmResize": null}), ANY_V),
        (json!({"revertResize": null}), ANY_V),
        (
            json!({"rebuild": {"imageRef": ids.image, "name": "r", "adminPass": "p",
                "metadata": {"a": "b"}, "preserve_ephemeral": false, "accessIPv4": "10.0.0.3"}}),
            ANY_V,
        ),
        (
            json!({"rebuild": {"imageRef": ids.image, "description": "d", "key_name": "fz-key",
                "user_data": "aGk=", "hostname": "fz-host1", "trusted_image_certificates": null}}),
            &[Some("2.90"), Some("latest")],
        ),
        (json!({"changePassword": {"adminPass": "p"}}), ANY_V),
        (
            json!({"createImage": {"name": "snap", "metadata": {"a": "b"}}}),
            ANY_V,
        ),
        (
            json!({"createBackup": {"name": "b", "backup_type": "daily", "rotation": 1}}),
            ANY_V,
        ),
        (
            json!({"trigger_crash_dump": null}),
            &[Some("2.17"), Some("latest")],
        ),
        (json!({"os-getConsoleOutput": {"length": 5}}), ANY_V),
        (json!({"addSecurityGroup": {"name": ids.sg}}), ANY_V),
        (json!({"removeSecurityGroup": {"name": ids.sg}}), ANY_V),
        (json!({"os-getVNCConsole": {"type": "novnc"}}), OLD),
        (json!({"os-getSPICEConsole": {"type": "spice-html5"}}), OLD),
    ];
    let admin_actions: [(Value, Versions); 7] = [
        (json!({"os-resetState": {"state": "active"}}), ANY_V),
        (json!({"migrate": null}), ANY_V),
        (
            json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
            &[Some("2.25"), Some("2.57"), Some("latest")],
        ),
        (
            json!({"evacuate": {}}),
            &[Some("2.14"), Some("2.68"), Some("latest")],
        ),
        (json!({"injectNetworkInfo": null}), ANY_V),
        (json!({"shelveOffload": null}), ANY_V),
        (json!({"os-getSerialConsole": {"type": "serial"}}), OLD),
    ];
    let actions = member_actions
        .into_iter()
        .map(|a| (a, Member))
        .chain(admin_actions.into_iter().map(|a| (a, Admin)));
    for ((body, versions), who) in actions {
        let name = body
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        v.push(t(
            &format!("action {name}"),
            Method::POST,
            c(&format!("/servers/{srv}/action")),
            who,
            versions,
            Input::Body(body),
        ));
    }
    // ---- list query strings ----
    type List = (&'static str, String, As, Versions, &'static [&'static str]);
    let lists: [List; 18] = [
        ("servers", c("/servers"), Member, ANY_V, SERVER_Q),
        (
            "servers detail",
            c("/servers/detail"),
            Member,
            ANY_V,
            SERVER_Q,
        ),
        (
            "servers detail (admin)",
            c("/servers/detail"),
            Admin,
            ANY_V,
            SERVER_Q,
        ),
        ("flavors", c("/flavors"), Member, ANY_V, FLAVOR_Q),
        (
            "flavors detail",
            c("/flavors/detail"),
            Admin,
            ANY_V,
            FLAVOR_Q,
        ),
        (
            "compute images",
            c("/images/detail"),
            Member,
            &[None],
            IMAGE_Q,
        ),
        (
            "keypairs",
            c("/os-keypairs"),
            Admin,
            &[None, Some("2.10"), Some("2.35"), Some("latest")],
            MISC_Q,
        ),
        (
            "server groups",
            c("/os-server-groups"),
            Admin,
            ANY_V,
            MISC_Q,
        ),
        (
            "hypervisors",
            c("/os-hypervisors/detail"),
            Admin,
            &[None, Some("2.33"), Some("2.53"), Some("latest")],
            MISC_Q,
        ),
        ("migrations", c("/os-migrations"), Admin, ANY_V, MISC_Q),
        (
            "instance actions",
            c(&format!("/servers/{srv}/os-instance-actions")),
            Member,
            ANY_V,
            MISC_Q,
        ),
        ("limits", c("/limits"), Admin, ANY_V, MISC_Q),
        (
            "glance images",
            "/image/v2/images".to_string(),
            Member,
            NO_V,
            IMAGE_Q,
        ),
        (
            "neutron networks",
            "/network/v2.0/networks".to_string(),
            Member,
            NO_V,
            NET_Q,
        ),
        (
            "neutron subnets",
            "/network/v2.0/subnets".to_string(),
            Member,
            NO_V,
            NET_Q,
        ),
        (
            "neutron ports",
            "/network/v2.0/ports".to_string(),
            Admin,
            NO_V,
            NET_Q,
        ),
        (
            "neutron security groups",
            "/network/v2.0/security-groups".to_string(),
            Member,
            NO_V,
            NET_Q,
        ),
        (
            "neutron security group rules",
            "/network/v2.0/security-group-rules".to_string(),
            Member,
            NO_V,
            NET_Q,
        ),
    ];
    for (name, path, who, versions, names) in lists {
        v.push(t(
            &format!("list {name}"),
            Method::GET,
            path,
            who,
            versions,
            Input::Query(names),
        ));
    }
    // ---- path parameters and the microversion header ----
    let segments = [
        (Method::GET, c("/servers/{}"), Member),
        (
            Method::GET,
            c(&format!("/servers/{srv}/metadata/{{}}")),
            Member,
        ),
        (Method::GET, c("/flavors/{}"), Member),
        (Method::GET, c("/os-keypairs/{}"), Member),
        (Method::GET, c("/os-hypervisors/{}"), Admin),
        (Method::GET, c("/os-quota-sets/{}"), Admin),
        (Method::GET, c("/os-console-auth-tokens/{}"), Admin),
        (
            Method::GET,
            c(&format!("/servers/{srv}/os-instance-actions/{{}}")),
            Member,
        ),
        (Method::DELETE, c("/os-server-groups/{}"), Member),
        (Method::GET, "/image/v2/images/{}".to_string(), Member),
        (Method::GET, "/network/v2.0/ports/{}".to_string(), Member),
        (Method::GET, "/identity/v3/projects/{}".to_string(), Member),
    ];
    for (method, path, who) in segments {
        v.push(t(
            &format!("path {method} {path}"),
            method,
            path,
            who,
            &[Some("latest")],
            Input::Segment,
        ));
    }
    v.push(t(
        "version header",
        Method::GET,
        c("/servers"),
        Member,
        NO_V,
        Input::VersionHeader,
    ));
    v
}

// ---------------------------------------------------------------------------
// Running.

/// Inputs of bugs other engineers are fixing now; skipped unless
/// `ROVA_FUZZ_KNOWN=1` (the lead re-enables them at merge: see
/// docs/fuzzing.md).
fn known_bug(target: &Target, body: &[u8]) -> Option<&'static str> {
    if target.name.starts_with("keystone") {
        let v: Value = serde_json::from_slice(body).ok()?;
        let scope = v.get("auth").and_then(|a| a.get("scope"));
        if !scope.is_some_and(Value::is_object) {
            return Some("unscoped auth (edge)");
        }
    }
    None
}

/// Answers of bugs known and being fixed elsewhere, tolerated unless
/// `ROVA_FUZZ_KNOWN=1`.
fn known_answer(path: &str, status: u16, text: &str) -> Option<&'static str> {
    // No route under /identity/v3 (e.g. `/identity/v3/projects/`):
    // axum's bare 404, not Keystone's JSON error (edge).
    if path.starts_with("/identity/") && status == 404 && text.is_empty() {
        return Some("empty 404 for an unrouted identity path (edge)");
    }
    None
}

struct Outcome {
    sent: usize,
    /// Answers by status code.
    statuses: std::collections::BTreeMap<u16, usize>,
    /// Seconds spent per target.
    time: Vec<(f64, String)>,
    skipped_known: usize,
    /// Answers showing a known bug (tolerated unless ROVA_FUZZ_KNOWN=1).
    known_answers: usize,
    failures: Vec<String>,
}

async fn run_target(
    c: &TestCloud,
    users: &(User, User),
    target: &Target,
    g: &mut Gen,
    cases: usize,
    out: &mut Outcome,
) {
    for case in 0..cases {
        let version = *g.pick(target.versions);
        let (path, body, ct) = match &target.input {
            Input::Body(base) => (target.path.clone(), Some(g.body(base)), "application/json"),
            Input::Patch(base) => {
                let ct = *g.pick(&[
                    "application/openstack-images-v2.1-json-patch",
                    "application/openstack-images-v2.1-json-patch",
                    "application/openstack-images-v2.0-json-patch",
                    "application/json",
                ]);
                (target.path.clone(), Some(g.body(base)), ct)
            }
            Input::Query(names) => (format!("{}?{}", target.path, g.query(names)), None, ""),
            Input::Segment => {
                let seg: String = g.string().chars().take(300).collect();
                let seg = form_urlencoded::byte_serialize(seg.as_bytes()).collect::<String>();
                (target.path.replace("{}", &seg), None, "")
            }
            Input::VersionHeader => (target.path.clone(), None, ""),
        };
        let header = match &target.input {
            Input::VersionHeader => Some(g.version_header()),
            _ => None,
        };
        if let Some(b) = &body {
            if !g.known && known_bug(target, b).is_some() {
                out.skipped_known += 1;
                continue;
            }
        }
        let mut req = c
            .http
            .request(target.method.clone(), format!("{}{path}", c.base));
        match target.who {
            As::Member => req = req.header("X-Auth-Token", &users.0.token),
            As::Admin => req = req.header("X-Auth-Token", &users.1.token),
            As::Nobody => {}
        }
        match (&header, version) {
            (Some(h), _) => req = req.header("OpenStack-API-Version", h.as_str()),
            (None, Some(v)) => req = req.header("OpenStack-API-Version", format!("compute {v}")),
            (None, None) => {}
        }
        if let Some(b) = &body {
            req = req.header("Content-Type", ct).body(b.clone());
        }
        let started = Instant::now();
        let res = tokio::time::timeout(PER_REQUEST, async {
            let r = req.send().await?;
            let status = r.status().as_u16();
            let text = r.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        })
        .await;
        out.sent += 1;
        let repro = || {
            let b = body
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(1500)]).into_owned())
                .unwrap_or_default();
            let p: String = path.chars().take(600).collect();
            format!(
                "[{} case {case}] {} {p} (version {:?}) body: {b}",
                target.name,
                target.method,
                header.clone().or(version.map(|v| format!("compute {v}")))
            )
        };
        let problem = match res {
            Err(_) => Some(format!("no answer within {PER_REQUEST:?}")),
            Ok(Err(e)) => Some(format!("connection failed (a panic in the handler?): {e}")),
            Ok(Ok((status, text))) => {
                *out.statuses.entry(status).or_default() += 1;
                match check(&path, status, &text) {
                    Some(p) if !g.known && known_answer(&path, status, &text).is_some() => {
                        out.known_answers += 1;
                        let _ = p;
                        None
                    }
                    other => other,
                }
            }
        };
        if let Some(p) = problem {
            out.failures.push(format!("{p}\n    {}", repro()));
        }
        if started.elapsed() > PER_REQUEST {
            out.failures
                .push(format!("slow: {:?}\n    {}", started.elapsed(), repro()));
        }
    }
}

/// What is wrong with one answer, if anything.
fn check(path: &str, status: u16, text: &str) -> Option<String> {
    if status >= 500 {
        return Some(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    if !(400..500).contains(&status) {
        return None;
    }
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        return Some(format!(
            "{status} without a JSON object body: {}",
            text.chars().take(300).collect::<String>()
        ));
    };
    if path.starts_with("/compute/") {
        // Nova: one key whose value holds the code and a message.
        let inner = m.values().next();
        let ok = m.len() == 1
            && inner.is_some_and(|i| i["code"] == json!(status) && i["message"].is_string());
        if !ok {
            return Some(format!(
                "{status} without Nova's error shape: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
    }
    None
}

/// Resident memory of this process in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_request_parsers() {
    let cases = env_num("ROVA_FUZZ_CASES").map_or(CI_CASES, |n| n as usize);
    let seed = env_num("ROVA_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let known = std::env::var_os("ROVA_FUZZ_KNOWN").is_none_or(|v| v != "0");
    let only = std::env::var("ROVA_FUZZ_TARGET").ok();
    let c = start_with(|cfg| {
        cfg.sim_hosts = 2;
        cfg.sim_host.vcpus = 4096;
        cfg.sim_host.memory_mb = 1 << 24;
        cfg.sim_host.disk_gb = 1 << 20;
    })
    .await;
    let demo = c.login("demo").await;
    let admin = c.login("admin").await;
    let ids = fuzz_setup(&c, &demo, &admin).await;
    let targets = targets(&ids);
    let rss0 = rss_kib();
    let started = Instant::now();
    let mut out = Outcome {
        sent: 0,
        statuses: Default::default(),
        time: Vec::new(),
        skipped_known: 0,
        known_answers: 0,
        failures: Vec::new(),
    };
    let users = (demo.clone(), admin.clone());
    for (i, target) in targets.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !target.name.contains(o)) {
            continue;
        }
        // One generator per target: a target's cases do not depend on the
        // others (ROVA_FUZZ_TARGET reproduces them alone).
        let mut g = Gen::new(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), known);
        let t0 = Instant::now();
        run_target(&c, &users, target, &mut g, cases, &mut out).await;
        out.time
            .push((t0.elapsed().as_secs_f64(), target.name.clone()));
        // The fuzz server may have been deleted, shelved or broken by a
        // mutated (valid) action; keep it alive for the next target.
        revive(&c, &admin, &ids.server).await;
    }
    // The service still answers after everything.
    let r = c.get(&demo, "/servers", None).await;
    assert_eq!(
        r.status.as_u16(),
        200,
        "service alive after fuzzing: {}",
        r.text
    );
    let grown = rss_kib().saturating_sub(rss0);
    println!(
        "fuzz: seed {seed:#x}, {} targets, {cases} cases each, {} requests sent, {} known-bug inputs skipped, {} known-bug answers tolerated, {} failures, {:.1}s, RSS +{} MiB",
        targets.len(),
        out.sent,
        out.skipped_known,
        out.known_answers,
        out.failures.len(),
        started.elapsed().as_secs_f64(),
        grown / 1024
    );
    println!("fuzz: answers by status {:?}", out.statuses);
    out.time.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "fuzz: slowest targets {:?}",
        &out.time[..out.time.len().min(8)]
    );
    assert!(
        grown < 2 * 1024 * 1024,
        "memory grew by {grown} KiB while fuzzing"
    );
    let shown: Vec<&String> = out.failures.iter().take(40).collect();
    assert!(
        out.failures.is_empty(),
        "{} fuzz failures (first 40):\n{}",
        out.failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Resets the fuzz server to ACTIVE, unlocked (the admin's reset-state).
async fn revive(c: &TestCloud, admin: &User, server: &str) {
    let path = format!("/servers/{server}/action");
    let _ = c.post(admin, &path, None, json!({"unlock": null})).await;
    let _ = c
        .post(
            admin,
            &path,
            None,
            json!({"os-resetState": {"state": "active"}}),
        )
        .await;
}

async fn fuzz_setup(c: &TestCloud, demo: &User, admin: &User) -> Ids {
    let server = c.boot(demo, "fz-vm", None, json!({})).await["id"]
        .as_str()
        .expect("server")
        .to_string();
    let post = |u: &User, path: &str, body: Value| {
        let req = c
            .http
            .post(format!("{}{path}", c.base))
            .header("X-Auth-Token", &u.token)
            .json(&body);
        async move {
            let r = req.send().await.expect("setup request");
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "fuzz setup: {v}");
            v
        }
    };
    post(
        demo,
        "/compute/v2.1/os-keypairs",
        json!({"keypair": {"name": "fz-key"}}),
    )
    .await;
    let image = post(
        demo,
        "/image/v2/images",
        json!({"name": "fz-img", "disk_format": "raw", "container_format": "bare"}),
    )
    .await["id"]
        .as_str()
        .expect("image")
        .to_string();
    let net = post(
        demo,
        "/network/v2.0/networks",
        json!({"network": {"name": "fz-net"}}),
    )
    .await["network"]["id"]
        .as_str()
        .expect("net")
        .to_string();
    let subnet = post(
        demo,
        "/network/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.66.0.0/24", "ip_version": 4}}),
    )
    .await["subnet"]["id"]
        .as_str()
        .expect("subnet")
        .to_string();
    let port = post(
        demo,
        "/network/v2.0/ports",
        json!({"port": {"network_id": net}}),
    )
    .await["port"]["id"]
        .as_str()
        .expect("port")
        .to_string();
    let sg = post(
        demo,
        "/network/v2.0/security-groups",
        json!({"security_group": {"name": "fz-sg"}}),
    )
    .await["security_group"]["id"]
        .as_str()
        .expect("sg")
        .to_string();
    let flavor_private = post(
        admin,
        "/compute/v2.1/flavors",
        json!({"flavor": {"name": "fz-private", "ram": 64, "vcpus": 1, "disk": 1, "os-flavor-access:is_public": false}}),
    )
    .await["flavor"]["id"]
        .as_str()
        .expect("flavor")
        .to_string();
    let svc = c
        .http
        .get(format!("{}/compute/v2.1/os-services", c.base))
        .header("X-Auth-Token", &admin.token)
        .header("OpenStack-API-Version", "compute latest")
        .send()
        .await
        .expect("services");
    let svc: Value = svc.json().await.expect("services body");
    let service = svc["services"][0]["id"]
        .as_str()
        .expect("service id")
        .to_string();
    Ids {
        service,
        server,
        image: c.image_id(),
        own_image: image,
        net,
        shared_net: c.network_id(),
        subnet,
        port,
        sg,
        flavor_private,
        project: demo.project_id.clone(),
        token: demo.token.clone(),
        password: c.passwords.get("demo").cloned().unwrap_or_default(),
    }
}

/// The valid bases really are valid (else every mutation is refused for
/// the same reason and the fuzzer never reaches the fields): each, sent
/// unchanged at each of its microversions, is accepted (2xx, or 409 where
/// the resource already is in that state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_bases_are_accepted() {
    let c = start_with(|cfg| cfg.sim_hosts = 2).await;
    let demo = c.login("demo").await;
    let admin = c.login("admin").await;
    let ids = fuzz_setup(&c, &demo, &admin).await;
    let mut bad = Vec::new();
    for target in targets(&ids) {
        let (base, ct) = match &target.input {
            Input::Body(b) => (b, "application/json"),
            Input::Patch(b) => (b, "application/openstack-images-v2.1-json-patch"),
            Input::Query(_) | Input::Segment | Input::VersionHeader => continue,
        };
        for version in target.versions {
            revive(&c, &admin, &ids.server).await;
            let mut req = c
                .http
                .request(target.method.clone(), format!("{}{}", c.base, target.path))
                .header("Content-Type", ct)
                .body(serialize(base));
            match target.who {
                As::Member => req = req.header("X-Auth-Token", &demo.token),
                As::Admin => req = req.header("X-Auth-Token", &admin.token),
                As::Nobody => {}
            }
            if let Some(v) = version {
                req = req.header("OpenStack-API-Version", format!("compute {v}"));
            }
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            // Refusals that only say the fuzz resources are in that state
            // already (the base is well formed).
            let state = [
                "Duplicate items",
                "not associated",
                "still in use",
                "already",
                "No valid host",
                "must change flavor",
            ]
            .iter()
            .any(|m| text.contains(m));
            if !((200..300).contains(&status) || status == 409 || state) {
                bad.push(format!("{} at {version:?}: {status} {text}", target.name));
            }
        }
    }
    assert!(bad.is_empty(), "fuzz bases refused:\n{}", bad.join("\n"));
}

#[test]
fn generator_is_deterministic_and_hostile() {
    let base = json!({"server": {"name": "x", "flavorRef": "1", "networks": [{"uuid": "u"}]}});
    let run = |seed| {
        let mut g = Gen::new(seed, false);
        (0..50).map(|_| g.body(&base)).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7), "same seed, same cases");
    assert_ne!(run(7), run(8), "another seed, other cases");
    let all = run(7);
    assert!(
        all.iter()
            .any(|b| serde_json::from_slice::<Value>(b).is_err()),
        "some bodies are not JSON"
    );
    assert!(
        all.iter().any(|b| b != &serialize(&base).into_bytes()),
        "mutations change the body"
    );
    // Raw numbers beyond i64/f64 reach the wire as numbers.
    let text = serialize(&json!({"n": format!("{RAW}1e400")}));
    assert_eq!(text, r#"{"n":1e400}"#);
}

#[test]
fn the_oracle_flags_what_it_must() {
    let nova = r#"{"badRequest": {"code": 400, "message": "m"}}"#;
    assert_eq!(check("/compute/v2.1/servers", 400, nova), None);
    assert_eq!(check("/compute/v2.1/servers", 202, ""), None);
    assert!(check("/compute/v2.1/servers", 500, nova).is_some(), "a 5xx");
    assert!(
        check("/compute/v2.1/servers", 400, "").is_some(),
        "a 4xx without a body"
    );
    assert!(
        check("/compute/v2.1/servers", 400, r#"{"code": 400}"#).is_some(),
        "not Nova's shape"
    );
    assert!(check(
        "/compute/v2.1/servers",
        404,
        r#"{"itemNotFound": {"code": 400, "message": "m"}}"#
    )
    .is_some());
    assert_eq!(
        check(
            "/image/v2/images",
            400,
            r#"{"code": "400 Bad Request", "message": "m"}"#
        ),
        None
    );
    assert!(check("/identity/v3/x", 404, "").is_some());
    assert!(known_answer("/identity/v3/x", 404, "").is_some());
    assert!(known_answer("/compute/v2.1/x", 404, "").is_none());
}
