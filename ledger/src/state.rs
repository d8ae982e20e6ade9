//! Account state, state readers, and the lattice (homomorphic) state hash.
//!
//! # State
//!
//! The state is a map from [`Address`] to [`Account`] (`balance`, `nonce`, both u64). An
//! account equal to [`Account::default()`] (balance 0, nonce 0) is *absent*: reading an
//! unknown address yields the default, storage deletes such entries, and the state hash
//! ignores them. Only a recipient credited 0 can stay absent after being touched: a sender
//! always ends with `nonce ≥ 1`.
//!
//! # State hash: LtHash
//!
//! The state root in every block header is computed with a lattice-based, homomorphic
//! multiset hash, *LtHash*: Bellare & Micciancio, "A New Paradigm for Collision-Free
//! Hashing: Incrementality at Reduced Cost" (EUROCRYPT 1997), as parameterised by Lewi,
//! Kim, Maykov & Weis, "Securing Update Propagation with Homomorphic Hashing" (IACR ePrint
//! 2019/227) and adopted by Solana for its accounts hash (SIMD-0215).
//!
//! **Construction.** Each present account contributes one *element*, a vector of 1024
//! lanes of u16:
//!
//! ```text
//! element(address, account) = lanes_le( blake3_xof(derive_key("cairn state account v1"),
//!                                                  address[32] ‖ borsh(account)[16]) [0..2048] )
//! ```
//!
//! where `borsh(account)` is `balance` u64 LE ‖ `nonce` u64 LE, and lane *i* is bytes
//! `2i, 2i+1` little-endian. The state hash is the lane-wise sum, modulo 2^16, of the
//! elements of all present accounts ([`LtHash`]); the empty state is the zero vector.
//! The 32-byte state root is `blake3 derive_key("cairn state root v1", lanes as 2048 LE
//! bytes)` ([`LtHash::root`]).
//!
//! The state also holds per-account permission entries and one governance record
//! ([`crate::governance`]); each contributes an element of the same shape, from its own
//! derive-key context so no element of one kind equals one of another:
//! `XOF(derive_key("cairn state permissions v1"), address ‖ permissions byte)` for a
//! non-empty entry ([`LtHash::of_permissions`]) and `XOF(derive_key("cairn state governance
//! v1"), borsh(record))` ([`LtHash::of_governance`]). The security argument below covers
//! them unchanged: every element comes from the XOF, and each (kind, key) appears at most
//! once.
//!
//! **Incrementality.** Addition is commutative and invertible, so changing one account is
//! `hash − element(address, old) + element(address, new)` (skipping absent sides): executing
//! a block costs work proportional to the accounts it touches, never to the state size
//! ([`LtHash::update`]). The result does not depend on the order of updates, and equals the
//! hash recomputed from scratch ([`LtHash::of_accounts`]); tests check both.
//!
//! **Security argument.** Modelling the XOF as a random oracle, finding two different
//! sets of (address, account) pairs with the same sum is finding a short non-zero integer
//! combination of random vectors in `Z_{2^16}^{1024}` that sums to zero — an instance of
//! the Short Integer Solution (SIS) problem. Lewi et al. estimate ≥ 200 bits of security for
//! exactly these parameters (n = 1024, q = 2^16), against the generalised-birthday
//! (Wagner) attacks that break the much smaller AdHash-style parameters. Because the
//! element covers the address *and* the account value, and each address appears at most
//! once (an update always removes the old element before adding the new one), the hashed
//! multiset is a set; multiplicities never approach 2^16, where `2^16 · e = 0` would make
//! the sum forget elements. The final blake3 compression makes the 32-byte root as
//! collision resistant as the lattice hash (up to blake3's own 128-bit bound).
//!
//! **Limits.** An LtHash commits to the whole state but is not a vector commitment: there
//! are no membership or non-membership proofs, so a light client cannot check one account
//! against a root without the whole state (a Merkle tree would be needed for that). It
//! hides nothing (anyone with the state recomputes it). It is not a cryptographic
//! accumulator against an adversary who may add *arbitrary* vectors: the security argument
//! needs every element to come from the XOF, which [`LtHash::of_account`] guarantees. The
//! 2048-byte [`LtHash`] must be stored next to the state (the store keeps it in `meta`):
//! the 32-byte root alone cannot be updated incrementally.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::governance::{Governance, Permissions};
use crate::{Address, Hash, LedgerError, context};

