//! Making and serving state snapshots ([`cairn_ledger::snapshot`]) for peers that join by
//! state sync ([`crate::state_sync`]).
//!
//! - **Making.** Every `sync.snapshot_interval_blocks` blocks (0: never) the driver's
//!   commit path hands the head height to [`SnapshotTrigger::committed`] (a `try_send` into
//!   a queue of [`SNAPSHOT_QUEUE_MAX`]: it never waits); the maker task writes the snapshot
//!   of that height on a blocking thread ([`cairn_ledger::Store::write_snapshot`], one
//!   RocksDB snapshot, files renamed into place when complete) under `<home>/snapshots/`,
//!   one at a time, then keeps only the newest `sync.snapshots_kept`. A height whose
//!   snapshot could not start before the next commit (the head moved on, e.g. while
//!   catching up by block sync, where many blocks commit at once) is skipped.
//! - **Serving.** [`SnapshotServe`] answers the sync server's snapshot requests from those
//!   files on blocking threads (manifests read at most [`MANIFEST_CACHE_MAX`] at a time and
//!   cached by id; chunks read from disk, at most 1 MiB each). Only this node's own
//!   snapshots are served, each of the state it committed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cairn_ledger::snapshot::{self, SnapshotManifest};
use cairn_ledger::{Hash, Store};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::sync::SnapshotOffer;

/// Heights waiting for the snapshot maker; beyond it a height is skipped.
pub const SNAPSHOT_QUEUE_MAX: usize = 4;
/// Most manifests [`SnapshotServe`] keeps decoded (the newest snapshots).
pub const MANIFEST_CACHE_MAX: usize = 8;

/// The commit path's handle on the snapshot maker.
#[derive(Clone, Debug)]
pub struct SnapshotTrigger {
    interval_blocks: u64,
    heights: mpsc::Sender<u64>,
}

impl SnapshotTrigger {
    /// The head is now at `height`: asks for a snapshot if it is a multiple of the interval.
    /// Never waits.
    pub fn committed(&self, height: u64) {
        if height > 0
            && height % self.interval_blocks == 0
            && self.heights.try_send(height).is_err()
        {
            warn!(height, "snapshot maker busy: snapshot skipped");
        }
    }
}

/// Runs `f` on a new thread at the lowest CPU priority (nice 19 on Linux), and returns its
/// result. A snapshot reads and hashes the whole state (with 10,000,000 accounts, about half a
/// GB per node): at normal priority it took a loaded node's cores from consensus for tens of
/// seconds and the chain's rate fell (docs/scaling.md, "State size"); niced, it takes only
/// what the node's other work leaves. A thread of its own, because a nice value cannot be
/// lowered back without privileges, so a pooled thread would stay slow for other work.
///
/// Errors: the thread could not be started, or ended without a result (it panicked).
async fn run_low_priority<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cairn-snapshot".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start the snapshot thread: {e}"))?;
    rx.await
        .map_err(|_| "the snapshot thread ended without a result".to_string())
}

/// Sets the calling thread's nice value to 19 (Linux: `setpriority(PRIO_PROCESS, 0, …)`
/// applies to the calling thread only). A failure is ignored: the work runs anyway.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `setpriority` reads no memory of ours; with `PRIO_PROCESS` and `who` 0 it
    // changes the calling thread's nice value and nothing else.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Starts the snapshot maker (if `interval_blocks > 0`): snapshots of `chunk_bytes` chunks
