//! The injected clock. Every "now" in Rova comes from here so that the
//! simulated mode can advance time on demand (reclaim intervals, shelve
//! offload, resize auto-confirm) without waiting. The offset is a row of
//! kind `clock_offset` (see [`Clock::load`]), so a restart keeps it and
//! every process sharing the database follows an advance made in another.

use crate::store::{Store, Table};
use chrono::{DateTime, Duration, TimeZone, Utc};
use parking_lot::Mutex;
use rova_core::Fault;
use std::sync::Arc;

/// The stored offset (one row, id [`OFFSET_ROW`]).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct StoredOffset {
    pub offset_ms: i64,
}

/// The id of the one `clock_offset` row.
const OFFSET_ROW: &str = "virtual";

/// The most one advance may move the clock: ten years of seconds.
pub const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 86_400;

/// Virtual time stays before this instant: Nova's timestamps are Python
/// datetimes, which end with year 9999, and every "now + interval" Rova
/// computes must still fit.
pub fn latest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Wall clock plus an offset that only moves forward.
#[derive(Default)]
pub struct Clock {
    offset: Arc<Mutex<Duration>>,
    /// Where the offset is kept (absent for a clock only tests use).
    stored: Option<Table<StoredOffset>>,
}

impl Clock {
    pub fn new() -> Self {
        Clock::default()
    }
    /// The clock with the offset stored in `store` (zero when none is).
    pub fn load(store: &Arc<Store>) -> Result<Self, String> {
        let stored: Table<StoredOffset> = Table::load("clock_offset", store)?;
        let ms = stored.get(OFFSET_ROW).map(|o| o.offset_ms).unwrap_or(0);
        let offset = Arc::new(Mutex::new(Duration::milliseconds(ms.max(0))));
        // Another process's advance (or the row as stored after a refused
        // write) moves this clock too.
        let follow = offset.clone();
        stored.watch(Box::new(move |_, after: Option<&StoredOffset>| {
            if let Some(row) = after {
                *follow.lock() = Duration::milliseconds(row.offset_ms.max(0));
            }
        }));
        Ok(Clock {
            offset,
            stored: Some(stored),
        })
    }
    /// [`Clock::try_advance_seconds`], the new offset durable before this
    /// returns. A refused step is a 400 and changes nothing.
    pub async fn advance_seconds_stored(&self, secs: i64) -> Result<(), Fault> {
        let Some(stored) = &self.stored else {
            return self.try_advance_seconds(secs).map_err(Fault::bad_request);
        };
        // The row lock is held while the offset moves and the write is
        // queued, so concurrent advances reach the disk in order.
        stored
            .upsert(OFFSET_ROW, StoredOffset::default, |row| {
                self.try_advance_seconds(secs).map_err(Fault::bad_request)?;
                row.offset_ms = self.offset().num_milliseconds();
                Ok(())
            })
            .await
            .map(drop)
    }
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock()
    }
    /// Moves virtual time forward by `by` (tests); a step
    /// [`Clock::try_advance`] refuses is logged and ignored.
    pub fn advance(&self, by: Duration) {
        if let Err(e) = self.try_advance(by) {
            tracing::warn!("clock not advanced: {e}");
        }
    }
    /// Moves virtual time forward by `by`. Refuses, changing nothing, a negative step, one longer than
    /// [`MAX_ADVANCE_SECONDS`], or one that would carry the clock past
    /// [`latest`].
    pub fn try_advance(&self, by: Duration) -> Result<(), String> {
        if by < Duration::zero() {
            return Err("The clock only moves forward.".into());
        }
        if by.num_seconds() > MAX_ADVANCE_SECONDS {
            return Err(format!(
                "The clock advances at most {MAX_ADVANCE_SECONDS} seconds (ten years) at a time."
            ));
        }
        let mut o = self.offset.lock();
        let next = o
            .checked_add(&by)
            .filter(|n| {
                Utc::now()
                    .checked_add_signed(*n)
                    .is_some_and(|t| t < latest())
            })
            .ok_or_else(|| format!("The clock cannot move past {}.", latest().to_rfc3339()))?;
        *o = next;
        Ok(())
    }
    /// [`Clock::try_advance`] by whole seconds.
    pub fn try_advance_seconds(&self, secs: i64) -> Result<(), String> {
        let by = Duration::try_seconds(secs)
            .ok_or_else(|| format!("{secs} seconds is not a representable duration."))?;
        self.try_advance(by)
    }
    pub fn offset(&self) -> Duration {
        *self.offset.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_is_bounded_and_refusals_change_nothing() {
        let c = Clock::new();
        assert!(c.try_advance_seconds(60).is_ok());
        assert_eq!(c.offset().num_seconds(), 60);
        for bad in [-1, MAX_ADVANCE_SECONDS + 1, i64::MAX, i64::MIN] {
            assert!(c.try_advance_seconds(bad).is_err(), "{bad}");
            assert_eq!(c.offset().num_seconds(), 60, "{bad} changed the clock");
        }
        assert!(c.try_advance_seconds(MAX_ADVANCE_SECONDS).is_ok());
        // Ten years at a time, the clock stops short of year 9999.
        let mut steps = 0;
        while c.try_advance_seconds(MAX_ADVANCE_SECONDS).is_ok() {
            steps += 1;
            assert!(steps < 1000, "the clock never stopped");
        }
        let before = c.offset();
        assert!(c.now() < latest());
        assert!(c.try_advance_seconds(MAX_ADVANCE_SECONDS).is_err());
        assert_eq!(c.offset(), before);
        // Smaller steps still fit until the limit.
        assert!(c.try_advance_seconds(1).is_ok());
    }
}
