//! The `os-interface` attach body (`POST /servers/{id}/os-interface`),
//! checked against Nova's `attach_interfaces` schema with Nova's texts:
//! one optional `interfaceAttachment` object holding `net_id`, `port_id`
//! (uuids), `fixed_ips` (exactly one `{ip_address}`) and, from 2.49,
//! `tag`; then the two cross-field rules of Nova's handler.

use super::fields::{self, array, check_additional, check_required, invalid, object};
use super::py;
use crate::error::Fault;
use crate::microversion::Microversion;
use serde_json::Value;

/// What an attach asks for (every part optional: an empty request attaches
/// a new port on a network the project may use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceAttach {
    pub net_id: Option<String>,
    pub port_id: Option<String>,
    /// The one requested fixed address, as written.
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// Parses an attach body at microversion `v`.
pub fn parse_interface_attach(body: &Value, v: Microversion) -> Result<InterfaceAttach, Fault> {
    let o = object(None, body)?;
    check_additional(None, body, o, &["interfaceAttachment"])?;
    let Some(att) = o.get("interfaceAttachment") else {
        return Ok(InterfaceAttach::default());
    };
    let field = "interfaceAttachment";
    let a = object(Some(field), att)?;
    let allowed: &[&str] = if v.at_least(49) {
        &["net_id", "port_id", "fixed_ips", "tag"]
    } else {
        &["net_id", "port_id", "fixed_ips"]
    };
    check_additional(Some(field), att, a, allowed)?;
    let mut req = InterfaceAttach {
        net_id: a
            .get("net_id")
            .map(|x| fields::uuid("net_id", x))
            .transpose()?,
        port_id: a
            .get("port_id")
            .map(|x| fields::uuid("port_id", x))
            .transpose()?,
        fixed_ip: None,
        tag: a.get("tag").map(|x| fields::tag("tag", x)).transpose()?,
    };
    if let Some(ips) = a.get("fixed_ips") {
        let list = array("fixed_ips", ips)?;
        // Items first, then the counts, as the validator reports them.
        for (i, item) in list.iter().enumerate() {
            let at = i.to_string();
            let ip = object(Some(&at), item)?;
            check_additional(Some(&at), item, ip, &["ip_address"])?;
            check_required(Some(&at), item, ip, &["ip_address"])?;
            if let Some(addr) = ip.get("ip_address") {
                req.fixed_ip = Some(fields::ip_address("ip_address", addr)?);
            }
        }
        if list.is_empty() {
            return Err(invalid(
                "fixed_ips",
                ips,
                format!("{} is too short", py::repr(ips)),
            ));
        }
        if list.len() > 1 {
            return Err(invalid(
                "fixed_ips",
                ips,
                format!("{} is too long", py::repr(ips)),
            ));
        }
    }
    if req.net_id.is_some() && req.port_id.is_some() {
        return Err(Fault::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if req.fixed_ip.is_some() && req.net_id.is_none() {
        return Err(Fault::bad_request(
            "Must input network_id when request IP address",
        ));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NET: &str = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";

    fn err(body: Value, minor: u32) -> String {
        parse_interface_attach(&body, Microversion::new(2, minor))
            .expect_err("rejected")
            .message
    }

    #[test]
    fn an_empty_or_missing_attachment_asks_for_nothing() {
        let v = Microversion::new(2, 1);
        assert_eq!(
            parse_interface_attach(&json!({}), v).expect("ok"),
            InterfaceAttach::default()
        );
        assert_eq!(
            parse_interface_attach(&json!({"interfaceAttachment": {}}), v).expect("ok"),
            InterfaceAttach::default()
        );
    }

    #[test]
    fn a_network_with_an_address_and_a_tag() {
        let body = json!({"interfaceAttachment": {
            "net_id": NET, "fixed_ips": [{"ip_address": "10.0.0.7"}], "tag": "eth9"}});
        let r = parse_interface_attach(&body, Microversion::new(2, 49)).expect("ok");
        assert_eq!(r.net_id.as_deref(), Some(NET));
        assert_eq!(r.fixed_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(r.tag.as_deref(), Some("eth9"));
    }

    #[test]
    fn an_unknown_key_is_framed_at_the_attachment() {
        let m = err(json!({"interfaceAttachment": {"bogus": 1}}), 1);
        assert!(
            m.starts_with("Invalid input for field/attribute interfaceAttachment. Value: "),
            "{m}"
        );
        assert!(
            m.ends_with("Additional properties are not allowed ('bogus' was unexpected)"),
            "{m}"
        );
    }

    #[test]
    fn the_tag_needs_2_49() {
        let m = err(json!({"interfaceAttachment": {"tag": "x"}}), 48);
        assert!(m.ends_with("('tag' was unexpected)"), "{m}");
    }

    #[test]
    fn an_extra_top_level_key_is_bare() {
        assert_eq!(
            err(json!({"interfaceAttachment": {}, "x": 1}), 1),
            "Additional properties are not allowed ('x' was unexpected)"
        );
    }

    #[test]
    fn ids_must_be_uuids() {
        let m = err(json!({"interfaceAttachment": {"net_id": "nope"}}), 1);
        assert_eq!(
            m,
            "Invalid input for field/attribute net_id. Value: nope. 'nope' is not a 'uuid'"
        );
    }

    #[test]
    fn exactly_one_fixed_address() {
        let m = err(
            json!({"interfaceAttachment": {"net_id": NET, "fixed_ips": []}}),
            1,
        );
        assert_eq!(
            m,
            "Invalid input for field/attribute fixed_ips. Value: []. [] is too short"
        );
        let two = json!([{"ip_address": "10.0.0.7"}, {"ip_address": "10.0.0.8"}]);
        let m = err(
            json!({"interfaceAttachment": {"net_id": NET, "fixed_ips": two}}),
            1,
        );
        assert!(m.ends_with("is too long"), "{m}");
        let m = err(
            json!({"interfaceAttachment": {"net_id": NET, "fixed_ips": [{}]}}),
            1,
        );
        assert!(m.ends_with("'ip_address' is a required property"), "{m}");
        let m = err(
            json!({"interfaceAttachment": {"net_id": NET, "fixed_ips": [{"ip_address": "x"}]}}),
            1,
        );
        assert!(
            m.starts_with("Invalid input for field/attribute ip_address."),
            "{m}"
        );
    }

    #[test]
    fn the_handlers_cross_field_rules() {
        assert_eq!(
            err(
                json!({"interfaceAttachment": {"net_id": NET, "port_id": NET}}),
                1
            ),
            "Must not input both network_id and port_id"
        );
        assert_eq!(
            err(
                json!({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.0.0.7"}]}}),
                1
            ),
            "Must input network_id when request IP address"
        );
    }
}
