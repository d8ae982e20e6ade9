use super::*;
use serde_json::{Value, json};

fn consensus_key(seed: u8) -> Address {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    Address::from_public_key(&sk.verifying_key())
}

fn peer_id(seed: u8) -> String {
    let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes([seed; 32]).expect("32 bytes");
    let kp = libp2p_identity::ed25519::Keypair::from(secret);
    libp2p_identity::PublicKey::from(kp.public())
        .to_peer_id()
        .to_base58()
}

fn account(seed: u8) -> Address {
    Address([seed; 32])
}

fn sample() -> Genesis {
    Genesis {
        chain_id: "cairn-testnet".into(),
        genesis_time_ms: 1_764_000_000_000,
        validators: (0..4)
            .map(|i| GenesisValidator {
                name: format!("validator-{i}"),
                consensus_key: consensus_key(i + 1),
                peer_id: peer_id(i + 101),
                voting_power: u64::from(i) + 1,
            })
            .collect(),
        accounts: (0..3)
            .map(|i| GenesisAccount {
                address: account(200 + i),
                balance: 1_000_000 * (u64::from(i) + 1),
            })
            .collect(),
        params: ChainParams::default(),
        governance: Default::default(),
        generated_accounts: None,
    }
}

fn sample_value() -> Value {
    serde_json::from_str(&sample().to_json_pretty()).unwrap()
}

fn parse(v: &Value) -> Result<Genesis, GenesisError> {
    Genesis::from_json(&serde_json::to_string_pretty(v).unwrap())
}

#[test]
fn valid_file_round_trips() {
    let g = sample();
    g.validate().unwrap();
    let text = g.to_json_pretty();
    let back = Genesis::from_json(&text).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.hash(), g.hash());
    assert_eq!(back.to_json_pretty(), text);
}

#[test]
fn minimal_file_uses_default_params() {
    let mut v = sample_value();
    v.as_object_mut().unwrap().remove("params");
    let g = parse(&v).unwrap();
    assert_eq!(g.params, ChainParams::default());
    // An explicit default and an omitted one hash the same (the value is hashed).
    assert_eq!(g.hash(), sample().hash());

    let mut v = sample_value();
    v["params"] = json!({ "block_txs_max": 5 });
    let g = parse(&v).unwrap();
    assert_eq!(g.params.block_txs_max, 5);
    assert_eq!(
        g.params.leader_timeout_ms,
        ChainParams::default().leader_timeout_ms
    );
    ChainParams::default().validate().unwrap();
}

#[test]
fn hash_is_independent_of_formatting_key_order_and_account_order() {
    let g = sample();
    let h = g.hash();
    // Compact (no whitespace at all).
    let compact = serde_json::to_string(&sample_value()).unwrap();
    assert!(!compact.contains(' '));
    assert_eq!(Genesis::from_json(&compact).unwrap().hash(), h);

    // Hand-written: odd whitespace, keys in reverse order.
    let v = &g.validators;
    let a = &g.accounts;
    let mut text =
        String::from("{ \"params\" : {\"admission_difficulty_bits\":0},\n\n\t\"accounts\": [");
    for (i, acc) in a.iter().enumerate().rev() {
        if i + 1 != a.len() {
            text.push(',');
        }
        text.push_str(&format!(
            "\n   {{\"balance\":   {},\"address\":\"{}\"}}",
            acc.balance, acc.address
        ));
    }
    text.push_str("],\"validators\":[");
    for (i, val) in v.iter().enumerate() {
        if i > 0 {
            text.push_str(" , ");
        }
        text.push_str(&format!(
            "{{\"voting_power\":{},\"peer_id\":\"{}\",\"consensus_key\":\"{}\",\"name\":\"{}\"}}",
            val.voting_power, val.peer_id, val.consensus_key, val.name
        ));
    }
    text.push_str(&format!(
        "], \"genesis_time_ms\":{},\r\n\"chain_id\":\"{}\"}}",
        g.genesis_time_ms, g.chain_id
    ));
    let parsed = Genesis::from_json(&text).unwrap();
    assert_ne!(parsed.accounts, g.accounts, "accounts were reversed");
    assert_eq!(parsed.hash(), h);
}

