//! Docker testnets. The tests run one at a time (they share the engine and the machine).
//!
//! Membership by governance: 4 validators in Docker; `cairn-testnet add-validator` adds a 5th
//! (its own container, started alone) and `remove-validator` takes out one of the original 4
//! (its container stopped and removed); the running set follows, every node serves it, and
//! blocks keep being finalized, with the new validator's signature among the signers.
//!
//! Under faults: builds the offline image (`FROM scratch`, dev-profile binaries),
//! brings up 4 validators and 1 full node with `cairn-testnet up`, runs `cairn-testnet chaos`
//! with a bounded load of wallet-signed transfers while one validator is killed (SIGKILL, then
//! restarted), another paused, and the network partitioned into {validator-0, validator-1,
//! full-0} | {validator-2, validator-3} for 10 seconds, and requires the invariant checker to
//! pass with every acknowledged transfer finalized exactly once.
//!
//! Skipped, with the reason printed, when no Docker engine or compose is reachable. Needs the
//! `cairn-node` and `cairn` binaries (`cargo build --workspace --bins`; the test suite script
//! builds them first). Everything it creates (containers, networks, volumes, image) carries a
//! unique name and is removed at the end, also on failure. Bounded: every command has a
//! timeout and the whole test stays within ~10 minutes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cairn_rpc::{RpcClient, ValidatorsAt};
use cairn_testnet::{Manifest, find_node_binary, free_port_ranges};

const TESTNET: &str = env!("CARGO_BIN_EXE_cairn-testnet");

/// Prints to the real stderr (not captured by the test harness), so a skip is always visible.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args`, output to files (no pipe to fill), killed after `timeout`.
fn run(program: &str, args: &[&str], timeout: Duration, logs: &Path) -> Out {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out_p, err_p) = (logs.join(format!("{n}.out")), logs.join(format!("{n}.err")));
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
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
    let stdout = std::fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_p).unwrap_or_default();
    if status.is_none() {
        panic!(
            "`{program} {}` did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" ")
        );
    }
    Out {
        ok: status.is_some_and(|s| s.success()),
        stdout,
        stderr,
    }
}

fn testnet(args: &[&str], timeout: Duration, logs: &Path) -> Out {
    let o = run(TESTNET, args, timeout, logs);
    assert!(
        o.ok,
        "`cairn-testnet {}` failed\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        o.stdout,
        o.stderr
    );
    o
}

