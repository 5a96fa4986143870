//! The simulated driver's fault catalogue: the named steps of the long
//! operations (build, resize / cold migrate with confirm and revert, live
//! migration) that an injected fault can fail, the step a fault without
//! `step` fails, where a slow operation is held, and the injected fault
//! itself (docs/simulation.md).

/// The named steps of the long operations, after Nova's own phases
/// (docs/simulation.md): a fault with `step` fails that step; one without
/// fails the operation's [`default_step`].
pub const STEPS: &[(&str, &[&str])] = &[
    (
        "spawn",
        &["scheduling", "networking", "block_device_mapping", "spawn"],
    ),
    ("resize", MOVE_STEPS),
    ("migrate", MOVE_STEPS),
    ("confirmResize", &["confirm_resize"]),
    ("revertResize", &["revert_resize", "finish_revert_resize"]),
    (
        "live-migration",
        &[
            "check_can_live_migrate_destination",
            "pre_live_migration",
            "live_migration",
            "post_live_migration",
            "rollback_live_migration_at_destination",
        ],
    ),
];

const MOVE_STEPS: &[&str] = &[
    "prep_resize",
    "resize_instance",
    "finish_resize",
    "confirm_resize",
    "revert_resize",
    "finish_revert_resize",
];

/// The steps an operation name has, if it has named steps.
pub fn steps_of(op: &str) -> Option<&'static [&'static str]> {
    STEPS.iter().find(|(o, _)| *o == op).map(|(_, s)| *s)
}

/// The step a fault without `step` fails: where the operation's driver
/// call has always been (the operation's own name when it has no steps).
pub fn default_step(op: &str) -> &str {
    match op {
        "resize" | "migrate" => "resize_instance",
        "live-migration" => "live_migration",
        "confirmResize" => "confirm_resize",
        "revertResize" => "revert_resize",
        other => other,
    }
}

/// The step a slow operation (`/rova/v1/sim/slow`) is held at: the move's
/// last step for a resize or migration (with the server in
/// `resize_finish`), else its default step.
pub(crate) fn slow_step(op: &str) -> &str {
    match op {
        "resize" | "migrate" => "finish_resize",
        other => default_step(other),
    }
}

/// An injected fault: the next `count` operations named `op` (on `host`,
/// or on any host) fail with `message` at `step` (none: the default step).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InjectedFault {
    pub op: String,
    pub count: u32,
    pub message: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl InjectedFault {
    /// Whether this fault fails `step` of one of `ops` on `host`.
    pub(crate) fn fires(&self, ops: &[&str], step: &str, host: Option<&str>) -> bool {
        self.count > 0
            && ops.contains(&self.op.as_str())
            && self.step.as_deref().unwrap_or(default_step(&self.op)) == step
            && (self.host.is_none() || self.host.as_deref() == host)
    }
}