#[test]
fn hash_commits_to_every_value_and_validator_order() {
    let base = sample();
    let h = base.hash();
    let mut variants: Vec<Genesis> = Vec::new();
    let mut g = base.clone();
    g.chain_id = "cairn-other".into();
    variants.push(g);
    let mut g = base.clone();
    g.genesis_time_ms += 1;
    variants.push(g);
    let mut g = base.clone();
    g.validators.swap(0, 1);
    variants.push(g);
    let mut g = base.clone();
    g.validators[2].voting_power += 1;
    variants.push(g);
    let mut g = base.clone();
    g.validators[1].name = "renamed".into();
    variants.push(g);
    let mut g = base.clone();
    g.accounts[0].balance += 1;
    variants.push(g);
    let mut g = base.clone();
    g.accounts.pop();
    variants.push(g);
    let mut g = base.clone();
    g.params.admission_difficulty_bits = 1;
    variants.push(g);
    let mut g = base.clone();
    g.params.mempool_sender_future_max = 65;
    variants.push(g);
    for (i, g) in variants.iter().enumerate() {
        assert_ne!(g.hash(), h, "variant {i} hashes like the base");
    }
    // Pinned: a change in the canonical encoding or context is a hard fork; update this
    // only deliberately.
    let again = Genesis::from_json(&base.to_json_pretty()).unwrap().hash();
    assert_eq!(again, h);
    let manual = Hash::derive("cairn genesis v2", &[&borsh::to_vec(&base).unwrap()]);
    assert_eq!(
        h, manual,
        "accounts of the sample are already sorted, so the canonical form is the struct"
    );
}

#[test]
fn genesis_block_commits_to_genesis_and_state() {
    let g = sample();
    let block = g.genesis_block();
    assert_eq!(block.header.height, 0);
    assert_eq!(block.header.view, 0);
    assert_eq!(block.header.chain_id, g.chain_id);
    assert_eq!(block.header.parent_hash, g.hash());
    assert_eq!(block.header.proposer, Address::default());
    assert_eq!(block.header.timestamp_ms, g.genesis_time_ms);
    assert_eq!(block.header.txs_root, txs_root(&[]));
    assert!(block.transactions.is_empty());

    let mut expected = LtHash::zero();
    for a in &g.accounts {
        expected.add(&LtHash::of_account(
            &a.address,
            &Account {
                balance: a.balance,
                nonce: 0,
            },
        ));
    }
    // The governance record is part of the state too.
    expected.add(&LtHash::of_governance(&g.governance_record()));
    assert_eq!(block.header.state_root, expected.root());
    assert_ne!(block.header.state_root, LtHash::zero().root());

    let accounts = g.initial_accounts();
    assert_eq!(accounts.len(), 3);
    for ((addr, acc), ga) in accounts.iter().zip(&g.accounts) {
        assert_eq!(*addr, ga.address);
        assert_eq!(acc.balance, ga.balance);
        assert_eq!(acc.nonce, 0);
    }
    // Account order does not change the state root either.
    let mut r = g.clone();
    r.accounts.reverse();
    assert_eq!(r.genesis_block().header.state_root, block.header.state_root);
}

#[test]
fn validator_set_and_lookups_follow_file_order() {
    let g = sample();
    let set = g.validator_set();
    assert_eq!(set.len(), g.validators.len());
    assert_eq!(set.total_power(), 1 + 2 + 3 + 4);
    for (sv, v) in set.iter().zip(&g.validators) {
        assert_eq!(Address::from_public_key(&sv.public_key), v.consensus_key);
        assert_eq!(sv.voting_power, v.voting_power);
    }
    assert_eq!(
        g.validator_by_peer_id(&g.validators[2].peer_id)
            .unwrap()
            .name,
        "validator-2"
    );
    assert!(g.validator_by_peer_id(&peer_id(99)).is_none());
    let (i, v) = g
        .validator_by_consensus_key(&g.validators[3].consensus_key)
        .unwrap();
    assert_eq!((i, v.name.as_str()), (3, "validator-3"));
    assert!(g.validators[0].consensus_public_key().is_ok());
}

