//! Key files: one ed25519 key as JSON, in one of two formats:
//!
//! - **encrypted** (the default for new files): a `cairn-keystore` version-1 file, the seed
//!   sealed under a passphrase (see [`crate::keystore`] and `docs/keystore.md`);
//! - **plaintext** (`--insecure-plaintext`, testnet demo accounts, `cairn-node` key files):
//!   `{"address": "cairn1…", "secret_key": "<hex seed>"}`.
//!
//! [`KeyFile::load_with`] reads both; [`KeyFile::load`] reads plaintext files only (and says
//! so for an encrypted one).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_ledger::Address;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::keystore::{self, KdfParams, Sealed};

/// Largest key file read, bytes (checked before reading; real files are under 1 KiB).
pub const KEYFILE_BYTES_MAX: u64 = 64 * 1024;

/// Why a key file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written (or its directory created).
    #[error("cannot write key file {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("key file {path} already exists; refusing to overwrite it (use --force)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The text is not a valid key file (the reason never quotes the secret).
    #[error("invalid key file{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than [`KEYFILE_BYTES_MAX`] (not read).
    #[error("key file {path} is {len} bytes, more than {max}; not a key file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, bytes.
        len: u64,
        /// [`KEYFILE_BYTES_MAX`].
        max: u64,
    },
    /// An encrypted key file whose `version` this wallet does not know.
    #[error("key file{} has keystore version {version}; this cairn reads version {} only (a newer cairn wrote it?)", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(), keystore::KEYSTORE_VERSION)]
    UnsupportedVersion {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The version found.
        version: u64,
    },
    /// An encrypted key file naming a KDF or cipher this version does not use.
    #[error("key file{}: unsupported {what} `{name}`", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Unsupported {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// `kdf` or `cipher`.
        what: &'static str,
        /// The name found.
        name: String,
    },
    /// Authenticated decryption failed: the passphrase is wrong, or the file was altered
    /// (the two cannot be told apart).
    #[error("cannot decrypt key file{}: wrong passphrase, or the file is corrupted", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Decrypt {
        /// The file, when read from one.
        path: Option<PathBuf>,
    },
    /// The file is encrypted and the caller gave no way to get its passphrase.
    #[error("key file {path} is encrypted; a passphrase is needed")]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// No usable passphrase (none given, the two entries differ, empty, unreadable file …).
    #[error("passphrase: {reason}")]
    Passphrase {
        /// What is wrong.
        reason: String,
    },
}

impl KeyFileError {
    /// The same error, naming `path` if it named no file.
    pub fn at(self, path: &Path) -> KeyFileError {
        let p = Some(path.to_path_buf());
        match self {
            KeyFileError::Invalid { path: None, reason } => {
                KeyFileError::Invalid { path: p, reason }
            }
            KeyFileError::UnsupportedVersion {
                path: None,
                version,
            } => KeyFileError::UnsupportedVersion { path: p, version },
            KeyFileError::Unsupported {
                path: None,
                what,
                name,
            } => KeyFileError::Unsupported {
                path: p,
                what,
                name,
            },
            KeyFileError::Decrypt { path: None } => KeyFileError::Decrypt { path: p },
            other => other,
        }
    }
}

/// Which of the two formats a key file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileFormat {
    /// `{"address", "secret_key"}`: the seed in clear.
    Plaintext,
    /// `cairn-keystore` version 1, with its scrypt parameters.
    Encrypted(KdfParams),
}

impl KeyFileFormat {
    /// `plaintext` or `encrypted`.
    pub fn label(&self) -> &'static str {
        match self {
            KeyFileFormat::Plaintext => "plaintext",
            KeyFileFormat::Encrypted(_) => "encrypted",
        }
    }
}

/// A parsed key file: a plaintext key, or a sealed one still to be opened.
pub enum ParsedKeyFile {
    /// A plaintext file's key.
    Plaintext(KeyFile),
    /// An encrypted file, not yet decrypted.
    Encrypted(Sealed),
}

