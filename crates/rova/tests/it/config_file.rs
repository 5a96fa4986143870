//! `rova serve --config FILE` run as the real binary: a bad file stops the
//! start with exit code 2 and names the key; a good one is served as it
//! says (its `listen` address and `data_dir`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh temporary path.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rova-config-{tag}-{}", uuid::Uuid::new_v4()))
}

/// `rova serve --config FILE`, with none of the environment that would
/// override the file.
fn serve(file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rova"));
    cmd.arg("serve")
        .arg("--config")
        .arg(file)
        .env("ROVA_LOG", "warn")
        .stdin(Stdio::null());
    for var in [
        "ROVA_CONFIG",
        "ROVA_DATA_DIR",
        "ROVA_DATABASE_URL",
        "ROVA_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn a_bad_file_stops_the_start_naming_the_key() {
    for (text, key, reason) in [
        (
            "sim_hosts = 2\nlisten_address = \"127.0.0.1:1\"\n",
            "listen_address",
            "unknown key",
        ),
        ("driver = \"xen\"\n", "driver", "unknown driver"),
        ("[quota]\ncores = \"many\"\n", "quota.cores", "invalid type"),
    ] {
        let file = temp_path("bad").with_extension("toml");
        std::fs::write(&file, text).expect("writing the file");
        let out = serve(&file).output().expect("rova runs");
        let _ = std::fs::remove_file(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        let expected = format!("rova: invalid configuration: {}: {key}: ", file.display());
        assert!(stderr.contains(&expected), "{text}: {stderr}");
        assert!(stderr.contains(reason), "{text}: {stderr}");
    }
}

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_file_is_served_as_it_says() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = temp_path("data");
    let file = temp_path("good").with_extension("toml");
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nsim_latency_ms = 0\n\n[quota]\ninstances = -1\n",
        dir.display().to_string()
    );
    std::fs::write(&file, text).expect("writing the file");
    let mut server = Running(
        serve(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rova serve starts"),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Ok(Some(exit)) = server.0.try_wait() {
            panic!("rova serve exited: {exit}");
        }
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/")).send().await {
            break r.status();
        }
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.is_success(), "GET / answered {status}");
    assert!(
        dir.join("rova.sqlite").exists(),
        "the database is in the file's data_dir"
    );
    drop(server);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rova agent --config FILE` reads the `[agent]` table: a bad key or a
/// missing required one stops the start with exit code 2 naming it, and a
/// flag stands in for a key the file lacks.
#[test]
fn the_agent_reads_its_table_and_names_a_bad_or_missing_key() {
    let agent = |file: &Path, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rova"));
        cmd.arg("agent")
            .arg("--config")
            .arg(file)
            .args(extra)
            .env("ROVA_LOG", "warn")
            .stdin(Stdio::null());
        for (var, _) in std::env::vars() {
            if var.starts_with("ROVA_AGENT_") || var == "ROVA_ENROLL_TOKEN" {
                cmd.env_remove(var);
            }
        }
        cmd.output().expect("rova runs")
    };
    let file = temp_path("agent").with_extension("toml");
    for (text, extra, expected) in [
        (
            "[agent]\nhost = \"n1\"\nhostname = \"n1\"\n",
            &[][..],
            "agent.hostname: unknown key (line 3)".to_string(),
        ),
        (
            "[agent]\ncontrol = [\"127.0.0.1:1\"]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"/nonexistent\"\n",
            &[][..],
            "agent.host: missing (give --host or the key host in the [agent] table)".to_string(),
        ),
        (
            "[agent]\nhost = \"n1\"\ncontrol = [\"127.0.0.1:1\"]\nlisten = \"127.0.0.1:0\"\n",
            &["--report-interval", "0", "--state-dir", "/nonexistent"][..],
            "agent.report_interval: must be at least 1 second".to_string(),
        ),
    ] {
        std::fs::write(&file, text).expect("writing the file");
        let out = agent(&file, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(&expected), "{text}: {stderr}");
    }
    let _ = std::fs::remove_file(&file);
}
