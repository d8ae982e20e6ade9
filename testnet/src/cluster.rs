//! Testnets beyond one machine: a Docker Swarm stack (`cairn-testnet generate --swarm`) and
//! Kubernetes manifests (`--k8s`), each validator on whatever host the orchestrator picks, peers
//! addressed by DNS name (`/dns4/<name>/tcp/26656/p2p/<id>`, resolved by the node before every
//! dial, `cairn_node::network::dns`). docs/deploy.md shows both on a real cluster.
//!
//! Written from a generated testnet (its homes, keys and genesis):
//!
//! ```text
//! DIR/swarm-stack.yml        `docker stack deploy -c swarm-stack.yml <stack>`
//! DIR/swarm/<node>.toml      each node's config.toml for the stack (a Docker config)
//! DIR/k8s/cairn.yaml         `kubectl apply -f k8s/cairn.yaml`
//! ```
//!
//! Both run the image [`crate::docker`] builds (`cairn-testnet image`), with the node's home at
//! `/cairn`: `config.toml` and `genesis.json` from a Docker config / ConfigMap, the two key
//! files from Docker secrets (`/run/secrets/<node>-node-key`, `…-validator-key`, mode 0400) /
//! a Secret (`/cairn/keys`, mode 0400), the database on a volume at `/cairn/data` (a named
//! volume / a PersistentVolumeClaim per validator). Every node listens on `0.0.0.0:26656`
//! (p2p) and `0.0.0.0:8545` (RPC); validators bootstrap to every other validator, full nodes
//! to every validator.
//!
//! Swarm: one overlay network; one service per node, `endpoint_mode: dnsrr`, so the service
//! name resolves to the task's own address (a restarted task's new address is found again on
//! the next redial) and the RPC port is published in `host` mode on `rpc_port + k`.
//!
//! Kubernetes: per node a StatefulSet of one replica (its volume from a claim template), a
//! ConfigMap with its config, a Secret with its keys, and an RPC Service; one headless Service
//! `cairn-p2p` (publishing not-ready addresses, so peers find each other before they are
//! ready) gives each pod the name `<node>-0.cairn-p2p`; readiness is `GET /health` on the RPC
//! port.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_node::config::NodeConfig;
use serde_json::{Value, json};

use crate::Manifest;
use crate::docker::{CONTAINER_HOME, CONTAINER_P2P_PORT, CONTAINER_RPC_PORT, IMAGE_NODE_BIN};

/// The Swarm stack file in the testnet directory.
pub const SWARM_STACK_FILE: &str = "swarm-stack.yml";
/// The Kubernetes manifests in the testnet directory.
pub const K8S_FILE: &str = "k8s/cairn.yaml";
/// The headless Service that names the pods for p2p.
pub const K8S_P2P_SERVICE: &str = "cairn-p2p";
/// Storage each validator's claim asks for.
pub const K8S_VOLUME_SIZE: &str = "10Gi";

/// What `--swarm` / `--k8s` write.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Image the services run.
    pub image: String,
    /// First host port for the nodes' RPC (Swarm, `host` mode: node k on `rpc_port + k`).
    pub rpc_port: u16,
}

