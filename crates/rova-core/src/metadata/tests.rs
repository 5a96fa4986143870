//! Unit tests for the metadata trees, path lookup, config drive files and
//! password rules.

use super::*;
use crate::model::{BlockDeviceMapping, FixedIp, FlavorSnapshot, InjectedFile, Vif};
use crate::states::{PowerState, VmState};
use base64::Engine;
use chrono::{TimeZone, Utc};
use serde_json::json;

const UUID: &str = "11111111-2222-4333-8444-555555555555";
const PORT: &str = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff";
const NET: &str = "net-1";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn inst() -> Instance {
    let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    Instance {
        id: 42,
        uuid: UUID.into(),
        display_name: "Test VM".into(),
        display_description: None,
        project_id: "proj1".into(),
        user_id: "user1".into(),
        image_ref: "img-uuid-1".into(),
        flavor: FlavorSnapshot {
            id: "1".into(),
            name: "m1.tiny".into(),
            vcpus: 1,
            ram: 512,
            disk: 1,
            ..Default::default()
        },
        vm_state: VmState::Active,
        task_state: None,
        power_state: PowerState::Running,
        progress: 0,
        host: Some("host1".into()),
        node: Some("node1".into()),
        availability_zone: Some("nova".into()),
        pinned_availability_zone: None,
        hostname: "test-vm".into(),
        key_name: None,
        key_data: None,
        user_data: None,
        config_drive: true,
        access_ip_v4: None,
        access_ip_v6: None,
        auto_disk_config: false,
        metadata: BTreeMap::new(),
        system_metadata: BTreeMap::new(),
        tags: vec![],
        locked_by: None,
        locked_reason: None,
        launch_index: 0,
        reservation_id: "r-abcd1234".into(),
        kernel_id: String::new(),
        ramdisk_id: String::new(),
        root_device_name: Some("/dev/vda".into()),
        created_at: t,
        updated_at: t,
        launched_at: None,
        terminated_at: None,
        deleted_at: None,
        deleted: false,
        vifs: vec![Vif {
            port_id: PORT.into(),
            network_id: NET.into(),
            network_label: "private".into(),
            mac: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![
                FixedIp {
                    address: "fd00::5".into(),
                    version: 6,
                    subnet_id: "sub6".into(),
                    floating_ips: Vec::new(),
                },
                FixedIp {
                    address: "10.0.0.5".into(),
                    version: 4,
                    subnet_id: "sub4".into(),
                    floating_ips: Vec::new(),
                },
            ],
            tag: None,
            created_by_nova: true,
        }],
        security_groups: vec!["default".into(), "web".into()],
        fault: None,
        scheduler_hints: BTreeMap::new(),
        block_device_mapping: vec![],
        personality: vec![],
        admin_pass: None,
        trusted_image_certificates: None,
        server_groups: vec![],
        image_properties: BTreeMap::new(),
        generation: 0,
        op_owner: None,
        resize_hold: None,
    }
}

fn subnet4(dhcp: bool) -> SubnetFact {
    SubnetFact {
        id: "sub4".into(),
        cidr: "10.0.0.0/24".into(),
        ip_version: 4,
        gateway: Some("10.0.0.1".into()),
        dhcp,
        ipv6_address_mode: None,
        dns: vec!["8.8.8.8".into()],
        routes: vec![("192.168.0.0/16".into(), "10.0.0.254".into())],
    }
}

fn subnet6() -> SubnetFact {
    SubnetFact {
        id: "sub6".into(),
        cidr: "fd00::/64".into(),
        ip_version: 6,
        gateway: Some("fd00::1".into()),
        dhcp: false,
        ipv6_address_mode: Some("slaac".into()),
        dns: vec!["8.8.8.8".into(), "fd00::53".into()],
        routes: vec![],
    }
}

fn facts() -> GuestFacts {
    let mut f = GuestFacts::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), vec![7u8; 512]);
    f.networks = vec![NetFact {
        network_id: NET.into(),
        mtu: Some(1450),
        subnets: vec![subnet4(false), subnet6()],
    }];
    f
}

