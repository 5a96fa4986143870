//! Parsers for reference strings the API hands on: the availability
//! zone (`az:host:node`) and an id from an href.

use super::*;

type AzParts = (Option<String>, Option<String>, Option<String>);

/// Nova's `parse_availability_zone`: `az`, `az:host`, `az:host:node`,
/// `az::node`; more than two colons is a 400. Empty parts become `None`.
pub fn parse_availability_zone(az: &str) -> Result<AzParts, Fault> {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (zone, host, node) = match az.matches(':').count() {
        0 => (az, "", ""),
        1 => {
            let (z, h) = az.split_once(':').unwrap_or((az, ""));
            (z, h, "")
        }
        2 if az.contains("::") => {
            let (z, n) = az.split_once("::").unwrap_or((az, ""));
            (z, "", n)
        }
        2 => {
            let mut parts = az.splitn(3, ':');
            let z = parts.next().unwrap_or("");
            let h = parts.next().unwrap_or("");
            let n = parts.next().unwrap_or("");
            (z, h, n)
        }
        _ => {
            return Err(Fault::bad_request(
                "Invalid input received: Unable to parse availability_zone",
            ))
        }
    };
    Ok((some(zone), some(host), some(node)))
}

/// Nova's `get_id_from_href`: the last path segment of a URL-ish string.
pub fn id_from_href(href: &str) -> String {
    let mut rest = href;
    if let Some(idx) = rest.find(':') {
        let scheme = &rest[..idx];
        let is_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            rest = &rest[idx + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        rest = match after.find(['/', '?', '#']) {
            Some(i) => &after[i..],
            None => "",
        };
    }
    if let Some(i) = rest.find('#') {
        rest = &rest[..i];
    }
    if let Some(i) = rest.find('?') {
        rest = &rest[..i];
    }
    rest.rsplit('/').next().unwrap_or("").to_string()
}
