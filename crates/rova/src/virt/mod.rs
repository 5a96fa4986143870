//! Real guests: the QEMU driver and what it needs beside the compute
//! service — QMP, QEMU command lines, disks, config drives, the accelerator
//! probe and the per-guest metadata service.

pub mod accel;
pub mod configdrive;
pub mod disk;
pub mod guest_image;
pub mod metadata_server;
pub mod qemu;
pub mod qmp;
pub mod vmspec;