#[test]
fn load_reads_and_bounds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    std::fs::write(&path, sample().to_json_pretty()).unwrap();
    assert_eq!(Genesis::load(&path).unwrap(), sample());

    let missing = dir.path().join("missing.json");
    assert!(matches!(
        Genesis::load(&missing),
        Err(GenesisError::Io { .. })
    ));

    let big = dir.path().join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(GENESIS_FILE_BYTES_MAX + 1).unwrap();
    match Genesis::load(&big) {
        Err(GenesisError::FileTooLarge { len, max, .. }) => {
            assert_eq!(len, GENESIS_FILE_BYTES_MAX + 1);
            assert_eq!(max, GENESIS_FILE_BYTES_MAX);
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }

    let bad_utf8 = dir.path().join("bad.json");
    std::fs::write(&bad_utf8, [0xff, 0xfe]).unwrap();
    assert!(
        matches!(Genesis::load(&bad_utf8), Err(GenesisError::Io { reason, .. }) if reason.contains("UTF-8"))
    );
}

#[test]
fn unknown_fields_are_rejected_everywhere() {
    for (pointer, field) in [
        ("", "extra_top"),
        ("/validators/1", "stake"),
        ("/accounts/0", "nonce"),
        ("/params", "block_time_ms"),
    ] {
        let mut v = sample_value();
        v.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(field.into(), json!(1));
        match parse(&v) {
            Err(GenesisError::UnknownField {
                field: f,
                line,
                column,
                message,
            }) => {
                assert_eq!(f, field);
                assert!(line > 0 && column > 0);
                assert!(message.contains(field), "{message}");
                let shown = parse(&v).unwrap_err().to_string();
                assert!(shown.contains(field) && shown.contains("line"), "{shown}");
            }
            other => panic!("{pointer}/{field}: expected UnknownField, got {other:?}"),
        }
    }
}

#[test]
fn bad_json_reports_line_and_column() {
    let text = "{\n  \"chain_id\": \"cairn\",\n  \"genesis_time_ms\": 1,,\n}";
    match Genesis::from_json(text) {
        Err(GenesisError::Json {
            line,
            column,
            message,
        }) => {
            assert_eq!(line, 3);
            assert!(column > 0);
            assert!(message.contains("line 3"), "{message}");
        }
        other => panic!("expected Json error, got {other:?}"),
    }
    // Missing required field.
    let mut v = sample_value();
    v.as_object_mut().unwrap().remove("validators");
    assert!(
        matches!(parse(&v), Err(GenesisError::Json { message, .. }) if message.contains("validators"))
    );
    // Wrong type.
    let mut v = sample_value();
    v["validators"][0]["voting_power"] = json!(-1);
    assert!(matches!(parse(&v), Err(GenesisError::Json { .. })));
    // Bad bech32 address (checksum).
    let mut v = sample_value();
    let mut addr = v["accounts"][1]["address"].as_str().unwrap().to_string();
    let last = addr.pop().unwrap();
    addr.push(if last == 'q' { 'p' } else { 'q' });
    v["accounts"][1]["address"] = json!(addr);
    assert!(
        matches!(parse(&v), Err(GenesisError::Json { message, .. }) if message.contains("invalid address"))
    );
}

#[test]
fn chain_id_rules() {
    let mut v = sample_value();
    v["chain_id"] = json!("");
    assert_eq!(parse(&v), Err(GenesisError::EmptyChainId));
    v["chain_id"] = json!("a".repeat(33));
    assert!(matches!(
        parse(&v),
        Err(GenesisError::ChainIdTooLong {
            len: 33,
            max: 32,
            ..
        })
    ));
    v["chain_id"] = json!("a".repeat(32));
    assert!(parse(&v).is_ok());
    v["chain_id"] = json!("cairn_Test");
    assert!(matches!(
        parse(&v),
        Err(GenesisError::ChainIdInvalidChar {
            ch: 'T',
            position: 6,
            ..
        })
    ));
    v["chain_id"] = json!("cairn net");
    assert!(matches!(
        parse(&v),
        Err(GenesisError::ChainIdInvalidChar { ch: ' ', .. })
    ));
    v["chain_id"] = json!("cairn-é");
    assert!(matches!(
        parse(&v),
        Err(GenesisError::ChainIdInvalidChar { ch: 'é', .. })
    ));
    v["chain_id"] = json!("cairn-1.test_x");
    assert!(parse(&v).is_ok());
}

