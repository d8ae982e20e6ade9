//! Where the `cairn` binary gets key-file passphrases, and the scrypt cost of new files.
//!
//! Order: `--password-file FILE` (its first line), then the environment variable
//! (`CAIRN_PASSWORD`; `CAIRN_NEW_PASSWORD` for the new passphrase of `key change-password`,
//! whose file flag is `--new-password-file`), then a prompt on the terminal (`/dev/tty`,
//! echo off; asked twice for a new passphrase). With no terminal and neither of the others
//! the command fails and says so.

use std::path::{Path, PathBuf};

use cairn_ledger::Address;
use zeroize::Zeroizing;

use crate::keyfile::KeyFileError;
use crate::keystore::{DEFAULT_LOG_N, KdfParams};

/// Environment variable holding the passphrase itself.
pub const PASSWORD_ENV: &str = "CAIRN_PASSWORD";
/// Environment variable holding the new passphrase of `cairn key change-password`.
pub const NEW_PASSWORD_ENV: &str = "CAIRN_NEW_PASSWORD";
/// Test-only knob: the scrypt `log_n` of NEW key files (10..=20; default 17). Lower values
/// make files fast to open, and to brute-force: tests only. A warning is printed when set.
pub const SCRYPT_LOG_N_ENV: &str = "CAIRN_KEYSTORE_SCRYPT_LOG_N";
/// Smallest `log_n` the test knob accepts.
pub const TEST_LOG_N_MIN: u8 = 10;
/// Largest passphrase file read, bytes (checked before reading).
pub const PASSWORD_FILE_BYTES_MAX: u64 = 4096;

/// One way to obtain a passphrase.
#[derive(Debug, Clone)]
pub struct PassphraseSource {
    /// A file whose first line is the passphrase.
    pub file: Option<PathBuf>,
    /// The environment variable to consult if there is no file.
    pub env: &'static str,
}

impl PassphraseSource {
    /// The source of the passphrase of existing (and, for `key new`/`import`, new) files.
    pub fn current(password_file: Option<&Path>) -> PassphraseSource {
        PassphraseSource {
            file: password_file.map(Path::to_path_buf),
            env: PASSWORD_ENV,
        }
    }

    /// The source of the new passphrase of `key change-password`.
    pub fn new_for_change(new_password_file: Option<&Path>) -> PassphraseSource {
        PassphraseSource {
            file: new_password_file.map(Path::to_path_buf),
            env: NEW_PASSWORD_ENV,
        }
    }

    /// The passphrase from the file or the environment, if either is set.
    fn non_interactive(&self) -> Result<Option<Zeroizing<String>>, KeyFileError> {
        if let Some(path) = &self.file {
            return read_password_file(path).map(Some);
        }
        match std::env::var(self.env) {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyFileError::Passphrase {
                reason: format!("{} is not valid UTF-8", self.env),
            }),
        }
    }

    /// The passphrase of an existing encrypted file (`address` and `path` name it in the
    /// prompt). Asked once.
    ///
    /// # Errors
    /// [`KeyFileError::Passphrase`]: unreadable file, no terminal.
    pub fn existing(
        &self,
        path: &Path,
        address: &Address,
    ) -> Result<Zeroizing<String>, KeyFileError> {
        if let Some(p) = self.non_interactive()? {
            return Ok(p);
        }
        prompt(
            &format!("Passphrase for {} ({address}): ", path.display()),
            self,
        )
    }

    /// A new passphrase: non-empty; at the prompt, asked twice and the two must match.
    ///
    /// # Errors
    /// [`KeyFileError::Passphrase`]: empty, mismatch, unreadable file, no terminal.
    pub fn new_passphrase(&self, path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
        let pass = match self.non_interactive()? {
            Some(p) => p,
            None => {
                let first = prompt(&format!("New passphrase for {}: ", path.display()), self)?;
                let second = prompt("Repeat the passphrase: ", self)?;
                if *first != *second {
                    return Err(KeyFileError::Passphrase {
                        reason: "the two entries differ; nothing written".into(),
                    });
                }
                first
            }
        };
        if pass.is_empty() {
            return Err(KeyFileError::Passphrase {
                reason: "empty passphrase refused (use --insecure-plaintext for an unencrypted key file)".into(),
            });
        }
        Ok(pass)
    }
}

fn prompt(text: &str, source: &PassphraseSource) -> Result<Zeroizing<String>, KeyFileError> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| KeyFileError::Passphrase {
            reason: format!(
                "cannot ask on the terminal ({e}); give {} or set {}",
                if source.env == NEW_PASSWORD_ENV {
                    "--new-password-file FILE"
                } else {
                    "--password-file FILE"
                },
                source.env
            ),
        })
}

/// The first line of `path` (without its `\n` or `\r\n`), at most
/// [`PASSWORD_FILE_BYTES_MAX`] bytes.
///
/// # Errors
/// [`KeyFileError::Passphrase`] if the file cannot be read, is too large, or is not UTF-8.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let fail = |reason: String| KeyFileError::Passphrase {
        reason: format!("password file {}: {reason}", path.display()),
    };
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > PASSWORD_FILE_BYTES_MAX {
        return Err(fail(format!(
            "{len} bytes, more than {PASSWORD_FILE_BYTES_MAX}"
        )));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| fail(e.to_string()))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| fail("not UTF-8".into()))?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Zeroizing::new(line.to_string()))
}

/// scrypt parameters for new key files: the defaults (`log_n` 17, r 8, p 1), or `log_n` from
/// [`SCRYPT_LOG_N_ENV`] (tests only), with a warning on stderr.
///
/// # Errors
/// [`KeyFileError::Invalid`] if the variable is set but not an integer in 10..=20.
pub fn kdf_params_for_new_files() -> Result<KdfParams, KeyFileError> {
    let mut params = KdfParams::default();
    if let Some(v) = std::env::var_os(SCRYPT_LOG_N_ENV) {
        let log_n = v
            .to_str()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|n| (TEST_LOG_N_MIN..=crate::keystore::LOG_N_MAX).contains(n))
            .ok_or_else(|| KeyFileError::Invalid {
                path: None,
                reason: format!(
                    "{SCRYPT_LOG_N_ENV} must be an integer in {TEST_LOG_N_MIN}..={}",
                    crate::keystore::LOG_N_MAX
                ),
            })?;
        if log_n < DEFAULT_LOG_N {
            eprintln!(
                "warning: {SCRYPT_LOG_N_ENV}={log_n}: weak key-file encryption (default {DEFAULT_LOG_N}); for tests only"
            );
        }
        params.log_n = log_n;
    }
    Ok(params)
}
