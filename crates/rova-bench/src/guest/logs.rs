//! Figures read from rova's stderr: ANSI stripping, QEMU's live
//! migration totals and downtimes, and the driver's accelerator line.

use super::*;

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `key=<digits>` in a log line (the value may be quoted).
fn num_field(line: &str, key: &str) -> Option<u64> {
    let v = field(line, key)?.trim_matches('"');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// QEMU's `(total_ms, downtime_ms)` of every `live migration completed`
/// line about `uuid`, in order.
pub(super) fn migration_stats(log: &str, uuid: &str) -> Vec<(Option<u64>, Option<u64>)> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("live migration completed") && l.contains(uuid))
        .map(|l| (num_field(l, "total_ms"), num_field(l, "downtime_ms")))
        .collect()
}

/// The driver's start-up report: `rova: qemu driver: accelerator tcg: ...`
/// (its first line).
pub(super) fn accelerator_line(log: &str) -> Option<String> {
    strip_ansi(log)
        .lines()
        .find_map(|l| l.strip_prefix("rova: qemu driver: "))
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_figures_from_log() {
        let log = "2026-11-27T10:00:00Z \x1b[32m INFO\x1b[0m \x1b[2mrova::compute::live_migration\x1b[0m\x1b[2m:\x1b[0m live migration completed \x1b[3muuid\x1b[0m\x1b[2m=\x1b[0mU1 \x1b[3mtotal_ms\x1b[0m\x1b[2m=\x1b[0m812 \x1b[3mdowntime_ms\x1b[0m\x1b[2m=\x1b[0m14\n\
x INFO live migration completed uuid=U2 total_ms=5 downtime_ms=1\n\
y INFO live migration completed uuid=\"U1\" total_ms=900 downtime_ms=20\n";
        assert_eq!(
            migration_stats(log, "U1"),
            vec![(Some(812), Some(14)), (Some(900), Some(20))]
        );
        assert_eq!(migration_stats(log, "U3"), vec![]);
    }

    #[test]
    fn accelerator_from_log() {
        let log = "2026 INFO rova::server: qemu driver: accelerator tcg: x\n\
rova: qemu driver: accelerator tcg: using TCG: probe failed\nmore\n";
        assert_eq!(
            accelerator_line(log).as_deref(),
            Some("accelerator tcg: using TCG: probe failed")
        );
    }
}
