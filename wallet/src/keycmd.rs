//! `cairn keygen` and `cairn key new|import|export|list|change-password`, and unlocking the
//! --keyfile for the commands that sign.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{Cli, KeyCommand, KeyWriteArgs};
use crate::commands::Output;
use crate::keyfile::{
    KeyFile, KeyFileError, KeyFileFormat, ParsedKeyFile, expand_home, permission_warning,
};
use crate::passphrase::{PassphraseSource, kdf_params_for_new_files};

/// Most directory entries `key list` looks at (it says so if there were more).
pub const LIST_ENTRIES_MAX: usize = 1000;

/// Loads the key file at `path` in either format, asking for the passphrase of an encrypted
/// one (--password-file, CAIRN_PASSWORD or the prompt). Warns on stderr if the file is
/// readable by others.
///
/// # Errors
/// No such file (saying how to create one), and every [`KeyFileError`].
pub fn unlock(cli: &Cli, path: &Path) -> anyhow::Result<KeyFile> {
    require_exists(path)?;
    let source = PassphraseSource::current(cli.password_file.as_deref());
    let key = KeyFile::load_with(path, |address| source.existing(path, address))?;
    if let Some(w) = permission_warning(path) {
        eprintln!("warning: {w}");
    }
    Ok(key)
}

/// The address of the key file at `path` without decrypting it (for an encrypted file, the
/// address stated in clear; it is authenticated only when the file is decrypted).
///
/// # Errors
/// No such file, and [`ParsedKeyFile::read`]'s errors.
pub fn address_of(path: &Path) -> anyhow::Result<cairn_ledger::Address> {
    require_exists(path)?;
    Ok(ParsedKeyFile::read(path)?.address())
}

fn require_exists(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "no key file at {} (create one with `cairn key new` or `cairn keygen`, or pass --keyfile)",
            path.display()
        );
    }
    Ok(())
}

/// Runs `cairn keygen` (the same as `key new`).
pub fn keygen(cli: &Cli, keyfile: &Path, args: &KeyWriteArgs) -> anyhow::Result<Output> {
    write_new_key(cli, keyfile, args, KeyFile::generate(), "created")
}

/// Runs a `cairn key` command.
pub fn run(cli: &Cli, keyfile: &Path, command: &KeyCommand) -> anyhow::Result<Output> {
    match command {
        KeyCommand::New(args) => write_new_key(cli, keyfile, args, KeyFile::generate(), "created"),
        KeyCommand::Import {
            from,
            secret_file,
            write,
        } => {
            let key = match (from, secret_file) {
                (Some(file), _) => {
                    let file = expand_home(file);
                    match ParsedKeyFile::read(&file)? {
                        ParsedKeyFile::Plaintext(k) => k,
                        ParsedKeyFile::Encrypted(_) => anyhow::bail!(
                            "{} is already encrypted; copy it, or use `cairn key change-password`",
                            file.display()
                        ),
                    }
                }
                (None, Some(file)) => key_from_hex(&read_secret_file(file)?)?,
                (None, None) => {
                    let hex = rpassword::prompt_password("Secret key (64 hex characters): ")
                        .map(Zeroizing::new)
                        .map_err(|e| KeyFileError::Passphrase {
                            reason: format!(
                                "cannot ask for the secret on the terminal ({e}); use --from FILE or --secret-file FILE"
                            ),
                        })?;
                    key_from_hex(&hex)?
                }
            };
            write_new_key(cli, keyfile, write, key, "imported")
        }
        KeyCommand::Export {
            print_secret,
            out,
            force,
        } => {
            let key = unlock(cli, keyfile)?;
            let address = key.address();
            if *print_secret {
                eprintln!(
                    "warning: printing the SECRET key of {address}: anyone who sees it controls the account"
                );
                let seed = Zeroizing::new(hex::encode(key.signing_key().to_bytes()));
                return Ok(Output {
                    text: seed.to_string(),
                    json: json!({ "address": address, "secretKey": seed.as_str() }),
                });
            }
            let out = expand_home(out.as_deref().context("--out or --print-secret")?);
            eprintln!(
                "warning: writing the secret key of {address} UNENCRYPTED to {}",
                out.display()
            );
            key.write(&out, *force)?;
            Ok(Output {
                text: format!(
                    "address:  {address}\nkey file: {} (plaintext)",
                    out.display()
                ),
                json: json!({ "address": address, "keyfile": out, "encrypted": false }),
            })
        }
        KeyCommand::List { dir } => {
            let dir = match dir {
                Some(d) => expand_home(d),
                None => keyfile
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            };
            list(&dir)
        }
        KeyCommand::ChangePassword { new_password_file } => {
            let old = unlock(cli, keyfile)?;
            let was = ParsedKeyFile::read(keyfile)?.format();
            let source = PassphraseSource::new_for_change(new_password_file.as_deref());
            let pass = source.new_passphrase(keyfile)?;
            let kdf = kdf_params_for_new_files()?;
            old.write_encrypted(keyfile, &pass, kdf, true)?;
            let address = old.address();
            Ok(Output {
                text: format!(
                    "address:  {address}\nkey file: {} ({} with the new passphrase)",
                    keyfile.display(),
                    if was == KeyFileFormat::Plaintext {
                        "was plaintext; now encrypted"
                    } else {
                        "re-encrypted"
                    }
                ),
                json: json!({
                    "address": address,
                    "keyfile": keyfile,
                    "encrypted": true,
                    "wasPlaintext": was == KeyFileFormat::Plaintext,
                }),
            })
        }
    }
}

