//! Fuzzing entry points for what a peer can send this node: compact blocks (block topic),
//! transaction gossip batches (transactions topic), sync requests and responses, the sync
//! and admission stream framing, and admission proofs.
//!
//! Not part of the API: called by the cargo-fuzz targets in `fuzz/` (one target per
//! function, same name) and by `tests/fuzz_corpus.rs`, which replays the committed corpus
//! `fuzz/corpus/<target>/` on stable. Each function takes arbitrary bytes, never panics on
//! any input, and `assert!`s the properties in its docs. Nothing here opens RocksDB or the
//! network. See `docs/fuzzing.md`.

use std::sync::OnceLock;

use cairn_genesis::ChainParams;
use cairn_ledger::{Hash, SignedTransaction, TX_BYTES_MAX, txs_root};
use futures::io::Cursor;
use libp2p::request_response::Codec as _;
use libp2p::{PeerId, StreamProtocol};

use crate::compact::{CompactBlock, CompactBlockError};
use crate::network::codec::SyncCodec;
use crate::network::{ADMISSION_REQUEST_BYTES, ADMISSION_RESPONSE_BYTES};
use crate::sync::{SYNC_REQUEST_BYTES_MAX, SyncCodecError, SyncRequest, SyncResponse};
use crate::txgossip::{
    TX_BATCH_BYTES_MAX, TX_BATCH_TXS_MAX, TxBatchError, decode_batch, encode_batch,
};

/// `block_bytes_max` given to [`CompactBlock::decode`]: the genesis default.
pub fn block_bytes_max() -> usize {
    ChainParams::default().block_bytes_max as usize
}

/// `block_txs_max` given to [`CompactBlock::decode`]: the genesis default.
pub fn block_txs_max() -> usize {
    ChainParams::default().block_txs_max as usize
}

/// Response bound given to [`SyncResponse::decode`] and the response frame: what the node
/// derives from the genesis default `block_bytes_max` (4 × (block + 64 KiB)).
pub fn sync_response_bytes_max() -> usize {
    (block_bytes_max() + 64 * 1024) * 4
}

/// `CompactBlock::decode` with the genesis default bounds: refuses input longer than the
/// bound it is given (checked by asking for one byte less) and more hashes than the bound
/// it is given (checked by asking for one fewer); a decoded compact block has at most
/// `block_txs_max` hashes, none twice, whose Merkle root is the header's `txs_root`, and
/// re-encodes to exactly the input (then decodes again to the same value).
pub fn compact_block(data: &[u8]) {
    if !data.is_empty() {
        assert!(
            matches!(
                CompactBlock::decode(data, data.len() - 1, block_txs_max()),
                Err(CompactBlockError::Oversize { .. })
            ),
            "compact block accepted past its byte bound"
        );
    }
    let Ok(compact) = CompactBlock::decode(data, block_bytes_max(), block_txs_max()) else {
        return;
    };
    let n = compact.tx_hashes.len();
    assert!(n <= block_txs_max());
    let distinct: std::collections::HashSet<&Hash> = compact.tx_hashes.iter().collect();
    assert_eq!(distinct.len(), n, "duplicate hash accepted");
    assert_eq!(txs_root(&compact.tx_hashes), compact.header.txs_root);
    let bytes = compact.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    assert_eq!(
        CompactBlock::decode(&bytes, bytes.len(), n).as_ref(),
        Ok(&compact)
    );
    if n > 0 {
        assert!(
            matches!(
                CompactBlock::decode(data, data.len(), n - 1),
                Err(CompactBlockError::TooManyTxs { .. })
            ),
            "compact block accepted past its hash-count bound"
        );
    }
}

/// `txgossip::decode_batch`: refuses input over [`TX_BATCH_BYTES_MAX`] as `Oversize`; a
/// decoded batch holds 1..=[`TX_BATCH_TXS_MAX`] transactions, each re-encoding within
/// [`TX_BYTES_MAX`], and `encode_batch` of it gives exactly the input (the framing and the
/// transaction encoding are canonical); a byte appended is refused.
pub fn tx_batch(data: &[u8]) {
    let decoded = decode_batch(data);
    if data.len() > TX_BATCH_BYTES_MAX {
        assert!(matches!(decoded, Err(TxBatchError::Oversize { .. })));
        return;
    }
    let Ok(txs) = decoded else { return };
    assert!((1..=TX_BATCH_TXS_MAX).contains(&txs.len()));
    for tx in &txs {
        assert!(tx.encode().len() <= TX_BYTES_MAX);
    }
    assert_eq!(
        encode_batch(&txs),
        data,
        "decode→encode is not the identity"
    );
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(decode_batch(&longer).is_err(), "trailing byte accepted");
}

