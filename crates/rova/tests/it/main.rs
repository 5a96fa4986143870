//! Integration tests: one binary for every HTTP-level test.

mod common;
mod servers_create;
mod servers_list;
mod image_network;
mod microversions;
mod samples;
mod servers_misc;
mod actions;
mod fleet;
mod secgroups;
