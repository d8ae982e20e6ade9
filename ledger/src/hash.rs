//! 32-byte blake3 digests and the domain-separation contexts used across the ledger.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

/// A 32-byte blake3 digest: block hashes, transaction hashes, Merkle and state roots.
///
/// Text form is 64 lowercase hex characters, no prefix.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash (used for "no parent" and empty placeholders; never a real digest).
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// blake3 in derive-key mode: `blake3::derive_key(context, data)` semantics, streaming
    /// over `parts` so callers need not concatenate.
    pub fn derive(context: &str, parts: &[&[u8]]) -> Hash {
        let mut h = blake3::Hasher::new_derive_key(context);
        for p in parts {
            h.update(p);
        }
        Hash(*h.finalize().as_bytes())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        String::from_utf8(self.hex_buf().to_vec()).expect("hex digits are ASCII")
    }

    /// The lowercase hex digits in a stack buffer (hashes are hex-encoded for every
    /// transaction an RPC answer names, so this avoids `hex::encode`'s per-character
    /// iterator).
    fn hex_buf(&self) -> [u8; 64] {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 bytes hold 32 bytes of hex");
        buf
    }

    /// Parses 64 hex characters (an optional `0x` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<Hash, crate::LedgerError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.len() == 64 {
            let mut arr = [0u8; 32];
            return match hex::decode_to_slice(s, &mut arr) {
                Ok(()) => Ok(Hash(arr)),
                Err(e) => Err(crate::LedgerError::BadHex {
                    reason: e.to_string(),
                }),
            };
        }
        let bytes = hex::decode(s).map_err(|e| crate::LedgerError::BadHex {
            reason: e.to_string(),
        })?;
        let arr: [u8; 32] =
            bytes
                .try_into()
                .map_err(|v: Vec<u8>| crate::LedgerError::BadLength {
                    what: "hash",
                    expected: 32,
                    got: v.len(),
                })?;
        Ok(Hash(arr))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buf = self.hex_buf();
        s.serialize_str(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// blake3 derive-key contexts. Changing any of these is a hard fork.
pub mod context {
    /// Signing digest (and hash) of a transaction body. Version 2: bodies carry an action
    /// (transfer or governance).
    pub const TRANSACTION: &str = "cairn transaction v2";
    /// Hash of a block header. Version 2 added `signed_txs_root`.
    pub const BLOCK_HEADER: &str = "cairn block header v2";
    /// Hash of a whole signed transaction (body and signature): the leaf input of the
    /// signed transactions root, so the header commits to every byte of the body.
    pub const SIGNED_TRANSACTION: &str = "cairn signed transaction v2";
    /// Merkle leaf (a transaction hash or signed-transaction hash) in either root.
    pub const MERKLE_LEAF: &str = "cairn merkle leaf v1";
    /// Merkle inner node in either transactions root.
    pub const MERKLE_NODE: &str = "cairn merkle node v1";
    /// Per-account element of the lattice state hash (XOF output).
    pub const STATE_ACCOUNT: &str = "cairn state account v1";
    /// Element of an account's permissions entry in the lattice state hash (XOF output).
    pub const STATE_PERMISSIONS: &str = "cairn state permissions v1";
    /// Element of the governance record in the lattice state hash (XOF output).
    pub const STATE_GOVERNANCE: &str = "cairn state governance v1";
    /// Final compression of the lattice state hash into the 32-byte state root.
    pub const STATE_ROOT: &str = "cairn state root v1";
    /// What a validator's current consensus key signs to authorise a key rotation
    /// ([`crate::governance::rotation_digest`]).
    pub const KEY_ROTATION: &str = "cairn key rotation v1";
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The stack-buffer hex paths agree with the `hex` crate's plain functions.
        #[test]
        fn hex_forms_match_the_hex_crate(bytes: [u8; 32]) {
            let h = Hash(bytes);
            let expected = hex::encode(bytes);
            proptest::prop_assert_eq!(h.to_hex(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{expected}\""));
            proptest::prop_assert_eq!(Hash::from_hex(&expected).unwrap(), h);
            proptest::prop_assert_eq!(Hash::from_hex(&format!("0x{}", expected.to_uppercase())).unwrap(), h);
        }
    }

    #[test]
    fn bad_hex_is_refused_with_its_reason() {
        let good = "ab".repeat(32);
        assert!(matches!(
            Hash::from_hex(&format!("{}zz", &good[..62])),
            Err(crate::LedgerError::BadHex { .. })
        ));
        assert!(matches!(
            Hash::from_hex(&good[..63]),
            Err(crate::LedgerError::BadHex { .. })
        ));
        assert!(matches!(
            Hash::from_hex(&good[..62]),
            Err(crate::LedgerError::BadLength { got: 31, .. })
        ));
    }
}
