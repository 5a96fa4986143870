//! The floating addresses in a server's network info: each fixed address
//! of a server's ports gets the floating IPs the network service points at
//! it, as Nova's network info cache carries them (`addresses` shows them
//! as `OS-EXT-IPS:type: floating`, the metadata service as
//! `public-ipv4`). Read from the floating IPs table when a server is
//! shown, never stored with the server.

use crate::app::App;
use rova_core::model::Instance;
use std::sync::Arc;

/// Server `inst` with its fixed addresses' floating IPs filled in (the
/// same `Arc` when none points at it).
pub fn with_floating_ips(app: &App, inst: Arc<Instance>) -> Arc<Instance> {
    if app.networks.floatingips.is_empty() {
        return inst;
    }
    let found: Vec<(usize, usize, Vec<String>)> = inst
        .vifs
        .iter()
        .enumerate()
        .flat_map(|(v, vif)| {
            let fips = app.networks.fips_of_port(&vif.port_id);
            vif.fixed_ips
                .iter()
                .enumerate()
                .filter_map(|(i, ip)| {
                    let mut addrs: Vec<String> = fips
                        .iter()
                        .filter(|f| f.fixed_ip_address.as_deref() == Some(ip.address.as_str()))
                        .map(|f| f.floating_ip_address.clone())
                        .collect();
                    addrs.sort();
                    (addrs != ip.floating_ips).then_some((v, i, addrs))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if found.is_empty() {
        return inst;
    }
    let mut c = (*inst).clone();
    for (v, i, addrs) in found {
        c.vifs[v].fixed_ips[i].floating_ips = addrs;
    }
    Arc::new(c)
}

/// [`with_floating_ips`] for each of `insts`.
pub fn with_floating_ips_all(app: &App, insts: Vec<Arc<Instance>>) -> Vec<Arc<Instance>> {
    insts
        .into_iter()
        .map(|i| with_floating_ips(app, i))
        .collect()
}

/// The floating addresses of server `inst`'s ports, in port order.
pub fn floating_addresses(app: &App, inst: &Instance) -> Vec<String> {
    inst.vifs
        .iter()
        .flat_map(|vif| app.networks.fips_of_port(&vif.port_id))
        .map(|f| f.floating_ip_address.clone())
        .collect()
}