fn quiet(program: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => return Some(format!("no docker CLI ({e})")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "no Docker engine reachable: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    if quiet("docker", &["compose", "version"]).is_none()
        && quiet("docker-compose", &["version"]).is_none()
    {
        return Some("neither `docker compose` nor `docker-compose` is installed".into());
    }
    None
}

/// The Docker tests share the engine and a small machine: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory holding the dev-profile `cairn-node` and `cairn` built beside the tests.
fn bin_dir() -> PathBuf {
    let node_bin = find_node_binary();
    let bin_dir = node_bin.parent().map(Path::to_path_buf).unwrap_or_default();
    assert!(
        bin_dir.join("cairn-node").is_file() && bin_dir.join("cairn").is_file(),
        "cairn-node and cairn must be built beside the test binary (in {}): run `cargo build --workspace --bins`",
        bin_dir.display()
    );
    bin_dir
}

/// Builds the offline image `tag` from the dev-profile binaries in `bin_dir`; returns the
/// first line `cairn-testnet image` printed.
fn build_image(bin_dir: &Path, tag: &str, logs: &Path) -> String {
    let o = testnet(
        &[
            "image",
            "--profile",
            "dev",
            "--no-build",
            "--bin-dir",
            &bin_dir.display().to_string(),
            "--tag",
            tag,
            "--strip",
        ],
        Duration::from_secs(300),
        logs,
    );
    o.stdout.lines().next().unwrap_or("").to_string()
}

/// Removes everything the test created, whatever happened.
struct Cleanup {
    dir: PathBuf,
    project: String,
    tag: String,
    logs: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.dir.join("testnet.json").exists() {
            let d = self.dir.display().to_string();
            let o = run(
                TESTNET,
                &["down", &d, "--volumes"],
                Duration::from_secs(180),
                &self.logs,
            );
            if !o.ok {
                say(&format!(
                    "cleanup: `cairn-testnet down` failed: {}",
                    o.stderr.trim()
                ));
            }
        }
        // Belt and braces, by the labels Compose puts on what it creates.
        let label = format!("label=com.docker.compose.project={}", self.project);
        let list = |args: &[&str]| {
            quiet("docker", args)
                .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        for c in list(&["ps", "-aq", "--filter", &label]) {
            let _ = quiet("docker", &["rm", "-f", &c]);
        }
        for n in list(&["network", "ls", "-q", "--filter", &label]) {
            let _ = quiet("docker", &["network", "rm", &n]);
        }
        for v in list(&["volume", "ls", "-q", "--filter", &label]) {
            let _ = quiet("docker", &["volume", "rm", "-f", &v]);
        }
        let _ = quiet("docker", &["rmi", "-f", &self.tag]);
    }
}

#[test]
fn docker_testnet_survives_kill_pause_and_partition_without_losing_acknowledged_transfers() {
    if let Some(reason) = unavailable() {
        say(&format!("SKIPPED docker_testnet test: {reason}"));
        return;
    }
    let _serial = serial();
    let bin_dir = bin_dir();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let dir = tmp.path().join("net");
    let d = dir.display().to_string();
    let unique = format!("{}-{:x}", std::process::id(), rand::random::<u32>());
    let project = format!("cairn-ci-{unique}");
    let tag = format!("cairn-node:ci-{unique}");
    let _cleanup = Cleanup {
        dir: dir.clone(),
        project: project.clone(),
        tag: tag.clone(),
        logs: logs.clone(),
    };

    // 1. The offline image from the dev-profile binaries.
    let built = build_image(&bin_dir, &tag, &logs);
    say(&format!("[{:>5.1}s] {built}", t0.elapsed().as_secs_f64()));
    let user = quiet(
        "docker",
        &[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{json .Config.Entrypoint}}",
            &tag,
        ],
    )
    .unwrap();
    assert!(user.starts_with("0:0 "), "image user/entrypoint: {user}");

    // 2. Four validators and a full node in Docker.
    let (p2p_port, rpc_port) = free_port_ranges(5);
    let (rpc_s, p2p_s) = (rpc_port.to_string(), p2p_port.to_string());
    testnet(
        &[
            "generate",
            "--validators",
            "4",
            "--full-nodes",
            "1",
            "--accounts",
            "16",
            "--out",
            &d,
            "--docker",
            "--project",
            &project,
            "--image",
            &tag,
            "--rpc-port",
            &rpc_s,
            "--p2p-port",
            &p2p_s,
            "--chain-id",
            "cairn-docker-ci",
        ],
        Duration::from_secs(60),
        &logs,
    );
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("version: \"2.4\"")
            && compose.contains("internal: true")
            && compose.contains("healthcheck:")
    );
    let o = testnet(
        &["up", &d, "--wait", "150s"],
        Duration::from_secs(240),
        &logs,
    );
    say(&format!(
        "[{:>5.1}s] up:\n{}",
        t0.elapsed().as_secs_f64(),
        o.stdout
    ));

    // 3. Faults under load, then the checker (run by chaos).
    let chaos_start = Instant::now();
    let o = run(
        TESTNET,
        &[
            "chaos",
            &d,
            "--fault",
            "kill:validator-1@5s+8s",
            "--fault",
            "pause:validator-2@19s+8s",
            "--fault",
            "partition:validator-2,validator-3@33s+10s",
            "--transfers",
            "600",
            "--rate",
            "12",
            "--window",
            "32",
            "--resubmit-after",
            "20s",
            "--drain",
            "120s",
            "--check-wait",
            "150s",
            "--seed",
            "7",
            "--json",
        ],
        Duration::from_secs(420),
        &logs,
    );
    let chaos_secs = chaos_start.elapsed().as_secs_f64();
    say(&format!("chaos stderr:\n{}", o.stderr));
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "chaos printed no JSON report ({e}):\n{}\n{}",
            o.stdout, o.stderr
        )
    });
    let load = &report["load"];
    let check = &report["check"];
    say(&format!(
        "[{:>5.1}s] chaos took {chaos_secs:.1}s: {} faults; load acked {} (final {}), re-submissions {} ({} final only after one), \
         unanswered {}; check: heights 0..={} on {} nodes, {} acked final once, proposers {}, signers {} ({} certificates verified), violations {}",
        t0.elapsed().as_secs_f64(),
        report["faults"].as_array().map(Vec::len).unwrap_or(0),
        load["acked"],
        load["ackedFinalized"],
        load["resubmissions"],
        load["finalizedAfterResubmission"],
        load["unanswered"],
        check["maxHeight"],
        check["nodes"].as_array().map(Vec::len).unwrap_or(0),
        check["ackedFinalizedOnce"],
        check["proposers"],
        check["signers"],
        check["certificatesChecked"],
        check["violations"],
    ));
    assert!(
        o.ok,
        "chaos failed:\n{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert_eq!(report["ok"], true);
    let faults = report["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 3, "{faults:?}");
    for f in faults {
        assert!(
            f["errors"].as_array().unwrap().is_empty(),
            "fault errors: {f}"
        );
    }
    let acked = load["acked"].as_u64().unwrap();
    assert!(acked >= 500, "only {acked} transfers acknowledged");
    assert_eq!(
        load["ackedUnfinalizedCount"], 0,
        "acknowledged transfers lost: {load}"
    );
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["signersChecked"], true, "{check}");
    let signers = check["signers"].as_object().expect("signers per validator");
    assert_eq!(signers.len(), 4, "{check}");
    assert!(signers.values().all(|n| n.as_u64() > Some(0)), "{check}");
    assert_eq!(check["ackedFinalizedOnce"], check["acked"]);
    assert_eq!(check["acked"].as_u64().unwrap(), acked);

    // 4. The checker on its own, and status.
    let o = testnet(
        &["check", &d, "--wait", "60s", "--json"],
        Duration::from_secs(240),
        &logs,
    );
    let again: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["acked"].as_u64().unwrap(), acked);
    let o = testnet(&["status", &d], Duration::from_secs(60), &logs);
    say(&format!(
        "[{:>5.1}s] status after chaos:\n{}",
        t0.elapsed().as_secs_f64(),
        o.stdout
    ));
    assert_eq!(
        o.stdout.lines().filter(|l| l.contains(" running ")).count(),
        5,
        "{}",
        o.stdout
    );

    // 5. Down removes it all.
    testnet(&["down", &d, "--volumes"], Duration::from_secs(180), &logs);
    let label = format!("label=com.docker.compose.project={project}");
    assert_eq!(
        quiet("docker", &["ps", "-aq", "--filter", &label])
            .unwrap()
            .trim(),
        "",
        "containers left behind"
    );
    assert_eq!(
        quiet("docker", &["volume", "ls", "-q", "--filter", &label])
            .unwrap()
            .trim(),
        "",
        "volumes left behind"
    );
    say(&format!(
        "docker testnet test passed in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
}

/// Bound of every wait for the chain in the membership test.
const CHAIN_WAIT: Duration = Duration::from_secs(90);

/// Polls `getValidators` of every node of `m` until each serves a set of `size` (names
/// returned, in set order), at most [`CHAIN_WAIT`].
async fn every_node_serves(m: &Manifest, size: usize) -> Vec<String> {
    let start = Instant::now();
    let mut names = Vec::new();
    for n in &m.nodes {
        let c = RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(5)).unwrap();
        loop {
            let set = c.validators().await;
            if let Ok(set) = &set
                && set.len() == size
            {
                names = set.iter().map(|v| v.name.clone()).collect();
                break;
            }
            assert!(
                start.elapsed() < CHAIN_WAIT,
                "{} serves {set:?}, not a set of {size}",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    names
}

/// Waits until `c` finalized `blocks` more blocks, at most [`CHAIN_WAIT`]; returns the new
/// height.
async fn finalizes(c: &RpcClient, blocks: u64, what: &str) -> u64 {
    let start = Instant::now();
    let from = c.status().await.map(|s| s.latest_height).unwrap_or(0);
    loop {
        let h = c.status().await.map(|s| s.latest_height).unwrap_or(0);
        if h >= from + blocks {
            return h;
        }
        assert!(
            start.elapsed() < CHAIN_WAIT,
            "{what}: stuck at height {h} (from {from}, waited for {blocks} blocks)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a finalization certificate above `from` carries the signature of validator
/// `name` (its index in the set that finalized the block), at most [`CHAIN_WAIT`]; returns
/// that height.
async fn signs(c: &RpcClient, name: &str, from: u64) -> u64 {
    let start = Instant::now();
    let mut next = from + 1;
    loop {
        let top = c.status().await.map(|s| s.latest_height).unwrap_or(0);
        while next <= top {
            if let (Ok(Some(info)), Ok(Some(set))) = (
                c.finalization(next).await,
                c.validators_at(ValidatorsAt::Height(next)).await,
            ) && let Some(i) = set.iter().position(|v| v.name == name)
                && info.signers.contains(&(i as u16))
            {
                return next;
            }
            next += 1;
        }
        assert!(
            start.elapsed() < CHAIN_WAIT,
            "{name} signed no finalization certificate in heights {}..{next}",
            from + 1
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn docker_testnet_adds_and_removes_validators_by_governance() {
    if let Some(reason) = unavailable() {
        say(&format!("SKIPPED docker membership test: {reason}"));
        return;
    }
    let _serial = serial();
    let bin_dir = bin_dir();
    let t0 = Instant::now();
    let at = || format!("[{:>5.1}s]", t0.elapsed().as_secs_f64());
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let dir = tmp.path().join("net");
    let d = dir.display().to_string();
    let unique = format!("{}-{:x}", std::process::id(), rand::random::<u32>());
    let project = format!("cairn-ci-gov-{unique}");
    let tag = format!("cairn-node:ci-gov-{unique}");
    let _cleanup = Cleanup {
        dir: dir.clone(),
        project: project.clone(),
        tag: tag.clone(),
        logs: logs.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. Image, four validators in Docker (RPC ports: 4 in use, the next one free for the
    //    validator added later).
    let built = build_image(&bin_dir, &tag, &logs);
    say(&format!("{} {built}", at()));
    let (p2p_port, rpc_port) = free_port_ranges(6);
    let (rpc_s, p2p_s) = (rpc_port.to_string(), p2p_port.to_string());
    testnet(
        &[
            "generate",
            "--validators",
            "4",
            "--accounts",
            "4",
            "--out",
            &d,
            "--docker",
            "--project",
            &project,
            "--image",
            &tag,
            "--rpc-port",
            &rpc_s,
            "--p2p-port",
            &p2p_s,
            "--chain-id",
            "cairn-docker-gov",
        ],
        Duration::from_secs(60),
        &logs,
    );
    let o = testnet(
        &["up", &d, "--wait", "150s"],
        Duration::from_secs(240),
        &logs,
    );
    say(&format!("{} up:\n{}", at(), o.stdout));
    let compose_before = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();

    // 2. add-validator: a fifth container, started alone, joins by governance.
    let o = testnet(
        &["add-validator", &d, "--name", "validator-4", "--json"],
        Duration::from_secs(420),
        &logs,
    );
    say(&format!("{} add-validator:\n{}", at(), o.stderr.trim()));
    let added: serde_json::Value = serde_json::from_str(o.stdout.trim())
        .unwrap_or_else(|e| panic!("add-validator printed no JSON ({e}):\n{}", o.stdout));
    assert_eq!(added["added"], "validator-4", "{added}");
    assert_eq!(added["validators"].as_array().unwrap().len(), 5, "{added}");
    assert_eq!(added["docker"]["containerState"], "running", "{added}");
    let new_container = format!("{project}-validator-4");
    assert_eq!(added["docker"]["container"], new_container.as_str());
    let m = Manifest::load(&dir).unwrap();
    assert_eq!(m.nodes.len(), 5);
    let dm = m.docker.as_ref().unwrap();
    assert_eq!(dm.nodes.len(), 5);
    assert_eq!(dm.nodes[4].rpc_host_port, rpc_port + 4);
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(compose.contains("  validator-4:"), "{compose}");
    // The services that were running are defined as before (Compose leaves them alone).
    let service = |text: &str, name: &str| -> String {
        let head = format!("  {name}:");
        let mut lines = text.lines().skip_while(|l| *l != head);
        assert!(lines.next().is_some(), "no service {name}");
        let body: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
        body.join("\n")
    };
    for k in 0..4 {
        let name = format!("validator-{k}");
        assert_eq!(
            service(&compose, &name),
            service(&compose_before, &name),
            "{name}'s service changed"
        );
    }
    rt.block_on(async {
        let names = every_node_serves(&m, 5).await;
        assert!(names.contains(&"validator-4".to_string()), "{names:?}");
        let c = RpcClient::with_timeout(&m.nodes[1].rpc_url, Duration::from_secs(5)).unwrap();
        let from = c.status().await.unwrap().latest_height;
        let h = finalizes(&c, 3, "after adding validator-4").await;
        let signed = signs(&c, "validator-4", from).await;
        say(&format!(
            "{} 5 validators; height {from} -> {h}; validator-4 signed the certificate of height {signed}",
            at()
        ));
    });
    let o = testnet(&["status", &d], Duration::from_secs(60), &logs);
    assert_eq!(
        o.stdout.lines().filter(|l| l.contains(" running ")).count(),
        5,
        "{}",
        o.stdout
    );

    // 3. remove-validator of an original validator (through another node, since --via
    //    defaults to node 0): its container stopped and removed, its home kept.
    let o = testnet(
        &["remove-validator", &d, "validator-0", "--json"],
        Duration::from_secs(420),
        &logs,
    );
    say(&format!("{} remove-validator:\n{}", at(), o.stderr.trim()));
    let removed: serde_json::Value = serde_json::from_str(o.stdout.trim())
        .unwrap_or_else(|e| panic!("remove-validator printed no JSON ({e}):\n{}", o.stdout));
    assert_eq!(removed["removed"], "validator-0", "{removed}");
    let set = removed["validators"].as_array().unwrap();
    assert_eq!(set.len(), 4, "{removed}");
    assert!(set.iter().all(|v| v["name"] != "validator-0"), "{removed}");
    assert_eq!(removed["docker"]["containerState"], "removed", "{removed}");
    let old_container = format!("{project}-validator-0");
    assert!(
        quiet("docker", &["inspect", &old_container]).is_none(),
        "container {old_container} still exists"
    );
    assert!(
        dir.join("node-0").join("genesis.json").is_file(),
        "home removed"
    );
    let m = Manifest::load(&dir).unwrap();
    assert_eq!(m.nodes.len(), 4);
    assert!(m.nodes.iter().all(|n| n.name != "validator-0"));
    let dm = m.docker.as_ref().unwrap();
    assert_eq!(dm.nodes.len(), 4);
    assert_eq!(dm.removed.len(), 1);
    assert_eq!(dm.removed[0].node.name, "validator-0");
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(!compose.contains("\n  validator-0:\n"), "{compose}");
    assert!(compose.contains("validator-0-data: {}"), "{compose}");
    rt.block_on(async {
        let names = every_node_serves(&m, 4).await;
        assert!(!names.contains(&"validator-0".to_string()), "{names:?}");
        for n in &m.nodes {
            let c = RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(5)).unwrap();
            let h = finalizes(&c, 3, &format!("{} after removing validator-0", n.name)).await;
            say(&format!("{} {} at height {h}", at(), n.name));
        }
    });
    let o = testnet(&["status", &d], Duration::from_secs(60), &logs);
    say(&format!("{} status:\n{}", at(), o.stdout));
    assert_eq!(
        o.stdout.lines().filter(|l| l.contains(" running ")).count(),
        4,
        "{}",
        o.stdout
    );

    // 4. Down removes it all, the removed node's data volume too.
    testnet(&["down", &d, "--volumes"], Duration::from_secs(180), &logs);
    let label = format!("label=com.docker.compose.project={project}");
    assert_eq!(
        quiet("docker", &["ps", "-aq", "--filter", &label])
            .unwrap()
            .trim(),
        "",
        "containers left behind"
    );
    assert_eq!(
        quiet("docker", &["volume", "ls", "-q", "--filter", &label])
            .unwrap()
            .trim(),
        "",
        "volumes left behind"
    );
    say(&format!("docker membership test passed in {}", at()));
}
