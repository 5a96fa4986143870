//! The Linux-bridge data path of the guests on this machine, named as
//! Neutron's Linux-bridge agent names things: a bridge per network
//! (`brq` + the network id's first 11 characters) carrying the network's
//! DHCP port address and the metadata address, a tap per port (`tap` +
//! the port id's first 11 characters) with the guest's virtio-net behind
//! it, one dnsmasq per network handing every port exactly its fixed IPv4,
//! and one metadata listener per network at 169.254.169.254:80 on the
//! bridge. Everything lives in one network namespace when one is
//! configured.
//!
//! What is plugged where is kept beside the kernel's own record, as files
//! under `<data dir>/qemu/datapath/`: `plugs/<host>/<uuid>.json` (the taps
//! of one guest on one host) and `dhcp/<network>/` (dnsmasq's files). The
//! ports and subnets themselves come from the database through
//! [`GuestEnv`]; after a restart [`Datapath::resume`] brings back the
//! listeners and any dnsmasq that died.
//!
//! Routers and floating IPs (`routers`) are namespaces with veths on the
//! bridges and nftables NAT, brought in line with the database by the
//! same loop that keeps the security groups.
//!
//! Security groups are enforced with nftables (`firewall`): the rule set
//! is rendered from the database's ports and rules after every plug and
//! unplug and every quarter second, and loaded when it changed.
//!
//! This module owns the names, the plug records, and the order of the
//! steps; `netns` runs the commands, `dnsmasq` renders its files,
//! `firewall` the nftables rules.

pub mod dnsmasq;
pub mod firewall;
pub mod netns;
pub mod routers;

use crate::virt::env::GuestEnv;
use crate::virt::metadata_server::{self, MetadataHandle};
use dnsmasq::{DhcpHost, DhcpSubnet, Dnsmasq, METADATA_IP};
use netns::Netns;
use parking_lot::Mutex;
use rova_core::metadata::NetFact;
use rova_core::model::Instance;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Linux's longest interface name.
const IFNAMSIZ: usize = 15;

/// One NIC of a guest as plugged on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plug {
    pub tap: String,
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    /// The port's fixed IPv4 addresses (what DHCP hands out).
    pub ipv4: Vec<String>,
}

fn prefix(id: &str, n: usize) -> String {
    id.chars().take(n).collect()
}

/// `brq` + the network id's first 11 characters.
pub fn bridge_name(network_id: &str) -> String {
    format!("brq{}", prefix(network_id, 11))
}

/// The tap of a port on host number `host_index` (1-based): Neutron's
/// `tap` + 11 characters of the port id on the first host; the other
/// hosts of this machine share its namespace (a guest moving between
/// them has a tap on each for a moment), so their taps end with the
/// host's number instead of the port id's last two characters.
pub fn tap_name(port_id: &str, host_index: usize) -> String {
    let name = if host_index <= 1 {
        format!("tap{}", prefix(port_id, 11))
    } else {
        format!("tap{}{:02}", prefix(port_id, 9), host_index.min(99))
    };
    name.chars().take(IFNAMSIZ).collect()
}

/// What names a port's NIC inside QEMU (`net-<id>`, `nic-<id>`): the
/// port id's first 8 characters.
pub fn nic_id(port_id: &str) -> String {
    prefix(port_id, 8)
}

