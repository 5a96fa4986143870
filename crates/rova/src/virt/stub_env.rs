//! Tests only: a [`GuestEnv`] with no service behind it — instances and
//! images held in memory, password posts and reported events recorded, a
//! fixed clock and a switch that makes it answer [`Unavailable`] — so the
//! driver and the metadata service are exercised without an application.

use crate::compute::driver::BoxFut;
use crate::virt::env::{
    DhcpPort, GuestEnv, GuestEvent, ImageInfo, PasswordPost, PortSecurity, RouterPlan, Unavailable,
};
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use rova_core::metadata::{GuestFacts, NetFact};
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::{PowerState, VmState};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct StubEnv {
    pub instances: Mutex<Vec<Arc<Instance>>>,
    pub images: Mutex<HashMap<String, ImageInfo>>,
    /// (uuid, body) of every password post.
    pub passwords: Mutex<Vec<(String, Vec<u8>)>>,
    pub events: Mutex<Vec<GuestEvent>>,
    /// (image id, bytes) of every saved image.
    pub saved: Mutex<Vec<(String, Vec<u8>)>>,
    /// Answer [`Unavailable`] (the service is gone).
    pub gone: AtomicBool,
}

/// The stub's clock.
pub fn stub_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("a valid time")
}

/// A fresh private directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rova-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// A running server `uuid` named `name` on `host`.
pub fn instance(uuid: &str, name: &str, host: &str) -> Instance {
    let t = stub_now();
    serde_json::from_value(json!({
        "id": 7, "uuid": uuid, "display_name": name, "project_id": "p1",
        "user_id": "u1", "image_ref": "img-1", "flavor": FlavorSnapshot::default(),
        "vm_state": VmState::Active, "power_state": PowerState::Running,
        "progress": 0, "host": host, "hostname": name, "config_drive": false,
        "auto_disk_config": false, "metadata": {}, "tags": [], "launch_index": 0,
        "reservation_id": "r-1", "kernel_id": "", "ramdisk_id": "",
        "created_at": t, "updated_at": t, "deleted": false, "vifs": [],
        "security_groups": [], "scheduler_hints": {}, "block_device_mapping": [],
        "personality": [],
    }))
    .expect("a valid instance")
}

impl StubEnv {
    pub fn with(instances: Vec<Instance>) -> Arc<StubEnv> {
        let env = StubEnv::default();
        *env.instances.lock() = instances.into_iter().map(Arc::new).collect();
        Arc::new(env)
    }

    fn check(&self) -> Result<(), Unavailable> {
        if self.gone.load(Ordering::SeqCst) {
            Err(Unavailable)
        } else {
            Ok(())
        }
    }
}

impl GuestEnv for StubEnv {
    fn image<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.images.lock().get(id).cloned())
        })
    }
    fn guest_facts<'a>(
        &'a self,
        _inst: &'a Instance,
    ) -> BoxFut<'a, Result<GuestFacts, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(GuestFacts::new(stub_now().date_naive(), vec![7; 16]))
        })
    }
    fn instance<'a>(
        &'a self,
        uuid: &'a str,
    ) -> BoxFut<'a, Result<Option<Arc<Instance>>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(self
                .instances
                .lock()
                .iter()
                .find(|i| i.uuid == uuid && !i.deleted)
                .cloned())
        })
    }
    fn instances(&self) -> BoxFut<'_, Vec<Arc<Instance>>> {
        Box::pin(async move {
            if self.check().is_err() {
                return Vec::new();
            }
            self.instances.lock().clone()
        })
    }
    fn post_password(&self, uuid: &str, body: Vec<u8>) -> BoxFut<'_, PasswordPost> {
        let uuid = uuid.to_string();
        Box::pin(async move {
            if self.check().is_err() {
                return PasswordPost::Unavailable;
            }
            self.passwords.lock().push((uuid, body));
            PasswordPost::Stored
        })
    }
    fn save_image(
        &self,
        image_id: &str,
        bytes: Vec<u8>,
        _virtual_size: Option<u64>,
    ) -> BoxFut<'_, Result<(), String>> {
        let id = image_id.to_string();
        Box::pin(async move {
            self.check().map_err(|e| e.to_string())?;
            self.saved.lock().push((id, bytes));
            Ok(())
        })
    }
    fn network<'a>(
        &'a self,
        _network_id: &'a str,
    ) -> BoxFut<'a, Result<Option<NetFact>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(None)
        })
    }
    fn dhcp_port<'a>(
        &'a self,
        network_id: &'a str,
        _datapath: &'a str,
    ) -> BoxFut<'a, Result<DhcpPort, String>> {
        Box::pin(async move { Err(format!("the stub has no network {network_id}")) })
    }
    fn instance_at<'a>(
        &'a self,
        _network_id: &'a str,
        ip: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            // The stub's instances are found by their fixed IPs on any network.
            Ok(self
                .instances
                .lock()
                .iter()
                .find(|i| {
                    i.vifs
                        .iter()
                        .any(|v| v.fixed_ips.iter().any(|f| f.address == ip))
                })
                .map(|i| i.uuid.clone()))
        })
    }
    fn port_security<'a>(
        &'a self,
        _port_ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<PortSecurity>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(Vec::new())
        })
    }
    fn routers(&self) -> BoxFut<'_, Result<Vec<RouterPlan>, Unavailable>> {
        Box::pin(async move {
            self.check()?;
            Ok(Vec::new())
        })
    }
    fn now(&self) -> DateTime<Utc> {
        stub_now()
    }
    fn report(&self, event: GuestEvent) -> BoxFut<'_, bool> {
        Box::pin(async move {
            if self.check().is_err() {
                return false;
            }
            self.events.lock().push(event);
            true
        })
    }
}
