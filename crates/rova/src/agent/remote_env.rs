//! The guest environment of an agent's QEMU driver ([`RemoteEnv`]): every
//! question the driver asks about its guests (images, instance records,
//! guest facts, networks) and every observation it reports go to a
//! control replica over the agent API (`/agent/v1/env`), tried in turn
//! while one does not answer. Image bytes are fetched once into the
//! agent's image cache (`<state-dir>/images/<id>`, written whole, then
//! renamed) and exported disks are sent back the same way; the database
//! is never reached from here.

use crate::agent_api::pki::CONTROL_NAME;
use crate::agent_api::types::{self, EnvReply, EnvRequest};
use crate::agent_api::wire::{self, CallError};
use crate::compute::driver::BoxFut;
use crate::virt::env::{
    DhcpPort, GuestEnv, GuestEvent, ImageInfo, PasswordPost, PortSecurity, RouterPlan, Unavailable,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use rova_core::metadata::{GuestFacts, NetFact};
use rova_core::model::Instance;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one question may take.
const ASK_DEADLINE: Duration = Duration::from_secs(30);
/// How long moving an image's bytes may take.
const BYTES_DEADLINE: Duration = Duration::from_secs(600);

/// [`GuestEnv`] over the agent API.
pub struct RemoteEnv {
    client: wire::Client,
    controls: Vec<String>,
    /// The control replica asked last (the next one when it fails).
    at: AtomicUsize,
    images: PathBuf,
}

impl RemoteEnv {
    pub fn new(client: wire::Client, controls: Vec<String>, state_dir: &std::path::Path) -> Self {
        RemoteEnv {
            client,
            controls,
            at: AtomicUsize::new(0),
            images: state_dir.join("images"),
        }
    }

    /// Runs `f` against each control replica in turn, starting with the
    /// last one that answered, until one answers; a refusal is final.
    async fn each<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Unavailable>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let n = self.controls.len().max(1);
        let first = self.at.load(Ordering::Relaxed);
        for k in 0..n {
            let i = (first + k) % n;
            let Some(control) = self.controls.get(i) else {
                break;
            };
            match f(control.clone()).await {
                Ok(v) => {
                    self.at.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(CallError::Refused(fault)) => {
                    tracing::warn!(%control, "{what}: refused: {}", fault.message);
                    return Err(Unavailable);
                }
                Err(e) => tracing::warn!(%control, "{what}: {}", e.message()),
            }
        }
        Err(Unavailable)
    }

    async fn ask(&self, req: EnvRequest) -> Result<EnvReply, Unavailable> {
        let req = &req;
        self.each("guest environment", |control| async move {
            self.client
                .post(&control, CONTROL_NAME, types::ENV, req, ASK_DEADLINE)
                .await
        })
        .await
    }

    /// Whether agent `to` may read guest `uuid`'s files from this one (a
    /// move between them in progress). A control replica that has not
    /// seen the move yet is asked again for a few seconds.
    pub async fn may_copy(&self, uuid: &str, to: &str) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let req = EnvRequest::MayCopy {
                uuid: uuid.to_string(),
                to: to.to_string(),
            };
            if let Ok(EnvReply::MayCopy { allowed: true }) = self.ask(req).await {
                return true;
            }
            if std::time::Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The image's bytes in the agent's cache, fetched when missing.
    async fn cached(&self, id: &str) -> Result<PathBuf, Unavailable> {
        let path = self.images.join(id);
        if path.exists() {
            return Ok(path);
        }
        let url = types::image_file_path(id);
        let bytes = self
            .each("fetching an image", |control| {
                let url = url.clone();
                async move {
                    self.client
                        .get_bytes(&control, CONTROL_NAME, &url, BYTES_DEADLINE)
                        .await
                }
            })
            .await?;
        let tmp = self.images.join(format!(".{id}.{}", uuid::Uuid::new_v4()));
        let written = tokio::fs::create_dir_all(&self.images)
            .await
            .and(tokio::fs::write(&tmp, &bytes).await)
            .and(tokio::fs::rename(&tmp, &path).await);
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            tracing::warn!(image = %id, "caching an image: {e}");
            return Err(Unavailable);
        }
        Ok(path)
    }
}

/// An answer of the wrong kind (a control replica of another version).
fn unexpected(reply: EnvReply) -> Unavailable {
    tracing::warn!("unexpected answer from the control plane: {reply:?}");
    Unavailable
}

impl GuestEnv for RemoteEnv {
    fn image<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, Unavailable>> {
        Box::pin(async move {
            let image = match self.ask(EnvRequest::Image { id: id.into() }).await? {
                EnvReply::Image { image } => image,
                other => return Err(unexpected(other)),
            };
            match image {
                Some(mut info) if info.active => {
                    info.file = self.cached(id).await?;
                    Ok(Some(info))
                }
                other => Ok(other),
            }
        })
    }

