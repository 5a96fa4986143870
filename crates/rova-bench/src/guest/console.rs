//! The guest's serial console as the API returns it: boot, `ready` and
//! heartbeat lines parsed into a [`Console`].

/// What the guest said on its serial console. The API drops the final
/// newline, so the last line counts too, though it may be cut short if the
/// guest was still writing it: a `ready` line counts only with a
/// well-formed `uptime=` (two decimals, as the guest prints it), and a cut
/// heartbeat number is a prefix of the real one, so smaller; hence
/// `max_heartbeat`, and `first_heartbeat` is reliable once another line
/// follows it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Console {
    /// `ROVA-GUEST: ready ...` seen.
    pub(super) ready: bool,
    /// Its `uptime=` value (seconds since the guest kernel started).
    pub(super) ready_uptime: Option<f64>,
    /// `boot` lines, and their `boot_id`s.
    pub(super) boots: usize,
    pub(super) boot_ids: Vec<String>,
    first_heartbeat: Option<u64>,
    pub(super) max_heartbeat: Option<u64>,
    /// Every heartbeat number, in log order (the console keeps the lines
    /// a guest printed on the hosts it left, so a migrated guest's log
    /// runs on from its first boot).
    heartbeats: Vec<u64>,
    /// The last few protocol lines, for error messages.
    pub(super) tail: Vec<String>,
}

impl Console {
    /// The first heartbeat after `n`.
    pub(super) fn first_heartbeat_after(&self, n: u64) -> Option<u64> {
        self.heartbeats.iter().copied().find(|&h| h > n)
    }

    pub(super) fn parse(text: &str) -> Console {
        let mut c = Console::default();
        for raw in text.lines() {
            let Some((_, rest)) = raw.split_once("ROVA-GUEST: ") else {
                continue;
            };
            let line = rest.trim();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("ready") => {
                    if let Some(up) = field(line, "uptime").filter(|v| well_formed_uptime(v)) {
                        c.ready = true;
                        c.ready_uptime = up.parse().ok();
                    }
                }
                Some("heartbeat") => {
                    if let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) {
                        c.first_heartbeat.get_or_insert(n);
                        c.heartbeats.push(n);
                        c.max_heartbeat = c.max_heartbeat.max(Some(n));
                    }
                }
                Some("boot") => {
                    c.boots += 1;
                    if let Some(id) = field(line, "boot_id") {
                        c.boot_ids.push(id.to_string());
                    }
                }
                _ => {}
            }
            if c.tail.len() == 5 {
                c.tail.remove(0);
            }
            c.tail.push(line.to_string());
        }
        c
    }
}

/// `12.34`: digits, a dot, exactly two digits.
fn well_formed_uptime(v: &str) -> bool {
    v.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.len() == 2
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// `key=value` among whitespace-separated words.
pub(super) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines() {
        let text = "\x1b[0m\r\nROVA-GUEST: boot kernel=6.1 uptime=1.20 boot_id=abc\r\n\
[    2.0] random kernel line\r\n\
ROVA-GUEST: ready uptime=5.43\r\n\
ROVA-GUEST: heartbeat 0\r\nROVA-GUEST: heartbeat 1\r\nROVA-GUEST: heartbeat 2\r\n\
ROVA-GUEST: heartbe";
        let c = Console::parse(text);
        assert!(c.ready);
        assert_eq!(c.ready_uptime, Some(5.43));
        assert_eq!(c.boots, 1);
        assert_eq!(c.boot_ids, vec!["abc".to_string()]);
        assert_eq!(c.first_heartbeat, Some(0));
        assert_eq!(c.max_heartbeat, Some(2));
        // The API drops the final newline: the last line counts ...
        let last = Console::parse("x\nROVA-GUEST: ready uptime=11.25");
        assert!(last.ready);
        assert_eq!(last.ready_uptime, Some(11.25));
        // ... unless it is visibly cut short.
        for cut in ["ROVA-GUEST: ready uptime=11.2", "ROVA-GUEST: ready upt"] {
            assert!(!Console::parse(cut).ready, "{cut}");
        }
        // A cut heartbeat number is smaller than the one before it.
        let hb = Console::parse("ROVA-GUEST: heartbeat 19\nROVA-GUEST: heartbeat 2");
        assert_eq!(hb.first_heartbeat, Some(19));
        assert_eq!(hb.max_heartbeat, Some(19));
        // After a migration the log runs on: the first heartbeat after the
        // last one seen before is the next number when no line was lost.
        let moved = Console::parse(
            "ROVA-GUEST: heartbeat 7\nROVA-GUEST: heartbeat 8\nROVA-GUEST: heartbeat 9\n",
        );
        assert_eq!(moved.first_heartbeat_after(7), Some(8));
        assert_eq!(moved.first_heartbeat_after(9), None);
    }
}
