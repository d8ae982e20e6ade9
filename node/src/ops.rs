//! `cairn-node backup`, `restore` and `db stats` (operations on a home's database; see
//! docs/operations.md).
//!
//! Backup layout (a directory, written as `PATH.partial` and renamed to `PATH` when
//! complete, so an existing `PATH` is always a whole backup):
//! ```text
//! PATH/backup.json   BackupManifest: format, version, chain id, genesis hash, head
//! PATH/genesis.json  the home's genesis file, for reference
//! PATH/db/           the RocksDB checkpoint
//! ```

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cairn_genesis::Genesis;
use cairn_ledger::Store;
use cairn_ledger::backup::{self, DbHead, DbStats};
use cairn_node::admin;
use cairn_node::config::NodeConfig;
use serde::{Deserialize, Serialize};

/// `backup.json`'s `format`.
pub const BACKUP_FORMAT: &str = "cairn-backup";
/// `backup.json`'s `version`.
pub const BACKUP_VERSION: u32 = 1;
/// Most bytes of a `backup.json` read back.
const MANIFEST_BYTES_MAX: u64 = 64 * 1024;
/// Copy buffer, bytes.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// `backup.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    /// Always [`BACKUP_FORMAT`].
    pub format: String,
    /// Always [`BACKUP_VERSION`].
    pub version: u32,
    /// The database's head when the checkpoint was taken.
    #[serde(flatten)]
    pub head: DbHead,
    /// When the backup was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// Bytes of the copied database files.
    pub db_bytes: u64,
    /// `running` (the node made the checkpoint through its admin socket) or `stopped`.
    pub taken_from: String,
}

/// What a home's config and genesis say about its database.
struct Home {
    home: PathBuf,
    db: PathBuf,
    genesis_path: PathBuf,
    genesis: Genesis,
}

