//! The built-in dashboard in a real browser, and the monitoring files against a real node.
//!
//! - `dashboard_renders_a_live_testnet`: a 4-validator local testnet finalizes transfers;
//!   headless Chromium (Debian's `chromium`) loads node 0's `GET /dashboard` twice, a few
//!   seconds apart, and the DOM shows real values: the head height is a number > 0 and
//!   rises, finality latency is measured, the TPS chart has points (some above zero), every
//!   validator is listed with its share of the certificates, peers are listed; the browser
//!   logs nothing (no JS error, no Content-Security-Policy refusal). It saves a screenshot
//!   (`$CAIRN_DASHBOARD_SCREENSHOT` if set, else under the target dir), and loads the
//!   testnet page (`cairn-testnet dashboard`) with every node framed, equally silent.
//! - `grafana_dashboard_queries_only_served_metrics`: every `cairn_*` metric the Grafana
//!   dashboard in `testnet/monitoring/` queries is served by a running node's `/metrics`.
//!
//! Chromium: `$CAIRN_CHROMIUM`, else `chromium`, `chromium-browser` or `google-chrome` on
//! PATH (scripts/install-deps.sh installs `chromium`). Without one the browser test is
//! skipped with a message, unless `CI=true`, where it fails.
//!
//! Needs the `cairn-node` binary built (`cargo build --bins`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_ledger::Address;
use cairn_rpc::RpcClient;
use cairn_testnet::{LocalTestnet, find_node_binary, generate, test_options};
use cairn_wallet::{KeyFile, build_transfer};
use serde_json::Value;

const WAIT_MAX: Duration = Duration::from_secs(120);
/// Bound on one browser run.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// Virtual time the page gets per browser run: a few of its 1 s polls. Virtual time runs
/// ahead of the wall clock (it does not wait for the node), so the chart's newest seconds
/// are empty by about this much; kept short.
const VIRTUAL_TIME_MS: u64 = 4000;
/// Transfers submitted so the chart has something to draw.
const TRANSFERS: u64 = 60;

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < WAIT_MAX {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {WAIT_MAX:?} waiting for {what}");
}

/// The Chromium binary, or `None` (after saying why) when the test should be skipped.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CAIRN_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true and no Chromium found: install the `chromium` package (scripts/install-deps.sh) or set CAIRN_CHROMIUM"
        );
        eprintln!(
            "SKIPPED dashboard browser test: no chromium on PATH (install the `chromium` package with scripts/install-deps.sh, or set CAIRN_CHROMIUM)"
        );
    }
    found
}

/// What one headless browser run produced.
struct BrowserRun {
    stdout: String,
    /// Messages the page logged to its console (Chromium writes them to stderr as
    /// `…:INFO:CONSOLE…` lines): JS errors, CSP refusals, failed loads.
    console: Vec<String>,
}

/// Runs headless Chromium on `url` with `args` (e.g. `--dump-dom`), a fresh profile, and
/// [`VIRTUAL_TIME_MS`] of virtual time; bounded by [`BROWSER_TIMEOUT`].
async fn browse(chromium: &Path, profile: &Path, url: &str, args: &[&str]) -> BrowserRun {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let child = cmd.spawn().expect("chromium starts");
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium failed ({}): {stderr}",
        out.status
    );
    BrowserRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .map(str::to_owned)
            .collect(),
    }
}

/// The text of the element with id `id` in `dom` (up to its first child tag).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[start..];
    let open_end = rest.find('>').expect("tag ends") + 1;
    let rest = &rest[open_end..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

/// The value of attribute `attr` on the element with id `id`.
fn attr_of<'a>(dom: &'a str, id: &str, attr: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_start = dom[..start].rfind('<').expect("inside a tag");
    let tag = &dom[tag_start..start + dom[start..].find('>').expect("tag ends")];
    let key = format!("{attr}=\"");
    let v = &tag[tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"))
        + key.len()..];
    &v[..v.find('"').expect("attribute ends")]
}

