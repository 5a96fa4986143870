//! Rova's pure logic: Nova's states and status map, microversions, the
//! instance record, list-query semantics and request validation. No I/O
//! lives here; everything is tested exhaustively with unit tests.

pub mod error;
pub mod microversion;
pub mod model;
pub mod states;

pub use error::{Fault, Result};
pub use microversion::Microversion;
