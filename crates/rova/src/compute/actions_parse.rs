//! Parsing `POST /servers/{id}/action` bodies into one typed
//! [`ServerAction`], per microversion, with Nova's 400 messages. Pure
//! parsing only; running the action is `actions_run`'s job.

use crate::http::Ctx;
use rova_core::model::InjectedFile;
use rova_core::states::VmState;
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One parsed action body.
#[derive(Debug, Clone)]
pub enum ServerAction {
    Reboot {
        hard: bool,
    },
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Lock {
        reason: Option<String>,
    },
    Unlock,
    ResetState {
        state: VmState,
    },
    ForceDelete,
    Restore,
    TriggerCrashDump,
    ConsoleOutput {
        length: Option<i64>,
    },
    Rebuild(Box<Rebuild>),
    Resize {
        flavor_ref: String,
        auto_disk_config: Option<bool>,
    },
    ConfirmResize,
    RevertResize,
    Shelve,
    ShelveOffload,
    Unshelve {
        availability_zone: Option<Option<String>>,
        host: Option<String>,
    },
    Rescue {
        admin_pass: Option<String>,
        image_ref: Option<String>,
    },
    Unrescue,
    ChangePassword {
        admin_pass: String,
    },
    CreateImage {
        name: String,
        metadata: BTreeMap<String, String>,
    },
    CreateBackup {
        name: String,
        backup_type: String,
        rotation: u64,
        metadata: BTreeMap<String, String>,
    },
    InjectNetworkInfo,
    ResetNetwork,
    /// The per-type console actions of 2.1–2.5 (`os-getVNCConsole`, ...).
    LegacyConsole {
        protocol: &'static str,
        console_type: String,
    },
    AddSecurityGroup {
        name: String,
    },
    RemoveSecurityGroup {
        name: String,
    },
    /// Cold migrate (`host` from 2.56).
    Migrate {
        host: Option<String>,
    },
    /// `os-migrateLive`.
    LiveMigrate(super::live_migration::LiveMigrateReq),
    /// `evacuate`.
    Evacuate(super::migrate::EvacuateReq),
}

/// The body of a rebuild.
#[derive(Debug, Clone, Default)]
pub struct Rebuild {
    pub image_ref: String,
    pub name: Option<String>,
    pub admin_pass: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub personality: Option<Vec<InjectedFile>>,
    pub preserve_ephemeral: bool,
    pub auto_disk_config: Option<bool>,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    pub description: Option<Option<String>>,
    pub key_name: Option<Option<String>>,
    pub user_data: Option<Option<String>>,
    pub trusted_image_certificates: Option<Option<Vec<String>>>,
    pub hostname: Option<String>,
}

fn object<'a>(field: &str, v: &'a Value) -> Result<&'a serde_json::Map<String, Value>, Fault> {
    v.as_object()
        .ok_or_else(|| fields::invalid(field, v, format!("{v} is not of type 'object'")))
}

fn only_keys(
    field: &str,
    o: &serde_json::Map<String, Value>,
    allowed: &[&str],
) -> Result<(), Fault> {
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute {field}. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
                Value::Object(o.clone())
            )));
        }
    }
    Ok(())
}

fn required<'a>(
    field: &str,
    o: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a Value, Fault> {
    o.get(key).ok_or_else(|| {
        Fault::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {}. '{key}' is a required property",
            Value::Object(o.clone())
        ))
    })
}

