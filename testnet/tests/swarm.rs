//! Docker Swarm: `cairn-testnet generate --swarm` writes a stack (overlay network, one service
//! per node, keys as Docker secrets, peers by service name through `/dns4`), deployed with
//! `docker stack deploy` on a single-node swarm on this machine, using the offline `FROM
//! scratch` image the Docker testnet builds (no image is pulled). The 4 validators must
//! finalize blocks, each answering on its published RPC port.
//!
//! If this machine is not a swarm manager the test makes it one (`docker swarm init
//! --advertise-addr 127.0.0.1`) and leaves the swarm at the end; everything it creates
//! (stack, volumes, image) carries a unique name and is removed, also on failure. Skipped, with
//! the reason printed, when no Docker engine is reachable, unless `CI=true` (then it fails).
//! Needs the `cairn-node` and `cairn` binaries (`cargo build --workspace --bins`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_rpc::RpcClient;
use cairn_testnet::{Manifest, find_node_binary, free_port_ranges};

const TESTNET: &str = env!("CARGO_BIN_EXE_cairn-testnet");
const FINALIZE_WAIT: Duration = Duration::from_secs(240);

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Runs `program args` in `dir` (if given), killed after `timeout`; (success, stdout+stderr).
fn run(program: &str, args: &[&str], dir: Option<&Path>, timeout: Duration) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (o, e) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("starting {program}: {err}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&o).unwrap_or_default(),
        std::fs::read_to_string(&e).unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => panic!(
            "`{program} {}` did not finish within {timeout:?}:\n{text}",
            args.join(" ")
        ),
    }
}

fn must(program: &str, args: &[&str], dir: Option<&Path>, timeout: Duration) -> String {
    let (ok, text) = run(program, args, dir, timeout);
    assert!(ok, "`{program} {}` failed:\n{text}", args.join(" "));
    text
}

fn docker_unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("no docker CLI ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "no Docker engine reachable: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn swarm_state() -> (String, bool) {
    let out = Command::new("docker")
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts = text.split_whitespace();
    let state = parts.next().unwrap_or("").to_string();
    let manager = parts.next() == Some("true");
    (state, manager)
}

/// Removes what the test created, whatever happened.
struct Cleanup {
    stack: String,
    volumes: Vec<String>,
    tag: String,
    leave_swarm: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run(
            "docker",
            &["stack", "rm", &self.stack],
            None,
            Duration::from_secs(60),
        );
        // Tasks stop asynchronously; volumes can go once their containers are gone.
        let label = format!("label=com.docker.stack.namespace={}", self.stack);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (_, out) = run(
                "docker",
                &["ps", "-aq", "--filter", &label],
                None,
                Duration::from_secs(30),
            );
            if out.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for v in &self.volumes {
            let _ = run(
                "docker",
                &["volume", "rm", "-f", v],
                None,
                Duration::from_secs(30),
            );
        }
        let _ = run(
            "docker",
            &["rmi", "-f", &self.tag],
            None,
            Duration::from_secs(60),
        );
        if self.leave_swarm {
            let (ok, out) = run(
                "docker",
                &["swarm", "leave", "--force"],
                None,
                Duration::from_secs(60),
            );
            if !ok {
                say(&format!("cleanup: docker swarm leave failed: {out}"));
            }
            // `swarm init` created it; nothing else uses it once the swarm is gone.
            let _ = run(
                "docker",
                &["network", "rm", "docker_gwbridge"],
                None,
                Duration::from_secs(30),
            );
        }
    }
}

