//! Errors a backend returns, the JSON-RPC error object, and the error codes.

use cairn_ledger::LedgerError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// JSON-RPC error codes used by the server.
pub mod codes {
    /// The body is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC 2.0 request object (or an empty or oversize batch).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params missing, of the wrong shape, or not decodable.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The node failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The named thing does not exist.
    pub const NOT_FOUND: i64 = -32004;
    /// The node is overloaded (or its mempool is full); retry later.
    pub const OVERLOADED: i64 = -32005;
    /// The node rejected the transaction; `data.reason` holds the stable reason code.
    pub const REJECTED: i64 = -32010;

    /// The `data.reason` an error with `code` carries when nothing more specific applies:
    /// `parse_error`, `invalid_request`, `method_not_found`, `invalid_params`, `internal`,
    /// `not_found`, `overloaded`, `rejected` (a -32010 always carries a specific reason).
    pub fn default_reason(code: i64) -> &'static str {
        match code {
            PARSE_ERROR => "parse_error",
            INVALID_REQUEST => "invalid_request",
            METHOD_NOT_FOUND => "method_not_found",
            INVALID_PARAMS => "invalid_params",
            NOT_FOUND => "not_found",
            OVERLOADED => "overloaded",
            REJECTED => "rejected",
            _ => "internal",
        }
    }
}

/// Stable `data.reason` values of -32602 errors for input that does not decode (the
/// generic one is `invalid_params`). Every reason code is listed in docs/wire-format.md.
pub mod reasons {
    /// A hex string or array longer than its limit (checked before decoding).
    pub const OVERSIZE: &str = "oversize";
    /// Not hex (odd length or a non-hex character).
    pub const BAD_HEX: &str = "bad_hex";
    /// Hex of bytes that are not a well-formed transaction (wire format, chain id of at
    /// most 32 bytes).
    pub const MALFORMED: &str = "malformed";
    /// Not a bech32m `cairn1…` address.
    pub const BAD_ADDRESS: &str = "bad_address";
    /// Not a 32-byte hash in hex.
    pub const BAD_HASH: &str = "bad_hash";
    /// Any other problem with the params (missing, wrong type, unknown name, …).
    pub const INVALID_PARAMS: &str = "invalid_params";
}

/// What an [`crate::RpcBackend`] method can fail with. Each variant maps to one JSON-RPC
/// error code (see [`RpcError::code`]) and carries a stable snake_case reason
/// ([`RpcError::reason`]), sent as `data.reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The node refuses the transaction (code -32010, `data: {"reason": code}`).
    #[error("transaction rejected: {code}: {message}")]
    Rejected {
        /// Stable reason code, normally [`LedgerError::code`] (`insufficient_balance`, …).
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// The thing asked for does not exist (code -32004, reason `not_found`).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The finalized block asked for exists but this node pruned its body
    /// (`[storage] retain_blocks`): code -32004, reason `pruned`, with `data.height` and
    /// `data.lowestRetainedHeight` (ask a node that keeps it, or a height from there on).
    #[error(
        "block {height} was pruned: this node holds block bodies from height {lowest_retained_height}"
    )]
    Pruned {
        /// The height asked for (or of the block whose hash was asked for).
        height: u64,
        /// The lowest height whose body the node holds (`getStatus`
        /// `lowestRetainedHeight`).
        lowest_retained_height: u64,
    },
    /// The node is overloaded; retry later (code -32005, reason `overloaded`).
    #[error("overloaded: {message}")]
    Overloaded {
        /// Human-readable explanation.
        message: String,
    },
    /// The node failed (code -32603, reason `internal`).
    #[error("internal error: {message}")]
    Internal {
        /// Human-readable explanation.
        message: String,
    },
    /// The params are not acceptable (code -32602).
    #[error("invalid params: {message}")]
    InvalidParams {
        /// Stable reason code: one of [`reasons`] (`invalid_params` unless the input does
        /// not decode).
        reason: &'static str,
        /// What is wrong with them.
        message: String,
    },
}

