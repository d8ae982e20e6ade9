//! Offline signing: `cairn transfer --offline` (sign without a node), `cairn send` (broadcast a
//! signed transaction) and `cairn decode` (show one). The bytes are the ledger's
//! `SignedTransaction` wire encoding (docs/wire-format.md), as lowercase hex.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use cairn_ledger::{Action, SignedTransaction, TX_BYTES_MAX, TransactionBody};
use serde_json::{Value, json};

use crate::cli::{Cli, TransferArgs};
use crate::commands::{Output, client};

/// Longest input `send`/`decode` read from a file or stdin, bytes: the hex of a
/// [`TX_BYTES_MAX`]-byte transaction plus room for a `0x` and whitespace.
pub const TX_INPUT_BYTES_MAX: usize = 2 * TX_BYTES_MAX + 64;

/// `transfer --offline`: signs with the key file and the given nonce, chain id and expiry
/// height; prints the hex (or writes it to `--out`). Never contacts a node.
///
/// # Errors
/// A missing field (clap normally catches it first), the key file, an oversized
/// transaction, an existing `--out` file.
pub fn sign_offline(cli: &Cli, keyfile: &Path, args: &TransferArgs) -> anyhow::Result<Output> {
    let missing: Vec<&str> = [
        ("--nonce", args.tx.nonce.is_none()),
        ("--chain-id", args.tx.chain_id.is_none()),
        ("--expiry-height", args.tx.expiry_height.is_none()),
    ]
    .into_iter()
    .filter_map(|(flag, absent)| absent.then_some(flag))
    .collect();
    let (Some(nonce), Some(chain_id), Some(expiry_height)) =
        (args.tx.nonce, &args.tx.chain_id, args.tx.expiry_height)
    else {
        anyhow::bail!(
            "--offline needs --nonce, --chain-id and --expiry-height (missing: {})",
            missing.join(", ")
        );
    };
    let key = crate::keycmd::unlock(cli, keyfile)?;
    let tx = TransactionBody {
        chain_id: chain_id.clone(),
        sender: key.address(),
        fee: args.tx.fee,
        nonce,
        expiry_height,
        action: Action::Transfer {
            recipient: args.to,
            amount: args.amount,
        },
    }
    .sign(key.signing_key());
    let bytes = tx.encode();
    if bytes.len() > TX_BYTES_MAX {
        anyhow::bail!(
            "the transaction encodes to {} bytes, more than {TX_BYTES_MAX} (chain id too long?)",
            bytes.len()
        );
    }
    tx.verify(chain_id)
        .context("the signed transaction does not verify")?;
    let hex_tx = hex::encode(&bytes);
    let mut json = describe(&tx).0;
    json["tx"] = json!(hex_tx);
    let text = match &args.out {
        Some(out) => {
            let out = crate::keyfile::expand_home(out);
            write_new(&out, format!("{hex_tx}\n").as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            json["out"] = json!(out);
            format!(
                "signed transaction {} written to {}\n  {}\nbroadcast it with: cairn send {}",
                tx.hash(),
                out.display(),
                summary(&tx),
                out.display()
            )
        }
        None => hex_tx,
    };
    Ok(Output { text, json })
}

/// `send FILE|HEX`: decodes, checks the signature locally, submits; with `wait`, waits
/// for finality like `transfer --wait`.
///
/// # Errors
/// Bad input, a signature that does not verify (nothing is sent), the node's refusal
/// ([`crate::TxRejected`] while waiting), transport errors, the wait timing out.
pub async fn send(
    cli: &Cli,
    input: &str,
    wait: bool,
    wait_timeout_ms: u64,
) -> anyhow::Result<Output> {
    let tx = read_tx(input)?;
    tx.verify(&tx.body.chain_id)
        .context("the transaction's signature does not verify; not sent")?;
    let client = client(cli)?;
    let hash = client.send_transaction(&tx).await?;
    let (mut json, _) = describe(&tx);
    json["hash"] = json!(hash);
    let mut text = format!("transaction {hash} submitted\n  {}", summary(&tx));
    if wait {
        crate::commands::wait_final(&client, &hash, wait_timeout_ms, &mut text, &mut json).await?;
    }
    Ok(Output { text, json })
}

/// `decode FILE|HEX`: every field, the hash, the signed hash, and whether the signature
/// verifies (for the chain id the transaction names). Offline.
///
/// # Errors
/// Bad input (not hex, too long, not a transaction).
pub fn decode(input: &str) -> anyhow::Result<Output> {
    let tx = read_tx(input)?;
    let (json, text) = describe(&tx);
    Ok(Output { text, json })
}

/// The `--json` object and the text of a transaction: all fields, hashes, signature check.
fn describe(tx: &SignedTransaction) -> (Value, String) {
    let b = &tx.body;
    let verdict = tx.verify(&b.chain_id);
    let mut json = json!({
        "hash": tx.hash(),
        "signedHash": tx.signed_hash(),
        "kind": b.action.kind(),
        "chainId": b.chain_id,
        "sender": b.sender,
        "fee": b.fee,
        "nonce": b.nonce,
        "expiryHeight": b.expiry_height,
        "signature": hex::encode(tx.signature),
        "signatureValid": verdict.is_ok(),
        "bytes": tx.encode().len(),
    });
    let mut text = format!(
        "transaction {}\n  signed hash:   {}\n  kind:          {}\n  chain id:      {}\n  sender:        {}\n  fee:           {}\n  nonce:         {}\n  expiry height: {}",
        tx.hash(),
        tx.signed_hash(),
        b.action.kind(),
        b.chain_id,
        b.sender,
        b.fee,
        b.nonce,
        b.expiry_height
    );
    match &b.action {
        Action::Transfer { recipient, amount } => {
            json["recipient"] = json!(recipient);
            json["amount"] = json!(amount);
            let _ = write!(
                text,
                "\n  recipient:     {recipient}\n  amount:        {amount}"
            );
        }
        other => {
            let action = serde_json::to_value(other).unwrap_or(Value::Null);
            let _ = write!(text, "\n  action:        {action}");
            json["action"] = action;
        }
    }
    let _ = write!(text, "\n  signature:     {}", hex::encode(tx.signature));
    match verdict {
        Ok(()) => text.push_str("\nsignature valid"),
        Err(e) => {
            json["signatureError"] = json!(e.to_string());
            let _ = write!(text, "\nsignature INVALID: {e}");
        }
    }
    (json, text)
}

fn summary(tx: &SignedTransaction) -> String {
    let b = &tx.body;
    let what = match &b.action {
        Action::Transfer { recipient, amount } => {
            format!("{} -> {recipient}\n  amount {amount}", b.sender)
        }
        other => format!(
            "{} {}",
            b.sender,
            serde_json::to_string(other).unwrap_or_default()
        ),
    };
    format!(
        "{what} fee {} nonce {} expiry height {} chain {}",
        b.fee, b.nonce, b.expiry_height, b.chain_id
    )
}

/// Reads `FILE|HEX|-` and decodes it (size checked before hex- and borsh-decoding).
fn read_tx(input: &str) -> anyhow::Result<SignedTransaction> {
    let text = if input == "-" {
        use std::io::Read;
        let mut s = String::new();
        std::io::stdin()
            .take(TX_INPUT_BYTES_MAX as u64 + 1)
            .read_to_string(&mut s)
            .context("reading the transaction from stdin")?;
        s
    } else if Path::new(input).is_file() {
        let len = std::fs::metadata(input)
            .with_context(|| format!("cannot read {input}"))?
            .len();
        if len > TX_INPUT_BYTES_MAX as u64 {
            anyhow::bail!(
                "{input} is {len} bytes; a signed transaction's hex is at most {TX_INPUT_BYTES_MAX}"
            );
        }
        std::fs::read_to_string(input).with_context(|| format!("cannot read {input}"))?
    } else {
        input.to_string()
    };
    let trimmed = text.trim();
    let hex_text = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    if hex_text.len() > 2 * TX_BYTES_MAX {
        anyhow::bail!(
            "{} hex characters: longer than a transaction can be ({TX_BYTES_MAX} bytes)",
            hex_text.len()
        );
    }
    let bytes = hex::decode(hex_text).map_err(|e| {
        anyhow::anyhow!(
            "not a file and not transaction hex ({e}): {}",
            input.chars().take(80).collect::<String>()
        )
    })?;
    SignedTransaction::decode(&bytes).context("not a signed transaction")
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
