//! Bucketing: the salted MurmurHash3 x86_32 of a key, reduced to a bucket, mapped to an arm.

use crate::plan::{ArmId, HashSpec, Reduce, Split};

/// MurmurHash3 x86_32 of `prefix ++ key`, without joining them in a buffer.
///
/// Written out here rather than taken from the `murmur3` crate, whose only interface is
/// `io::Read`: through it a 13-byte key costs about 65 ns, most of the per-request budget, while
/// this slice version takes a few. The `murmur3` crate remains the reference in the tests, and
/// the published vectors (SMHasher's verification value among them) pin the result.
pub fn murmur3_x86_32(prefix: &[u8], key: &[u8], seed: u32) -> u32 {
    if prefix.is_empty() {
        // Serin's own bucketing: the key alone, its blocks read as they are, without the
        // streaming state that joins a prefix to it.
        let (blocks, tail) = key.as_chunks::<4>();
        let h = blocks
            .iter()
            .fold(seed, |h, &b| Murmur3::mixed(h, u32::from_le_bytes(b)));
        let k = tail.iter().rev().fold(0, |k, &b| k << 8 | u32::from(b));
        let h = if tail.is_empty() {
            h
        } else {
            h ^ Murmur3::mix(k)
        };
        return Murmur3::finalized(h, key.len());
    }
    let mut h = Murmur3 {
        h: seed,
        tail: 0,
        tail_len: 0,
    };
    h.write(prefix);
    h.write(key);
    h.finish(prefix.len() + key.len())
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

struct Murmur3 {
    h: u32,
    /// Up to three bytes waiting for a full block, little-endian.
    tail: u32,
    tail_len: u32,
}

impl Murmur3 {
    fn mix(k: u32) -> u32 {
        k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
    }

    fn block(&mut self, k: u32) {
        self.h = Self::mixed(self.h, k);
    }

    /// `h` with block `k` mixed in.
    fn mixed(h: u32, k: u32) -> u32 {
        (h ^ Self::mix(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64)
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while self.tail_len != 0 && !bytes.is_empty() {
            self.tail |= u32::from(bytes[0]) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = &bytes[1..];
            if self.tail_len == 4 {
                let k = self.tail;
                self.block(k);
                (self.tail, self.tail_len) = (0, 0);
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for b in &mut blocks {
            self.block(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        for &b in blocks.remainder() {
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
        }
    }

    fn finish(mut self, len: usize) -> u32 {
        if self.tail_len != 0 {
            self.h ^= Self::mix(self.tail);
        }
        Self::finalized(self.h, len)
    }

    /// The hash of `len` bytes, `h` when every block and the tail are mixed in.
    fn finalized(h: u32, len: usize) -> u32 {
        // The reference hashes the length as a 32-bit int; keys over 4 GiB wrap the same way.
        let mut h = h ^ len as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
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
    #[inline]
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
    fn agrees_with_the_murmur3_crate() {
        let mut data = Vec::new();
        for len in 0..200u32 {
            data.push((len.wrapping_mul(2_654_435_761) >> 13) as u8);
            for split_at in [0, len as usize / 3, len as usize] {
                let (a, b) = data.split_at(split_at.min(data.len()));
                let want = murmur3::murmur3_32(&mut &data[..], len).unwrap();
                assert_eq!(
                    murmur3_x86_32(a, b, len),
                    want,
                    "len {len} split {split_at}"
                );
            }
        }
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
