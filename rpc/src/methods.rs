//! Method dispatch and params decoding.

use cairn_ledger::{Address, CHAIN_ID_BYTES_MAX, Hash, SignedTransaction, TX_BYTES_MAX};
use serde_json::{Map, Value};

use crate::error::{ErrorObject, codes, reasons};
use crate::{
    BLOCK_SUMMARIES_MAX, BlockHashesInfo, BlockInfo, RpcBackend, RpcError, SEND_TRANSACTIONS_MAX,
    SubmitResult,
};

/// Longest accepted `sendTransaction` hex string (without an optional `0x` prefix),
/// checked before any decoding: two characters per byte of [`TX_BYTES_MAX`].
pub const TX_HEX_CHARS_MAX: usize = 2 * TX_BYTES_MAX;

/// The method names, as served.
pub const METHODS: &[&str] = &[
    "getStatus",
    "getAccount",
    "getBalance",
    "sendTransaction",
    "sendTransactions",
    "getTransaction",
    "getBlock",
    "getValidators",
    "getPeers",
    "getEvidence",
    "getFinalization",
    "getGovernance",
    "getEpochProof",
    "getBlockSummaries",
    "getThroughput",
];

/// Params of one call: absent (or `null`), positional, or named.
#[derive(Debug, Clone)]
pub(crate) enum Params {
    None,
    Positional(Vec<Value>),
    Named(Map<String, Value>),
}