fn parse_rebuild(arg: &Value, ctx: &Ctx) -> Result<Rebuild, Fault> {
    let o = object("rebuild", arg)?;
    let mut allowed = vec![
        "imageRef",
        "name",
        "adminPass",
        "metadata",
        "preserve_ephemeral",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
    ];
    if !ctx.at_least(57) {
        allowed.push("personality");
    }
    if ctx.at_least(19) {
        allowed.push("description");
    }
    if ctx.at_least(54) {
        allowed.push("key_name");
    }
    if ctx.at_least(57) {
        allowed.push("user_data");
    }
    if ctx.at_least(63) {
        allowed.push("trusted_image_certificates");
    }
    if ctx.at_least(90) {
        allowed.push("hostname");
    }
    only_keys("rebuild", o, &allowed)?;
    let image_ref = required("rebuild", o, "imageRef")?;
    let image_ref = fields::uuid("imageRef", image_ref)?;
    let mut r = Rebuild {
        image_ref,
        ..Default::default()
    };
    for (k, v) in o {
        match k.as_str() {
            "name" => r.name = Some(fields::name(k, v)?),
            "adminPass" => r.admin_pass = Some(fields::string(k, v)?),
            "metadata" => r.metadata = Some(fields::metadata(k, v)?),
            "preserve_ephemeral" => r.preserve_ephemeral = fields::boolean(k, v)?,
            "OS-DCF:diskConfig" => r.auto_disk_config = Some(fields::disk_config(k, v)?),
            "accessIPv4" => r.access_ip_v4 = Some(fields::ipv4(k, v)?),
            "accessIPv6" => r.access_ip_v6 = Some(fields::ipv6(k, v)?),
            "description" => r.description = Some(fields::description(k, v)?),
            "key_name" => {
                r.key_name = Some(match v {
                    Value::Null => None,
                    other => Some(fields::string(k, other)?),
                })
            }
            "user_data" => {
                r.user_data = Some(match v {
                    Value::Null => None,
                    other => Some(fields::base64(k, other, Some(65535))?),
                })
            }
            "trusted_image_certificates" => {
                r.trusted_image_certificates = Some(match v {
                    Value::Null => None,
                    Value::Array(a) if !a.is_empty() && a.len() <= 50 => Some(
                        a.iter()
                            .map(|x| fields::string(k, x))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    other => {
                        return Err(fields::invalid(k, other, "is not a valid certificate list"))
                    }
                })
            }
            "hostname" => r.hostname = Some(fields::hostname(k, v, ctx.at_least(94))?),
            "personality" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| fields::invalid(k, v, format!("{v} is not of type 'array'")))?;
                let mut files = Vec::new();
                for f in list {
                    let fo = object("personality", f)?;
                    let path = fields::string("path", required("personality", fo, "path")?)?;
                    let contents =
                        fields::base64("contents", required("personality", fo, "contents")?, None)?;
                    files.push(InjectedFile { path, contents });
                }
                r.personality = Some(files);
            }
            _ => {}
        }
    }
    Ok(r)
}

fn opt_metadata(o: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, String>, Fault> {
    match o.get("metadata") {
        None => Ok(BTreeMap::new()),
        Some(v) => fields::metadata("metadata", v),
    }
}

fn bad_input(field: &str, v: &Value, why: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {v}. {why}"
    ))
}

