//! Routers on the bridge data path, as Neutron's L3 agent builds them: a
//! network namespace per router (`<data path namespace>-qrouter-<id>`, or
//! `qrouter-<id>` without one), its gateway a veth `qg-<port>` on the
//! external network's bridge and each interface a veth `qr-<port>` on its
//! network's bridge (the bridge side named `tap<port>` like a guest's),
//! each with its port's MAC and address; IPv4 forwarding on; and nftables
//! NAT in the namespace: SNAT of the router's subnets to its gateway
//! address, and per floating IP a DNAT to the fixed address and a SNAT
//! back from it. The external network's bridge carries its subnet's
//! gateway address (devstack's 172.24.4.1): the host side, from where a
//! floating IP is reached.
//!
//! Routers are brought in line with the database on every pass of the
//! data path's enforcement loop; a router whose plan did not change since
//! the last pass is left alone, one that is gone loses its namespace.

use super::netns::{run, Netns};
use super::{bridge_name, tap_name, Datapath};
use crate::virt::env::{RouterLeg, RouterPlan};
use std::fmt::Write as _;

/// `qg-` / `qr-` + the port id's first 11 characters.
pub fn leg_name(kind: &str, port_id: &str) -> String {
    format!("{kind}{}", port_id.chars().take(11).collect::<String>())
}

/// The NAT rules of a router's namespace, replacing the previous ones.
pub fn nat_script(plan: &RouterPlan) -> String {
    let mut s = String::from("table ip rova_nat\ndelete table ip rova_nat\n");
    let Some(gw) = &plan.gateway else {
        return s;
    };
    let qg = leg_name("qg-", &gw.port_id);
    let gw_ip = gw.cidr.split('/').next().unwrap_or_default();
    s.push_str("table ip rova_nat {\n");
    let mut dnat = String::new();
    let mut snat = String::new();
    for (fip, fixed) in &plan.floating {
        let _ = writeln!(dnat, "    ip daddr {fip} dnat to {fixed}");
        let _ = writeln!(snat, "    oifname \"{qg}\" ip saddr {fixed} snat to {fip}");
    }
    if plan.snat {
        let _ = writeln!(
            snat,
            "    oifname \"{qg}\" ip saddr != {gw_ip} snat to {gw_ip}"
        );
    }
    for (chain, hook, prio, body) in [
        ("prerouting", "prerouting", -100, &dnat),
        ("output", "output", -100, &dnat),
        ("postrouting", "postrouting", 100, &snat),
    ] {
        let _ = writeln!(
            s,
            "  chain {chain} {{\n    type nat hook {hook} priority {prio}; policy accept;\n{body}  }}"
        );
    }
    s.push_str("}\n");
    s
}

impl Datapath {
    /// The namespace of router `id`.
    pub fn router_ns(&self, id: &str) -> String {
        match &self.ns.0 {
            Some(ns) => format!("{ns}-qrouter-{}", id.chars().take(8).collect::<String>()),
            None => format!("qrouter-{id}"),
        }
    }

    /// Prefix of every router namespace of this data path.
    fn router_ns_prefix(&self) -> String {
        match &self.ns.0 {
            Some(ns) => format!("{ns}-qrouter-"),
            None => "qrouter-".into(),
        }
    }

