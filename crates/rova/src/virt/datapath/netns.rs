//! Commands and sockets in the data path's network namespace: `ip` run
//! with `-n NS`, programs started under `ip netns exec NS`, and TCP
//! listeners bound inside the namespace (a thread enters it with
//! `setns(2)`, binds, and the socket stays in that namespace after the
//! thread leaves). With no namespace configured everything runs in the
//! namespace Rova itself runs in.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The namespace the data path lives in (`None`: Rova's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns(pub Option<String>);

/// Longest a single `ip` or helper command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

impl Netns {
    /// `ip [-n NS] args…`; its standard output, or the reason it failed
    /// (the command and its first error line).
    pub async fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = tokio::process::Command::new("ip");
        if let Some(ns) = &self.0 {
            cmd.args(["-n", ns]);
        }
        cmd.args(args);
        run(cmd, &format!("ip {}", args.join(" "))).await
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        match &self.0 {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => tokio::process::Command::new(program),
        }
    }

    /// The argv prefix that puts a program into the namespace (empty
    /// without one).
    pub fn exec_prefix(&self) -> Vec<String> {
        match &self.0 {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
        }
    }

    /// Whether the namespace exists (always true without one).
    pub fn exists(&self) -> bool {
        match &self.0 {
            Some(ns) => ns_path(ns).is_some(),
            None => true,
        }
    }

    /// A listening TCP socket on `addr` inside the namespace, bound to
    /// interface `device` when given (so that one address can be served
    /// separately on several bridges).
    pub fn bind_tcp(
        &self,
        addr: SocketAddr,
        device: Option<&str>,
    ) -> Result<std::net::TcpListener, String> {
        let ns = self.0.clone();
        let device = device.map(str::to_string);
        // setns(2) changes the calling thread only: a short-lived thread
        // of its own enters the namespace, so no runtime thread does.
        std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
            if let Some(ns) = &ns {
                enter(ns)?;
            }
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )
            .map_err(|e| format!("socket: {e}"))?;
            sock.set_reuse_address(true)
                .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
            if let Some(dev) = &device {
                sock.bind_device(Some(dev.as_bytes()))
                    .map_err(|e| format!("SO_BINDTODEVICE {dev}: {e}"))?;
            }
            sock.bind(&addr.into())
                .map_err(|e| format!("binding {addr}: {e}"))?;
            sock.listen(128).map_err(|e| format!("listen: {e}"))?;
            sock.set_nonblocking(true)
                .map_err(|e| format!("non-blocking: {e}"))?;
            Ok(sock.into())
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    }
}

/// Where `ip netns` keeps the namespace's handle.
fn ns_path(ns: &str) -> Option<std::path::PathBuf> {
    if ns.is_empty() || ns.contains('/') {
        return None;
    }
    ["/run/netns", "/var/run/netns"]
        .iter()
        .map(|d| std::path::Path::new(d).join(ns))
        .find(|p| p.exists())
}

/// Moves the calling thread into namespace `ns`.
fn enter(ns: &str) -> Result<(), String> {
    let path = ns_path(ns).ok_or_else(|| format!("network namespace {ns:?} does not exist"))?;
    let f = std::fs::File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: setns(2) on an open namespace file descriptor; it affects
    // only this thread, which ends after binding.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "entering network namespace {ns}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `cmd` to completion within [`COMMAND_TIMEOUT`].
pub async fn run(mut cmd: tokio::process::Command, what: &str) -> Result<String, String> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{what}: no answer within {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed");
    Err(format!("{what}: {}", first.trim()))
}
