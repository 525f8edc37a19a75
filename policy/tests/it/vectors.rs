//! Serin's own bucketing, published as golden vectors in tests/vectors/serin-bucketing-v1.json
//! so that any other implementation (an SDK, a batch job) can check that it puts every user in
//! the same bucket. `SERIN_BLESS=1` rewrites the file; otherwise it must match exactly.

use serde_json::{Value, json};
use serin_policy::murmur3_x86_32;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/vectors/serin-bucketing-v1.json"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vectors() -> Value {
    let salts = ["", "fraud-v2", "recsys-v7:shadow", "ünïcödé"];
    let mut keys: Vec<Vec<u8>> = [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "user-1",
        "user-42",
        "u-1001",
        "alice@example.com",
        "€uro",
        "550e8400-e29b-41d4-a716-446655440000",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    keys.push(vec![0xff, 0x00, 0x87]);
    keys.push(vec![b'x'; 300]);
    let mut cases = Vec::new();
    for salt in salts {
        let seed = murmur3_x86_32(b"", salt.as_bytes(), 0);
        for key in &keys {
            let hash = murmur3_x86_32(b"", key, seed);
            let bucket = (u64::from(hash) * 10_000) >> 32;
            cases.push(json!({
                "salt": salt,
                "key_hex": hex(key),
                "key_utf8": std::str::from_utf8(key).ok(),
                "seed": seed,
                "hash": hash,
                "bucket": bucket,
                "canary_at_5_percent": bucket < 500,
                "canary_at_50_percent": bucket < 5_000,
            }));
        }
    }
    json!({
        "name": "serin-bucketing-v1",
        "formula": {
            "seed": "seed = MurmurHash3_x86_32(UTF8(salt), 0)",
            "hash": "hash = MurmurHash3_x86_32(key bytes, seed), an unsigned 32-bit integer",
            "bucket": "bucket = (hash * 10000) >> 32, in 0..10000 (1/10,000 resolution)",
            "arms": "each non-stable arm k of n owns the lane [k*L, k*L + weight_k) with L = 10000 / n (integer division) and weights in basis points; every other bucket goes to the stable arm. With one canary: canary iff bucket < weight.",
            "key": "the first present, non-empty source of the split's key chain (header, cookie or query value), as raw bytes"
        },
        "vectors": cases,
    })
}

#[test]
fn published_vectors_match_the_engine() {
    let fresh = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("SERIN_BLESS").is_some() {
        std::fs::write(FILE, &fresh).unwrap();
    }
    let published = std::fs::read_to_string(FILE)
        .expect("tests/vectors/serin-bucketing-v1.json (SERIN_BLESS=1 writes it)");
    assert!(
        published == fresh,
        "the engine no longer reproduces tests/vectors/serin-bucketing-v1.json"
    );
}

#[test]
fn the_vectors_agree_with_a_reference_murmur3() {
    // The vectors' hashes recomputed with the murmur3 crate (Read-based reference).
    let v = vectors();
    for case in v["vectors"].as_array().unwrap() {
        let key: Vec<u8> = (0..case["key_hex"].as_str().unwrap().len() / 2)
            .map(|i| {
                u8::from_str_radix(&case["key_hex"].as_str().unwrap()[2 * i..2 * i + 2], 16)
                    .unwrap()
            })
            .collect();
        let salt = case["salt"].as_str().unwrap();
        let seed = murmur3::murmur3_32(&mut salt.as_bytes(), 0).unwrap();
        assert_eq!(case["seed"], seed);
        assert_eq!(
            case["hash"],
            murmur3::murmur3_32(&mut &key[..], seed).unwrap()
        );
    }
}
