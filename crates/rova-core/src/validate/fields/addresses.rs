//! Network-ish strings: IPv4 / IPv6 addresses, RFC 1123 hostnames and
//! FQDNs.

use super::*;

/// Python `ipaddress.IPv4Address` acceptance (no leading zeros).
pub fn is_ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Python `ipaddress.IPv6Address` acceptance, scope ids refused.
pub fn is_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// `{'type': 'string', 'format': 'ipv4'}`.
pub fn ipv4(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_ipv4(&s) {
        return Err(format_fail(field, v, "ipv4"));
    }
    Ok(s)
}

/// `{'type': 'string', 'format': 'ipv6'}`, returned in canonical form as
/// Nova stores it (its IPV6AddressField normalises through netaddr:
/// `0000:...:babe:220.12.22.2` becomes `::babe:dc0c:1602`).
pub fn ipv6(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    match s.parse::<std::net::Ipv6Addr>() {
        Ok(a) => Ok(a.to_string()),
        Err(_) => Err(format_fail(field, v, "ipv6")),
    }
}

/// `parameter_types.ip_address`: a string that is exactly one of IPv4/IPv6.
pub fn ip_address(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !is_ipv4(&s) && !is_ipv6(&s) {
        return Err(one_of_fail(field, v));
    }
    Ok(s)
}

/// `parameter_types.hostname` (RFC 1123 label, 2–63).
pub fn hostname_label(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    let b = s.as_bytes();
    let ok = b.len() >= 2
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return Err(pattern_fail(field, v, HOSTNAME_PATTERN));
    }
    min_length(field, v, &s, 2)?;
    max_length(field, v, &s, 63)?;
    Ok(s)
}

/// `parameter_types.fqdn` (1–255 of `[a-zA-Z0-9-._]`).
pub fn fqdn(field: &str, v: &Value) -> VResult<String> {
    let s = string(field, v)?;
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        return Err(pattern_fail(field, v, FQDN_PATTERN));
    }
    min_length(field, v, &s, 1)?;
    max_length(field, v, &s, 255)?;
    Ok(s)
}

/// `hostname` as accepted on create, PUT and rebuild: a label at
/// 2.90–2.93, an FQDN from 2.94.
pub fn hostname(field: &str, v: &Value, fqdn_allowed: bool) -> VResult<String> {
    if fqdn_allowed {
        fqdn(field, v)
    } else {
        hostname_label(field, v)
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::fields::*;
    use serde_json::json;

    #[test]
    fn ips() {
        assert!(is_ipv4("10.0.0.1"));
        assert!(!is_ipv4("10.0.0.01"));
        assert!(!is_ipv4("1.1.1.1.1"));
        assert!(is_ipv6("::1"));
        assert!(is_ipv6("2001:db8::ffff:1.2.3.4"));
        assert!(!is_ipv6("fe80::1%eth0"));
        assert_eq!(
            msg(ipv6("accessIPv6", &json!("1.1.1.1.1"))).1,
            "Invalid input for field/attribute accessIPv6. Value: 1.1.1.1.1. '1.1.1.1.1' is not a 'ipv6'"
        );
        assert_eq!(
            msg(ipv4("accessIPv4", &json!("::1"))).1,
            "Invalid input for field/attribute accessIPv4. Value: ::1. '::1' is not a 'ipv4'"
        );
        assert_eq!(
            msg(ip_address("fixed_ip", &json!("bad"))).1,
            "Invalid input for field/attribute fixed_ip. Value: bad. 'bad' is not valid under any of the given schemas"
        );
        assert_eq!(ip_address("fixed_ip", &json!("::2")).unwrap(), "::2");
    }

    #[test]
    fn hostnames_and_fqdns() {
        assert_eq!(hostname_label("h", &json!("ab")).unwrap(), "ab");
        assert_eq!(hostname_label("h", &json!("a-1-b")).unwrap(), "a-1-b");
        assert_eq!(
            msg(hostname_label("hostname", &json!("a"))).1,
            "Invalid input for field/attribute hostname. Value: a. 'a' does not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'"
        );
        assert!(hostname_label("h", &json!("-ab")).is_err());
        assert!(hostname_label("h", &json!("a.b")).is_err());
        assert_eq!(
            msg(hostname_label("hostname", &json!("a".repeat(64)))).1,
            format!(
                "Invalid input for field/attribute hostname. Value: {0}. '{0}' is too long",
                "a".repeat(64)
            )
        );
        assert_eq!(
            fqdn("h", &json!("a.example_1-x.org")).unwrap(),
            "a.example_1-x.org"
        );
        assert!(fqdn("h", &json!("a")).is_ok());
        assert_eq!(
            msg(fqdn("host", &json!("a b"))).1,
            "Invalid input for field/attribute host. Value: a b. 'a b' does not match '^[a-zA-Z0-9-._]*$'"
        );
        assert_eq!(
            msg(fqdn("host", &json!(""))).1,
            "Invalid input for field/attribute host. Value: . '' should be non-empty"
        );
        assert!(fqdn("host", &json!("a".repeat(256))).is_err());
    }
}