/// `SyncRequest::decode`: refuses input over [`SYNC_REQUEST_BYTES_MAX`] as `Oversize`; a
/// decoded request re-encodes to exactly the input; a byte appended is refused.
pub fn sync_request(data: &[u8]) {
    let decoded = SyncRequest::decode(data);
    if data.len() > SYNC_REQUEST_BYTES_MAX {
        assert!(matches!(decoded, Err(SyncCodecError::Oversize { .. })));
        return;
    }
    let Ok(request) = decoded else { return };
    assert_eq!(request.encode(), data, "decode→encode is not the identity");
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(
        SyncRequest::decode(&longer).is_err(),
        "trailing byte accepted"
    );
}

/// `SyncResponse::decode` with the node's response bound: refuses input longer than the
/// bound it is given (checked by asking for one byte less); a decoded response re-encodes
/// to exactly the input; every transaction in it re-encodes within [`TX_BYTES_MAX`] or is
/// one `SignedTransaction::decode` refuses (recorded, not asserted: the bound of the
/// response is the response's); each certificate it carries goes through the consensus
/// crate's [`cairn_consensus::fuzzing::certificate`] checks, as the node decodes and
/// verifies them.
pub fn sync_response(data: &[u8]) {
    if !data.is_empty() {
        assert!(
            matches!(
                SyncResponse::decode(data, data.len() - 1),
                Err(SyncCodecError::Oversize { .. })
            ),
            "sync response accepted past its bound"
        );
    }
    let Ok(response) = SyncResponse::decode(data, sync_response_bytes_max()) else {
        return;
    };
    assert_eq!(response.encode(), data, "decode→encode is not the identity");
    let check_tx = |tx: &SignedTransaction| {
        let bytes = tx.encode();
        if bytes.len() <= TX_BYTES_MAX {
            assert_eq!(SignedTransaction::decode(&bytes).as_ref(), Ok(tx));
        }
    };
    match &response {
        SyncResponse::Blocks(blocks) => {
            for synced in blocks {
                synced.block.transactions.iter().for_each(check_tx);
                if let Some(cert) = &synced.certificate {
                    cairn_consensus::fuzzing::certificate(cert);
                }
                if let Some(bytes) = &synced.epoch_proof {
                    epoch_proof(&synced.block, bytes);
                }
            }
        }
        SyncResponse::Block(Some(block)) => block.transactions.iter().for_each(check_tx),
        SyncResponse::Transactions(txs) => txs.iter().for_each(check_tx),
        _ => {}
    }
}

/// A synced boundary block's `epoch_proof` (borsh `StoredEpochProof`): a decoded proof
/// re-encodes to exactly the input, and checking it against `block` and the fixed set
/// never panics; one that verifies lists its boundary last and one header per suffix block.
fn epoch_proof(block: &cairn_ledger::Block, bytes: &[u8]) {
    let Ok(stored) = borsh::from_slice::<crate::sync::StoredEpochProof>(bytes) else {
        return;
    };
    assert_eq!(
        borsh::to_vec(&stored).expect("borsh to Vec never fails"),
        bytes,
        "decode→encode is not the identity"
    );
    let hash = block.hash();
    let set = cairn_consensus::fuzzing::validator_set();
    if stored
        .verify(
            &block.header,
            hash,
            &cairn_consensus::fuzzing::NAMESPACE,
            stored.proof.epoch,
            set,
        )
        .is_ok()
    {
        assert_eq!(stored.proof.blocks.last().map(|d| d.0), Some(hash.0));
        assert_eq!(stored.suffix.len() + 1, stored.proof.blocks.len());
    }
}

