//! Cinder's `os-quota-sets`: a project's block storage limits (its own,
//! or the defaults), with usage (`?usage=true`), the defaults, and an
//! admin's update and delete (back to the defaults). Limits are whole
//! numbers from -1 (unlimited); a limit below what the project already
//! uses is taken (Cinder's default driver checks usage only for nested
//! quotas): it refuses new resources only.

use super::*;
use crate::volume::quota::DEFAULTS;

/// A project other than the caller's is an admin's to see.
fn may_see(r: &Req, target: &str) -> Result<(), Fault> {
    if r.admin() || target == r.ctx.project_id {
        Ok(())
    } else {
        Err(Fault::forbidden(
            "Policy doesn't allow volume_extension:quotas:show to be performed.",
        ))
    }
}

fn usage_wanted(q: Option<&str>) -> bool {
    q.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == "usage" && matches!(v.as_ref(), "true" | "True" | "1"))
    })
}

pub(super) async fn show(
    State(app): A,
    caller: Caller,
    Path((_, target)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    may_see(&r, &target)?;
    let limits = app.volumes.quota_set(&target);
    let mut set = Map::new();
    set.insert("id".into(), json!(target));
    if usage_wanted(q.as_deref()) {
        let used = app.volumes.usage(&target);
        for (k, limit) in &limits {
            let in_use = match k.as_str() {
                "volumes" => used.volumes as u64,
                "snapshots" => used.snapshots as u64,
                "gigabytes" => used.gigabytes,
                _ => 0,
            };
            set.insert(
                k.clone(),
                json!({"limit": limit, "in_use": in_use, "reserved": 0}),
            );
        }
    } else {
        for (k, limit) in &limits {
            set.insert(k.clone(), json!(limit));
        }
    }
    Ok(r.answer(StatusCode::OK, Some(json!({"quota_set": set}))))
}

pub(super) async fn defaults(
    caller: Caller,
    Path((_, target)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    let mut set = Map::new();
    set.insert("id".into(), json!(target));
    for (k, d) in DEFAULTS {
        set.insert(k.to_string(), json!(d));
    }
    Ok(r.answer(StatusCode::OK, Some(json!({"quota_set": set}))))
}

pub(super) async fn update(
    State(app): A,
    caller: Caller,
    Path((_, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.ctx.require_admin("volume_extension:quotas:update")?;
    let body = parse_json(&headers, &body)?;
    let o = wrapped(&body, "quota_set")?;
    let mut set = BTreeMap::new();
    for (k, v) in o {
        if k == "id" || k == "tenant_id" {
            continue;
        }
        if !DEFAULTS.iter().any(|(name, _)| name == k) {
            return Err(invalid_input(format!("Bad key(s) in quota set: {k}")).into());
        }
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(n) = n.filter(|n| *n >= -1) else {
            return Err(invalid_input(format!(
                "Quota limit {v} for {k} must be an integer greater than or equal to -1."
            ))
            .into());
        };
        // Cinder's default quota driver takes a limit below what the
        // project uses: only new resources are refused.
        set.insert(k.clone(), n);
    }
    let all = app.volumes.set_quota(&target, set).await?;
    Ok(r.answer(StatusCode::OK, Some(json!({"quota_set": all}))))
}

pub(super) async fn delete(
    State(app): A,
    caller: Caller,
    Path((_, target)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    r.ctx.require_admin("volume_extension:quotas:delete")?;
    app.volumes.delete_quota(&target).await?;
    Ok(r.answer(StatusCode::OK, None))
}