fn load_home(home: &Path) -> Result<Home> {
    let home =
        std::path::absolute(home).with_context(|| format!("resolving {}", home.display()))?;
    let config_path = home.join("config.toml");
    let config = NodeConfig::load(&config_path)
        .with_context(|| format!("loading {} (is this a node home?)", config_path.display()))?;
    let genesis_path = NodeConfig::resolve(&home, &config.genesis_file);
    let genesis = Genesis::load(&genesis_path)
        .with_context(|| format!("loading {}", genesis_path.display()))?;
    Ok(Home {
        db: NodeConfig::resolve(&home, &config.db_dir),
        home,
        genesis_path,
        genesis,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Progress of a copy in bytes: an indicatif bar when stderr is a terminal, else a plain
/// line at each tenth (at most 10 lines) and one at the end; nothing when `quiet`.
struct CopyProgress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    tenth_printed: u64,
    quiet: bool,
    label: String,
    started: Instant,
}

impl CopyProgress {
    fn new(label: &str, total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
                )
                .expect("static template is valid"),
            );
            b.set_prefix(label.to_string());
            b
        });
        if !quiet && bar.is_none() {
            eprintln!("{label}: {total} bytes");
        }
        CopyProgress {
            bar,
            total,
            done: 0,
            tenth_printed: 0,
            quiet,
            label: label.into(),
            started: Instant::now(),
        }
    }

    fn inc(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if !self.quiet && self.total > 0 {
            let tenth = (self.done.min(self.total) * 10) / self.total;
            if tenth > self.tenth_printed && tenth < 10 {
                self.tenth_printed = tenth;
                eprintln!("{}: {}% ({} bytes)", self.label, tenth * 10, self.done);
            }
        }
    }

    fn finish(self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "{}: done, {} bytes in {:.1} s",
                self.label,
                self.done,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Copies the regular files of the flat directory `src` into the new directory `dst`,
/// syncing each file and the directory.
fn copy_dir(src: &Path, dst: &Path, label: &str, quiet: bool) -> Result<u64> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            files.push((entry.path(), meta.len()));
        } else {
            bail!(
                "{} is not a regular file; a database directory holds only files",
                entry.path().display()
            );
        }
    }
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    std::fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut progress = CopyProgress::new(label, total, quiet);
    let mut buf = vec![0u8; COPY_CHUNK_BYTES];
    for (path, _) in &files {
        let name = path.file_name().expect("a directory entry has a name");
        let target = dst.join(name);
        let mut input =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut output = std::fs::File::create_new(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            output
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", target.display()))?;
            progress.inc(n as u64);
        }
        output
            .sync_all()
            .with_context(|| format!("syncing {}", target.display()))?;
    }
    sync_dir(dst)?;
    progress.finish();
    Ok(total)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Removes a directory when dropped (a staging checkpoint, a partial copy).
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// `cairn-node backup --home HOME --to TO`.
pub async fn backup(home: &Path, to: &Path, json: bool) -> Result<()> {
    let h = load_home(home)?;
    let to = std::path::absolute(to).with_context(|| format!("resolving {}", to.display()))?;
    if to.symlink_metadata().is_ok() {
        bail!(
            "{} already exists; a backup is written to a new path",
            to.display()
        );
    }
    let parent = to
        .parent()
        .with_context(|| format!("{} has no parent directory", to.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    if partial.symlink_metadata().is_ok() {
        bail!(
            "{} exists (left by an interrupted backup?); remove it first",
            partial.display()
        );
    }
    // The checkpoint is made beside the database (same file system: hard links, instant for
    // the node), then copied from there with progress.
    let db_parent =
        h.db.parent()
            .with_context(|| format!("{} has no parent directory", h.db.display()))?;
    let staging = db_parent.join(format!(".cairn-backup-{}-{}", std::process::id(), now_ms()));
    let staging_guard = RemoveOnDrop(Some(staging.clone()));
    let socket = admin::socket_path(&h.home);
    let (head, taken_from) = if admin::is_listening(&socket) {
        if !json {
            eprintln!(
                "node is running: asking it for a checkpoint ({})",
                socket.display()
            );
        }
        let head = admin::checkpoint(&socket, &staging)
            .await
            .context("checkpoint through the admin socket")?;
        (head, "running")
    } else {
        if !json {
            eprintln!("node is not running: opening {}", h.db.display());
        }
        if !h.db.join("CURRENT").is_file() {
            bail!("{} holds no database", h.db.display());
        }
        let db = h.db.clone();
        let genesis_hash = h.genesis.hash();
        let target = staging.clone();
        let head = tokio::task::spawn_blocking(move || -> Result<DbHead> {
            let store = Store::open(&db, genesis_hash).with_context(|| {
                format!(
                    "opening {} (if a node runs on it without an admin socket, stop it or upgrade it)",
                    db.display()
                )
            })?;
            Ok(store.checkpoint(&target)?)
        })
        .await??;
        (head, "stopped")
    };
    let partial_guard = RemoveOnDrop(Some(partial.clone()));
    std::fs::create_dir(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let db_bytes = {
        let (s, d) = (staging.clone(), partial.join("db"));
        tokio::task::spawn_blocking(move || copy_dir(&s, &d, "copying database", json)).await??
    };
    drop(staging_guard);
    // The copy must open and be this chain's, at the head the checkpoint reported.
    let copied = {
        let db = partial.join("db");
        let (g, c) = (h.genesis.hash(), h.genesis.chain_id.clone());
        tokio::task::spawn_blocking(move || backup::verify(&db, g, Some(&c))).await??
    };
    if copied != head {
        bail!("the copy's head {copied:?} is not the checkpoint's {head:?}");
    }
    let manifest = BackupManifest {
        format: BACKUP_FORMAT.into(),
        version: BACKUP_VERSION,
        head,
        created_ms: now_ms(),
        db_bytes,
        taken_from: taken_from.into(),
    };
    let manifest_path = partial.join("backup.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    std::fs::copy(&h.genesis_path, partial.join("genesis.json"))
        .with_context(|| format!("copying {}", h.genesis_path.display()))?;
    for f in ["backup.json", "genesis.json"] {
        std::fs::File::open(partial.join(f))?.sync_all()?;
    }
    sync_dir(&partial)?;
    std::fs::rename(&partial, &to)
        .with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
    partial_guard.keep();
    sync_dir(parent)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"backup": to, "manifest": manifest})
        );
    } else {
        println!(
            "backup of {} at height {} ({}) written to {} ({} bytes)",
            manifest.head.chain_id.as_deref().unwrap_or("?"),
            manifest.head.finalized_height.unwrap_or(0),
            manifest
                .head
                .finalized_hash
                .map(|h| h.to_hex())
                .unwrap_or_default(),
            to.display(),
            db_bytes
        );
    }
    Ok(())
}

