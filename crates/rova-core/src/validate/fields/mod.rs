//! Field-level checks shaped like Nova's JSON-schema parameter types
//! (`parameter_types.py`) with the same failure texts. Each check follows
//! the keyword order of Nova's schema (type, then pattern/format, then
//! lengths), because Nova reports the first failing keyword.
//!
//! A failure at any depth below the body is framed as
//! `Invalid input for field/attribute <key>. Value: <str(value)>. <message>`
//! where `<key>` is the innermost path element (an object key or a list
//! index); only a failure on the body itself is reported bare.
//!
//! Submodules by field family: `schema` (the JSON-schema primitives),
//! `strings` (name, description, uuid, base64), `addresses` (IPs,
//! hostnames, FQDNs), `scalars` (booleans, integers, flavorRef,
//! diskConfig) and `tags_metadata`; everything is re-exported here.

use super::py;
use crate::error::Fault;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Display;

pub(crate) type VResult<T> = Result<T, Fault>;

/// Nova's `InvalidName` text for a bad `name`-format value.
pub const INVALID_NAME: &str = "An invalid 'name' value was provided. The name must be: \
printable characters. Can not start or end with whitespace.";

/// The metadata key pattern as Nova prints it.
pub const METADATA_KEY_PATTERN: &str = "^[a-zA-Z0-9-_:. ]{1,255}$";
/// The tag pattern as Nova prints it.
pub const TAG_PATTERN: &str = "^[^,/]*$";
/// Longest tag.
pub const MAX_TAG_LENGTH: usize = 60;
/// Most tags on one server.
pub const MAX_TAG_COUNT: usize = 50;

const HOSTNAME_PATTERN: &str = "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$";
const FQDN_PATTERN: &str = "^[a-zA-Z0-9-._]*$";
/// Stand-in for Nova's generated "any printable character" regex, which is
/// thousands of characters long.
const DESCRIPTION_PATTERN: &str = "^[<printable characters>]*$";
const BOOLEAN_ENUM: &str = "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', \
'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']";

/// A schema failure below the body: Nova's "field/attribute" framing.
pub fn invalid(field: &str, value: &Value, message: impl Display) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {}. {message}",
        py::str_of(value)
    ))
}

mod addresses;
mod scalars;
mod schema;
mod strings;
mod tags_metadata;

pub use addresses::*;
pub use scalars::*;
pub use schema::*;
pub use strings::*;
pub use tags_metadata::*;

/// The status and message of an expected fault (unit tests).
#[cfg(test)]
fn msg<T: std::fmt::Debug>(r: VResult<T>) -> (u16, String) {
    let e = r.expect_err("expected a fault");
    (e.code, e.message)
}
