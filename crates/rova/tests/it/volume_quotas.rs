//! Cinder's `os-quota-sets`: a project's limits with and without usage,
//! the defaults, an admin's update (a limit below what is used taken,
//! -1 unlimited) and delete (back to the defaults), and the limits the
//! volume, snapshot and extend paths enforce once changed (Cinder's 413s).

use crate::common::start;
use crate::snapshots::{snap_create, volume};
use crate::volumes::{call, create, get};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_projects_volume_limits_are_set_shown_enforced_and_reset() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let alt = cloud.login("alt_demo").await;
    let path = format!("/os-quota-sets/{}", demo.project_id);

    let r = get(&cloud, &demo, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let q = &r.body["quota_set"];
    assert_eq!(
        (
            &q["id"],
            &q["volumes"],
            &q["snapshots"],
            &q["gigabytes"],
            &q["per_volume_gigabytes"]
        ),
        (
            &json!(demo.project_id),
            &json!(10),
            &json!(10),
            &json!(1000),
            &json!(-1)
        )
    );
    let r = get(&cloud, &alt, &path).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = get(&cloud, &demo, &format!("{path}/defaults")).await;
    assert_eq!(r.body["quota_set"]["volumes"], 10, "{}", r.text);

    let vol = volume(&cloud, &demo, 2).await;
    let r = get(&cloud, &admin, &format!("{path}?usage=true")).await;
    assert_eq!(
        r.body["quota_set"]["volumes"],
        json!({"limit": 10, "in_use": 1, "reserved": 0})
    );
    assert_eq!(r.body["quota_set"]["gigabytes"]["in_use"], 2);

    let put = |body| {
        let (cloud, path) = (&cloud, path.clone());
        async move {
            call(
                cloud,
                &admin_of(cloud).await,
                Method::PUT,
                &path,
                None,
                Some(body),
            )
            .await
        }
    };
    // Only an admin changes limits.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &path,
        None,
        Some(json!({"quota_set": {"volumes": 5}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Bad input changes nothing.
    for body in [
        json!({"quota_set": {"volumes": -2}}),
        json!({"quota_set": {"volumes": "many"}}),
        json!({"quota_set": {"colors": 3}}),
    ] {
        let r = put(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    assert_eq!(
        get(&cloud, &demo, &path).await.body["quota_set"]["volumes"],
        10
    );

    // A limit below the usage is taken (Cinder's default driver): only
    // new resources are refused.
    let r = put(json!({"quota_set": {"volumes": 0}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put(json!({"quota_set": {"volumes": 1, "snapshots": 0, "gigabytes": 3}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["quota_set"]["volumes"], 1);
    let r = create(&cloud, &demo, json!({"size": 1})).await;
    assert_eq!(
        r.fault(413),
        "Maximum number of volumes allowed (1) exceeded for quota 'volumes'."
    );
    let r = snap_create(&cloud, &demo, None, json!({"volume_id": vol})).await;
    assert_eq!(
        r.fault(413),
        "Maximum number of snapshots allowed (0) exceeded"
    );
    let r = call(
        &cloud,
        &demo,
        Method::POST,
        &format!("/volumes/{vol}/action"),
        None,
        Some(json!({"os-extend": {"new_size": 4}})),
    )
    .await;
    assert_eq!(
        r.fault(413),
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 2G, quota is 3G \
         and 2G has been consumed."
    );
    let r = get(&cloud, &demo, "/limits").await;
    assert_eq!(
        r.body["limits"]["absolute"]["maxTotalVolumes"], 1,
        "{}",
        r.text
    );

    // -1 is unlimited; delete goes back to the defaults.
    let r = put(json!({"quota_set": {"volumes": -1}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = create(&cloud, &demo, json!({"size": 1})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = call(&cloud, &demo, Method::DELETE, &path, None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(&cloud, &admin, Method::DELETE, &path, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let q = get(&cloud, &demo, &path).await.body["quota_set"].clone();
    assert_eq!((&q["volumes"], &q["gigabytes"]), (&json!(10), &json!(1000)));
}

async fn admin_of(cloud: &crate::common::TestCloud) -> crate::common::User {
    cloud.login("admin").await
}