impl ParsedKeyFile {
    /// Parses either format. For an encrypted file the address is the one stated in clear
    /// (authenticated only when decrypted).
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] (truncated, not JSON, missing or bad fields),
    /// [`KeyFileError::UnsupportedVersion`], [`KeyFileError::Unsupported`].
    pub fn parse(text: &str) -> Result<ParsedKeyFile, KeyFileError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("not JSON (truncated or damaged?): {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        let encrypted = obj.contains_key("kind")
            || obj.contains_key("version")
            || obj.contains_key("ciphertext");
        if !encrypted {
            return KeyFile::from_json(text).map(ParsedKeyFile::Plaintext);
        }
        match obj.get("kind").and_then(|k| k.as_str()) {
            Some(keystore::KEYSTORE_KIND) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "kind is `{other}`, expected `{}`",
                    keystore::KEYSTORE_KIND
                )));
            }
            None => return Err(invalid("encrypted key file without a `kind` string")),
        }
        let version = obj
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| invalid("encrypted key file without a numeric `version`"))?;
        if version != keystore::KEYSTORE_VERSION {
            return Err(KeyFileError::UnsupportedVersion {
                path: None,
                version,
            });
        }
        Sealed::from_value(value).map(ParsedKeyFile::Encrypted)
    }

    /// The address (for an encrypted file, as stated in clear).
    pub fn address(&self) -> Address {
        match self {
            ParsedKeyFile::Plaintext(k) => k.address(),
            ParsedKeyFile::Encrypted(s) => s.address,
        }
    }

    /// The file's format.
    pub fn format(&self) -> KeyFileFormat {
        match self {
            ParsedKeyFile::Plaintext(_) => KeyFileFormat::Plaintext,
            ParsedKeyFile::Encrypted(s) => KeyFileFormat::Encrypted(s.kdf),
        }
    }

    /// Reads and parses a key file (size checked before reading).
    ///
    /// # Errors
    /// [`KeyFileError::Read`], [`KeyFileError::TooLarge`], and [`Self::parse`]'s errors
    /// naming the path.
    pub fn read(path: &Path) -> Result<ParsedKeyFile, KeyFileError> {
        let text = read_bounded(path)?;
        ParsedKeyFile::parse(&text).map_err(|e| e.at(path))
    }
}

/// Reads a file of at most [`KEYFILE_BYTES_MAX`] bytes into a zeroizing string.
fn read_bounded(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    use std::io::Read;
    let read_err = |source| KeyFileError::Read {
        path: path.into(),
        source,
    };
    let file = fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > KEYFILE_BYTES_MAX {
        return Err(KeyFileError::TooLarge {
            path: path.into(),
            len,
            max: KEYFILE_BYTES_MAX,
        });
    }
    let mut text = Zeroizing::new(String::with_capacity(len as usize + 1));
    file.take(KEYFILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > KEYFILE_BYTES_MAX {
        return Err(KeyFileError::TooLarge {
            path: path.into(),
            len: text.len() as u64,
            max: KEYFILE_BYTES_MAX,
        });
    }
    Ok(text)
}

fn invalid(reason: impl Into<String>) -> KeyFileError {
    KeyFileError::Invalid {
        path: None,
        reason: reason.into(),
    }
}

/// An ed25519 signing key loaded from or destined for a key file.
///
/// The secret lives in an `ed25519_dalek::SigningKey`, which zeroizes itself on drop; the
/// text forms of the secret (hex, JSON) are held in `Zeroizing` buffers.
pub struct KeyFile {
    key: SigningKey,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile({}, secret redacted)", self.address())
    }
}

/// The JSON fields of a key file.
#[derive(serde::Deserialize)]
struct RawKeyFile {
    address: String,
    secret_key: String,
}

