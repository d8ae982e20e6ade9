//! # cairn-node
//!
//! The Cairn validator daemon: configuration, key files, libp2p networking (gossipsub for
//! transactions, consensus messages and blocks; request-response for block sync), the
//! mempool, the consensus driver that performs the effects of the sans-I/O consensus state
//! machine, block sync, the RPC backend and metrics.
//!
//! Invariants:
//! - One task (the driver) owns consensus, the pending chain and the mempool; everything else
//!   talks to it through bounded channels.
//! - A consensus vote is written to the RocksDB WAL (synced) before it is published.
//! - A transaction's signature is verified once per node: at RPC submission or gossip
//!   receipt, through the coalescing [`verifier`]; a block's transactions already in the
//!   mempool are not verified again. It is hashed once per node too: its id and signed hash
//!   travel with it as a `cairn_ledger::VerifiedTx` (mempool, proposal, compact block,
//!   commit), and both RPC and gossip admit through one path ([`ingress`]).
//! - The driver is the consensus host (persist, broadcast, timer, execute, commit); block
//!   bodies wait in the pure, bounded [`block_buffer`]; sync requests go out from the
//!   [`sync_client`] and are served by the [`sync_server`] task.
//! - Peer input is size-checked before decoding and never panics the node; a peer's fault is
//!   reported to gossipsub as `Reject`, a state-dependent miss as `Ignore`.

pub mod admin;
pub mod admission;
pub mod block_buffer;
#[cfg(all(feature = "byzantine", debug_assertions))]
pub mod byzantine;
pub mod chain;
pub mod compact;
pub mod config;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod hash_count_tests;
pub mod heap;
pub mod ingress;
pub mod keys;
pub mod mempool;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pruner;
pub mod refusals;
pub mod rpc_backend;
pub mod snapshots;
pub mod state_sync;
pub mod sync;
pub mod sync_client;
pub mod sync_schedule;
pub mod sync_server;
pub mod txgossip;
pub mod verifier;