fn read_manifest(from: &Path) -> Result<BackupManifest> {
    let path = from.join("backup.json");
    let file = std::fs::File::open(&path).with_context(|| {
        format!(
            "opening {} (is {} a backup?)",
            path.display(),
            from.display()
        )
    })?;
    let mut text = Vec::new();
    file.take(MANIFEST_BYTES_MAX + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MANIFEST_BYTES_MAX {
        bail!("{} is over {MANIFEST_BYTES_MAX} bytes", path.display());
    }
    let m: BackupManifest =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    if m.format != BACKUP_FORMAT || m.version != BACKUP_VERSION {
        bail!(
            "{}: format {} version {}, expected {BACKUP_FORMAT} version {BACKUP_VERSION}",
            path.display(),
            m.format,
            m.version
        );
    }
    Ok(m)
}

/// `cairn-node restore --home HOME --from FROM [--force]`.
pub async fn restore(home: &Path, from: &Path, force: bool, json: bool) -> Result<()> {
    let h = load_home(home)?;
    let socket = admin::socket_path(&h.home);
    if admin::is_listening(&socket) {
        bail!(
            "a node is running on {} (its admin socket answers); stop it before restoring",
            h.home.display()
        );
    }
    let genesis_hash = h.genesis.hash();
    let chain_id = h.genesis.chain_id.clone();
    let manifest = read_manifest(from)?;
    if manifest.head.genesis_hash != genesis_hash {
        bail!(
            "the backup is of genesis {}, this home's genesis ({}) is {}",
            manifest.head.genesis_hash,
            h.genesis_path.display(),
            genesis_hash
        );
    }
    if manifest.head.chain_id.as_deref() != Some(chain_id.as_str()) {
        bail!(
            "the backup is of chain {:?}, this home's chain is {chain_id:?}",
            manifest.head.chain_id
        );
    }
    let from_db = from.join("db");
    let head = {
        let (db, c) = (from_db.clone(), chain_id.clone());
        tokio::task::spawn_blocking(move || backup::verify(&db, genesis_hash, Some(&c)))
            .await?
            .with_context(|| format!("checking {}", from_db.display()))?
    };
    if head != manifest.head {
        bail!(
            "the backup's database (height {:?}) does not match its backup.json (height {:?})",
            head.finalized_height,
            manifest.head.finalized_height
        );
    }
    let holds_db = h.db.exists()
        && std::fs::read_dir(&h.db)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if holds_db {
        if !force {
            bail!(
                "{} already holds a database; pass --force to replace it",
                h.db.display()
            );
        }
        // A node running without an admin socket still holds RocksDB's lock.
        if h.db.join("CURRENT").is_file() {
            let db = h.db.clone();
            let opened =
                tokio::task::spawn_blocking(move || Store::open(&db, genesis_hash)).await?;
            if let Err(e) = opened {
                let reason = e.to_string();
                if reason.to_lowercase().contains("lock") {
                    bail!(
                        "{} is in use by a running process: {reason}",
                        h.db.display()
                    );
                }
            }
        }
    }
    let restoring = PathBuf::from(format!("{}.restoring", h.db.display()));
    if restoring.exists() {
        std::fs::remove_dir_all(&restoring)
            .with_context(|| format!("removing {}", restoring.display()))?;
    }
    let guard = RemoveOnDrop(Some(restoring.clone()));
    if let Some(parent) = restoring.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let bytes = {
        let (s, d) = (from_db.clone(), restoring.clone());
        tokio::task::spawn_blocking(move || copy_dir(&s, &d, "restoring database", json)).await??
    };
    let wal_entries = {
        let d = restoring.clone();
        tokio::task::spawn_blocking(move || -> Result<usize> {
            backup::verify(&d, genesis_hash, Some(&chain_id))?;
            Ok(backup::forget_consensus_wal(&d, genesis_hash)?)
        })
        .await??
    };
    let replaced = if h.db.exists() {
        let aside = PathBuf::from(format!("{}.replaced-{}", h.db.display(), now_ms()));
        std::fs::rename(&h.db, &aside)
            .with_context(|| format!("moving {} aside", h.db.display()))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&restoring, &h.db)
        .with_context(|| format!("renaming {} to {}", restoring.display(), h.db.display()))?;
    guard.keep();
    if let Some(parent) = h.db.parent() {
        sync_dir(parent)?;
    }
    if let Some(aside) = &replaced {
        std::fs::remove_dir_all(aside)
            .with_context(|| format!("removing the replaced database {}", aside.display()))?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "home": h.home,
                "db": h.db,
                "head": head,
                "bytes": bytes,
                "replaced": replaced.is_some(),
                "walEntriesDropped": wal_entries,
            })
        );
    } else {
        println!(
            "restored {} at height {} into {} ({} bytes{}); start the node to catch up",
            chain_id_text(&head),
            head.finalized_height.unwrap_or(0),
            h.db.display(),
            bytes,
            if replaced.is_some() {
                ", replacing the database that was there"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn chain_id_text(head: &DbHead) -> String {
    head.chain_id.clone().unwrap_or_else(|| "?".into())
}

/// `cairn-node db stats --home HOME`.
pub async fn db_stats(home: &Path, json: bool) -> Result<()> {
    let h = load_home(home)?;
    let socket = admin::socket_path(&h.home);
    let (stats, source): (DbStats, &str) = if admin::is_listening(&socket) {
        (
            admin::db_stats(&socket)
                .await
                .context("dbStats through the admin socket")?,
            "node",
        )
    } else {
        let db = h.db.clone();
        (
            tokio::task::spawn_blocking(move || backup::stats(&db))
                .await?
                .with_context(|| format!("reading {}", h.db.display()))?,
            "read-only",
        )
    };
    if json {
        let mut v = serde_json::to_value(&stats)?;
        v["source"] = serde_json::Value::String(source.into());
        println!("{v}");
        return Ok(());
    }
    println!("database  {} ({source})", stats.path.display());
    println!("chain     {}", chain_id_text(&stats.head));
    println!("genesis   {}", stats.head.genesis_hash);
    match (stats.head.finalized_height, stats.head.finalized_hash) {
        (Some(height), Some(hash)) => println!("finalized {height} ({hash})"),
        _ => println!("finalized none (no genesis block yet)"),
    }
    println!("on disk   {} bytes", stats.disk_bytes);
    println!(
        "{:<16} {:>12} {:>14} {:>14} {:>14}",
        "column family", "keys", "sst bytes", "memtable bytes", "index+filter"
    );
    for cf in &stats.column_families {
        println!(
            "{:<16} {:>12} {:>14} {:>14} {:>14}",
            cf.name, cf.keys, cf.sst_bytes, cf.memtable_bytes, cf.table_readers_bytes
        );
    }
    Ok(())
}
