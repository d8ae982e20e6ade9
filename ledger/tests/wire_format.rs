//! Parses the test vectors out of `docs/wire-format.md` and checks every field against the
//! code (and, where the rule is simple, against an independent computation with blake3 and
//! ed25519-dalek directly), so the document cannot drift.

use std::collections::BTreeMap;

use cairn_ledger::{
    Account, Address, BlockHeader, Hash, LtHash, SignedTransaction, TX_BYTES_MAX, TransactionBody,
    txs_root,
};
use ed25519_dalek::{Signer, SigningKey};

type Vector = BTreeMap<String, String>;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/wire-format.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every fenced block opened with ```` ```vector ````, as `key: value` maps.
fn vectors(doc: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut current: Option<Vector> = None;
    for line in doc.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == "```vector" => current = Some(Vector::new()),
            None => {}
            Some(v) if trimmed == "```" => {
                out.push(std::mem::take(v));
                current = None;
            }
            Some(v) => {
                let (k, val) = trimmed
                    .split_once(':')
                    .unwrap_or_else(|| panic!("vector line without `key:`: {line}"));
                let prev = v.insert(k.trim().to_string(), val.trim().to_string());
                assert!(prev.is_none(), "duplicate key {k}");
            }
        }
    }
    assert!(current.is_none(), "unterminated vector block");
    out
}

fn field<'a>(v: &'a Vector, k: &str) -> &'a str {
    v.get(k)
        .unwrap_or_else(|| panic!("vector {:?} lacks `{k}`", v.get("name")))
        .as_str()
}

fn hex_field(v: &Vector, k: &str) -> Vec<u8> {
    hex::decode(field(v, k)).unwrap_or_else(|e| panic!("`{k}` is not hex: {e}"))
}

fn hex32(v: &Vector, k: &str) -> [u8; 32] {
    hex_field(v, k)
        .try_into()
        .unwrap_or_else(|_| panic!("`{k}` is not 32 bytes"))
}

fn num(v: &Vector, k: &str) -> u64 {
    field(v, k)
        .parse()
        .unwrap_or_else(|e| panic!("`{k}` is not a u64: {e}"))
}