/// The rows (`<tr>…</tr>`) of the table body with id `id`, each as its cells' texts.
fn rows_of(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let body = &dom[start..];
    let body = &body[..body.find("</tbody>").expect("tbody ends")];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').expect("td tag ends") + 1..];
                    cell[..cell.find("</td>").expect("td ends")].to_string()
                })
                .collect()
        })
        .collect()
}

fn assert_silent(run: &BrowserRun, what: &str) {
    assert!(
        run.console.is_empty(),
        "{what}: the browser logged (JS errors, CSP refusals or failed loads):\n{}",
        run.console.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_a_live_testnet() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = test_options(dir.path().join("net"), "cairn-dashboard", 4);
    let manifest = generate(&opts).unwrap();
    let chain_id = manifest.chain_id.clone();
    let _net = LocalTestnet::start(manifest.clone(), find_node_binary()).unwrap();
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    for c in &clients {
        wait_until("every node to finalize height 2", || async {
            c.status().await.is_ok_and(|s| s.latest_height >= 2)
        })
        .await;
    }
    wait_until("node 0 to see its 3 peers", || async {
        clients[0].peers().await.is_ok_and(|p| p.len() >= 3)
    })
    .await;

    // Transfers, so finalized TPS is above zero somewhere on the chart.
    let keys: Vec<KeyFile> = manifest
        .accounts
        .iter()
        .map(|a| KeyFile::load(&a.key_file).unwrap())
        .collect();
    let sink = Address([201; 32]);
    let mut last = None;
    for k in 0..TRANSFERS {
        let key = &keys[(k % keys.len() as u64) as usize];
        let nonce = k / keys.len() as u64;
        let tx = build_transfer(key, &chain_id, sink, 1 + k, 1, nonce, 1_000_000);
        last = Some(clients[0].send_transaction(&tx).await.unwrap());
    }
    let last = last.unwrap();
    wait_until("the transfers to be finalized", || async {
        clients[0]
            .transaction(&last)
            .await
            .is_ok_and(|s| s.label() == "finalized")
    })
    .await;
    // The node counted them, per second of its clock (the current second is not served).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let throughput = clients[0].throughput().await.unwrap();
    assert_eq!(throughput.bin_ms, 1000);
    assert_eq!(
        throughput.bins.iter().map(|b| b.txs).sum::<u64>(),
        TRANSFERS,
        "every transfer counted once: {:?}",
        throughput.bins
    );
    assert!(
        throughput
            .bins
            .windows(2)
            .all(|w| w[1].start_ms == w[0].start_ms + 1000)
    );
    let status = clients[0].status().await.unwrap();
    let latency = status
        .finality_latency_ms
        .expect("node 0 measured its finality latency");
    assert!(latency < 60_000, "finality latency {latency} ms");
    assert_eq!(status.upcoming_leaders.len(), 4);

    let url = format!("{}/dashboard", manifest.nodes[0].rpc_url);
    let profile = dir.path().join("chromium-profile");
    let first = browse(&chromium, &profile, &url, &["--dump-dom"]).await;
    assert_silent(&first, "first load");
    let dom = &first.stdout;
    assert!(
        attr_of(dom, "conn-state", "class").contains("ok"),
        "the page is not live: {dom}"
    );
    let updates: u64 = attr_of(dom, "body", "data-updates").parse().unwrap();
    assert!(updates >= 2, "{updates} updates within the virtual time");
    assert!(!dom.contains("data-error="), "the page reports an error");
    let height_1: u64 = text_of(dom, "head-height").parse().unwrap_or_else(|_| {
        panic!(
            "head height is not a number: {:?}",
            text_of(dom, "head-height")
        )
    });
    assert!(height_1 > 0, "head height {height_1}");
    assert_eq!(text_of(dom, "chain-id"), chain_id);
    assert!(
        text_of(dom, "finality-latency").ends_with(" ms"),
        "finality latency shown: {:?}",
        text_of(dom, "finality-latency")
    );
    assert!(text_of(dom, "mempool").parse::<u64>().is_ok());
    assert!(["in sync", "syncing"].contains(&text_of(dom, "sync-state")));
    // The chart: points, some above the zero line (the transfers).
    let points: usize = attr_of(dom, "tps-line", "data-points").parse().unwrap();
    assert!(points >= 1, "the TPS chart has no points");
    let coords: Vec<(f64, f64)> = attr_of(dom, "tps-line", "points")
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(coords.len(), points);
    assert!(
        coords.iter().any(|&(_, y)| y < 199.0),
        "no bin above zero TPS after {TRANSFERS} transfers: {coords:?}"
    );
    // Every validator, with its share of recent certificates.
    let validators = rows_of(dom, "validators-body");
    assert_eq!(validators.len(), 4, "{validators:?}");
    for node in manifest.validators() {
        let row = validators
            .iter()
            .find(|r| r[0] == node.name)
            .unwrap_or_else(|| panic!("{} not listed: {validators:?}", node.name));
        assert!(
            row[3].contains('%'),
            "participation of {}: {row:?}",
            node.name
        );
    }
    let share = |cell: &str| -> u32 {
        cell.split('%')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("participation {cell:?} is not a percentage"))
    };
    let signed: u32 = validators.iter().map(|r| share(&r[3])).sum();
    // A certificate holds a quorum: 3 of the 4 (equal power) at least.
    assert!(signed >= 295, "shares of the certificates: {validators:?}");
    assert!(text_of(dom, "leaders").contains("validator-"));
    let peers = rows_of(dom, "peers-body");
    assert!(peers.len() >= 3, "peers listed: {peers:?}");
    assert!(peers.iter().all(|r| r.len() == 6), "{peers:?}");
    assert_eq!(rows_of(dom, "evidence-body")[0], vec!["none".to_string()]);

    // A few seconds later the head has risen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = browse(&chromium, &profile, &url, &["--dump-dom"]).await;
    assert_silent(&second, "second load");
    let height_2: u64 = text_of(&second.stdout, "head-height").parse().unwrap();
    assert!(
        height_2 > height_1,
        "head height {height_1} then {height_2}"
    );
    // The page follows the head over the node's WebSocket too (the CSP lets it connect:
    // a refusal would have been logged above).
    assert!(
        [&first.stdout, &second.stdout]
            .iter()
            .any(|dom| dom.contains("data-ws=\"subscribed\"")),
        "the page never subscribed over /ws"
    );

    // The screenshot README shows.
    let shot = std::env::var_os("CAIRN_DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    let _ = std::fs::remove_file(&shot);
    let run = browse(
        &chromium,
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1320",
        ],
    )
    .await;
    assert_silent(&run, "screenshot");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!("dashboard screenshot: {}", shot.display());

    // The testnet page: every node framed, nothing logged (the frames' consoles included).
    let net_dir = dir.path().join("net");
    let page = cairn_testnet::dashboard::write_page(&net_dir, &manifest).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    for node in &manifest.nodes {
        assert!(html.contains(&format!("{}/dashboard?compact", node.rpc_url)));
    }
    let page_url = cairn_testnet::dashboard::file_url(&page);
    let shot_net = shot.with_file_name("dashboard-testnet.png");
    let run = browse(
        &chromium,
        &profile,
        &page_url,
        &[
            &format!("--screenshot={}", shot_net.display()),
            "--window-size=1800,1000",
        ],
    )
    .await;
    assert_silent(&run, "testnet page");
    assert!(
        std::fs::metadata(&shot_net)
            .expect("testnet screenshot")
            .len()
            > 10_000
    );
}