#[test]
fn validator_rules() {
    let mut v = sample_value();
    v["validators"] = json!([]);
    assert_eq!(parse(&v), Err(GenesisError::NoValidators));

    let mut v = sample_value();
    v["validators"][2]["name"] = json!("validator-0");
    assert_eq!(
        parse(&v),
        Err(GenesisError::DuplicateValidatorName {
            index: 2,
            first: 0,
            name: "validator-0".into()
        })
    );

    let long = "n".repeat(65);
    for bad in ["", "has space", "ünï", long.as_str()] {
        let mut v = sample_value();
        v["validators"][1]["name"] = json!(bad);
        assert!(
            matches!(
                parse(&v),
                Err(GenesisError::InvalidValidatorName { index: 1, .. })
            ),
            "name {bad:?} accepted"
        );
    }

    let mut v = sample_value();
    v["validators"][3]["consensus_key"] = v["validators"][1]["consensus_key"].clone();
    assert!(matches!(
        parse(&v),
        Err(GenesisError::DuplicateConsensusKey { index: 3, first: 1, ref name, .. }) if name == "validator-3"
    ));

    let mut v = sample_value();
    v["validators"][3]["peer_id"] = v["validators"][0]["peer_id"].clone();
    assert!(matches!(
        parse(&v),
        Err(GenesisError::DuplicatePeerId {
            index: 3,
            first: 0,
            ..
        })
    ));

    let mut v = sample_value();
    v["validators"][1]["voting_power"] = json!(0);
    assert_eq!(
        parse(&v),
        Err(GenesisError::ZeroVotingPower {
            index: 1,
            name: "validator-1".into()
        })
    );

    let mut v = sample_value();
    v["validators"][0]["voting_power"] = json!(u64::MAX - 1);
    v["validators"][1]["voting_power"] = json!(1);
    v["validators"][2]["voting_power"] = json!(1);
    assert_eq!(
        parse(&v),
        Err(GenesisError::VotingPowerOverflow {
            index: 2,
            name: "validator-2".into()
        })
    );

    let mut v = sample_value();
    v["validators"] = json!((0..=VALIDATORS_MAX)
        .map(|i| json!({"name": format!("v{i}"), "consensus_key": consensus_key(1), "peer_id": "x", "voting_power": 1}))
        .collect::<Vec<_>>());
    assert!(
        matches!(parse(&v), Err(GenesisError::TooManyValidators { count, max: VALIDATORS_MAX }) if count == VALIDATORS_MAX + 1)
    );
}

#[test]
fn consensus_key_must_be_a_valid_strong_point() {
    // Find 32 bytes that do not decompress to a curve point.
    let invalid = (0u8..=255)
        .map(|b| {
            let mut bytes = [0u8; 32];
            bytes[0] = b;
            bytes[31] = 0x7f;
            bytes
        })
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .expect("some y has no x");
    let mut v = sample_value();
    v["validators"][2]["consensus_key"] = json!(Address(invalid));
    match parse(&v) {
        Err(GenesisError::BadConsensusKey {
            index: 2,
            name,
            reason,
            ..
        }) => {
            assert_eq!(name, "validator-2");
            assert!(reason.contains("not a valid"), "{reason}");
        }
        other => panic!("expected BadConsensusKey, got {other:?}"),
    }

    // The identity point (y = 1) decompresses but has order 1: weak.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut v = sample_value();
    v["validators"][1]["consensus_key"] = json!(Address(identity));
    match parse(&v) {
        Err(GenesisError::BadConsensusKey {
            index: 1, reason, ..
        }) => assert!(reason.contains("weak"), "{reason}"),
        other => panic!("expected weak BadConsensusKey, got {other:?}"),
    }
}

#[test]
fn peer_id_must_parse() {
    for bad in ["", "not-a-peer-id", "12D3KooW", "0OIl"] {
        let mut v = sample_value();
        v["validators"][3]["peer_id"] = json!(bad);
        match parse(&v) {
            Err(GenesisError::BadPeerId {
                index: 3,
                name,
                peer_id,
                ..
            }) => {
                assert_eq!(name, "validator-3");
                assert_eq!(peer_id, bad);
            }
            other => panic!("peer id {bad:?}: expected BadPeerId, got {other:?}"),
        }
    }
}

#[test]
fn account_rules() {
    let mut v = sample_value();
    v["accounts"][2]["address"] = v["accounts"][0]["address"].clone();
    assert_eq!(
        parse(&v),
        Err(GenesisError::DuplicateAccount {
            index: 2,
            first: 0,
            address: account(200)
        })
    );

    let mut v = sample_value();
    v["accounts"][1]["balance"] = json!(0);
    assert_eq!(
        parse(&v),
        Err(GenesisError::ZeroBalance {
            index: 1,
            address: account(201)
        })
    );

    let mut v = sample_value();
    v["accounts"][0]["balance"] = json!(u64::MAX);
    assert_eq!(
        parse(&v),
        Err(GenesisError::BalanceOverflow {
            index: 1,
            address: account(201)
        })
    );

    let mut v = sample_value();
    v["accounts"] = json!([]);
    let g = parse(&v).unwrap();
    // No accounts: the state is the governance record alone.
    let mut only_governance = LtHash::zero();
    only_governance.update_governance(None, Some(&g.governance_record()));
    assert_eq!(g.genesis_block().header.state_root, only_governance.root());
}