/// `rova-qemu-3` → 3 (1 for a name without a number).
pub fn host_index(host: &str) -> usize {
    host.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The data path of this machine's guests.
pub struct Datapath {
    ns: Netns,
    dir: PathBuf,
    /// Changes to links and DHCP files never interleave.
    lock: tokio::sync::Mutex<()>,
    /// Metadata listeners by network id.
    metadata: Mutex<HashMap<String, MetadataHandle>>,
    /// The nftables script loaded last (a cache: after a restart the
    /// rules are rendered and loaded again).
    applied: Mutex<Option<String>>,
    /// The router plans built last, by router id (a cache, like
    /// `applied`).
    routers_applied: Mutex<HashMap<String, crate::virt::env::RouterPlan>>,
}

impl Datapath {
    /// The data path in namespace `netns` (Rova's own when `None`), its
    /// records under `<data_dir>/qemu/datapath`.
    pub fn new(netns: Option<String>, data_dir: &Path) -> Self {
        Datapath {
            ns: Netns(netns),
            dir: data_dir.join("qemu").join("datapath"),
            lock: tokio::sync::Mutex::new(()),
            metadata: Mutex::new(HashMap::new()),
            applied: Mutex::new(None),
            routers_applied: Mutex::new(HashMap::new()),
        }
    }

    /// What names this data path's DHCP ports: the namespace, or `root`.
    fn name(&self) -> &str {
        self.ns.0.as_deref().unwrap_or("root")
    }

    /// The argv prefix that starts a guest's QEMU inside the namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        self.ns.exec_prefix()
    }

    /// Checks what the data path needs at start: the namespace, `ip` and
    /// `dnsmasq`.
    pub fn check(&self) -> Result<(), String> {
        if !self.ns.exists() {
            return Err(format!(
                "network namespace {:?} does not exist (create it with `ip netns add`)",
                self.ns.0.as_deref().unwrap_or_default()
            ));
        }
        for tool in ["ip", "dnsmasq", "nft"] {
            if crate::virt::qemu::which(tool).is_none() {
                return Err(format!(
                    "{tool} not found: the bridge data path needs iproute2, dnsmasq-base and nftables"
                ));
            }
        }
        Ok(())
    }

    /// Makes bridged traffic pass the IP hooks (`br_netfilter`), where the
    /// security groups are enforced with connection tracking.
    async fn bridge_netfilter(&self) -> Result<(), String> {
        let mut cmd = self.ns.command("sh");
        cmd.args([
            "-c",
            "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables && \
             echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables",
        ]);
        netns::run(cmd, "turning on bridge netfilter")
            .await
            .map(|_| ())
    }

    /// Renders the security groups of every plugged port and loads them
    /// when they changed. Called with the data path's lock held, or from
    /// [`Datapath::enforce`].
    async fn apply_firewall(&self, env: &Arc<dyn GuestEnv>) -> Result<(), String> {
        let plugs: Vec<Plug> = self
            .all_plugs()
            .into_iter()
            .flat_map(|(_, _, ps)| ps)
            .collect();
        let mut ids: Vec<String> = plugs.iter().map(|p| p.port_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let secs = env.port_security(&ids).await.map_err(|e| e.to_string())?;
        let mut taps: Vec<firewall::TapFilter> = plugs
            .into_iter()
            .filter_map(|p| {
                let port = secs.iter().find(|s| s.port_id == p.port_id)?.clone();
                Some(firewall::TapFilter { tap: p.tap, port })
            })
            .collect();
        taps.sort_by(|a, b| a.tap.cmp(&b.tap));
        let script = firewall::render(&taps);
        if self.applied.lock().as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let file = self.dir.join("firewall.nft");
        std::fs::write(&file, &script).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let mut cmd = self.ns.command("nft");
        cmd.arg("-f").arg(&file);
        netns::run(cmd, "loading the security groups").await?;
        *self.applied.lock() = Some(script);
        Ok(())
    }

    /// Brings the loaded security groups and the routers up to date with
    /// the database (changes made through the API).
    pub async fn enforce(&self, env: &Arc<dyn GuestEnv>) {
        let _g = self.lock.lock().await;
        if let Err(e) = self.apply_firewall(env).await {
            tracing::warn!("security groups: {e}");
        }
        match env.routers().await {
            Ok(plans) => {
                if let Err(e) = self.apply_routers(&plans).await {
                    tracing::warn!("routers: {e}");
                }
            }
            Err(e) => tracing::debug!("routers: {e}"),
        }
    }

    fn plug_file(&self, host: &str, uuid: &str) -> PathBuf {
        self.dir
            .join("plugs")
            .join(host)
            .join(format!("{uuid}.json"))
    }

    /// Every plug record: (host, uuid, plugs).
    fn all_plugs(&self) -> Vec<(String, String, Vec<Plug>)> {
        let mut out = Vec::new();
        let Ok(hosts) = std::fs::read_dir(self.dir.join("plugs")) else {
            return out;
        };
        for h in hosts.flatten() {
            let host = h.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(h.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(uuid) = name.strip_suffix(".json") else {
                    continue;
                };
                out.push((host.clone(), uuid.to_string(), read_plugs(&f.path())));
            }
        }
        out
    }

    /// Plugs every NIC of `inst` on `host`: the bridges of its networks
    /// (with DHCP and metadata), then a tap per port, then the ports'
    /// leases. Returns the taps in the order of the guest's NICs.
    pub async fn plug(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
    ) -> Result<Vec<Plug>, String> {
        self.plug_ports(env, inst, host, None).await
    }

    /// Plugs one more NIC of `inst` (port `port_id`, already in its
    /// record) on `host`, leaving its other taps alone (a NIC hot-plugged
    /// into the running guest).
    pub async fn plug_port(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
        port_id: &str,
    ) -> Result<Plug, String> {
        let mut plugs = self.plug_ports(env, inst, host, Some(port_id)).await?;
        plugs
            .pop()
            .ok_or_else(|| format!("port {port_id} is not a NIC of instance {}", inst.uuid))
    }

    async fn plug_ports(
        &self,
        env: &Arc<dyn GuestEnv>,
        inst: &Instance,
        host: &str,
        only: Option<&str>,
    ) -> Result<Vec<Plug>, String> {
        let _g = self.lock.lock().await;
        let vifs: Vec<&rova_core::model::Vif> = inst
            .vifs
            .iter()
            .filter(|v| only.is_none_or(|p| v.port_id == p))
            .collect();
        if vifs.is_empty() && only.is_some() {
            return Ok(Vec::new());
        }
        let mut nets: BTreeMap<String, NetFact> = BTreeMap::new();
        for vif in &vifs {
            if nets.contains_key(&vif.network_id) {
                continue;
            }
            let net = env
                .network(&vif.network_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("network {} is gone", vif.network_id))?;
            self.ensure_bridge(env, &net).await?;
            nets.insert(vif.network_id.clone(), net);
        }
        let idx = host_index(host);
        let mut plugs = Vec::new();
        for vif in &vifs {
            let tap = tap_name(&vif.port_id, idx);
            // A tap left by a guest that died with its host is replaced.
            if self.ns.ip(&["link", "show", "dev", &tap]).await.is_ok() {
                self.ns.ip(&["link", "del", "dev", &tap]).await?;
            }
            self.ns
                .ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])
                .await?;
            let mut set = vec!["link", "set", "dev", &tap];
            let mtu = nets
                .get(&vif.network_id)
                .and_then(|n| n.mtu)
                .map(|m| m.to_string());
            if let Some(m) = &mtu {
                set.extend(["mtu", m.as_str()]);
            }
            let bridge = bridge_name(&vif.network_id);
            set.extend(["master", bridge.as_str(), "up"]);
            self.ns.ip(&set).await?;
            plugs.push(Plug {
                tap,
                port_id: vif.port_id.clone(),
                network_id: vif.network_id.clone(),
                mac: vif.mac.clone(),
                ipv4: vif
                    .fixed_ips
                    .iter()
                    .filter(|f| f.version == 4)
                    .map(|f| f.address.clone())
                    .collect(),
            });
        }
        let file = self.plug_file(host, &inst.uuid);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mut record = plugs.clone();
        if let Some(port_id) = only {
            // The guest's other NICs stay as recorded.
            let mut kept = read_plugs(&file);
            kept.retain(|p| p.port_id != port_id);
            kept.append(&mut record);
            record = kept;
        }
        let json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        std::fs::write(&file, json).map_err(|e| format!("writing {}: {e}", file.display()))?;
        // The guest is filtered from its first packet on.
        self.apply_firewall(env).await?;
        for net in nets.values() {
            self.apply_dhcp(env, net).await?;
        }
        Ok(plugs)
    }

    /// Unplugs what `uuid` had on `host`: its taps go, its leases leave
    /// the networks' DHCP servers (released, so the addresses can be
    /// handed to other ports at once).
    pub async fn unplug(&self, env: &Arc<dyn GuestEnv>, host: &str, uuid: &str) {
        self.unplug_ports(env, host, uuid, None).await
    }

    /// Unplugs one NIC (port `port_id`) of `uuid` on `host`; the others
    /// stay.
    pub async fn unplug_port(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        uuid: &str,
        port_id: &str,
    ) {
        self.unplug_ports(env, host, uuid, Some(port_id)).await
    }

    async fn unplug_ports(
        &self,
        env: &Arc<dyn GuestEnv>,
        host: &str,
        uuid: &str,
        only: Option<&str>,
    ) {
        let _g = self.lock.lock().await;
        let file = self.plug_file(host, uuid);
        if !file.exists() {
            return;
        }
        let (plugs, kept): (Vec<Plug>, Vec<Plug>) = read_plugs(&file)
            .into_iter()
            .partition(|p| only.is_none_or(|id| p.port_id == id));
        for p in &plugs {
            if let Err(e) = self.ns.ip(&["link", "del", "dev", &p.tap]).await {
                tracing::debug!(tap = %p.tap, "removing tap: {e}");
            }
        }
        if kept.is_empty() {
            let _ = std::fs::remove_file(&file);
        } else if let Ok(json) = serde_json::to_vec(&kept) {
            if let Err(e) = std::fs::write(&file, json) {
                tracing::warn!(path = %file.display(), "recording the NICs left: {e}");
            }
        }
        if let Err(e) = self.apply_firewall(env).await {
            tracing::warn!("security groups: {e}");
        }
        let still: Vec<String> = self
            .all_plugs()
            .into_iter()
            .flat_map(|(_, _, ps)| ps.into_iter().map(|p| p.port_id))
            .collect();
        let mut nets: Vec<&str> = plugs.iter().map(|p| p.network_id.as_str()).collect();
        nets.sort_unstable();
        nets.dedup();
        for network_id in nets {
            match env.network(network_id).await {
                Ok(Some(net)) => {
                    if let Err(e) = self.apply_dhcp(env, &net).await {
                        tracing::warn!(network = network_id, "updating DHCP: {e}");
                    }
                }
                _ => continue,
            }
            let bridge = bridge_name(network_id);
            for p in plugs.iter().filter(|p| p.network_id == network_id) {
                if still.contains(&p.port_id) {
                    continue;
                }
                for ip in &p.ipv4 {
                    self.release(&bridge, ip, &p.mac).await;
                }
            }
        }
    }

    /// After a restart: every network that has plugged ports gets its
    /// bridge, DHCP server and metadata listener back.
    pub async fn resume(&self, env: &Arc<dyn GuestEnv>) {
        let _g = self.lock.lock().await;
        let mut nets: Vec<String> = self
            .all_plugs()
            .into_iter()
            .flat_map(|(_, _, ps)| ps.into_iter().map(|p| p.network_id))
            .collect();
        nets.sort_unstable();
        nets.dedup();
        for network_id in nets {
            let Ok(Some(net)) = env.network(&network_id).await else {
                continue;
            };
            let res = async {
                self.ensure_bridge(env, &net).await?;
                self.apply_dhcp(env, &net).await
            }
            .await;
            if let Err(e) = res {
                tracing::warn!(network = %network_id, "resuming the data path: {e}");
            }
        }
        if let Err(e) = self.apply_firewall(env).await {
            tracing::warn!("security groups: {e}");
        }
    }

    /// The network's bridge, up, with the DHCP port's addresses and the
    /// metadata address, and the metadata listener on it.
    async fn ensure_bridge(&self, env: &Arc<dyn GuestEnv>, net: &NetFact) -> Result<(), String> {
        let bridge = bridge_name(&net.network_id);
        self.ns.ip(&["link", "set", "dev", "lo", "up"]).await?;
        self.bridge_netfilter().await?;
        if self.ns.ip(&["link", "show", "dev", &bridge]).await.is_err() {
            self.ns
                .ip(&["link", "add", "name", &bridge, "type", "bridge"])
                .await?;
        }
        let dhcp = env.dhcp_port(&net.network_id, self.name()).await?;
        self.ns
            .ip(&["link", "set", "dev", &bridge, "address", &dhcp.mac, "up"])
            .await?;
        for sn in net.subnets.iter().filter(|s| served(s)) {
            let Some((_, ip)) = dhcp.fixed_ips.iter().find(|(id, _)| *id == sn.id) else {
                continue;
            };
            let Some((_, len)) = sn.cidr.split_once('/') else {
                continue;
            };
            let cidr = format!("{ip}/{len}");
            let mut argv = vec!["addr", "replace", &cidr, "dev", &bridge];
            if sn.ip_version == 6 {
                // Usable at once: dnsmasq advertises from it.
                argv.push("nodad");
            }
            self.ns.ip(&argv).await?;
        }
        let md = format!("{METADATA_IP}/32");
        self.ns
            .ip(&["addr", "replace", &md, "dev", &bridge])
            .await?;
        if !self.metadata.lock().contains_key(&net.network_id) {
            let addr = std::net::SocketAddr::from(([169, 254, 169, 254], 80));
            let listener = self.ns.bind_tcp(addr, Some(&bridge))?;
            let h = metadata_server::serve_network(env.clone(), &net.network_id, listener)?;
            self.metadata.lock().insert(net.network_id.clone(), h);
        }
        Ok(())
    }

    /// The network's dnsmasq with a lease for every port plugged on it
    /// (and the router advertisements of its SLAAC subnets).
    async fn apply_dhcp(&self, env: &Arc<dyn GuestEnv>, net: &NetFact) -> Result<(), String> {
        let bridge = bridge_name(&net.network_id);
        let dhcp = env.dhcp_port(&net.network_id, self.name()).await?;
        let subnets: Vec<DhcpSubnet> = net
            .subnets
            .iter()
            .filter(|s| served(s))
            .filter_map(|s| {
                let (_, ip) = dhcp.fixed_ips.iter().find(|(id, _)| *id == s.id)?;
                Some(DhcpSubnet {
                    tag: format!("subnet-{}", s.id),
                    cidr: s.cidr.clone(),
                    gateway: s.gateway.clone(),
                    dns: s.dns.clone(),
                    server_ip: ip.clone(),
                    ipv6_mode: (s.ip_version == 6)
                        .then(|| s.ipv6_address_mode.clone())
                        .flatten(),
                })
            })
            .collect();
        let hosts: Vec<DhcpHost> = self
            .all_plugs()
            .into_iter()
            .flat_map(|(_, _, ps)| ps)
            .filter(|p| p.network_id == net.network_id)
            .flat_map(|p| {
                let mac = p.mac.clone();
                p.ipv4.into_iter().map(move |ip| DhcpHost {
                    mac: mac.clone(),
                    ip,
                })
            })
            .collect();
        let d = Dnsmasq {
            dir: self.dir.join("dhcp").join(&net.network_id),
            bridge,
        };
        if subnets.is_empty() {
            d.stop().await;
            return Ok(());
        }
        d.apply(&self.ns, &subnets, net.mtu, &hosts).await
    }

    /// Tells the network's dnsmasq that `ip` of `mac` is free again (its
    /// lease would otherwise keep the address from the next port).
    async fn release(&self, bridge: &str, ip: &str, mac: &str) {
        if crate::virt::qemu::which("dhcp_release").is_none() {
            return;
        }
        let mut cmd = self.ns.command("dhcp_release");
        cmd.args([bridge, ip, mac]);
        if let Err(e) = netns::run(cmd, "dhcp_release").await {
            tracing::debug!("{e}");
        }
    }

    /// Stops every metadata listener (the service is shutting down).
    pub fn stop_listeners(&self) {
        self.metadata.lock().clear();
    }
}

