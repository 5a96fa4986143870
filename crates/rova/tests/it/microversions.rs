//! Microversion negotiation, version headers and documents, project ids in
//! URLs, tenancy isolation (404 for other projects' servers), reader
//! policy, version-gated routes and authentication (nova-facts §d, §g).

use crate::common::{self, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A raw request to `<base><path>` with optional token and headers.
async fn raw(
    cloud: &TestCloud,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut req = cloud.http.request(method, format!("{}{path}", cloud.base));
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::of(req).await
}

fn assert_version_headers(r: &Resp, v: &str) {
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some(format!("compute {v}").as_str()),
        "{}",
        r.text
    );
    assert_eq!(r.header("x-openstack-nova-api-version").as_deref(), Some(v));
    assert_eq!(
        r.header("vary").as_deref(),
        Some("OpenStack-API-Version, X-OpenStack-Nova-API-Version")
    );
}

fn assert_request_id(r: &Resp) {
    let id = r
        .header("x-openstack-request-id")
        .expect("x-openstack-request-id");
    assert!(id.starts_with("req-"), "{id}");
    assert!(uuid::Uuid::parse_str(&id[4..]).is_ok(), "{id}");
    assert_eq!(
        r.header("x-compute-request-id"),
        Some(id),
        "same id in both headers"
    );
}

async fn servers(cloud: &TestCloud, u: &User, headers: &[(&str, &str)]) -> Resp {
    raw(
        cloud,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&u.token),
        headers,
        None,
    )
    .await
}

#[tokio::test]
async fn negotiation_and_echo() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    // No header: 2.1.
    let r = servers(&cloud, &demo, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_version_headers(&r, "2.1");
    assert_request_id(&r);
    // New-style header.
    let r = servers(&cloud, &demo, &[("OpenStack-API-Version", "compute 2.60")]).await;
    assert_version_headers(&r, "2.60");
    // Legacy header alone.
    let r = servers(&cloud, &demo, &[("X-OpenStack-Nova-API-Version", "2.25")]).await;
    assert_version_headers(&r, "2.25");
    // Both: the new style wins.
    let r = servers(
        &cloud,
        &demo,
        &[
            ("OpenStack-API-Version", "compute 2.30"),
            ("X-OpenStack-Nova-API-Version", "2.5"),
        ],
    )
    .await;
    assert_version_headers(&r, "2.30");
    // A new-style header for another service does not count.
    let r = servers(
        &cloud,
        &demo,
        &[
            ("OpenStack-API-Version", "volume 3.10"),
            ("X-OpenStack-Nova-API-Version", "2.7"),
        ],
    )
    .await;
    assert_version_headers(&r, "2.7");
    // latest = the maximum.
    let r = servers(
        &cloud,
        &demo,
        &[("OpenStack-API-Version", "compute latest")],
    )
    .await;
    assert_version_headers(&r, "2.104");
    let r = servers(&cloud, &demo, &[("X-OpenStack-Nova-API-Version", "latest")]).await;
    assert_version_headers(&r, "2.104");
    // The version really changes behaviour: `locked` appears from 2.9.
    let s = cloud.boot(&demo, "v", None, json!({})).await;
    assert!(s.get("locked").is_none());
    let id = s["id"].as_str().unwrap();
    let r = cloud
        .get(&demo, &format!("/servers/{id}"), Some("2.9"))
        .await;
    assert_eq!(r.body["server"]["locked"], false);
}

