//! Integration tests: one binary for every HTTP-level test.

mod actions;
mod admin_api;
mod common;
mod console_proxy;
mod crash;
mod edge_errors;
mod fleet;
mod fuzz;
mod identity_tokens;
mod image_network;
mod keypair_formats;
mod metadata_service;
mod microversions;
mod multi_create_bounds;
mod persisted_state;
mod qemu_driver;
mod rbac_matrix;
mod restart;
mod samples;
mod secgroups;
mod servers_create;
mod servers_list;
mod servers_misc;
mod sim_api;
mod step_faults;
mod storage;
