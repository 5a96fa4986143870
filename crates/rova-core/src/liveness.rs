//! Service liveness as Nova's database servicegroup driver decides it: a
//! service is up while it is not forced down and its last heartbeat is
//! no more than `service_down_time` seconds from now (either way: a clock
//! that moved back does not make a fresh heartbeat count as old), and the
//! `host_status` a server shows is derived from its host's compute service
//! in Nova's order — forced down, then disabled, then heartbeat.

use chrono::{DateTime, Utc};

/// Whether a service is up. `last_seen` is its last heartbeat (`None`:
/// it never reported, which Nova counts from the record's creation; a
/// service that never reported here is down).
pub fn is_up(
    forced_down: bool,
    last_seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    down_time_secs: i64,
) -> bool {
    if forced_down {
        return false;
    }
    match last_seen {
        None => false,
        Some(t) => (now - t).num_milliseconds().abs() <= down_time_secs.saturating_mul(1000),
    }
}

/// The `host_status` (2.16) of a server on a host whose compute service
/// is as given: `DOWN` when forced down, `MAINTENANCE` when disabled,
/// `UP` while its heartbeat is current, else `UNKNOWN`.
pub fn host_status(forced_down: bool, disabled: bool, up: bool) -> &'static str {
    if forced_down {
        "DOWN"
    } else if disabled {
        "MAINTENANCE"
    } else if up {
        "UP"
    } else {
        "UNKNOWN"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn up_within_down_time_either_side() {
        let now = t0();
        let cases = [
            (false, Some(now), true),
            (false, Some(now - Duration::seconds(60)), true),
            (false, Some(now - Duration::milliseconds(60_001)), false),
            (false, Some(now + Duration::seconds(59)), true),
            (false, Some(now + Duration::seconds(61)), false),
            (false, None, false),
            (true, Some(now), false),
            (true, None, false),
        ];
        for (forced, seen, up) in cases {
            assert_eq!(is_up(forced, seen, now, 60), up, "{forced} {seen:?}");
        }
    }

    #[test]
    fn host_status_in_novas_order() {
        // (forced_down, disabled, up) → status
        let rows = [
            ((true, true, true), "DOWN"),
            ((true, false, false), "DOWN"),
            ((false, true, true), "MAINTENANCE"),
            ((false, true, false), "MAINTENANCE"),
            ((false, false, true), "UP"),
            ((false, false, false), "UNKNOWN"),
        ];
        for ((f, d, u), want) in rows {
            assert_eq!(host_status(f, d, u), want);
        }
    }
}