/// Parses an action body (`name` is its single key).
pub fn parse(name: &str, arg: &Value, ctx: &Ctx) -> Result<ServerAction, Fault> {
    Ok(match name {
        "reboot" => {
            let t = arg
                .get("type")
                .ok_or_else(|| bad_input("reboot", arg, "'type' is a required property"))?;
            match t.as_str() {
                Some("HARD" | "Hard" | "hard") => ServerAction::Reboot { hard: true },
                Some("SOFT" | "Soft" | "soft") => ServerAction::Reboot { hard: false },
                _ => {
                    return Err(bad_input(
                        "type",
                        t,
                        &format!(
                            "{t} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
                        ),
                    ))
                }
            }
        }
        "os-stop" => ServerAction::Stop,
        "os-start" => ServerAction::Start,
        "pause" => ServerAction::Pause,
        "unpause" => ServerAction::Unpause,
        "suspend" => ServerAction::Suspend,
        "resume" => ServerAction::Resume,
        "lock" => {
            let mut reason = None;
            if ctx.at_least(73) {
                match arg {
                    Value::Null => {}
                    Value::Object(o) => {
                        for k in o.keys() {
                            if k != "locked_reason" {
                                return Err(Fault::bad_request(format!(
                                    "Invalid input for field/attribute lock. Value: {arg}. Additional properties are not allowed ('{k}' was unexpected)"
                                )));
                            }
                        }
                        if let Some(r) = o.get("locked_reason") {
                            let s = r.as_str().ok_or_else(|| {
                                bad_input(
                                    "locked_reason",
                                    r,
                                    &format!("{r} is not of type 'string'"),
                                )
                            })?;
                            if s.is_empty() || s.chars().count() > 255 {
                                return Err(bad_input(
                                    "locked_reason",
                                    r,
                                    "length must be between 1 and 255",
                                ));
                            }
                            reason = Some(s.to_string());
                        }
                    }
                    other => {
                        return Err(bad_input(
                            "lock",
                            other,
                            &format!("{other} is not of type 'object', 'null'"),
                        ))
                    }
                }
            }
            ServerAction::Lock { reason }
        }
        "unlock" => ServerAction::Unlock,
        "os-resetState" => {
            let st = arg
                .get("state")
                .ok_or_else(|| bad_input("os-resetState", arg, "'state' is a required property"))?;
            match st.as_str() {
                Some("active") => ServerAction::ResetState {
                    state: VmState::Active,
                },
                Some("error") => ServerAction::ResetState {
                    state: VmState::Error,
                },
                _ => {
                    return Err(bad_input(
                        "state",
                        st,
                        &format!("{st} is not one of ['active', 'error']"),
                    ))
                }
            }
        }
        "forceDelete" => ServerAction::ForceDelete,
        "restore" => ServerAction::Restore,
        "trigger_crash_dump" => {
            if !ctx.at_least(17) {
                // Nova's dispatch turns a version mismatch into a plain 404.
                return Err(Fault::not_found("The resource could not be found."));
            }
            if !arg.is_null() {
                return Err(bad_input(
                    "trigger_crash_dump",
                    arg,
                    &format!("{arg} is not of type 'null'"),
                ));
            }
            ServerAction::TriggerCrashDump
        }
        "os-getConsoleOutput" => {
            let length = match arg.get("length") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_i64()
                        .ok_or_else(|| bad_input("length", &arg["length"], "is not an integer"))?,
                ),
                Some(Value::String(s)) => Some(s.parse::<i64>().map_err(|_| {
                    bad_input(
                        "length",
                        &arg["length"],
                        &format!("'{s}' does not match '^-?[0-9]+$'"),
                    )
                })?),
                Some(other) => {
                    return Err(bad_input(
                        "length",
                        other,
                        "is not of type 'integer', 'string', 'null'",
                    ))
                }
            };
            if let Some(l) = length {
                if l < -1 {
                    return Err(bad_input(
                        "length",
                        &json!(l),
                        &format!("{l} is less than the minimum of -1"),
                    ));
                }
            }
            ServerAction::ConsoleOutput { length }
        }
        "rebuild" => ServerAction::Rebuild(Box::new(parse_rebuild(arg, ctx)?)),
        "resize" => {
            let o = object("resize", arg)?;
            only_keys("resize", o, &["flavorRef", "OS-DCF:diskConfig"])?;
            let f = required("resize", o, "flavorRef")?;
            let flavor_ref = match f {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(fields::invalid(
                        "flavorRef",
                        other,
                        format!("{other} is not valid under any of the given schemas"),
                    ))
                }
            };
            let auto_disk_config = match o.get("OS-DCF:diskConfig") {
                Some(v) => Some(fields::disk_config("OS-DCF:diskConfig", v)?),
                None => None,
            };
            ServerAction::Resize {
                flavor_ref,
                auto_disk_config,
            }
        }
        "confirmResize" => ServerAction::ConfirmResize,
        "revertResize" => ServerAction::RevertResize,
        "shelve" => ServerAction::Shelve,
        "shelveOffload" => ServerAction::ShelveOffload,
        "unshelve" => {
            if !ctx.at_least(77) {
                ServerAction::Unshelve {
                    availability_zone: None,
                    host: None,
                }
            } else {
                match arg {
                    Value::Null => ServerAction::Unshelve {
                        availability_zone: None,
                        host: None,
                    },
                    Value::Object(o) => {
                        if ctx.at_least(91) {
                            only_keys("unshelve", o, &["availability_zone", "host"])?;
                            if o.is_empty() {
                                return Err(fields::invalid(
                                    "unshelve",
                                    arg,
                                    "{} does not have enough properties",
                                ));
                            }
                        } else {
                            only_keys("unshelve", o, &["availability_zone"])?;
                            required("unshelve", o, "availability_zone")?;
                        }
                        let availability_zone = match o.get("availability_zone") {
                            None => None,
                            Some(Value::Null) if ctx.at_least(91) => Some(None),
                            Some(v) => Some(Some(fields::string("availability_zone", v)?)),
                        };
                        let host = match o.get("host") {
                            None => None,
                            Some(v) => Some(fields::fqdn("host", v)?),
                        };
                        ServerAction::Unshelve {
                            availability_zone,
                            host,
                        }
                    }
                    other => {
                        return Err(fields::invalid(
                            "unshelve",
                            other,
                            format!("{other} is not of type 'object', 'null'"),
                        ))
                    }
                }
            }
        }
        "rescue" => match arg {
            Value::Null => ServerAction::Rescue {
                admin_pass: None,
                image_ref: None,
            },
            Value::Object(o) => {
                only_keys("rescue", o, &["adminPass", "rescue_image_ref"])?;
                let admin_pass = match o.get("adminPass") {
                    Some(v) => Some(fields::string("adminPass", v)?),
                    None => None,
                };
                let image_ref = match o.get("rescue_image_ref") {
                    Some(v) => Some(fields::uuid("rescue_image_ref", v)?),
                    None => None,
                };
                ServerAction::Rescue {
                    admin_pass,
                    image_ref,
                }
            }
            other => {
                return Err(fields::invalid(
                    "rescue",
                    other,
                    format!("{other} is not of type 'object', 'null'"),
                ))
            }
        },
        "unrescue" => ServerAction::Unrescue,
        "changePassword" => {
            let o = object("changePassword", arg)?;
            only_keys("changePassword", o, &["adminPass"])?;
            let p = required("changePassword", o, "adminPass")?;
            ServerAction::ChangePassword {
                admin_pass: fields::string("adminPass", p)?,
            }
        }
        "createImage" => {
            let o = object("createImage", arg)?;
            only_keys("createImage", o, &["name", "metadata"])?;
            let name = fields::name("name", required("createImage", o, "name")?)?;
            ServerAction::CreateImage {
                name,
                metadata: opt_metadata(o)?,
            }
        }
        "createBackup" => {
            let o = object("createBackup", arg)?;
            only_keys(
                "createBackup",
                o,
                &["name", "backup_type", "rotation", "metadata"],
            )?;
            let name = fields::name("name", required("createBackup", o, "name")?)?;
            let backup_type =
                fields::string("backup_type", required("createBackup", o, "backup_type")?)?;
            let r = required("createBackup", o, "rotation")?;
            let rotation = match r {
                Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
                Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                    .parse()
                    .map_err(|_| fields::invalid("rotation", r, "is not valid"))?,
                other => {
                    return Err(fields::invalid(
                        "rotation",
                        other,
                        format!("{other} is not valid under any of the given schemas"),
                    ))
                }
            };
            ServerAction::CreateBackup {
                name,
                backup_type,
                rotation,
                metadata: opt_metadata(o)?,
            }
        }
        "injectNetworkInfo" => ServerAction::InjectNetworkInfo,
        "resetNetwork" => ServerAction::ResetNetwork,
        "os-getVNCConsole" | "os-getSPICEConsole" | "os-getSerialConsole" | "os-getRDPConsole"
            if !ctx.at_least(6) =>
        {
            let o = object(name, arg)?;
            let t = fields::string("type", required(name, o, "type")?)?;
            let protocol = match name {
                "os-getVNCConsole" => "vnc",
                "os-getSPICEConsole" => "spice",
                "os-getSerialConsole" => "serial",
                _ => "rdp",
            };
            ServerAction::LegacyConsole {
                protocol,
                console_type: t,
            }
        }
        // Actions capped at an older microversion are 404 above it
        // (consoles at 2.5, the network proxy actions at 2.43).
        "os-getVNCConsole" | "os-getSPICEConsole" | "os-getSerialConsole" | "os-getRDPConsole" => {
            return Err(Fault::not_found("The resource could not be found."))
        }
        "addFixedIp" | "removeFixedIp" | "addFloatingIp" | "removeFloatingIp"
            if ctx.at_least(44) =>
        {
            return Err(Fault::not_found("The resource could not be found."))
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let o = object(name, arg)?;
            let n = fields::string("name", required(name, o, "name")?)?;
            if n.trim().is_empty() {
                return Err(Fault::bad_request("Security group name cannot be empty"));
            }
            if name == "addSecurityGroup" {
                ServerAction::AddSecurityGroup { name: n }
            } else {
                ServerAction::RemoveSecurityGroup { name: n }
            }
        }
        "migrate" => parse_migrate(arg, ctx)?,
        "os-migrateLive" => parse_live_migrate(arg, ctx)?,
        "evacuate" => parse_evacuate(arg, ctx)?,
        other => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )))
        }
    })
}

