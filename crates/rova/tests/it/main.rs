//! Integration tests: one binary for every HTTP-level test.

mod common;
mod servers_create;
