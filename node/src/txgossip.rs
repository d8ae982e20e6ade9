//! Transaction gossip batches: the payload of the `/cairn/{namespace}/tx/1` topic.
//!
//! Transactions travel in batches rather than one gossip message each: a gossipsub message
//! costs a message-id hash, framing and encryption, an application validation round trip
//! and per-message bookkeeping at every node, which at thousands of transactions per second
//! would add up. (Gossip messages are unsigned; the transactions carry their own
//! signatures.) A node collects the transactions it admits
//! from its own clients for at most [`TX_BATCH_LINGER_MS`] or [`TX_BATCH_TXS_MAX`]
//! transactions, whichever comes first, and publishes them as one message.
//!
//! Wire format (all integers little-endian):
//!
//! ```text
//! count: u32                      1..=TX_BATCH_TXS_MAX
//! count × { len: u16, tx: [u8; len] }   len <= TX_BYTES_MAX, tx = SignedTransaction::encode
//! ```
//!
//! The count and every length are checked before the bytes they announce are read; the
//! message must end exactly after the last transaction. Each transaction is decoded with
//! [`SignedTransaction::decode`], so the canonical-encoding rules are the ledger's.

use cairn_ledger::{SignedTransaction, TX_BYTES_MAX};

/// Most transactions in one batch.
pub const TX_BATCH_TXS_MAX: usize = 1024;

/// Largest encoded batch, bytes (count prefix plus the largest transactions).
pub const TX_BATCH_BYTES_MAX: usize = 4 + TX_BATCH_TXS_MAX * (2 + TX_BYTES_MAX);

/// How long an admitted local transaction may wait for its batch to fill, ms.
pub const TX_BATCH_LINGER_MS: u64 = 10;