/// `host` of the move actions: an FQDN or (where allowed) null.
fn move_host(o: &serde_json::Map<String, Value>, nullable: bool) -> Result<Option<String>, Fault> {
    match o.get("host") {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(None),
        Some(v) => Ok(Some(fields::fqdn("host", v)?)),
    }
}

/// `{"migrate": null}`; from 2.56 also `{"migrate": {"host": ...}}`.
fn parse_migrate(arg: &Value, ctx: &Ctx) -> Result<ServerAction, Fault> {
    if !ctx.at_least(56) {
        return Ok(ServerAction::Migrate { host: None });
    }
    match arg {
        Value::Null => Ok(ServerAction::Migrate { host: None }),
        Value::Object(o) => {
            only_keys("migrate", o, &["host"])?;
            Ok(ServerAction::Migrate {
                host: move_host(o, true)?,
            })
        }
        other => Err(fields::invalid(
            "migrate",
            other,
            format!("{other} is not of type 'object', 'null'"),
        )),
    }
}

/// `os-migrateLive` per microversion: `block_migration` and
/// `disk_over_commit` booleans below 2.25; `block_migration` may be
/// `auto` from 2.25; `force` in 2.30–2.67.
fn parse_live_migrate(arg: &Value, ctx: &Ctx) -> Result<ServerAction, Fault> {
    let o = object("os-migrateLive", arg)?;
    let mut allowed = vec!["block_migration", "host"];
    if !ctx.at_least(25) {
        allowed.push("disk_over_commit");
    }
    let force_allowed = ctx.at_least(30) && !ctx.at_least(68);
    if force_allowed {
        allowed.push("force");
    }
    only_keys("os-migrateLive", o, &allowed)?;
    let bm = required("os-migrateLive", o, "block_migration")?;
    if !ctx.at_least(25) {
        fields::boolean(
            "disk_over_commit",
            required("os-migrateLive", o, "disk_over_commit")?,
        )?;
    }
    required("os-migrateLive", o, "host")?;
    let block_migration = match bm {
        Value::String(s) if s == "auto" && ctx.at_least(25) => None,
        other => Some(fields::boolean("block_migration", other)?),
    };
    let host = move_host(o, true)?;
    let force = match o.get("force") {
        Some(v) if force_allowed => fields::boolean("force", v)?,
        _ => false,
    };
    if force && host.is_none() {
        return Err(Fault::bad_request(
            "Can't force to a non-provided destination",
        ));
    }
    Ok(ServerAction::LiveMigrate(
        super::live_migration::LiveMigrateReq {
            host,
            block_migration,
            force,
        },
    ))
}