impl RpcError {
    /// The JSON-RPC error code of this error.
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Rejected { .. } => codes::REJECTED,
            RpcError::NotFound { .. } | RpcError::Pruned { .. } => codes::NOT_FOUND,
            RpcError::Overloaded { .. } => codes::OVERLOADED,
            RpcError::Internal { .. } => codes::INTERNAL_ERROR,
            RpcError::InvalidParams { .. } => codes::INVALID_PARAMS,
        }
    }

    /// The stable snake_case reason sent as `data.reason` (and as `reason` of a refused
    /// `sendTransactions` item).
    pub fn reason(&self) -> &str {
        match self {
            RpcError::Rejected { code, .. } => code,
            RpcError::InvalidParams { reason, .. } => reason,
            RpcError::Pruned { .. } => "pruned",
            other => codes::default_reason(other.code()),
        }
    }

    /// The message without the prefix `Display` adds (for a refusal: the explanation).
    pub fn detail(&self) -> &str {
        match self {
            RpcError::Rejected { message, .. }
            | RpcError::Overloaded { message }
            | RpcError::Internal { message }
            | RpcError::InvalidParams { message, .. } => message,
            RpcError::NotFound { what } => what,
            RpcError::Pruned { .. } => "block body pruned",
        }
    }

    /// The JSON-RPC error object sent for this error. `message` is the `Display` text;
    /// `data` is `{"reason": …}`, plus `"what"` for `NotFound`, `"height"` and
    /// `"lowestRetainedHeight"` for `Pruned`.
    pub fn to_error_object(&self) -> ErrorObject {
        let mut data = json!({ "reason": self.reason() });
        match self {
            RpcError::NotFound { what } => data["what"] = json!(what),
            RpcError::Pruned {
                height,
                lowest_retained_height,
            } => {
                data["height"] = json!(height);
                data["lowestRetainedHeight"] = json!(lowest_retained_height);
            }
            _ => {}
        }
        ErrorObject {
            code: self.code(),
            message: self.to_string(),
            data: Some(data),
        }
    }

    /// Shorthand for [`RpcError::InvalidParams`] with reason `invalid_params`.
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::InvalidParams {
            reason: reasons::INVALID_PARAMS,
            message: message.into(),
        }
    }

    /// [`RpcError::InvalidParams`] with a specific reason (one of [`reasons`]).
    pub fn invalid_input(reason: &'static str, message: impl Into<String>) -> RpcError {
        RpcError::InvalidParams {
            reason,
            message: message.into(),
        }
    }

    /// Shorthand for [`RpcError::Internal`].
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::Internal {
            message: message.into(),
        }
    }
}

/// A ledger error as the node would report it: storage failures ([`LedgerError::is_fatal`])
/// become [`RpcError::Internal`]; everything else is a rejection of the input, carrying
/// [`LedgerError::code`] as the reason.
impl From<LedgerError> for RpcError {
    fn from(e: LedgerError) -> RpcError {
        if e.is_fatal() {
            RpcError::Internal {
                message: e.to_string(),
            }
        } else {
            RpcError::Rejected {
                code: e.code().to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// The JSON-RPC 2.0 error object: `{"code": …, "message": …, "data": {"reason": …, …}}`.
/// Every error the server sends carries `data.reason`, a stable snake_case string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error code (see [`codes`]).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// Structured detail: `{"reason": …}` and, for some errors, more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error whose `data.reason` is the code's [`codes::default_reason`].
    pub fn new(code: i64, message: impl Into<String>) -> ErrorObject {
        ErrorObject::with_reason(code, codes::default_reason(code), message)
    }

    /// An error with `data: {"reason": reason}`.
    pub fn with_reason(code: i64, reason: &str, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code,
            message: message.into(),
            data: Some(json!({ "reason": reason })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::Hash;

    #[test]
    fn codes_and_data() {
        let r = RpcError::Rejected {
            code: "stale_nonce".into(),
            message: "nonce 1 already used".into(),
        };
        let o = r.to_error_object();
        assert_eq!(o.code, -32010);
        assert_eq!(o.data, Some(json!({"reason": "stale_nonce"})));
        assert_eq!(
            o.message,
            "transaction rejected: stale_nonce: nonce 1 already used"
        );
        let pruned = RpcError::Pruned {
            height: 5,
            lowest_retained_height: 1025,
        };
        let o = pruned.to_error_object();
        assert_eq!(o.code, -32004);
        assert_eq!(
            o.data,
            Some(json!({"reason": "pruned", "height": 5, "lowestRetainedHeight": 1025}))
        );
        let nf = RpcError::NotFound { what: "x".into() };
        assert_eq!(nf.code(), -32004);
        assert_eq!(
            nf.to_error_object().data,
            Some(json!({"reason": "not_found", "what": "x"}))
        );
        assert_eq!(
            RpcError::invalid_input(reasons::BAD_HEX, "x")
                .to_error_object()
                .data,
            Some(json!({"reason": "bad_hex"}))
        );
        for code in [-32700, -32600, -32601, -32602, -32603, -32004, -32005] {
            let o = ErrorObject::new(code, "m");
            let reason = o.data.as_ref().unwrap()["reason"].as_str().unwrap();
            assert!(
                !reason.is_empty() && reason.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}: {reason}"
            );
        }
        assert_eq!(
            RpcError::Overloaded {
                message: "x".into()
            }
            .code(),
            -32005
        );
        assert_eq!(RpcError::internal("x").code(), -32603);
        assert_eq!(RpcError::invalid_params("x").code(), -32602);
    }

    #[test]
    fn ledger_error_mapping() {
        let e = LedgerError::InsufficientBalance {
            tx: Hash::ZERO,
            balance: 1,
            needed: 2,
        };
        match RpcError::from(e) {
            RpcError::Rejected { code, .. } => assert_eq!(code, "insufficient_balance"),
            other => panic!("unexpected {other:?}"),
        }
        let e = LedgerError::Storage {
            reason: "disk".into(),
        };
        assert!(matches!(RpcError::from(e), RpcError::Internal { .. }));
    }
}