/// Every metric name (`cairn_…`) in the PromQL expressions of `dashboard`.
fn queried_metrics(dashboard: &Value) -> (BTreeSet<String>, usize) {
    fn walk(v: &Value, exprs: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => exprs.push(e.clone()),
                        _ => walk(v, exprs),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, exprs)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    let mut names = BTreeSet::new();
    for e in &exprs {
        let mut found = false;
        let mut rest = e.as_str();
        while let Some(i) = rest.find("cairn_") {
            let before = rest[..i].chars().last();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_string());
                found = true;
            }
            rest = &tail[end..];
        }
        // `up` is Prometheus's own per-target series; anything else must name a metric.
        assert!(
            found || e.starts_with("up{"),
            "expression {e:?} queries no cairn metric"
        );
    }
    (names, exprs.len())
}

/// The sample names (`name` or `name{labels}` before the value) a `/metrics` text serves.
fn served_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_served_metrics() {
    let monitoring = monitoring_dir();
    let text =
        std::fs::read_to_string(monitoring.join("grafana/dashboards/cairn-testnet.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let (queried, exprs) = queried_metrics(&dashboard);
    assert!(
        exprs >= 10 && queried.len() >= 10,
        "{exprs} expressions: {queried:?}"
    );
    // Every panel and query uses the provisioned datasource.
    let datasources =
        std::fs::read_to_string(monitoring.join("grafana/provisioning/datasources/prometheus.yml"))
            .unwrap();
    assert!(datasources.contains("uid: cairn-prometheus"));
    assert_eq!(
        text.matches("\"uid\": \"cairn-prometheus\"").count(),
        text.matches("\"datasource\"").count(),
        "every datasource reference is the provisioned one"
    );
    // The scrape config's job is the one the dashboard's `up` panel names.
    let prometheus = std::fs::read_to_string(monitoring.join("prometheus.yml")).unwrap();
    assert!(
        prometheus.contains("job_name: cairn") && prometheus.contains("metrics_path: /metrics")
    );
    let targets: Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring.join("targets.json")).unwrap())
            .expect("targets.json is JSON");
    assert_eq!(targets.as_array().map(Vec::len), Some(4));

    // A running node (one validator) serves every one of them.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = test_options(dir.path().join("net"), "cairn-metrics", 1);
    opts.validators = 1;
    let manifest = generate(&opts).unwrap();
    let _net = LocalTestnet::start(manifest.clone(), find_node_binary()).unwrap();
    let client = RpcClient::new(&manifest.nodes[0].rpc_url).unwrap();
    wait_until("the node to finalize a block", || async {
        client.status().await.is_ok_and(|s| s.latest_height >= 1)
    })
    .await;
    let body = reqwest::get(format!("{}/metrics", manifest.nodes[0].rpc_url))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let served = served_metrics(&body);
    let missing: Vec<&String> = queried.iter().filter(|m| !served.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries metrics the node does not serve: {missing:?}\nserved: {served:?}"
    );
    // The same targets file the `dashboard` command writes for this testnet.
    let written =
        cairn_testnet::dashboard::write_prometheus_targets(dir.path(), &manifest).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(written).unwrap()).unwrap();
    assert_eq!(
        written[0]["targets"][0],
        manifest.nodes[0].rpc_url.trim_start_matches("http://")
    );
}

#[test]
fn metric_names_are_extracted_from_expressions() {
    let d = serde_json::json!({"panels": [
        {"targets": [{"expr": "rate(cairn_txs_finalized_total[1m]) / on() cairn_height"}]},
        {"panels": [{"targets": [{"expr": "max(cairn_finality_latency_ms >= 0)"}]}]},
        {"targets": [{"expr": "up{job=\"cairn\"}"}]},
    ]});
    let (names, exprs) = queried_metrics(&d);
    assert_eq!(exprs, 3);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "cairn_finality_latency_ms",
            "cairn_height",
            "cairn_txs_finalized_total"
        ]
    );
    let served = served_metrics(
        "# TYPE cairn_height gauge\ncairn_height 5\ncairn_x_total{a=\"b\"} 1\n# EOF\n",
    );
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        ["cairn_height", "cairn_x_total"]
    );
}
