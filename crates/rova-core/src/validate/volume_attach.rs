//! The `os-volume_attachments` bodies, checked against Nova's
//! `volume_attachments` schemas with Nova's texts: an attach names a
//! `volumeId` (uuid) and optionally a `device` (`/dev/…`, or null), from
//! 2.49 a `tag`, from 2.79 `delete_on_termination`; an update (2.85+)
//! names the same `volumeId` and may change `delete_on_termination`.

use super::fields::{self, check_additional, check_required, check_type, object, pattern_fail, Ty};
use crate::error::Fault;
use crate::microversion::Microversion;
use serde_json::{Map, Value};

/// Nova's device pattern (from `match_device`), as it prints it.
pub const DEVICE_PATTERN: &str = "(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$";

/// What an attach asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeAttachRequest {
    pub volume_id: String,
    pub device: Option<String>,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
}

/// Whether `d` matches [`DEVICE_PATTERN`] (searched, as the validator
/// does): `/dev/` then letters, then digits.
fn is_device(d: &str) -> bool {
    let Some(rest) = d.strip_prefix("/dev/") else {
        return false;
    };
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    letters > 0 && rest.bytes().skip(letters).all(|b| b.is_ascii_digit())
}

fn device(v: &Value) -> Result<Option<String>, Fault> {
    check_type("device", v, &[Ty::Str, Ty::Null])?;
    match v {
        Value::String(s) if is_device(s) => Ok(Some(s.clone())),
        Value::String(_) => Err(pattern_fail("device", v, DEVICE_PATTERN)),
        _ => Ok(None),
    }
}

/// The body's `volumeAttachment` object (its key, value and members).
fn attachment_object(body: &Value) -> Result<(&'static str, &Value, &Map<String, Value>), Fault> {
    let o = object(None, body)?;
    check_required(None, body, o, &["volumeAttachment"])?;
    check_additional(None, body, o, &["volumeAttachment"])?;
    let att = &o["volumeAttachment"];
    Ok((
        "volumeAttachment",
        att,
        object(Some("volumeAttachment"), att)?,
    ))
}

/// Parses an attach body at microversion `v`.
pub fn parse_volume_attach(body: &Value, v: Microversion) -> Result<VolumeAttachRequest, Fault> {
    let (field, att, a) = attachment_object(body)?;
    let mut allowed = vec!["volumeId", "device"];
    if v.at_least(49) {
        allowed.push("tag");
    }
    if v.at_least(79) {
        allowed.push("delete_on_termination");
    }
    check_required(Some(field), att, a, &["volumeId"])?;
    check_additional(Some(field), att, a, &allowed)?;
    Ok(VolumeAttachRequest {
        volume_id: fields::uuid("volumeId", &a["volumeId"])?,
        device: a.get("device").map(device).transpose()?.flatten(),
        tag: a.get("tag").map(|x| fields::tag("tag", x)).transpose()?,
        delete_on_termination: a
            .get("delete_on_termination")
            .map(|x| fields::boolean("delete_on_termination", x))
            .transpose()?
            .unwrap_or(false),
    })
}

/// What an update asks for: the volume it names and, from 2.85, a new
/// `delete_on_termination`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeAttachUpdate {
    pub volume_id: String,
    pub delete_on_termination: Option<bool>,
}

/// Parses an update body at microversion `v`.
pub fn parse_volume_attach_update(
    body: &Value,
    v: Microversion,
) -> Result<VolumeAttachUpdate, Fault> {
    let (field, att, a) = attachment_object(body)?;
    let allowed: &[&str] = if v.at_least(85) {
        &[
            "volumeId",
            "device",
            "tag",
            "delete_on_termination",
            "server_id",
            "id",
        ]
    } else {
        &["volumeId"]
    };
    check_required(Some(field), att, a, &["volumeId"])?;
    check_additional(Some(field), att, a, allowed)?;
    if let Some(d) = a.get("device") {
        device(d)?;
    }
    if let Some(t) = a.get("tag") {
        fields::tag("tag", t)?;
    }
    for key in ["server_id", "id"] {
        if let Some(x) = a.get(key) {
            fields::uuid(key, x)?;
        }
    }
    Ok(VolumeAttachUpdate {
        volume_id: fields::uuid("volumeId", &a["volumeId"])?,
        delete_on_termination: a
            .get("delete_on_termination")
            .map(|x| fields::boolean("delete_on_termination", x))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VOL: &str = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";

    fn mv(minor: u32) -> Microversion {
        Microversion::new(2, minor)
    }

    fn err(body: Value, minor: u32) -> String {
        parse_volume_attach(&body, mv(minor))
            .expect_err("rejected")
            .message
    }

    #[test]
    fn an_attach_names_a_volume_and_maybe_a_device() {
        let r = parse_volume_attach(
            &json!({"volumeAttachment": {"volumeId": VOL, "device": "/dev/vdc"}}),
            mv(1),
        )
        .expect("ok");
        assert_eq!(r.volume_id, VOL);
        assert_eq!(r.device.as_deref(), Some("/dev/vdc"));
        let r = parse_volume_attach(
            &json!({"volumeAttachment": {"volumeId": VOL, "device": null,
                "tag": "data", "delete_on_termination": true}}),
            mv(79),
        )
        .expect("ok");
        assert_eq!(
            (r.device, r.tag.as_deref(), r.delete_on_termination),
            (None, Some("data"), true)
        );
    }

    #[test]
    fn the_texts_of_nova_schema() {
        assert_eq!(
            err(json!({}), 1),
            "'volumeAttachment' is a required property"
        );
        assert_eq!(
            err(json!({"volumeAttachment": {}}), 1),
            "Invalid input for field/attribute volumeAttachment. Value: {}. 'volumeId' is a required property"
        );
        assert_eq!(
            err(json!({"volumeAttachment": {"volumeId": "x"}}), 1),
            "Invalid input for field/attribute volumeId. Value: x. 'x' is not a 'uuid'"
        );
        assert!(err(
            json!({"volumeAttachment": {"volumeId": VOL, "device": "vdb"}}),
            1
        )
        .ends_with("'vdb' does not match '(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$'"));
        assert!(err(
            json!({"volumeAttachment": {"volumeId": VOL, "tag": "t"}}),
            48
        )
        .ends_with("('tag' was unexpected)"));
        assert!(err(
            json!({"volumeAttachment": {"volumeId": VOL, "delete_on_termination": true}}),
            78
        )
        .ends_with("('delete_on_termination' was unexpected)"));
    }

    #[test]
    fn devices_as_the_pattern_takes_them() {
        for ok in ["/dev/vdb", "/dev/sdb1", "/dev/xvdz", "/dev/hda"] {
            assert!(is_device(ok), "{ok}");
        }
        for bad in ["/dev/", "/dev/1", "vdb", "/dev/vd-b", "/dev/VDB"] {
            assert!(!is_device(bad), "{bad}");
        }
    }

    #[test]
    fn an_update_changes_delete_on_termination_from_2_85() {
        let body = json!({"volumeAttachment": {"volumeId": VOL, "delete_on_termination": true}});
        let r = parse_volume_attach_update(&body, mv(85)).expect("ok");
        assert_eq!(r.delete_on_termination, Some(true));
        let e = parse_volume_attach_update(&body, mv(84)).expect_err("old");
        assert!(
            e.message
                .ends_with("('delete_on_termination' was unexpected)"),
            "{}",
            e.message
        );
    }
}