fn get(i: &Instance, f: &GuestFacts, path: &str) -> Served {
    lookup(i, f, path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

fn get_text(i: &Instance, f: &GuestFacts, path: &str) -> String {
    String::from_utf8(get(i, f, path).body).unwrap()
}

fn get_json(i: &Instance, f: &GuestFacts, path: &str) -> Value {
    serde_json::from_slice(&get(i, f, path).body).unwrap()
}

fn os(v: &str) -> OsVersion {
    OsVersion::parse(v).unwrap()
}

// ---- versions ----

#[test]
fn metadata_versions_parse_and_gate() {
    assert_eq!(os("latest"), os("2025-04-04"));
    assert_eq!(os("latest").name(), "2025-04-04");
    assert!(OsVersion::parse("2014-01-01").is_none());
    assert!(os("2013-04-04").at_least(GRIZZLY));
    assert!(!os("2012-08-10").at_least(GRIZZLY));
    assert!(!os("2013-04-04").at_least("not-a-version"));
}

// ---- meta_data.json ----

#[test]
fn metadata_meta_data_always_present_keys() {
    let (i, f) = (inst(), facts());
    let md = meta_data(&i, &f, os("2012-08-10"), false);
    assert_eq!(md["uuid"], UUID);
    assert_eq!(md["name"], "Test VM");
    assert_eq!(md["hostname"], "test-vm.novalocal");
    assert_eq!(md["launch_index"], 0);
    assert_eq!(md["availability_zone"], "nova");
    for absent in [
        "meta",
        "files",
        "public_keys",
        "keys",
        "admin_pass",
        "random_seed",
        "project_id",
        "devices",
        "dedicated_cpus",
    ] {
        assert!(md.get(absent).is_none(), "{absent} present in Folsom");
    }
}

#[test]
fn metadata_meta_data_hostname_without_domain() {
    let mut f = facts();
    f.dhcp_domain.clear();
    assert_eq!(
        meta_data(&inst(), &f, os("latest"), false)["hostname"],
        "test-vm"
    );
}

#[test]
fn metadata_meta_data_version_gating() {
    let (i, f) = (inst(), facts());
    let has = |v: &str, k: &str| meta_data(&i, &f, os(v), false).get(k).is_some();
    assert!(!has("2012-08-10", "random_seed"));
    assert!(has("2013-04-04", "random_seed"));
    assert!(!has("2013-10-17", "project_id"));
    assert!(has("2015-10-15", "project_id"));
    assert!(!has("2015-10-15", "devices"));
    assert!(has("2016-06-30", "devices"));
    assert!(!has("2018-08-27", "dedicated_cpus"));
    assert!(has("2020-10-14", "dedicated_cpus"));
    let md = meta_data(&i, &f, os("latest"), false);
    assert_eq!(md["project_id"], "proj1");
    assert_eq!(md["devices"], json!([]));
    assert_eq!(md["dedicated_cpus"], json!([]));
    let seed = base64::engine::general_purpose::STANDARD
        .decode(md["random_seed"].as_str().unwrap())
        .unwrap();
    assert_eq!(seed, vec![7u8; 512]);
}

#[test]
fn metadata_meta_data_meta_keys_files() {
    let mut i = inst();
    i.metadata.insert("role".into(), "web".into());
    i.key_name = Some("mykey".into());
    i.key_data = Some("ssh-ed25519 AAAA test@host".into());
    i.personality = vec![
        InjectedFile {
            path: "/etc/motd".into(),
            contents: b64(b"hello\n"),
        },
        InjectedFile {
            path: "/root/x".into(),
            contents: b64(&[0, 255, 1]),
        },
    ];
    let md = meta_data(&i, &facts(), os("latest"), false);
    assert_eq!(md["meta"], json!({"role": "web"}));
    assert_eq!(
        md["public_keys"],
        json!({"mykey": "ssh-ed25519 AAAA test@host"})
    );
    assert_eq!(
        md["keys"],
        json!([{"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAA test@host"}])
    );
    assert_eq!(
        md["files"],
        json!([
            {"path": "/etc/motd", "content_path": "/content/0000"},
            {"path": "/root/x", "content_path": "/content/0001"}
        ])
    );
    let f = facts();
    assert_eq!(get(&i, &f, "/openstack/content/0000").body, b"hello\n");
    assert_eq!(get(&i, &f, "/openstack/content/0001").body, vec![0, 255, 1]);
    assert!(lookup(&i, &f, "/openstack/content").is_err());
    assert!(lookup(&i, &f, "/openstack/content/0002").is_err());
}

#[test]
fn admin_pass_is_never_serialised() {
    let mut i = inst();
    i.admin_pass = Some("Sekrit-pw-1".into());
    let body = serde_json::to_string(&i).expect("json");
    assert!(!body.contains("Sekrit-pw-1"), "{body}");
    let back: Instance = serde_json::from_str(&body).expect("reads back");
    assert_eq!(back.admin_pass, None);
}

#[test]
fn metadata_admin_pass_only_on_config_drive() {
    let mut i = inst();
    i.admin_pass = Some("s3cret".into());
    let f = facts();
    assert_eq!(
        meta_data(&i, &f, os("latest"), true)["admin_pass"],
        "s3cret"
    );
    assert!(meta_data(&i, &f, os("latest"), false)
        .get("admin_pass")
        .is_none());
    assert!(get_json(&i, &f, "/openstack/latest/meta_data.json")
        .get("admin_pass")
        .is_none());
}

#[test]
fn metadata_devices_tagged_nics_and_disks() {
    let mut i = inst();
    i.vifs[0].tag = Some("nic1".into());
    i.block_device_mapping = vec![BlockDeviceMapping {
        source_type: Some("volume".into()),
        destination_type: Some("volume".into()),
        uuid: Some("vol-1".into()),
        device_name: Some("/dev/vdb".into()),
        tag: Some("data".into()),
        ..Default::default()
    }];
    let mut f = facts();
    f.ports.insert(
        PORT.into(),
        PortFact {
            address: Some(DeviceAddress {
                bus: "pci".into(),
                address: "0000:00:03.0".into(),
            }),
            vlan: Some(100),
            ..Default::default()
        },
    );
    f.dedicated_cpus = vec![5, 1, 3];
    let md = meta_data(&i, &f, os("latest"), false);
    assert_eq!(
        md["devices"],
        json!([
            {"type": "nic", "bus": "pci", "address": "0000:00:03.0",
             "mac": "fa:16:3e:00:00:01", "tags": ["nic1"], "vlan": 100, "vf_trusted": false},
            {"type": "disk", "bus": "none", "address": "none", "serial": "vol-1",
             "path": "/dev/vdb", "tags": ["data"]}
        ])
    );
    assert_eq!(md["dedicated_cpus"], json!([1, 3, 5]));
    // Newton: no vlan, no vf_trusted.
    let newton = meta_data(&i, &f, os("2016-06-30"), false);
    assert!(newton["devices"][0].get("vlan").is_none());
    assert!(newton["devices"][0].get("vf_trusted").is_none());
    // Ocata: vlan but no vf_trusted.
    let ocata = meta_data(&i, &f, os("2017-02-22"), false);
    assert_eq!(ocata["devices"][0]["vlan"], 100);
    assert!(ocata["devices"][0].get("vf_trusted").is_none());
}

#[test]
fn metadata_untagged_nic_not_in_devices() {
    let md = meta_data(&inst(), &facts(), os("latest"), false);
    assert_eq!(md["devices"], json!([]));
}

// ---- network_data.json ----

#[test]
fn metadata_network_data_static() {
    let nd = network_data(&inst(), &facts());
    assert_eq!(
        nd["links"],
        json!([{"id": "tapa1b2c3d4-e5", "vif_id": PORT, "type": "ovs", "mtu": 1450,
                "ethernet_mac_address": "fa:16:3e:00:00:01"}])
    );
    assert_eq!(
        nd["networks"][0],
        json!({"id": "network0", "type": "ipv4", "link": "tapa1b2c3d4-e5",
               "ip_address": "10.0.0.5", "netmask": "255.255.255.0",
               "routes": [
                   {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                   {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"}
               ],
               "network_id": NET,
               "services": [{"type": "dns", "address": "8.8.8.8"}]})
    );
    assert_eq!(
        nd["networks"][1],
        json!({"id": "network1", "type": "ipv6_slaac", "link": "tapa1b2c3d4-e5",
               "ip_address": "fd00::5", "netmask": "ffff:ffff:ffff:ffff::",
               "routes": [{"network": "::", "netmask": "::", "gateway": "fd00::1"}],
               "network_id": NET,
               "services": [{"type": "dns", "address": "8.8.8.8"},
                            {"type": "dns", "address": "fd00::53"}]})
    );
    // Deduplicated services.
    assert_eq!(
        nd["services"],
        json!([{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "fd00::53"}])
    );
}

#[test]
fn metadata_network_data_dhcp_and_fallbacks() {
    let mut f = facts();
    f.networks[0].subnets = vec![subnet4(true)];
    let mut port = PortFact {
        devname: Some("eth-x".into()),
        vif_type: Some("macvtap".into()),
        ..Default::default()
    };
    f.ports.insert(PORT.into(), port.clone());
    let nd = network_data(&inst(), &f);
    assert_eq!(nd["links"][0]["mtu"], Value::Null);
    assert_eq!(nd["links"][0]["id"], "eth-x");
    assert_eq!(nd["links"][0]["type"], "phy");
    assert_eq!(
        nd["networks"],
        json!([{"id": "network0", "type": "ipv4_dhcp", "link": "eth-x", "network_id": NET}])
    );
    assert_eq!(
        nd["services"],
        json!([{"type": "dns", "address": "8.8.8.8"}])
    );
    // Subnet ids unknown: the address is matched by cidr.
    port.devname = None;
    f.ports.insert(PORT.into(), port);
    let mut i = inst();
    for ip in &mut i.vifs[0].fixed_ips {
        ip.subnet_id.clear();
    }
    let nd = network_data(&i, &f);
    assert_eq!(nd["networks"].as_array().unwrap().len(), 1);
    // No VIFs at all: {}.
    i.vifs.clear();
    assert_eq!(network_data(&i, &f), json!({}));
    // VIF on an unknown network: skipped.
    let mut f2 = facts();
    f2.networks.clear();
    assert_eq!(
        network_data(&inst(), &f2),
        json!({"links": [], "networks": [], "services": []})
    );
}

// ---- user data ----

#[test]
fn metadata_user_data_byte_for_byte() {
    let raw: Vec<u8> = (0u8..=255)
        .chain(b"#!/bin/sh\necho hi\n".iter().copied())
        .collect();
    let mut i = inst();
    let f = facts();
    assert!(lookup(&i, &f, "/openstack/latest/user_data").is_err());
    assert!(lookup(&i, &f, "/latest/user-data").is_err());
    i.user_data = Some(b64(&raw));
    let s = get(&i, &f, "/openstack/latest/user_data");
    assert_eq!(s.content_type, CONTENT_TYPE_TEXT);
    assert_eq!(s.body, raw);
    assert_eq!(get(&i, &f, "/openstack/2012-08-10/user_data").body, raw);
    assert_eq!(get(&i, &f, "/2009-04-04/user-data").body, raw);
    assert_eq!(get(&i, &f, "/latest/user-data").body, raw);
    assert_eq!(get(&i, &f, "/ec2/latest/user-data").body, raw);
}

#[test]
fn metadata_user_data_lenient_base64() {
    let mut i = inst();
    i.user_data = Some("aGVs\nbG8".into());
    assert_eq!(decode_user_data(&i).unwrap(), b"hello");
}

// ---- lookup: listings, content types, 404s ----

#[test]
fn metadata_lookup_root_and_version_listings() {
    let mut i = inst();
    let f = facts();
    assert_eq!(
        get_text(&i, &f, "/"),
        "1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n\
         2008-02-01\n2008-09-01\n2009-04-04\nlatest"
    );
    assert_eq!(get_text(&i, &f, ""), get_text(&i, &f, "/"));
    let all = OPENSTACK_VERSIONS.join("\n") + "\nlatest";
    assert_eq!(get_text(&i, &f, "/openstack"), all);
    assert_eq!(get_text(&i, &f, "/openstack/"), all);
    // Future versions hidden from the listing but still served.
    let mut old = facts();
    old.today = NaiveDate::from_ymd_opt(2021, 1, 1).unwrap();
    let listed = get_text(&i, &old, "/openstack");
    assert!(!listed.contains("2025-04-04"));
    assert!(listed.ends_with("2020-10-14\nlatest"));
    assert!(lookup(&i, &old, "/openstack/2025-04-04/meta_data.json").is_ok());

    assert_eq!(get_text(&i, &f, "/openstack/2012-08-10"), "meta_data.json");
    assert_eq!(
        get_text(&i, &f, "/openstack/2013-04-04"),
        "meta_data.json\npassword"
    );
    i.user_data = Some(b64(b"x"));
    assert_eq!(
        get_text(&i, &f, "/openstack/latest/"),
        "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
    );
}

#[test]
fn metadata_lookup_content_types() {
    let (i, f) = (inst(), facts());
    let ct = |p: &str| get(&i, &f, p).content_type;
    assert_eq!(ct("/openstack/latest/meta_data.json"), CONTENT_TYPE_JSON);
    assert_eq!(ct("/openstack/latest/vendor_data.json"), CONTENT_TYPE_JSON);
    assert_eq!(ct("/openstack/latest/vendor_data2.json"), CONTENT_TYPE_JSON);
    assert_eq!(ct("/openstack/latest/network_data.json"), CONTENT_TYPE_TEXT);
    assert_eq!(ct("/openstack/latest"), CONTENT_TYPE_TEXT);
    assert_eq!(ct("/openstack/latest/password"), CONTENT_TYPE_TEXT);
    assert_eq!(ct("/latest/meta-data/instance-id"), CONTENT_TYPE_TEXT);
    assert_eq!(ct("/"), CONTENT_TYPE_TEXT);
    let md = get_json(&i, &f, "//openstack/./latest/../latest/meta_data.json");
    assert_eq!(md["uuid"], UUID);
}

#[test]
fn metadata_lookup_not_found() {
    let (i, f) = (inst(), facts());
    for p in [
        "/openstack/2014-01-01/meta_data.json",
        "/openstack/2099-01-01",
        "/openstack/latest/nope",
        "/openstack/2012-08-10/password",
        "/openstack/2013-04-04/vendor_data.json",
        "/openstack/2013-10-17/network_data.json",
        "/openstack/2016-06-30/vendor_data2.json",
        "/2010-01-01/meta-data",
        "/latest/meta-data/nope",
        "/latest/meta-data/instance-id/extra",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/foo",
    ] {
        let e = lookup(&i, &f, p).expect_err(p);
        assert!(!e.path.is_empty());
    }
}

#[test]
fn metadata_vendor_data() {
    let i = inst();
    let mut f = facts();
    assert_eq!(
        get_json(&i, &f, "/openstack/latest/vendor_data.json"),
        json!({})
    );
    assert_eq!(
        get_json(&i, &f, "/openstack/latest/vendor_data2.json"),
        json!({"static": {}})
    );
    f.vendor_data = Some(json!({"a": 1}));
    f.vendor_data_dynamic = vec![
        ("dyn".into(), json!({"b": 2})),
        ("static".into(), json!("dropped")),
    ];
    assert_eq!(
        get_json(&i, &f, "/openstack/latest/vendor_data2.json"),
        json!({"static": {"a": 1}, "dyn": {"b": 2}})
    );
    f.vendor_data = None;
    assert!(lookup(&i, &f, "/openstack/latest/vendor_data.json").is_err());
    assert_eq!(
        get_json(&i, &f, "/openstack/latest/vendor_data2.json"),
        json!({"dyn": {"b": 2}, "static": "dropped"})
    );
}

// ---- EC2 ----

#[test]
fn metadata_ec2_keys() {
    let mut i = inst();
    i.key_name = Some("mykey".into());
    i.key_data = Some("ssh-rsa AAAB k@h".into());
    i.launch_index = 3;
    let mut f = facts();
    f.floating_ips = vec!["203.0.113.9".into()];
    let t = |p: &str| get_text(&i, &f, p);
    assert_eq!(t("/2009-04-04/meta-data/instance-id"), "i-0000002a");
    assert_eq!(t("/latest/meta-data/local-ipv4"), "10.0.0.5");
    assert_eq!(t("/latest/meta-data/public-ipv4"), "203.0.113.9");
    assert_eq!(t("/latest/meta-data/hostname"), "test-vm.novalocal");
    assert_eq!(t("/latest/meta-data/local-hostname"), "test-vm.novalocal");
    assert_eq!(t("/latest/meta-data/ami-launch-index"), "3");
    assert_eq!(t("/latest/meta-data/ami-manifest-path"), "FIXME");
    assert_eq!(t("/latest/meta-data/instance-type"), "m1.tiny");
    assert_eq!(t("/latest/meta-data/instance-action"), "none");
    assert_eq!(t("/latest/meta-data/reservation-id"), "r-abcd1234");
    assert_eq!(t("/latest/meta-data/security-groups"), "default\nweb");
    assert_eq!(t("/latest/meta-data/placement/availability-zone"), "nova");
    assert_eq!(t("/latest/meta-data/placement"), "availability-zone");
    assert_eq!(t("/latest/meta-data/public-keys"), "0=mykey");
    assert_eq!(t("/latest/meta-data/public-keys/0"), "openssh-key");
    assert_eq!(
        t("/latest/meta-data/public-keys/0/openssh-key"),
        "ssh-rsa AAAB k@h"
    );
    assert_eq!(t("/latest/meta-data/block-device-mapping"), "ami\nroot");
    assert_eq!(t("/latest/meta-data/block-device-mapping/ami"), "vda");
    assert_eq!(t("/latest/meta-data/block-device-mapping/root"), "/dev/vda");
    assert_eq!(
        t("/latest/meta-data/ami-id"),
        ec2_style_id("ami", "img-uuid-1")
    );
    assert!(t("/latest/meta-data/ami-id").starts_with("ami-"));
    assert_eq!(t("/latest/meta-data/ami-id").len(), 12);
    assert_eq!(t("/2009-04-04"), "meta-data/");
    let listing = t("/latest/meta-data/");
    assert_eq!(
        listing,
        "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\n\
         instance-action\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\n\
         placement/\npublic-hostname\npublic-ipv4\npublic-keys/\nreservation-id\nsecurity-groups"
    );
}

#[test]
fn metadata_ec2_version_gating_and_fallbacks() {
    let mut i = inst();
    i.kernel_id = "k-1".into();
    i.vifs.clear();
    let mut f = facts();
    f.requester_address = Some("169.254.2.15".into());
    let t = |p: &str| get_text(&i, &f, p);
    assert_eq!(t("/1.0/meta-data/local-ipv4"), "169.254.2.15");
    assert_eq!(t("/latest/meta-data/public-ipv4"), "");
    for absent in [
        "local-hostname",
        "instance-type",
        "block-device-mapping",
        "placement",
        "instance-action",
        "kernel-id",
    ] {
        assert!(lookup(&i, &f, &format!("/1.0/meta-data/{absent}")).is_err());
    }
    assert!(lookup(&i, &f, "/2007-10-10/meta-data/instance-type").is_ok());
    assert!(lookup(&i, &f, "/2007-10-10/meta-data/kernel-id").is_err());
    assert!(t("/2007-12-15/meta-data/kernel-id").starts_with("aki-"));
    assert!(lookup(&i, &f, "/2007-12-15/meta-data/ramdisk-id").is_err());
    assert!(lookup(&i, &f, "/2008-02-01/meta-data/instance-action").is_err());
    assert!(lookup(&i, &f, "/latest/meta-data/public-keys").is_err());
    // No root device name: Nova's default mapping.
    i.root_device_name = None;
    assert_eq!(
        get_text(&i, &f, "/latest/meta-data/block-device-mapping"),
        "ami\nephemeral0\nroot\nswap"
    );
}

// ---- config drive ----

#[test]
fn metadata_config_drive_files() {
    let mut i = inst();
    i.user_data = Some(b64(b"#!/bin/sh\necho ok\n"));
    i.admin_pass = Some("pw".into());
    i.key_name = Some("k".into());
    i.key_data = Some("ssh-ed25519 K".into());
    i.personality = vec![InjectedFile {
        path: "/etc/x".into(),
        contents: b64(b"X"),
    }];
    let f = facts();
    let files = config_drive_files(&i, &f);
    let map: BTreeMap<&str, &Vec<u8>> = files.iter().map(|(p, b)| (p.as_str(), b)).collect();
    assert_eq!(map.len(), files.len(), "duplicate paths");
    let ec2: Vec<&str> = map
        .keys()
        .copied()
        .filter(|p| p.starts_with("ec2/"))
        .collect();
    assert_eq!(
        ec2,
        [
            "ec2/2009-04-04/meta-data.json",
            "ec2/2009-04-04/user-data",
            "ec2/latest/meta-data.json",
            "ec2/latest/user-data"
        ]
    );
    assert!(!map.keys().any(|p| p.ends_with("/password")));
    assert_eq!(map["openstack/content/0000"].as_slice(), b"X");
    assert_eq!(
        map["openstack/latest/user_data"].as_slice(),
        b"#!/bin/sh\necho ok\n"
    );
    assert_eq!(
        map["ec2/latest/user-data"].as_slice(),
        b"#!/bin/sh\necho ok\n"
    );
    for v in OPENSTACK_VERSIONS.iter().chain(&["latest"]) {
        let md: Value =
            serde_json::from_slice(map[format!("openstack/{v}/meta_data.json").as_str()]).unwrap();
        assert_eq!(md["uuid"], UUID);
        assert_eq!(md["admin_pass"], "pw");
        let ver = os(v);
        let p = |f: &str| format!("openstack/{v}/{f}");
        assert_eq!(
            map.contains_key(p("vendor_data.json").as_str()),
            ver.at_least(HAVANA)
        );
        assert_eq!(
            map.contains_key(p("network_data.json").as_str()),
            ver.at_least(LIBERTY)
        );
        assert_eq!(
            map.contains_key(p("vendor_data2.json").as_str()),
            ver.at_least(NEWTON_TWO)
        );
    }
    let nd: Value = serde_json::from_slice(map["openstack/latest/network_data.json"]).unwrap();
    assert_eq!(nd, network_data(&i, &f));
    let ec2md: Value = serde_json::from_slice(map["ec2/latest/meta-data.json"]).unwrap();
    assert_eq!(ec2md["instance-id"], "i-0000002a");
    assert_eq!(ec2md["ami-launch-index"], 0);
    assert_eq!(
        ec2md["public-keys"],
        json!({"0": {"openssh-key": "ssh-ed25519 K"}})
    );
    assert_eq!(ec2md["security-groups"], json!(["default", "web"]));
    assert_eq!(ec2md["placement"], json!({"availability-zone": "nova"}));
    // Without user data there is no user-data / user_data file.
    i.user_data = None;
    let files = config_drive_files(&i, &f);
    assert!(!files
        .iter()
        .any(|(p, _)| p.ends_with("user-data") || p.ends_with("user_data")));
    // With no skipped versions every EC2 version appears.
    let mut all = facts();
    all.config_drive_skip_versions.clear();
    let n = config_drive_files(&i, &all)
        .iter()
        .filter(|(p, _)| p.starts_with("ec2/") && p.ends_with("meta-data.json"))
        .count();
    assert_eq!(n, EC2_VERSIONS.len() + 1);
}

// ---- password ----

#[test]
fn metadata_password_endpoint() {
    let mut i = inst();
    assert!(is_password_path("/openstack/latest/password"));
    assert!(is_password_path("/openstack/2013-04-04/password/"));
    assert!(!is_password_path("/openstack/2012-08-10/password"));
    assert!(!is_password_path("/latest/password"));
    assert_eq!(
        password_request(&i, "GET", b""),
        PasswordOutcome::Ok(String::new())
    );
    assert_eq!(get(&i, &facts(), "/openstack/latest/password").body, b"");
    assert_eq!(
        password_request(&i, "PUT", b"x"),
        PasswordOutcome::BadRequest("GET and POST only are supported.")
    );
    let too_big = vec![b'a'; PASSWORD_MAX_SIZE + 1];
    assert_eq!(
        password_request(&i, "POST", &too_big),
        PasswordOutcome::BadRequest("Request is too large.")
    );
    let body: String = (0..PASSWORD_MAX_SIZE)
        .map(|n| char::from(b'a' + (n % 26) as u8))
        .collect();
    let PasswordOutcome::Store(chunks) = password_request(&i, "POST", body.as_bytes()) else {
        panic!("expected Store");
    };
    assert_eq!(chunks.len(), 4);
    for k in 0..4 {
        assert_eq!(chunks[&format!("password_{k}")].len(), 255);
    }
    i.system_metadata.extend(chunks);
    i.system_metadata.insert("image_min_ram".into(), "0".into());
    assert_eq!(stored_password(&i).as_deref(), Some(body.as_str()));
    assert_eq!(get_text(&i, &facts(), "/openstack/latest/password"), body);
    assert_eq!(
        password_request(&i, "POST", b"new"),
        PasswordOutcome::Conflict
    );
    // Clearing writes empty chunks; then the guest may POST again.
    i.system_metadata.extend(password_chunks(""));
    assert_eq!(stored_password(&i), None);
    let PasswordOutcome::Store(short) = password_request(&i, "POST", b"enc") else {
        panic!("expected Store");
    };
    assert_eq!(short["password_0"], "enc");
    assert_eq!(short["password_3"], "");
}

#[test]
fn metadata_path_normalisation() {
    assert_eq!(normalize_path(""), "/");
    assert_eq!(normalize_path("openstack/"), "/openstack");
    assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d");
    assert_eq!(normalize_path("/../.."), "/");
}

#[test]
fn metadata_netmask_helpers() {
    assert_eq!(network::netmask(true, 0), "0.0.0.0");
    assert_eq!(network::netmask(true, 32), "255.255.255.255");
    assert_eq!(network::netmask(true, 20), "255.255.240.0");
    assert_eq!(
        network::netmask(false, 128),
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    assert_eq!(network::netmask(false, 48), "ffff:ffff:ffff::");
    assert!(network::parse_cidr("10.0.0.0/33").is_none());
    assert!(network::parse_cidr("bogus").is_none());
}

/// The facts travel as JSON unchanged, and facts from a peer that leaves
/// the optional fields out decode to `GuestFacts::new`'s defaults.
#[test]
fn guest_facts_travel_as_json() {
    let mut f = facts();
    f.ports.insert(
        PORT.into(),
        PortFact {
            devname: Some("tapa1b2c3d4-e5".into()),
            address: Some(DeviceAddress {
                bus: "pci".into(),
                address: "0000:00:03.0".into(),
            }),
            ..Default::default()
        },
    );
    f.vendor_data = None;
    let back: GuestFacts =
        serde_json::from_value(serde_json::to_value(&f).expect("encode")).expect("decode");
    assert_eq!(back, f);

    let sparse: GuestFacts = serde_json::from_value(json!({
        "today": "2025-06-01",
        "random_seed": [7, 7],
        "networks": [{"network_id": NET, "subnets": [{"id": "sub4"}]}],
    }))
    .expect("decode sparse facts");
    let mut want = GuestFacts::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), vec![7, 7]);
    want.networks = vec![NetFact {
        network_id: NET.into(),
        subnets: vec![SubnetFact {
            id: "sub4".into(),
            ..Default::default()
        }],
        ..Default::default()
    }];
    assert_eq!(sparse, want);
    assert!(serde_json::from_value::<GuestFacts>(json!({"today": "2025-06-01"})).is_err());
}
