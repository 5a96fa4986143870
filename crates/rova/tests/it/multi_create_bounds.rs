//! Multiple create against quotas and the per-request bound, over HTTP: a
//! huge `min_count` is refused before anything is allocated (the process
//! and other requests carry on), a huge `max_count` shrinks to what the
//! quota allows, and a `min_count` over the quota is Nova's 403 while
//! unrelated requests keep being answered. (That the count is found by
//! arithmetic, not a loop, is `compute::quotas` unit tests' job.)

use crate::common::{self, Resp, TestCloud, User};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn server(cloud: &TestCloud, extra: Value) -> Value {
    let mut s = json!({"name": "many", "imageRef": cloud.image_id(), "flavorRef": "1",
        "networks": "none"});
    if let (Some(obj), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

async fn create(cloud: &TestCloud, u: &User, extra: Value) -> Resp {
    cloud
        .post(
            u,
            "/servers",
            Some("2.37"),
            json!({"server": server(cloud, extra)}),
        )
        .await
}

async fn server_count(cloud: &TestCloud, u: &User) -> usize {
    let l = cloud.get(u, "/servers", None).await;
    l.body["servers"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn huge_min_count_with_unlimited_quota_is_refused_and_the_service_lives() {
    let cloud = common::start_with(|cfg| {
        cfg.quota.instances = -1;
        cfg.quota.cores = -1;
        cfg.quota.ram = -1;
    })
    .await;
    let demo = cloud.login("demo").await;
    for extra in [
        json!({"min_count": 2147483648u64}),
        json!({"min_count": 4294967295u64}),
        json!({"min_count": "99999999999999999999999999"}),
        json!({"min_count": 501, "max_count": 4294967295u64}),
    ] {
        let m = create(&cloud, &demo, extra.clone()).await.fault(403);
        assert!(
            m.contains("at most 500 instances can be created in one request"),
            "{extra}: {m}"
        );
    }
    assert_eq!(server_count(&cloud, &demo).await, 0);
    // Still serving, and nothing was reserved.
    let f = cloud.get(&demo, "/flavors", None).await;
    assert_eq!(f.status, StatusCode::OK);
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 0);
    let r = create(&cloud, &demo, json!({"min_count": 2})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(server_count(&cloud, &demo).await, 2);
}

#[tokio::test]
async fn huge_max_count_shrinks_to_the_quota() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    // Quota 10 instances / 20 cores / 51200 MB; m1.tiny is 1 vCPU, 512 MB:
    // the instances limit binds.
    let r = create(&cloud, &demo, json!({"max_count": 4294967295u64})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(server_count(&cloud, &demo).await, 10);
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 10);
    assert_eq!(lim.body["limits"]["absolute"]["totalCoresUsed"], 10);
    // Full: even one more is Nova's 403.
    let m = create(&cloud, &demo, json!({"max_count": 4294967295u64}))
        .await
        .fault(403);
    assert_eq!(
        m,
        "Quota exceeded for cores, instances, ram: Requested 500, 1-500, 256000, \
         but already used 10, 10, 5120 of 20, 10, 51200 cores, instances, ram"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_count_over_quota_is_403_and_others_are_served_meanwhile() {
    let cloud = std::sync::Arc::new(common::start().await);
    let demo = cloud.login("demo").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (cloud, demo) = (cloud.clone(), demo.clone());
        tasks.push(tokio::spawn(async move {
            create(
                &cloud,
                &demo,
                json!({"min_count": 11, "max_count": 4294967295u64}),
            )
            .await
            .fault(403)
        }));
    }
    // Unrelated requests are answered while those are in flight.
    let alt = cloud.login("alt_demo").await;
    for _ in 0..4 {
        assert_eq!(
            cloud.get(&alt, "/flavors", None).await.status,
            StatusCode::OK
        );
        assert_eq!(
            cloud.get(&alt, "/servers", None).await.status,
            StatusCode::OK
        );
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("create task"),
            "Quota exceeded for cores, instances, ram: Requested 500, 11-500, 256000, \
             but already used 0, 0, 0 of 20, 10, 51200 cores, instances, ram"
        );
    }
    assert_eq!(server_count(&cloud, &demo).await, 0);
    // min == max shows one number, and only the resources over the limit.
    let m = create(&cloud, &demo, json!({"min_count": 11}))
        .await
        .fault(403);
    assert_eq!(
        m,
        "Quota exceeded for instances: Requested 11, but already used 0 of 10 instances"
    );
    // Within the quota, min..max takes what fits.
    let r = create(&cloud, &demo, json!({"min_count": 3, "max_count": 12})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(server_count(&cloud, &demo).await, 10);
}
