//! Keypairs over HTTP: importing every key type Nova accepts gives the
//! fingerprint `ssh-keygen -l -E md5` prints (keys and expected values made
//! once with OpenSSH 9.2 and hardcoded), x509 certificates give their SHA-1
//! fingerprint (`openssl x509 -fingerprint -sha1`), malformed keys are
//! Nova's 400, generated keys are readable by OpenSSH, and a create racing
//! a delete of the same name is never a 5xx.

use crate::common::{self, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// (public key line, `ssh-keygen -l -E md5` fingerprint).
const KEYS: &[(&str, &str)] = &[
    (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4b/yZS+M7BnWx0FjDDMxXiiGMvX6QLlRIIkavMsxNpg+qRAr5X1up0RTy6iV1hndhMf3RHDJwsbiMJOEs5y1qTeHhyy0TvuM3EK8U0KZ5ldFzixr6FlZaZocpWnUbOilxNzQTq3If/fo9e0Tj/c43T/klkW+QHRN7bjBEVyTFMtsnyjMlIIjyHwL7WIKbNx5hexmsZtqvl0NqhlIEJujcBuTzO6c9ma848p+RYWN9Q72QZ5iTFJDcSJnrQKFunD/rAk95HeoslZ1PO6MZ7J7bQJ5s6NMiy2hTPpsuJ5nnLd1QmbSvKP9s/OHmYHXN2zDSXqY6ql9oCVEB/FQldk3J rova-test",
        "8c:df:33:57:e1:27:fe:5d:5f:f2:e1:39:46:d0:3f:de",
    ),
    (
        "ssh-dss AAAAB3NzaC1kc3MAAACBANjbmINAxCoA+bW0Ob1aVDgfaWMpoN23GlB4GeHUKT0GbSPyXZrNQ5vKX93D2s1417J+48mHMvtzdLMQgM/N6k9w6nnTR4YN13BLaMTkneKaBS2KIAf8+Tlhg+dk0WfwDOt8QMGPkUSweOULLfPhA4joBqbF3U17ZWWaA48NrXDJAAAAFQCfQEAQIrHUCDbiGld32KtEsS64vwAAAIBy30GyXn7iKZV4XK5Fx+oatokL7Us2OhlxSVRuvyHU+HB+9PdnBH+Vg5cGwY13zLiSJjP0tqOUh/jvmVjkkrxEzQ0I+TFN7JpOghBPPUKOPLlxEwh6ZBnoidecXvF+dJJva1+dxrmeg2dz7DUJrfjdrEPXR1zaDzfi+bn+eXYvyQAAAIEAtuZdlxiPLgh6drgVyESlpErjqbUWMd8X5Xags+KDAUk8owXftnKK4ikUVjJ49RsGF5qf/adzAD7hHaS2Ct7CEjaqCvZfUfZPNz1FlOwUna5rNtPO3jhYTEMZYmAfEXa1FqBt9fUv8NU5HCJDaMsnvugey6A2QnFoUgeHmSmEOxQ= rova-test",
        "8d:b1:8e:b9:36:44:fc:3e:28:20:88:f4:35:89:dc:dd",
    ),
    (
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPHoFdjDFRLykrO3aEDlLa8CPpiruCF0jiUCKRPp7+QnQvCw56aArFAmvbHD4HgxKV3Uk1xbnehYKaLGRmPgAPA= rova-test",
        "67:f6:16:c3:45:04:40:c1:c3:3a:25:ae:e2:e6:f9:db",
    ),
    (
        "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBDFa/fN7oxGag5SeUNvc/5s1xdiByrLwzBLGBYmwDBIltH/irRmXLYUUsyrHwyJafUmRCyahSopko/sgCOgDDVPCI93JPx6b2EDL/nak4ny92h5ZXeeNThlHzUWHhm/5mg== rova-test",
        "4f:01:b1:2b:5d:b3:db:d2:f9:2c:b8:ad:dc:46:5f:b3",
    ),
    (
        "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBADecMoL5KnrZQOWCuq8GhqHAXD3YryWG0mkC7Wm9Kz9+eGu5F4icDoequwQUgwJe3aNuYzn4zUQX6PfO4ayCWIseQExLNBn5QhAGrWhHLbFfE6dRTKi3RwHZtX9bKD21Rg8lV6Mow0pyE8Vr4W8VKJS3EOb71oOQvxzmpYKNHtG5qAz3g== rova-test",
        "6b:b7:1f:32:60:d9:d1:2e:32:4c:e5:fb:fa:37:32:38",
    ),
    (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDPCT3LZtKYY+z5GQRI7B6yqIf3HmyEazkMpFCsuBmXT rova-test",
        "c2:ff:5a:cc:33:55:f2:07:a5:2a:f3:c1:6b:35:c6:13",
    ),
    // Nova's own API sample (a 1024-bit RSA key) and the fingerprint its
    // response sample shows.
    (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova",
        "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c",
    ),
];

/// A self-signed P-256 certificate (`openssl req -x509`) and its
/// `openssl x509 -fingerprint -sha1`.
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUfB9BKyEX6Z2ByuvFekEARsMdQ6YwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJcm92YS10ZXN0MB4XDTI2MTIwNTE0MDI0OFoXDTM2MTIwMjE0
MDI0OFowFDESMBAGA1UEAwwJcm92YS10ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEINEt0wnSphogSpi3rkOgoZZKB9swUk8UFsP+PMbYEUPPeLV82mNcRBI8
Hikp9koqAj8s03CsQXjQeOKBnSSCO6NTMFEwHQYDVR0OBBYEFFNVKNznzdddLKJF
ETONsSEBo9V2MB8GA1UdIwQYMBaAFFNVKNznzdddLKJFETONsSEBo9V2MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgMRK0Ser3C3N7IzsPzSevDu5d
1loZLvB9iPJKJM7ZO3ECIEuPHweQetdo/jOPA88yCrhUHQMGTm9PnlelOTaRqBDa
-----END CERTIFICATE-----
";
const CERT_SHA1: &str = "ba:d6:31:52:f3:74:ad:c7:93:f4:62:dc:06:57:a3:0a:90:3e:05:11";

async fn create(cloud: &TestCloud, u: &User, version: &str, keypair: Value) -> Resp {
    cloud
        .post(
            u,
            "/os-keypairs",
            Some(version),
            json!({"keypair": keypair}),
        )
        .await
}

#[tokio::test]
async fn imported_keys_have_openssh_md5_fingerprints() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for (i, (key, fingerprint)) in KEYS.iter().enumerate() {
        let name = format!("k{i}");
        let r = create(
            &cloud,
            &demo,
            "2.2",
            json!({"name": name, "public_key": key}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{key}: {}", r.text);
        assert_eq!(
            r.body["keypair"]["fingerprint"],
            json!(fingerprint),
            "{key}"
        );
        assert_eq!(r.body["keypair"]["type"], json!("ssh"));
        assert!(r.body["keypair"].get("private_key").is_none());
        let shown = cloud
            .get(&demo, &format!("/os-keypairs/{name}"), Some("2.2"))
            .await;
        assert_eq!(shown.body["keypair"]["fingerprint"], json!(fingerprint));
        assert_eq!(shown.body["keypair"]["public_key"], json!(key));
    }
}

#[tokio::test]
async fn malformed_keys_are_nova_400s_and_create_nothing() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let (rsa, _) = KEYS[0];
    let (p384, _) = KEYS[3];
    let blob_p384 = p384.split(' ').nth(1).unwrap_or_default();
    let bad = [
        "not a key".to_string(),
        "ssh-rsa AAAA".to_string(),
        // Truncated key material.
        rsa[..200].to_string(),
        // The outer type does not match the blob's.
        format!("ecdsa-sha2-nistp256 {blob_p384}"),
        format!("ssh-ed25519 {blob_p384}"),
        "ssh-ed25519 !!!notbase64!!!".to_string(),
    ];
    for key in &bad {
        let r = create(
            &cloud,
            &demo,
            "2.2",
            json!({"name": "bad", "public_key": key}),
        )
        .await;
        assert_eq!(
            r.fault(400),
            "Keypair data is invalid: failed to generate fingerprint",
            "{key}"
        );
    }
    let r = create(
        &cloud,
        &demo,
        "2.2",
        json!({"name": "badcert", "type": "x509", "public_key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
    )
    .await;
    assert!(r.fault(400).starts_with(
        "Keypair data is invalid: failed to generate X509 fingerprint. Error message: "
    ));
    // An SSH key is not a certificate.
    let r = create(
        &cloud,
        &demo,
        "2.2",
        json!({"name": "badcert", "type": "x509", "public_key": rsa}),
    )
    .await;
    r.fault(400);
    let l = cloud.get(&demo, "/os-keypairs", Some("2.2")).await;
    assert_eq!(l.body, json!({"keypairs": []}), "{}", l.text);
}

#[tokio::test]
async fn x509_keypairs_import_and_generate() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let r = create(
        &cloud,
        &demo,
        "2.2",
        json!({"name": "cert", "type": "x509", "public_key": CERT}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["keypair"]["fingerprint"], json!(CERT_SHA1));
    assert_eq!(r.body["keypair"]["type"], json!("x509"));
    // Generated: a certificate for the user, fingerprinted as an import of
    // the same certificate would be.
    let r = create(&cloud, &demo, "2.2", json!({"name": "gen", "type": "x509"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let kp = &r.body["keypair"];
    let cert = kp["public_key"].as_str().unwrap_or_default().to_string();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    assert!(kp["private_key"]
        .as_str()
        .unwrap_or_default()
        .contains("PRIVATE KEY"));
    let again = create(
        &cloud,
        &demo,
        "2.2",
        json!({"name": "gen2", "type": "x509", "public_key": cert}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["keypair"]["fingerprint"], kp["fingerprint"]);
    // `type` is 2.2+.
    create(&cloud, &demo, "2.1", json!({"name": "old", "type": "x509"}))
        .await
        .fault(400);
}

/// The OpenSSH public key `ssh-keygen -y` derives from a private key file,
/// or None when ssh-keygen is not installed.
fn ssh_keygen_public(private: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rova-kp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).ok()?;
    let path = dir.join("id");
    std::fs::write(&path, private).ok()?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ok()?;
    let out = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.ok()?;
    assert!(
        out.status.success(),
        "ssh-keygen -y: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test]
async fn generated_keys_are_openssh_keys() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for (n, version) in ["2.1", "2.91"].into_iter().enumerate() {
        let r = create(&cloud, &demo, version, json!({"name": format!("g{n}")})).await;
        assert!(r.status.is_success(), "{}", r.text);
        let kp = &r.body["keypair"];
        let public = kp["public_key"].as_str().unwrap_or_default().to_string();
        let private = kp["private_key"].as_str().unwrap_or_default().to_string();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        // Importing the generated public key gives the same fingerprint.
        let import = create(
            &cloud,
            &demo,
            version,
            json!({"name": format!("i{n}"), "public_key": public}),
        )
        .await;
        assert_eq!(import.body["keypair"]["fingerprint"], kp["fingerprint"]);
        if let Some(derived) = ssh_keygen_public(&private) {
            let key_of = |line: &str| line.split(' ').take(2).collect::<Vec<_>>().join(" ");
            assert_eq!(key_of(&derived), key_of(&public));
        }
    }
    // From 2.92 the public key is required.
    let r = create(&cloud, &demo, "2.92", json!({"name": "g292"})).await;
    assert_eq!(
        r.fault(400),
        "Invalid input for field/attribute keypair. 'public_key' is a required property"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_racing_delete_is_never_a_5xx() {
    let cloud = std::sync::Arc::new(common::start().await);
    let demo = cloud.login("demo").await;
    let (key, _) = KEYS[5];
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let cloud = cloud.clone();
        let demo = demo.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..40 {
                if worker % 2 == 0 {
                    let r = create(
                        &cloud,
                        &demo,
                        "2.2",
                        json!({"name": "race", "public_key": key}),
                    )
                    .await;
                    if r.status == StatusCode::CREATED {
                        // What was created is what is returned.
                        assert_eq!(r.body["keypair"]["name"], json!("race"), "{}", r.text);
                    }
                    codes.push(("create", r.status.as_u16(), r.text));
                } else {
                    let r = cloud
                        .compute(
                            &demo,
                            Method::DELETE,
                            "/os-keypairs/race",
                            Some("2.2"),
                            None,
                        )
                        .await;
                    codes.push(("delete", r.status.as_u16(), r.text));
                }
            }
            codes
        }));
    }
    let mut created = 0;
    for t in tasks {
        for (op, code, text) in t.await.expect("worker") {
            match op {
                "create" => assert!(code == 201 || code == 409, "create {code}: {text}"),
                _ => assert!(code == 204 || code == 404, "delete {code}: {text}"),
            }
            created += usize::from(code == 201);
        }
    }
    assert!(created > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_never_overshoot_the_keypair_quota() {
    let cloud = std::sync::Arc::new(common::start_with(|cfg| cfg.quota.key_pairs = 3).await);
    let demo = cloud.login("demo").await;
    let (key, _) = KEYS[5];
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (cloud, demo) = (cloud.clone(), demo.clone());
            tokio::spawn(async move {
                create(
                    &cloud,
                    &demo,
                    "2.2",
                    json!({"name": format!("q{i}"), "public_key": key}),
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let r = t.await.expect("create task");
        if r.status == StatusCode::CREATED {
            created += 1;
        } else {
            assert_eq!(r.fault(403), "Quota exceeded, too many key pairs.");
        }
    }
    assert_eq!(created, 3);
    let l = cloud.get(&demo, "/os-keypairs", Some("2.2")).await;
    assert_eq!(l.body["keypairs"].as_array().map_or(0, Vec::len), 3);
}