/// Node `k`'s config for a cluster: listen on all interfaces, bootstrap by `host_of(j)`,
/// keys at `key_dir` (`<key_dir><prefix>node-key` style paths from `key_path`).
fn cluster_config(
    manifest: &Manifest,
    k: usize,
    host_of: &dyn Fn(usize) -> String,
    key_paths: (PathBuf, PathBuf),
) -> Result<NodeConfig> {
    let node = &manifest.nodes[k];
    let path = node.home.join("config.toml");
    let mut c = NodeConfig::load(&path).with_context(|| format!("loading {}", path.display()))?;
    c.p2p.listen = format!("/ip4/0.0.0.0/tcp/{CONTAINER_P2P_PORT}");
    c.rpc.listen = format!("0.0.0.0:{CONTAINER_RPC_PORT}")
        .parse()
        .expect("static address");
    c.p2p.bootstrap = manifest
        .nodes
        .iter()
        .enumerate()
        .filter(|(j, peer)| *j != k && !peer.full_node)
        .map(|(j, peer)| {
            format!(
                "/dns4/{}/tcp/{CONTAINER_P2P_PORT}/p2p/{}",
                host_of(j),
                peer.peer_id
            )
        })
        .collect();
    c.genesis_file = "genesis.json".into();
    c.db_dir = "data".into();
    (c.node_key_file, c.validator_key_file) = key_paths;
    c.validate()
        .with_context(|| format!("cluster config of {}", node.name))?;
    Ok(c)
}

fn health_cmd() -> Value {
    json!([
        "CMD",
        IMAGE_NODE_BIN,
        "healthcheck",
        "--rpc",
        format!("http://127.0.0.1:{CONTAINER_RPC_PORT}")
    ])
}

/// The Swarm stack of `manifest` (a compose file, format 3.8), as a value; writes each
/// node's config into `out/swarm/`.
pub fn swarm_stack(out: &Path, manifest: &Manifest, opts: &ClusterOptions) -> Result<Value> {
    if opts.rpc_port as usize + manifest.nodes.len() > u16::MAX as usize {
        bail!("--rpc-port {} leaves no room for the nodes", opts.rpc_port);
    }
    let dir = out.join("swarm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut services = serde_json::Map::new();
    let mut configs = serde_json::Map::new();
    let mut secrets = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    configs.insert("genesis".into(), json!({"file": "./genesis.json"}));
    for (k, node) in manifest.nodes.iter().enumerate() {
        let name = &node.name;
        let (node_key, validator_key) =
            (format!("{name}-node-key"), format!("{name}-validator-key"));
        let config = cluster_config(
            manifest,
            k,
            &|j| manifest.nodes[j].name.clone(),
            (
                PathBuf::from(format!("/run/secrets/{node_key}")),
                PathBuf::from(format!("/run/secrets/{validator_key}")),
            ),
        )?;
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config.to_toml())
            .with_context(|| format!("writing {}", config_path.display()))?;
        let rel_home = node
            .home
            .strip_prefix(out)
            .map(|p| format!("./{}", p.display()))
            .unwrap_or_else(|_| node.home.display().to_string());
        configs.insert(
            format!("{name}-config"),
            json!({"file": format!("./swarm/{name}.toml")}),
        );
        secrets.insert(
            node_key.clone(),
            json!({"file": format!("{rel_home}/node_key.json")}),
        );
        secrets.insert(
            validator_key.clone(),
            json!({"file": format!("{rel_home}/validator_key.json")}),
        );
        volumes.insert(format!("{name}-data"), json!({}));
        services.insert(
            name.clone(),
            json!({
                "image": opts.image,
                "hostname": name,
                "command": ["run", "--home", CONTAINER_HOME],
                "configs": [
                    {"source": format!("{name}-config"), "target": format!("{CONTAINER_HOME}/config.toml"), "mode": 0o400},
                    {"source": "genesis", "target": format!("{CONTAINER_HOME}/genesis.json"), "mode": 0o444},
                ],
                "secrets": [
                    {"source": node_key, "target": node_key, "mode": 0o400},
                    {"source": validator_key, "target": validator_key, "mode": 0o400},
                ],
                "volumes": [format!("{name}-data:{CONTAINER_HOME}/data")],
                "networks": ["cairn"],
                "ports": [{
                    "target": CONTAINER_RPC_PORT,
                    "published": opts.rpc_port as usize + k,
                    "protocol": "tcp",
                    "mode": "host",
                }],
                "healthcheck": {
                    "test": health_cmd(),
                    "interval": "5s",
                    "timeout": "4s",
                    "retries": 3,
                    "start_period": "10s",
                },
                "stop_grace_period": "10s",
                "deploy": {
                    "replicas": 1,
                    "endpoint_mode": "dnsrr",
                    "restart_policy": {"condition": "any", "delay": "2s"},
                    "labels": {
                        "io.cairn.node": name,
                        "io.cairn.role": if node.full_node { "full" } else { "validator" },
                    },
                },
                "logging": {"driver": "json-file", "options": {"max-size": "20m", "max-file": "3"}},
            }),
        );
    }
    Ok(json!({
        "version": "3.8",
        "services": services,
        "networks": {"cairn": {"driver": "overlay", "attachable": true}},
        "volumes": volumes,
        "configs": configs,
        "secrets": secrets,
    }))
}