/// into `dir`, keeping the newest `kept`.
pub fn spawn_maker(
    store: Arc<Store>,
    dir: PathBuf,
    interval_blocks: u64,
    kept: usize,
    chunk_bytes: usize,
) -> Option<SnapshotTrigger> {
    if interval_blocks == 0 {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<u64>(SNAPSHOT_QUEUE_MAX);
    tokio::spawn(async move {
        while let Some(height) = rx.recv().await {
            let (store, dir) = (store.clone(), dir.clone());
            let made = run_low_priority(move || {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let target = dir.join(height.to_string());
                if target.exists() {
                    return Ok(None);
                }
                let started = std::time::Instant::now();
                let m = store
                    .write_snapshot(height, &target, chunk_bytes)
                    .map_err(|e| e.to_string())?;
                snapshot::prune_snapshots(&dir, kept).map_err(|e| e.to_string())?;
                Ok::<_, String>(Some((m, started.elapsed().as_millis())))
            })
            .await;
            match made {
                Ok(Ok(Some((m, ms)))) => info!(
                    height,
                    chunks = m.chunks.len(),
                    bytes = m.chunk_bytes_total(),
                    ms,
                    id = %m.id(),
                    "state snapshot written"
                ),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warn!(height, error = %e, "state snapshot skipped"),
                Err(e) => warn!(height, error = %e, "state snapshot thread failed"),
            }
        }
    });
    Some(SnapshotTrigger {
        interval_blocks,
        heights: tx,
    })
}

/// Serves this node's snapshots from `dir` (see the module docs).
#[derive(Debug)]
pub struct SnapshotServe {
    dir: PathBuf,
    store: Arc<Store>,
    /// Manifest id → (height, manifest), the newest [`MANIFEST_CACHE_MAX`].
    cache: Mutex<HashMap<Hash, (u64, Arc<SnapshotManifest>)>>,
    /// Test builds with the `byzantine` feature only: serve every chunk with one byte
    /// flipped.
    corrupt_chunks: bool,
}

impl SnapshotServe {
    /// Serves the snapshots in `dir`; `corrupt_chunks` (Byzantine test nodes only) flips a
    /// byte of every chunk served.
    pub fn new(dir: PathBuf, store: Arc<Store>, corrupt_chunks: bool) -> SnapshotServe {
        SnapshotServe {
            dir,
            store,
            cache: Mutex::new(HashMap::new()),
            corrupt_chunks,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, (u64, Arc<SnapshotManifest>)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the manifests of the snapshots on disk (the newest
    /// [`MANIFEST_CACHE_MAX`]). Blocking.
    fn refresh(&self) -> Result<(), String> {
        let list = snapshot::list_snapshots(&self.dir).map_err(|e| e.to_string())?;
        let mut fresh = HashMap::new();
        for (height, path) in list.into_iter().take(MANIFEST_CACHE_MAX) {
            if let Some((id, m)) = self
                .cache()
                .iter()
                .find(|(_, (h, _))| *h == height)
                .map(|(id, (_, m))| (*id, m.clone()))
            {
                fresh.insert(id, (height, m));
                continue;
            }
            match snapshot::read_manifest(&path) {
                Ok(m) => {
                    fresh.insert(m.id(), (height, Arc::new(m)));
                }
                Err(e) => debug!(height, error = %e, "unreadable snapshot manifest"),
            }
        }
        *self.cache() = fresh;
        Ok(())
    }

    /// The offer of the snapshot at `height` (0: the newest), with the stored certificate
    /// of its block; `None` if not held (or its block has no stored certificate). Blocking.
    pub fn offer(&self, height: u64) -> Result<Option<SnapshotOffer>, String> {
        self.refresh()?;
        let found = {
            let cache = self.cache();
            cache
                .values()
                .filter(|(h, _)| height == 0 || *h == height)
                .max_by_key(|(h, _)| *h)
                .map(|(h, m)| (*h, m.clone()))
        };
        let Some((h, m)) = found else {
            return Ok(None);
        };
        let Some(certificate) = self.store.certificate(h).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        Ok(Some(SnapshotOffer {
            manifest: m.encode(),
            certificate,
        }))
    }

    /// Chunk `index` of the snapshot whose manifest id is `manifest`; `None` if not held.
    /// Blocking.
    pub fn chunk(&self, manifest: Hash, index: u32) -> Result<Option<Vec<u8>>, String> {
        let known = self.cache().get(&manifest).map(|(h, _)| *h);
        let height = match known {
            Some(h) => h,
            None => {
                self.refresh()?;
                match self.cache().get(&manifest) {
                    Some((h, _)) => *h,
                    None => return Ok(None),
                }
            }
        };
        let dir = self.dir.join(height.to_string());
        match snapshot::read_chunk(&dir, index) {
            Ok(mut bytes) => {
                if self.corrupt_chunks && !bytes.is_empty() {
                    let i = bytes.len() / 2;
                    bytes[i] ^= 0x5a;
                }
                Ok(Some(bytes))
            }
            // Pruned meanwhile, or an index past the manifest: not held.
            Err(e) => {
                debug!(height, index, error = %e, "snapshot chunk not served");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot's thread runs at nice 19; the caller's priority does not change.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn snapshots_are_made_on_a_thread_of_lowest_priority() {
        // SAFETY: `getpriority` reads no memory of ours.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let inside = run_low_priority(nice).await.unwrap();
        assert_eq!(inside, 19);
        assert_eq!(nice(), before, "the caller's thread keeps its priority");
        let failed = run_low_priority(|| -> u8 { panic!("snapshot failed") }).await;
        assert!(failed.is_err());
    }
}
