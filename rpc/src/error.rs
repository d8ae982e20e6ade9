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
}

/// What an [`crate::RpcBackend`] method can fail with. Each variant maps to one JSON-RPC
/// error code (see [`RpcError::code`]).
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
    /// The thing asked for does not exist (code -32004).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The node is overloaded; retry later (code -32005).
    #[error("overloaded: {message}")]
    Overloaded {
        /// Human-readable explanation.
        message: String,
    },
    /// The node failed (code -32603).
    #[error("internal error: {message}")]
    Internal {
        /// Human-readable explanation.
        message: String,
    },
    /// The params are not acceptable (code -32602).
    #[error("invalid params: {message}")]
    InvalidParams {
        /// What is wrong with them.
        message: String,
    },
}

impl RpcError {
    /// The JSON-RPC error code of this error.
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Rejected { .. } => codes::REJECTED,
            RpcError::NotFound { .. } => codes::NOT_FOUND,
            RpcError::Overloaded { .. } => codes::OVERLOADED,
            RpcError::Internal { .. } => codes::INTERNAL_ERROR,
            RpcError::InvalidParams { .. } => codes::INVALID_PARAMS,
        }
    }

    /// The JSON-RPC error object sent for this error. `message` is the `Display` text;
    /// `Rejected` carries `data: {"reason": code}`, `NotFound` carries `data: {"what": …}`.
    pub fn to_error_object(&self) -> ErrorObject {
        let data = match self {
            RpcError::Rejected { code, .. } => Some(json!({ "reason": code })),
            RpcError::NotFound { what } => Some(json!({ "what": what })),
            _ => None,
        };
        ErrorObject {
            code: self.code(),
            message: self.to_string(),
            data,
        }
    }

    /// Shorthand for [`RpcError::InvalidParams`].
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::InvalidParams {
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

/// The JSON-RPC 2.0 error object: `{"code": …, "message": …, "data"?: …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error code (see [`codes`]).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// Structured detail, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
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
        assert_eq!(RpcError::NotFound { what: "x".into() }.code(), -32004);
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