fn by_kind(kind: &str) -> Vec<Vector> {
    vectors(&doc())
        .into_iter()
        .filter(|v| v.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

#[test]
fn parser_reads_fenced_vectors() {
    let sample =
        "text\n```vector\nkind: x\na: 1\n```\n```rust\nnot: this\n```\n```vector\nkind: y\n```\n";
    let v = vectors(sample);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["a"], "1");
    assert_eq!(v[1]["kind"], "y");
}

#[test]
fn document_has_the_required_vectors() {
    let all = vectors(&doc());
    assert!(
        by_kind("transaction").len() >= 2,
        "need at least 2 transaction vectors"
    );
    assert!(!by_kind("block_header").is_empty());
    assert!(by_kind("txs_root").len() >= 3);
    assert!(by_kind("state_root").len() >= 2);
    assert!(by_kind("governance_transaction").len() >= 2);
    assert_eq!(by_kind("state_root_governance").len(), 1);
    for v in &all {
        assert!(v.contains_key("kind"), "vector without kind: {v:?}");
    }
}

#[test]
fn transaction_vectors() {
    for v in by_kind("transaction") {
        let seed = hex32(&v, "seed");
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(hex32(&v, "public_key"), key.verifying_key().to_bytes());
        let sender = Address(hex32(&v, "sender"));
        assert_eq!(sender, Address::from_public_key(&key.verifying_key()));
        assert_eq!(field(&v, "sender_bech32"), sender.to_bech32());
        assert_eq!(
            field(&v, "sender_bech32").parse::<Address>().unwrap(),
            sender
        );

        let body = TransactionBody {
            chain_id: field(&v, "chain_id").to_string(),
            sender,
            fee: num(&v, "fee"),
            nonce: num(&v, "nonce"),
            expiry_height: num(&v, "expiry_height"),
            action: cairn_ledger::Action::Transfer {
                recipient: Address(hex32(&v, "recipient")),
                amount: num(&v, "amount"),
            },
        };

        // body bytes: the documented layout, built by hand, and borsh agree
        let body_bytes = hex_field(&v, "body_bytes");
        let mut manual = Vec::new();
        manual.extend((body.chain_id.len() as u32).to_le_bytes());
        manual.extend(body.chain_id.as_bytes());
        manual.extend(body.sender.0);
        for n in [body.fee, body.nonce, body.expiry_height] {
            manual.extend(n.to_le_bytes());
        }
        manual.push(0); // action tag: transfer
        manual.extend(body.recipient().unwrap().0);
        manual.extend(body.amount().to_le_bytes());
        assert_eq!(manual.len(), 101 + body.chain_id.len());
        assert_eq!(body_bytes, manual);
        assert_eq!(borsh::to_vec(&body).unwrap(), body_bytes);
        assert_eq!(
            borsh::from_slice::<TransactionBody>(&body_bytes).unwrap(),
            body
        );

        // digest = hash = blake3 derive_key("cairn transaction v2", body_bytes)
        let hash = hex32(&v, "hash");
        assert_eq!(
            blake3::derive_key("cairn transaction v2", &body_bytes),
            hash
        );
        assert_eq!(body.hash(), Hash(hash));

        // signature: RFC 8032 ed25519 (deterministic) over the 32-byte digest
        let signature = hex_field(&v, "signature");
        assert_eq!(key.sign(&hash).to_bytes().to_vec(), signature);
        let tx = body.clone().sign(&key);
        assert_eq!(tx.signature.to_vec(), signature);
        tx.verify(&body.chain_id).unwrap();
        assert_eq!(tx.hash(), Hash(hash));

        // signed bytes = body bytes ‖ signature
        let signed = hex_field(&v, "signed_bytes");
        assert_eq!(
            signed,
            [body_bytes.as_slice(), signature.as_slice()].concat()
        );
        assert_eq!(tx.encode(), signed);
        assert!(signed.len() <= TX_BYTES_MAX);
        assert_eq!(SignedTransaction::decode(&signed).unwrap(), tx);

        // signed hash = blake3 derive_key("cairn signed transaction v2", signed bytes)
        let signed_hash = hex32(&v, "signed_hash");
        assert_eq!(
            blake3::derive_key("cairn signed transaction v2", &signed),
            signed_hash
        );
        assert_eq!(tx.signed_hash(), Hash(signed_hash));
    }
}

#[test]
fn txs_root_vectors() {
    for v in by_kind("txs_root") {
        let leaves: Vec<Hash> = field(&v, "leaves")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Hash::from_hex(s.trim()).unwrap())
            .collect();
        let root = Hash(hex32(&v, "root"));
        assert_eq!(txs_root(&leaves), root, "leaves {leaves:?}");
        // independent computation of the documented rule
        let leaf = |h: &Hash| blake3::derive_key("cairn merkle leaf v1", &h.0);
        let node = |l: &[u8; 32], r: &[u8; 32]| {
            blake3::derive_key("cairn merkle node v1", &[&l[..], &r[..]].concat())
        };
        let expected = match leaves.as_slice() {
            [] => blake3::derive_key("cairn merkle leaf v1", b""),
            [a] => leaf(a),
            [a, b] => node(&leaf(a), &leaf(b)),
            [a, b, c] => node(&node(&leaf(a), &leaf(b)), &leaf(c)),
            _ => root.0,
        };
        assert_eq!(Hash(expected), root);
    }
}

