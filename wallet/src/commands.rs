//! What each command does, its output, and how failures are reported.

use std::fmt::Write as _;

use anyhow::Context;
use cairn_ledger::{Action, Address, Hash, SignedTransaction, TransactionBody};
use cairn_rpc::{BlockInfo, ClientError, RpcClient, TxStatus, codes};
use serde_json::{Value, json};

use crate::cli::{BlockId, Cli, Command, DEFAULT_EXPIRY_DELTA, TxArgs};
use crate::keyfile::{KeyFile, expand_home};

/// Poll interval of `transfer --wait`.
pub const WAIT_POLL_MS: u64 = 250;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: any failure not listed below (bad key file, RPC error, no such block, …).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: command-line usage error (set by clap).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the node could not be reached or answered at the HTTP level.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit status: the transaction was rejected (at submission or while waiting).
pub const EXIT_REJECTED: u8 = 4;
/// Exit status: `--wait` timed out before the transaction was final.
pub const EXIT_TIMEOUT: u8 = 5;

/// A command's result: the text for humans and the JSON object for `--json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Human-readable text (no trailing newline needed).
    pub text: String,
    /// The `--json` object.
    pub json: Value,
}

/// A transaction that reached a terminal status other than finalized.
#[derive(Debug, Clone, thiserror::Error)]
#[error("transaction {hash} rejected: {reason}: {message}")]
pub struct TxRejected {
    /// The transaction.
    pub hash: Hash,
    /// Stable reason code (`getTransaction`'s `reason`).
    pub reason: String,
    /// Explanation.
    pub message: String,
}

/// Runs the command. Warnings (e.g. a key file readable by others) go to stderr.
pub async fn run(cli: &Cli) -> anyhow::Result<Output> {
    let keyfile = expand_home(&cli.keyfile);
    match &cli.command {
        Command::Keygen(args) => crate::keycmd::keygen(cli, &keyfile, args),
        Command::Key(command) => crate::keycmd::run(cli, &keyfile, command),
        Command::Send {
            input,
            wait,
            wait_timeout_ms,
        } => crate::offline::send(cli, input, *wait, *wait_timeout_ms).await,
        Command::Decode { input } => crate::offline::decode(input),
        Command::Completions { shell } => crate::shell::completions(*shell),
        Command::Man => crate::shell::man(),
        Command::Address => {
            let address = crate::keycmd::address_of(&keyfile)?;
            Ok(Output {
                text: address.to_string(),
                json: json!({ "address": address }),
            })
        }
        Command::Balance { address } => {
            let address = match address {
                Some(a) => *a,
                None => crate::keycmd::address_of(&keyfile)?,
            };
            let account = client(cli)?.account(&address).await?;
            Ok(Output {
                text: format!(
                    "address: {}\nbalance: {}\nnonce:   {}\nnext nonce: {}",
                    account.address,
                    account.balance,
                    account.nonce,
                    account.next_nonce.max(account.nonce)
                ),
                json: serde_json::to_value(&account)?,
            })
        }
        Command::Transfer(args) if args.offline => {
            crate::offline::sign_offline(cli, &keyfile, args)
        }
        Command::Transfer(args) => {
            let action = Action::Transfer {
                recipient: args.to,
                amount: args.amount,
            };
            submit(cli, &keyfile, action, &args.tx).await
        }
        Command::Gov(command) => crate::gov::run(cli, &keyfile, command).await,
        Command::Tx {
            hash,
            follow: false,
            ..
        } => {
            let status = client(cli)?.transaction(hash).await?;
            let mut json = serde_json::to_value(&status)?;
            json["hash"] = json!(hash);
            Ok(Output {
                text: format!("transaction {hash}\n{}", status_text(&status)),
                json,
            })
        }
        Command::Tx {
            hash,
            follow: true,
            wait_timeout_ms,
        } => follow(cli, hash, *wait_timeout_ms).await,
        Command::Status => {
            let s = client(cli)?.status().await?;
            let text = format!(
                "chain id:     {}\nheight:       {}\nlatest hash:  {}\nstate root:   {}\ngenesis hash: {}\npeers:        {}\nsyncing:      {}\nvalidator:    {}\nnode version: {}",
                s.chain_id,
                s.latest_height,
                s.latest_hash,
                s.latest_state_root,
                s.genesis_hash,
                s.peer_count,
                if s.syncing { "yes" } else { "no" },
                s.validator_name.as_deref().unwrap_or("(not a validator)"),
                s.node_version,
            );
            Ok(Output {
                text,
                json: serde_json::to_value(&s)?,
            })
        }
        Command::Block { id } => {
            let client = client(cli)?;
            let id = match id {
                Some(id) => *id,
                None => BlockId::Height(client.status().await?.latest_height),
            };
            let block = match id {
                BlockId::Height(h) => client.block_by_height(h).await?,
                BlockId::Hash(h) => client.block_by_hash(&h).await?,
            };
            let block = block.ok_or_else(|| match id {
                BlockId::Height(h) => anyhow::anyhow!("no finalized block at height {h}"),
                BlockId::Hash(h) => anyhow::anyhow!("no finalized block with hash {h}"),
            })?;
            Ok(Output {
                text: block_text(&block),
                json: serde_json::to_value(&block)?,
            })
        }
    }
}