/// Runs one method. Errors are JSON-RPC error objects (method not found or the method's
/// own error).
pub(crate) async fn dispatch(
    backend: &dyn RpcBackend,
    method: &str,
    params: Params,
) -> Result<Value, ErrorObject> {
    let result = match method {
        "getStatus" => {
            no_params(method, params)?;
            to_value(backend.status().await?)
        }
        "getAccount" => {
            let address = address_param(method, params)?;
            to_value(backend.account(address).await?)
        }
        "getBalance" => {
            let address = address_param(method, params)?;
            to_value(backend.account(address).await?.balance)
        }
        "sendTransaction" => {
            let mut args = Args::new(method, params, &["tx"])?;
            let tx = decode_tx_hex(&args.required_str("tx")?)?;
            to_value(backend.submit_transaction(tx).await?.to_hex())
        }
        "sendTransactions" => {
            let mut args = Args::new(method, params, &["txs"])?;
            let txs = decode_tx_hex_array(args.map.remove("txs"))?;
            let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
            let results = backend.submit_transactions(txs).await?;
            if results.len() != hashes.len() {
                return Err(RpcError::Internal {
                    message: format!(
                        "backend answered {} of {} transactions",
                        results.len(),
                        hashes.len()
                    ),
                }
                .into());
            }
            let out: Vec<SubmitResult> = hashes
                .into_iter()
                .zip(results)
                .map(|(hash, r)| match r {
                    Ok(_) => SubmitResult {
                        hash,
                        accepted: true,
                        reason: None,
                        message: None,
                    },
                    Err(e) => SubmitResult {
                        hash,
                        accepted: false,
                        reason: Some(e.reason().to_string()),
                        message: Some(e.detail().to_string()),
                    },
                })
                .collect();
            to_value(out)
        }
        "getFinalization" => {
            let mut args = Args::new(method, params, &["height"])?;
            let height = match args.map.remove("height") {
                Some(v) => v.as_u64().ok_or_else(|| {
                    RpcError::invalid_params("height: must be a non-negative integer")
                })?,
                None => return Err(RpcError::invalid_params("missing param `height`").into()),
            };
            to_value(backend.finalization(height).await?)
        }
        "getTransaction" => {
            let mut args = Args::new(method, params, &["hash"])?;
            let hash = parse_hash("hash", &args.required_str("hash")?)?;
            to_value(backend.transaction(hash).await?)
        }
        "getBlock" => {
            let (selector, detail) = block_selector(params)?;
            let block = match selector {
                BlockSelector::Height(h) => backend.block_by_height(h).await?,
                BlockSelector::Hash(h) => backend.block_by_hash(h).await?,
            };
            match detail {
                TxDetail::Full => to_value(block.as_ref().map(BlockInfo::from)),
                TxDetail::Hashes => to_value(block.as_ref().map(BlockHashesInfo::from)),
            }
        }
        "getValidators" => {
            let mut args = Args::new(method, params, &["height", "epoch"])?;
            let number = |name: &str, v: Value| {
                v.as_u64().ok_or_else(|| {
                    RpcError::invalid_params(format!("{name}: must be a non-negative integer"))
                })
            };
            let at = match (args.map.remove("height"), args.map.remove("epoch")) {
                (None, None) => crate::ValidatorsAt::Current,
                (Some(h), None) => crate::ValidatorsAt::Height(number("height", h)?),
                (None, Some(e)) => crate::ValidatorsAt::Epoch(number("epoch", e)?),
                (Some(_), Some(_)) => {
                    return Err(
                        RpcError::invalid_params("give `height` or `epoch`, not both").into(),
                    );
                }
            };
            to_value(backend.validators_at(at).await?)
        }
        "getEpochProof" => {
            let mut args = Args::new(method, params, &["epoch"])?;
            let epoch = match args.map.remove("epoch") {
                Some(v) => v.as_u64().ok_or_else(|| {
                    RpcError::invalid_params("epoch: must be a non-negative integer")
                })?,
                None => return Err(RpcError::invalid_params("missing param `epoch`").into()),
            };
            to_value(backend.epoch_proof(epoch).await?)
        }
        "getBlockSummaries" => {
            let mut args = Args::new(method, params, &["count", "fromHeight"])?;
            let count = match args.map.remove("count") {
                None | Some(Value::Null) => {
                    return Err(RpcError::invalid_params("missing param `count`").into());
                }
                Some(v) => v
                    .as_u64()
                    .filter(|c| (1..=BLOCK_SUMMARIES_MAX).contains(c))
                    .ok_or_else(|| {
                        RpcError::invalid_params(format!(
                            "count: must be an integer in 1..={BLOCK_SUMMARIES_MAX}"
                        ))
                    })?,
            };
            let from = match args.map.remove("fromHeight") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    RpcError::invalid_params("fromHeight: must be a non-negative integer")
                })?),
            };
            to_value(backend.block_summaries(from, count).await?)
        }
        "getThroughput" => {
            no_params(method, params)?;
            to_value(backend.throughput().await?)
        }
        "getPeers" => {
            no_params(method, params)?;
            to_value(backend.peers().await?)
        }
        "getEvidence" => {
            no_params(method, params)?;
            to_value(backend.evidence().await?)
        }
        "getGovernance" => {
            no_params(method, params)?;
            to_value(backend.governance().await?)
        }
        _ => {
            return Err(ErrorObject::new(
                codes::METHOD_NOT_FOUND,
                format!("method not found: `{}`", truncate(method)),
            ));
        }
    };
    result.map_err(|e| e.to_error_object())
}

impl From<RpcError> for ErrorObject {
    fn from(e: RpcError) -> ErrorObject {
        e.to_error_object()
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(format!("cannot serialize result: {e}")))
}

fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

fn no_params(method: &str, params: Params) -> Result<(), RpcError> {
    let empty = match &params {
        Params::None => true,
        Params::Positional(v) => v.is_empty(),
        Params::Named(m) => m.is_empty(),
    };
    if empty {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "{method} takes no params"
        )))
    }
}

fn address_param(method: &str, params: Params) -> Result<Address, RpcError> {
    let mut args = Args::new(method, params, &["address"])?;
    let s = args.required_str("address")?;
    s.parse::<Address>()
        .map_err(|e| RpcError::invalid_input(reasons::BAD_ADDRESS, format!("address: {e}")))
}

fn parse_hash(name: &str, s: &str) -> Result<Hash, RpcError> {
    Hash::from_hex(s)
        .map_err(|e| RpcError::invalid_input(reasons::BAD_HASH, format!("{name}: {e}")))
}

