//! The injected clock. Every "now" in Rova comes from here so that the
//! simulated mode can advance time on demand (reclaim intervals, shelve
//! offload, resize auto-confirm) without waiting.

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

/// Wall clock plus an offset that only moves forward.
#[derive(Default)]
pub struct Clock {
    offset: Mutex<Duration>,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            offset: Mutex::new(Duration::zero()),
        }
    }
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock()
    }
    /// Moves virtual time forward (simulated mode only).
    pub fn advance(&self, by: Duration) {
        let mut o = self.offset.lock();
        *o += by;
    }
    pub fn offset(&self) -> Duration {
        *self.offset.lock()
    }
}
