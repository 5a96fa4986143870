//! Block device mappings on create: the schema of `block_device_mapping`
//! (legacy) and `block_device_mapping_v2` items, the v2 `from_api` rules,
//! the legacy-to-v2 conversion (root device and implicit image mapping),
//! and the checks Nova's `_validate_bdm` makes that need no lookups (boot
//! sequence, sizes, disk bus). Flavor-dependent limits are offered as a
//! separate helper for the caller that holds the flavor.
//!
//! Submodules: `schema` (the item schemas), `convert` (from_api and the
//! legacy conversion) and `checks` (the `_validate_bdm` rules); their
//! items are re-exported here.

use super::fields::{self, check_additional, check_type, object, Ty, VResult};
use crate::error::Fault;
use crate::microversion::Microversion;
use crate::model::BlockDeviceMapping;
use serde_json::{Map, Value};

mod checks;
mod convert;
mod schema;

pub use checks::*;
pub(crate) use convert::*;
pub use schema::*;

#[cfg(test)]
const U: &str = "0f2e1d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

/// A request item from a JSON object (unit tests).
#[cfg(test)]
fn item(v: Value) -> BdmItem {
    v.as_object().cloned().expect("object")
}

/// The status and message of an expected fault (unit tests).
#[cfg(test)]
fn err<T: std::fmt::Debug>(r: VResult<T>) -> (u16, String) {
    let e = r.expect_err("expected a fault");
    (e.code, e.message)
}
