//! Name rules outside the server body: the hostname Nova derives from a
//! display name, and keypair names (stricter before 2.92).

use super::fields;
use crate::error::Fault;
use crate::microversion::Microversion;
use serde_json::Value;

/// Nova's `sanitize_hostname` plus the create-time fallback: drop
/// characters outside Latin-1, keep 63 characters, turn space/`_`/`.` into
/// `-`, drop other non-word characters, lowercase, strip `.` and `-` from
/// the ends; if nothing is left, `Server-<uuid>`. (The `-<n>` suffix for
/// multiple create is the caller's.)
pub fn sanitize_hostname(display_name: &str, uuid: &str) -> String {
    let mut out = String::new();
    for c in display_name
        .chars()
        .filter(|c| (*c as u32) <= 0xff)
        .take(63)
    {
        let c = if matches!(c, ' ' | '_' | '.') { '-' } else { c };
        if c == '-' || c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    let trimmed = out.trim_matches(|c| c == '.' || c == '-');
    if trimmed.is_empty() {
        format!("Server-{uuid}")
    } else {
        trimmed.to_string()
    }
}

const KEYPAIR_PATTERN: &str = r"^[_\- a-zA-Z0-9]+$";
const KEYPAIR_PATTERN_V292: &str = r"^[_\-\@\. a-zA-Z0-9]+$";

/// A keypair name as the keypair create schema checks it: Nova's `name`
/// rules (printable, no edge whitespace, 1–255), then only `[a-zA-Z0-9 _-]`,
/// or from 2.92 also `@` and `.`. Errors use Nova's schema texts for the
/// `name` field.
pub fn keypair_name(name: &Value, v: Microversion) -> Result<String, Fault> {
    let s = fields::name("name", name)?;
    let extra: &[char] = if v.at_least(92) { &['@', '.'] } else { &[] };
    let ok = s.chars().all(|c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ' || extra.contains(&c)
    });
    if !ok {
        let pattern = if v.at_least(92) {
            KEYPAIR_PATTERN_V292
        } else {
            KEYPAIR_PATTERN
        };
        return Err(fields::pattern_fail("name", name, pattern));
    }
    Ok(s)
}

/// [`keypair_name`] for a name already known to be a string.
pub fn validate_keypair_name(name: &str, v: Microversion) -> Result<(), Fault> {
    keypair_name(&Value::String(name.to_string()), v).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

    #[test]
    fn hostnames() {
        assert_eq!(sanitize_hostname("My Server", ID), "my-server");
        assert_eq!(sanitize_hostname("web_01.example", ID), "web-01-example");
        assert_eq!(sanitize_hostname("..--abc--..", ID), "abc");
        assert_eq!(sanitize_hostname("a!b@c#d", ID), "abcd");
        assert_eq!(sanitize_hostname("Caf\u{c9}", ID), "caf\u{e9}");
        assert_eq!(
            sanitize_hostname("\u{4e2d}\u{6587}", ID),
            format!("Server-{ID}")
        );
        assert_eq!(sanitize_hostname("x\u{4e2d}y", ID), "xy");
        assert_eq!(sanitize_hostname("!!!", ID), format!("Server-{ID}"));
        assert_eq!(sanitize_hostname("", ID), format!("Server-{ID}"));
        let long = "a".repeat(70);
        assert_eq!(sanitize_hostname(&long, ID), "a".repeat(63));
        // Truncation happens before the cleanup, so the result may be shorter.
        let mixed = format!("{}!{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(sanitize_hostname(&mixed, ID), "a".repeat(62));
        assert_eq!(
            sanitize_hostname(&format!("{}-x", "a".repeat(62)), ID),
            "a".repeat(62)
        );
    }

    fn err(name: &str, minor: u32) -> (u16, String) {
        let e = validate_keypair_name(name, Microversion::new(2, minor)).expect_err("fault");
        (e.code, e.message)
    }

    #[test]
    fn keypair_names() {
        assert!(validate_keypair_name("my key_1-a", Microversion::new(2, 1)).is_ok());
        assert_eq!(
            err("me@host.org", 91),
            (
                400,
                "Invalid input for field/attribute name. Value: me@host.org. 'me@host.org' does not match '^[_\\\\- a-zA-Z0-9]+$'".into()
            )
        );
        assert!(validate_keypair_name("me@host.org", Microversion::new(2, 92)).is_ok());
        assert_eq!(
            err("bad/char", 92).1,
            "Invalid input for field/attribute name. Value: bad/char. 'bad/char' does not match '^[_\\\\-\\\\@\\\\. a-zA-Z0-9]+$'"
        );
        assert_eq!(
            err("", 2).1,
            "Invalid input for field/attribute name. Value: . '' should be non-empty"
        );
        assert_eq!(err(" lead", 2).1, fields::INVALID_NAME);
        assert!(err(&"k".repeat(256), 2).1.ends_with("is too long"));
        assert!(validate_keypair_name(&"k".repeat(255), Microversion::new(2, 2)).is_ok());
        let e = keypair_name(&Value::from(5), Microversion::new(2, 2)).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'"
        );
    }
}