/// The Kubernetes manifests of `manifest`, one value per document.
pub fn k8s_manifests(manifest: &Manifest, opts: &ClusterOptions) -> Result<Vec<Value>> {
    let genesis_path = manifest
        .nodes
        .first()
        .map(|n| n.home.join("genesis.json"))
        .context("a testnet has nodes")?;
    let genesis = std::fs::read_to_string(&genesis_path)
        .with_context(|| format!("reading {}", genesis_path.display()))?;
    let labels = |name: &str| json!({"app.kubernetes.io/name": "cairn", "cairn/node": name});
    let mut docs = vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cairn-genesis", "labels": {"app.kubernetes.io/name": "cairn"}},
            "data": {"genesis.json": genesis},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": K8S_P2P_SERVICE, "labels": {"app.kubernetes.io/name": "cairn"}},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": {"app.kubernetes.io/name": "cairn"},
                "ports": [{"name": "p2p", "port": CONTAINER_P2P_PORT, "targetPort": CONTAINER_P2P_PORT}],
            },
        }),
    ];
    for (k, node) in manifest.nodes.iter().enumerate() {
        let name = &node.name;
        let read = |f: &str| {
            let p = node.home.join(f);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let config = cluster_config(
            manifest,
            k,
            &|j| format!("{}-0.{K8S_P2P_SERVICE}", manifest.nodes[j].name),
            (
                PathBuf::from(format!("{CONTAINER_HOME}/keys/node_key.json")),
                PathBuf::from(format!("{CONTAINER_HOME}/keys/validator_key.json")),
            ),
        )?;
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("{name}-keys"), "labels": labels(name)},
            "type": "Opaque",
            "stringData": {
                "node_key.json": read("node_key.json")?,
                "validator_key.json": read("validator_key.json")?,
            },
        }));
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-config"), "labels": labels(name)},
            "data": {"config.toml": config.to_toml()},
        }));
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": format!("{name}-rpc"), "labels": labels(name)},
            "spec": {
                "selector": {"cairn/node": name},
                "ports": [{"name": "rpc", "port": CONTAINER_RPC_PORT, "targetPort": CONTAINER_RPC_PORT}],
            },
        }));
        docs.push(json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "labels": labels(name)},
            "spec": {
                "serviceName": K8S_P2P_SERVICE,
                "replicas": 1,
                "selector": {"matchLabels": {"cairn/node": name}},
                "template": {
                    "metadata": {"labels": labels(name)},
                    "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "containers": [{
                            "name": "cairn-node",
                            "image": opts.image,
                            "args": ["run", "--home", CONTAINER_HOME],
                            "ports": [
                                {"name": "p2p", "containerPort": CONTAINER_P2P_PORT},
                                {"name": "rpc", "containerPort": CONTAINER_RPC_PORT},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": CONTAINER_RPC_PORT},
                                "periodSeconds": 5,
                                "timeoutSeconds": 3,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": CONTAINER_RPC_PORT},
                                "initialDelaySeconds": 30,
                                "periodSeconds": 10,
                                "timeoutSeconds": 5,
                                "failureThreshold": 6,
                            },
                            "volumeMounts": [
                                {"name": "data", "mountPath": format!("{CONTAINER_HOME}/data")},
                                {"name": "config", "mountPath": format!("{CONTAINER_HOME}/config.toml"), "subPath": "config.toml", "readOnly": true},
                                {"name": "genesis", "mountPath": format!("{CONTAINER_HOME}/genesis.json"), "subPath": "genesis.json", "readOnly": true},
                                {"name": "keys", "mountPath": format!("{CONTAINER_HOME}/keys"), "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "config", "configMap": {"name": format!("{name}-config")}},
                            {"name": "genesis", "configMap": {"name": "cairn-genesis"}},
                            {"name": "keys", "secret": {"secretName": format!("{name}-keys"), "defaultMode": 0o400}},
                        ],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": K8S_VOLUME_SIZE}},
                    },
                }],
            },
        }));
    }
    Ok(docs)
}

