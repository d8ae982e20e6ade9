//! `cairn-testnet dashboard DIR`: one page showing every node of a testnet side by side.
//!
//! Each node serves its own live dashboard at `GET /dashboard` on its RPC port (see
//! `cairn_rpc::dashboard`). [`write_page`] writes `DIR/dashboard.html`, a static page that
//! frames each node's compact dashboard (`<rpc_url>/dashboard?compact`) in a column with the
//! node's name, role and a link to its full dashboard. The page itself loads nothing else
//! and runs no script; each frame reads its own node's JSON-RPC, so nothing needs CORS.
//! Open it with any browser on the machine whose loopback ports carry the RPC (the local
//! testnet's, or the Docker testnet's published ports).
//!
//! The command also writes `DIR/prometheus-targets.json` ([`prometheus_targets`]), the
//! scrape targets of the Prometheus in `testnet/monitoring/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::Manifest;

/// File name of the page in the testnet directory.
pub const PAGE_FILE: &str = "dashboard.html";

/// The page for `manifest`'s nodes, in manifest order (validators, then full nodes).
pub fn page_html(manifest: &Manifest) -> String {
    let mut columns = String::new();
    for node in &manifest.nodes {
        let base = node.rpc_url.trim_end_matches('/');
        let role = if node.full_node {
            "full node"
        } else {
            "validator"
        };
        let _ = write!(
            columns,
            r#"
<section class="node">
  <h2><a href="{full}" target="_blank" rel="noopener">{name}</a> <span>{role} · {rpc}</span></h2>
  <iframe src="{compact}" title="{name} dashboard" loading="eager"></iframe>
</section>"#,
            full = escape(&format!("{base}/dashboard")),
            compact = escape(&format!("{base}/dashboard?compact")),
            name = escape(&node.name),
            role = role,
            rpc = escape(base),
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Cairn testnet {chain}</title>
<style>
body {{ margin: 0; background: #11151c; color: #dde3ea; font-family: system-ui, "DejaVu Sans", sans-serif; }}
header {{ padding: 10px 16px; border-bottom: 1px solid #2a3240; }}
header h1 {{ margin: 0; font-size: 18px; font-weight: 600; }}
header p {{ margin: 4px 0 0; color: #8b96a5; font-size: 12px; }}
main {{ display: grid; grid-auto-flow: column; grid-auto-columns: minmax(440px, 1fr); gap: 8px; padding: 8px; overflow-x: auto; }}
.node h2 {{ margin: 0 0 6px; font-size: 14px; font-weight: 600; }}
.node h2 a {{ color: #4fb3ff; text-decoration: none; }}
.node h2 span {{ color: #8b96a5; font-weight: 400; font-size: 12px; }}
iframe {{ width: 100%; height: calc(100vh - 110px); min-height: 600px; border: 1px solid #2a3240; border-radius: 8px; background: #11151c; }}
</style>
</head>
<body>
<header>
<h1>Cairn testnet <span>{chain}</span></h1>
<p>{count} nodes · genesis {genesis} · each column is that node's own dashboard, read from its JSON-RPC</p>
</header>
<main>{columns}
</main>
</body>
</html>
"#,
        chain = escape(&manifest.chain_id),
        count = manifest.nodes.len(),
        genesis = escape(&manifest.genesis_hash.to_string()),
    )
}

/// Writes [`page_html`] to `dir/dashboard.html`; returns its path (absolute when `dir` can
/// be resolved).
pub fn write_page(dir: &Path, manifest: &Manifest) -> Result<PathBuf> {
    let path = dir.join(PAGE_FILE);
    std::fs::write(&path, page_html(manifest))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// File name of the Prometheus targets in the testnet directory.
pub const PROMETHEUS_TARGETS_FILE: &str = "prometheus-targets.json";

/// Prometheus file-based service discovery targets for `manifest`'s nodes (see
/// `testnet/monitoring/prometheus.yml`): one group per node, `host:port` of its RPC URL,
/// labelled `node=<name>`.
pub fn prometheus_targets(manifest: &Manifest) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = manifest
        .nodes
        .iter()
        .map(|n| {
            let url = n.rpc_url.trim_end_matches('/');
            let host_port = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .unwrap_or(url);
            serde_json::json!({ "targets": [host_port], "labels": { "node": n.name } })
        })
        .collect();
    serde_json::Value::Array(groups)
}

/// Writes [`prometheus_targets`] to `dir/prometheus-targets.json`; returns its path.
pub fn write_prometheus_targets(dir: &Path, manifest: &Manifest) -> Result<PathBuf> {
    let path = dir.join(PROMETHEUS_TARGETS_FILE);
    let text = serde_json::to_string_pretty(&prometheus_targets(manifest))
        .context("encoding Prometheus targets")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The `file://` URL of a page at `path`.
pub fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(b as char)
            }
            _ => {
                let _ = write!(url, "%{b:02X}");
            }
        }
    }
    url
}

/// Escapes text for HTML element content and double-quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeEntry;
    use cairn_ledger::{Address, Hash};

    fn node(name: &str, port: u16, full_node: bool) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            home: PathBuf::from("/tmp/x"),
            rpc_url: format!("http://127.0.0.1:{port}"),
            p2p_addr: String::new(),
            peer_id: String::new(),
            validator_address: Address([1; 32]),
            full_node,
        }
    }

    #[test]
    fn page_frames_every_node_and_escapes_names() {
        let manifest = Manifest {
            chain_id: "cairn-<test>".into(),
            genesis_hash: Hash([7; 32]),
            nodes: vec![
                node("validator-0", 8545, false),
                node("v\"1<script>", 8546, false),
                node("full-0", 8547, true),
            ],
            accounts: Vec::new(),
            docker: None,
            generated_accounts: None,
        };
        let html = page_html(&manifest);
        assert_eq!(html.matches("<iframe ").count(), 3);
        for port in [8545, 8546, 8547] {
            let src = format!(r#"src="http://127.0.0.1:{port}/dashboard?compact""#);
            assert!(html.contains(&src), "{src} missing");
        }
        assert!(html.contains("cairn-&lt;test&gt;"));
        assert!(html.contains("v&quot;1&lt;script&gt;"));
        assert!(
            !html.contains("<script"),
            "names are escaped, the page runs no script"
        );
        assert!(html.contains("full node · http://127.0.0.1:8547"));
    }

    #[test]
    fn prometheus_targets_name_every_node() {
        let manifest = Manifest {
            chain_id: "c".into(),
            genesis_hash: Hash([7; 32]),
            nodes: vec![node("validator-0", 8545, false), node("full-0", 9000, true)],
            accounts: Vec::new(),
            docker: None,
            generated_accounts: None,
        };
        assert_eq!(
            prometheus_targets(&manifest),
            serde_json::json!([
                {"targets": ["127.0.0.1:8545"], "labels": {"node": "validator-0"}},
                {"targets": ["127.0.0.1:9000"], "labels": {"node": "full-0"}},
            ])
        );
    }

    #[test]
    fn file_urls_are_percent_encoded() {
        assert_eq!(
            file_url(Path::new("/tmp/my net/dashboard.html")),
            "file:///tmp/my%20net/dashboard.html"
        );
    }
}
