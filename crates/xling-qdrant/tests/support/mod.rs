//! Real Qdrant servers for the tests: the v1.18.2 binary at `$XLING_QDRANT_BIN` (default
//! `../shared/bin/qdrant` beside the checkout), each peer in its own temp folder on free
//! ports, stopped (killed) on drop. No binary: the tests say loudly that they were skipped.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Qdrant binary, or `None` after printing why the Qdrant tests are skipped.
pub fn qdrant_bin() -> Option<PathBuf> {
    let path = std::env::var_os("XLING_QDRANT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bin/qdrant")
        });
    if path.is_file() {
        return Some(path);
    }
    let banner = "!".repeat(78);
    eprintln!(
        "\n{banner}\nSKIPPED: Qdrant tests: no Qdrant server binary at {} (set XLING_QDRANT_BIN \
         to a qdrant v1.18 binary to run them)\n{banner}\n",
        path.display()
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Qdrant process.
pub struct Peer {
    pub http_port: u16,
    pub grpc_port: u16,
    pub p2p_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Peer {
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Starts a peer; `cluster`: `None` = standalone, `Some(None)` = first peer of a cluster,
    /// `Some(Some(p2p))` = joins the cluster whose first peer listens on `p2p`.
    fn start(bin: &PathBuf, cluster: Option<Option<u16>>) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let (http_port, grpc_port, p2p_port) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("qdrant.log")).unwrap();
        let mut command = Command::new(bin);
        command
            .current_dir(dir.path())
            .arg("--disable-telemetry")
            .env("QDRANT__SERVICE__HTTP_PORT", http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc_port.to_string())
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                dir.path().join("snapshots"),
            )
            .env("QDRANT__LOG_LEVEL", "WARN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(bootstrap) = cluster {
            command
                .env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", p2p_port.to_string())
                .arg("--uri")
                .arg(format!("http://127.0.0.1:{p2p_port}"));
            if let Some(first) = bootstrap {
                command
                    .arg("--bootstrap")
                    .arg(format!("http://127.0.0.1:{first}"));
            }
        }
        let child = command.spawn().expect("cannot start qdrant");
        let peer = Peer {
            http_port,
            grpc_port,
            p2p_port,
            child: Some(child),
            dir,
        };
        peer.wait_ready();
        peer
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_get(self.http_port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("qdrant.log")).unwrap_or_default();
        panic!("qdrant did not become ready in 60 s; its log:\n{log}");
    }

    /// Kills the process (SIGKILL: a crashed node, not a drained one).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.1 GET; the whole response text, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A standalone Qdrant server.
pub fn standalone(bin: &PathBuf) -> Peer {
    Peer::start(bin, None)
}

/// `n` peers of one cluster on this machine (Qdrant's own consensus tests do the same).
pub fn cluster(bin: &PathBuf, n: usize) -> Vec<Peer> {
    let first = Peer::start(bin, Some(None));
    let p2p = first.p2p_port;
    let mut peers = vec![first];
    for _ in 1..n {
        peers.push(Peer::start(bin, Some(Some(p2p))));
        // Joining one at a time keeps the consensus log simple.
        std::thread::sleep(Duration::from_millis(500));
    }
    peers
}
