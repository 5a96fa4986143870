//! Value-level helpers: the schema's format checks and error text,
//! Nova's boolean parsing, ISO 8601 timestamps, `quote_plus` and the
//! database text form of times.

use super::*;

/// Python's `repr()` of a string, as jsonschema quotes values.
pub(super) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn schema_error(name: &str, value: &str, detail: String) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for query parameters {name}. Value: {value}. {detail}"
    ))
}

/// The schema's check of one value.
pub(super) fn validate_value(
    name: &str,
    value: &str,
    kind: Kind,
    v: Microversion,
) -> Result<(), Fault> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Regex => {
            if value.is_empty() || Regex::new(value).is_err() {
                Err(schema_error(
                    name,
                    value,
                    format!("{} is not a 'regex'", py_repr(value)),
                ))
            } else {
                Ok(())
            }
        }
        Kind::DateTime => match parse_iso8601(value) {
            Some(_) => Ok(()),
            None => Err(schema_error(
                name,
                value,
                format!("{} is not a 'date-time'", py_repr(value)),
            )),
        },
        Kind::Limit => {
            if !value.bytes().all(|b| b.is_ascii_digit()) {
                Err(schema_error(
                    name,
                    value,
                    format!("{} does not match '^[0-9]*$'", py_repr(value)),
                ))
            } else if value.is_empty() {
                Err(schema_error(
                    name,
                    value,
                    format!("{} should be non-empty", py_repr(value)),
                ))
            } else {
                Ok(())
            }
        }
        Kind::SortKey => {
            let allowed = sort_key_enum(v);
            if allowed.contains(&value) {
                Ok(())
            } else {
                let list: Vec<String> = allowed.iter().map(|k| py_repr(k)).collect();
                Err(schema_error(
                    name,
                    value,
                    format!("{} is not one of [{}]", py_repr(value), list.join(", ")),
                ))
            }
        }
    }
}

/// `oslo_utils.strutils.bool_from_string` without a default: `None` when
/// the value is not a recognised boolean.
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    let lowered = s.trim().to_lowercase();
    if TRUE_STRINGS.contains(&lowered.as_str()) {
        Some(true)
    } else if FALSE_STRINGS.contains(&lowered.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// The strict parse: an unrecognised value is Nova's `InvalidInput` (400).
pub(super) fn strict_bool(s: &str) -> Result<bool, Fault> {
    parse_bool(s).ok_or_else(|| {
        let mut accepted: Vec<&str> = TRUE_STRINGS.iter().chain(FALSE_STRINGS).copied().collect();
        accepted.sort_unstable();
        let accepted: Vec<String> = accepted.iter().map(|a| format!("'{a}'")).collect();
        Fault::bad_request(format!(
            "Invalid input received: Unrecognized value '{s}', acceptable values are: {}",
            accepted.join(", ")
        ))
    })
}

fn iso8601_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        // year, then optionally a month (dashed or not), then optionally a
        // day (dashed or not) with an optional time and zone.
        Regex::new(concat!(
            r"^([0-9]{4})",
            r"(?:(?:-([0-9]{1,2})|([0-9]{2}))",
            r"(?:(?:-([0-9]{1,2})|([0-9]{2}))",
            r"(?:[ T]([0-9]{2})(?::?([0-9]{2}))?",
            r"(?::?([0-9]{1,2})(?:[.,]([0-9]+))?)?",
            r"(Z|([-+])([0-9]{2}):?([0-9]{2})?)?",
            r")?)?)?$"
        ))
        .ok()
    })
    .as_ref()
}

/// Parses an ISO 8601 date-time the way Nova's `date-time` format check and
/// `timeutils.parse_isotime` (the `iso8601` package) accept it: `YYYY`,
/// `YYYY-MM`, `YYYY-MM-DD`, `YYYYMMDD`, then optionally `T` or a space,
/// `HH[[:]MM[[:]SS[.fraction]]]` and `Z` / `±HH[[:]MM]`. No zone means UTC.
/// Returns `None` for anything else or an impossible date.
pub fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    let caps = iso8601_regex()?.captures(s)?;
    let num = |i: usize| -> Option<u32> { caps.get(i).and_then(|m| m.as_str().parse().ok()) };
    // A bare `YYYYMM` is not accepted.
    if caps.get(3).is_some() && caps.get(4).is_none() && caps.get(5).is_none() {
        return None;
    }
    let year: i32 = caps.get(1)?.as_str().parse().ok()?;
    if year < 1 {
        return None;
    }
    let month = num(2).or_else(|| num(3)).unwrap_or(1);
    let day = num(4).or_else(|| num(5)).unwrap_or(1);
    let micro = match caps.get(9) {
        Some(f) => {
            let mut digits: String = f.as_str().chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        None => 0,
    };
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(
        num(6).unwrap_or(0),
        num(7).unwrap_or(0),
        num(8).unwrap_or(0),
        micro,
    )?;
    let naive = NaiveDateTime::new(date, time);
    match caps.get(10).map(|m| m.as_str()) {
        None | Some("Z") => Some(Utc.from_utc_datetime(&naive)),
        Some(_) => {
            let secs =
                i64::from(num(12).unwrap_or(0)) * 3600 + i64::from(num(13).unwrap_or(0)) * 60;
            let secs = if caps.get(11).map(|m| m.as_str()) == Some("-") {
                -secs
            } else {
                secs
            };
            let offset = FixedOffset::east_opt(i32::try_from(secs).ok()?)?;
            let local = offset.from_local_datetime(&naive).single()?;
            Some(local.with_timezone(&Utc))
        }
    }
}

/// Python's `urllib.parse.quote_plus` with no extra safe characters.
pub(super) fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Nova's text form of a timestamp column (MySQL `DATETIME`).
pub(super) fn db_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
