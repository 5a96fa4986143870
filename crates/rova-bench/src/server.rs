//! The `rova serve` process under test: spawning it in a fresh temporary
//! data directory on a free loopback port with unlimited quotas, timing its
//! start-up, reading its memory and CPU use from `/proc`, and stopping it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// A running `rova serve` child process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    /// Bench work directory: `data/` (the server's) and the server logs.
    pub work: PathBuf,
    log_path: PathBuf,
    pub data_dir: PathBuf,
}

/// Start-up timings, all measured from just before the process spawn.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// Spawn → first `GET /compute/v2.1` answered 200.
    pub to_serving: Duration,
    /// Spawn → the `rova: serving on ...` line read from stdout.
    pub to_ready_line: Option<Duration>,
    /// The `(ready in N ms)` the server reports about itself.
    pub self_reported_ms: Option<u64>,
    /// CPU time (user + system) the server had used when it first answered:
    /// what start-up costs on an idle machine, whatever the wall time says.
    pub cpu: Option<Duration>,
}

/// How to start the server.
pub struct Launch<'a> {
    pub rova: &'a Path,
    pub sim_latency_ms: Option<u64>,
    pub run_tag: &'a str,
    /// Servers (flavor `1`: 1 vCPU, 512 MB, 1 GB) the run will create; the
    /// simulated host is sized to hold them all.
    pub capacity: usize,
    /// Restart on this earlier work directory instead of a fresh one.
    pub reuse: Option<&'a Path>,
    /// Extra `rova serve` arguments (e.g. `--driver qemu`).
    pub extra_args: &'a [&'a str],
    /// Extra environment variables, set after the defaults above.
    pub extra_env: &'a [(&'a str, &'a str)],
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok(port)
}

/// Spawns the server and waits until it answers `GET /compute/v2.1`.
pub async fn start(
    launch: &Launch<'_>,
    http: &reqwest::Client,
) -> Result<(Server, Startup), String> {
    let (work, log_name) = match launch.reuse {
        Some(dir) => (dir.to_path_buf(), "server-restart.log"),
        None => (
            std::env::temp_dir().join(format!(
                "rova-bench-{}-{}-{}",
                std::process::id(),
                launch.run_tag,
                chrono::Utc::now().timestamp_millis()
            )),
            "server.log",
        ),
    };
    let data_dir = work.join("data");
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let log_path = work.join(log_name);
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let base = format!("http://{addr}");

    let mut cmd = Command::new(launch.rova);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg(addr.to_string());
    if let Some(ms) = launch.sim_latency_ms {
        cmd.arg("--sim-latency-ms").arg(ms.to_string());
    }
    cmd.args(launch.extra_args);
    // Whatever the caller's environment says, this run has no quota limits
    // and the server's default log level (unless `extra_env` says so).
    for (k, _) in std::env::vars() {
        if k.starts_with("ROVA_") {
            cmd.env_remove(k);
        }
    }
    // A simulated host big enough that scheduling never refuses (builds
    // without a simulated fleet ignore these variables).
    let cap = launch.capacity as u64 + 16;
    cmd.env("ROVA_QUOTA_INSTANCES", "-1")
        .env("ROVA_QUOTA_CORES", "-1")
        .env("ROVA_QUOTA_RAM", "-1")
        .env("ROVA_SIM_HOST_VCPUS", cap.to_string())
        .env("ROVA_SIM_HOST_RAM_MB", (cap * 1024).to_string())
        .env("ROVA_SIM_HOST_DISK_GB", (cap * 2).to_string())
        .envs(launch.extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);

    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", launch.rova.display()))?;
    let pid = child.id().ok_or("the server exited at once")?;

    // Read stdout to the end (so the pipe never fills), noting the
    // readiness line's arrival.
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (ready_tx, ready_rx) = oneshot::channel::<(Duration, Option<u64>)>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut ready_tx = Some(ready_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("rova: serving on ") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send((spawned.elapsed(), parse_ready_ms(&line)));
                }
            }
        }
    });

    // Poll fast: a refused connection costs microseconds on loopback.
    let url = format!("{base}/compute/v2.1");
    let deadline = spawned + Duration::from_secs(30);
    let to_serving = loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                let at = spawned.elapsed();
                let _ = r.bytes().await;
                break at;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "rova exited with {status} before serving; see {}",
                log_path.display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "rova did not serve within 30 s; see {}",
                log_path.display()
            ));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let cpu = cpu_time_of(&format!("/proc/{pid}/stat"));
    // The line is printed right after the listener is ready; allow a moment.
    let ready = tokio::time::timeout(Duration::from_secs(2), ready_rx)
        .await
        .ok()
        .and_then(Result::ok);
    let startup = Startup {
        to_serving,
        to_ready_line: ready.map(|r| r.0),
        self_reported_ms: ready.and_then(|r| r.1),
        cpu,
    };
    Ok((
        Server {
            child,
            pid,
            base,
            work,
            log_path,
            data_dir,
        },
        startup,
    ))
}

/// `rova: serving on http://... (ready in 42 ms)` → 42.
fn parse_ready_ms(line: &str) -> Option<u64> {
    let rest = line.split("(ready in ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Server {
    /// The file the server's stderr goes to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        status_field(self.pid, "VmRSS:")
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid, "VmHWM:")
    }

    /// SIGTERM, then SIGKILL after 5 s; removes the work directory unless
    /// `keep`. Returns the server log's text if it has any.
    pub async fn stop(mut self, keep: bool) -> Option<String> {
        self.stop_process().await;
        let log = std::fs::read_to_string(&self.log_path)
            .ok()
            .filter(|s| !s.trim().is_empty());
        if !keep {
            let _ = std::fs::remove_dir_all(&self.work);
        }
        log
    }

    async fn stop_process(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet
            // reaped, so the pid cannot have been reused).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub fn status_field(pid: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime from a `/proc/.../stat` file.
pub fn cpu_time_of(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, i.e. the 12th and 13th after it.
    let after = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready_ms("rova: serving on http://127.0.0.1:1 (ready in 42 ms)"),
            Some(42)
        );
        assert_eq!(parse_ready_ms("rova: serving on http://127.0.0.1:1"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time_of("/proc/self/stat").is_some());
        assert!(status_field(std::process::id(), "VmRSS:").is_some());
    }
}