/// Decodes the `sendTransaction` hex: length bound first (reason `oversize`), then hex
/// (`bad_hex`), then the wire format and the chain id's length bound (`malformed`).
pub(crate) fn decode_tx_hex(s: &str) -> Result<SignedTransaction, RpcError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() > TX_HEX_CHARS_MAX {
        return Err(RpcError::invalid_input(
            reasons::OVERSIZE,
            format!(
                "tx: transaction hex is {} characters, more than the limit of {TX_HEX_CHARS_MAX} ({TX_BYTES_MAX} bytes)",
                s.len()
            ),
        ));
    }
    let not_hex = |e: hex::FromHexError| {
        RpcError::invalid_input(
            reasons::BAD_HEX,
            format!("tx: transaction is not valid hex: {e}"),
        )
    };
    // Into a stack buffer (bounded above): `hex::decode` into a Vec goes character pair by
    // character pair through an iterator, and this runs for every submitted transaction.
    let mut buf = [0u8; TX_BYTES_MAX];
    let bytes = if s.len() % 2 == 0 {
        let out = &mut buf[..s.len() / 2];
        hex::decode_to_slice(s, out).map_err(not_hex)?;
        &*out
    } else {
        return Err(not_hex(hex::FromHexError::OddLength));
    };
    let tx = SignedTransaction::decode(bytes)
        .map_err(|e| RpcError::invalid_input(reasons::MALFORMED, format!("tx: {e}")))?;
    // A decoding check, like the length bound: no valid transaction has a longer chain id.
    if tx.body.chain_id.len() > CHAIN_ID_BYTES_MAX {
        return Err(RpcError::invalid_input(
            reasons::MALFORMED,
            format!(
                "tx: malformed transaction: chain id of {} bytes, more than {CHAIN_ID_BYTES_MAX}",
                tx.body.chain_id.len()
            ),
        ));
    }
    Ok(tx)
}

