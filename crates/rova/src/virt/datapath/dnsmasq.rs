//! One dnsmasq per network on a host, as Neutron's DHCP agent runs it:
//! static ranges only (every address is a port's fixed IP, from a hosts
//! file of MAC → address), the options a guest needs (router, classless
//! static routes with the route to the metadata address, DNS servers,
//! MTU), no DNS service; on SLAAC subnets, router advertisements of the
//! prefix (the guests' addresses are their MACs' EUI-64, as the ports'
//! fixed IPs are). This module renders its files (pure functions,
//! table-tested) and starts, reloads (SIGHUP) and finds its process by
//! pid file; the process outlives a restart of Rova and is adopted again.

use super::netns::Netns;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The metadata service's address.
pub const METADATA_IP: &str = "169.254.169.254";

/// Lease time handed out (Neutron's default `dhcp_lease_duration`).
const LEASE_SECS: u32 = 86_400;

/// One subnet served on the network's bridge: an IPv4 subnet's static
/// leases, or an IPv6 subnet's router advertisements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSubnet {
    /// Tag naming the subnet in dnsmasq's options (`subnet-<id>`).
    pub tag: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    /// The DHCP port's address in this subnet (the bridge's address, the
    /// next hop to the metadata service).
    pub server_ip: String,
    /// An IPv6 subnet's `ipv6_address_mode`: `slaac` (advertised for the
    /// guests to configure their addresses themselves) or
    /// `dhcpv6-stateless` (the same, with DHCPv6 for the options).
    pub ipv6_mode: Option<String>,
}

/// How an IPv6 subnet is served: dnsmasq's `--dhcp-range` mode for its
/// address mode (`None`: not served — DHCPv6 leases are not made).
pub(super) fn ra_mode(mode: Option<&str>) -> Option<&'static str> {
    match mode? {
        "slaac" => Some("ra-only"),
        "dhcpv6-stateless" => Some("ra-stateless"),
        _ => None,
    }
}

/// One port's static lease.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DhcpHost {
    pub mac: String,
    pub ip: String,
}

/// `10.0.0.0/16` → (`10.0.0.0`, `255.255.0.0`).
pub fn range_of(cidr: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((Ipv4Addr::from(u32::from(addr) & mask), Ipv4Addr::from(mask)))
}

/// The `--dhcp-optsfile`: per subnet, the router (when there is a
/// gateway), the classless static routes (the metadata address through
/// the DHCP port, then the default route; RFC 3442 tells a client that
/// gets them to ignore the router option, so the default route is
/// repeated there), DNS servers (none when the subnet names none: this
/// dnsmasq serves no DNS) and the MTU.
pub fn opts_file(subnets: &[DhcpSubnet], mtu: Option<u32>) -> String {
    let mut s = String::new();
    for sn in subnets.iter().filter(|s| s.ipv6_mode.is_none()) {
        let t = &sn.tag;
        let mut routes = format!("{METADATA_IP}/32,{}", sn.server_ip);
        if let Some(gw) = &sn.gateway {
            let _ = writeln!(s, "tag:{t},option:router,{gw}");
            let _ = write!(routes, ",0.0.0.0/0,{gw}");
        } else {
            let _ = writeln!(s, "tag:{t},option:router");
        }
        let _ = writeln!(s, "tag:{t},option:classless-static-route,{routes}");
        let _ = writeln!(s, "tag:{t},249,{routes}");
        let _ = writeln!(s, "tag:{t},option:dns-server,{}", sn.dns.join(","));
        if let Some(m) = mtu {
            let _ = writeln!(s, "tag:{t},option:mtu,{m}");
        }
    }
    s
}

/// The `--dhcp-hostsfile`: `MAC,host-A-B-C-D,ADDRESS` per port, sorted.
pub fn hosts_file(hosts: &[DhcpHost]) -> String {
    let mut sorted: Vec<&DhcpHost> = hosts.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut s = String::new();
    for h in sorted {
        let name = format!("host-{}", h.ip.replace(['.', ':'], "-"));
        let _ = writeln!(s, "{},{name},{}", h.mac, h.ip);
    }
    s
}