/// One account: balance and the next expected nonce.
///
/// Borsh encoding: `balance` u64 LE ‖ `nonce` u64 LE (16 bytes). JSON: `{"balance": u64,
/// "nonce": u64}`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Account {
    /// Spendable balance, in base units.
    pub balance: u64,
    /// Nonce the account's next transaction must carry; incremented by each executed
    /// transaction it sends. Starts at 0.
    pub nonce: u64,
}

impl Account {
    /// True for the default (balance 0, nonce 0) account, which counts as absent.
    pub fn is_empty(&self) -> bool {
        *self == Account::default()
    }
}

/// Read access to account state.
///
/// Implemented by the RocksDB [`crate::Store`] (finalized state), [`Layered`] (finalized
/// state plus not-yet-finalized block diffs), [`crate::BlockBuilder`]'s parent, and plain
/// maps (`BTreeMap`/`HashMap<Address, Account>`, handy in tests and genesis).
pub trait StateReader {
    /// The account at `address`; an absent account reads as [`Account::default()`].
    ///
    /// Errors: only storage failures ([`LedgerError::Storage`], [`LedgerError::Corrupt`]),
    /// which are fatal.
    fn account(&self, address: &Address) -> Result<Account, LedgerError>;

    /// The permissions `address` holds ([`Permissions::default`], none, if it has no
    /// entry). The default implementation is for states without governance (plain maps
    /// in tests): nobody holds a permission.
    ///
    /// Errors: only fatal storage failures.
    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        let _ = address;
        Ok(Permissions::default())
    }

    /// The governance record; `None` for a state without one (plain maps in tests): open
    /// accounts and no members. Every chain started from a genesis file has one.
    ///
    /// Errors: only fatal storage failures.
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        Ok(None)
    }
}

impl<T: StateReader + ?Sized> StateReader for &T {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        (**self).account(address)
    }
    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        (**self).permissions(address)
    }
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        (**self).governance()
    }
}

impl<T: StateReader + ?Sized> StateReader for Box<T> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        (**self).account(address)
    }
    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        (**self).permissions(address)
    }
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        (**self).governance()
    }
}

impl<T: StateReader + ?Sized> StateReader for Arc<T> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        (**self).account(address)
    }
    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        (**self).permissions(address)
    }
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        (**self).governance()
    }
}

impl StateReader for BTreeMap<Address, Account> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        Ok(self.get(address).copied().unwrap_or_default())
    }
}

impl<S: std::hash::BuildHasher> StateReader for HashMap<Address, Account, S> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        Ok(self.get(address).copied().unwrap_or_default())
    }
}

/// Number of u16 lanes in an [`LtHash`].
pub const LTHASH_LANES: usize = 1024;
/// Encoded size of an [`LtHash`] in bytes (lanes little-endian).
pub const LTHASH_BYTES: usize = 2 * LTHASH_LANES;

/// Lattice (homomorphic) state hash: LtHash (Bellare–Micciancio 1997 "A new paradigm for
/// collision-free hashing"; Lewi et al. 2019 "Securing Update Propagation with Homomorphic
/// Hashing"; the same construction Solana adopted in SIMD-0215): 1024 u16 lanes, wrapping
/// add/sub. See the [module docs](self) for the construction, security and limits.
///
/// Borsh encoding: the 1024 lanes as 2048 bytes, each lane u16 little-endian, no length
/// prefix. `Debug` prints only a prefix of [`Self::root`].
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(pub [u16; LTHASH_LANES]);

