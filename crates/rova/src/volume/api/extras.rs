//! A volume's metadata (whole and by key), the default volume type, the
//! availability zone and the absolute limits.

use super::*;

// ---- metadata ----

pub(super) async fn metadata_show(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let v = r.volume(&app, &id)?;
    Ok(r.answer(StatusCode::OK, Some(json!({"metadata": v.metadata}))))
}

async fn metadata_write(
    app: Arc<App>,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    replace: bool,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:update_volume_metadata")?;
    let v = r.volume(&app, &id)?;
    let body = parse_json(&headers, &body)?;
    let m = body
        .get("metadata")
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let m = fields::metadata("metadata", m)?;
    let v = app
        .volumes
        .update(&v, app.clock.now(), |v| {
            if replace {
                v.metadata = m;
            } else {
                v.metadata.extend(m);
            }
        })
        .await?;
    Ok(r.answer(StatusCode::OK, Some(json!({"metadata": v.metadata}))))
}

pub(super) async fn metadata_merge(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    metadata_write(app, caller, id, headers, body, false).await
}

pub(super) async fn metadata_replace(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    metadata_write(app, caller, id, headers, body, true).await
}

fn no_meta(id: &str, key: &str) -> Fault {
    Fault::not_found(format!("Volume {id} has no metadata with key {key}."))
}

pub(super) async fn meta_item_show(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let v = r.volume(&app, &id)?;
    let val = v.metadata.get(&key).ok_or_else(|| no_meta(&id, &key))?;
    Ok(r.answer(StatusCode::OK, Some(json!({"meta": {key: val}}))))
}

pub(super) async fn meta_item_set(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:update_volume_metadata")?;
    let v = r.volume(&app, &id)?;
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
    let v = app
        .volumes
        .update(&v, app.clock.now(), |v| v.metadata.extend(m))
        .await?;
    let val = v
        .metadata
        .get(&key)
        .cloned()
        .unwrap_or_else(|| val.to_string());
    Ok(r.answer(StatusCode::OK, Some(json!({"meta": {key: val}}))))
}

pub(super) async fn meta_item_delete(
    State(app): A,
    caller: Caller,
    Path((_, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.member("volume:delete_volume_metadata")?;
    let v = r.volume(&app, &id)?;
    if !v.metadata.contains_key(&key) {
        return Err(no_meta(&id, &key).into());
    }
    app.volumes
        .update(&v, app.clock.now(), |v| {
            v.metadata.remove(&key);
        })
        .await?;
    Ok(r.answer(StatusCode::OK, None))
}

// ---- types, zones, limits ----

fn default_type() -> Value {
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
    let mine = app
        .volumes
        .table
        .filter(|v| v.project_id == r.ctx.project_id);
    let used: u64 = mine.iter().map(|v| v.size).sum();
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": crate::volume::QUOTA_VOLUMES,
            "maxTotalVolumeGigabytes": crate::volume::QUOTA_GIGABYTES,
            "maxTotalSnapshots": 10,
            "maxTotalBackups": 10,
            "maxTotalBackupGigabytes": 1000,
            "totalVolumesUsed": mine.len(),
            "totalGigabytesUsed": used,
            "totalSnapshotsUsed": 0,
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        }}})),
    ))
}