/// dnsmasq's command line for `bridge`, its files in `dir`.
pub fn args(bridge: &str, dir: &Path, subnets: &[DhcpSubnet]) -> Vec<String> {
    let f = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let mut a = vec![
        "--no-hosts".to_string(),
        "--no-resolv".into(),
        "--port=0".into(),
        "--conf-file=/dev/null".into(),
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", f("pid")),
        format!("--dhcp-hostsfile={}", f("host")),
        format!("--dhcp-optsfile={}", f("opts")),
        format!("--dhcp-leasefile={}", f("leases")),
        format!("--log-facility={}", f("log")),
        "--log-dhcp".into(),
        "--bind-interfaces".into(),
        format!("--interface={bridge}"),
        "--except-interface=lo".into(),
        "--dhcp-authoritative".into(),
        "--dhcp-lease-max=16777216".into(),
    ];
    let mut ra = false;
    for sn in subnets {
        if let Some((net, mask)) = range_of(&sn.cidr) {
            a.push(format!(
                "--dhcp-range=set:{},{net},static,{mask},{LEASE_SECS}s",
                sn.tag
            ));
        } else if let (Some(mode), Some(net), Some((_, len))) = (
            ra_mode(sn.ipv6_mode.as_deref()),
            crate::network::cidr_network(&sn.cidr),
            crate::network::parse_cidr(&sn.cidr),
        ) {
            // The prefix advertised for SLAAC; the bridge holds an address
            // in it (dnsmasq advertises on the interface that does).
            a.push(format!(
                "--dhcp-range=set:{},{net},{mode},{len},{LEASE_SECS}s",
                sn.tag
            ));
            ra = true;
        }
    }
    if ra {
        // Router advertisements every 10 s (and on solicitation) with a
        // router lifetime of 0: the DHCP port is no router, so guests take
        // no default route from it.
        a.push("--enable-ra".into());
        a.push(format!("--ra-param={bridge},10,0"));
    }
    a
}

/// The dnsmasq of one network: its directory and bridge.
pub struct Dnsmasq {
    pub dir: PathBuf,
    pub bridge: String,
}