impl KeyFile {
    /// A new key from the operating system's RNG.
    pub fn generate() -> KeyFile {
        KeyFile {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key with this 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> KeyFile {
        KeyFile {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The account address (the public key).
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.key.verifying_key())
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The key file text: pretty JSON with `address` and `secret_key` (64 hex characters).
    pub fn to_json(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        let secret_hex = Zeroizing::new(hex::encode(*seed));
        let address = self.address().to_bech32();
        // Sized up front so the buffer holding the secret never reallocates (no stray copy).
        let mut out = Zeroizing::new(String::with_capacity(64 + address.len() + secret_hex.len()));
        out.push_str("{\n  \"address\": \"");
        out.push_str(&address);
        out.push_str("\",\n  \"secret_key\": \"");
        out.push_str(&secret_hex);
        out.push_str("\"\n}\n");
        out
    }

    /// Parses key file text. The `address` field must be the secret key's address (a
    /// mismatch means a damaged or hand-edited file).
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] naming what is wrong.
    pub fn from_json(text: &str) -> Result<KeyFile, KeyFileError> {
        let raw: RawKeyFile = serde_json::from_str(text).map_err(|e| {
            // serde_json's message never quotes the secret, but keep it short anyway.
            invalid(format!(
                "not a key file (expected {{\"address\", \"secret_key\"}}): {e}"
            ))
        })?;
        let secret_hex = Zeroizing::new(raw.secret_key);
        let hex_str = secret_hex.strip_prefix("0x").unwrap_or(&secret_hex);
        if hex_str.len() != 64 {
            return Err(invalid(format!(
                "secret_key must be 64 hex characters (a 32-byte seed), got {}",
                hex_str.len()
            )));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_str, seed.as_mut_slice())
            .map_err(|e| invalid(format!("secret_key is not hex: {e}")))?;
        let key = KeyFile::from_seed(&seed);
        let stated: Address = raw
            .address
            .parse()
            .map_err(|e| invalid(format!("address field: {e}")))?;
        if stated != key.address() {
            return Err(invalid(format!(
                "address field {stated} does not match the secret key (whose address is {})",
                key.address()
            )));
        }
        Ok(key)
    }

    /// Reads and parses a plaintext key file.
    ///
    /// # Errors
    /// [`KeyFileError::Encrypted`] for an encrypted file (use [`KeyFile::load_with`]);
    /// otherwise as [`ParsedKeyFile::read`].
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        match ParsedKeyFile::read(path)? {
            ParsedKeyFile::Plaintext(k) => Ok(k),
            ParsedKeyFile::Encrypted(_) => Err(KeyFileError::Encrypted { path: path.into() }),
        }
    }

    /// Reads a key file in either format. For an encrypted one, `passphrase(address)` is
    /// called once (with the address stated in the file) for its passphrase; it is not
    /// called for a plaintext file.
    ///
    /// # Errors
    /// As [`ParsedKeyFile::read`]; the callback's error; [`KeyFileError::Decrypt`] (wrong
    /// passphrase or altered file), all naming the path.
    pub fn load_with(
        path: &Path,
        passphrase: impl FnOnce(&Address) -> Result<Zeroizing<String>, KeyFileError>,
    ) -> Result<KeyFile, KeyFileError> {
        match ParsedKeyFile::read(path)? {
            ParsedKeyFile::Plaintext(k) => Ok(k),
            ParsedKeyFile::Encrypted(sealed) => {
                let pass = passphrase(&sealed.address)?;
                sealed.open(&pass).map_err(|e| e.at(path))
            }
        }
    }

    /// The encrypted key file text for this key under `passphrase` (fresh random salt and
    /// nonce).
    ///
    /// # Errors
    /// [`KeyFileError::Invalid`] if `kdf` is out of bounds.
    pub fn to_encrypted_json(
        &self,
        passphrase: &str,
        kdf: KdfParams,
    ) -> Result<String, KeyFileError> {
        keystore::seal(self, passphrase, kdf)
    }

    /// Writes the key as an encrypted key file, like [`KeyFile::write`] (mode 0600, no
    /// overwrite unless asked, atomic replace).
    ///
    /// # Errors
    /// As [`KeyFile::write`] and [`KeyFile::to_encrypted_json`].
    pub fn write_encrypted(
        &self,
        path: &Path,
        passphrase: &str,
        kdf: KdfParams,
        overwrite: bool,
    ) -> Result<(), KeyFileError> {
        let text = self.to_encrypted_json(passphrase, kdf)?;
        write_private(path, text.as_bytes(), overwrite)
    }

    /// Writes the key file with mode 0600 (created that way, never widened afterwards),
    /// creating missing parent directories with mode 0700.
    ///
    /// Without `overwrite` an existing file is an error and is left untouched (the file is
    /// opened with `create_new`, so there is no check-then-write race). With `overwrite`
    /// the key goes to a new temporary file beside `path` that is then renamed over it, so
    /// the result has mode 0600 even if the old file had wider permissions.
    ///
    /// # Errors
    /// [`KeyFileError::Exists`] (without `overwrite`), [`KeyFileError::Write`].
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<(), KeyFileError> {
        write_private(path, self.to_json().as_bytes(), overwrite)
    }
}

/// Writes `bytes` to `path` the way [`KeyFile::write`] writes a key file (mode 0600, parent
/// directories 0700, `create_new` without `overwrite`, temporary file and rename with it).
///
/// # Errors
/// [`KeyFileError::Exists`] (without `overwrite`), [`KeyFileError::Write`].
pub fn write_private(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|source| KeyFileError::Write {
            path: dir.into(),
            source,
        })?;
    }
    if !overwrite {
        return write_new_private(path, bytes).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists { path: path.into() }
            } else {
                KeyFileError::Write {
                    path: path.into(),
                    source: e,
                }
            }
        });
    }
    let tmp = temp_path_beside(path);
    let result = write_new_private(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(KeyFileError::Write {
            path: path.into(),
            source,
        });
    }
    Ok(())
}

