//! The discovery documents under `/network`: the API versions list, the
//! v2.0 resources index and the extensions this API provides.

use super::*;

/// Extensions whose behaviour this API actually provides.
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("project-id", "project-id field enabled", "Extension that indicates that project_id field is enabled."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("security-group", "security-group", "The security groups extension."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"),
];

pub(super) async fn versions(headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    axum::Json(json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{base}/network/v2.0/")}]}]}))
    .into_response()
}

pub(super) async fn resources(_caller: Caller, headers: HeaderMap) -> Response {
    let base = host_url(&headers);
    let res: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
        ("router", "routers"),
        ("floatingip", "floatingips"),
    ]
    .iter()
    .map(|(name, coll)| {
        json!({"name": name, "collection": coll.replace('-', "_"),
            "links": [{"rel": "self", "href": format!("{base}/network/v2.0/{coll}")}]})
    })
    .collect();
    axum::Json(json!({ "resources": res })).into_response()
}

fn extension_json(alias: &str, name: &str, desc: &str) -> Value {
    json!({"alias": alias, "name": name, "description": desc,
        "updated": "2024-01-01T00:00:00-00:00", "links": []})
}

pub(super) async fn extensions(_caller: Caller) -> Response {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(a, n, d)| extension_json(a, n, d))
        .collect();
    axum::Json(json!({ "extensions": list })).into_response()
}

pub(super) async fn extension(_caller: Caller, Path(alias): Path<String>) -> NResult<Response> {
    let (a, n, d) = EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .ok_or_else(|| {
            NeutronError::new(
                404,
                "HTTPNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })?;
    Ok(axum::Json(json!({"extension": extension_json(a, n, d)})).into_response())
}
