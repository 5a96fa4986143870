//! PUT /servers/{id}: the update schema per microversion (name, access IPs,
//! disk config; description 2.19+, hostname 2.90+/FQDN 2.94+,
//! pinned_availability_zone 2.104+), typed as [`UpdateServer`]. The pinned
//! AZ's state rules (409s) need the server and stay with the caller.

use super::fields::{self, check_additional, check_required, object};
use crate::error::Fault;
use crate::microversion::Microversion;
use serde_json::Value;

/// A validated PUT /servers/{id} body. `None` means "not given".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateServer {
    pub name: Option<String>,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    /// `OS-DCF:diskConfig` (`AUTO` = true).
    pub auto_disk_config: Option<bool>,
    /// 2.19+: `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    /// 2.90+.
    pub hostname: Option<String>,
    /// 2.104+: `Some(None)` unpins.
    pub pinned_availability_zone: Option<Option<String>>,
}

fn update_properties(v: Microversion) -> Vec<&'static str> {
    let mut p = vec!["name", "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"];
    if v.at_least(19) {
        p.push("description");
    }
    if v.at_least(90) {
        p.push("hostname");
    }
    if v.at_least(104) {
        p.push("pinned_availability_zone");
    }
    p
}

/// Parses and validates a PUT /servers/{id} body.
pub fn parse_update(body: &Value, v: Microversion) -> Result<UpdateServer, Fault> {
    let root = object(None, body)?;
    let mut out = UpdateServer::default();
    if let Some(sv) = root.get("server") {
        let obj = object(Some("server"), sv)?;
        let props = update_properties(v);
        for key in &props {
            let Some(val) = obj.get(*key) else { continue };
            match *key {
                "name" => out.name = Some(fields::name(key, val)?),
                "OS-DCF:diskConfig" => out.auto_disk_config = Some(fields::disk_config(key, val)?),
                "accessIPv4" => out.access_ip_v4 = Some(fields::ipv4(key, val)?),
                "accessIPv6" => out.access_ip_v6 = Some(fields::ipv6(key, val)?),
                "description" => out.description = Some(fields::description(key, val)?),
                "hostname" => out.hostname = Some(fields::hostname(key, val, v.at_least(94))?),
                "pinned_availability_zone" => {
                    // oneOf [string 1-255, null]
                    let az = match val {
                        Value::Null => None,
                        Value::String(s) if (1..=255).contains(&fields::char_len(s)) => {
                            Some(s.clone())
                        }
                        _ => return Err(fields::one_of_fail(key, val)),
                    };
                    out.pinned_availability_zone = Some(az);
                }
                _ => {}
            }
        }
        check_additional(Some("server"), sv, obj, &props)?;
    }
    check_required(None, body, root, &["server"])?;
    check_additional(None, body, root, &["server"])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mv(minor: u32) -> Microversion {
        Microversion::new(2, minor)
    }

    fn err(body: Value, minor: u32) -> (u16, String) {
        let e = parse_update(&body, mv(minor)).expect_err("expected a fault");
        (e.code, e.message)
    }

    #[test]
    fn basic_fields() {
        let u = parse_update(
            &json!({"server": {"name": "new", "accessIPv4": "10.0.0.1", "accessIPv6": "::1",
                "OS-DCF:diskConfig": "AUTO"}}),
            mv(1),
        )
        .unwrap();
        assert_eq!(u.name.as_deref(), Some("new"));
        assert_eq!(u.access_ip_v4.as_deref(), Some("10.0.0.1"));
        assert_eq!(u.access_ip_v6.as_deref(), Some("::1"));
        assert_eq!(u.auto_disk_config, Some(true));
        assert_eq!(u.description, None);
        assert_eq!(
            parse_update(&json!({"server": {}}), mv(1)).unwrap(),
            UpdateServer::default()
        );
    }

    #[test]
    fn envelope() {
        assert_eq!(
            err(json!({}), 1),
            (400, "'server' is a required property".into())
        );
        assert_eq!(
            err(json!({"server": {}, "x": 1}), 1).1,
            "Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            err(json!({"server": []}), 1).1,
            "Invalid input for field/attribute server. Value: []. [] is not of type 'object'"
        );
        assert_eq!(err(json!([]), 1).1, "[] is not of type 'object'");
        assert_eq!(
            err(json!({"server": {"imageRef": "x"}}), 104).1,
            "Invalid input for field/attribute server. Value: {'imageRef': 'x'}. Additional properties are not allowed ('imageRef' was unexpected)"
        );
    }

    #[test]
    fn field_errors() {
        assert_eq!(
            err(json!({"server": {"name": " x"}}), 1).1,
            fields::INVALID_NAME
        );
        assert_eq!(
            err(json!({"server": {"name": ""}}), 1).1,
            "Invalid input for field/attribute name. Value: . '' should be non-empty"
        );
        assert_eq!(
            err(json!({"server": {"accessIPv4": "1.2.3"}}), 1).1,
            "Invalid input for field/attribute accessIPv4. Value: 1.2.3. '1.2.3' is not a 'ipv4'"
        );
        assert_eq!(
            err(json!({"server": {"OS-DCF:diskConfig": "auto"}}), 1).1,
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: auto. 'auto' is not one of ['AUTO', 'MANUAL']"
        );
    }

    #[test]
    fn description_boundary() {
        let body = json!({"server": {"description": "d"}});
        assert_eq!(
            err(body.clone(), 18).1,
            "Invalid input for field/attribute server. Value: {'description': 'd'}. Additional properties are not allowed ('description' was unexpected)"
        );
        let u = parse_update(&body, mv(19)).unwrap();
        assert_eq!(u.description, Some(Some("d".into())));
        let u = parse_update(&json!({"server": {"description": null}}), mv(19)).unwrap();
        assert_eq!(u.description, Some(None));
    }

    #[test]
    fn hostname_boundaries() {
        let body = json!({"server": {"hostname": "host-1"}});
        assert!(err(body.clone(), 89)
            .1
            .ends_with("('hostname' was unexpected)"));
        assert_eq!(
            parse_update(&body, mv(90)).unwrap().hostname.as_deref(),
            Some("host-1")
        );
        let fq = json!({"server": {"hostname": "host-1.example.org"}});
        assert_eq!(
            err(fq.clone(), 93).1,
            "Invalid input for field/attribute hostname. Value: host-1.example.org. 'host-1.example.org' does not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'"
        );
        assert_eq!(
            parse_update(&fq, mv(94)).unwrap().hostname.as_deref(),
            Some("host-1.example.org")
        );
    }

    #[test]
    fn pinned_az_boundary() {
        let body = json!({"server": {"pinned_availability_zone": "nova"}});
        assert!(err(body.clone(), 103)
            .1
            .ends_with("('pinned_availability_zone' was unexpected)"));
        assert_eq!(
            parse_update(&body, mv(104))
                .unwrap()
                .pinned_availability_zone,
            Some(Some("nova".into()))
        );
        assert_eq!(
            parse_update(
                &json!({"server": {"pinned_availability_zone": null}}),
                mv(104)
            )
            .unwrap()
            .pinned_availability_zone,
            Some(None)
        );
        assert_eq!(
            err(json!({"server": {"pinned_availability_zone": ""}}), 104).1,
            "Invalid input for field/attribute pinned_availability_zone. Value: . '' is not valid under any of the given schemas"
        );
    }
}
