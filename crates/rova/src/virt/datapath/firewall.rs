//! Security groups on the bridge data path, enforced with nftables: the
//! whole rule set of a data path rendered from its plugged ports (a pure
//! function, table-tested) and loaded in one `nft -f` transaction, so a
//! change replaces the old rules atomically.
//!
//! Two tables, both named `rova`:
//! - `bridge rova` — anti-spoofing on every tap, stateless, before the
//!   bridge decides anything: frames from the guest must carry its MAC, ARP
//!   and IPv4 its fixed addresses (0.0.0.0 for a DHCP request), IPv6 its
//!   fixed or link-local addresses; DHCP server replies from a guest are
//!   dropped.
//! - `inet rova` — the security groups, stateful (connection tracking;
//!   bridged IPv4 and IPv6 reach these hooks through `br_netfilter`, which
//!   the data path turns on in its namespace): traffic to a port's fixed
//!   IPs (forwarded, or sent by the host side) goes through its ingress
//!   chain, traffic from them through its egress chain; replies of allowed
//!   connections pass, DHCP to and from the guest always passes, anything
//!   no rule allows is dropped. Neutron's default group (all egress,
//!   ingress from the group's members) therefore lets guests of one group
//!   talk while the host side cannot reach them until a rule says so.

use crate::virt::env::{FilterRule, PortSecurity};
use std::fmt::Write as _;

/// One plugged tap of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFilter {
    pub tap: String,
    pub port: PortSecurity,
}

fn is_v6(ip: &str) -> bool {
    ip.contains(':')
}

fn set(items: &[String]) -> String {
    format!("{{ {} }}", items.join(", "))
}

/// `ip` / `ip6` and the rule's match on the protocol and ports; `None`
/// when the rule can match nothing (a remote group with no members).
fn rule_match(r: &FilterRule) -> Option<String> {
    let fam = if r.ip_version == 6 { "ip6" } else { "ip" };
    let mut m = String::new();
    if let Some(remote) = &r.remote {
        let remote: Vec<String> = remote
            .iter()
            .filter(|a| is_v6(a) == (r.ip_version == 6))
            .cloned()
            .collect();
        if remote.is_empty() {
            return None;
        }
        let side = if r.ingress { "saddr" } else { "daddr" };
        let _ = write!(m, "{fam} {side} {} ", set(&remote));
    } else {
        // Any address of the rule's family.
        let _ = write!(
            m,
            "meta nfproto {} ",
            if r.ip_version == 6 { "ipv6" } else { "ipv4" }
        );
    }
    if let Some(p) = r.protocol {
        let _ = write!(m, "meta l4proto {p} ");
        let icmp = match (p, r.ip_version) {
            (1, 4) => Some("icmp"),
            (58, 6) => Some("icmpv6"),
            _ => None,
        };
        match icmp {
            // For ICMP the range holds the type and the code.
            Some(kw) => {
                if let Some(t) = r.port_min {
                    let _ = write!(m, "{kw} type {t} ");
                    if let Some(c) = r.port_max {
                        let _ = write!(m, "{kw} code {c} ");
                    }
                }
            }
            None => {
                if matches!(p, 6 | 17 | 33 | 132 | 136) {
                    if let Some(lo) = r.port_min {
                        let hi = r.port_max.unwrap_or(lo);
                        let _ = write!(m, "th dport {lo}-{hi} ");
                    }
                }
            }
        }
    }
    Some(m)
}