impl LtHash {
    /// The hash of the empty state (all lanes 0).
    pub fn zero() -> Self {
        LtHash([0u16; LTHASH_LANES])
    }

    /// The element of one account: blake3 derive-key `"cairn state account v1"` in XOF mode
    /// over `address (32 bytes) ‖ borsh(account) (16 bytes)`, first 2048 output bytes read
    /// as 1024 u16 LE lanes.
    ///
    /// This is defined for every account, but an absent ([`Account::is_empty`]) account
    /// never contributes: use [`Self::update`] / [`Self::of_accounts`], which skip them.
    pub fn of_account(address: &Address, account: &Account) -> LtHash {
        let mut hasher = blake3::Hasher::new_derive_key(context::STATE_ACCOUNT);
        hasher.update(&address.0);
        hasher.update(&account.balance.to_le_bytes());
        hasher.update(&account.nonce.to_le_bytes());
        let mut bytes = [0u8; LTHASH_BYTES];
        hasher.finalize_xof().fill(&mut bytes);
        Self::from_array(&bytes)
    }

    /// The element of an account's permissions entry: blake3 derive-key
    /// `"cairn state permissions v1"` in XOF mode over `address (32 bytes) ‖ permissions
    /// (1 byte)`, read as for [`Self::of_account`]. An empty entry never contributes.
    pub fn of_permissions(address: &Address, permissions: Permissions) -> LtHash {
        let mut hasher = blake3::Hasher::new_derive_key(context::STATE_PERMISSIONS);
        hasher.update(&address.0);
        hasher.update(&[permissions.0]);
        Self::xof_element(hasher)
    }

    /// The element of the governance record: blake3 derive-key `"cairn state governance
    /// v1"` in XOF mode over `borsh(governance)`, read as for [`Self::of_account`].
    pub fn of_governance(governance: &Governance) -> LtHash {
        let mut hasher = blake3::Hasher::new_derive_key(context::STATE_GOVERNANCE);
        BorshSerialize::serialize(governance, &mut hasher)
            .expect("writing to a hasher never fails");
        Self::xof_element(hasher)
    }

    fn xof_element(hasher: blake3::Hasher) -> LtHash {
        let mut bytes = [0u8; LTHASH_BYTES];
        hasher.finalize_xof().fill(&mut bytes);
        Self::from_array(&bytes)
    }

    /// Replaces `address`'s permissions contribution (empty entries contribute nothing).
    pub fn update_permissions(&mut self, address: &Address, old: Permissions, new: Permissions) {
        if old == new {
            return;
        }
        if !old.is_empty() {
            self.sub(&LtHash::of_permissions(address, old));
        }
        if !new.is_empty() {
            self.add(&LtHash::of_permissions(address, new));
        }
    }