#[test]
fn state_root_vectors() {
    for v in by_kind("state_root") {
        let accounts: Vec<(Address, Account)> = field(&v, "accounts")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let parts: Vec<&str> = entry.trim().split(':').collect();
                assert_eq!(parts.len(), 3, "account entry `{entry}`");
                let a: [u8; 32] = hex::decode(parts[0]).unwrap().try_into().unwrap();
                (
                    Address(a),
                    Account {
                        balance: parts[1].parse().unwrap(),
                        nonce: parts[2].parse().unwrap(),
                    },
                )
            })
            .collect();
        let lthash = LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc)));
        assert_eq!(
            lthash.to_bytes()[..32].to_vec(),
            hex_field(&v, "lthash_first_32_bytes")
        );
        let root = Hash(hex32(&v, "root"));
        assert_eq!(lthash.root(), root);
        // independent computation: XOF elements summed lane-wise mod 2^16, then derive_key
        let mut lanes = [0u16; 1024];
        for (a, acc) in &accounts {
            let mut h = blake3::Hasher::new_derive_key("cairn state account v1");
            h.update(&a.0);
            h.update(&acc.balance.to_le_bytes());
            h.update(&acc.nonce.to_le_bytes());
            let mut out = [0u8; 2048];
            h.finalize_xof().fill(&mut out);
            for (lane, c) in lanes.iter_mut().zip(out.chunks_exact(2)) {
                *lane = lane.wrapping_add(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        let bytes: Vec<u8> = lanes.iter().flat_map(|l| l.to_le_bytes()).collect();
        assert_eq!(
            Hash(blake3::derive_key("cairn state root v1", &bytes)),
            root
        );
    }
}

/// The header vector's roots are the one-leaf roots over the "simple transfer" vector: its
/// id for `txs_root`, its signed hash for `signed_txs_root`.
#[test]
fn block_header_vector_roots_are_the_simple_transfers() {
    let tx = by_kind("transaction")
        .into_iter()
        .find(|v| field(v, "name") == "simple transfer")
        .expect("the simple transfer vector");
    let header = by_kind("block_header").remove(0);
    let leaf = |h: [u8; 32]| blake3::derive_key("cairn merkle leaf v1", &h);
    assert_eq!(hex32(&header, "txs_root"), leaf(hex32(&tx, "hash")));
    assert_eq!(
        hex32(&header, "signed_txs_root"),
        leaf(hex32(&tx, "signed_hash"))
    );
}

#[test]
fn block_header_vectors() {
    for v in by_kind("block_header") {
        let header = BlockHeader {
            chain_id: field(&v, "chain_id").to_string(),
            height: num(&v, "height"),
            view: num(&v, "view"),
            parent_hash: Hash(hex32(&v, "parent_hash")),
            proposer: Address(hex32(&v, "proposer")),
            timestamp_ms: num(&v, "timestamp_ms"),
            txs_root: Hash(hex32(&v, "txs_root")),
            signed_txs_root: Hash(hex32(&v, "signed_txs_root")),
            state_root: Hash(hex32(&v, "state_root")),
        };
        let bytes = hex_field(&v, "header_bytes");
        let mut manual = Vec::new();
        manual.extend((header.chain_id.len() as u32).to_le_bytes());
        manual.extend(header.chain_id.as_bytes());
        manual.extend(header.height.to_le_bytes());
        manual.extend(header.view.to_le_bytes());
        manual.extend(header.parent_hash.0);
        manual.extend(header.proposer.0);
        manual.extend(header.timestamp_ms.to_le_bytes());
        manual.extend(header.txs_root.0);
        manual.extend(header.signed_txs_root.0);
        manual.extend(header.state_root.0);
        assert_eq!(manual.len(), 188 + header.chain_id.len());
        assert_eq!(bytes, manual);
        assert_eq!(borsh::to_vec(&header).unwrap(), bytes);
        let hash = hex32(&v, "hash");
        assert_eq!(blake3::derive_key("cairn block header v2", &bytes), hash);
        assert_eq!(header.hash(), Hash(hash));
    }
}

#[test]
fn governance_transaction_vectors() {
    for v in by_kind("governance_transaction") {
        let key = SigningKey::from_bytes(&hex32(&v, "seed"));
        let body_bytes = hex_field(&v, "body_bytes");
        let body: TransactionBody = borsh::from_slice(&body_bytes).unwrap();
        assert_eq!(borsh::to_vec(&body).unwrap(), body_bytes);
        assert_eq!(body.sender, Address::from_public_key(&key.verifying_key()));
        let action: cairn_ledger::Action = serde_json::from_str(field(&v, "action_json")).unwrap();
        assert_eq!(body.action, action);
        assert_ne!(action.kind(), "transfer");
        // The digest, independently: derive_key over the body bytes.
        let digest = blake3::derive_key("cairn transaction v2", &body_bytes);
        assert_eq!(hex32(&v, "hash"), digest);
        assert_eq!(body.hash().0, digest);
        let signature = key.sign(&digest).to_bytes();
        assert_eq!(hex_field(&v, "signature"), signature.to_vec());
        let signed_bytes = hex_field(&v, "signed_bytes");
        assert_eq!(signed_bytes, [body_bytes.as_slice(), &signature].concat());
        assert!(signed_bytes.len() <= TX_BYTES_MAX);
        let tx = SignedTransaction::decode(&signed_bytes).unwrap();
        tx.verify(&body.chain_id).unwrap();
    }
}

#[test]
fn governance_state_root_vector() {
    let v = &by_kind("state_root_governance")[0];
    let bytes = hex_field(v, "governance_bytes");
    let record: cairn_ledger::governance::Governance = borsh::from_slice(&bytes).unwrap();
    record.validate().unwrap();
    assert_eq!(borsh::to_vec(&record).unwrap(), bytes);
    let holder = Address(hex32(v, "transact"));
    // Independently: two XOF elements (governance over its bytes, permissions over address
    // and the permissions byte), summed lane by lane.
    let element = |context: &str, input: &[u8]| {
        let mut out = [0u8; 2048];
        blake3::Hasher::new_derive_key(context)
            .update(input)
            .finalize_xof()
            .fill(&mut out);
        out
    };
    let g = element("cairn state governance v1", &bytes);
    let p = element(
        "cairn state permissions v1",
        &[holder.0.as_slice(), &[1u8]].concat(),
    );
    let mut lanes = [0u8; 2048];
    for i in 0..1024 {
        let a = u16::from_le_bytes([g[2 * i], g[2 * i + 1]]);
        let b = u16::from_le_bytes([p[2 * i], p[2 * i + 1]]);
        lanes[2 * i..2 * i + 2].copy_from_slice(&a.wrapping_add(b).to_le_bytes());
    }
    assert_eq!(hex::encode(&lanes[..32]), field(v, "lthash_first_32_bytes"));
    let root = blake3::derive_key("cairn state root v1", &lanes);
    assert_eq!(hex32(v, "root"), root);
    let mut lthash = LtHash::zero();
    lthash.update_governance(None, Some(&record));
    lthash.update_permissions(
        &holder,
        cairn_ledger::governance::Permissions::default(),
        cairn_ledger::governance::Permissions::default()
            .with(cairn_ledger::governance::Permission::Transact),
    );
    assert_eq!(lthash.root().0, root);
}

/// A state-snapshot chunk of accounts (`accounts` as in the state-root vectors, in
/// ascending address order): its bytes, built independently (u32 LE count, then per
/// account variant byte 0, address, balance u64 LE, nonce u64 LE), equal the code's
/// encoding, and its hash is `derive_key("cairn snapshot chunk v1", bytes)`.
#[test]
fn snapshot_chunk_vectors() {
    use cairn_ledger::snapshot::{SnapshotEntry, chunk_hash};
    let all = by_kind("snapshot_chunk");
    assert!(!all.is_empty(), "need a snapshot_chunk vector");
    for v in all {
        let mut expected = Vec::new();
        let mut entries = Vec::new();
        let list: Vec<&str> = field(&v, "accounts").split(',').collect();
        expected.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for entry in list {
            let parts: Vec<&str> = entry.trim().split(':').collect();
            let a: [u8; 32] = hex::decode(parts[0]).unwrap().try_into().unwrap();
            let (balance, nonce): (u64, u64) =
                (parts[1].parse().unwrap(), parts[2].parse().unwrap());
            expected.push(0);
            expected.extend_from_slice(&a);
            expected.extend_from_slice(&balance.to_le_bytes());
            expected.extend_from_slice(&nonce.to_le_bytes());
            entries.push(SnapshotEntry::Account {
                address: Address(a),
                account: Account { balance, nonce },
            });
        }
        assert_eq!(borsh::to_vec(&entries).unwrap(), expected);
        assert_eq!(hex_field(&v, "chunk_bytes"), expected);
        let hash = Hash(hex32(&v, "chunk_hash"));
        assert_eq!(chunk_hash(&expected), hash);
        assert_eq!(
            Hash(blake3::derive_key("cairn snapshot chunk v1", &expected)),
            hash
        );
    }
}