/// Why a batch does not decode. Every variant is the sender's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxBatchError {
    /// The message is longer than [`TX_BATCH_BYTES_MAX`].
    #[error("transaction batch of {len} bytes exceeds {max}")]
    Oversize {
        /// Bytes received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The count is 0 or above [`TX_BATCH_TXS_MAX`].
    #[error("transaction batch count {count} is not in 1..={max}")]
    BadCount {
        /// Count announced.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// The message ends inside a length or a transaction, or continues after the last.
    #[error("transaction batch framing: {reason}")]
    Framing {
        /// What is wrong.
        reason: String,
    },
    /// A transaction does not decode.
    #[error("transaction {index} of the batch: {reason}")]
    Transaction {
        /// Position in the batch.
        index: usize,
        /// The ledger's decode error.
        reason: String,
    },
}

/// Encodes a batch. Panics (a caller bug) if `txs` is empty or longer than
/// [`TX_BATCH_TXS_MAX`].
pub fn encode_batch(txs: &[SignedTransaction]) -> Vec<u8> {
    assert!(
        !txs.is_empty() && txs.len() <= TX_BATCH_TXS_MAX,
        "batch of {} transactions",
        txs.len()
    );
    let mut out = Vec::with_capacity(4 + txs.len() * 160);
    out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for tx in txs {
        let bytes = tx.encode();
        assert!(bytes.len() <= TX_BYTES_MAX, "encoded transaction too large");
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes a batch (see the module docs for the checks, all made before reading what they
/// bound).
///
/// # Errors
/// [`TxBatchError`], always the sender's fault.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<SignedTransaction>, TxBatchError> {
    if bytes.len() > TX_BATCH_BYTES_MAX {
        return Err(TxBatchError::Oversize {
            len: bytes.len(),
            max: TX_BATCH_BYTES_MAX,
        });
    }
    let framing = |reason: &str| TxBatchError::Framing {
        reason: reason.into(),
    };
    let count_bytes: [u8; 4] = bytes
        .get(..4)
        .ok_or_else(|| framing("shorter than the count"))?
        .try_into()
        .expect("4 bytes");
    let count = u32::from_le_bytes(count_bytes) as usize;
    if count == 0 || count > TX_BATCH_TXS_MAX {
        return Err(TxBatchError::BadCount {
            count,
            max: TX_BATCH_TXS_MAX,
        });
    }
    let mut txs = Vec::with_capacity(count);
    let mut at = 4;
    for index in 0..count {
        let len_bytes: [u8; 2] = bytes
            .get(at..at + 2)
            .ok_or_else(|| framing("ends inside a length"))?
            .try_into()
            .expect("2 bytes");
        let len = u16::from_le_bytes(len_bytes) as usize;
        at += 2;
        if len > TX_BYTES_MAX {
            return Err(TxBatchError::Transaction {
                index,
                reason: format!("{len} bytes, more than {TX_BYTES_MAX}"),
            });
        }
        let tx_bytes = bytes
            .get(at..at + len)
            .ok_or_else(|| framing("ends inside a transaction"))?;
        at += len;
        txs.push(
            SignedTransaction::decode(tx_bytes).map_err(|e| TxBatchError::Transaction {
                index,
                reason: e.to_string(),
            })?,
        );
    }
    if at != bytes.len() {
        return Err(framing("bytes after the last transaction"));
    }
    Ok(txs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Address, TransactionBody};
    use ed25519_dalek::SigningKey;

    fn tx(nonce: u64) -> SignedTransaction {
        let key = SigningKey::from_bytes(&[3; 32]);
        TransactionBody {
            chain_id: "c".into(),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce,
            expiry_height: 100,
            action: cairn_ledger::Action::Transfer {
                recipient: Address([1; 32]),
                amount: 5,
            },
        }
        .sign(&key)
    }

    #[test]
    fn round_trip() {
        let txs: Vec<_> = (0..10).map(tx).collect();
        assert_eq!(decode_batch(&encode_batch(&txs)).unwrap(), txs);
        let max: Vec<_> = (0..TX_BATCH_TXS_MAX as u64).map(tx).collect();
        let bytes = encode_batch(&max);
        assert!(bytes.len() <= TX_BATCH_BYTES_MAX);
        assert_eq!(decode_batch(&bytes).unwrap().len(), TX_BATCH_TXS_MAX);
    }

    #[test]
    fn malformed_batches_are_refused() {
        let good = encode_batch(&[tx(0), tx(1)]);
        assert!(matches!(
            decode_batch(&[]),
            Err(TxBatchError::Framing { .. })
        ));
        assert!(matches!(
            decode_batch(&0u32.to_le_bytes()),
            Err(TxBatchError::BadCount { count: 0, .. })
        ));
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&(TX_BATCH_TXS_MAX as u32 + 1).to_le_bytes());
        assert!(matches!(
            decode_batch(&huge_count),
            Err(TxBatchError::BadCount { .. })
        ));
        // Count says 3, only 2 present.
        let mut short = good.clone();
        short[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            decode_batch(&short),
            Err(TxBatchError::Framing { .. })
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            decode_batch(&trailing),
            Err(TxBatchError::Framing { .. })
        ));
        // A length above TX_BYTES_MAX is refused before reading.
        let mut long = good.clone();
        long[4..6].copy_from_slice(&(TX_BYTES_MAX as u16 + 1).to_le_bytes());
        assert!(matches!(
            decode_batch(&long),
            Err(TxBatchError::Transaction { index: 0, .. })
        ));
        // A corrupted transaction body names its index.
        let mut bad_tx = good.clone();
        let second_len_at = 4 + 2 + tx(0).encode().len();
        bad_tx[second_len_at..second_len_at + 2].copy_from_slice(&3u16.to_le_bytes());
        bad_tx.truncate(second_len_at + 2 + 3);
        assert!(matches!(
            decode_batch(&bad_tx),
            Err(TxBatchError::Transaction { index: 1, .. })
        ));
        assert!(matches!(
            decode_batch(&vec![0; TX_BATCH_BYTES_MAX + 1]),
            Err(TxBatchError::Oversize { .. })
        ));
    }
}