    fn guest_facts<'a>(
        &'a self,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<GuestFacts, Unavailable>> {
        Box::pin(async move {
            match self
                .ask(EnvRequest::GuestFacts {
                    instance: Box::new(inst.clone()),
                })
                .await?
            {
                EnvReply::GuestFacts { facts } => Ok(*facts),
                other => Err(unexpected(other)),
            }
        })
    }

    fn instance<'a>(
        &'a self,
        uuid: &'a str,
    ) -> BoxFut<'a, Result<Option<Arc<Instance>>, Unavailable>> {
        Box::pin(async move {
            match self.ask(EnvRequest::Instance { uuid: uuid.into() }).await? {
                EnvReply::Instance { instance } => Ok(instance.map(|i| Arc::new(*i))),
                other => Err(unexpected(other)),
            }
        })
    }

    fn instances(&self) -> BoxFut<'_, Vec<Arc<Instance>>> {
        Box::pin(async move {
            match self.ask(EnvRequest::Instances).await {
                Ok(EnvReply::Instances { instances }) => {
                    instances.into_iter().map(Arc::new).collect()
                }
                _ => Vec::new(),
            }
        })
    }

    fn post_password(&self, uuid: &str, body: Vec<u8>) -> BoxFut<'_, PasswordPost> {
        let req = EnvRequest::PostPassword {
            uuid: uuid.to_string(),
            body_b64: base64::engine::general_purpose::STANDARD.encode(body),
        };
        Box::pin(async move {
            match self.ask(req).await {
                Ok(EnvReply::Password { outcome }) => outcome,
                Ok(other) => {
                    let _ = unexpected(other);
                    PasswordPost::Unavailable
                }
                Err(Unavailable) => PasswordPost::Unavailable,
            }
        })
    }

    fn save_image(
        &self,
        image_id: &str,
        bytes: Vec<u8>,
        virtual_size: Option<u64>,
    ) -> BoxFut<'_, Result<(), String>> {
        let mut url = types::image_file_path(image_id);
        if let Some(n) = virtual_size {
            url.push_str(&format!("?virtual_size={n}"));
        }
        let body = bytes::Bytes::from(bytes);
        Box::pin(async move {
            let mut last = String::from("no control replica is configured");
            for control in &self.controls {
                match self
                    .client
                    .put_bytes(control, CONTROL_NAME, &url, body.clone(), BYTES_DEADLINE)
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(CallError::Refused(f)) => return Err(f.message),
                    Err(e) => last = e.message(),
                }
            }
            Err(last)
        })
    }

    fn network<'a>(
        &'a self,
        network_id: &'a str,
    ) -> BoxFut<'a, Result<Option<NetFact>, Unavailable>> {
        Box::pin(async move {
            match self
                .ask(EnvRequest::Network {
                    network_id: network_id.into(),
                })
                .await?
            {
                EnvReply::Network { network } => Ok(network),
                other => Err(unexpected(other)),
            }
        })
    }

    fn dhcp_port<'a>(
        &'a self,
        network_id: &'a str,
        datapath: &'a str,
    ) -> BoxFut<'a, Result<DhcpPort, String>> {
        Box::pin(async move {
            let req = EnvRequest::DhcpPort {
                network_id: network_id.into(),
                datapath: datapath.into(),
            };
            match self.ask(req).await {
                Ok(EnvReply::DhcpPort { port }) => Ok(port),
                Ok(EnvReply::Failed { message }) => Err(message),
                Ok(other) => Err(unexpected(other).to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn instance_at<'a>(
        &'a self,
        network_id: &'a str,
        ip: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, Unavailable>> {
        Box::pin(async move {
            let req = EnvRequest::InstanceAt {
                network_id: network_id.into(),
                ip: ip.into(),
            };
            match self.ask(req).await? {
                EnvReply::InstanceAt { uuid } => Ok(uuid),
                other => Err(unexpected(other)),
            }
        })
    }

    fn port_security<'a>(
        &'a self,
        port_ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<PortSecurity>, Unavailable>> {
        Box::pin(async move {
            let req = EnvRequest::PortSecurity {
                port_ids: port_ids.to_vec(),
            };
            match self.ask(req).await? {
                EnvReply::PortSecurity { ports } => Ok(ports),
                other => Err(unexpected(other)),
            }
        })
    }

    fn routers(&self) -> BoxFut<'_, Result<Vec<RouterPlan>, Unavailable>> {
        Box::pin(async move {
            match self.ask(EnvRequest::Routers).await? {
                EnvReply::Routers { routers } => Ok(routers),
                other => Err(unexpected(other)),
            }
        })
    }

    /// The agent's clock; the control plane stamps what it is told with
    /// its own (possibly virtual) time.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn report(&self, event: GuestEvent) -> BoxFut<'_, bool> {
        Box::pin(async move {
            matches!(
                self.ask(EnvRequest::Report { event }).await,
                Ok(EnvReply::Reported { changed: true })
            )
        })
    }
}