#[test]
fn params_out_of_range_name_the_field() {
    let cases: &[(&str, u64, bool)] = &[
        ("leader_timeout_ms", 0, false),
        ("leader_timeout_ms", TIMEOUT_MS_MAX + 1, false),
        // At most the notarization timeout (default 2000 ms).
        ("leader_timeout_ms", 2000, true),
        ("leader_timeout_ms", 2001, false),
        ("notarization_timeout_ms", 0, false),
        ("notarization_timeout_ms", TIMEOUT_MS_MAX + 1, false),
        ("nullify_retry_ms", 0, false),
        ("nullify_retry_ms", TIMEOUT_MS_MAX + 1, false),
        ("block_txs_max", 0, false),
        ("block_txs_max", BLOCK_TXS_MAX + 1, false),
        ("block_txs_max", 1, true),
        ("block_bytes_max", BLOCK_BYTES_MIN - 1, false),
        ("block_bytes_max", BLOCK_BYTES_MIN, true),
        ("block_bytes_max", BLOCK_BYTES_MAX + 1, false),
        ("block_bytes_max", BLOCK_BYTES_MAX, true),
        ("block_interval_ms", 0, true),
        ("block_interval_ms", TIMEOUT_MS_MAX + 1, false),
        // The default leader timeout is 1000 ms: the interval must stay below it.
        ("block_interval_ms", 999, true),
        ("block_interval_ms", 1000, false),
        ("mempool_txs_max", 0, false),
        ("mempool_txs_max", MEMPOOL_TXS_MAX + 1, false),
        ("mempool_bytes_max", 0, false),
        ("mempool_bytes_max", MEMPOOL_BYTES_MIN - 1, false),
        ("mempool_bytes_max", MEMPOOL_BYTES_MAX + 1, false),
        ("mempool_sender_future_max", 0, false),
        (
            "mempool_sender_future_max",
            MEMPOOL_SENDER_FUTURE_MAX + 1,
            false,
        ),
        (
            "admission_difficulty_bits",
            u64::from(ADMISSION_DIFFICULTY_BITS_MAX) + 1,
            false,
        ),
        (
            "admission_difficulty_bits",
            u64::from(ADMISSION_DIFFICULTY_BITS_MAX),
            true,
        ),
    ];
    for &(field, value, ok) in cases {
        let mut v = sample_value();
        v["params"][field] = json!(value);
        match parse(&v) {
            Ok(_) if ok => {}
            Err(GenesisError::ParamOutOfRange {
                field: f,
                value: got,
                ..
            }) if !ok => {
                assert_eq!((f, got), (field, value));
                let shown = parse(&v).unwrap_err().to_string();
                assert!(shown.contains(&format!("params.{field}")), "{shown}");
            }
            other => panic!("params.{field} = {value}: expected ok={ok}, got {other:?}"),
        }
    }
}

#[test]
fn errors_display_the_location() {
    let mut v = sample_value();
    v["validators"][1]["voting_power"] = json!(0);
    let shown = parse(&v).unwrap_err().to_string();
    assert!(
        shown.contains("validators[1]") && shown.contains("validator-1"),
        "{shown}"
    );
    let mut v = sample_value();
    v["accounts"][2]["balance"] = json!(0);
    let shown = parse(&v).unwrap_err().to_string();
    assert!(shown.contains("accounts[2]"), "{shown}");
}

const EXAMPLE: &str = include_str!("../testdata/genesis.example.json");

