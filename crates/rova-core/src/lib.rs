//! Rova's pure logic: Nova's states and status map, microversions, the
//! instance record, list-query semantics, request validation and the
//! restart table. No I/O
//! lives here; everything is tested exhaustively with unit tests.

pub mod admission;
pub mod error;
pub mod liveness;
pub mod metadata;
pub mod microversion;
pub mod model;
pub mod query;
pub mod restart;
pub mod scheduler;
pub mod states;
pub mod validate;

pub use error::{Fault, Result};
pub use microversion::Microversion;
