//! Python-compatible rendering for validation messages. Nova builds its 400
//! texts with Python's `str()`/`repr()` of the offending JSON value, so this
//! file owns that rendering (`'text'`, `True`, `None`, `{'k': 1}`) and the
//! Unicode "printable" classes Nova's name and description rules rely on.

use serde_json::Value;

/// Python `repr()` of a decoded JSON value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                repr_f64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => repr_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            // Keys sorted, so messages do not depend on serde_json's
            // `preserve_order` feature (Python would show request order).
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python `str()` of a decoded JSON value: strings bare, the rest as `repr`.
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python `repr()` of a string, quotes and escapes included.
pub fn repr_str(s: &str) -> String {
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
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_ascii() || py_isprintable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's float repr: `2.0`, `1.5`, `1e+16`, `1e-05`.
fn repr_f64(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust gives `1e16` / `1.5e-7`; Python wants `1e+16` / `1.5e-07`.
        let s = format!("{f:e}");
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Unicode `Zs` (space separators).
pub(crate) fn is_space_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Unicode `Cf` (format characters).
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// Categories Python never treats as printable: `Cc`, `Cf`, `Co`, `Zl`, `Zp`
/// and the noncharacters (the stable part of `Cn`).
fn is_never_printable(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || is_format_char(c)
        || matches!(c, '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}')
        || matches!(c, '\u{2028}' | '\u{2029}')
        || (0xfdd0..=0xfdef).contains(&u)
        || (u & 0xfffe) == 0xfffe
}

/// Python's `str.isprintable()` for one character.
pub(crate) fn py_isprintable(c: char) -> bool {
    c == ' ' || !(is_never_printable(c) || is_space_separator(c))
}

/// Nova's "printable" class used by its name and description regexes: a
/// character of the Basic Multilingual Plane (Nova only enumerates
/// U+0000..U+FFFE) that is neither `C*` nor `Zl`/`Zp`. Space separators count.
pub(crate) fn nova_printable(c: char) -> bool {
    (c as u32) < 0xffff && !is_never_printable(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(repr(&json!(null)), "None");
        assert_eq!(repr(&json!(true)), "True");
        assert_eq!(repr(&json!(false)), "False");
        assert_eq!(repr(&json!(-3)), "-3");
        assert_eq!(repr(&json!(2.0)), "2.0");
        assert_eq!(repr(&json!(1.5)), "1.5");
        assert_eq!(repr(&json!(1e16)), "1e+16");
        assert_eq!(repr(&json!(0.00001)), "1e-05");
        assert_eq!(str_of(&json!("abc")), "abc");
        assert_eq!(str_of(&json!(null)), "None");
    }

    #[test]
    fn strings() {
        assert_eq!(repr_str("abc"), "'abc'");
        assert_eq!(repr_str(""), "''");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("a\\b"), "'a\\\\b'");
        assert_eq!(repr_str("a\nb\tc"), "'a\\nb\\tc'");
        assert_eq!(repr_str("\u{1}"), "'\\x01'");
        assert_eq!(repr_str("caf\u{e9}"), "'caf\u{e9}'");
        assert_eq!(repr_str("\u{a0}"), "'\\xa0'");
        assert_eq!(repr_str("\u{200b}"), "'\\u200b'");
    }

    #[test]
    fn containers() {
        assert_eq!(
            repr(&json!({"b": [1, "x"], "a": null})),
            "{'a': None, 'b': [1, 'x']}"
        );
        assert_eq!(repr(&json!([])), "[]");
        assert_eq!(str_of(&json!({})), "{}");
    }

    #[test]
    fn printable_classes() {
        assert!(nova_printable('a'));
        assert!(nova_printable(' '));
        assert!(nova_printable('\u{3000}'));
        assert!(!nova_printable('\n'));
        assert!(!nova_printable('\u{200b}'));
        assert!(!nova_printable('\u{e000}'));
        assert!(!nova_printable('\u{1f600}'));
        assert!(py_isprintable('\u{1f600}'));
        assert!(!py_isprintable('\u{3000}'));
        assert!(is_space_separator('\u{2003}'));
    }
}
