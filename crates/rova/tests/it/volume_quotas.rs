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

/// The gigabytes a project's volumes and snapshots hold together are
/// counted again by the database as a volume or snapshot row is written
/// (`Guard::Storage`): rows another process wrote, which this store's
/// copy does not hold, refuse a volume, a snapshot and an extend that
/// would pass the limit, and a volume being extended counts the size it
/// is taken to. Both backends.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_counts_every_processs_gigabytes() {
    use crate::storage::{backends, query};
    use rova::store::{Guard, Store, Table};
    use serde_json::Value;
    for db in backends("storage-guard") {
        let store = Store::connect(&db).expect("open");
        let vols: Table<Value> = Table::load("volume", &store).expect("load");
        let snaps: Table<Value> = Table::load("snapshot", &store).expect("load");
        // Another process's rows: a 600 GiB volume being extended to 700
        // and a 100 GiB snapshot, all of project p.
        query(
            &db,
            r#"INSERT INTO volumes (id, gen, project_id, size_gb, body) VALUES ('other', 1, 'p', 600, '{"project_id":"p","size":600,"extend_to":700}')"#,
        );
        query(
            &db,
            r#"INSERT INTO snapshots (id, gen, project_id, size_gb, body) VALUES ('osnap', 1, 'p', 100, '{"project_id":"p","size":100}')"#,
        );
        let guard = |count: Option<i64>, requested: i64| Guard::Storage {
            project: "p".into(),
            count: count.map(|n| (n, "Maximum number of volumes allowed (2) exceeded".into())),
            gigabytes: 1000,
            requested,
        };
        let vol = |size: i64| json!({"project_id": "p", "size": size});
        // 700 + 100 held: 201 more is over, 200 fits.
        let refused = vols
            .write_behind_guarded("big", vol(201), guard(Some(10), 201))
            .expect("queued")
            .outcome()
            .await
            .expect_err("over the gigabytes");
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (
                403,
                "Requested volume or snapshot exceeds allowed gigabytes quota. \
                 Requested 201G, quota is 1000G and 800G has been consumed."
            ),
            "{db:?}"
        );
        assert!(vols.get("big").is_none(), "{db:?}");
        vols.write_behind_guarded("fits", vol(150), guard(Some(10), 150))
            .expect("queued")
            .outcome()
            .await
            .expect("950 of 1000");
        // A snapshot is counted with the volumes.
        let refused = snaps
            .write_behind_guarded("s", vol(51), guard(None, 51))
            .expect("queued")
            .outcome()
            .await
            .expect_err("over with the snapshot");
        assert_eq!(refused.code, 403, "{db:?}");
        assert!(
            refused.message.contains("Requested 51G"),
            "{}",
            refused.message
        );
        // An extend of this process's volume (a rewrite of its row) is
        // counted with what it grows by.
        let refused = vols
            .write_behind_guarded(
                "fits",
                json!({"project_id": "p", "size": 150, "extend_to": 201}),
                guard(None, 51),
            )
            .expect("queued")
            .outcome()
            .await
            .expect_err("the extend passes the limit");
        assert_eq!(refused.code, 403, "{db:?}");
        assert_eq!(
            vols.get("fits").map(|v| v["size"].clone()),
            Some(json!(150))
        );
        // The count: a third volume of a project limited to two is refused.
        let refused = vols
            .write_behind_guarded("third", vol(1), guard(Some(2), 1))
            .expect("queued")
            .outcome()
            .await
            .expect_err("a third volume");
        assert_eq!(
            refused.message, "Maximum number of volumes allowed (2) exceeded",
            "{db:?}"
        );
        let held = query(&db, "SELECT count(*) FROM volumes WHERE project_id = 'p'");
        assert_eq!(held, vec![vec![Some("2".into())]], "{db:?}");
    }
}
