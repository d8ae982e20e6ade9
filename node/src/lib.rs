//! cairn-node