pub(crate) fn client(cli: &Cli) -> anyhow::Result<RpcClient> {
    Ok(RpcClient::new(&cli.rpc)?)
}

/// Loads the key file (plaintext, or encrypted: see `crate::keycmd::unlock`).
pub(crate) fn load_key(cli: &Cli, path: &std::path::Path) -> anyhow::Result<KeyFile> {
    crate::keycmd::unlock(cli, path)
}

/// Signs a transfer from `key` with the given fields (the sender is the key's address).
pub fn build_transfer(
    key: &KeyFile,
    chain_id: &str,
    recipient: Address,
    amount: u64,
    fee: u64,
    nonce: u64,
    expiry_height: u64,
) -> SignedTransaction {
    TransactionBody {
        chain_id: chain_id.to_string(),
        sender: key.address(),
        fee,
        nonce,
        expiry_height,
        action: cairn_ledger::Action::Transfer { recipient, amount },
    }
    .sign(key.signing_key())
}

/// Signs `action` with the key file and submits it; with `--wait`, waits for finality.
/// Fills chain id, expiry and nonce from the node unless given.
pub(crate) async fn submit(
    cli: &Cli,
    keyfile: &std::path::Path,
    action: Action,
    args: &TxArgs,
) -> anyhow::Result<Output> {
    let key = load_key(cli, keyfile)?;
    let client = client(cli)?;
    let (chain_id, expiry_height) = match (&args.chain_id, args.expiry_height) {
        (Some(c), Some(e)) => (c.clone(), e),
        (chain_id, expiry) => {
            let status = client.status().await?;
            let expiry = match expiry {
                Some(e) => e,
                None => status
                    .latest_height
                    .checked_add(DEFAULT_EXPIRY_DELTA)
                    .context("latest height + expiry delta overflows; pass --expiry-height")?,
            };
            (chain_id.clone().unwrap_or(status.chain_id), expiry)
        }
    };
    // Not given: the node's `nextNonce` (the account nonce plus the sender's transactions
    // it pools without a gap), so a transfer sent before the previous one is final follows
    // it instead of reusing its nonce. A node before RPC version 2 sends no `nextNonce`
    // (read as 0): then the account nonce.
    let nonce = match args.nonce {
        Some(n) => n,
        None => {
            let account = client.account(&key.address()).await?;
            account.next_nonce.max(account.nonce)
        }
    };
    let tx = TransactionBody {
        chain_id: chain_id.clone(),
        sender: key.address(),
        fee: args.fee,
        nonce,
        expiry_height,
        action,
    }
    .sign(key.signing_key());
    // Catches a bad --chain-id (over 32 bytes) or an oversized action before the node does.
    let len = tx.encode().len();
    if len > cairn_ledger::TX_BYTES_MAX {
        anyhow::bail!(
            "the transaction encodes to {len} bytes, more than {}",
            cairn_ledger::TX_BYTES_MAX
        );
    }
    tx.verify(&chain_id)
        .context("the signed transaction does not verify")?;
    let hash = client.send_transaction(&tx).await?;

    let b = &tx.body;
    let mut json = json!({
        "hash": hash,
        "kind": b.action.kind(),
        "sender": b.sender,
        "fee": b.fee,
        "nonce": b.nonce,
        "expiryHeight": b.expiry_height,
        "chainId": b.chain_id,
    });
    let what = match &b.action {
        Action::Transfer { recipient, amount } => {
            json["recipient"] = json!(recipient);
            json["amount"] = json!(amount);
            format!("{} -> {recipient}\n  amount {amount}", b.sender)
        }
        governance => {
            json["action"] = serde_json::to_value(governance)?;
            format!("{} {}", b.sender, serde_json::to_string(governance)?)
        }
    };
    let mut text = format!(
        "transaction {hash} submitted\n  {what} fee {} nonce {} expiry height {} chain {}",
        b.fee, b.nonce, b.expiry_height, b.chain_id
    );
    if args.wait {
        wait_final(&client, &hash, args.wait_timeout_ms, &mut text, &mut json).await?;
    }
    Ok(Output { text, json })
}