/// Reads one frame with the sync protocol's codec (`network::codec`), as a responder reads
/// a request or a requester a response. The first byte picks the direction and bounds:
/// sync request ([`SYNC_REQUEST_BYTES_MAX`]), sync response (a small bound, 1 KiB, so the
/// fuzzer reaches it), or the admission protocol (request [`ADMISSION_REQUEST_BYTES`],
/// response [`ADMISSION_RESPONSE_BYTES`]); the rest is the stream.
///
/// A frame read is at most the bound, is exactly the bytes its big-endian length prefix
/// announces, and no byte past it is consumed; a frame announcing more than the bound is
/// refused having consumed only the 4-byte prefix; writing the frame read gives back the
/// bytes consumed.
pub fn sync_frame(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let (codec, is_request, max) = match selector % 4 {
        0 => (
            SyncCodec {
                request_max: SYNC_REQUEST_BYTES_MAX,
                response_max: sync_response_bytes_max(),
            },
            true,
            SYNC_REQUEST_BYTES_MAX,
        ),
        1 => (
            SyncCodec {
                request_max: SYNC_REQUEST_BYTES_MAX,
                response_max: 1024,
            },
            false,
            1024,
        ),
        2 => (
            SyncCodec {
                request_max: ADMISSION_REQUEST_BYTES,
                response_max: ADMISSION_RESPONSE_BYTES,
            },
            true,
            ADMISSION_REQUEST_BYTES,
        ),
        _ => (
            SyncCodec {
                request_max: ADMISSION_REQUEST_BYTES,
                response_max: ADMISSION_RESPONSE_BYTES,
            },
            false,
            ADMISSION_RESPONSE_BYTES,
        ),
    };
    let protocol = StreamProtocol::new("/cairn/fuzz/sync/2");
    let mut reader = Cursor::new(stream);
    let mut c = codec.clone();
    let read = futures::executor::block_on(async {
        if is_request {
            c.read_request(&protocol, &mut reader).await
        } else {
            c.read_response(&protocol, &mut reader).await
        }
    });
    let consumed = reader.position() as usize;
    let announced = stream
        .get(..4)
        .map(|p| u32::from_be_bytes(p.try_into().expect("4 bytes")) as usize);
    match read {
        Ok(frame) => {
            assert!(
                frame.len() <= max,
                "frame of {} bytes past {max}",
                frame.len()
            );
            assert_eq!(announced, Some(frame.len()));
            assert_eq!(consumed, 4 + frame.len(), "read past the frame");
            assert_eq!(&stream[4..4 + frame.len()], frame.as_slice());
            let mut out = Cursor::new(Vec::new());
            let mut c = codec;
            futures::executor::block_on(async {
                if is_request {
                    c.write_request(&protocol, &mut out, frame).await
                } else {
                    c.write_response(&protocol, &mut out, frame).await
                }
            })
            .expect("a frame read is writable");
            assert_eq!(out.get_ref().as_slice(), &stream[..consumed]);
        }
        Err(_) => {
            if announced.is_some_and(|len| len > max) {
                assert_eq!(consumed, 4, "payload read past an oversize prefix");
            }
        }
    }
}

/// The fixed peer id [`admission_proof`] checks proofs for.
fn fuzz_peer() -> &'static PeerId {
    static PEER: OnceLock<PeerId> = OnceLock::new();
    PEER.get_or_init(|| {
        libp2p::identity::Keypair::ed25519_from_bytes([9u8; 32])
            .expect("32 bytes make a key")
            .public()
            .to_peer_id()
    })
}

/// An admission proof as the network worker reads it: the first byte gives the difficulty
/// (0..=8 bits, so proofs are findable), the rest is the request frame's payload, which is a
/// proof only if it is exactly [`ADMISSION_REQUEST_BYTES`] (the nonce, `u64` LE).
///
/// At 0 bits every proof is valid; otherwise a proof is valid iff its hash has at least
/// that many leading zero bits, and a proof valid at `d` bits is valid at every `d' < d`;
/// a proof is bound to the genesis hash (the same nonce is checked against another genesis
/// without panicking).
pub fn admission_proof(data: &[u8]) {
    let Some((&bits, request)) = data.split_first() else {
        return;
    };
    let bits = bits % 9;
    let genesis = [3u8; 32];
    let Ok(nonce) = <[u8; ADMISSION_REQUEST_BYTES]>::try_from(request).map(u64::from_le_bytes)
    else {
        return;
    };
    let peer = fuzz_peer();
    let valid = crate::admission::verify(&genesis, peer, nonce, bits);
    let zeros =
        crate::admission::leading_zero_bits(&crate::admission::pow_hash(&genesis, peer, nonce));
    assert_eq!(valid, bits == 0 || zeros >= u32::from(bits));
    if valid {
        for lower in 0..bits {
            assert!(crate::admission::verify(&genesis, peer, nonce, lower));
        }
    }
    let _ = crate::admission::verify(&[4u8; 32], peer, nonce, bits);
}

