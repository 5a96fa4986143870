//! Compute API microversions: parsing the request headers and comparing
//! versions. Owns the supported range; knows nothing of HTTP types.

use crate::error::Fault;
use std::fmt;

/// A `major.minor` compute API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

/// Lowest version served.
pub const MIN: Microversion = Microversion { major: 2, minor: 1 };
/// Highest version served (Nova master's maximum).
pub const MAX: Microversion = Microversion {
    major: 2,
    minor: 104,
};

impl Microversion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Microversion { major, minor }
    }
    /// True when this version is `2.minor` or later.
    pub fn at_least(self, minor: u32) -> bool {
        self >= Microversion::new(2, minor)
    }

    /// Parses a header value (`2.60`, `latest`). Errors carry Nova's
    /// 400/406 messages.
    pub fn parse(value: &str) -> Result<Self, Fault> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("latest") {
            return Ok(MAX);
        }
        let invalid = || {
            Fault::bad_request(format!(
                "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
            ))
        };
        let (maj, min) = v.split_once('.').ok_or_else(invalid)?;
        let ok_major =
            !maj.is_empty() && maj.bytes().all(|b| b.is_ascii_digit()) && !maj.starts_with('0');
        let ok_minor = !min.is_empty()
            && min.bytes().all(|b| b.is_ascii_digit())
            && (min == "0" || !min.starts_with('0'));
        if !ok_major || !ok_minor {
            return Err(invalid());
        }
        let major: u32 = maj.parse().map_err(|_| invalid())?;
        let minor: u32 = min.parse().map_err(|_| invalid())?;
        let ver = Microversion { major, minor };
        if ver < MIN || ver > MAX {
            return Err(Fault::new(
                406,
                format!("Version {ver} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."),
            ));
        }
        Ok(ver)
    }

    /// Picks the version from the new-style header (`compute 2.x`, possibly
    /// listing several services) or the legacy header; new style wins.
    pub fn from_headers(new_style: Option<&str>, legacy: Option<&str>) -> Result<Self, Fault> {
        if let Some(h) = new_style {
            for part in h.split(',') {
                let mut it = part.split_whitespace();
                if let (Some(service), Some(ver)) = (it.next(), it.next()) {
                    if service.eq_ignore_ascii_case("compute") {
                        return Self::parse(ver);
                    }
                }
            }
        }
        if let Some(l) = legacy {
            return Self::parse(l);
        }
        Ok(MIN)
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds() {
        assert_eq!(
            Microversion::parse("2.60").unwrap(),
            Microversion::new(2, 60)
        );
        assert_eq!(Microversion::parse("latest").unwrap(), MAX);
        assert_eq!(Microversion::parse("2.01").unwrap_err().code, 400);
        assert_eq!(Microversion::parse("2.x").unwrap_err().code, 400);
        let e = Microversion::parse("2.200").unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.message.contains("maximum is 2.104"));
        assert_eq!(Microversion::parse("3.0").unwrap_err().code, 406);
        assert_eq!(Microversion::parse("2.0").unwrap_err().code, 406);
    }

    #[test]
    fn headers() {
        let v = Microversion::from_headers(Some("compute 2.10"), Some("2.5")).unwrap();
        assert_eq!(v, Microversion::new(2, 10));
        let v = Microversion::from_headers(Some("image 2.3"), Some("2.5")).unwrap();
        assert_eq!(v, Microversion::new(2, 5));
        assert_eq!(Microversion::from_headers(None, None).unwrap(), MIN);
    }
}
