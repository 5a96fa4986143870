//! Unit tests for POST /servers validation (`create`), by rule and by
//! microversion boundary: the shared fixtures here, one submodule per
//! request field family.

use super::*;
use serde_json::json;

const IMG: &str = "70a599e0-31e7-49b7-b260-868f441e862b";
const NET: &str = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";
const PORT: &str = "ce531f90-199f-48c0-816c-13e38010b442";
const PORT2: &str = "ce531f90-199f-48c0-816c-13e38010b443";
const VOL: &str = "5ab1c8e4-16d0-4b18-9d2e-3f6c1a7e4b2d";

fn mv(minor: u32) -> Microversion {
    Microversion::new(2, minor)
}

/// A minimal valid server object for the version (networks at 2.37+).
fn base(minor: u32) -> Value {
    let mut s = json!({"name": "vm", "imageRef": IMG, "flavorRef": "1"});
    if minor >= 37 {
        s["networks"] = json!("auto");
    }
    s
}

fn with(minor: u32, extra: Value) -> Value {
    let mut s = base(minor);
    if let (Some(obj), Some(add)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in add {
            if v.is_null() && k.starts_with('-') {
                obj.remove(&k[1..]);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    json!({ "server": s })
}

fn ok(body: Value, minor: u32) -> CreateServer {
    match parse_create(&body, mv(minor), &CreateLimits::default()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected fault at 2.{minor}: {e}"),
    }
}

fn err(body: Value, minor: u32) -> (u16, String) {
    let e = parse_create(&body, mv(minor), &CreateLimits::default()).expect_err("expected a fault");
    (e.code, e.message)
}

fn unexpected(key: &str) -> String {
    format!("Additional properties are not allowed ('{key}' was unexpected)")
}

mod bdm;
mod envelope;
mod identity;
mod networks;
mod payload;
mod placement;