    /// Brings every router in line with `plans` (changed ones only), and
    /// removes the namespaces of routers that are gone.
    pub(super) async fn apply_routers(&self, plans: &[RouterPlan]) -> Result<(), String> {
        for plan in plans {
            let same = self.routers_applied.lock().get(&plan.id) == Some(plan);
            if same {
                continue;
            }
            self.apply_router(plan).await?;
            self.routers_applied
                .lock()
                .insert(plan.id.clone(), plan.clone());
        }
        let wanted: Vec<String> = plans.iter().map(|p| self.router_ns(&p.id)).collect();
        let prefix = self.router_ns_prefix();
        let listed = run(
            {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "list"]);
                c
            },
            "ip netns list",
        )
        .await?;
        for line in listed.lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if name.starts_with(&prefix) && !wanted.iter().any(|w| w == name) {
                self.remove_router_ns(name).await;
            }
        }
        self.routers_applied
            .lock()
            .retain(|id, _| plans.iter().any(|p| &p.id == id));
        Ok(())
    }

    async fn remove_router_ns(&self, name: &str) {
        let r = Netns(Some(name.to_string()));
        // Deleting one end of a veth deletes its peer on the bridge.
        if let Ok(links) = r.ip(&["-o", "link", "show"]).await {
            for l in links.lines() {
                let Some(dev) = l.split(':').nth(1).map(str::trim) else {
                    continue;
                };
                let dev = dev.split('@').next().unwrap_or(dev);
                if dev.starts_with("qg-") || dev.starts_with("qr-") {
                    let _ = r.ip(&["link", "del", "dev", dev]).await;
                }
            }
        }
        let mut c = tokio::process::Command::new("ip");
        c.args(["netns", "del", name]);
        if let Err(e) = run(c, "removing a router namespace").await {
            tracing::warn!("{e}");
        }
    }

    /// One router: its namespace, legs, routes and NAT.
    async fn apply_router(&self, plan: &RouterPlan) -> Result<(), String> {
        let name = self.router_ns(&plan.id);
        let r = Netns(Some(name.clone()));
        if !r.exists() {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "add", &name]);
            run(c, "adding a router namespace").await?;
        }
        r.ip(&["link", "set", "dev", "lo", "up"]).await?;
        let mut fwd = r.command("sh");
        fwd.args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        run(fwd, "turning on forwarding").await?;
        let mut legs: Vec<(String, &RouterLeg)> = Vec::new();
        if let Some(gw) = &plan.gateway {
            self.ensure_external_bridge(gw).await?;
            legs.push((leg_name("qg-", &gw.port_id), gw));
        }
        for i in &plan.interfaces {
            legs.push((leg_name("qr-", &i.port_id), i));
        }
        for (dev, leg) in &legs {
            self.ensure_leg(&r, dev, leg).await?;
        }
        // Legs of interfaces that were removed.
        if let Ok(links) = r.ip(&["-o", "link", "show"]).await {
            for l in links.lines() {
                let Some(dev) = l.split(':').nth(1).map(str::trim) else {
                    continue;
                };
                let dev = dev.split('@').next().unwrap_or(dev);
                let ours = dev.starts_with("qg-") || dev.starts_with("qr-");
                if ours && !legs.iter().any(|(d, _)| d == dev) {
                    r.ip(&["link", "del", "dev", dev]).await?;
                }
            }
        }
        if let Some(gw) = &plan.gateway {
            let qg = leg_name("qg-", &gw.port_id);
            let mut want: Vec<String> = vec![gw.cidr.clone()];
            for (fip, _) in &plan.floating {
                want.push(format!("{fip}/32"));
            }
            let have = r.ip(&["-o", "-4", "addr", "show", "dev", &qg]).await?;
            for line in have.lines() {
                let mut it = line.split_whitespace();
                let addr = it.position(|w| w == "inet").and_then(|_| it.next());
                if let Some(a) = addr {
                    if !want.iter().any(|w| w == a) {
                        r.ip(&["addr", "del", a, "dev", &qg]).await?;
                    }
                }
            }
            for a in &want {
                r.ip(&["addr", "replace", a, "dev", &qg]).await?;
            }
            if let Some(hop) = &gw.next_hop {
                r.ip(&["route", "replace", "default", "via", hop, "dev", &qg])
                    .await?;
            }
        }
        let file = self.dir.join("routers").join(format!("{}.nft", plan.id));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&file, nat_script(plan))
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        let mut nft = r.command("nft");
        nft.arg("-f").arg(&file);
        run(nft, "loading a router's NAT").await?;
        Ok(())
    }

    /// A router leg: a veth whose bridge side (`tap<port>`) is on the
    /// network's bridge and whose router side `dev` holds the port's MAC
    /// and address.
    async fn ensure_leg(&self, r: &Netns, dev: &str, leg: &RouterLeg) -> Result<(), String> {
        let bridge = bridge_name(&leg.network_id);
        if self.ns.ip(&["link", "show", "dev", &bridge]).await.is_err() {
            self.ns
                .ip(&["link", "add", "name", &bridge, "type", "bridge"])
                .await?;
            self.ns.ip(&["link", "set", "dev", &bridge, "up"]).await?;
        }
        let outer = tap_name(&leg.port_id, 1);
        if r.ip(&["link", "show", "dev", dev]).await.is_err() {
            let ns = r.0.clone().unwrap_or_default();
            if self.ns.ip(&["link", "show", "dev", &outer]).await.is_ok() {
                self.ns.ip(&["link", "del", "dev", &outer]).await?;
            }
            self.ns
                .ip(&[
                    "link", "add", "name", &outer, "type", "veth", "peer", "name", dev, "netns",
                    &ns,
                ])
                .await?;
        }
        self.ns
            .ip(&["link", "set", "dev", &outer, "master", &bridge, "up"])
            .await?;
        r.ip(&["link", "set", "dev", dev, "address", &leg.mac, "up"])
            .await?;
        r.ip(&["addr", "replace", &leg.cidr, "dev", dev]).await?;
        Ok(())
    }

    /// The external network's bridge, with its subnet's gateway address
    /// (the host side of the external network).
    async fn ensure_external_bridge(&self, gw: &RouterLeg) -> Result<(), String> {
        let bridge = bridge_name(&gw.network_id);
        if self.ns.ip(&["link", "show", "dev", &bridge]).await.is_err() {
            self.ns
                .ip(&["link", "add", "name", &bridge, "type", "bridge"])
                .await?;
        }
        self.ns.ip(&["link", "set", "dev", &bridge, "up"]).await?;
        if let (Some(hop), Some((_, len))) = (&gw.next_hop, gw.cidr.split_once('/')) {
            let host = format!("{hop}/{len}");
            self.ns
                .ip(&["addr", "replace", &host, "dev", &bridge])
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(port: &str, net: &str, cidr: &str, hop: Option<&str>) -> RouterLeg {
        RouterLeg {
            port_id: port.into(),
            network_id: net.into(),
            mac: "fa:16:3e:00:00:09".into(),
            cidr: cidr.into(),
            next_hop: hop.map(str::to_string),
        }
    }

    #[test]
    fn nat_masquerades_and_maps_floating_ips() {
        let plan = RouterPlan {
            id: "r1".into(),
            gateway: Some(leg(
                "gwport-0000-1111",
                "pub",
                "172.24.4.10/24",
                Some("172.24.4.1"),
            )),
            interfaces: vec![leg("ifport", "priv", "10.0.0.1/16", None)],
            snat: true,
            floating: vec![("172.24.4.20".into(), "10.0.0.5".into())],
        };
        let s = nat_script(&plan);
        assert!(s.starts_with("table ip rova_nat\ndelete table ip rova_nat\n"));
        assert!(s.contains("ip daddr 172.24.4.20 dnat to 10.0.0.5"));
        let post = &s[s.find("chain postrouting").expect("postrouting")..];
        let fip = post
            .find("ip saddr 10.0.0.5 snat to 172.24.4.20")
            .expect("floating snat");
        let masq = post
            .find("oifname \"qg-gwport-0000\" ip saddr != 172.24.4.10 snat to 172.24.4.10")
            .expect("snat");
        assert!(fip < masq, "a floating IP's own SNAT comes first");
    }

    #[test]
    fn no_gateway_no_nat_and_snat_off_keeps_floating_ips() {
        let mut plan = RouterPlan {
            id: "r1".into(),
            gateway: None,
            interfaces: vec![],
            snat: true,
            floating: vec![],
        };
        assert_eq!(
            nat_script(&plan),
            "table ip rova_nat\ndelete table ip rova_nat\n"
        );
        plan.gateway = Some(leg("g", "pub", "172.24.4.10/24", None));
        plan.snat = false;
        plan.floating = vec![("172.24.4.20".into(), "10.0.0.5".into())];
        let s = nat_script(&plan);
        assert!(!s.contains("snat to 172.24.4.10"));
        assert!(s.contains("snat to 172.24.4.20"));
    }

    #[test]
    fn leg_names() {
        assert_eq!(leg_name("qr-", "0a1b2c3d-4e5f-4a6b"), "qr-0a1b2c3d-4e");
        assert!(leg_name("qg-", "0a1b2c3d-4e5f-4a6b").len() <= 15);
    }
}
