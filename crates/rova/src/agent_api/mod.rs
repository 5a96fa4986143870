//! The agent API's foundation: the trust between control replicas and the
//! agents on hypervisor hosts. [`pki`] keeps the cloud's CA and the
//! one-time enrollment tokens in the database and issues certificates;
//! [`tls`] makes the mutually authenticated TLS configurations both ends
//! use. (`rova control enroll` prints a token.) [`control`] is a control
//! replica's agent listener, [`remote`] its drivers for agent hosts, and
//! `agent::remote_env` the agent's end of the guest-environment calls.

pub mod control;
mod env_calls;
pub mod openapi;
pub mod pki;
pub mod remote;
pub mod tls;
pub mod types;
pub mod wire;
