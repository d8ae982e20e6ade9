//! Prints the test vectors of `docs/wire-format.md` (as fenced `vector` blocks).
//!
//! `cargo run -p cairn-ledger --example wire_vectors`. The `wire_format` test parses the
//! document and checks every value, so the document cannot drift from the code.

use cairn_ledger::governance::{
    AccountsPolicy, GovAction, Governance, Permission, Permissions, ValidatorInfo,
};
use cairn_ledger::{
    Account, Action, Address, BlockHeader, ChainParams, Hash, LtHash, SignedTransaction,
    TransactionBody, txs_root,
};
use ed25519_dalek::SigningKey;

fn seed(first: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = first.wrapping_add(i as u8);
    }
    s
}

fn print_tx(name: &str, seed: [u8; 32], body: TransactionBody) -> SignedTransaction {
    let key = SigningKey::from_bytes(&seed);
    assert_eq!(body.sender, Address::from_public_key(&key.verifying_key()));
    let body_bytes = borsh::to_vec(&body).unwrap();
    let tx = body.clone().sign(&key);
    println!("```vector");
    println!("kind: transaction");
    println!("name: {name}");
    println!("seed: {}", hex::encode(seed));
    println!(
        "public_key: {}",
        hex::encode(key.verifying_key().to_bytes())
    );
    println!("chain_id: {}", body.chain_id);
    println!("sender: {}", hex::encode(body.sender.0));
    println!("sender_bech32: {}", body.sender);
    let recipient = body.recipient().expect("the vectors are transfers");
    println!("recipient: {}", hex::encode(recipient.0));
    println!("amount: {}", body.amount());
    println!("fee: {}", body.fee);
    println!("nonce: {}", body.nonce);
    println!("expiry_height: {}", body.expiry_height);
    println!("body_bytes: {}", hex::encode(&body_bytes));
    println!("hash: {}", tx.hash().to_hex());
    println!("signature: {}", hex::encode(tx.signature));
    println!("signed_bytes: {}", hex::encode(tx.encode()));
    println!("signed_hash: {}", tx.signed_hash().to_hex());
    println!("```\n");
    tx
}