    /// Replaces the governance record's contribution (`None`: no record).
    pub fn update_governance(&mut self, old: Option<&Governance>, new: Option<&Governance>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.sub(&LtHash::of_governance(old));
        }
        if let Some(new) = new {
            self.add(&LtHash::of_governance(new));
        }
    }

    /// The state hash of a whole state, from scratch (absent accounts skipped). Each
    /// address must appear at most once. O(number of accounts).
    pub fn of_accounts<'a, I>(accounts: I) -> LtHash
    where
        I: IntoIterator<Item = (&'a Address, &'a Account)>,
    {
        let mut sum = LtHash::zero();
        for (address, account) in accounts {
            if !account.is_empty() {
                sum.add(&LtHash::of_account(address, account));
            }
        }
        sum
    }

    /// Lane-wise wrapping addition (adds `other`'s multiset to this one).
    pub fn add(&mut self, other: &LtHash) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Lane-wise wrapping subtraction (removes `other`'s multiset from this one).
    pub fn sub(&mut self, other: &LtHash) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// Replaces account `address`'s contribution: subtracts the element of `old` (if
    /// present) and adds the element of `new` (if present). No-op if `old == new`.
    pub fn update(&mut self, address: &Address, old: &Account, new: &Account) {
        if old == new {
            return;
        }
        if !old.is_empty() {
            self.sub(&LtHash::of_account(address, old));
        }
        if !new.is_empty() {
            self.add(&LtHash::of_account(address, new));
        }
    }

    /// The 32-byte state root: `Hash::derive("cairn state root v1", lanes as 2048 LE bytes)`.
    pub fn root(&self) -> Hash {
        Hash::derive(context::STATE_ROOT, &[&self.to_bytes()])
    }

    /// The 2048-byte encoding (lanes little-endian); same as borsh.
    pub fn to_bytes(&self) -> [u8; LTHASH_BYTES] {
        let mut out = [0u8; LTHASH_BYTES];
        for (chunk, lane) in out.chunks_exact_mut(2).zip(self.0.iter()) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// Decodes the 2048-byte encoding.
    ///
    /// Errors: [`LedgerError::BadLength`] unless `bytes` is exactly 2048 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<LtHash, LedgerError> {
        let arr: &[u8; LTHASH_BYTES] = bytes.try_into().map_err(|_| LedgerError::BadLength {
            what: "lthash",
            expected: LTHASH_BYTES,
            got: bytes.len(),
        })?;
        Ok(Self::from_array(arr))
    }

    fn from_array(bytes: &[u8; LTHASH_BYTES]) -> LtHash {
        let mut lanes = [0u16; LTHASH_LANES];
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([chunk[0], chunk[1]]);
        }
        LtHash(lanes)
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash::zero()
    }
}

impl fmt::Debug for LtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.root().to_hex();
        write!(f, "LtHash(root {}…)", &root[..16])
    }
}

impl BorshSerialize for LtHash {
    fn serialize<W: Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(&self.to_bytes())
    }
}

impl BorshDeserialize for LtHash {
    fn deserialize_reader<R: Read>(reader: &mut R) -> std::io::Result<Self> {
        let mut bytes = [0u8; LTHASH_BYTES];
        reader.read_exact(&mut bytes)?;
        Ok(LtHash::from_array(&bytes))
    }
}

/// The effect of executing one block on top of its parent state.
///
/// `accounts` holds the final value of every account the block changed (an
/// [`Account::default()`] value means the account is now absent); accounts the block did
/// not change are not listed. Likewise `permissions`, and `governance` if the block
/// changed the governance record. `lthash` is the full state hash after the block, so
/// [`Self::state_root`] is what the block header's `state_root` must equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDiff {
    /// Changed accounts with their values after the block.
    pub accounts: BTreeMap<Address, Account>,
    /// Changed permission entries with their values after the block (an empty value: the
    /// entry is removed).
    pub permissions: BTreeMap<Address, Permissions>,
    /// The governance record after the block, if the block changed it.
    pub governance: Option<Arc<Governance>>,
    /// True if the block changed the validator set ([`Governance::validators`]): the
    /// block decides an epoch change.
    pub validators_changed: bool,
    /// State hash of the whole state after the block.
    pub lthash: LtHash,
}

impl StateDiff {
    /// A diff that changes nothing on top of a state whose hash is `lthash` (an empty block).
    pub fn empty(lthash: LtHash) -> StateDiff {
        StateDiff {
            accounts: BTreeMap::new(),
            permissions: BTreeMap::new(),
            governance: None,
            validators_changed: false,
            lthash,
        }
    }

    /// The state root after the block (`self.lthash.root()`).
    pub fn state_root(&self) -> Hash {
        self.lthash.root()
    }
}