/// Whether the network's dnsmasq serves `sn`: an IPv4 subnet with DHCP
/// (static leases), or an IPv6 one whose guests configure themselves
/// (SLAAC, stateless DHCPv6: router advertisements).
fn served(sn: &rova_core::metadata::SubnetFact) -> bool {
    sn.dhcp && (sn.ip_version == 4 || dnsmasq::ra_mode(sn.ipv6_address_mode.as_deref()).is_some())
}

/// One plug record (empty when missing or unreadable).
fn read_plugs(file: &Path) -> Vec<Plug> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_neutron() {
        let net = "7f0c2a4e-1b2c-4d5e-8f90-123456789abc";
        assert_eq!(bridge_name(net), "brq7f0c2a4e-1b");
        let port = "0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
        assert_eq!(tap_name(port, 1), "tap0a1b2c3d-4e");
        assert_eq!(tap_name(port, 2), "tap0a1b2c3d-02");
        assert_eq!(tap_name(port, 16), "tap0a1b2c3d-16");
        for n in [bridge_name(net), tap_name(port, 1), tap_name(port, 16)] {
            assert!(n.len() <= IFNAMSIZ, "{n}");
        }
        assert_eq!(host_index("rova-qemu-1"), 1);
        assert_eq!(host_index("rova-qemu-12"), 12);
        assert_eq!(host_index("elsewhere"), 1);
    }
}
