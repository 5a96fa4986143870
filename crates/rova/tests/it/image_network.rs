//! The Glance (`/image`) and Neutron (`/network`) APIs over HTTP: image
//! create/upload/download/patch/delete, list filters and paging, visibility
//! across projects; networks, subnets and ports with fixed-IP allocation,
//! filters, 409s and cross-project 404s.

use crate::common::{start, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Any call below the server root, with an optional JSON body.
pub(crate) async fn call(
    c: &TestCloud,
    u: Option<&User>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = c.http.request(method, format!("{}{path}", c.base));
    if let Some(u) = u {
        req = req.header("X-Auth-Token", &u.token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    finish(req).await
}

/// A call with a raw body and content type.
async fn call_raw(
    c: &TestCloud,
    u: &User,
    method: Method,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> Resp {
    let req = c
        .http
        .request(method, format!("{}{path}", c.base))
        .header("X-Auth-Token", &u.token)
        .header("Content-Type", ct)
        .body(body);
    finish(req).await
}

async fn finish(req: reqwest::RequestBuilder) -> Resp {
    Resp::of(req).await
}

fn patch_ct() -> &'static str {
    "application/openstack-images-v2.1-json-patch"
}

async fn create_image(c: &TestCloud, u: &User, body: Value) -> Value {
    let r = call(c, Some(u), Method::POST, "/image/v2/images", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

pub(crate) fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn neutron_error(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["type"], json!(kind), "{}", r.text);
    assert!(r.body["NeutronError"]["message"].is_string(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_versions_and_auth() {
    let c = start().await;
    for path in ["/image", "/image/"] {
        let r = call(&c, None, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
        let v = &r.body["versions"][0];
        assert_eq!(v["id"], json!("v2.16"));
        assert_eq!(v["status"], json!("CURRENT"));
        let href = v["links"][0]["href"].as_str().expect("href");
        assert!(
            href.ends_with("/image/v2/") && href.starts_with("http://"),
            "{href}"
        );
    }
    let r = call(&c, None, Method::GET, "/image/v2/images", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], json!(401));
    let bogus = User {
        token: "nope.nope".into(),
        user_id: String::new(),
        project_id: String::new(),
    };
    let r = call(&c, Some(&bogus), Method::GET, "/image/v2/images", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let demo = c.login("demo").await;
    let r = call(&c, Some(&demo), Method::GET, "/image/v2/images", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["schema"], json!("/v2/schemas/images"));
    assert_eq!(r.body["first"], json!("/v2/images"));
    assert!(ids(&r.body["images"]).contains(&c.image_id()));
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/schemas/image",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], json!("image"));
    let r = call(&c, Some(&demo), Method::GET, "/image/v2/nothing-here", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_create_upload_download_patch_delete() {
    let c = start().await;
    let demo = c.login("demo").await;
    let img = create_image(
        &c,
        &demo,
        json!({"name": "it-image", "container_format": "bare", "disk_format": "raw",
               "min_ram": 64, "tags": ["a", "b"], "hw_rescue_bus": "scsi",
               "owner_specified.openstack.md5": ""}),
    )
    .await;
    let id = img["id"].as_str().expect("id").to_string();
    assert_eq!(img["status"], json!("queued"));
    assert_eq!(img["visibility"], json!("shared"));
    assert_eq!(img["owner"], json!(demo.project_id));
    assert_eq!(img["hw_rescue_bus"], json!("scsi"));
    assert_eq!(img["self"], json!(format!("/v2/images/{id}")));
    assert_eq!(img["file"], json!(format!("/v2/images/{id}/file")));
    assert_eq!(img["size"], Value::Null);
    assert_eq!(img["tags"], json!(["a", "b"]));
    let created_at = img["created_at"].as_str().expect("created_at");
    assert!(
        created_at.ends_with('Z') && created_at.len() == 20,
        "{created_at}"
    );

    // Reserved and read-only attributes, bad values.
    for (body, code) in [
        (json!({"name": "x", "status": "active"}), 403),
        (json!({"name": "x", "deleted": false}), 403),
        (json!({"name": "x", "disk_format": "floppy"}), 400),
        (json!({"name": "x", "hw_thing": 3}), 400),
        (json!({"id": id, "name": "dup"}), 409),
    ] {
        let r = call(
            &c,
            Some(&demo),
            Method::POST,
            "/image/v2/images",
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status.as_u16(), code, "{body}: {}", r.text);
        assert!(r.body["message"].is_string(), "{}", r.text);
    }

    let bare = create_image(&c, &demo, json!({"name": "no-formats"})).await;
    let bare_file = format!("/image/v2/images/{}/file", bare["id"].as_str().expect("id"));
    let r = call_raw(
        &c,
        &demo,
        Method::PUT,
        &bare_file,
        "application/octet-stream",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.text.contains("must be set prior to saving data"),
        "{}",
        r.text
    );

    let file = format!("/image/v2/images/{id}/file");
    let r = call(&c, Some(&demo), Method::GET, &file, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let data = b"The quick brown fox jumps over the lazy dog".to_vec();
    let r = call_raw(
        &c,
        &demo,
        Method::PUT,
        &file,
        "application/octet-stream",
        data.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call_raw(
        &c,
        &demo,
        Method::PUT,
        &file,
        "application/octet-stream",
        data.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/image/v2/images/{id}"),
        None,
    )
    .await;
    assert_eq!(r.body["status"], json!("active"));
    assert_eq!(r.body["size"], json!(data.len()));
    assert_eq!(
        r.body["checksum"],
        json!("9e107d9d372bb6826bd81d3542a419d6")
    );
    assert_eq!(r.body["os_hash_algo"], json!("sha512"));
    assert_eq!(r.body["os_hash_value"].as_str().map(str::len), Some(128));
    let r = c
        .http
        .get(format!("{}{file}", c.base))
        .header("X-Auth-Token", &demo.token)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers().get("content-md5").and_then(|v| v.to_str().ok()),
        Some("9e107d9d372bb6826bd81d3542a419d6")
    );
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), data);

    // JSON patch.
    let path = format!("/image/v2/images/{id}");
    let ops = json!([
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/hw_rescue_device", "value": "disk"},
        {"op": "remove", "path": "/hw_rescue_bus"},
        {"op": "replace", "path": "/min_ram", "value": 128},
    ]);
    let r = call_raw(
        &c,
        &demo,
        Method::PATCH,
        &path,
        patch_ct(),
        ops.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], json!("renamed"));
    assert_eq!(r.body["hw_rescue_device"], json!("disk"));
    assert_eq!(r.body["min_ram"], json!(128));
    assert!(r.body.get("hw_rescue_bus").is_none());
    for (ops, code) in [
        (
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            409,
        ),
        (json!([{"op": "remove", "path": "/name"}]), 403),
        (json!([{"op": "replace", "path": "/size", "value": 1}]), 403),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
            403,
        ),
        (
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
            403,
        ),
        (json!({"op": "add"}), 400),
    ] {
        let r = call_raw(
            &c,
            &demo,
            Method::PATCH,
            &path,
            patch_ct(),
            ops.to_string().into_bytes(),
        )
        .await;
        assert_eq!(r.status.as_u16(), code, "{ops}: {}", r.text);
    }
    let r = call_raw(
        &c,
        &demo,
        Method::PATCH,
        &path,
        "application/json",
        b"[]".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Tags and tasks.
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("{path}/tags/c"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &c,
        Some(&demo),
        Method::DELETE,
        &format!("{path}/tags/a"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &c,
        Some(&demo),
        Method::DELETE,
        &format!("{path}/tags/zzz"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&c, Some(&demo), Method::GET, &path, None).await;
    assert_eq!(r.body["tags"], json!(["b", "c"]));
    let r = call(&c, Some(&demo), Method::GET, &format!("{path}/tasks"), None).await;
    assert_eq!(r.body, json!({"tasks": []}));

    // The compute image proxy shows the same record.
    let r = c.get(&demo, &format!("/images/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["image"]["name"], json!("renamed"));

    // Protected images cannot be deleted.
    let prot = json!([{"op": "replace", "path": "/protected", "value": true}]);
    let r = call_raw(
        &c,
        &demo,
        Method::PATCH,
        &path,
        patch_ct(),
        prot.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&c, Some(&demo), Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let unprot = json!([{"op": "replace", "path": "/protected", "value": false}]);
    call_raw(
        &c,
        &demo,
        Method::PATCH,
        &path,
        patch_ct(),
        unprot.to_string().into_bytes(),
    )
    .await;
    let r = call(&c, Some(&demo), Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&c, Some(&demo), Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body["message"].as_str().is_some_and(|m| m.contains(&id)),
        "{}",
        r.text
    );
    assert!(!c.app.images.file_path(&id).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn image_visibility_across_projects() {
    let c = start().await;
    let demo = c.login("demo").await;
    let reader = c.login("demo_reader").await;
    let alt = c.login("alt_demo").await;
    let admin = c.login("admin").await;

    let private = create_image(
        &c,
        &demo,
        json!({"name": "vis-private", "visibility": "private"}),
    )
    .await;
    let pid = private["id"].as_str().expect("id").to_string();
    let community = create_image(
        &c,
        &demo,
        json!({"name": "vis-community", "visibility": "community"}),
    )
    .await;
    let cid = community["id"].as_str().expect("id").to_string();

    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/image/v2/images",
        Some(json!({"name": "p", "visibility": "public"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let public = create_image(
        &c,
        &admin,
        json!({"name": "vis-public", "visibility": "public"}),
    )
    .await;
    let pubid = public["id"].as_str().expect("id").to_string();

    // alt_demo: the private image is invisible, the community one only on request.
    let r = call(
        &c,
        Some(&alt),
        Method::GET,
        &format!("/image/v2/images/{pid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&c, Some(&alt), Method::GET, "/image/v2/images", None).await;
    let seen = ids(&r.body["images"]);
    assert!(
        !seen.contains(&pid) && !seen.contains(&cid) && seen.contains(&pubid),
        "{seen:?}"
    );
    let r = call(
        &c,
        Some(&alt),
        Method::GET,
        "/image/v2/images?visibility=community",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]), vec![cid.clone()]);
    let r = call(
        &c,
        Some(&alt),
        Method::GET,
        &format!("/image/v2/images/{cid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&alt),
        Method::DELETE,
        &format!("/image/v2/images/{cid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &c,
        Some(&alt),
        Method::DELETE,
        &format!("/image/v2/images/{pid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call_raw(
        &c,
        &alt,
        Method::PUT,
        &format!("/image/v2/images/{cid}/file"),
        "application/octet-stream",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The owner sees both by default; visibility filters narrow.
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?visibility=private",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]), vec![pid.clone()]);
    let r = call(&c, Some(&demo), Method::GET, "/image/v2/images", None).await;
    let seen = ids(&r.body["images"]);
    assert!(seen.contains(&pid) && seen.contains(&cid));
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?visibility=bogus",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A reader of the project sees it but may not change anything.
    let r = call(
        &c,
        Some(&reader),
        Method::GET,
        &format!("/image/v2/images/{pid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&reader),
        Method::DELETE,
        &format!("/image/v2/images/{pid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &c,
        Some(&reader),
        Method::POST,
        "/image/v2/images",
        Some(json!({"name": "r"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Admins see and may delete everything.
    let r = call(
        &c,
        Some(&admin),
        Method::GET,
        &format!("/image/v2/images?owner={}", demo.project_id),
        None,
    )
    .await;
    let seen = ids(&r.body["images"]);
    assert!(seen.contains(&pid) && seen.contains(&cid), "{seen:?}");
    let r = call(
        &c,
        Some(&admin),
        Method::DELETE,
        &format!("/image/v2/images/{pid}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_list_filters_and_paging() {
    let c = start().await;
    let demo = c.login("demo").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let img = create_image(
            &c,
            &demo,
            json!({"name": format!("page-{i}"), "tags": ["paging"], "visibility": "private",
                   "hw_disk_bus": if i % 2 == 0 { "scsi" } else { "virtio" }}),
        )
        .await;
        made.push(img["id"].as_str().expect("id").to_string());
    }
    // Follow `next` links two at a time.
    let mut seen: Vec<String> = Vec::new();
    let mut url = "/image/v2/images?tag=paging&limit=2&sort_key=name&sort_dir=asc".to_string();
    for _ in 0..10 {
        let r = call(&c, Some(&demo), Method::GET, &url, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        seen.extend(ids(&r.body["images"]));
        match r.body["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/v2/images?"), "{next}");
                url = format!("/image{next}");
            }
            None => break,
        }
    }
    let names: Vec<String> = (0..5).map(|i| made[i].clone()).collect();
    assert_eq!(seen, names, "ascending by name, all pages");

    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?hw_disk_bus=scsi&tag=paging",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]).len(), 3);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?name=page-3",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]), vec![made[3].clone()]);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?name=in:page-1,page-2&sort=name:desc",
        None,
    )
    .await;
    assert_eq!(
        ids(&r.body["images"]),
        vec![made[2].clone(), made[1].clone()]
    );
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?status=queued&tag=paging",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]).len(), 5);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?status=active&tag=paging",
        None,
    )
    .await;
    assert!(ids(&r.body["images"]).is_empty());
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?marker=00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?sort_key=bogus",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // os_hidden images leave the default list.
    let hide = json!([{"op": "replace", "path": "/os_hidden", "value": true}]);
    let r = call_raw(
        &c,
        &demo,
        Method::PATCH,
        &format!("/image/v2/images/{}", made[0]),
        patch_ct(),
        hide.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?tag=paging",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]).len(), 4);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/image/v2/images?tag=paging&os_hidden=true",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["images"]), vec![made[0].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn network_versions_and_extensions() {
    let c = start().await;
    let r = call(&c, None, Method::GET, "/network/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["versions"][0]["id"], json!("v2.0"));
    assert!(r.body["versions"][0]["links"][0]["href"]
        .as_str()
        .is_some_and(|h| h.ends_with("/network/v2.0/")));
    let r = call(&c, None, Method::GET, "/network/v2.0/networks", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let demo = c.login("demo").await;
    let r = call(&c, Some(&demo), Method::GET, "/network/v2.0/", None).await;
    assert!(r.body["resources"].as_array().is_some_and(|a| a.len() >= 3));
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/extensions",
        None,
    )
    .await;
    assert!(r.body["extensions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["alias"] == json!("project-id"))));
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/extensions/project-id",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/extensions/dvr",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/security-groups",
        None,
    )
    .await;
    let sgs = r.body["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sgs.len(), 1);
    assert_eq!(sgs[0]["name"], json!("default"));
    assert_eq!(sgs[0]["project_id"], json!(demo.project_id));
    let sg_id = sgs[0]["id"].as_str().expect("sg id");
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/network/v2.0/security-groups/{sg_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/security-groups?name=other",
        None,
    )
    .await;
    assert_eq!(r.body["security_groups"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn network_subnet_port_lifecycle() {
    let c = start().await;
    let demo = c.login("demo").await;
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "it-net"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let net = r.body["network"].clone();
    let net_id = net["id"].as_str().expect("id").to_string();
    assert_eq!(net["tenant_id"], json!(demo.project_id));
    assert_eq!(net["shared"], json!(false));
    assert_eq!(net["router:external"], json!(false));
    assert_eq!(net["status"], json!("ACTIVE"));
    assert_eq!(net["subnets"], json!([]));

    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/subnets",
        Some(json!({"subnet": {
        "network_id": net_id, "cidr": "10.20.0.0/24", "ip_version": 4, "name": "it-sub"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sub = r.body["subnet"].clone();
    let sub_id = sub["id"].as_str().expect("id").to_string();
    assert_eq!(sub["gateway_ip"], json!("10.20.0.1"));
    assert_eq!(
        sub["allocation_pools"],
        json!([{"start": "10.20.0.2", "end": "10.20.0.254"}])
    );
    assert_eq!(sub["enable_dhcp"], json!(true));
    assert_eq!(sub["host_routes"], json!([]));
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/subnets",
        Some(json!({"subnet": {
        "network_id": net_id, "cidr": "10.20.0.128/25", "ip_version": 4}})),
    )
    .await;
    neutron_error(&r, 400, "InvalidInput");
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/network/v2.0/networks/{net_id}"),
        None,
    )
    .await;
    assert_eq!(r.body["network"]["subnets"], json!([sub_id]));

    // Ports: automatic and requested addresses.
    let new_port = |body: Value| {
        let c = &c;
        let demo = &demo;
        async move {
            call(
                c,
                Some(demo),
                Method::POST,
                "/network/v2.0/ports",
                Some(json!({"port": body})),
            )
            .await
        }
    };
    let r = new_port(json!({"network_id": net_id, "name": "p1"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p1 = r.body["port"].clone();
    assert_eq!(
        p1["fixed_ips"],
        json!([{"subnet_id": sub_id, "ip_address": "10.20.0.2"}])
    );
    assert_eq!(p1["status"], json!("DOWN"));
    assert!(p1["mac_address"]
        .as_str()
        .is_some_and(|m| m.starts_with("fa:16:3e:")));
    assert_eq!(p1["binding:vnic_type"], json!("normal"));
    let r = new_port(json!({"network_id": net_id, "fixed_ips": [{"ip_address": "10.20.0.50"}], "device_id": "dev-1", "device_owner": "compute:nova"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p2 = r.body["port"].clone();
    let p2_id = p2["id"].as_str().expect("id").to_string();
    assert_eq!(p2["fixed_ips"][0]["ip_address"], json!("10.20.0.50"));
    assert_eq!(p2["status"], json!("ACTIVE"));
    let r = new_port(json!({"network_id": net_id, "fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.20.0.50"}]})).await;
    neutron_error(&r, 409, "IpAddressAlreadyAllocated");
    let r =
        new_port(json!({"network_id": net_id, "fixed_ips": [{"ip_address": "10.99.0.5"}]})).await;
    neutron_error(&r, 400, "InvalidIpForNetwork");
    let r = new_port(json!({"network_id": net_id, "fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.99.0.5"}]})).await;
    neutron_error(&r, 400, "InvalidIpForSubnet");
    let r = new_port(json!({"network_id": net_id, "bogus": 1})).await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = new_port(json!({"network_id": "00000000-0000-0000-0000-000000000000"})).await;
    neutron_error(&r, 404, "NetworkNotFound");
    let mac = p1["mac_address"].as_str().expect("mac").to_string();
    let r = new_port(json!({"network_id": net_id, "mac_address": mac})).await;
    neutron_error(&r, 409, "MacAddressInUse");

    for name in ["p4", "p5"] {
        let r = new_port(json!({"network_id": net_id, "name": name})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    // Filters.
    let list = |q: String| {
        let c = &c;
        let demo = &demo;
        async move {
            call(
                c,
                Some(demo),
                Method::GET,
                &format!("/network/v2.0/ports?{q}"),
                None,
            )
            .await
        }
    };
    let r = list("fixed_ips=ip_address%3D10.20.0.50".into()).await;
    assert_eq!(ids(&r.body["ports"]), vec![p2_id.clone()]);
    let r = list(format!(
        "fixed_ips=subnet_id%3D{sub_id}&network_id={net_id}"
    ))
    .await;
    assert_eq!(ids(&r.body["ports"]).len(), 4);
    let r = list("device_id=dev-1".into()).await;
    assert_eq!(ids(&r.body["ports"]), vec![p2_id.clone()]);
    let r = list("name=p1&name=nothing".into()).await;
    assert_eq!(ids(&r.body["ports"]).len(), 1);
    let r = list("fields=id&fields=mac_address&name=p1".into()).await;
    assert_eq!(r.body["ports"][0].as_object().map(|o| o.len()), Some(2));
    let r = list("not_an_attribute=1".into()).await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = list(format!("network_id={net_id}&limit=2")).await;
    assert_eq!(ids(&r.body["ports"]).len(), 2);
    let next = r.body["ports_links"][0]["href"]
        .as_str()
        .expect("next link")
        .to_string();
    assert!(next.contains("marker="), "{next}");
    let path = next
        .split_once("/network/")
        .map(|(_, p)| format!("/network/{p}"))
        .expect("path");
    let r = call(&c, Some(&demo), Method::GET, &path, None).await;
    assert_eq!(ids(&r.body["ports"]).len(), 2);

    // Update.
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/ports/{p2_id}"),
        Some(json!({"port": {
        "name": "renamed", "device_id": "", "device_owner": "",
        "fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.20.0.60"}]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["port"]["name"], json!("renamed"));
    assert_eq!(r.body["port"]["status"], json!("DOWN"));
    assert_eq!(
        r.body["port"]["fixed_ips"][0]["ip_address"],
        json!("10.20.0.60")
    );
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/ports/{p2_id}"),
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    // The old address went back to the pool.
    let r =
        new_port(json!({"network_id": net_id, "fixed_ips": [{"ip_address": "10.20.0.50"}]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p3_id = r.body["port"]["id"].as_str().expect("id").to_string();

    // In-use deletes.
    let r = call(
        &c,
        Some(&demo),
        Method::DELETE,
        &format!("/network/v2.0/subnets/{sub_id}"),
        None,
    )
    .await;
    neutron_error(&r, 409, "SubnetInUse");
    let r = call(
        &c,
        Some(&demo),
        Method::DELETE,
        &format!("/network/v2.0/networks/{net_id}"),
        None,
    )
    .await;
    neutron_error(&r, 409, "NetworkInUse");
    let r = list(format!("network_id={net_id}")).await;
    for id in ids(&r.body["ports"]) {
        let r = call(
            &c,
            Some(&demo),
            Method::DELETE,
            &format!("/network/v2.0/ports/{id}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/network/v2.0/ports/{p3_id}"),
        None,
    )
    .await;
    neutron_error(&r, 404, "PortNotFound");
    let r = call(
        &c,
        Some(&demo),
        Method::DELETE,
        &format!("/network/v2.0/networks/{net_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/network/v2.0/subnets/{sub_id}"),
        None,
    )
    .await;
    neutron_error(&r, 404, "SubnetNotFound");
    assert_eq!(c.app.networks.used_count(&sub_id), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn network_pool_exhaustion_and_update() {
    let c = start().await;
    let demo = c.login("demo").await;
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "small"}})),
    )
    .await;
    let net_id = r.body["network"]["id"].as_str().expect("id").to_string();
    let r = call(&c, Some(&demo), Method::POST, "/network/v2.0/subnets", Some(json!({"subnet": {
        "network_id": net_id, "cidr": "192.168.7.0/29", "ip_version": 4, "gateway_ip": "192.168.7.6",
        "dns_nameservers": ["8.8.8.8"]}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sub_id = r.body["subnet"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.body["subnet"]["allocation_pools"],
        json!([{"start": "192.168.7.1", "end": "192.168.7.5"}])
    );
    for _ in 0..5 {
        let r = call(
            &c,
            Some(&demo),
            Method::POST,
            "/network/v2.0/ports",
            Some(json!({"port": {"network_id": net_id}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/ports",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    neutron_error(&r, 409, "IpAddressGenerationFailure");

    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/subnets/{sub_id}"),
        Some(json!({"subnet": {
        "name": "renamed", "dns_nameservers": []}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["subnet"]["name"], json!("renamed"));
    assert_eq!(r.body["subnet"]["dns_nameservers"], json!([]));
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/subnets/{sub_id}"),
        Some(json!({"subnet": {"cidr": "10.0.0.0/8"}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/networks/{net_id}"),
        Some(json!({"network": {
        "name": "bigger-name", "description": "d"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["network"]["name"], json!("bigger-name"));
    let r = call(
        &c,
        Some(&demo),
        Method::PUT,
        &format!("/network/v2.0/networks/{net_id}"),
        Some(json!({"network": {"shared": true}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn network_visibility_across_projects() {
    let c = start().await;
    let demo = c.login("demo").await;
    let reader = c.login("demo_reader").await;
    let alt = c.login("alt_demo").await;
    let admin = c.login("admin").await;
    let shared_id = c.network_id();

    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "mine"}})),
    )
    .await;
    let net_id = r.body["network"]["id"].as_str().expect("id").to_string();
    let r = call(&c, Some(&demo), Method::POST, "/network/v2.0/subnets", Some(json!({"subnet": {
        "network_id": net_id, "cidr": "fd10::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sub_id = r.body["subnet"]["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["subnet"]["gateway_ip"], json!("fd10::1"));
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/ports",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    let port_id = r.body["port"]["id"].as_str().expect("id").to_string();
    // On a SLAAC subnet the address is the MAC's EUI-64 (fa:16:3e:… →
    // f816:3eff:fe…).
    let mac = r.body["port"]["mac_address"].as_str().unwrap_or_default();
    let tail = mac.get(9..).unwrap_or_default().replace(':', "");
    let last = u16::from_str_radix(tail.get(2..).unwrap_or_default(), 16).unwrap_or_default();
    let want = format!(
        "fd10::f816:3eff:fe{}:{last:x}",
        tail.get(..2).unwrap_or_default()
    );
    let got = r.body["port"]["fixed_ips"][0]["ip_address"].as_str();
    assert!(mac.starts_with("fa:16:3e:"), "{mac}");
    assert_eq!(
        got.map(|g| g.parse::<std::net::Ipv6Addr>().ok()),
        Some(want.parse().ok()),
        "{want}"
    );

    // Another project sees none of it.
    for (path, kind) in [
        (
            format!("/network/v2.0/networks/{net_id}"),
            "NetworkNotFound",
        ),
        (format!("/network/v2.0/subnets/{sub_id}"), "SubnetNotFound"),
        (format!("/network/v2.0/ports/{port_id}"), "PortNotFound"),
    ] {
        let r = call(&c, Some(&alt), Method::GET, &path, None).await;
        neutron_error(&r, 404, kind);
        let r = call(&c, Some(&alt), Method::DELETE, &path, None).await;
        neutron_error(&r, 404, kind);
    }
    // The shared network, and the bootstrap's external one (external
    // networks are visible to every project).
    let r = call(&c, Some(&alt), Method::GET, "/network/v2.0/networks", None).await;
    let public_id = c.public_network_id();
    let mut seen = ids(&r.body["networks"]);
    seen.sort();
    let mut want = vec![shared_id.clone(), public_id];
    want.sort();
    assert_eq!(seen, want);
    let r = call(
        &c,
        Some(&alt),
        Method::GET,
        &format!("/network/v2.0/subnets?network_id={shared_id}"),
        None,
    )
    .await;
    assert_eq!(ids(&r.body["subnets"]).len(), 2);
    let r = call(&c, Some(&alt), Method::GET, "/network/v2.0/ports", None).await;
    assert!(ids(&r.body["ports"]).is_empty());
    let r = call(
        &c,
        Some(&alt),
        Method::POST,
        "/network/v2.0/ports",
        Some(json!({"port": {"network_id": net_id}})),
    )
    .await;
    neutron_error(&r, 404, "NetworkNotFound");
    // ...but may use the shared network.
    let r = call(
        &c,
        Some(&alt),
        Method::POST,
        "/network/v2.0/ports",
        Some(json!({"port": {"network_id": shared_id}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["port"]["fixed_ips"].as_array().map(Vec::len),
        Some(2)
    );
    let r = call(
        &c,
        Some(&alt),
        Method::DELETE,
        &format!("/network/v2.0/networks/{shared_id}"),
        None,
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");

    // Filters: several values OR together; shared; project.
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/networks?name=mine&name=private",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["networks"]).len(), 2);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/networks?shared=true",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["networks"]), vec![shared_id.clone()]);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        &format!("/network/v2.0/networks?tenant_id={}", demo.project_id),
        None,
    )
    .await;
    assert_eq!(ids(&r.body["networks"]), vec![net_id.clone()]);
    let r = call(
        &c,
        Some(&demo),
        Method::GET,
        "/network/v2.0/subnets?ip_version=6&cidr=fd10::/64",
        None,
    )
    .await;
    assert_eq!(ids(&r.body["subnets"]), vec![sub_id.clone()]);

    // Policy: readers look only; only admins share.
    let r = call(
        &c,
        Some(&reader),
        Method::GET,
        &format!("/network/v2.0/networks/{net_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&reader),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "r"}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = call(
        &c,
        Some(&reader),
        Method::DELETE,
        &format!("/network/v2.0/ports/{port_id}"),
        None,
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "s", "shared": true}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = call(
        &c,
        Some(&demo),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "s", "project_id": alt.project_id}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = call(
        &c,
        Some(&admin),
        Method::POST,
        "/network/v2.0/networks",
        Some(json!({"network": {"name": "s", "shared": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        &c,
        Some(&admin),
        Method::GET,
        &format!("/network/v2.0/ports/{port_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &c,
        Some(&admin),
        Method::GET,
        "/network/v2.0/networks",
        None,
    )
    .await;
    // private, public (both bootstrapped), demo's and admin's.
    assert_eq!(ids(&r.body["networks"]).len(), 4);
}