impl Dnsmasq {
    /// Its pid, when the pid file names a live dnsmasq of this bridge.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("dnsmasq") && cmdline.contains(&format!("--interface={}", self.bridge)))
            .then_some(pid)
    }

    /// Writes its files and starts it, or has the running one read them
    /// again (SIGHUP). A running dnsmasq whose ranges changed (a subnet
    /// added) is restarted.
    pub async fn apply(
        &self,
        ns: &Netns,
        subnets: &[DhcpSubnet],
        mtu: Option<u32>,
        hosts: &[DhcpHost],
    ) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        write_atomic(&self.dir.join("opts"), &opts_file(subnets, mtu))?;
        write_atomic(&self.dir.join("host"), &hosts_file(hosts))?;
        let want = args(&self.bridge, &self.dir, subnets);
        let args_file = self.dir.join("args");
        let same_args = std::fs::read_to_string(&args_file).ok() == Some(want.join("\n"));
        if let Some(pid) = self.pid() {
            if same_args {
                // SAFETY: signalling a process we identified by its pid
                // file and command line.
                unsafe { libc::kill(pid, libc::SIGHUP) };
                return Ok(());
            }
            self.stop().await;
        }
        write_atomic(&args_file, &want.join("\n"))?;
        let mut cmd = ns.command("dnsmasq");
        cmd.args(&want);
        super::netns::run(cmd, &format!("dnsmasq on {}", self.bridge)).await?;
        Ok(())
    }

    /// Stops it (SIGTERM, then SIGKILL after 2 s).
    pub async fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        // SAFETY: as in `apply`.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..20 {
            if self.pid().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // SAFETY: as in `apply`.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Replaces `path` with `text` (a temporary file renamed over it).
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(gw: Option<&str>, dns: &[&str]) -> DhcpSubnet {
        DhcpSubnet {
            tag: "subnet-1".into(),
            cidr: "10.0.0.0/16".into(),
            gateway: gw.map(str::to_string),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            server_ip: "10.0.0.2".into(),
            ipv6_mode: None,
        }
    }

    fn v6(mode: &str) -> DhcpSubnet {
        DhcpSubnet {
            tag: "subnet-6".into(),
            cidr: "fd00:0:0:1::/64".into(),
            gateway: Some("fd00:0:0:1::1".into()),
            dns: vec![],
            server_ip: "fd00:0:0:1:f816:3eff:fe00:1".into(),
            ipv6_mode: Some(mode.into()),
        }
    }

    #[test]
    fn ipv6_subnets_are_advertised_for_slaac_not_leased() {
        let a = args(
            "brq0123456789a",
            Path::new("/d"),
            &[subnet(None, &[]), v6("slaac")],
        );
        assert!(a.contains(&"--dhcp-range=set:subnet-6,fd00:0:0:1::,ra-only,64,86400s".to_string()));
        assert!(a.contains(&"--enable-ra".to_string()));
        assert!(a.contains(&"--ra-param=brq0123456789a,10,0".to_string()));
        let a = args("brq0123456789a", Path::new("/d"), &[v6("dhcpv6-stateless")]);
        assert!(a.contains(
            &"--dhcp-range=set:subnet-6,fd00:0:0:1::,ra-stateless,64,86400s".to_string()
        ));
        // DHCPv6 leases are not made: a stateful subnet is not served, and
        // without an advertised subnet there are no advertisements.
        let a = args(
            "brq0123456789a",
            Path::new("/d"),
            &[subnet(None, &[]), v6("dhcpv6-stateful")],
        );
        assert!(
            !a.iter()
                .any(|x| x.contains("subnet-6") || x == "--enable-ra"),
            "{a:?}"
        );
        // IPv6 subnets add no DHCPv4 options.
        assert!(!opts_file(&[v6("slaac")], Some(1450)).contains("subnet-6"));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            range_of("10.0.0.0/16"),
            Some(("10.0.0.0".parse().unwrap(), "255.255.0.0".parse().unwrap()))
        );
        assert_eq!(
            range_of("192.168.7.9/24"),
            Some((
                "192.168.7.0".parse().unwrap(),
                "255.255.255.0".parse().unwrap()
            ))
        );
        assert_eq!(range_of("10.0.0.0/33"), None);
        assert_eq!(range_of("fd00::/64"), None);
    }

    #[test]
    fn options_with_a_gateway_route_metadata_through_the_dhcp_port() {
        let o = opts_file(
            &[subnet(Some("10.0.0.1"), &["8.8.8.8", "1.1.1.1"])],
            Some(1450),
        );
        assert_eq!(
            o,
            "tag:subnet-1,option:router,10.0.0.1\n\
             tag:subnet-1,option:classless-static-route,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1\n\
             tag:subnet-1,249,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1\n\
             tag:subnet-1,option:dns-server,8.8.8.8,1.1.1.1\n\
             tag:subnet-1,option:mtu,1450\n"
        );
    }

    #[test]
    fn options_without_a_gateway_send_no_default_route() {
        let o = opts_file(&[subnet(None, &[])], None);
        assert!(o.contains("tag:subnet-1,option:router\n"));
        assert!(o.contains("classless-static-route,169.254.169.254/32,10.0.0.2\n"));
        assert!(o.contains("tag:subnet-1,option:dns-server,\n"));
        assert!(!o.contains("mtu"));
    }

    #[test]
    fn hosts_are_sorted_and_unique() {
        let h = |mac: &str, ip: &str| DhcpHost {
            mac: mac.into(),
            ip: ip.into(),
        };
        let f = hosts_file(&[
            h("fa:16:3e:00:00:02", "10.0.0.9"),
            h("fa:16:3e:00:00:01", "10.0.0.5"),
            h("fa:16:3e:00:00:02", "10.0.0.9"),
        ]);
        assert_eq!(
            f,
            "fa:16:3e:00:00:01,host-10-0-0-5,10.0.0.5\nfa:16:3e:00:00:02,host-10-0-0-9,10.0.0.9\n"
        );
    }

    #[test]
    fn command_line_serves_static_ranges_on_the_bridge_only() {
        let a = args("brq0123456789a", Path::new("/d"), &[subnet(None, &[])]);
        assert!(a.contains(&"--interface=brq0123456789a".to_string()));
        assert!(a.contains(&"--bind-interfaces".to_string()));
        assert!(a.contains(&"--port=0".to_string()));
        assert!(a.contains(&"--dhcp-hostsfile=/d/host".to_string()));
        assert!(
            a.contains(&"--dhcp-range=set:subnet-1,10.0.0.0,static,255.255.0.0,86400s".to_string())
        );
    }
}