/// Valid encodings to seed the corpus of `target` (a function of this module). Compact
/// blocks and sync responses are built from the types (headers from
/// [`cairn_ledger::fuzzing::sample_header`], leader votes from
/// [`cairn_consensus::fuzzing`]'s keys), so re-running regenerates them after a format
/// change: `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/<target>/seed-*` when run
/// with `CAIRN_FUZZ_WRITE_SEEDS=1`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let txs = |n: usize| -> Vec<SignedTransaction> {
        // The ledger's transaction seeds, decoded back (they are valid by construction).
        let encoded = cairn_ledger::fuzzing::seeds("signed_transaction");
        encoded
            .iter()
            .cycle()
            .take(n)
            .enumerate()
            .map(|(i, b)| {
                let mut tx = SignedTransaction::decode(b).expect("seed transaction decodes");
                tx.body.nonce += i as u64; // distinct hashes (signature no longer matches)
                tx
            })
            .collect()
    };
    match target {
        "compact_block" => [0usize, 1, 3]
            .into_iter()
            .map(|n| compact_seed(&txs(n)))
            .collect(),
        "tx_batch" => [1usize, 2, 5]
            .into_iter()
            .map(|n| encode_batch(&txs(n)))
            .collect(),
        "sync_request" => vec![
            SyncRequest::Status.encode(),
            SyncRequest::Blocks {
                from_height: 5,
                count: 64,
            }
            .encode(),
            SyncRequest::BlockByHash(Hash([5; 32])).encode(),
            SyncRequest::BlockTransactions {
                block: Hash([6; 32]),
                indices: vec![0, 2, 7],
            }
            .encode(),
        ],
        "sync_response" => {
            let block = cairn_ledger::fuzzing::sample_block(txs(2));
            let cert = cairn_consensus::fuzzing::seeds("certificate")
                .into_iter()
                .next_back();
            vec![
                SyncResponse::Status {
                    height: 7,
                    hash: block.hash(),
                    lowest_retained_height: 3,
                }
                .encode(),
                SyncResponse::Pruned {
                    lowest_retained_height: 1025,
                }
                .encode(),
                SyncResponse::Blocks(vec![crate::sync::SyncedBlock {
                    block: block.clone(),
                    certificate: cert,
                    epoch_proof: None,
                }])
                .encode(),
                SyncResponse::Block(Some(block)).encode(),
                SyncResponse::Block(None).encode(),
                SyncResponse::Error("not found".into()).encode(),
                SyncResponse::Transactions(txs(3)).encode(),
            ]
        }
        "sync_frame" => {
            let frame = |selector: u8, payload: &[u8]| {
                let mut out = vec![selector];
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(payload);
                out
            };
            vec![
                frame(0, &SyncRequest::Status.encode()),
                frame(1, &SyncResponse::Error("x".into()).encode()),
                frame(2, &7u64.to_le_bytes()),
                frame(3, &[0]),
            ]
        }
        "admission_proof" => (0u64..4)
            .map(|n| {
                let mut out = vec![(n % 3) as u8];
                out.extend_from_slice(&n.to_le_bytes());
                out
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The compact block of a block carrying `txs`, with the leader's Notarize vote for it.
///
/// Built by decoding a borsh stream of the parts this module knows in wire order (header,
/// hashes, the vote), followed by zeros: whatever fields `CompactBlock` has, it decodes,
/// so this keeps compiling and producing a valid encoding while the format changes.
fn compact_seed(txs: &[SignedTransaction]) -> Vec<u8> {
    use borsh::BorshDeserialize;
    use cairn_consensus::{Digest, Proposal, Vote, VoteKind};
    let block = cairn_ledger::fuzzing::sample_block(txs.to_vec());
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    let view = block.header.view;
    let leader = cairn_consensus::fuzzing::validator_set().leader(view);
    let vote = Vote::sign(
        &cairn_consensus::fuzzing::NAMESPACE,
        VoteKind::Notarize(Proposal {
            view,
            parent_view: view - 1,
            parent: Digest(block.header.parent_hash.0),
            payload: Digest(block.hash().0),
        }),
        leader,
        &cairn_consensus::fuzzing::validator_keys()[usize::from(leader)],
    );
    // The epoch, then the header (`CompactBlock`'s field order).
    let mut stream = 0u64.to_le_bytes().to_vec();
    stream.extend(borsh::to_vec(&block.header).expect("borsh to Vec never fails"));
    stream.extend(borsh::to_vec(&hashes).expect("borsh to Vec never fails"));
    stream.extend(borsh::to_vec(&vote).expect("borsh to Vec never fails"));
    stream.extend([0u8; 1024]);
    let compact = CompactBlock::deserialize(&mut stream.as_slice()).expect("stream decodes");
    compact.encode()
}
