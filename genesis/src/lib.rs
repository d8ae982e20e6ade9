//! cairn-genesis