/// `evacuate` per microversion: `onSharedStorage` required below 2.14,
/// `force` in 2.29–2.67.
fn parse_evacuate(arg: &Value, ctx: &Ctx) -> Result<ServerAction, Fault> {
    let o = object("evacuate", arg)?;
    let mut allowed = vec!["host", "adminPass"];
    if !ctx.at_least(14) {
        allowed.push("onSharedStorage");
    }
    let force_allowed = ctx.at_least(29) && !ctx.at_least(68);
    if force_allowed {
        allowed.push("force");
    }
    only_keys("evacuate", o, &allowed)?;
    let on_shared_storage = if ctx.at_least(14) {
        None
    } else {
        Some(fields::boolean(
            "onSharedStorage",
            required("evacuate", o, "onSharedStorage")?,
        )?)
    };
    let host = move_host(o, false)?;
    let admin_pass = match o.get("adminPass") {
        Some(v) => Some(fields::string("adminPass", v)?),
        None => None,
    };
    let force = match o.get("force") {
        Some(v) if force_allowed => fields::boolean("force", v)?,
        _ => false,
    };
    if force && host.is_none() {
        return Err(Fault::bad_request(
            "Can't force to a non-provided destination",
        ));
    }
    Ok(ServerAction::Evacuate(super::migrate::EvacuateReq {
        host,
        admin_pass,
        on_shared_storage,
    }))
}