/// Writes `DIR/swarm-stack.yml` (and `DIR/swarm/`); returns its path.
pub fn write_swarm(out: &Path, manifest: &Manifest, opts: &ClusterOptions) -> Result<PathBuf> {
    let stack = swarm_stack(out, manifest, opts)?;
    let path = out.join(SWARM_STACK_FILE);
    let text = format!(
        "# Generated by `cairn-testnet generate --swarm`: docker stack deploy -c {SWARM_STACK_FILE} <stack>\n# (docs/deploy.md). Peers find each other by service name (/dns4/<service>/...).\n{}",
        to_yaml(&stack)
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes `DIR/k8s/cairn.yaml`; returns its path.
pub fn write_k8s(out: &Path, manifest: &Manifest, opts: &ClusterOptions) -> Result<PathBuf> {
    let docs = k8s_manifests(manifest, opts)?;
    let path = out.join(K8S_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut text = String::from(
        "# Generated by `cairn-testnet generate --k8s`: kubectl apply -f k8s/cairn.yaml (docs/deploy.md).\n# Holds the nodes' keys (Secrets): keep it as safe as the keys.\n",
    );
    for d in &docs {
        text.push_str("---\n");
        text.push_str(&to_yaml(d));
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}

/// Block-style YAML of a JSON value: strings are double-quoted with JSON escapes (a YAML
/// double-quoted scalar), multi-line strings a literal block (`|`) when that keeps them
/// exactly; keys plain when that reads back the same (`plain_key`), quoted otherwise.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(_) | Value::Array(_) => emit(v, 0, &mut out),
        scalar => {
            out.push_str(&scalar_text(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// Whether `k` reads back as the same string unquoted: starts with a letter, uses only
/// `[A-Za-z0-9_./-]`, and is none of the words YAML 1.1 parsers read as booleans or null.
fn plain_key(k: &str) -> bool {
    const SPECIAL: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !SPECIAL.contains(&k.to_ascii_lowercase().as_str())
}

fn key_text(k: &str) -> String {
    if plain_key(k) {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("a string serializes")
    }
}

/// A scalar (or empty collection) on one line; a literal block for suitable multi-line
/// strings, indented by `indent + 2`.
fn scalar_text(v: &Value, indent: usize) -> String {
    match v {
        Value::String(s) if literal_ok(s) => {
            let pad = " ".repeat(indent + 2);
            let body = s.strip_suffix('\n').unwrap_or(s);
            let mut t = String::from(if s.ends_with('\n') { "|" } else { "|-" });
            for line in body.split('\n') {
                t.push('\n');
                if !line.is_empty() {
                    t.push_str(&pad);
                    t.push_str(line);
                }
            }
            t
        }
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => serde_json::to_string(other).expect("a value serializes"),
    }
}

/// Whether `s` survives a literal block exactly: several lines, no tabs or carriage returns,
/// no trailing spaces, a first line not starting with a space, at most one final newline.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.contains(['\t', '\r'])
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && s.split('\n').all(|l| !l.ends_with(' '))
        && s.chars().all(|c| !c.is_control() || c == '\n')
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&key_text(k));
                out.push(':');
                if is_block(val) {
                    out.push('\n');
                    emit(val, indent + 2, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar_text(val, indent));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // The item's block at indent + 2, its first line's indentation turned into
                    // the dash.
                    let mut inner = String::new();
                    emit(item, indent + 2, &mut inner);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                } else {
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&scalar_text(item, indent));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&scalar_text(scalar, indent));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses YAML documents with an independent parser (Python's PyYAML), as JSON; `None`
    /// if it is not installed here.
    fn parse_yaml(text: &str) -> Option<Vec<Value>> {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().ok()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No module named") {
                return None;
            }
            panic!("YAML did not parse: {err}\n{text}");
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    #[test]
    fn yaml_round_trips_through_an_independent_parser() {
        let v = json!({
            "plain": "text",
            "quoted: key": "a \"quoted\" \\ value: with # marks",
            "multi": "line one\n  indented\n\nlast\n",
            "no_newline": "a\nb",
            "leading space": " x\ny",
            "numbers": [1, 2.5, -3, 0o400],
            "flags": [true, false, null],
            "empty": {}, "none": [],
            "nested": [{"a": 1, "b": [{"c": "d"}]}, "s", [1, [2]]],
            "yes": "yes", "No": 1, "0": "zero", "octal": "0400", "colon": "a: b",
        });
        let text = to_yaml(&v);
        match parse_yaml(&text) {
            Some(docs) => assert_eq!(docs, vec![v], "{text}"),
            None => eprintln!("SKIPPED round trip: python3 with PyYAML not installed"),
        }
    }

    fn testnet(dir: &Path) -> Manifest {
        let mut opts = crate::test_options(dir.join("net"), "cairn-cluster", 2);
        opts.full_nodes = 1;
        crate::generate(&opts).unwrap()
    }

    fn opts() -> ClusterOptions {
        ClusterOptions {
            image: "cairn-node:test".into(),
            rpc_port: 18545,
        }
    }

    fn bootstrap_of(config_toml: &str) -> Vec<String> {
        let c: NodeConfig = toml::from_str(config_toml).unwrap();
        c.p2p.bootstrap
    }

    #[test]
    fn k8s_manifests_have_a_statefulset_per_node_keys_from_secrets_and_health_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let m = testnet(dir.path());
        let out = m.nodes[0].home.parent().unwrap().to_path_buf();
        let path = write_k8s(&out, &m, &opts()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = match parse_yaml(&text) {
            Some(parsed) => {
                assert_eq!(parsed, k8s_manifests(&m, &opts()).unwrap());
                parsed
            }
            None => k8s_manifests(&m, &opts()).unwrap(),
        };
        let of_kind =
            |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
        let sets = of_kind("StatefulSet");
        assert_eq!(sets.len(), m.nodes.len());
        let headless: Vec<_> = of_kind("Service")
            .into_iter()
            .filter(|s| s["spec"]["clusterIP"] == "None")
            .collect();
        assert_eq!(headless.len(), 1);
        assert_eq!(headless[0]["metadata"]["name"], K8S_P2P_SERVICE);
        assert_eq!(headless[0]["spec"]["publishNotReadyAddresses"], true);
        for (node, set) in m.nodes.iter().zip(&sets) {
            assert_eq!(set["metadata"]["name"], node.name.as_str());
            let spec = &set["spec"];
            assert_eq!(spec["serviceName"], K8S_P2P_SERVICE);
            assert_eq!(spec["replicas"], 1);
            // The selector matches the pod labels, which the headless service selects too.
            let pod_labels = &spec["template"]["metadata"]["labels"];
            for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
                assert_eq!(&pod_labels[k], v);
            }
            assert_eq!(pod_labels["app.kubernetes.io/name"], "cairn");
            let c = &spec["template"]["spec"]["containers"][0];
            assert_eq!(c["image"], "cairn-node:test");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
            assert_eq!(c["readinessProbe"]["httpGet"]["port"], CONTAINER_RPC_PORT);
            let claim = &spec["volumeClaimTemplates"][0];
            let data = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == claim["metadata"]["name"])
                .expect("the claim is mounted");
            assert_eq!(data["mountPath"], "/cairn/data");
            // Keys come from this node's Secret, which holds exactly its key files.
            let volumes = spec["template"]["spec"]["volumes"].as_array().unwrap();
            let keys = volumes.iter().find(|v| v["name"] == "keys").unwrap();
            let secret_name = keys["secret"]["secretName"].as_str().unwrap();
            assert_eq!(keys["secret"]["defaultMode"], 0o400);
            let secret = of_kind("Secret")
                .into_iter()
                .find(|s| s["metadata"]["name"] == secret_name)
                .expect("the secret exists");
            assert_eq!(
                secret["stringData"]["node_key.json"],
                std::fs::read_to_string(node.home.join("node_key.json")).unwrap()
            );
            // Its config: keys where the secret is mounted, peers by pod DNS name.
            let cm_name =
                volumes.iter().find(|v| v["name"] == "config").unwrap()["configMap"]["name"]
                    .as_str()
                    .unwrap();
            let cm = of_kind("ConfigMap")
                .into_iter()
                .find(|c| c["metadata"]["name"] == cm_name)
                .unwrap();
            let toml_text = cm["data"]["config.toml"].as_str().unwrap();
            let cfg: NodeConfig = toml::from_str(toml_text).unwrap();
            assert_eq!(cfg.node_key_file, Path::new("/cairn/keys/node_key.json"));
            let boot = bootstrap_of(toml_text);
            let expected: Vec<String> = m
                .nodes
                .iter()
                .filter(|p| !p.full_node && p.name != node.name)
                .map(|p| {
                    format!(
                        "/dns4/{}-0.{K8S_P2P_SERVICE}/tcp/26656/p2p/{}",
                        p.name, p.peer_id
                    )
                })
                .collect();
            assert_eq!(boot, expected);
        }
    }

    #[test]
    fn the_swarm_stack_has_a_service_per_node_secrets_and_dns_peers() {
        let dir = tempfile::tempdir().unwrap();
        let m = testnet(dir.path());
        let out = m.nodes[0].home.parent().unwrap().to_path_buf();
        let path = write_swarm(&out, &m, &opts()).unwrap();
        let stack = swarm_stack(&out, &m, &opts()).unwrap();
        if let Some(parsed) = parse_yaml(&std::fs::read_to_string(&path).unwrap()) {
            assert_eq!(parsed, vec![stack.clone()]);
        }
        assert_eq!(stack["networks"]["cairn"]["driver"], "overlay");
        let services = stack["services"].as_object().unwrap();
        assert_eq!(services.len(), m.nodes.len());
        for (k, node) in m.nodes.iter().enumerate() {
            let s = &services[&node.name];
            assert_eq!(s["deploy"]["endpoint_mode"], "dnsrr");
            assert_eq!(s["ports"][0]["published"], 18545 + k);
            for secret in s["secrets"].as_array().unwrap() {
                let name = secret["source"].as_str().unwrap();
                let file = stack["secrets"][name]["file"].as_str().unwrap();
                assert!(out.join(file).is_file(), "{file}");
            }
            let cfg =
                std::fs::read_to_string(out.join(format!("swarm/{}.toml", node.name))).unwrap();
            let boot = bootstrap_of(&cfg);
            assert_eq!(
                boot.len(),
                m.validators().filter(|v| v.name != node.name).count()
            );
            assert!(
                boot.iter().all(|b| b.starts_with("/dns4/validator-")),
                "{boot:?}"
            );
        }
    }
}