/// Waits until `hash` is final (over the node's WebSocket, by polling when it has none) and
/// adds where to the command's output; `transfer --wait`, `send --wait` and `gov … --wait`.
///
/// # Errors
/// [`TxRejected`] when the transaction is rejected; [`ClientError::FinalityTimeout`] after
/// `timeout_ms`; the node's errors.
pub(crate) async fn wait_final(
    client: &RpcClient,
    hash: &Hash,
    timeout_ms: u64,
    text: &mut String,
    json: &mut Value,
) -> anyhow::Result<TxStatus> {
    let (status, _via) = client
        .follow_transaction(hash, timeout_ms, WAIT_POLL_MS, |_| {}, fallback_note)
        .await?;
    match &status {
        TxStatus::Finalized {
            height,
            index,
            block_hash,
        } => {
            let _ = write!(
                text,
                "\nfinalized at height {height} (index {index}, block {block_hash})"
            );
        }
        TxStatus::Rejected { reason, message } => {
            return Err(TxRejected {
                hash: *hash,
                reason: reason.clone(),
                message: message.clone(),
            }
            .into());
        }
        // follow_transaction returns terminal statuses only.
        other => anyhow::bail!("unexpected status {} after waiting", other.label()),
    }
    json["finality"] = serde_json::to_value(&status)?;
    Ok(status)
}

/// Tells the user (on stderr) that waiting goes on by polling, and why.
fn fallback_note(why: &ClientError) {
    eprintln!("note: no WebSocket subscription ({why}); polling the node instead");
}

/// `tx HASH --follow`: prints every status change until the status is terminal, the last
/// one as the command's output. With `--json` each change is one JSON line.
async fn follow(cli: &Cli, hash: &Hash, timeout_ms: u64) -> anyhow::Result<Output> {
    let client = client(cli)?;
    let json_mode = cli.json;
    let (status, via) = client
        .follow_transaction(
            hash,
            timeout_ms,
            WAIT_POLL_MS,
            |status| {
                // The terminal status is the command's output, printed by the caller.
                if status.is_terminal() {
                    return;
                }
                if json_mode {
                    let mut line = serde_json::to_value(status).unwrap_or(Value::Null);
                    line["hash"] = json!(hash);
                    println!("{line}");
                } else {
                    println!("{}", status_text(status));
                }
            },
            fallback_note,
        )
        .await?;
    if let TxStatus::Rejected { reason, message } = &status {
        return Err(TxRejected {
            hash: *hash,
            reason: reason.clone(),
            message: message.clone(),
        }
        .into());
    }
    let mut json = serde_json::to_value(&status)?;
    json["hash"] = json!(hash);
    json["via"] = json!(via.label());
    Ok(Output {
        text: format!("transaction {hash}\n{}", status_text(&status)),
        json,
    })
}

fn status_text(status: &TxStatus) -> String {
    match status {
        TxStatus::Pending => "status: pending (in the mempool, not yet final)".into(),
        TxStatus::Finalized {
            height,
            index,
            block_hash,
        } => {
            format!("status: finalized at height {height} (index {index}, block {block_hash})")
        }
        TxStatus::Rejected { reason, message } => {
            format!("status: rejected: {reason}: {message}")
        }
        TxStatus::Unknown => "status: unknown (the node has not seen this transaction)".into(),
    }
}

fn block_text(block: &BlockInfo) -> String {
    let h = &block.header;
    let mut s = format!(
        "block {} {}\nparent:     {}\nproposer:   {}\nview:       {}\ntimestamp:  {} ms\ntxs root:   {}\nsigned txs root: {}\nstate root: {}\nchain id:   {}\ntransactions: {}",
        h.height,
        block.hash,
        h.parent_hash,
        h.proposer,
        h.view,
        h.timestamp_ms,
        h.txs_root,
        h.signed_txs_root,
        h.state_root,
        h.chain_id,
        block.transactions.len()
    );
    for t in &block.transactions {
        match t.recipient {
            Some(recipient) => {
                let _ = write!(
                    s,
                    "\n  {} {} -> {} amount {} fee {} nonce {}",
                    t.hash, t.sender, recipient, t.amount, t.fee, t.nonce
                );
            }
            None => {
                let _ = write!(
                    s,
                    "\n  {} {} {} fee {} nonce {}",
                    t.hash, t.sender, t.kind, t.fee, t.nonce
                );
            }
        }
    }
    s
}

/// The exit status for a failure (see the `EXIT_*` constants).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<TxRejected>().is_some() {
            return EXIT_REJECTED;
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return match e {
                ClientError::Transport { .. } | ClientError::Http { .. } => EXIT_UNREACHABLE,
                ClientError::Rpc { code, .. } if *code == codes::REJECTED => EXIT_REJECTED,
                ClientError::FinalityTimeout { .. } => EXIT_TIMEOUT,
                _ => EXIT_FAILURE,
            };
        }
    }
    EXIT_FAILURE
}