#[tokio::test]
async fn invalid_and_unsupported_versions() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for bad in ["2.x", "2.01", "2", "two", "2.1.1"] {
        let r = servers(
            &cloud,
            &demo,
            &[("OpenStack-API-Version", &format!("compute {bad}"))],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            r.body,
            json!({"badRequest": {"code": 400, "message": format!("API Version String {bad} is of invalid format. Must be of format MajorNum.MinorNum.")}}),
            "{bad}"
        );
        assert_request_id(&r);
    }
    let r = servers(&cloud, &demo, &[("OpenStack-API-Version", "compute 2.200")]).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        r.body,
        json!({"computeFault": {"code": 406, "message": "Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.104."}})
    );
    assert_request_id(&r);
    for v in ["2.0", "3.0", "2.105"] {
        let r = servers(&cloud, &demo, &[("X-OpenStack-Nova-API-Version", v)]).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{v}");
        assert!(r.body.get("computeFault").is_some(), "{}", r.text);
    }
    // The edges work.
    let r = servers(&cloud, &demo, &[("OpenStack-API-Version", "compute 2.104")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = servers(&cloud, &demo, &[("OpenStack-API-Version", "compute 2.1")]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_ids_and_version_headers() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let v = Some("2.42");
    let s = cloud.boot(&demo, "h", v, json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, "/servers".into(), None, 200),
        (Method::GET, format!("/servers/{id}"), None, 200),
        (
            Method::GET,
            "/servers/00000000-0000-0000-0000-000000000000".into(),
            None,
            404,
        ),
        (
            Method::POST,
            "/servers".into(),
            Some(json!({"server": {}})),
            400,
        ),
        (Method::GET, "/flavors".into(), None, 200),
        (Method::GET, "/limits".into(), None, 200),
        (Method::GET, "/no-such-thing".into(), None, 404),
        (
            Method::PATCH,
            format!("/servers/{id}"),
            Some(json!({})),
            405,
        ),
        (
            Method::GET,
            format!("/servers/{id}/os-instance-actions"),
            None,
            200,
        ),
    ];
    for (m, path, body, code) in cases {
        let r = cloud.compute(&demo, m.clone(), &path, v, body).await;
        assert_eq!(r.status.as_u16(), code, "{m} {path}: {}", r.text);
        assert_request_id(&r);
        assert_version_headers(&r, "2.42");
        if code >= 400 {
            r.fault(code);
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json")
            );
        }
    }
    // Request ids differ per request and match the instance action.
    let a = cloud
        .get(&demo, "/servers", v)
        .await
        .header("x-openstack-request-id");
    let b = cloud
        .get(&demo, "/servers", v)
        .await
        .header("x-openstack-request-id");
    assert_ne!(a, b);
    let r = cloud.post(&demo, "/servers", v, json!({"server": {"name": "rid", "imageRef": cloud.image_id(), "flavorRef": "1", "networks": "none"}})).await;
    let rid = r.header("x-openstack-request-id").unwrap();
    let sid = r.body["server"]["id"].as_str().unwrap();
    let acts = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), v)
        .await;
    assert_eq!(acts.body["instanceActions"][0]["request_id"], json!(rid));
}

