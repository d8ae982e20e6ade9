//! cairn-rpc