/// Decodes the `sendTransactions` array: its length is checked against
/// [`SEND_TRANSACTIONS_MAX`] before any element is decoded; any bad element fails the call
/// (naming its index) so that nothing of a malformed batch is submitted.
fn decode_tx_hex_array(value: Option<Value>) -> Result<Vec<SignedTransaction>, RpcError> {
    let items = match value {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Err(RpcError::invalid_params("missing param `txs`")),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "txs: must be an array of transaction hex strings",
            ));
        }
    };
    if items.len() > SEND_TRANSACTIONS_MAX {
        return Err(RpcError::invalid_input(
            reasons::OVERSIZE,
            format!(
                "txs: {} transactions, more than the limit of {SEND_TRANSACTIONS_MAX} per call",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item.as_str().ok_or_else(|| {
                RpcError::invalid_params(format!("txs[{i}]: must be a hex string"))
            })?;
            decode_tx_hex(s).map_err(|e| match e {
                RpcError::InvalidParams { reason, message } => {
                    RpcError::invalid_input(reason, format!("txs[{i}]: {message}"))
                }
                other => other,
            })
        })
        .collect()
}

enum BlockSelector {
    Height(u64),
    Hash(Hash),
}

/// What `getBlock` returns of each transaction.
enum TxDetail {
    /// Every field ([`BlockInfo`]).
    Full,
    /// The hashes only ([`BlockHashesInfo`]).
    Hashes,
}

/// `getBlock`: `{height}`, `{hash}`, `[height]` (a number) or `[hash]` (a string), each
/// optionally with `transactions`: `"full"` (the default) or `"hashes"` (named, or as a
/// second positional param).
fn block_selector(params: Params) -> Result<(BlockSelector, TxDetail), RpcError> {
    const USAGE: &str = "getBlock expects {\"height\": n}, {\"hash\": \"hex\"}, [n] or [\"hex\"], optionally with \"transactions\": \"full\" | \"hashes\"";
    let detail = |v: Option<Value>| match v {
        None => Ok(TxDetail::Full),
        Some(v) => match v.as_str() {
            Some("full") => Ok(TxDetail::Full),
            Some("hashes") => Ok(TxDetail::Hashes),
            _ => Err(RpcError::invalid_params(
                "transactions: must be \"full\" or \"hashes\"",
            )),
        },
    };
    let (name, value, detail) = match params {
        Params::Positional(mut v) if (1..=2).contains(&v.len()) => {
            let second = (v.len() == 2).then(|| v.remove(1));
            let value = v.remove(0);
            let name = if value.is_string() { "hash" } else { "height" };
            (name, value, detail(second)?)
        }
        Params::Named(mut m) if (1..=2).contains(&m.len()) => {
            let detail = detail(m.remove("transactions"))?;
            if m.len() != 1 {
                return Err(RpcError::invalid_params(USAGE));
            }
            let (k, v) = m.into_iter().next().expect("len is 1");
            match k.as_str() {
                "height" => ("height", v, detail),
                "hash" => ("hash", v, detail),
                _ => {
                    return Err(RpcError::invalid_params(format!(
                        "unknown param `{}`; {USAGE}",
                        truncate(&k)
                    )));
                }
            }
        }
        _ => return Err(RpcError::invalid_params(USAGE)),
    };
    let selector = block_selector_value(name, value)?;
    Ok((selector, detail))
}

fn block_selector_value(name: &str, value: Value) -> Result<BlockSelector, RpcError> {
    if name == "hash" {
        let s = value.as_str().ok_or_else(|| {
            RpcError::invalid_params("hash: must be a string of 64 hex characters")
        })?;
        Ok(BlockSelector::Hash(parse_hash("hash", s)?))
    } else {
        let h = value
            .as_u64()
            .ok_or_else(|| RpcError::invalid_params("height: must be a non-negative integer"))?;
        Ok(BlockSelector::Height(h))
    }
}

/// Params normalized to named form: positional params are matched to `names` in order.
struct Args {
    map: Map<String, Value>,
}

impl Args {
    fn new(method: &str, params: Params, names: &[&str]) -> Result<Args, RpcError> {
        let map = match params {
            Params::None => Map::new(),
            Params::Positional(v) => {
                if v.len() > names.len() {
                    return Err(RpcError::invalid_params(format!(
                        "{method} takes at most {} positional params ({}), got {}",
                        names.len(),
                        names.join(", "),
                        v.len()
                    )));
                }
                names.iter().map(|n| n.to_string()).zip(v).collect()
            }
            Params::Named(m) => {
                if let Some(k) = m.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(RpcError::invalid_params(format!(
                        "{method}: unknown param `{}` (expected: {})",
                        truncate(k),
                        names.join(", ")
                    )));
                }
                m
            }
        };
        Ok(Args { map })
    }

    fn required_str(&mut self, name: &str) -> Result<String, RpcError> {
        match self.map.remove(name) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => {
                Err(RpcError::invalid_params(format!("missing param `{name}`")))
            }
            Some(_) => Err(RpcError::invalid_params(format!(
                "param `{name}` must be a string"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn named(v: Value) -> Params {
        Params::Named(v.as_object().unwrap().clone())
    }

    #[test]
    fn args_positional_and_named() {
        let mut a = Args::new("m", Params::Positional(vec![json!("x")]), &["address"]).unwrap();
        assert_eq!(a.required_str("address").unwrap(), "x");
        let mut a = Args::new("m", named(json!({"address": "y"})), &["address"]).unwrap();
        assert_eq!(a.required_str("address").unwrap(), "y");
        assert!(
            Args::new(
                "m",
                Params::Positional(vec![json!(1), json!(2)]),
                &["address"]
            )
            .is_err()
        );
        assert!(Args::new("m", named(json!({"adress": "y"})), &["address"]).is_err());
        let mut a = Args::new("m", Params::None, &["address"]).unwrap();
        assert!(
            a.required_str("address")
                .unwrap_err()
                .to_string()
                .contains("missing param `address`")
        );
        let mut a = Args::new("m", Params::Positional(vec![json!(5)]), &["address"]).unwrap();
        assert!(
            a.required_str("address")
                .unwrap_err()
                .to_string()
                .contains("must be a string")
        );
    }

    #[test]
    fn block_selector_forms() {
        let h = Hash([3; 32]).to_hex();
        assert!(matches!(
            block_selector(Params::Positional(vec![json!(4)])),
            Ok((BlockSelector::Height(4), TxDetail::Full))
        ));
        assert!(matches!(
            block_selector(named(json!({"height": 9}))),
            Ok((BlockSelector::Height(9), TxDetail::Full))
        ));
        assert!(matches!(
            block_selector(Params::Positional(vec![json!(h)])),
            Ok((BlockSelector::Hash(_), TxDetail::Full))
        ));
        assert!(matches!(
            block_selector(named(json!({"hash": h}))),
            Ok((BlockSelector::Hash(_), TxDetail::Full))
        ));
        assert!(matches!(
            block_selector(Params::Positional(vec![json!(4), json!("hashes")])),
            Ok((BlockSelector::Height(4), TxDetail::Hashes))
        ));
        assert!(matches!(
            block_selector(named(json!({"hash": h, "transactions": "hashes"}))),
            Ok((BlockSelector::Hash(_), TxDetail::Hashes))
        ));
        assert!(matches!(
            block_selector(named(json!({"height": 2, "transactions": "full"}))),
            Ok((BlockSelector::Height(2), TxDetail::Full))
        ));
        for bad in [
            Params::None,
            Params::Positional(vec![]),
            Params::Positional(vec![json!(-1)]),
            Params::Positional(vec![json!(1.5)]),
            Params::Positional(vec![json!("zz")]),
            named(json!({"height": 1, "hash": h})),
            named(json!({"height": 1, "transactions": "all"})),
            named(json!({"transactions": "hashes"})),
            Params::Positional(vec![json!(1), json!("hashes"), json!(2)]),
            named(json!({"number": 1})),
            named(json!({"hash": 1})),
        ] {
            assert_eq!(
                block_selector(bad).err().unwrap().code(),
                codes::INVALID_PARAMS
            );
        }
    }

    #[test]
    fn tx_hex_checks_in_order() {
        let too_long = "0".repeat(TX_HEX_CHARS_MAX + 2);
        let e = decode_tx_hex(&too_long).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
        // Over-long *and* not hex: the length check wins (no decoding attempted).
        let e = decode_tx_hex(&"zz".repeat(TX_HEX_CHARS_MAX))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the limit"), "{e}");
        let e = decode_tx_hex("abc").unwrap_err().to_string();
        assert!(e.contains("not valid hex"), "{e}");
        let e = decode_tx_hex("00ff").unwrap_err().to_string();
        assert!(e.contains("malformed transaction"), "{e}");
    }

    /// issue 15: every decoding error is -32602 with a reason, a chain id over 32 bytes
    /// included (it was -32010 `malformed`, from the backend).
    #[test]
    fn decoding_errors_are_invalid_params_with_a_reason() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let long_chain = cairn_ledger::TransactionBody {
            chain_id: "c".repeat(cairn_ledger::CHAIN_ID_BYTES_MAX + 1),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce: 0,
            expiry_height: 9,
            action: cairn_ledger::Action::Transfer {
                recipient: Address([1; 32]),
                amount: 1,
            },
        }
        .sign(&key);
        let long_chain_hex = hex::encode(long_chain.encode());
        let too_long = "0".repeat(TX_HEX_CHARS_MAX + 2);
        for (input, reason) in [
            (too_long.as_str(), "oversize"),
            ("abc", "bad_hex"),
            ("zz", "bad_hex"),
            ("00ff", "malformed"),
            (long_chain_hex.as_str(), "malformed"),
        ] {
            let e = decode_tx_hex(input).unwrap_err();
            assert_eq!(e.code(), codes::INVALID_PARAMS, "{input:.20}");
            assert_eq!(e.reason(), reason, "{input:.20}: {e}");
            assert_eq!(e.to_error_object().data, Some(json!({ "reason": reason })));
        }
        let e = decode_tx_hex_array(Some(json!(["00", long_chain_hex]))).unwrap_err();
        assert_eq!((e.code(), e.reason()), (codes::INVALID_PARAMS, "malformed"));
        assert!(e.to_string().contains("txs[0]"), "{e}");
        let e = address_param("m", Params::Positional(vec![json!("cairn1qqqq")])).unwrap_err();
        assert_eq!(e.reason(), "bad_address");
        assert_eq!(parse_hash("hash", "abcd").unwrap_err().reason(), "bad_hash");
        let e = address_param("m", Params::None).unwrap_err();
        assert_eq!(e.reason(), "invalid_params");
    }
}
