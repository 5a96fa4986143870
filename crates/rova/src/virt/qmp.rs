//! The QMP client: talks to one QEMU process over its unix-socket monitor
//! (newline-delimited JSON). Owns the connection handshake (greeting +
//! `qmp_capabilities`), request/response matching by message id, timeouts,
//! and buffering of the asynchronous events QEMU interleaves with replies.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::Instant;

/// How long `execute` waits for a reply unless changed with `set_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many unclaimed events are kept (the oldest are dropped).
const MAX_BUFFERED_EVENTS: usize = 1024;
/// A single QMP message longer than this is treated as a protocol error.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// One open QMP session.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Bytes of a line not yet complete (kept across cancelled reads).
    partial: Vec<u8>,
    events: VecDeque<Value>,
    next_id: u64,
    timeout: Duration,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("buffered_events", &self.events.len())
            .field("next_id", &self.next_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Qmp {
    /// Connects (retrying while the socket does not exist / refuses, until
    /// `timeout`), reads the greeting, sends qmp_capabilities.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, String> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "cannot connect to QMP socket {}: {e} (gave up after {:?})",
                            path.display(),
                            timeout
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(r),
            writer: w,
            partial: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
            timeout: DEFAULT_TIMEOUT,
        };
        // The greeting gets at least a couple of seconds even when the
        // connect itself used up most of the budget.
        let greet_deadline = deadline.max(Instant::now() + Duration::from_secs(2));
        loop {
            let msg = qmp.read_message(greet_deadline).await.map_err(|e| {
                format!(
                    "no QMP greeting on {} ({e}; is another client connected?)",
                    path.display()
                )
            })?;
            if msg.get("QMP").is_some() {
                break;
            }
            if msg.get("event").is_some() {
                qmp.push_event(msg);
                continue;
            }
            return Err(format!(
                "unexpected first message on {}: {msg}",
                path.display()
            ));
        }
        qmp.execute("qmp_capabilities", Value::Null)
            .await
            .map_err(|e| format!("qmp_capabilities on {} failed: {e}", path.display()))?;
        Ok(qmp)
    }

    /// Runs a command; `args` is Value::Null for none. Ok(return value) or
    /// Err("<class>: <desc>"). Events that arrive meanwhile are buffered.
    /// Times out after 30 s (configurable via `set_timeout`).
    pub async fn execute(&mut self, command: &str, args: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({ "execute": command, "id": id });
        match args {
            Value::Null => {}
            Value::Object(_) => req["arguments"] = args,
            other => {
                return Err(format!(
                    "QMP arguments for {command} must be an object, got {other}"
                ))
            }
        }
        let mut line = req.to_string();
        line.push('\n');
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout_at(deadline, self.writer.write_all(line.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("QMP write of {command} failed: {e}")),
            Err(_) => return Err(format!("QMP write of {command} timed out")),
        }
        loop {
            let msg = self
                .read_message(deadline)
                .await
                .map_err(|e| format!("QMP {command}: {e}"))?;
            if msg.get("event").is_some() {
                self.push_event(msg);
                continue;
            }
            // A reply without an id can only come from a request QEMU
            // could not parse; we have exactly one request outstanding.
            let matches = match msg.get("id") {
                Some(v) => v.as_u64() == Some(id),
                None => true,
            };
            if !matches {
                // A late reply to an earlier request that timed out.
                continue;
            }
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let class = err
                    .get("class")
                    .and_then(Value::as_str)
                    .unwrap_or("GenericError");
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("");
                return Err(format!("{class}: {desc}"));
            }
            if msg.get("QMP").is_some() {
                continue;
            }
            return Err(format!("QMP {command}: unexpected message {msg}"));
        }
    }

    /// Sets how long `execute` waits for a reply.
    pub fn set_timeout(&mut self, d: Duration) {
        self.timeout = d;
    }

    /// Buffered events so far (removes them).
    pub fn take_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }

    /// Waits for an event named `name` (checks the buffer first). Other
    /// events that arrive meanwhile stay buffered.
    pub async fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value, String> {
        if let Some(pos) = self
            .events
            .iter()
            .position(|e| e.get("event").and_then(Value::as_str) == Some(name))
        {
            if let Some(ev) = self.events.remove(pos) {
                return Ok(ev);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self
                .read_message(deadline)
                .await
                .map_err(|e| format!("waiting for QMP event {name}: {e}"))?;
            match msg.get("event").and_then(Value::as_str) {
                Some(n) if n == name => return Ok(msg),
                Some(_) => self.push_event(msg),
                // A stale reply to a request that timed out earlier.
                None => {}
            }
        }
    }

    fn push_event(&mut self, ev: Value) {
        if self.events.len() >= MAX_BUFFERED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    /// Reads the next JSON message, giving up at `deadline`. A read cut
    /// short by the deadline keeps its partial line for the next call.
    async fn read_message(&mut self, deadline: Instant) -> Result<Value, String> {
        loop {
            let res =
                tokio::time::timeout_at(deadline, self.reader.read_until(b'\n', &mut self.partial))
                    .await;
            match res {
                Err(_) => return Err("timed out".to_string()),
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
                Ok(Ok(0)) => return Err("connection closed by QEMU".to_string()),
                Ok(Ok(_)) => {}
            }
            if self.partial.last() != Some(&b'\n') {
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                    return Err("message too long".to_string());
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text)
                .map_err(|e| format!("malformed QMP message ({e}): {text}"));
        }
    }
}

/// One-shot: connect (short timeout, e.g. 5 s), execute, drop.
pub async fn run(path: &Path, command: &str, args: Value) -> Result<Value, String> {
    let mut qmp = Qmp::connect(path, Duration::from_secs(5)).await?;
    qmp.execute(command, args).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Stdio;

    fn scratch_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rova-qmp-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn spawn_qemu(sock: &Path) -> tokio::process::Child {
        tokio::process::Command::new("qemu-system-x86_64")
            .args(["-M", "none", "-nodefaults", "-display", "none", "-qmp"])
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("qemu-system-x86_64 is required for this test but could not be started: {e}")
            })
    }

    #[tokio::test]
    async fn qmp_against_real_qemu() {
        let dir = scratch_dir("real");
        let sock = dir.join("q.sock");
        // kill_on_drop: a failed assertion unwinds, drops the child, kills it.
        let mut child = spawn_qemu(&sock);

        let mut q = Qmp::connect(&sock, Duration::from_secs(10)).await.unwrap();

        let st = q.execute("query-status", Value::Null).await.unwrap();
        assert_eq!(st["status"], "running", "{st}");
        assert_eq!(st["running"], true);

        let v = q.execute("query-version", Value::Null).await.unwrap();
        assert!(v["qemu"]["major"].as_u64().unwrap() >= 2, "{v}");

        let err = q.execute("no-such-command", Value::Null).await.unwrap_err();
        assert!(err.contains("CommandNotFound"), "{err}");

        // Non-object arguments are refused before anything is sent.
        let err = q.execute("query-status", json!([1])).await.unwrap_err();
        assert!(err.contains("must be an object"), "{err}");

        // Arguments reach QEMU (a bad argument gives an error).
        let err = q
            .execute("query-status", json!({"bogus": 1}))
            .await
            .unwrap_err();
        assert!(err.starts_with("GenericError"), "{err}");

        q.execute("stop", Value::Null).await.unwrap();
        // STOP typically arrives before the reply; it must have been buffered.
        let ev = q.wait_event("STOP", Duration::from_secs(5)).await.unwrap();
        assert_eq!(ev["event"], "STOP");
        let st = q.execute("query-status", Value::Null).await.unwrap();
        assert_eq!(st["status"], "paused", "{st}");

        q.execute("cont", Value::Null).await.unwrap();
        let ev = q
            .wait_event("RESUME", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ev["event"], "RESUME");
        assert!(q.take_events().is_empty());

        // No event arrives: wait_event times out with a clear error.
        let err = q
            .wait_event("STOP", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");

        // A second, one-shot client cannot be served while we are connected,
        // so drop ours first and use `run`.
        drop(q);
        let st = run(&sock, "query-status", Value::Null).await.unwrap();
        assert_eq!(st["status"], "running");

        let mut q = Qmp::connect(&sock, Duration::from_secs(5)).await.unwrap();
        q.execute("quit", Value::Null).await.unwrap();
        let ev = q
            .wait_event("SHUTDOWN", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ev["data"]["reason"], "host-qmp-quit", "{ev}");
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("qemu did not exit after quit")
            .unwrap();
        assert!(status.success(), "{status}");
        // After QEMU is gone, commands fail instead of hanging.
        let err = q.execute("query-status", Value::Null).await.unwrap_err();
        assert!(!err.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn connect_retries_until_socket_appears() {
        let dir = scratch_dir("late");
        let sock = dir.join("q.sock");
        let sock2 = sock.clone();
        // QEMU starts only after the client began retrying.
        let starter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            spawn_qemu(&sock2)
        });
        let mut q = Qmp::connect(&sock, Duration::from_secs(10)).await.unwrap();
        let _child = starter.await.unwrap();
        q.set_timeout(Duration::from_secs(5));
        q.execute("quit", Value::Null).await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn connect_gives_up_after_timeout() {
        let dir = scratch_dir("none");
        let sock = dir.join("absent.sock");
        let t0 = std::time::Instant::now();
        let err = Qmp::connect(&sock, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.contains("absent.sock"), "{err}");
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn silent_server_gives_greeting_timeout() {
        let dir = scratch_dir("silent");
        let sock = dir.join("s.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let _server = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let err = Qmp::connect(&sock, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(err.contains("no QMP greeting"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