fn main() {
    let k1 = SigningKey::from_bytes(&seed(0x01));
    let k2 = SigningKey::from_bytes(&seed(0xa0));
    let a1 = Address::from_public_key(&k1.verifying_key());
    let a2 = Address::from_public_key(&k2.verifying_key());

    let tx1 = print_tx(
        "simple transfer",
        seed(0x01),
        TransactionBody {
            chain_id: "cairn-test".into(),
            sender: a1,
            fee: 10,
            nonce: 0,
            expiry_height: 100,
            action: cairn_ledger::Action::Transfer {
                recipient: a2,
                amount: 1_000_000,
            },
        },
    );
    let tx2 = print_tx(
        "maximal fields",
        seed(0xa0),
        TransactionBody {
            chain_id: "cairn-chain-id-of-32-bytes-xxxxx".into(),
            sender: a2,
            fee: 0x0102_0304_0506_0708,
            nonce: 7,
            expiry_height: u64::MAX,
            action: cairn_ledger::Action::Transfer {
                recipient: a1,
                amount: u64::MAX,
            },
        },
    );
    assert_eq!(tx2.encode().len(), 197);

    let h1 = tx1.hash();
    let h2 = tx2.hash();
    let h3 = Hash::derive("example leaf", &[]);
    for leaves in [vec![], vec![h1], vec![h1, h2], vec![h1, h2, h3]] {
        println!("```vector");
        println!("kind: txs_root");
        println!(
            "leaves: {}",
            leaves
                .iter()
                .map(Hash::to_hex)
                .collect::<Vec<_>>()
                .join(",")
        );
        println!("root: {}", txs_root(&leaves).to_hex());
        println!("```\n");
    }

    let accounts = [
        (
            a1,
            Account {
                balance: 1_000_000_000,
                nonce: 0,
            },
        ),
        (
            a2,
            Account {
                balance: 5,
                nonce: 3,
            },
        ),
    ];
    for set in [&accounts[..0], &accounts[..1], &accounts[..]] {
        let lthash = LtHash::of_accounts(set.iter().map(|(a, acc)| (a, acc)));
        println!("```vector");
        println!("kind: state_root");
        println!(
            "accounts: {}",
            set.iter()
                .map(|(a, acc)| format!("{}:{}:{}", hex::encode(a.0), acc.balance, acc.nonce))
                .collect::<Vec<_>>()
                .join(",")
        );
        println!(
            "lthash_first_32_bytes: {}",
            hex::encode(&lthash.to_bytes()[..32])
        );
        println!("root: {}", lthash.root().to_hex());
        println!("```\n");
    }

    let state_root = LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc))).root();
    let header = BlockHeader {
        chain_id: "cairn-test".into(),
        height: 1,
        view: 3,
        parent_hash: Hash::derive("example parent", &[]),
        proposer: a2,
        timestamp_ms: 1_700_000_000_000,
        txs_root: txs_root(&[h1]),
        signed_txs_root: cairn_ledger::signed_txs_root_of(std::slice::from_ref(&tx1)),
        state_root,
    };
    println!("```vector");
    println!("kind: block_header");
    println!("chain_id: {}", header.chain_id);
    println!("height: {}", header.height);
    println!("view: {}", header.view);
    println!("parent_hash: {}", header.parent_hash.to_hex());
    println!("proposer: {}", hex::encode(header.proposer.0));
    println!("timestamp_ms: {}", header.timestamp_ms);
    println!("txs_root: {}", header.txs_root.to_hex());
    println!("signed_txs_root: {}", header.signed_txs_root.to_hex());
    println!("state_root: {}", header.state_root.to_hex());
    println!(
        "header_bytes: {}",
        hex::encode(borsh::to_vec(&header).unwrap())
    );
    println!("hash: {}", header.hash().to_hex());
    println!("```\n");

    // Governance: one propose (add a validator) and one approve, and the state element of a
    // governance record.
    let add = GovAction::AddValidator(ValidatorInfo {
        name: "validator-4".into(),
        consensus_key: a2,
        peer_id: "12D3KooWQESzG5JVc63XV9t8JiMDhjDEVNo4gWxWnMS7PD6T6MiP".into(),
        voting_power: 1,
    });
    for (name, nonce, action) in [
        ("propose add_validator", 1, Action::Propose(add)),
        ("approve", 2, Action::Approve { proposal_id: 1 }),
    ] {
        let body = TransactionBody {
            chain_id: "cairn-test".into(),
            sender: a1,
            fee: 10,
            nonce,
            expiry_height: 100,
            action,
        };
        let body_bytes = borsh::to_vec(&body).unwrap();
        let tx = body.clone().sign(&k1);
        println!("```vector");
        println!("kind: governance_transaction");
        println!("name: {name}");
        println!("seed: {}", hex::encode(seed(0x01)));
        println!(
            "action_json: {}",
            serde_json::to_string(&body.action).unwrap()
        );
        println!("body_bytes: {}", hex::encode(&body_bytes));
        println!("hash: {}", tx.hash().to_hex());
        println!("signature: {}", hex::encode(tx.signature));
        println!("signed_bytes: {}", hex::encode(tx.encode()));
        println!("```\n");
    }

    let record = Governance::genesis(
        vec![a1, a2],
        2,
        AccountsPolicy::Permissioned,
        1000,
        vec![ValidatorInfo {
            name: "validator-0".into(),
            consensus_key: a1,
            peer_id: "12D3KooWQESzG5JVc63XV9t8JiMDhjDEVNo4gWxWnMS7PD6T6MiP".into(),
            voting_power: 1,
        }],
        ChainParams::default(),
    )
    .expect("a valid record");
    let mut lthash = LtHash::zero();
    lthash.update_governance(None, Some(&record));
    lthash.update_permissions(
        &a2,
        Permissions::default(),
        Permissions::default().with(Permission::Transact),
    );
    println!("```vector");
    println!("kind: state_root_governance");
    println!(
        "governance_bytes: {}",
        hex::encode(borsh::to_vec(&record).unwrap())
    );
    println!("transact: {}", hex::encode(a2.0));
    println!(
        "lthash_first_32_bytes: {}",
        hex::encode(&lthash.to_bytes()[..32])
    );
    println!("root: {}", lthash.root().to_hex());
    println!("```");
}
