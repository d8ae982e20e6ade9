//! The testnet in Docker: an offline image, a compose file, and the `up`/`down`/`status`/`logs`
//! wrappers around `docker compose` (v2) or `docker-compose` (v1).
//!
//! ## Image
//!
//! [`build_image`] (`cairn-testnet image`) needs no registry: it builds `cairn-node` and `cairn`
//! on the host (or takes them from `--bin-dir`), asks `ldd` which shared libraries they load,
//! and assembles an image `FROM scratch` holding the two binaries at `/usr/local/bin` and
//! exactly those libraries at the paths `ldd` reported (the dynamic loader, libc, libm,
//! libgcc_s, libstdc++). There is no shell, no `/etc/passwd`: the image runs as uid 0 given
//! numerically. The node's `healthcheck` subcommand serves as the container health check.
//!
//! ## Compose file
//!
//! [`write_compose`] (`cairn-testnet generate --docker`) writes `DIR/docker-compose.yml`
//! (file format 2.4: read by `docker-compose` 1.29 and by `docker compose` v2) and `DIR/.env`
//! (`COMPOSE_PROJECT_NAME`, so plain `docker-compose` in DIR addresses the same project):
//!
//! - one service per node (`validator-<i>`, `full-<j>`), container name
//!   `<project>-<service>`;
//! - the node's home `DIR/node-<i>` bind-mounted read-only at `/cairn` (config, keys, genesis)
//!   and a named volume `<project>_<service>-data` at `/cairn/data` (RocksDB);
//! - two bridge networks with fixed addresses: `main` (node `k` at host `.10+k` of the
//!   subnet; it carries the published RPC ports) and `side` (`internal: true`, the next subnet
//!   of the same size). Every node is on both and bootstraps to each peer's address on both,
//!   so a partition can be made by detaching one group from `main` and the other from `side`
//!   (see [`crate::chaos`]): each group still reaches its own members, never the other's.
//!   Docker isolates bridge networks from each other, and `side` has no gateway;
//! - the node's RPC published on `127.0.0.1:<rpc_port + k>` (the manifest's `rpc_url`, as for
//!   a local testnet), p2p and RPC listening on `0.0.0.0` inside the container through
//!   `CAIRN_P2P_LISTEN`, `CAIRN_RPC_LISTEN` and `CAIRN_P2P_BOOTSTRAP` (the home's
//!   `config.toml` stays the local one);
//! - `restart: unless-stopped`, a health check (`cairn-node healthcheck`), bounded json-file
//!   logs.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cairn_rpc::RpcClient;
use serde::{Deserialize, Serialize};

use crate::Manifest;

/// Compose file name in the testnet directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// Node home inside the container.
pub const CONTAINER_HOME: &str = "/cairn";
/// p2p port inside the container.
pub const CONTAINER_P2P_PORT: u16 = 26656;
/// RPC port inside the container.
pub const CONTAINER_RPC_PORT: u16 = 8545;
/// Where the image holds the node binary.
pub const IMAGE_NODE_BIN: &str = "/usr/local/bin/cairn-node";
/// Where the image holds the wallet binary.
pub const IMAGE_WALLET_BIN: &str = "/usr/local/bin/cairn";
/// Default image tag.
pub const DEFAULT_IMAGE: &str = "cairn-node:local";
/// Host number of node 0 in each subnet (node k is `.10 + k`).
pub const HOST_OFFSET: u32 = 10;
/// Default bound on one `docker` command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// An IPv4 subnet, e.g. `172.28.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    /// Network address (host bits zero).
    pub base: Ipv4Addr,
    /// Prefix length, 8..=28.
    pub prefix: u8,
}

impl Subnet {
    /// Number of addresses in the subnet.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The `n`-th address of the subnet.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + n)
    }

    /// The adjacent subnet of the same size.
    pub fn next(&self) -> Option<Subnet> {
        u32::from(self.base)
            .checked_add(self.size())
            .map(|b| Subnet {
                base: Ipv4Addr::from(b),
                prefix: self.prefix,
            })
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let (a0, b0) = (u32::from(self.base) as u64, u32::from(other.base) as u64);
        let (a1, b1) = (a0 + self.size() as u64, b0 + other.size() as u64);
        a0 < b1 && b0 < a1
    }
}

