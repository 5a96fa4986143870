//! The agent API's foundation: the trust between control replicas and the
//! agents on hypervisor hosts. [`pki`] keeps the cloud's CA and the
//! one-time enrollment tokens in the database and issues certificates;
//! [`tls`] makes the mutually authenticated TLS configurations both ends
//! use. (`rova control enroll` prints a token.)

pub mod control;
pub mod openapi;
pub mod pki;
pub mod remote;
pub mod tls;
pub mod types;
pub mod wire;
