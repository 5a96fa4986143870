//! `GET /volumes/summary` (3.12+; `metadata` from 3.36): how many volumes
//! the project has and their total size; and `GET /extensions`, the API
//! extensions this block storage has.

use super::*;

pub(super) async fn volume_summary(
    State(app): A,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    if r.minor < 12 {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let everyone = r.admin()
        && q.as_deref().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "all_tenants" && !matches!(v.as_ref(), "0" | "false" | "False"))
        });
    let mine = app
        .volumes
        .table
        .filter(|v| everyone || v.project_id == r.ctx.project_id);
    let mut summary = json!({
        "total_count": mine.len(),
        "total_size": mine.iter().map(|v| v.size).sum::<u64>(),
    });
    if r.minor >= 36 {
        let mut meta: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in &mine {
            for (k, val) in &v.metadata {
                let seen = meta.entry(k.clone()).or_default();
                if !seen.contains(val) {
                    seen.push(val.clone());
                }
            }
        }
        summary["metadata"] = json!(meta);
    }
    Ok(r.answer(StatusCode::OK, Some(json!({"volume-summary": summary}))))
}

/// The extensions this API has (alias, name, what it adds).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("os-admin-actions", "AdminActions", "Enable admin actions."),
    (
        "os-availability-zone",
        "AvailabilityZones",
        "Describe Availability Zones.",
    ),
    (
        "os-extended-snapshot-attributes",
        "ExtendedSnapshotAttributes",
        "Extended SnapshotAttributes support.",
    ),
    (
        "os-vol-host-attr",
        "VolumeHostAttribute",
        "Expose host as an attribute of a volume.",
    ),
    (
        "os-vol-image-meta",
        "VolumeImageMetadata",
        "Show image metadata associated with the volume.",
    ),
    (
        "os-vol-mig-status-attr",
        "VolumeMigStatusAttribute",
        "Expose migration_status as an attribute of a volume.",
    ),
    (
        "os-vol-tenant-attr",
        "VolumeTenantAttribute",
        "Expose the internal project_id as an attribute of a volume.",
    ),
    (
        "os-volume-actions",
        "VolumeActions",
        "Enable volume actions.",
    ),
    ("os-types-manage", "TypesManage", "Types manage support."),
];

pub(super) async fn extensions(caller: Caller, headers: HeaderMap) -> Res {
    let r = Req::new(caller, &headers)?;
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, description)| {
            json!({
                "alias": alias,
                "name": name,
                "description": description,
                "links": [],
                "namespace": format!("https://docs.openstack.org/volume/ext/{alias}/api/v1"),
                "updated": "2013-01-01T00:00:00+00:00",
            })
        })
        .collect();
    Ok(r.answer(StatusCode::OK, Some(json!({"extensions": list}))))
}
