//! Key files in the node's home directory, written with mode 0600.
//!
//! - `node_key.json`: the libp2p identity, `{"peer_id": "12D3KooW…", "secret_key": "<hex 32-byte ed25519 seed>"}`.
//! - `validator_key.json`: the consensus signing key,
//!   `{"address": "cairn1…", "secret_key": "<hex 32-byte ed25519 seed>"}` (same format as the
//!   wallet's key file, so a validator key can be inspected with `cairn address`), or the
//!   wallet's encrypted format (`cairn-keystore` v1, docs/keystore.md), opened with the
//!   passphrase in `validator_key_password_file` (`--key-password-file`).

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_ledger::Address;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// Largest key file read, bytes.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

/// Key file errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Could not read or write the file.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// The file's content is not a key file.
    #[error("{path}: not a valid key file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// Refusing to overwrite.
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    /// An encrypted key file that could not be opened (no passphrase file, wrong
    /// passphrase, damaged file).
    #[error("{path}: encrypted key file: {reason}")]
    Locked { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeKeyFile {
    peer_id: String,
    secret_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorKeyFile {
    address: String,
    secret_key: String,
}

fn read_bounded(path: &Path) -> Result<String, KeyError> {
    let io = |e: std::io::Error| KeyError::Io {
        path: path.into(),
        reason: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > KEY_FILE_BYTES_MAX {
        return Err(KeyError::Invalid {
            path: path.into(),
            reason: format!("{len} bytes is too large"),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Writes `contents` to a new file with mode 0600; refuses to overwrite.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    let io = |e: std::io::Error| KeyError::Io {
        path: path.into(),
        reason: e.to_string(),
    };
    if path.exists() {
        return Err(KeyError::Exists { path: path.into() });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

fn seed_from_hex(path: &Path, hex_seed: &str) -> Result<[u8; 32], KeyError> {
    let bytes = hex::decode(hex_seed.trim()).map_err(|e| KeyError::Invalid {
        path: path.into(),
        reason: format!("secret_key: {e}"),
    })?;
    bytes.try_into().map_err(|_| KeyError::Invalid {
        path: path.into(),
        reason: "secret_key must be 32 bytes".into(),
    })
}

/// A fresh random ed25519 seed from the OS RNG.
pub fn random_seed() -> [u8; 32] {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// libp2p keypair from a 32-byte ed25519 seed.
pub fn libp2p_keypair(seed: [u8; 32]) -> libp2p::identity::Keypair {
    let mut seed = seed;
    let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes(&mut seed)
        .expect("32 bytes is a valid ed25519 seed");
    libp2p::identity::Keypair::from(libp2p::identity::ed25519::Keypair::from(secret))
}

/// Writes a node key file for `seed` (mode 0600); returns the peer id.
pub fn write_node_key(path: &Path, seed: [u8; 32]) -> Result<libp2p::PeerId, KeyError> {
    let peer_id = libp2p_keypair(seed).public().to_peer_id();
    let file = NodeKeyFile {
        peer_id: peer_id.to_string(),
        secret_key: hex::encode(seed),
    };
    write_secret_file(
        path,
        &serde_json::to_string_pretty(&file).expect("serializes"),
    )?;
    Ok(peer_id)
}

/// Reads a node key file.
pub fn read_node_key(path: &Path) -> Result<libp2p::identity::Keypair, KeyError> {
    let text = read_bounded(path)?;
    let file: NodeKeyFile = serde_json::from_str(&text).map_err(|e| KeyError::Invalid {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let kp = libp2p_keypair(seed_from_hex(path, &file.secret_key)?);
    if kp.public().to_peer_id().to_string() != file.peer_id {
        return Err(KeyError::Invalid {
            path: path.into(),
            reason: "peer_id does not match secret_key".into(),
        });
    }
    Ok(kp)
}

/// Writes a validator key file for `seed` (mode 0600); returns its address.
pub fn write_validator_key(path: &Path, seed: [u8; 32]) -> Result<Address, KeyError> {
    let key = SigningKey::from_bytes(&seed);
    let address = Address::from_public_key(&key.verifying_key());
    let file = ValidatorKeyFile {
        address: address.to_bech32(),
        secret_key: hex::encode(seed),
    };
    write_secret_file(
        path,
        &serde_json::to_string_pretty(&file).expect("serializes"),
    )?;
    Ok(address)
}

/// Reads a plaintext validator (or wallet) key file; an encrypted one is
/// [`KeyError::Locked`] (see [`read_validator_key_with`]).
pub fn read_validator_key(path: &Path) -> Result<SigningKey, KeyError> {
    read_validator_key_with(path, None)
}

/// Reads a validator key file, plaintext or encrypted (`cairn-keystore` v1, opened with the
/// first line of `password_file`).
///
/// # Errors
/// [`KeyError::Io`], [`KeyError::Invalid`]; [`KeyError::Locked`] for an encrypted file with
/// no `password_file`, a wrong passphrase or a damaged file.
pub fn read_validator_key_with(
    path: &Path,
    password_file: Option<&Path>,
) -> Result<SigningKey, KeyError> {
    let text = zeroize::Zeroizing::new(read_bounded(path)?);
    let locked = |reason: String| KeyError::Locked {
        path: path.into(),
        reason,
    };
    if let Ok(cairn_wallet::ParsedKeyFile::Encrypted(sealed)) =
        cairn_wallet::ParsedKeyFile::parse(&text)
    {
        let password_file = password_file.ok_or_else(|| {
            locked(
                "set validator_key_password_file in config.toml or pass --key-password-file".into(),
            )
        })?;
        let pass = cairn_wallet::passphrase::read_password_file(password_file)
            .map_err(|e| locked(e.to_string()))?;
        let key = sealed.open(&pass).map_err(|e| locked(e.to_string()))?;
        let seed = zeroize::Zeroizing::new(key.signing_key().to_bytes());
        return Ok(SigningKey::from_bytes(&seed));
    }
    let file: ValidatorKeyFile =
        serde_json::from_str(text.as_str()).map_err(|e| KeyError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        })?;
    let key = SigningKey::from_bytes(&seed_from_hex(path, &file.secret_key)?);
    if Address::from_public_key(&key.verifying_key()).to_bech32() != file.address {
        return Err(KeyError::Invalid {
            path: path.into(),
            reason: "address does not match secret_key".into(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node_key.json");
        let peer = write_node_key(&p, [7u8; 32]).unwrap();
        assert_eq!(read_node_key(&p).unwrap().public().to_peer_id(), peer);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(
            write_node_key(&p, [8u8; 32]),
            Err(KeyError::Exists { .. })
        ));
        let v = dir.path().join("validator_key.json");
        let addr = write_validator_key(&v, [9u8; 32]).unwrap();
        assert_eq!(
            Address::from_public_key(&read_validator_key(&v).unwrap().verifying_key()),
            addr
        );
    }

    #[test]
    fn encrypted_validator_key_needs_its_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("validator_key.json");
        let key = cairn_wallet::KeyFile::from_seed(&[5u8; 32]);
        let fast = cairn_wallet::KdfParams {
            log_n: 10,
            r: 8,
            p: 1,
        };
        key.write_encrypted(&v, "validator pass", fast, false)
            .unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "validator pass\n").unwrap();
        let loaded = read_validator_key_with(&v, Some(&pw)).unwrap();
        assert_eq!(loaded.to_bytes(), [5u8; 32]);
        let err = read_validator_key(&v).unwrap_err();
        assert!(
            matches!(&err, KeyError::Locked { .. })
                && err.to_string().contains("--key-password-file"),
            "{err}"
        );
        std::fs::write(&pw, "wrong\n").unwrap();
        let err = read_validator_key_with(&v, Some(&pw)).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let missing = dir.path().join("none");
        assert!(matches!(
            read_validator_key_with(&v, Some(&missing)),
            Err(KeyError::Locked { .. })
        ));
        // A plaintext key still loads, with or without a password file.
        let p = dir.path().join("plain.json");
        write_validator_key(&p, [6u8; 32]).unwrap();
        assert_eq!(
            read_validator_key_with(&p, Some(&pw)).unwrap().to_bytes(),
            [6u8; 32]
        );
    }

    #[test]
    fn tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("k.json");
        write_validator_key(&v, [1u8; 32]).unwrap();
        let text = std::fs::read_to_string(&v)
            .unwrap()
            .replace(&hex::encode([1u8; 32]), &hex::encode([2u8; 32]));
        std::fs::write(&v, text).unwrap();
        assert!(matches!(
            read_validator_key(&v),
            Err(KeyError::Invalid { .. })
        ));
    }
}
