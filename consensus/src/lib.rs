//! cairn-consensus