/// The example in the crate docs, with the `//! ` prefixes removed.
fn doc_example() -> String {
    let lib = include_str!("lib.rs");
    let start = lib.find("//! ```json\n").expect("doc example") + "//! ```json\n".len();
    let end = start + lib[start..].find("//! ```\n").expect("doc example end");
    lib[start..end]
        .lines()
        .map(|l| {
            l.strip_prefix("//!")
                .unwrap_or(l)
                .trim_start_matches(' ')
                .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn documented_example_parses_and_its_hash_is_pinned() {
    let g = Genesis::from_json(EXAMPLE).unwrap();
    assert_eq!(Genesis::from_json(&doc_example()).unwrap(), g);
    assert_eq!(g.validators[0].consensus_key, consensus_key(1));
    assert_eq!(g.validators[0].peer_id, peer_id(101));
    assert_eq!(g.accounts[0].address, account(200));
    assert_eq!(g.to_json_pretty(), EXAMPLE);
    // Pinned test vector: changing the canonical encoding or the context is a hard fork.
    // Update only deliberately (and the docs with it).
    assert_eq!(
        g.hash().to_hex(),
        "ec0c52ecaa21f98f92630aba29ec0616d3e4b529bb5871495272d1a26945acd8"
    );

    // The documented layout, encoded by hand (not through the derive).
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut b = Vec::new();
    string(&mut b, &g.chain_id);
    b.extend(g.genesis_time_ms.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    string(&mut b, &g.validators[0].name);
    b.extend(g.validators[0].consensus_key.0);
    string(&mut b, &g.validators[0].peer_id);
    b.extend(g.validators[0].voting_power.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend(g.accounts[0].address.0);
    b.extend(g.accounts[0].balance.to_le_bytes());
    let p = &g.params;
    for v in [
        p.leader_timeout_ms,
        p.notarization_timeout_ms,
        p.nullify_retry_ms,
        p.block_txs_max,
        p.block_bytes_max,
        p.block_interval_ms,
        p.mempool_txs_max,
        p.mempool_bytes_max,
        p.mempool_sender_future_max,
    ] {
        b.extend(v.to_le_bytes());
    }
    b.push(p.admission_difficulty_bits);
    let gov = &g.governance;
    b.extend(1u32.to_le_bytes());
    b.extend(gov.members[0].0);
    b.extend(gov.threshold.to_le_bytes());
    b.push(0); // accounts: open
    b.extend(0u32.to_le_bytes()); // transact: none
    b.extend(gov.proposal_ttl_blocks.to_le_bytes());
    assert_eq!(g.hash(), Hash(blake3::derive_key("cairn genesis v2", &b)));
}

fn with_governance(members: &[Address], threshold: u32) -> Genesis {
    let mut g = sample();
    g.governance.members = members.to_vec();
    g.governance.threshold = threshold;
    g
}

#[test]
fn governance_section_defaults_to_frozen_membership_and_open_accounts() {
    let mut v = sample_value();
    v.as_object_mut().unwrap().remove("governance");
    let g = parse(&v).unwrap();
    assert_eq!(g.governance, GenesisGovernance::default());
    let record = g.governance_record();
    assert!(record.members.is_empty());
    assert_eq!(record.accounts, AccountsPolicy::Open);
    assert_eq!(record.validators.len(), 4);
    assert_eq!(record.epoch, 0);
    assert_eq!(record.params, g.params);
    // Partial sections take defaults for the rest.
    let mut v = sample_value();
    v["governance"] = json!({ "accounts": "permissioned", "transact": [account(200).to_bech32()] });
    let g = parse(&v).unwrap();
    assert_eq!(g.governance.accounts, AccountsPolicy::Permissioned);
    assert_eq!(
        g.governance.proposal_ttl_blocks,
        PROPOSAL_TTL_BLOCKS_DEFAULT
    );
    assert_eq!(
        g.initial_permissions(),
        vec![(
            account(200),
            Permissions::default().with(Permission::Transact)
        )]
    );
}

#[test]
fn governance_rules_name_the_problem() {
    let cases: Vec<(Genesis, &str)> = vec![
        (with_governance(&[account(1)], 0), "threshold 0"),
        (with_governance(&[account(1)], 2), "threshold 2"),
        (with_governance(&[], 1), "threshold 1 with no members"),
        (
            with_governance(&[account(1), account(1)], 1),
            "listed twice",
        ),
        (
            {
                let mut g = sample();
                g.governance.transact = vec![account(3), account(3)];
                g
            },
            "governance.transact[1]",
        ),
        (
            {
                let mut g = sample();
                g.governance.proposal_ttl_blocks = 0;
                g
            },
            "proposal_ttl_blocks",
        ),
    ];
    for (g, needle) in cases {
        match g.validate() {
            Err(e @ GenesisError::Governance { .. }) => {
                assert!(e.to_string().contains(needle), "{e} lacks {needle}")
            }
            other => panic!("{needle}: expected a governance error, got {other:?}"),
        }
    }
    let mut v = sample_value();
    v["governance"]["accounts"] = json!("closed");
    assert!(matches!(parse(&v), Err(GenesisError::Json { .. })));
    v["governance"] = json!({ "memberz": [] });
    assert!(matches!(parse(&v), Err(GenesisError::UnknownField { .. })));
}

#[test]
fn governance_is_hashed_canonically() {
    let a = with_governance(&[account(1), account(2)], 2);
    let b = with_governance(&[account(2), account(1)], 2);
    assert_eq!(a.hash(), b.hash(), "member order does not matter");
    assert_ne!(
        a.hash(),
        with_governance(&[account(1), account(2)], 1).hash()
    );
    assert_ne!(a.hash(), sample().hash());
    let mut c = a.clone();
    c.governance.accounts = AccountsPolicy::Permissioned;
    assert_ne!(a.hash(), c.hash());
    assert_ne!(a.state_root(), c.state_root(), "the policy is in the state");
}

#[test]
fn init_store_writes_the_whole_initial_state() {
    let mut g = with_governance(&[account(1), account(2)], 2);
    g.governance.accounts = AccountsPolicy::Permissioned;
    g.governance.transact = vec![account(200)];
    g.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), g.hash()).unwrap();
    g.init_store(&store).unwrap();
    g.init_store(&store).unwrap(); // idempotent
    use cairn_ledger::StateReader;
    assert_eq!(*store.governance().unwrap().unwrap(), g.governance_record());
    assert!(
        store
            .permissions(&account(200))
            .unwrap()
            .contains(Permission::Transact)
    );
    assert!(store.permissions(&account(201)).unwrap().is_empty());
    assert_eq!(store.lthash().unwrap(), g.state_lthash());
    store.recompute_lthash().unwrap();
    assert_eq!(store.head().unwrap().unwrap().state_root, g.state_root());
}

fn generated(count: u64) -> GeneratedAccounts {
    GeneratedAccounts {
        count,
        balance: 1_000_000,
        seed: Hash([7; 32]),
    }
}

#[test]
fn generated_accounts_round_trip_and_are_hashed_after_the_rest() {
    let plain = sample();
    let mut g = sample();
    g.generated_accounts = Some(generated(3));
    g.validate().unwrap();
    let text = g.to_json_pretty();
    assert!(text.contains("\"generated_accounts\""), "{text}");
    assert!(text.contains(&"07".repeat(32)), "seed in hex: {text}");
    assert_eq!(Genesis::from_json(&text).unwrap(), g);
    // A file without the section serializes without it and hashes as before.
    assert!(!plain.to_json_pretty().contains("generated_accounts"));
    let mut bytes = borsh::to_vec(&{
        let mut c = plain.clone();
        c.accounts.sort_by_key(|a| a.address);
        c
    })
    .unwrap();
    assert_eq!(
        plain.hash(),
        Hash(blake3::derive_key("cairn genesis v2", &bytes))
    );
    // With it: count u64, balance u64, seed 32 bytes appended.
    bytes.extend(3u64.to_le_bytes());
    bytes.extend(1_000_000u64.to_le_bytes());
    bytes.extend([7u8; 32]);
    assert_eq!(
        g.hash(),
        Hash(blake3::derive_key("cairn genesis v2", &bytes))
    );
    assert_ne!(g.hash(), plain.hash());
    // Each field of the section is hashed.
    for change in [
        |s: &mut GeneratedAccounts| s.count += 1,
        |s: &mut GeneratedAccounts| s.balance += 1,
        |s: &mut GeneratedAccounts| s.seed.0[31] ^= 1,
    ] {
        let mut h = g.clone();
        change(h.generated_accounts.as_mut().unwrap());
        assert_ne!(h.hash(), g.hash());
    }
}

#[test]
fn generated_account_keys_follow_the_documented_derivation() {
    let s = generated(10);
    let mut material = [7u8; 40];
    material[32..].copy_from_slice(&5u64.to_le_bytes());
    let secret = blake3::derive_key("cairn generated account v1", &material);
    assert_eq!(s.secret_key(5), secret);
    let sk = ed25519_dalek::SigningKey::from_bytes(&secret);
    assert_eq!(s.address(5), Address::from_public_key(&sk.verifying_key()));
    assert_ne!(s.address(5), s.address(6));
}

#[test]
fn generated_accounts_bounds_are_refused_with_their_values() {
    let with = |count: u64, balance: u64| {
        let mut g = sample();
        g.generated_accounts = Some(GeneratedAccounts {
            balance,
            ..generated(count)
        });
        g.validate()
    };
    assert!(with(GENERATED_ACCOUNTS_MAX, 1).is_ok());
    let err = with(GENERATED_ACCOUNTS_MAX + 1, 1).unwrap_err();
    assert_eq!(
        err,
        GenesisError::GeneratedAccountsCount {
            count: GENERATED_ACCOUNTS_MAX + 1,
            max: GENERATED_ACCOUNTS_MAX
        }
    );
    assert_eq!(
        err.to_string(),
        "generated_accounts.count = 20000001 is out of range 1..=20000000"
    );
    assert!(matches!(
        with(0, 1),
        Err(GenesisError::GeneratedAccountsCount { count: 0, .. })
    ));
    assert_eq!(with(10, 0), Err(GenesisError::GeneratedAccountsZeroBalance));
    assert_eq!(
        with(20, u64::MAX / 10),
        Err(GenesisError::GeneratedAccountsBalanceOverflow {
            count: 20,
            balance: u64::MAX / 10
        })
    );
    // Listed balances count towards the total.
    let listed: u64 = sample().accounts.iter().map(|a| a.balance).sum();
    assert!(with(1, u64::MAX - listed).is_ok());
    assert!(with(1, u64::MAX - listed + 1).is_err());
    // Unknown fields in the section are refused, as everywhere.
    let mut v = serde_json::to_value(sample()).unwrap();
    v["generated_accounts"] =
        json!({"count": 1, "balance": 1, "seed": "00".repeat(32), "extra": 1});
    assert!(matches!(
        Genesis::from_json(&v.to_string()),
        Err(GenesisError::UnknownField { .. })
    ));
}

#[test]
fn generated_accounts_give_the_state_of_the_same_accounts_listed() {
    const N: u64 = 10_000;
    let mut g = sample();
    g.generated_accounts = Some(generated(N));
    g.validate().unwrap();
    let mut listed = sample();
    let s = generated(N);
    listed.accounts.extend((0..N).map(|i| GenesisAccount {
        address: s.address(i),
        balance: s.balance,
    }));
    listed.validate().unwrap();
    assert_eq!(g.state_root(), listed.state_root());

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), g.hash()).unwrap();
    let mut steps = Vec::new();
    g.init_store_with_progress(&store, &mut |done, total| steps.push((done, total)))
        .unwrap();
    assert_eq!(steps.last(), Some(&(N, N)));
    g.init_store(&store).unwrap(); // idempotent, and not derived again
    let head = store.head().unwrap().unwrap();
    assert_eq!(head.state_root, listed.state_root());
    let mut expected = listed.genesis_block().header;
    expected.parent_hash = g.hash();
    assert_eq!(head, expected);
    use cairn_ledger::StateReader;
    for i in [0, 1, N / 2, N - 1] {
        let a = store.account(&s.address(i)).unwrap();
        assert_eq!((a.balance, a.nonce), (s.balance, 0));
    }
    // The stored accounts hash to the root: nothing written twice or missed.
    store.recompute_lthash().unwrap();
    assert_eq!(store.lthash().unwrap().root(), listed.state_root());

    // The explicit listing initializes to the same state.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path(), listed.hash()).unwrap();
    listed.init_store(&store2).unwrap();
    assert_eq!(store2.lthash().unwrap(), store.lthash().unwrap());

    // Another genesis on the same store is refused.
    let mut other = g.clone();
    other.generated_accounts.as_mut().unwrap().seed.0[0] ^= 1;
    assert!(matches!(
        other.init_store(&store),
        Err(LedgerError::GenesisMismatch { .. })
    ));
}

#[test]
fn an_account_both_listed_and_generated_is_refused_at_init() {
    let mut g = sample();
    let s = generated(5);
    g.accounts.push(GenesisAccount {
        address: s.address(3),
        balance: 1,
    });
    g.generated_accounts = Some(s);
    g.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), g.hash()).unwrap();
    let err = g.init_store(&store).unwrap_err();
    assert!(
        err.to_string().contains("both listed and generated"),
        "{err}"
    );
    assert!(store.head().unwrap().is_none());
}