fn bin_dir() -> PathBuf {
    let node_bin = find_node_binary();
    let dir = node_bin.parent().map(Path::to_path_buf).unwrap_or_default();
    assert!(
        dir.join("cairn-node").is_file() && dir.join("cairn").is_file(),
        "cairn-node and cairn must be built beside the test binary (in {}): run `cargo build --workspace --bins`",
        dir.display()
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_stack_of_four_validators_finalizes_on_a_single_node_swarm() {
    if let Some(reason) = docker_unavailable() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the swarm test cannot run: {reason}"
        );
        say(&format!("SKIPPED swarm test: {reason}"));
        return;
    }
    let t0 = Instant::now();
    let bin_dir = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = dir.display().to_string();
    let unique = format!("{}-{:x}", std::process::id(), rand::random::<u32>());
    let stack = format!("cairn-swarm-{unique}");
    let tag = format!("cairn-node:swarm-{unique}");

    let (state, manager) = swarm_state();
    let leave_swarm = state != "active";
    let mut cleanup = Cleanup {
        stack: stack.clone(),
        volumes: Vec::new(),
        tag: tag.clone(),
        leave_swarm,
    };
    if leave_swarm {
        must(
            "docker",
            &["swarm", "init", "--advertise-addr", "127.0.0.1"],
            None,
            Duration::from_secs(60),
        );
        say("created a single-node swarm (advertise 127.0.0.1); it is left at the end");
    } else {
        assert!(manager, "this machine is in a swarm but not a manager");
    }

    let built = must(
        TESTNET,
        &[
            "image",
            "--profile",
            "dev",
            "--no-build",
            "--bin-dir",
            &bin_dir.display().to_string(),
            "--tag",
            &tag,
            "--strip",
        ],
        None,
        Duration::from_secs(300),
    );
    say(&format!(
        "[{:>5.1}s] {}",
        t0.elapsed().as_secs_f64(),
        built.lines().next().unwrap_or("")
    ));

    let (p2p_port, rpc_port) = free_port_ranges(4);
    must(
        TESTNET,
        &[
            "generate",
            "--validators",
            "4",
            "--accounts",
            "2",
            "--out",
            &d,
            "--swarm",
            "--image",
            &tag,
            "--rpc-port",
            &rpc_port.to_string(),
            "--p2p-port",
            &p2p_port.to_string(),
            "--chain-id",
            "cairn-swarm-ci",
        ],
        None,
        Duration::from_secs(60),
    );
    let manifest = Manifest::load(&dir).unwrap();
    cleanup.volumes = manifest
        .nodes
        .iter()
        .map(|n| format!("{stack}_{}-data", n.name))
        .collect();
    let stack_text = std::fs::read_to_string(dir.join("swarm-stack.yml")).unwrap();
    assert!(stack_text.contains("/run/secrets/") || stack_text.contains("secrets:"));

    let out = must(
        "docker",
        &["stack", "deploy", "-c", "swarm-stack.yml", &stack],
        Some(&dir),
        Duration::from_secs(120),
    );
    say(&format!(
        "[{:>5.1}s] deployed stack {stack}:\n{out}",
        t0.elapsed().as_secs_f64()
    ));

    // Every validator finalizes, reached on its published RPC port.
    let clients: Vec<RpcClient> = (0..4)
        .map(|k| RpcClient::new(&format!("http://127.0.0.1:{}", rpc_port + k)).unwrap())
        .collect();
    let start = Instant::now();
    let mut heights = vec![0u64; 4];
    while heights.iter().any(|h| *h < 3) {
        if start.elapsed() > FINALIZE_WAIT {
            let (_, ps) = run(
                "docker",
                &["stack", "ps", "--no-trunc", &stack],
                None,
                Duration::from_secs(30),
            );
            let mut logs = String::new();
            for n in &manifest.nodes {
                let (_, l) = run(
                    "docker",
                    &[
                        "service",
                        "logs",
                        "--tail",
                        "30",
                        &format!("{stack}_{}", n.name),
                    ],
                    None,
                    Duration::from_secs(30),
                );
                logs.push_str(&l);
            }
            panic!(
                "validators did not finalize height 3 within {FINALIZE_WAIT:?}: heights {heights:?}\n{ps}\n{logs}"
            );
        }
        for (k, c) in clients.iter().enumerate() {
            if let Ok(s) = c.status().await {
                heights[k] = s.latest_height;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say(&format!(
        "[{:>5.1}s] heights {heights:?}",
        t0.elapsed().as_secs_f64()
    ));
    // They agree: the same block at height 3 everywhere.
    let mut hashes = Vec::new();
    for c in &clients {
        hashes.push(c.block_hashes_by_height(3).await.unwrap().unwrap().hash);
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // Each found its peers by service name: every validator has the other three connected.
    for (k, c) in clients.iter().enumerate() {
        let peers = c.peers().await.unwrap();
        assert!(peers.len() >= 3, "validator-{k} has {} peers", peers.len());
    }
    drop(cleanup);
}