impl FromStr for Subnet {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Subnet> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("subnet `{s}` must look like 172.28.0.0/24"))?;
        let ip: Ipv4Addr = ip.parse().with_context(|| format!("subnet `{s}`"))?;
        let prefix: u8 = prefix.parse().with_context(|| format!("subnet `{s}`"))?;
        if !(8..=28).contains(&prefix) {
            bail!("subnet `{s}`: prefix must be 8..=28");
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(ip) & !mask != 0 {
            bail!("subnet `{s}`: host bits must be zero");
        }
        Ok(Subnet { base: ip, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Subnet> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// What `generate --docker` writes.
#[derive(Clone, Debug, Default)]
pub struct DockerOptions {
    /// Compose project name (lowercase letters, digits, `-`, `_`); default
    /// `cairn-<directory name>`.
    pub project: Option<String>,
    /// Image to run; default [`DEFAULT_IMAGE`].
    pub image: Option<String>,
    /// The `main` network's subnet; `side` is the next one of the same size. Default: the
    /// first pair of `172.28.X.0/24` (X even) overlapping no existing Docker network.
    pub subnet: Option<Subnet>,
}

/// One node's container, as recorded in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DockerNode {
    /// Compose service name (= the node's name).
    pub service: String,
    /// Container name.
    pub container: String,
    /// Address on the `main` network.
    pub main_ip: Ipv4Addr,
    /// Address on the `side` network.
    pub side_ip: Ipv4Addr,
    /// Data volume (full Docker name).
    pub volume: String,
    /// Host port of its RPC (on 127.0.0.1).
    pub rpc_host_port: u16,
    /// The container's `CAIRN_P2P_BOOTSTRAP` peers, fixed when the service is planned: a
    /// later membership change (`add-validator`, `remove-validator`) leaves the definitions
    /// of the running services as they are, so Compose never recreates them for it. Absent
    /// in manifests written before it existed: then derived from the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Vec<String>>,
}

/// A node `remove-validator` took out of a Docker testnet: its container is gone, its home
/// stays on disk, its data volume stays declared in the compose file (so `down --volumes`
/// removes it), and its addresses are never handed out again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemovedNode {
    /// The node as it was in the manifest.
    pub node: crate::NodeEntry,
    /// Its container, as it was.
    pub docker: DockerNode,
}

/// The Docker deployment of a testnet (`testnet.json` → `docker`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DockerManifest {
    /// Compose project name.
    pub project: String,
    /// Image the services run.
    pub image: String,
    /// `main` network subnet.
    pub main_subnet: Subnet,
    /// `side` network subnet.
    pub side_subnet: Subnet,
    /// One entry per manifest node, same order.
    pub nodes: Vec<DockerNode>,
    /// Nodes removed by `remove-validator` (see [`RemovedNode`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedNode>,
}

impl DockerManifest {
    /// Docker name of the `main` network.
    pub fn main_network(&self) -> String {
        format!("{}_main", self.project)
    }

    /// Docker name of the `side` network.
    pub fn side_network(&self) -> String {
        format!("{}_side", self.project)
    }
}

/// `cairn-<dir name>`, sanitized to what Compose accepts.
pub fn default_project(dir: &Path) -> String {
    let base = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches('-');
    let name = if clean.is_empty() {
        "cairn".to_string()
    } else {
        format!("cairn-{clean}")
    };
    name.chars().take(48).collect()
}

fn check_project(p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.len() <= 63
        && p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("project name `{p}` must be 1..=63 of a-z 0-9 - _ starting with a letter or digit");
    }
    Ok(())
}

/// Subnets of the existing Docker networks (empty if Docker is unreachable).
pub fn docker_subnets() -> Vec<Subnet> {
    let ids = std::process::Command::new("docker")
        .args(["network", "ls", "-q"])
        .stderr(Stdio::null())
        .output();
    let Ok(ids) = ids else { return Vec::new() };
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ])
        .args(&ids)
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// First `172.28.X.0/24` pair (X even, then `172.29`…`172.31`) that overlaps no existing Docker
/// network; `172.28.0.0/24` if Docker cannot be asked.
pub fn auto_subnet() -> Subnet {
    let taken = docker_subnets();
    for second in 28u8..=31 {
        for third in (0u8..=254).step_by(2) {
            let main = Subnet {
                base: Ipv4Addr::new(172, second, third, 0),
                prefix: 24,
            };
            let side = main.next().expect("fits");
            if !taken.iter().any(|t| t.overlaps(&main) || t.overlaps(&side)) {
                return main;
            }
        }
    }
    Subnet {
        base: Ipv4Addr::new(172, 28, 0, 0),
        prefix: 24,
    }
}

/// Plans the containers of `manifest` and writes `out/docker-compose.yml` and `out/.env`; creates
/// each home's `data/` (the volume's mount point inside the read-only home).
pub fn write_compose(
    out: &Path,
    manifest: &Manifest,
    opts: &DockerOptions,
    rpc_port: u16,
) -> Result<DockerManifest> {
    let project = opts.project.clone().unwrap_or_else(|| default_project(out));
    check_project(&project)?;
    let image = opts
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let main = opts.subnet.unwrap_or_else(auto_subnet);
    let side = main
        .next()
        .ok_or_else(|| anyhow!("no room after subnet {main}"))?;
    let n = manifest.nodes.len() as u32;
    if HOST_OFFSET + n + 1 >= main.size() {
        bail!(
            "subnet {main} is too small for {n} nodes (node k uses host .{}+k)",
            HOST_OFFSET
        );
    }
    if rpc_port as u32 + n > u16::MAX as u32 {
        bail!("--rpc-port {rpc_port} leaves no room for {n} nodes");
    }
    let nodes: Vec<DockerNode> = manifest
        .nodes
        .iter()
        .enumerate()
        .map(|(k, node)| DockerNode {
            service: node.name.clone(),
            container: format!("{project}-{}", node.name),
            main_ip: main.host(HOST_OFFSET + k as u32),
            side_ip: side.host(HOST_OFFSET + k as u32),
            volume: format!("{project}_{}-data", node.name),
            rpc_host_port: rpc_port + k as u16,
            bootstrap: None,
        })
        .collect();
    let mut dm = DockerManifest {
        project: project.clone(),
        image,
        main_subnet: main,
        side_subnet: side,
        nodes,
        removed: Vec::new(),
    };
    freeze_bootstrap(manifest, &mut dm);
    for node in &manifest.nodes {
        std::fs::create_dir_all(node.home.join("data"))
            .with_context(|| format!("creating {}/data", node.home.display()))?;
    }
    let yaml = compose_yaml(out, manifest, &dm)?;
    std::fs::write(out.join(COMPOSE_FILE), yaml)
        .with_context(|| format!("writing {}", out.join(COMPOSE_FILE).display()))?;
    std::fs::write(
        out.join(".env"),
        format!("COMPOSE_PROJECT_NAME={project}\n"),
    )?;
    Ok(dm)
}

