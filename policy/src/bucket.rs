//! Bucketing: the salted MurmurHash3 x86_32 of a key, reduced to a bucket, mapped to an arm.

use std::io::Read;

use crate::plan::{ArmId, HashSpec, Reduce, Split};

/// MurmurHash3 x86_32 of `prefix ++ key`, without joining them in a buffer.
pub fn murmur3_x86_32(prefix: &[u8], key: &[u8], seed: u32) -> u32 {
    let mut input = prefix.chain(key);
    // Reading from in-memory slices cannot fail.
    murmur3::murmur3_32(&mut input, seed).unwrap_or(0)
}

/// The intermediate values of one bucketing, shown by `serin explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketed {
    pub arm: ArmId,
    pub hash: u32,
    pub bucket: u32,
}

impl HashSpec {
    pub fn bucket(&self, key: &[u8]) -> (u32, u32) {
        let hash = murmur3_x86_32(self.prefix.as_bytes(), key, self.seed);
        let bucket = match self.reduce {
            Reduce::MulShift { scale } => ((u64::from(hash) * u64::from(scale)) >> 32) as u32,
            Reduce::Modulo { modulus } => hash % modulus.max(1),
        };
        (hash, bucket)
    }
}

impl Split {
    /// The arm for a key. Lanes are few (one per non-rest arm), so a scan beats anything clever.
    pub fn assign(&self, key: &[u8]) -> Bucketed {
        let (hash, bucket) = self.hash.bucket(key);
        let arm = self
            .lanes
            .iter()
            .find(|lane| lane.start <= bucket && bucket < lane.end)
            .map_or(self.rest, |lane| lane.arm);
        Bucketed { arm, hash, bucket }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smhasher_verification_value() {
        // SMHasher's VerificationTest for MurmurHash3_x86_32 (see shared vectors README).
        let key: Vec<u8> = (0..=255u8).collect();
        let mut hashes = Vec::with_capacity(1024);
        for i in 0..256usize {
            let h = murmur3_x86_32(&[], &key[..i], (256 - i) as u32);
            hashes.extend_from_slice(&h.to_le_bytes());
        }
        assert_eq!(murmur3_x86_32(&[], &hashes, 0), 0xB0F5_7EE3);
    }

    #[test]
    fn prefix_is_the_same_as_concatenation() {
        for split_at in 0..=11 {
            let s = b"hello world";
            assert_eq!(
                murmur3_x86_32(&s[..split_at], &s[split_at..], 42),
                murmur3_x86_32(&[], s, 42)
            );
        }
    }

    #[test]
    fn flagd_hash_edge_values() {
        for (input, want) in [
            ("ejOoVL", 0u32),
            ("bY9fO-", 1),
            ("SI7p-", 2_147_483_647),
            ("6LvT0", 2_147_483_648),
            ("ceQdGm", 4_294_967_295),
        ] {
            assert_eq!(murmur3_x86_32(&[], input.as_bytes(), 0), want, "{input}");
        }
    }
}