/// Writes `key` per `args` (encrypted unless --insecure-plaintext). Refuses an existing file
/// before asking for a passphrase (and again, race-free, when writing).
fn write_new_key(
    cli: &Cli,
    keyfile: &Path,
    args: &KeyWriteArgs,
    key: KeyFile,
    verb: &str,
) -> anyhow::Result<Output> {
    let path = args
        .out
        .as_deref()
        .map(expand_home)
        .unwrap_or_else(|| keyfile.to_path_buf());
    if !args.force && path.exists() {
        return Err(KeyFileError::Exists { path }.into());
    }
    let address = key.address();
    let encrypted = !args.insecure_plaintext;
    let mut text = format!("address:  {address}\nkey file: {}", path.display());
    if encrypted {
        let source = PassphraseSource::current(cli.password_file.as_deref());
        let pass = source.new_passphrase(&path)?;
        let kdf = kdf_params_for_new_files()?;
        key.write_encrypted(&path, &pass, kdf, args.force)?;
        text.push_str(&format!(
            "\nencrypted: scrypt (log_n {}, r {}, p {}) + xchacha20poly1305",
            kdf.log_n, kdf.r, kdf.p
        ));
    } else {
        eprintln!(
            "warning: --insecure-plaintext: the secret key is written UNENCRYPTED to {}",
            path.display()
        );
        key.write(&path, args.force)?;
        text.push_str("\nencrypted: no (plaintext)");
    }
    Ok(Output {
        text: format!("{verb} key\n{text}"),
        json: json!({ "address": address, "keyfile": path, "encrypted": encrypted }),
    })
}

fn key_from_hex(hex_text: &str) -> anyhow::Result<KeyFile> {
    let s = hex_text.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 64 {
        anyhow::bail!(
            "the secret must be 64 hex characters (a 32-byte ed25519 seed), got {}",
            s.len()
        );
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(s, seed.as_mut_slice()).context("the secret is not hex")?;
    Ok(KeyFile::from_seed(&seed))
}

fn read_secret_file(file: &Path) -> anyhow::Result<Zeroizing<String>> {
    use std::io::Read;
    let mut buf = Zeroizing::new(String::with_capacity(1024));
    if file == Path::new("-") {
        std::io::stdin()
            .take(1024)
            .read_to_string(&mut buf)
            .context("reading the secret from stdin")?;
    } else {
        let file = expand_home(file);
        std::fs::File::open(&file)
            .and_then(|f| f.take(1024).read_to_string(&mut buf))
            .with_context(|| format!("reading the secret from {}", file.display()))?;
    }
    let first = Zeroizing::new(buf.lines().next().unwrap_or("").to_string());
    Ok(first)
}

/// `key list DIR`: the key files among the first [`LIST_ENTRIES_MAX`] `*.json` entries,
/// sorted by file name; other JSON files are reported as skipped with the reason.
fn list(dir: &Path) -> anyhow::Result<Output> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list key files in {}", dir.display()))?;
    let mut paths = Vec::new();
    let mut truncated = false;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
            continue;
        }
        if paths.len() == LIST_ENTRIES_MAX {
            truncated = true;
            break;
        }
        paths.push(path);
    }
    paths.sort();
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    let mut text = String::new();
    for path in paths {
        match ParsedKeyFile::read(&path) {
            Ok(parsed) => {
                let format = parsed.format();
                let address = parsed.address();
                text.push_str(&format!(
                    "{address}  {:<9}  {}\n",
                    format.label(),
                    path.display()
                ));
                keys.push(json!({ "address": address, "format": format.label(), "path": path }));
            }
            Err(e) => skipped.push(json!({ "path": path, "reason": e.to_string() })),
        }
    }
    if keys.is_empty() {
        text.push_str(&format!("no key files in {}\n", dir.display()));
    }
    if !skipped.is_empty() {
        text.push_str(&format!(
            "({} other .json file(s) are not key files; --json lists them)\n",
            skipped.len()
        ));
    }
    if truncated {
        text.push_str(&format!("(stopped after {LIST_ENTRIES_MAX} .json files)\n"));
    }
    Ok(Output {
        text: text.trim_end().to_string(),
        json: json!({ "dir": dir, "keys": keys, "skipped": skipped, "truncated": truncated }),
    })
}