/// The compose file text.
pub fn compose_yaml(out: &Path, manifest: &Manifest, dm: &DockerManifest) -> Result<String> {
    use std::fmt::Write;
    let mut y = String::new();
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    writeln!(
        y,
        "# Generated by `cairn-testnet generate --docker`. `cairn-testnet up|down|status|logs|chaos|check DIR`"
    )?;
    writeln!(
        y,
        "# drive it; plain `docker-compose` (v1) or `docker compose` (v2) in this directory work too."
    )?;
    writeln!(
        y,
        "# Project {}: containers <project>-<service>, volumes <project>_<service>-data.",
        dm.project
    )?;
    writeln!(y, "version: \"2.4\"")?;
    writeln!(y, "services:")?;
    for (k, (node, d)) in manifest.nodes.iter().zip(&dm.nodes).enumerate() {
        let home_rel = node
            .home
            .strip_prefix(out)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| node.home.clone());
        let home_src = if home_rel.is_relative() {
            format!("./{}", home_rel.display())
        } else {
            home_rel.display().to_string()
        };
        let boot = d
            .bootstrap
            .clone()
            .unwrap_or_else(|| bootstrap_of(manifest, dm, k));
        writeln!(y, "  {}:", d.service)?;
        writeln!(y, "    image: {}", q(&dm.image))?;
        writeln!(y, "    container_name: {}", q(&d.container))?;
        writeln!(y, "    hostname: {}", q(&d.service))?;
        writeln!(
            y,
            "    command: [\"run\", \"--home\", \"{CONTAINER_HOME}\"]"
        )?;
        writeln!(y, "    environment:")?;
        writeln!(
            y,
            "      CAIRN_P2P_LISTEN: \"/ip4/0.0.0.0/tcp/{CONTAINER_P2P_PORT}\""
        )?;
        writeln!(
            y,
            "      CAIRN_RPC_LISTEN: \"0.0.0.0:{CONTAINER_RPC_PORT}\""
        )?;
        writeln!(y, "      CAIRN_P2P_BOOTSTRAP: {}", q(&boot.join(",")))?;
        writeln!(y, "    volumes:")?;
        writeln!(
            y,
            "      - {}",
            q(&format!("{home_src}:{CONTAINER_HOME}:ro"))
        )?;
        writeln!(
            y,
            "      - {}",
            q(&format!("{}-data:{CONTAINER_HOME}/data", d.service))
        )?;
        writeln!(y, "    ports:")?;
        writeln!(
            y,
            "      - \"127.0.0.1:{}:{CONTAINER_RPC_PORT}\"",
            d.rpc_host_port
        )?;
        writeln!(y, "    networks:")?;
        writeln!(y, "      main:")?;
        writeln!(y, "        ipv4_address: \"{}\"", d.main_ip)?;
        writeln!(y, "      side:")?;
        writeln!(y, "        ipv4_address: \"{}\"", d.side_ip)?;
        writeln!(y, "    restart: unless-stopped")?;
        writeln!(y, "    stop_grace_period: 10s")?;
        writeln!(y, "    healthcheck:")?;
        writeln!(
            y,
            "      test: [\"CMD\", \"{IMAGE_NODE_BIN}\", \"healthcheck\", \"--rpc\", \"http://127.0.0.1:{CONTAINER_RPC_PORT}\"]"
        )?;
        writeln!(y, "      interval: 5s")?;
        writeln!(y, "      timeout: 4s")?;
        writeln!(y, "      retries: 3")?;
        writeln!(y, "      start_period: 10s")?;
        writeln!(y, "    logging:")?;
        writeln!(y, "      driver: json-file")?;
        writeln!(y, "      options: {{max-size: \"20m\", max-file: \"3\"}}")?;
        writeln!(y, "    labels:")?;
        writeln!(y, "      io.cairn.node: {}", q(&node.name))?;
        writeln!(
            y,
            "      io.cairn.role: {}",
            q(if node.full_node { "full" } else { "validator" })
        )?;
    }
    writeln!(y, "networks:")?;
    writeln!(y, "  main:")?;
    writeln!(y, "    driver: bridge")?;
    writeln!(y, "    ipam:")?;
    writeln!(y, "      config:")?;
    writeln!(y, "        - subnet: \"{}\"", dm.main_subnet)?;
    writeln!(y, "  side:")?;
    writeln!(y, "    driver: bridge")?;
    writeln!(y, "    internal: true")?;
    writeln!(y, "    ipam:")?;
    writeln!(y, "      config:")?;
    writeln!(y, "        - subnet: \"{}\"", dm.side_subnet)?;
    writeln!(y, "volumes:")?;
    for d in dm.nodes.iter().chain(dm.removed.iter().map(|r| &r.docker)) {
        writeln!(y, "  {}-data: {{}}", d.service)?;
    }
    Ok(y)
}