fn temp_path_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    path.with_file_name(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A warning if the key file can be read by group or others (Unix), like ssh's check.
pub fn permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "key file {} has mode {mode:o}; other users may read it (chmod 600 {})",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_home(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("~") else {
        return path.to_path_buf();
    };
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip() {
        let k = KeyFile::generate();
        let back = KeyFile::from_json(&k.to_json()).unwrap();
        assert_eq!(back.address(), k.address());
        assert_eq!(back.signing_key().to_bytes(), k.signing_key().to_bytes());
        let v: serde_json::Value = serde_json::from_str(&k.to_json()).unwrap();
        assert_eq!(v["address"], k.address().to_bech32());
        assert_eq!(v["secret_key"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn rejects_mismatched_or_bad_files() {
        let a = KeyFile::from_seed(&[1; 32]);
        let b = KeyFile::from_seed(&[2; 32]);
        let forged = format!(
            "{{\"address\": \"{}\", \"secret_key\": \"{}\"}}",
            b.address(),
            hex::encode(a.signing_key().to_bytes())
        );
        assert!(
            KeyFile::from_json(&forged)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let short = format!(
            "{{\"address\": \"{}\", \"secret_key\": \"abcd\"}}",
            a.address()
        );
        assert!(
            KeyFile::from_json(&short)
                .unwrap_err()
                .to_string()
                .contains("64 hex")
        );
        let nothex = format!(
            "{{\"address\": \"{}\", \"secret_key\": \"{}\"}}",
            a.address(),
            "zz".repeat(32)
        );
        assert!(
            KeyFile::from_json(&nothex)
                .unwrap_err()
                .to_string()
                .contains("not hex")
        );
        assert!(KeyFile::from_json("[]").is_err());
    }

    #[test]
    fn debug_redacts_secret() {
        let k = KeyFile::from_seed(&[9; 32]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&hex::encode([9u8; 32])));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn expand_home_only_leading_tilde() {
        assert_eq!(expand_home(Path::new("/a/~/b")), PathBuf::from("/a/~/b"));
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                expand_home(Path::new("~/.cairn/key.json")),
                PathBuf::from(home).join(".cairn/key.json")
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn write_mode_0600_refuse_overwrite_and_force() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/key.json");
        let k1 = KeyFile::generate();
        k1.write(&path, false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(KeyFile::load(&path).unwrap().address(), k1.address());
        assert!(permission_warning(&path).is_none());

        let k2 = KeyFile::generate();
        let err = k2.write(&path, false).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(
            KeyFile::load(&path).unwrap().address(),
            k1.address(),
            "file untouched"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(permission_warning(&path).unwrap().contains("644"));
        k2.write(&path, true).unwrap();
        assert_eq!(KeyFile::load(&path).unwrap().address(), k2.address());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.json")]);
    }
}