/// Reads through a stack of diffs (oldest first) to a base reader: used for blocks that are
/// proposed/notarized but not yet finalized.
///
/// A lookup checks the diffs newest to oldest and falls back to `base`; cost is
/// O(diffs × log(accounts per diff)) plus at most one base read. The diffs must form a chain
/// on top of `base` (the caller's responsibility).
pub struct Layered<'a> {
    /// The state the oldest diff was executed on (usually the finalized [`crate::Store`]).
    pub base: &'a dyn StateReader,
    /// Diffs of consecutive blocks, oldest first.
    pub diffs: Vec<&'a StateDiff>,
}

impl<'a> Layered<'a> {
    /// A reader of `base` with `diffs` (oldest first) applied.
    pub fn new(base: &'a dyn StateReader, diffs: Vec<&'a StateDiff>) -> Self {
        Layered { base, diffs }
    }

    /// The state hash at the top of the stack: the newest diff's, or `base_lthash` when
    /// there are no diffs.
    pub fn lthash(&self, base_lthash: &LtHash) -> LtHash {
        self.diffs
            .last()
            .map_or_else(|| base_lthash.clone(), |d| d.lthash.clone())
    }
}

impl StateReader for Layered<'_> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        for diff in self.diffs.iter().rev() {
            if let Some(account) = diff.accounts.get(address) {
                return Ok(*account);
            }
        }
        self.base.account(address)
    }

    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        for diff in self.diffs.iter().rev() {
            if let Some(p) = diff.permissions.get(address) {
                return Ok(*p);
            }
        }
        self.base.permissions(address)
    }

    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        for diff in self.diffs.iter().rev() {
            if let Some(g) = &diff.governance {
                return Ok(Some(g.clone()));
            }
        }
        self.base.governance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        Address([b; 32])
    }

    #[test]
    fn zero_is_identity_and_sub_inverts_add() {
        let e = LtHash::of_account(
            &addr(1),
            &Account {
                balance: 5,
                nonce: 1,
            },
        );
        let mut h = LtHash::zero();
        h.add(&e);
        assert_eq!(h, e);
        assert_ne!(h, LtHash::zero());
        h.sub(&e);
        assert_eq!(h, LtHash::zero());
    }

    #[test]
    fn element_depends_on_address_balance_and_nonce() {
        let base = LtHash::of_account(
            &addr(1),
            &Account {
                balance: 5,
                nonce: 1,
            },
        );
        assert_ne!(
            base,
            LtHash::of_account(
                &addr(2),
                &Account {
                    balance: 5,
                    nonce: 1
                }
            )
        );
        assert_ne!(
            base,
            LtHash::of_account(
                &addr(1),
                &Account {
                    balance: 6,
                    nonce: 1
                }
            )
        );
        assert_ne!(
            base,
            LtHash::of_account(
                &addr(1),
                &Account {
                    balance: 5,
                    nonce: 2
                }
            )
        );
        // balance and nonce are not interchangeable
        assert_ne!(
            LtHash::of_account(
                &addr(1),
                &Account {
                    balance: 1,
                    nonce: 5
                }
            ),
            LtHash::of_account(
                &addr(1),
                &Account {
                    balance: 5,
                    nonce: 1
                }
            )
        );
    }

    #[test]
    fn element_matches_spec_bytes() {
        let a = addr(7);
        let acc = Account {
            balance: 0x0102_0304,
            nonce: 9,
        };
        let mut input = a.0.to_vec();
        input.extend(borsh::to_vec(&acc).unwrap());
        assert_eq!(input.len(), 48);
        let mut out = [0u8; 2048];
        let mut h = blake3::Hasher::new_derive_key("cairn state account v1");
        h.update(&input);
        h.finalize_xof().fill(&mut out);
        let e = LtHash::of_account(&a, &acc);
        assert_eq!(e.to_bytes(), out);
        assert_eq!(e.0[0], u16::from_le_bytes([out[0], out[1]]));
        assert_eq!(e.0[1023], u16::from_le_bytes([out[2046], out[2047]]));
        assert_eq!(
            e.root(),
            Hash(blake3::derive_key("cairn state root v1", &out))
        );
    }

    #[test]
    fn update_skips_absent_and_matches_from_scratch() {
        let mut state: BTreeMap<Address, Account> = BTreeMap::new();
        state.insert(
            addr(1),
            Account {
                balance: 10,
                nonce: 0,
            },
        );
        state.insert(
            addr(2),
            Account {
                balance: 3,
                nonce: 4,
            },
        );
        let mut h = LtHash::of_accounts(state.iter());
        // absent → present
        h.update(
            &addr(3),
            &Account::default(),
            &Account {
                balance: 1,
                nonce: 0,
            },
        );
        state.insert(
            addr(3),
            Account {
                balance: 1,
                nonce: 0,
            },
        );
        // present → changed
        h.update(
            &addr(1),
            &Account {
                balance: 10,
                nonce: 0,
            },
            &Account {
                balance: 7,
                nonce: 1,
            },
        );
        state.insert(
            addr(1),
            Account {
                balance: 7,
                nonce: 1,
            },
        );
        // present → absent
        h.update(
            &addr(2),
            &Account {
                balance: 3,
                nonce: 4,
            },
            &Account::default(),
        );
        state.remove(&addr(2));
        assert_eq!(h, LtHash::of_accounts(state.iter()));
        // an explicit default entry contributes nothing
        state.insert(addr(9), Account::default());
        assert_eq!(h, LtHash::of_accounts(state.iter()));
    }

    #[test]
    fn borsh_is_2048_le_bytes_and_roundtrips() {
        let mut h = LtHash::zero();
        h.0[0] = 0x0201;
        h.0[1023] = 0xfffe;
        let bytes = borsh::to_vec(&h).unwrap();
        assert_eq!(bytes.len(), 2048);
        assert_eq!(&bytes[..2], &[0x01, 0x02]);
        assert_eq!(&bytes[2046..], &[0xfe, 0xff]);
        assert_eq!(borsh::from_slice::<LtHash>(&bytes).unwrap(), h);
        assert_eq!(LtHash::from_bytes(&bytes).unwrap(), h);
        assert!(borsh::from_slice::<LtHash>(&bytes[..2047]).is_err());
        assert!(matches!(
            LtHash::from_bytes(&bytes[..10]),
            Err(LedgerError::BadLength { got: 10, .. })
        ));
        assert!(format!("{h:?}").len() < 40);
    }

    #[test]
    fn layered_reads_newest_first() {
        let mut base: BTreeMap<Address, Account> = BTreeMap::new();
        base.insert(
            addr(1),
            Account {
                balance: 1,
                nonce: 0,
            },
        );
        base.insert(
            addr(2),
            Account {
                balance: 2,
                nonce: 0,
            },
        );
        let mut d1 = StateDiff::empty(LtHash::zero());
        d1.accounts.insert(
            addr(1),
            Account {
                balance: 11,
                nonce: 1,
            },
        );
        d1.accounts.insert(
            addr(3),
            Account {
                balance: 33,
                nonce: 0,
            },
        );
        let mut d2 = StateDiff::empty(LtHash::zero());
        d2.accounts.insert(
            addr(1),
            Account {
                balance: 111,
                nonce: 2,
            },
        );
        d2.accounts.insert(addr(3), Account::default());
        let layered = Layered::new(&base, vec![&d1, &d2]);
        assert_eq!(
            layered.account(&addr(1)).unwrap(),
            Account {
                balance: 111,
                nonce: 2
            }
        );
        assert_eq!(
            layered.account(&addr(2)).unwrap(),
            Account {
                balance: 2,
                nonce: 0
            }
        );
        assert_eq!(layered.account(&addr(3)).unwrap(), Account::default());
        assert_eq!(layered.account(&addr(4)).unwrap(), Account::default());
        let only_d1 = Layered::new(&base, vec![&d1]);
        assert_eq!(
            only_d1.account(&addr(3)).unwrap(),
            Account {
                balance: 33,
                nonce: 0
            }
        );
    }
}