/// The nft script that replaces both tables with the rules of `taps`
/// (an empty list removes them).
pub fn render(taps: &[TapFilter]) -> String {
    let mut s = String::new();
    // Declaring then deleting makes the deletion succeed on a first load,
    // and the whole script is one transaction.
    s.push_str("table bridge rova\ndelete table bridge rova\n");
    s.push_str("table inet rova\ndelete table inet rova\n");
    if taps.is_empty() {
        return s;
    }

    // Anti-spoofing, per tap.
    s.push_str("table bridge rova {\n");
    s.push_str(
        "  chain prerouting {\n    type filter hook prerouting priority -300; policy accept;\n",
    );
    for (i, t) in taps.iter().enumerate() {
        let _ = writeln!(s, "    iifname \"{}\" jump spoof_{i}", t.tap);
    }
    s.push_str("  }\n");
    for (i, t) in taps.iter().enumerate() {
        let v4: Vec<String> = t
            .port
            .fixed_ips
            .iter()
            .filter(|a| !is_v6(a))
            .cloned()
            .collect();
        let mut v6: Vec<String> = t
            .port
            .fixed_ips
            .iter()
            .filter(|a| is_v6(a))
            .cloned()
            .collect();
        v6.push("fe80::/10".into());
        let _ = writeln!(s, "  chain spoof_{i} {{");
        let _ = writeln!(s, "    ether saddr != {} drop", t.port.mac);
        let _ = writeln!(s, "    meta l4proto udp udp sport 67 drop");
        if v4.is_empty() {
            s.push_str("    ether type arp drop\n");
            s.push_str("    ip saddr != 0.0.0.0 drop\n");
        } else {
            let _ = writeln!(s, "    arp saddr ip != {} drop", set(&v4));
            let mut v4z = v4.clone();
            v4z.push("0.0.0.0".into());
            let _ = writeln!(s, "    ip saddr != {} drop", set(&v4z));
        }
        // The unspecified address only for ICMPv6 (duplicate address
        // detection, multicast listener reports), as Neutron allows it.
        s.push_str("    ip6 saddr :: meta l4proto != ipv6-icmp drop\n");
        v6.push("::".into());
        let _ = writeln!(s, "    ip6 saddr != {} drop", set(&v6));
        s.push_str("  }\n");
    }
    s.push_str("}\n");

    // Security groups, per port (a port plugged on two hosts of this
    // machine for a moment has one set of chains).
    let mut ports: Vec<&PortSecurity> = Vec::new();
    for t in taps {
        if !ports.iter().any(|p| p.port_id == t.port.port_id) {
            ports.push(&t.port);
        }
    }
    s.push_str("table inet rova {\n");
    let mut to = String::new();
    let mut from = String::new();
    for (i, p) in ports.iter().enumerate() {
        for ip in &p.fixed_ips {
            let fam = if is_v6(ip) { "ip6" } else { "ip" };
            let _ = writeln!(to, "    {fam} daddr {ip} jump in_{i}");
            let _ = writeln!(from, "    {fam} saddr {ip} jump out_{i}");
        }
    }
    for (hook, body) in [
        ("forward", format!("{to}{from}")),
        ("output", to.clone()),
        ("input", from.clone()),
    ] {
        let _ = writeln!(
            s,
            "  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n{body}  }}"
        );
    }
    for (i, p) in ports.iter().enumerate() {
        for (ingress, name) in [(true, "in"), (false, "out")] {
            let _ = writeln!(s, "  chain {name}_{i} {{");
            if ingress {
                s.push_str("    meta l4proto udp udp sport 67 udp dport 68 accept\n");
            } else {
                s.push_str("    meta l4proto udp udp sport 68 udp dport 67 accept\n");
            }
            s.push_str("    ct state established,related accept\n");
            s.push_str("    ct state invalid drop\n");
            // IPv6 neighbour discovery always passes, as in Neutron.
            s.push_str("    meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept\n");
            for r in p.rules.iter().filter(|r| r.ingress == ingress) {
                if let Some(m) = rule_match(r) {
                    let _ = writeln!(s, "    {m}accept");
                }
            }
            s.push_str("    drop\n  }\n");
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ingress: bool, v: u8, proto: Option<u8>, ports: Option<(u32, u32)>) -> FilterRule {
        FilterRule {
            ingress,
            ip_version: v,
            protocol: proto,
            port_min: ports.map(|p| p.0),
            port_max: ports.map(|p| p.1),
            remote: None,
        }
    }

    fn port(rules: Vec<FilterRule>) -> PortSecurity {
        PortSecurity {
            port_id: "p1".into(),
            mac: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec!["10.0.0.5".into(), "fd00::5".into()],
            rules,
        }
    }

    #[test]
    fn no_taps_removes_the_tables() {
        let s = render(&[]);
        assert_eq!(
            s,
            "table bridge rova\ndelete table bridge rova\ntable inet rova\ndelete table inet rova\n"
        );
    }

    #[test]
    fn anti_spoofing_pins_mac_and_addresses() {
        let s = render(&[TapFilter {
            tap: "tapabc".into(),
            port: port(vec![]),
        }]);
        assert!(s.contains("iifname \"tapabc\" jump spoof_0"));
        assert!(s.contains("ether saddr != fa:16:3e:00:00:01 drop"));
        assert!(s.contains("arp saddr ip != { 10.0.0.5 } drop"));
        assert!(s.contains("ip saddr != { 10.0.0.5, 0.0.0.0 } drop"));
        assert!(s.contains("ip6 saddr != { fd00::5, fe80::/10, :: } drop"));
        assert!(s.contains("ip6 saddr :: meta l4proto != ipv6-icmp drop"));
        assert!(s.contains("meta l4proto udp udp sport 67 drop"));
    }

    #[test]
    fn rules_become_accepts_before_the_final_drop() {
        let mut from_group = rule(true, 4, None, None);
        from_group.remote = Some(vec!["10.0.0.7".into(), "10.0.0.5".into(), "fd00::7".into()]);
        let mut empty_group = rule(true, 4, Some(1), None);
        empty_group.remote = Some(vec![]);
        let mut cidr = rule(true, 4, Some(6), Some((22, 22)));
        cidr.remote = Some(vec!["192.168.0.0/16".into()]);
        let s = render(&[TapFilter {
            tap: "tapabc".into(),
            port: port(vec![
                rule(false, 4, None, None),
                rule(false, 6, None, None),
                from_group,
                empty_group,
                cidr,
                rule(true, 4, Some(1), Some((8, 0))),
                rule(true, 4, Some(17), Some((53, 53))),
            ]),
        }]);
        let chain = |name: &str| {
            let start = s.find(&format!("chain {name} {{")).expect("chain");
            let end = s[start..].find("  }\n").expect("end") + start;
            s[start..end].to_string()
        };
        let inn = chain("in_0");
        assert!(
            inn.contains("ip saddr { 10.0.0.7, 10.0.0.5 } accept"),
            "{inn}"
        );
        assert!(!inn.contains("fd00::7"), "a v4 rule takes v4 members only");
        assert!(
            inn.contains("ip saddr { 192.168.0.0/16 } meta l4proto 6 th dport 22-22 accept"),
            "{inn}"
        );
        assert!(
            inn.contains("meta nfproto ipv4 meta l4proto 1 icmp type 8 icmp code 0 accept"),
            "{inn}"
        );
        assert!(
            inn.contains("meta nfproto ipv4 meta l4proto 17 th dport 53-53 accept"),
            "{inn}"
        );
        // the group with no members allows nothing
        assert_eq!(inn.matches("meta l4proto 1 ").count(), 1, "{inn}");
        assert!(inn.ends_with("    drop\n"), "{inn}");
        assert!(inn.contains("ct state established,related accept"));
        let out = chain("out_0");
        assert!(out.contains("meta nfproto ipv4 accept"), "{out}");
        assert!(out.contains("meta nfproto ipv6 accept"), "{out}");
        assert!(out.contains("udp sport 68 udp dport 67 accept"), "{out}");
        let fwd = chain("forward");
        assert!(fwd.contains("ip daddr 10.0.0.5 jump in_0"));
        assert!(fwd.contains("ip6 saddr fd00::5 jump out_0"));
        assert!(chain("output").contains("ip daddr 10.0.0.5 jump in_0"));
        assert!(chain("input").contains("ip saddr 10.0.0.5 jump out_0"));
    }

    /// The kernel's nftables accepts the script (`nft -c`: checked, not
    /// loaded). Needs `nft` (Debian's nftables, installed by
    /// scripts/setup.sh) and CAP_NET_ADMIN; the test fails without them.
    #[test]
    fn nft_accepts_the_script() {
        let mut from_group = rule(true, 4, Some(6), Some((22, 22)));
        from_group.remote = Some(vec!["10.0.0.7".into()]);
        let mut v6 = rule(true, 6, Some(58), Some((128, 0)));
        v6.remote = Some(vec!["fd00::/64".into()]);
        let s = render(&[TapFilter {
            tap: "tap0a1b2c3d-4e".into(),
            port: port(vec![
                rule(false, 4, None, None),
                rule(false, 6, None, None),
                from_group,
                v6,
                rule(true, 4, Some(1), Some((8, 0))),
                rule(true, 4, Some(132), Some((1000, 2000))),
                rule(true, 4, Some(47), None),
            ]),
        }]);
        use std::io::Write;
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft (Debian's nftables) must be installed: scripts/setup.sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft refused the script: {}\n{s}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_port_on_two_taps_has_one_set_of_chains() {
        let p = port(vec![]);
        let s = render(&[
            TapFilter {
                tap: "tapa".into(),
                port: p.clone(),
            },
            TapFilter {
                tap: "tapb".into(),
                port: p,
            },
        ]);
        assert!(s.contains("chain spoof_1"));
        assert!(s.contains("chain in_0"));
        assert!(!s.contains("chain in_1"));
    }
}
