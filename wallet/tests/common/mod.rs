//! A real single-validator chain for the wallet's tests: a `cairn-node dev` process (built
//! beside the test binaries: `cargo build -p cairn-node --bins`) and the `cairn` binary run
//! against it.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

pub fn node_binary() -> PathBuf {
    let bin = Path::new(CAIRN).with_file_name("cairn-node");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p cairn-node --bins` first",
        bin.display()
    );
    bin
}

pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `cairn-node dev` process, killed on drop.
pub struct DevNode {
    child: Child,
    /// The node's RPC URL.
    pub rpc: String,
    /// Its home (the chain in `chain/`, its log in `node.log`).
    pub home: tempfile::TempDir,
}

impl DevNode {
    pub fn start() -> DevNode {
        let home = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = std::fs::File::create(home.path().join("node.log")).unwrap();
        let child = Command::new(node_binary())
            .arg("dev")
            .arg("--home")
            .arg(home.path().join("chain"))
            .arg("--rpc.listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("CAIRN_HOME")
            .env_remove("CAIRN_RPC_LISTEN")
            .env_remove("CAIRN_P2P_LISTEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn-node dev");
        let node = DevNode {
            child,
            rpc: format!("http://127.0.0.1:{port}"),
            home,
        };
        // Up when the RPC answers and the chain has a block.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = node.cairn(&node.dev_key(), &["--json", "status"], &[]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cairn-node dev did not answer in 60 s; log:\n{}",
                std::fs::read_to_string(node.home.path().join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    pub fn dev_key(&self) -> PathBuf {
        self.home.path().join("chain/dev_account.json")
    }

    pub fn cairn(&self, keyfile: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        cairn_at(&self.rpc, self.home.path(), keyfile, args, env)
    }

    pub fn json(&self, keyfile: &Path, args: &[&str]) -> Value {
        let out = self.cairn(keyfile, &[&["--json"], args].concat(), &[]);
        assert!(out.status.success(), "cairn {args:?}: {}", show(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs cairn with no controlling terminal (it must never prompt here).
pub fn cairn_at(
    rpc: &str,
    home: &Path,
    keyfile: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait")
        .arg(CAIRN)
        .env_remove("CAIRN_RPC")
        .env_remove("CAIRN_KEYFILE")
        .env_remove("CAIRN_PASSWORD")
        .env("HOME", home)
        .env("CAIRN_KEYSTORE_SCRYPT_LOG_N", "10")
        .arg("--rpc")
        .arg(rpc)
        .arg("--keyfile")
        .arg(keyfile)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cairn")
}
