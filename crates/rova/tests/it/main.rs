//! Integration tests: one binary for every HTTP-level test.

mod actions;
mod admin_api;
mod common;
mod console_proxy;
mod crash;
mod fleet;
mod image_network;
mod metadata_service;
mod microversions;
mod qemu_driver;
mod restart;
mod samples;
mod secgroups;
mod servers_create;
mod servers_list;
mod servers_misc;
