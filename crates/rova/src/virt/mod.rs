//! Real guests: the QEMU driver and what it needs beside the compute
//! service — QMP, QEMU command lines, disks, config drives, the accelerator
//! probe and the per-guest metadata service. None of it sees the
//! application: what it needs from the rest of the service comes through
//! [`env::GuestEnv`], which the compute service implements.

pub mod accel;
pub mod configdrive;
pub mod datapath;
pub mod disk;
pub mod env;
pub mod guest_image;
pub mod metadata_server;
pub mod qemu;
pub mod qmp;
#[cfg(test)]
pub(crate) mod stub_env;
pub mod vmspec;
