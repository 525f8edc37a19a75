//! Decimal numbers written from integers: a check's name (`error_rate <= 2%`) and a bucket's label
//! (`le_0.3`) print a plan's ppm and millionths as `{}` prints them as an `f64`, without
//! `core`'s float formatting, which is the largest single function in filter.wasm otherwise
//! (docs/perf-log.md, 2026-12-08).

/// Above this many significant digits a decimal may not be the shortest text of its `f64`.
const EXACT_DIGITS: u64 = 1_000_000_000_000_000;

/// `n / 10^places` as `format!("{}", n as f64 / 10^places as f64)` writes it: every digit, no
/// trailing zeros, no point for a whole number.
///
/// Exact: a decimal of at most 15 significant digits is the shortest text of the `f64` nearest to
/// it (two of them never share an `f64`), and that `f64` is the quotient, since `n` and `10^places`
/// are exact in an `f64` and the division rounds to nearest. Past 15 digits the `f64` drops
/// digits, and its text is serde_json's (shortest too, and already linked for the transition log
/// line), without the `.0` it adds after a whole number; that needs the quotient under 10^16, where
/// serde_json turns to an exponent, so `places` of 3 or more for such an `n` (bucket bounds, in
/// millionths, are the only ones).
pub fn shortest(n: i64, places: u32) -> String {
    if n.unsigned_abs() >= EXACT_DIGITS {
        let f = n as f64 / 10f64.powi(places as i32);
        let text = serde_json::to_string(&f).unwrap_or_default();
        return text.strip_suffix(".0").map(str::to_owned).unwrap_or(text);
    }
    let scale = 10u64.pow(places);
    let whole = n.unsigned_abs() / scale;
    let mut fraction = n.unsigned_abs() % scale;
    let mut out = if n < 0 { "-".to_owned() } else { String::new() };
    out.push_str(&whole.to_string());
    if fraction > 0 {
        let mut digits = places as usize;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        out.push('.');
        let text = fraction.to_string();
        out.extend(std::iter::repeat_n('0', digits - text.len()));
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shortest;

    /// What the names and labels were written with before.
    fn display(n: i64, places: u32) -> String {
        format!("{}", n as f64 / 10f64.powi(places as i32))
    }

    #[test]
    fn writes_what_display_writes_for_an_f64() {
        let mut cases: Vec<i64> = vec![
            0,
            1,
            5,
            9,
            10,
            99,
            100,
            101,
            1_000,
            10_000,
            20_000,
            123_456,
            999_999,
            1_000_000,
            1_200_000,
            2_500_000,
            4_294_967_295,
        ];
        // A deterministic spread over every magnitude.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 19) as u32;
            cases.push((x >> 8) as i64 % 10i64.pow(digits).max(1));
        }
        for n in cases {
            let places: &[u32] = if n < 1_000_000_000_000_000 {
                &[0, 2, 4, 6]
            } else {
                &[6]
            };
            for &places in places {
                for n in [n, -n] {
                    assert_eq!(shortest(n, places), display(n, places), "{n} / 10^{places}");
                }
            }
        }
    }

    #[test]
    fn writes_the_largest_bucket_bounds_as_display_does() {
        // Around the edge of the exact path, and the largest bounds a plan can carry.
        let edge = 1_000_000_000_000_000i64;
        let cases = [
            edge - 1,
            edge,
            edge + 1,
            123_456_789_012_345_678,
            500_000_000_000_000_000,
            999_999_999_999_999_999,
            i64::MAX,
        ];
        for n in cases {
            for n in [n, -n] {
                assert_eq!(shortest(n, 6), display(n, 6), "{n} millionths");
            }
        }
        assert_eq!(shortest(i64::MIN, 6), display(i64::MIN, 6));
    }
}
