//! Request-body validation for the server APIs: pure functions turning
//! JSON bodies into typed commands, or a [`Fault`](crate::Fault) carrying
//! Nova's status code and message (nova-facts §e, §g).
//!
//! - [`create`]: POST /servers ([`parse_create`]).
//! - [`bdm`]: block device mappings on create.
//! - [`update`]: PUT /servers/{id} ([`parse_update`]).
//! - [`meta_tags`]: the server metadata and tags APIs.
//! - [`interface`]: the `os-interface` attach body.
//! - [`volume_attach`]: the `os-volume_attachments` bodies.
//! - [`names`]: derived hostnames and keypair names.
//! - [`fields`]: the shared field rules (Nova's parameter types), usable by
//!   other body parsers (rebuild, actions).
//! - `py`: Python-style rendering of values inside messages.
//!
//! Nothing here does I/O; checks that need images, flavors, networks,
//! keypairs, AZs or policy are the caller's.

pub mod bdm;
pub mod create;
pub mod fields;
pub mod interface;
pub mod meta_tags;
pub mod names;
pub mod py;
pub mod update;
pub mod volume_attach;

pub use bdm::check_bdm_flavor_limits;
pub use create::{
    check_metadata_quota, id_from_href, parse_availability_zone, parse_create, CreateLimits,
    CreateServer, NetworkRequest, NetworksRequest,
};
pub use interface::{parse_interface_attach, InterfaceAttach};
pub use meta_tags::{
    parse_meta_item, parse_metadata_body, parse_tags_body, tag_limit_exceeded, validate_metadata,
    validate_tag, MAX_TAG_COUNT, MAX_TAG_LENGTH,
};
pub use names::{keypair_name, sanitize_hostname, validate_keypair_name};
pub use update::{parse_update, UpdateServer};
pub use volume_attach::{
    parse_volume_attach, parse_volume_attach_update, VolumeAttachRequest, VolumeAttachUpdate,
};
