//! Rova: an OpenStack Compute (Nova) compatible compute service.
//!
//! Layers, outermost first: `http` (edge: errors, context, parsing) and the
//! per-API routers (`identity::api`, `image::api`, `network::api`,
//! `compute::api`); the services (`identity`, `image`, `network`,
//! `compute`); the operations that run asynchronously (`compute::build`)
//! and the virt driver seam (`compute::driver`); storage (`store`).
//! Pure logic lives in the `rova-core` crate.

pub mod agent;
pub mod agent_api;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod compute;
pub mod config;
pub mod dashboard;
pub mod http;
pub mod identity;
pub mod image;
pub mod metrics;
pub mod network;
pub mod server;
pub mod sim_api;
pub mod store;
pub mod virt;
pub mod volume;
