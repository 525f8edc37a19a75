//! Header maps as they cross the ABI: a u32 count, then a (u32 key length, u32 value length)
//! pair per entry, then each key and each value followed by a 0x00 byte, all little-endian.

/// Most pairs Envoy accepts from a module in one map, and most bytes.
pub const MAX_PAIRS: usize = 1024;
pub const MAX_PAIRS_BYTES: usize = 1024 * 1024;

/// The serialized size of `pairs`.
pub fn pairs_size<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
    4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + 1 + v.as_ref().len() + 1)
        .sum::<usize>()
}

/// Serialize `pairs`.
pub fn serialize<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    serialize_into(pairs, &mut out);
    out
}

/// Serialize `pairs`, appending to `out`.
pub fn serialize_into<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)], out: &mut Vec<u8>) {
    serialize_iter(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())), out);
}

/// Serialize the pairs an iterator gives (it is walked twice: sizes, then bytes), appending
/// to `out`.
pub fn serialize_iter<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    out: &mut Vec<u8>,
) {
    let (count, bytes) = pairs.clone().fold((0usize, 0usize), |(n, b), (k, v)| {
        (n + 1, b + k.len() + v.len())
    });
    out.reserve(4 + count * 10 + bytes);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
}

/// Parse serialized pairs the way Envoy does: anything malformed (short, over the limits,
/// a missing terminator, trailing bytes) reads as an empty map rather than an error.
pub fn deserialize(buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    try_deserialize(buf).unwrap_or_default()
}

/// Parse serialized pairs, or `None` if they are malformed.
pub fn try_deserialize(buf: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if buf.len() > MAX_PAIRS_BYTES {
        return None;
    }
    let word = |at: usize| -> Option<usize> {
        let bytes = buf.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    if count > MAX_PAIRS {
        return None;
    }
    let mut pos = 4 + count * 8;
    if pos > buf.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = word(4 + i * 8)?;
        let value_len = word(8 + i * 8)?;
        let mut take = |len: usize| -> Option<Vec<u8>> {
            let end = pos.checked_add(len)?;
            if *buf.get(end)? != 0 {
                return None;
            }
            let s = buf[pos..end].to_vec();
            pos = end + 1;
            Some(s)
        };
        let key = take(key_len)?;
        let value = take(value_len)?;
        pairs.push((key, value));
    }
    (pos == buf.len()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        // The spec's example: {"a": "1"}, {"b": "22"}.
        let bytes = serialize(&[("a", "1"), ("b", "22")]);
        let want: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &2u32.to_le_bytes(),
            b"a\x001\x00b\x0022\x00",
        ]
        .concat();
        assert_eq!(bytes, want);
        assert_eq!(bytes.len(), pairs_size(&[("a", "1"), ("b", "22")]));
        assert_eq!(
            deserialize(&bytes),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"22".to_vec())
            ]
        );
    }

    #[test]
    fn round_trip_with_empty_and_binary_values() {
        let pairs = vec![
            (b":path".to_vec(), b"/".to_vec()),
            (b"empty".to_vec(), Vec::new()),
            (b"bin".to_vec(), vec![1, 2, 255]),
        ];
        assert_eq!(deserialize(&serialize(&pairs)), pairs);
        assert_eq!(deserialize(&serialize::<&[u8], &[u8]>(&[])), vec![]);
    }

    #[test]
    fn malformed_input_reads_as_empty() {
        let good = serialize(&[("k", "v")]);
        assert!(try_deserialize(&good).is_some());
        assert!(try_deserialize(&good[..good.len() - 1]).is_none(), "short");
        let mut extra = good.clone();
        extra.push(0);
        assert!(try_deserialize(&extra).is_none(), "trailing bytes");
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(try_deserialize(&no_nul).is_none(), "missing terminator");
        assert!(try_deserialize(&(MAX_PAIRS as u32 + 1).to_le_bytes()).is_none());
        assert!(try_deserialize(&[]).is_none());
        assert_eq!(deserialize(&[1, 2]), vec![]);
    }
}