/// The bootstrap peers of node `k` derived from the manifest: each peer on both networks; a
/// node always bootstraps to every validator, and validators also to the full nodes (so a
/// full node that was cut off is found again from either side).
pub fn bootstrap_of(manifest: &Manifest, dm: &DockerManifest, k: usize) -> Vec<String> {
    let node = &manifest.nodes[k];
    let mut boot = Vec::new();
    for (j, (peer, pd)) in manifest.nodes.iter().zip(&dm.nodes).enumerate() {
        if j == k || (node.full_node && peer.full_node) {
            continue;
        }
        for ip in [pd.main_ip, pd.side_ip] {
            boot.push(format!(
                "/ip4/{ip}/tcp/{CONTAINER_P2P_PORT}/p2p/{}",
                peer.peer_id
            ));
        }
    }
    boot
}

/// Records in each service of `dm` that has none the bootstrap peers derived from `manifest`
/// (see [`DockerNode::bootstrap`]).
pub fn freeze_bootstrap(manifest: &Manifest, dm: &mut DockerManifest) {
    for k in 0..dm.nodes.len().min(manifest.nodes.len()) {
        if dm.nodes[k].bootstrap.is_none() {
            dm.nodes[k].bootstrap = Some(bootstrap_of(manifest, dm, k));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands

/// Runs `program args` with stdin closed, capturing output, killed after `timeout`. Returns
/// stdout; a non-zero exit is an error carrying stderr.
pub async fn run_cmd(program: &str, args: &[String], timeout: Duration) -> Result<String> {
    let shown = format!("{program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.with_context(|| format!("running `{shown}`"))?,
        Err(_) => bail!("`{shown}` did not finish within {timeout:?}"),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("`{shown}` failed ({}): {}", out.status, err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `docker ARGS` with [`DOCKER_TIMEOUT`].
pub async fn docker(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd("docker", &args, DOCKER_TIMEOUT).await
}

/// Whether a Docker engine answers (`docker info`); the reason if not.
pub async fn engine_reachable() -> Result<(), String> {
    match run_cmd(
        "docker",
        &[
            "info".into(),
            "--format".into(),
            "{{.ServerVersion}}".into(),
        ],
        Duration::from_secs(20),
    )
    .await
    {
        Ok(v) if !v.trim().is_empty() => Ok(()),
        Ok(_) => Err("`docker info` printed no server version".into()),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The compose command for a testnet directory: `docker compose` (v2) if available, else
/// `docker-compose` (v1); `$CAIRN_COMPOSE` (e.g. `docker-compose`) overrides.
#[derive(Clone, Debug)]
pub struct Compose {
    argv: Vec<String>,
    project: String,
    file: PathBuf,
}

impl Compose {
    /// Detects the compose command for the testnet in `dir`.
    pub async fn detect(dir: &Path, dm: &DockerManifest) -> Result<Compose> {
        let argv: Vec<String> = if let Ok(v) = std::env::var("CAIRN_COMPOSE") {
            v.split_whitespace().map(str::to_string).collect()
        } else if run_cmd(
            "docker",
            &["compose".into(), "version".into()],
            Duration::from_secs(20),
        )
        .await
        .is_ok()
        {
            vec!["docker".into(), "compose".into()]
        } else if run_cmd(
            "docker-compose",
            &["version".into()],
            Duration::from_secs(20),
        )
        .await
        .is_ok()
        {
            vec!["docker-compose".into()]
        } else {
            bail!(
                "neither `docker compose` nor `docker-compose` works; install one (Debian: apt-get install docker-compose)"
            );
        };
        if argv.is_empty() {
            bail!("CAIRN_COMPOSE is empty");
        }
        let file = std::path::absolute(dir.join(COMPOSE_FILE))?;
        if !file.is_file() {
            bail!(
                "{} is missing (generate the testnet with `cairn-testnet generate --docker`)",
                file.display()
            );
        }
        Ok(Compose {
            argv,
            project: dm.project.clone(),
            file,
        })
    }

    fn full_args(&self, args: &[&str]) -> (String, Vec<String>) {
        let mut v: Vec<String> = self.argv[1..].to_vec();
        v.extend([
            "-p".into(),
            self.project.clone(),
            "-f".into(),
            self.file.display().to_string(),
        ]);
        v.extend(args.iter().map(|s| s.to_string()));
        (self.argv[0].clone(), v)
    }

    /// Runs a compose subcommand, capturing output.
    pub async fn run(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let (prog, v) = self.full_args(args);
        run_cmd(&prog, &v, timeout).await
    }

    /// A compose subcommand with inherited stdio (for `logs`).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let (prog, v) = self.full_args(args);
        let mut c = std::process::Command::new(prog);
        c.args(v);
        c
    }
}

/// The manifest's Docker part, or an error saying how to get one.
pub fn docker_manifest(m: &Manifest) -> Result<&DockerManifest> {
    m.docker.as_ref().ok_or_else(|| anyhow!("this testnet was generated without --docker; regenerate it with `cairn-testnet generate --docker`"))
}

/// Checks that a Docker engine answers and holds the testnet's image, and finds the compose
/// command: what every command that starts containers needs first.
///
/// # Errors
/// Each names the fix: the engine is unreachable, the image is missing (and which command
/// builds it), no compose command works, or the compose file is missing.
pub async fn preflight(dir: &Path, dm: &DockerManifest) -> Result<Compose> {
    if let Err(e) = engine_reachable().await {
        bail!("the Docker engine is unreachable ({e}); start it (or set DOCKER_HOST) and retry");
    }
    let image_ok = docker(&["image", "inspect", "--format", "{{.Id}}", &dm.image]).await;
    if image_ok.is_err() {
        bail!(
            "image {} is not present; build it with `cairn-testnet image --tag {}`",
            dm.image,
            dm.image
        );
    }
    Compose::detect(dir, dm).await
}

/// Starts the services (`compose up -d`) and, unless `wait` is zero, waits until every node
/// answers `getStatus` at height ≥ 1.
pub async fn up(dir: &Path, wait: Duration) -> Result<()> {
    let m = Manifest::load(dir)?;
    let dm = docker_manifest(&m)?;
    let compose = preflight(dir, dm).await?;
    compose
        .run(&["up", "-d", "--remove-orphans"], Duration::from_secs(300))
        .await?;
    if wait.is_zero() {
        return Ok(());
    }
    wait_ready(&m, wait).await
}

/// Waits until every node of `m` answers `getStatus` with height ≥ 1.
pub async fn wait_ready(m: &Manifest, wait: Duration) -> Result<()> {
    let start = Instant::now();
    let clients: Vec<RpcClient> = m
        .nodes
        .iter()
        .map(|n| RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(3)))
        .collect::<Result<_, _>>()?;
    loop {
        let mut lagging = Vec::new();
        for (n, c) in m.nodes.iter().zip(&clients) {
            match c.status().await {
                Ok(s) if s.latest_height >= 1 => {}
                Ok(s) => lagging.push(format!("{} at height {}", n.name, s.latest_height)),
                Err(e) => lagging.push(format!("{}: {e}", n.name)),
            }
        }
        if lagging.is_empty() {
            return Ok(());
        }
        if start.elapsed() > wait {
            bail!("not ready after {wait:?}: {}", lagging.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops and removes the containers and networks (`compose down`); with `volumes`, the data
/// volumes too.
pub async fn down(dir: &Path, volumes: bool) -> Result<()> {
    let m = Manifest::load(dir)?;
    let dm = docker_manifest(&m)?;
    let compose = Compose::detect(dir, dm).await?;
    let mut args = vec!["down", "--remove-orphans", "-t", "5"];
    if volumes {
        args.push("-v");
    }
    compose.run(&args, Duration::from_secs(300)).await?;
    Ok(())
}

/// One row of `status`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// Node name.
    pub name: String,
    /// `validator` or `full`.
    pub role: &'static str,
    /// Container state (`running`, `paused`, `exited`, `missing`, or `-` for a local testnet).
    pub container: String,
    /// Docker health (`healthy`, `unhealthy`, `starting`, or `-`).
    pub health: String,
    /// RPC URL.
    pub rpc_url: String,
    /// Latest finalized height, if the RPC answered.
    pub height: Option<u64>,
    /// Latest finalized block hash.
    pub finalized_hash: Option<String>,
    /// Connected peers.
    pub peers: Option<u32>,
    /// Catching up.
    pub syncing: Option<bool>,
    /// RPC error, if any.
    pub error: Option<String>,
}

/// Container state and health of `name` (`missing` if there is no such container).
pub async fn container_state(name: &str) -> (String, String) {
    match docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    ])
    .await
    {
        Ok(s) => {
            let (st, h) = s.trim().split_once('|').unwrap_or((s.trim(), ""));
            (
                st.to_string(),
                if h.is_empty() {
                    "-".into()
                } else {
                    h.to_string()
                },
            )
        }
        Err(_) => ("missing".into(), "-".into()),
    }
}

/// Per node: container state and health (Docker testnets), height, finalized hash, peers.
pub async fn status(dir: &Path) -> Result<Vec<NodeRow>> {
    let m = Manifest::load(dir)?;
    let mut rows = Vec::new();
    for (k, n) in m.nodes.iter().enumerate() {
        let (container, health) = match &m.docker {
            Some(dm) => container_state(&dm.nodes[k].container).await,
            None => ("-".into(), "-".into()),
        };
        let c = RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(3))?;
        let mut row = NodeRow {
            name: n.name.clone(),
            role: if n.full_node { "full" } else { "validator" },
            container,
            health,
            rpc_url: n.rpc_url.clone(),
            height: None,
            finalized_hash: None,
            peers: None,
            syncing: None,
            error: None,
        };
        match c.status().await {
            Ok(s) => {
                row.height = Some(s.latest_height);
                row.finalized_hash = Some(s.latest_hash.to_hex());
                row.peers = Some(s.peer_count);
                row.syncing = Some(s.syncing);
            }
            Err(e) => row.error = Some(e.to_string()),
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The `status` table as text.
pub fn format_status(rows: &[NodeRow]) -> String {
    let mut s = format!(
        "{:<12} {:<9} {:<9} {:<9} {:<24} {:>7} {:<18} {:>5} {}\n",
        "NODE",
        "ROLE",
        "CONTAINER",
        "HEALTH",
        "RPC",
        "HEIGHT",
        "FINALIZED HASH",
        "PEERS",
        "SYNCING"
    );
    for r in rows {
        let dash = || "-".to_string();
        s.push_str(&format!(
            "{:<12} {:<9} {:<9} {:<9} {:<24} {:>7} {:<18} {:>5} {}{}\n",
            r.name,
            r.role,
            r.container,
            r.health,
            r.rpc_url,
            r.height.map(|h| h.to_string()).unwrap_or_else(dash),
            r.finalized_hash
                .as_deref()
                .map(|h| format!("{}…", &h[..16]))
                .unwrap_or_else(dash),
            r.peers.map(|p| p.to_string()).unwrap_or_else(dash),
            r.syncing
                .map(|p| if p { "yes" } else { "no" }.to_string())
                .unwrap_or_else(dash),
            r.error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default(),
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Membership: a service added to or taken out of a running Docker testnet

/// Host number (in both subnets) of the next node: one above the highest any node of the
/// testnet, present or removed, has used, so no address is ever handed out twice.
pub fn next_host(dm: &DockerManifest) -> Result<u32> {
    let base = u32::from(dm.main_subnet.base);
    let used = dm
        .nodes
        .iter()
        .chain(dm.removed.iter().map(|r| &r.docker))
        .map(|d| u32::from(d.main_ip).saturating_sub(base))
        .max();
    let host = used.map_or(HOST_OFFSET, |h| h + 1).max(HOST_OFFSET);
    // The last address of the subnet is its broadcast address.
    if host + 1 >= dm.main_subnet.size() {
        bail!(
            "no address left in subnet {} for another node (the last one used is .{})",
            dm.main_subnet,
            host - 1
        );
    }
    Ok(host)
}

/// Plans the container of node `k` of `manifest` (a node just added to it, e.g. by
/// [`crate::govern::plan_node`]) and appends it to the manifest's Docker part: the next
/// addresses ([`next_host`]), its RPC published on the port of its `rpc_url`, bootstrapping
/// to every other node on both networks. Fixes the bootstrap peers of the services planned
/// before (see [`DockerNode::bootstrap`]) so that their definitions do not change.
///
/// # Errors
/// Not a Docker testnet, `k` is not the next node, no address left, or a name clash with a
/// removed node (whose data volume is still there).
pub fn plan_service(manifest: &mut Manifest, k: usize) -> Result<DockerNode> {
    let mut dm = docker_manifest(manifest)?.clone();
    if k != dm.nodes.len() || k >= manifest.nodes.len() {
        bail!(
            "node {k} is not the next node of the Docker testnet ({} services)",
            dm.nodes.len()
        );
    }
    let node = manifest.nodes[k].clone();
    if dm.removed.iter().any(|r| r.docker.service == node.name) {
        bail!(
            "{} was removed from this testnet before and its data volume is kept; choose another name",
            node.name
        );
    }
    // The services planned so far keep their peers.
    let mut before = manifest.clone();
    before.nodes.truncate(k);
    freeze_bootstrap(&before, &mut dm);
    let rpc_host_port = node
        .rpc_url
        .rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok())
        .with_context(|| format!("node {}: no port in RPC URL {}", node.name, node.rpc_url))?;
    let host = next_host(&dm)?;
    let mut boot = Vec::new();
    for (peer, pd) in manifest.nodes.iter().zip(&dm.nodes) {
        for ip in [pd.main_ip, pd.side_ip] {
            boot.push(format!(
                "/ip4/{ip}/tcp/{CONTAINER_P2P_PORT}/p2p/{}",
                peer.peer_id
            ));
        }
    }
    let d = DockerNode {
        service: node.name.clone(),
        container: format!("{}-{}", dm.project, node.name),
        main_ip: dm.main_subnet.host(host),
        side_ip: dm.side_subnet.host(host),
        volume: format!("{}_{}-data", dm.project, node.name),
        rpc_host_port,
        bootstrap: Some(boot),
    };
    std::fs::create_dir_all(node.home.join("data"))
        .with_context(|| format!("creating {}/data", node.home.display()))?;
    dm.nodes.push(d.clone());
    manifest.docker = Some(dm);
    Ok(d)
}

/// Takes node `k` out of the manifest and its service out of the Docker part, recording
/// both in [`DockerManifest::removed`]. The container is the caller's to stop and remove;
/// the home and the data volume stay.
///
/// # Errors
/// Not a Docker testnet, or no node `k`.
pub fn unplan_service(manifest: &mut Manifest, k: usize) -> Result<RemovedNode> {
    let mut dm = docker_manifest(manifest)?.clone();
    if k >= manifest.nodes.len() || k >= dm.nodes.len() {
        bail!("no node {k} in the Docker testnet");
    }
    // The remaining services keep their peers (the removed one's address stays in their
    // lists, unanswered: it is never handed out again).
    freeze_bootstrap(manifest, &mut dm);
    let removed = RemovedNode {
        node: manifest.nodes.remove(k),
        docker: dm.nodes.remove(k),
    };
    dm.removed.push(removed.clone());
    manifest.docker = Some(dm);
    Ok(removed)
}

/// Rewrites `dir/docker-compose.yml` from `manifest` (its Docker part).
pub fn rewrite_compose(dir: &Path, manifest: &Manifest) -> Result<()> {
    let dm = docker_manifest(manifest)?;
    let out = std::path::absolute(dir)?;
    let yaml = compose_yaml(&out, manifest, dm)?;
    let path = out.join(COMPOSE_FILE);
    let tmp = out.join(format!(".{COMPOSE_FILE}.tmp"));
    std::fs::write(&tmp, yaml).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether `port` on 127.0.0.1 can be bound now (nothing listens there, e.g. a published
/// port of another container).
pub fn host_port_free(port: u16) -> bool {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Image

/// What `cairn-testnet image` builds.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Cargo profile: `release` (default for users) or `dev` (what the tests use).
    pub profile: String,
    /// Image tag.
    pub tag: String,
    /// Run `cargo build` first (else use the binaries already in the profile's directory).
    pub build: bool,
    /// Take the binaries from this directory instead of the cargo target directory.
    pub bin_dir: Option<PathBuf>,
    /// Strip debug info from the copies in the image (needs `strip`; the host files are not
    /// touched).
    pub strip: bool,
}

/// What went into the image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    /// Image tag.
    pub tag: String,
    /// Host binaries copied.
    pub binaries: Vec<PathBuf>,
    /// Shared libraries copied (paths inside the image = paths on the host).
    pub libraries: Vec<PathBuf>,
    /// Image size, bytes.
    pub size_bytes: u64,
}

/// The binaries in the image.
pub const IMAGE_BINARIES: [&str; 2] = ["cairn-node", "cairn"];

/// Shared libraries `binary` loads, as `ldd` resolves them (including the dynamic loader).
pub fn ldd(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (install libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ldd(&text).with_context(|| format!("ldd {}", binary.display()))
}

/// Parses `ldd` output: `name => /path (0x…)` and `/path (0x…)` lines; refuses `not found`.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            bail!("missing shared library: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

fn cargo_target_dir() -> Result<PathBuf> {
    let out = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::null())
        .output()
        .context("running `cargo metadata` (run `cairn-testnet image` inside the Cairn workspace, or pass --bin-dir)")?;
    if !out.status.success() {
        bail!("`cargo metadata` failed; run inside the Cairn workspace or pass --bin-dir");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let dir = v["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("cargo metadata has no target_directory"))?;
    Ok(PathBuf::from(dir))
}

fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        p => p,
    }
}

/// The generated Dockerfile of the offline image.
pub fn scratch_dockerfile(lib_dirs: &BTreeSet<PathBuf>, profile: &str) -> String {
    let ld_path: Vec<String> = lib_dirs.iter().map(|d| d.display().to_string()).collect();
    format!(
        "# Generated by `cairn-testnet image`: host-built binaries and exactly the shared libraries\n\
         # they load (ldd), at the paths the loader looks for them. No shell, no /etc/passwd.\n\
         FROM scratch\n\
         COPY rootfs/ /\n\
         ENV LD_LIBRARY_PATH={ld} CAIRN_HOME={home} CAIRN_P2P_LISTEN=/ip4/0.0.0.0/tcp/{p2p} CAIRN_RPC_LISTEN=0.0.0.0:{rpc}\n\
         USER 0:0\n\
         WORKDIR {home}\n\
         EXPOSE {p2p} {rpc}\n\
         LABEL org.opencontainers.image.title=\"cairn-node\" io.cairn.build=\"offline\" io.cairn.profile=\"{profile}\"\n\
         HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 CMD [\"{bin}\", \"healthcheck\"]\n\
         ENTRYPOINT [\"{bin}\"]\n\
         CMD [\"run\", \"--home\", \"{home}\"]\n",
        ld = ld_path.join(":"),
        home = CONTAINER_HOME,
        p2p = CONTAINER_P2P_PORT,
        rpc = CONTAINER_RPC_PORT,
        bin = IMAGE_NODE_BIN,
    )
}

fn copy_file(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::copy(src, dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Builds the offline image (see the module docs). Blocking.
pub fn build_image(opts: &ImageOptions) -> Result<ImageInfo> {
    if opts.build {
        let mut c = std::process::Command::new("cargo");
        c.arg("build");
        match opts.profile.as_str() {
            "dev" => {}
            "release" => {
                c.arg("--release");
            }
            p => {
                c.args(["--profile", p]);
            }
        }
        for b in IMAGE_BINARIES {
            c.args(["--bin", b]);
        }
        eprintln!(
            "building {} ({} profile): {:?}",
            IMAGE_BINARIES.join(", "),
            opts.profile,
            c
        );
        let st = c.status().context("running cargo")?;
        if !st.success() {
            bail!("cargo build failed ({st})");
        }
    }
    let bin_dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => match cargo_target_dir() {
            Ok(t) => t.join(profile_dir(&opts.profile)),
            Err(e) => {
                // Outside the workspace: the binaries installed beside this one.
                let exe_dir = std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf));
                match exe_dir.filter(|d| d.join("cairn-node").is_file()) {
                    Some(d) => {
                        eprintln!(
                            "{e:#}; using the binaries beside this one in {}",
                            d.display()
                        );
                        d
                    }
                    None => return Err(e),
                }
            }
        },
    };
    let ctx = tempfile::Builder::new()
        .prefix("cairn-image-")
        .tempdir()
        .context("creating the build context")?;
    let rootfs = ctx.path().join("rootfs");
    let mut binaries = Vec::new();
    let mut libs: BTreeSet<PathBuf> = BTreeSet::new();
    for b in IMAGE_BINARIES {
        let src = bin_dir.join(b);
        if !src.is_file() {
            bail!(
                "{} is missing; build it (`cargo build {}--bin {b}`) or pass --bin-dir",
                src.display(),
                if opts.profile == "release" {
                    "--release "
                } else {
                    ""
                }
            );
        }
        libs.extend(ldd(&src)?);
        let dst = rootfs.join("usr/local/bin").join(b);
        copy_file(&src, &dst, 0o755)?;
        if opts.strip {
            let st = std::process::Command::new("strip")
                .arg("--strip-debug")
                .arg(&dst)
                .status();
            if !matches!(st, Ok(s) if s.success()) {
                eprintln!(
                    "warning: could not strip {} (continuing with debug info)",
                    dst.display()
                );
            }
        }
        binaries.push(src);
    }
    let mut lib_dirs = BTreeSet::new();
    for lib in &libs {
        // fs::copy follows symlinks: the image holds a regular file at the path the loader asks for.
        copy_file(
            lib,
            &rootfs.join(lib.strip_prefix("/").unwrap_or(lib)),
            0o755,
        )?;
        if let Some(d) = lib.parent() {
            lib_dirs.insert(d.to_path_buf());
        }
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        scratch_dockerfile(&lib_dirs, &opts.profile),
    )?;
    // `docker build` of a FROM-scratch context prints nothing useful until it ends: a spinner
    // (terminal) or a start and an end line (logs) shows it is alive.
    let building = crate::progress::Progress::new(
        true,
        &format!(
            "docker build {} (FROM scratch: {} binaries, {} libraries)",
            opts.tag,
            binaries.len(),
            libs.len()
        ),
        None,
    );
    let out = std::process::Command::new("docker")
        .arg("build")
        .args(["--tag", &opts.tag, "--label", "io.cairn.tool=cairn-testnet"])
        .arg(ctx.path())
        .env("DOCKER_CLI_HINTS", "false")
        .output()
        .context("running `docker build`")?;
    building.finish(if out.status.success() {
        "built"
    } else {
        "failed"
    });
    if !out.status.success() {
        bail!(
            "docker build failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let size = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &opts.tag])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0);
    Ok(ImageInfo {
        tag: opts.tag.clone(),
        binaries,
        libraries: libs.into_iter().collect(),
        size_bytes: size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_step_and_overlap() {
        let s: Subnet = "172.28.0.0/24".parse().unwrap();
        assert_eq!(s.host(10), Ipv4Addr::new(172, 28, 0, 10));
        assert_eq!(s.next().unwrap().to_string(), "172.28.1.0/24");
        assert!(s.overlaps(&"172.28.0.128/25".parse().unwrap()));
        assert!(s.overlaps(&"172.16.0.0/12".parse().unwrap()));
        assert!(!s.overlaps(&"172.28.1.0/24".parse().unwrap()));
        assert!("172.28.0.1/24".parse::<Subnet>().is_err());
        assert!("172.28.0.0/30".parse::<Subnet>().is_err());
    }

    #[test]
    fn ldd_output_is_parsed() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f8e)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8e)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f8e)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libstdc++.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn project_names() {
        assert_eq!(default_project(Path::new("/tmp/My Net")), "cairn-my-net");
        assert!(check_project("cairn-ci-12_a").is_ok());
        assert!(check_project("Cairn").is_err());
    }
}
