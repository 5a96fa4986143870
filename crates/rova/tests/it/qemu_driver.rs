//! The QEMU driver's control-plane edges that need no guest image: a QEMU
//! that refuses to start puts the server in ERROR with a clear fault, and
//! a missing guest image is reported at start-up instead of failing. (Real
//! guests boot in the `tests/guest` suite.)

use crate::common::start_with;
use rova::config::DriverKind;
use serde_json::json;

fn qemu_cfg(cfg: &mut rova::config::Config) {
    cfg.driver = DriverKind::Qemu;
    cfg.qemu.accel = "tcg".into();
    cfg.qemu.guest_kernel = Some("/nonexistent/vmlinuz".into());
    cfg.qemu.guest_initrd = Some("/nonexistent/initramfs".into());
}

#[tokio::test]
async fn qemu_that_cannot_start_puts_the_server_in_error_with_its_message() {
    let cloud = start_with(|cfg| {
        qemu_cfg(cfg);
        cfg.qemu.cpu_model = Some("no-such-cpu-model".into());
    })
    .await;
    let demo = cloud.login("demo").await;
    let s = cloud.boot(&demo, "doomed", None, json!({})).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    let msg = s["fault"]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("QEMU failed to start"), "fault: {s}");
    assert!(
        msg.contains("no-such-cpu-model"),
        "fault names the cause: {s}"
    );
    // Nothing is left running or half-made for the server.
    let id = s["id"].as_str().unwrap_or_default();
    let qemu_dir = cloud.dir.join("qemu");
    let pidfiles: Vec<_> = walk(&qemu_dir)
        .into_iter()
        .filter(|p| p.ends_with("qemu.pid") && p.to_string_lossy().contains(id))
        .collect();
    for p in pidfiles {
        let pid = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
                || pid.trim().is_empty(),
            "a QEMU process was left running: {}",
            p.display()
        );
    }
    // The server can be deleted.
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::DELETE,
            &format!("/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    cloud.wait_status(&demo, id, &["404"], None).await;
    assert!(!qemu_dir.join("instances").join(id).exists());
}

#[tokio::test]
async fn qemu_mode_hosts_are_agents_with_their_own_names() {
    let cloud = start_with(|cfg| {
        qemu_cfg(cfg);
        cfg.qemu.hosts = 2;
    })
    .await;
    let admin = cloud.login("admin").await;
    let r = cloud.get(&admin, "/os-hypervisors", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let mut names: Vec<String> = r.body["hypervisors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h["hypervisor_hostname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["rova-qemu-1", "rova-qemu-2"]);
    // No guest assets: no guest image registered, the cloud still serves.
    let imgs = cloud
        .app
        .images
        .filter(|i| i.name.as_deref() == Some("rova-guest"));
    assert!(imgs.is_empty());
    // Its declared capabilities: everything but setting the admin
    // password, which needs a guest agent, and plugging NICs in and out
    // (with user networking; the bridge data path hot-plugs them).
    use rova::compute::driver::DriverOpKind;
    let d = &cloud.app.compute.driver;
    let cannot = [
        DriverOpKind::ChangePassword,
        DriverOpKind::AttachInterface,
        DriverOpKind::DetachInterface,
    ];
    for k in DriverOpKind::all() {
        assert_eq!(d.supports(k), !cannot.contains(&k), "{k:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