#[tokio::test]
async fn version_documents() {
    let cloud = common::start().await;
    for path in ["/compute", "/compute/"] {
        let r = raw(&cloud, Method::GET, path, None, &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let vs = r.body["versions"].as_array().expect("versions");
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0]["id"], "v2.0");
        assert_eq!(vs[0]["status"], "DEPRECATED");
        assert_eq!(vs[0]["version"], "");
        assert_eq!(vs[0]["min_version"], "");
        assert_eq!(vs[1]["id"], "v2.1");
        assert_eq!(vs[1]["status"], "CURRENT");
        assert_eq!(vs[1]["version"], "2.104");
        assert_eq!(vs[1]["min_version"], "2.1");
        assert_eq!(vs[1]["updated"], "2013-07-23T11:33:21Z");
        assert_eq!(vs[1]["links"][0]["rel"], "self");
        assert_eq!(
            vs[1]["links"][0]["href"],
            json!(format!("{}/compute/v2.1/", cloud.base))
        );
        assert!(
            r.header("openstack-api-version").is_none(),
            "no version headers on the root document"
        );
    }
    for path in ["/compute/v2.1", "/compute/v2.1/"] {
        let r = raw(&cloud, Method::GET, path, None, &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let base = &cloud.base;
        assert_eq!(
            r.body,
            json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")},
                          {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]}})
        );
        assert_version_headers(&r, "2.1");
    }
    // It negotiates like any v2.1 resource.
    let r = raw(
        &cloud,
        Method::GET,
        "/compute/v2.1/",
        None,
        &[("OpenStack-API-Version", "compute 2.50")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_version_headers(&r, "2.50");
    let r = raw(
        &cloud,
        Method::GET,
        "/compute/v2.1",
        None,
        &[("OpenStack-API-Version", "compute 2.300")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn project_id_in_the_url() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let s = cloud.boot(&demo, "p", None, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let pid = &demo.project_id;
    let r = raw(
        &cloud,
        Method::GET,
        &format!("/compute/v2.1/{pid}/servers"),
        Some(&demo.token),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["servers"][0]["id"], json!(id));
    let self_href = r.body["servers"][0]["links"][0]["href"].as_str().unwrap();
    assert_eq!(
        self_href,
        format!("{}/compute/v2.1/{pid}/servers/{id}", cloud.base)
    );
    let bookmark = r.body["servers"][0]["links"][1]["href"].as_str().unwrap();
    assert_eq!(
        bookmark,
        format!("{}/compute/{pid}/servers/{id}", cloud.base)
    );
    let r = raw(
        &cloud,
        Method::GET,
        &format!("/compute/v2.1/{pid}/servers/{id}"),
        Some(&demo.token),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Create with the project in the URL: Location keeps it.
    let r = raw(
        &cloud,
        Method::POST,
        &format!("/compute/v2.1/{pid}/servers"),
        Some(&demo.token),
        &[],
        Some(json!({"server": {"name": "q", "imageRef": cloud.image_id(), "flavorRef": "1"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let nid = r.body["server"]["id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("{}/compute/v2.1/{pid}/servers/{nid}", cloud.base))
    );
    // Another project's id in the URL: 400.
    let other = &alt.project_id;
    let r = raw(
        &cloud,
        Method::GET,
        &format!("/compute/v2.1/{other}/servers"),
        Some(&demo.token),
        &[],
        None,
    )
    .await;
    let m = r.fault(400);
    assert_eq!(
        m,
        format!("Malformed request URL: URL's project_id '{other}' doesn't match Context's project_id '{pid}'")
    );
    assert_version_headers(&r, "2.1");
}

#[tokio::test]
async fn other_projects_servers_are_not_found() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let s = cloud
        .boot(&demo, "mine", None, json!({"metadata": {"k": "v"}}))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    let v = Some("2.26");
    let not_found = format!("Instance {id} could not be found.");
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/servers/{id}"), None),
        (
            Method::PUT,
            format!("/servers/{id}"),
            Some(json!({"server": {"name": "stolen"}})),
        ),
        (Method::DELETE, format!("/servers/{id}"), None),
        (Method::GET, format!("/servers/{id}/metadata"), None),
        (Method::GET, format!("/servers/{id}/metadata/k"), None),
        (
            Method::POST,
            format!("/servers/{id}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        (
            Method::PUT,
            format!("/servers/{id}/metadata"),
            Some(json!({"metadata": {}})),
        ),
        (
            Method::PUT,
            format!("/servers/{id}/metadata/k"),
            Some(json!({"meta": {"k": "x"}})),
        ),
        (Method::DELETE, format!("/servers/{id}/metadata/k"), None),
        (Method::GET, format!("/servers/{id}/tags"), None),
        (
            Method::PUT,
            format!("/servers/{id}/tags"),
            Some(json!({"tags": ["x"]})),
        ),
        (Method::DELETE, format!("/servers/{id}/tags"), None),
        (Method::PUT, format!("/servers/{id}/tags/x"), None),
        (Method::GET, format!("/servers/{id}/tags/x"), None),
        (Method::DELETE, format!("/servers/{id}/tags/x"), None),
        (Method::GET, format!("/servers/{id}/ips"), None),
        (Method::GET, format!("/servers/{id}/ips/private"), None),
        (
            Method::GET,
            format!("/servers/{id}/os-instance-actions"),
            None,
        ),
        (
            Method::POST,
            format!("/servers/{id}/action"),
            Some(json!({"os-stop": null})),
        ),
        (
            Method::POST,
            format!("/servers/{id}/action"),
            Some(json!({"lock": null})),
        ),
        (
            Method::POST,
            format!("/servers/{id}/action"),
            Some(json!({"reboot": {"type": "SOFT"}})),
        ),
        (
            Method::GET,
            format!("/servers/{id}/os-server-password"),
            None,
        ),
    ];
    for (m, path, body) in cases {
        let r = cloud.compute(&alt, m.clone(), &path, v, body).await;
        assert_eq!(r.fault(404), not_found, "{m} {path}");
    }
    // Nothing changed for the owner.
    let r = cloud.get(&demo, &format!("/servers/{id}"), v).await;
    assert_eq!(r.body["server"]["name"], "mine");
    assert_eq!(r.body["server"]["metadata"], json!({"k": "v"}));
    assert_eq!(r.body["server"]["tags"], json!([]));
    assert_eq!(r.body["server"]["status"], "ACTIVE");
    assert_eq!(r.body["server"]["locked"], false);
    // The admin sees it.
    let admin = cloud.login("admin").await;
    let r = cloud.get(&admin, &format!("/servers/{id}"), v).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn reader_may_look_but_not_change() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let reader = cloud.login("demo_reader").await;
    let s = cloud.boot(&demo, "r", None, json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let r = cloud.get(&reader, "/servers", None).await;
    assert_eq!(r.body["servers"][0]["id"], json!(id));
    let r = cloud.get(&reader, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = cloud
        .post(
            &reader,
            "/servers",
            None,
            json!({"server": {"name": "x", "imageRef": cloud.image_id(), "flavorRef": "1"}}),
        )
        .await;
    assert_eq!(
        r.fault(403),
        "Policy doesn't allow os_compute_api:servers:create to be performed."
    );
    let r = cloud
        .compute(
            &reader,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        r.fault(403),
        "Policy doesn't allow os_compute_api:servers:delete to be performed."
    );
    let r = cloud
        .compute(
            &reader,
            Method::PUT,
            &format!("/servers/{id}"),
            None,
            Some(json!({"server": {"name": "y"}})),
        )
        .await;
    assert_eq!(
        r.fault(403),
        "Policy doesn't allow os_compute_api:servers:update to be performed."
    );
    let r = cloud
        .post(
            &reader,
            &format!("/servers/{id}/metadata"),
            None,
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    r.fault(403);
    // Still there, unchanged.
    let r = cloud.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["name"], "r");
    assert_eq!(r.body["server"]["metadata"], json!({}));
}

#[tokio::test]
async fn routes_that_need_a_version_are_404_below_it() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s = cloud.boot(&demo, "t", None, json!({})).await;
    let id = s["id"].as_str().unwrap().to_string();
    let low = Some("2.25");
    for (m, path) in [
        (Method::GET, format!("/servers/{id}/tags")),
        (Method::PUT, format!("/servers/{id}/tags/a")),
        (Method::GET, format!("/servers/{id}/tags/a")),
        (Method::DELETE, format!("/servers/{id}/tags/a")),
        (Method::DELETE, format!("/servers/{id}/tags")),
    ] {
        let r = cloud.compute(&demo, m.clone(), &path, low, None).await;
        assert_eq!(
            r.fault(404),
            "The resource could not be found.",
            "{m} {path}"
        );
    }
    let r = cloud
        .compute(
            &demo,
            Method::PUT,
            &format!("/servers/{id}/tags"),
            low,
            Some(json!({"tags": ["a"]})),
        )
        .await;
    assert_eq!(r.fault(404), "The resource could not be found.");
    // From 2.26 they exist.
    let r = cloud
        .get(&demo, &format!("/servers/{id}/tags"), Some("2.26"))
        .await;
    assert_eq!(r.body, json!({"tags": []}));
    // trigger_crash_dump needs 2.17: below it, the action does not exist.
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{id}/action"),
            Some("2.16"),
            json!({"trigger_crash_dump": null}),
        )
        .await;
    assert_eq!(r.fault(404), "The resource could not be found.");
    // The legacy console actions end at 2.5.
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{id}/action"),
            Some("2.6"),
            json!({"os-getVNCConsole": {"type": "novnc"}}),
        )
        .await;
    assert_eq!(r.fault(404), "The resource could not be found.");
    // A name that never was an action is a 400.
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{id}/action"),
            None,
            json!({"fly": null}),
        )
        .await;
    assert_eq!(r.fault(400), "There is no such action: fly");
}

#[tokio::test]
async fn authentication_is_required() {
    let cloud = common::start().await;
    for (token, what) in [(None, "no token"), (Some("bogus-token"), "bad token")] {
        let r = raw(
            &cloud,
            Method::GET,
            "/compute/v2.1/servers",
            token,
            &[],
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_request_id(&r);
        let msg = r.body["error"]["message"]
            .as_str()
            .or_else(|| r.body["unauthorized"]["message"].as_str())
            .unwrap_or_else(|| panic!("{what}: {}", r.text));
        assert_eq!(msg, "The request you have made requires authentication.");
    }
    // A revoked token stops working.
    let demo = cloud.login("demo").await;
    let r = raw(
        &cloud,
        Method::DELETE,
        "/identity/v3/auth/tokens",
        Some(&demo.token),
        &[("X-Subject-Token", &demo.token)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = raw(
        &cloud,
        Method::GET,
        "/compute/v2.1/servers",
        Some(&demo.token),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Version documents need no token.
    let r = raw(&cloud, Method::GET, "/compute/v2.1/", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
}
