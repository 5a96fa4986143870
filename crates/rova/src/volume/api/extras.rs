//! A volume's or a snapshot's metadata (whole and by key), the default
//! volume type, the availability zone and the absolute limits (volumes,
//! snapshots and the gigabytes they hold together).

use super::*;

// ---- metadata ----
//
// The handlers serve a volume's metadata and (`SNAP`) a snapshot's,
// which Cinder answers alike.

/// The metadata of volume (or, `SNAP`, snapshot) `id`.
fn meta_of<const SNAP: bool>(
    app: &App,
    r: &Req,
    id: &str,
) -> Result<BTreeMap<String, String>, Fault> {
    Ok(match SNAP {
        true => r.snapshot(app, id)?.metadata.clone(),
        false => r.volume(app, id)?.metadata.clone(),
    })
}

/// Changes the metadata of volume (or snapshot) `id`: what it is then.
async fn meta_change<const SNAP: bool>(
    app: &App,
    r: &Req,
    id: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> Result<BTreeMap<String, String>, Fault> {
    let now = app.clock.now();
    Ok(match SNAP {
        true => {
            let s = r.snapshot(app, id)?;
            let s = app
                .volumes
                .update_snapshot(&s, now, |s| change(&mut s.metadata))
                .await?;
            s.metadata.clone()
        }
        false => {
            let v = r.volume(app, id)?;
            let v = app
                .volumes
                .update(&v, now, |v| change(&mut v.metadata))
                .await?;
            v.metadata.clone()
        }
    })
}

/// The policy a metadata write (`update`, `delete`) needs.
fn meta_rule<const SNAP: bool>(what: &str) -> String {
    let of = if SNAP { "snapshot" } else { "volume" };
    format!("volume:{what}_{of}_metadata")
}

pub(super) async fn metadata_show<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let m = meta_of::<SNAP>(&app, &r, &id)?;
    Ok(r.answer(StatusCode::OK, Some(json!({ "metadata": m }))))
}

async fn metadata_write<const SNAP: bool>(
    app: Arc<App>,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    replace: bool,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member(&meta_rule::<SNAP>("update"))?;
    meta_of::<SNAP>(&app, &r, &id)?;
    let body = parse_json(&headers, &body)?;
    let m = body
        .get("metadata")
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let m = fields::metadata("metadata", m)?;
    let m = meta_change::<SNAP>(&app, &r, &id, |have| {
        if replace {
            *have = m;
        } else {
            have.extend(m);
        }
    })
    .await?;
    Ok(r.answer(StatusCode::OK, Some(json!({ "metadata": m }))))
}

pub(super) async fn metadata_merge<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    metadata_write::<SNAP>(app, caller, id, headers, body, false).await
}

pub(super) async fn metadata_replace<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    metadata_write::<SNAP>(app, caller, id, headers, body, true).await
}

fn no_meta<const SNAP: bool>(id: &str, key: &str) -> Fault {
    let what = if SNAP { "Snapshot" } else { "Volume" };
    Fault::not_found(format!("{what} {id} has no metadata with key {key}."))
}

pub(super) async fn meta_item_show<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let m = meta_of::<SNAP>(&app, &r, &id)?;
    let val = m.get(&key).ok_or_else(|| no_meta::<SNAP>(&id, &key))?;
    Ok(r.answer(StatusCode::OK, Some(json!({"meta": {key: val}}))))
}

pub(super) async fn meta_item_set<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member(&meta_rule::<SNAP>("update"))?;
    meta_of::<SNAP>(&app, &r, &id)?;
    let body = parse_json(&headers, &body)?;
    let meta = body
        .get("meta")
        .and_then(Value::as_object)
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    if meta.len() != 1 {
        return Err(Fault::bad_request("Request body contains too many items").into());
    }
    let Some((k, val)) = meta.iter().next() else {
        return Err(Fault::bad_request("Malformed request body").into());
    };
    if *k != key {
        return Err(Fault::bad_request("Request body and URI mismatch").into());
    }
    let m = fields::metadata("meta", &Value::Object(meta.clone()))?;
    let m = meta_change::<SNAP>(&app, &r, &id, |have| have.extend(m)).await?;
    let val = m.get(&key).cloned().unwrap_or_else(|| val.to_string());
    Ok(r.answer(StatusCode::OK, Some(json!({"meta": {key: val}}))))
}

pub(super) async fn meta_item_delete<const SNAP: bool>(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member(&meta_rule::<SNAP>("delete"))?;
    if !meta_of::<SNAP>(&app, &r, &id)?.contains_key(&key) {
        return Err(no_meta::<SNAP>(&id, &key).into());
    }
    meta_change::<SNAP>(&app, &r, &id, |have| {
        have.remove(&key);
    })
    .await?;
    Ok(r.answer(StatusCode::OK, None))
}

// ---- types, zones, limits ----

pub(super) fn default_type() -> Value {
    json!({
        "id": DEFAULT_TYPE_ID,
        "name": DEFAULT_TYPE,
        "description": "Default Volume Type",
        "is_public": true,
        "extra_specs": {},
        "os-volume-type-access:is_public": true,
        "qos_specs_id": null,
    })
}

pub(super) async fn types(caller: Caller, headers: HeaderMap) -> Res {
    let r = Req::new(caller, &headers)?;
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"volume_types": [default_type()]})),
    ))
}

pub(super) async fn type_default(caller: Caller, headers: HeaderMap) -> Res {
    let r = Req::new(caller, &headers)?;
    Ok(r.answer(StatusCode::OK, Some(json!({"volume_type": default_type()}))))
}

pub(super) async fn type_show(
    caller: Caller,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Res {
    let r = Req::new(caller, &headers)?;
    if id != DEFAULT_TYPE_ID && id != DEFAULT_TYPE {
        return Err(Fault::not_found(format!("Volume type {id} could not be found.")).into());
    }
    Ok(r.answer(StatusCode::OK, Some(json!({"volume_type": default_type()}))))
}

pub(super) async fn zones(caller: Caller, headers: HeaderMap) -> Res {
    let r = Req::new(caller, &headers)?;
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"availabilityZoneInfo": [
            {"zoneName": ZONE, "zoneState": {"available": true}}
        ]})),
    ))
}

pub(super) async fn limits(State(app): A, caller: Caller, headers: HeaderMap) -> Res {
    let r = Req::new(caller, &headers)?;
    let used = app.volumes.usage(&r.ctx.project_id);
    let q = app.volumes.quota_set(&r.ctx.project_id);
    let max = |k: &str| q.get(k).copied().unwrap_or(-1);
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": max("volumes"),
            "maxTotalVolumeGigabytes": max("gigabytes"),
            "maxTotalSnapshots": max("snapshots"),
            "maxTotalBackups": max("backups"),
            "maxTotalBackupGigabytes": max("backup_gigabytes"),
            "totalVolumesUsed": used.volumes,
            "totalGigabytesUsed": used.gigabytes,
            "totalSnapshotsUsed": used.snapshots,
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        }}})),
    ))
}