/// The `--json` form of a failure: `{"error": {"kind", "message", "exitCode", …}}`.
///
/// `kind` is one of `unreachable` (transport or HTTP failure), `rejected`, `timeout`,
/// `rpc` (another JSON-RPC error; `code` and `data` included), `malformed` (bad answer),
/// `invalid_url`, `other`. `rejected` carries `reason` (the stable code) and, when known,
/// `hash`; `timeout` carries `hash`.
pub fn error_json(err: &anyhow::Error) -> Value {
    let mut obj =
        json!({ "kind": "other", "message": format!("{err:#}"), "exitCode": exit_code(err) });
    for cause in err.chain() {
        if let Some(r) = cause.downcast_ref::<TxRejected>() {
            obj["kind"] = json!("rejected");
            obj["reason"] = json!(r.reason);
            obj["hash"] = json!(r.hash);
            break;
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            match e {
                ClientError::Transport { url, .. } | ClientError::Http { url, .. } => {
                    obj["kind"] = json!("unreachable");
                    obj["url"] = json!(url);
                    if let ClientError::Http { status, .. } = e {
                        obj["httpStatus"] = json!(status);
                    }
                }
                ClientError::Rpc { code, data, .. } => {
                    obj["kind"] = json!(if *code == codes::REJECTED {
                        "rejected"
                    } else {
                        "rpc"
                    });
                    obj["code"] = json!(code);
                    if let Some(reason) = e.reason() {
                        obj["reason"] = json!(reason);
                    }
                    if let Some(d) = data {
                        obj["data"] = d.clone();
                    }
                }
                ClientError::FinalityTimeout { hash, .. } => {
                    obj["kind"] = json!("timeout");
                    obj["hash"] = json!(hash);
                }
                ClientError::Malformed { .. } => obj["kind"] = json!("malformed"),
                ClientError::InvalidUrl { .. } => obj["kind"] = json!("invalid_url"),
            }
            break;
        }
    }
    json!({ "error": obj })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_transfer_verifies_and_binds_every_field() {
        let key = KeyFile::from_seed(&[7; 32]);
        let to = Address([9; 32]);
        let tx = build_transfer(&key, "cairn-test", to, 10, 1, 3, 500);
        tx.verify("cairn-test").unwrap();
        assert_eq!(tx.body.sender, key.address());
        assert_eq!(
            (
                tx.body.recipient(),
                tx.body.amount(),
                tx.body.fee,
                tx.body.nonce,
                tx.body.expiry_height
            ),
            (Some(to), 10, 1, 3, 500)
        );
        // Wrong chain, tampered body, and a wire roundtrip.
        assert_eq!(tx.verify("other").unwrap_err().code(), "wrong_chain");
        let mut tampered = tx.clone();
        tampered.body.fee += 1;
        assert_eq!(
            tampered.verify("cairn-test").unwrap_err().code(),
            "bad_signature"
        );
        assert_eq!(SignedTransaction::decode(&tx.encode()).unwrap(), tx);
    }

    #[test]
    fn exit_codes_and_error_json() {
        let transport: anyhow::Error = ClientError::Transport {
            url: "http://x/".into(),
            message: "connection refused".into(),
        }
        .into();
        assert_eq!(exit_code(&transport), EXIT_UNREACHABLE);
        assert_eq!(error_json(&transport)["error"]["kind"], "unreachable");

        let rejected: anyhow::Error = ClientError::Rpc {
            code: codes::REJECTED,
            message: "transaction rejected: insufficient_balance: no".into(),
            data: Some(json!({"reason": "insufficient_balance"})),
        }
        .into();
        assert_eq!(exit_code(&rejected), EXIT_REJECTED);
        let j = error_json(&rejected);
        assert_eq!(j["error"]["reason"], "insufficient_balance");
        assert_eq!(j["error"]["exitCode"], 4);

        let later: anyhow::Error = TxRejected {
            hash: Hash::ZERO,
            reason: "expired".into(),
            message: "r".into(),
        }
        .into();
        assert_eq!(exit_code(&later), EXIT_REJECTED);
        assert_eq!(error_json(&later)["error"]["reason"], "expired");

        let timeout: anyhow::Error = ClientError::FinalityTimeout {
            hash: Hash::ZERO,
            timeout_ms: 1,
            last_status: "pending".into(),
        }
        .into();
        assert_eq!(exit_code(&timeout), EXIT_TIMEOUT);

        let other = anyhow::anyhow!("boom").context("while doing x");
        assert_eq!(exit_code(&other), EXIT_FAILURE);
        assert_eq!(
            error_json(&other)["error"]["message"],
            "while doing x: boom"
        );
    }
}
