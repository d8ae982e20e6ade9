//! Account addresses: an account is named by its ed25519 public key.
//!
//! Text form: bech32m (BIP-350) with human-readable part `cairn`, e.g. `cairn1…`. The
//! checksum catches any single typo and most transpositions. Addresses are written in
//! lowercase; all-uppercase is read too (`CAIRN1…`, as BIP 173 allows, e.g. for QR codes),
//! mixed case is an error. Hex is not an address text form.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::str::FromStr;

use crate::LedgerError;

/// Human-readable part of the bech32m text form.
pub const ADDRESS_HRP: &str = "cairn";

/// An account address: the 32 bytes of the account's ed25519 public key (RFC 8032 encoding).
///
/// Any 32 bytes form an address (a recipient need not exist yet); only a sender must be a
/// valid, non-weak curve point, which signature verification checks.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The address of an ed25519 public key.
    pub fn from_public_key(key: &ed25519_dalek::VerifyingKey) -> Address {
        Address(key.to_bytes())
    }

    /// The public key this address names.
    ///
    /// Errors: [`LedgerError::BadPublicKey`] if the bytes are not a valid point.
    pub fn public_key(&self) -> Result<ed25519_dalek::VerifyingKey, LedgerError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| LedgerError::BadPublicKey { address: *self })
    }

    /// bech32m text form with prefix `cairn`.
    pub fn to_bech32(&self) -> String {
        let hrp = bech32::Hrp::parse(ADDRESS_HRP).expect("static hrp is valid");
        bech32::encode::<bech32::Bech32m>(hrp, &self.0).expect("32 bytes always fit in bech32m")
    }

    /// Parses the bech32m text form, all lowercase or all uppercase (BIP 173). Errors name
    /// the problem: bad checksum or encoding, mixed case, wrong prefix, wrong length.
    pub fn from_bech32(s: &str) -> Result<Address, LedgerError> {
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<bech32::Bech32m>(s)
            .map_err(|e| LedgerError::BadAddress {
                input: truncate(s),
                reason: e.to_string(),
            })?;
        // The prefix of an all-uppercase address is `CAIRN`.
        if checked.hrp().to_lowercase() != ADDRESS_HRP {
            return Err(LedgerError::BadAddress {
                input: truncate(s),
                reason: format!("prefix is `{}`, expected `{ADDRESS_HRP}`", checked.hrp()),
            });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| LedgerError::BadAddress {
                input: truncate(s),
                reason: format!("payload is {} bytes, expected 32", v.len()),
            })?;
        Ok(Address(arr))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_bech32())
    }
}

impl FromStr for Address {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::from_bech32(s.trim())
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_bech32())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Address::from_bech32(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 15: BIP 173 allows an all-uppercase bech32 string (the checksum is over the
    /// lowercase form); mixed case stays an error, and so does another prefix in either case.
    #[test]
    fn uppercase_is_read_mixed_case_is_not() {
        let a = Address([0x5a; 32]);
        let lower = a.to_bech32();
        assert!(lower.starts_with("cairn1"));
        let upper = lower.to_ascii_uppercase();
        assert_eq!(Address::from_bech32(&upper).unwrap(), a);
        assert_eq!(upper.parse::<Address>().unwrap(), a);
        assert_eq!(
            serde_json::from_value::<Address>(serde_json::json!(upper)).unwrap(),
            a
        );
        // Mixed: the prefix, or one character of the data part.
        let mut mixed = upper.clone();
        mixed.replace_range(..5, "cairn");
        assert!(Address::from_bech32(&mixed).is_err(), "{mixed}");
        let i = lower.rfind(|c: char| c.is_ascii_lowercase()).unwrap();
        assert!(i > 6, "a letter in the data part");
        let mut mixed = lower.clone();
        mixed.replace_range(i..=i, &lower[i..=i].to_ascii_uppercase());
        assert!(Address::from_bech32(&mixed).is_err(), "{mixed}");
        // Another prefix, upper or lower.
        let hrp = bech32::Hrp::parse("other").unwrap();
        let other = bech32::encode::<bech32::Bech32m>(hrp, &a.0).unwrap();
        assert!(Address::from_bech32(&other).is_err());
        assert!(Address::from_bech32(&other.to_ascii_uppercase()).is_err());
        // Hex is not an address.
        assert!(Address::from_bech32(&hex::encode(a.0)).is_err());
    }
}
