//! Decimal numbers written from integers: a check's name (`error_rate <= 2%`) and a bucket's label
//! (`le_0.3`) print a plan's ppm and millionths as `{}` prints them as an `f64`, and the
//! transition log line its floats to six digits, without `core`'s float formatting, which is
//! the largest single function in filter.wasm otherwise (docs/perf-log.md, 2026-12-08).

/// `n / 10^places` written out exactly: every digit, no trailing zeros, no point for a whole
/// number.
///
/// Under 15 significant digits this is what `format!("{}", n as f64 / 10^places as f64)`
/// writes (a test compares them): such a decimal is the shortest text of the `f64` nearest to it
/// (two of them never share an `f64`), and that `f64` is the quotient, since `n` and
/// `10^places` are exact in an `f64` and the division rounds to nearest. Past 15 digits the
/// `f64` would drop digits and this keeps them (`le_1234567890123.456789`): a name is then still
/// exact and unique, and everything that names a series goes through here, the compiler's
/// dashboards included.
pub fn shortest(n: i64, places: u32) -> String {
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

/// Powers of ten that an `f64` holds exactly, up to the largest [`approximate`] scales by.
const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `x` to six significant digits as JSON writes a float (`0.0123457`, `2.0`, `1.5e-7`; `null`
/// when not finite; a whole part under 10^15 is kept whole, `123456789.0`), for the transition
/// log line: people read it, and six digits say what a
/// log-likelihood or a rate is. Written from an integer, so that neither `core`'s float
/// formatting nor serde_json's joins `filter.wasm` for one log line (docs/perf-log.md).
pub fn approximate(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let magnitude = x.abs();
    if magnitude == 0.0 {
        return format!("{sign}0.0");
    }
    // The power of ten of the leading digit, to within one (either way the digits are right).
    let mut exponent = 0i32;
    let mut m = magnitude;
    while m >= 10.0 {
        m /= 10.0;
        exponent += 1;
    }
    while m < 1.0 {
        m *= 10.0;
        exponent -= 1;
    }
    if (-5..15).contains(&exponent) {
        let places = (5 - exponent).max(0) as u32;
        let scaled = magnitude * POWERS_OF_TEN[places as usize];
        let text = shortest((scaled + 0.5) as i64, places);
        let point = if text.contains('.') { "" } else { ".0" };
        return format!("{sign}{text}{point}");
    }
    // Outside that range: six digits of the mantissa and an exponent.
    let digits = (m * 1e5 + 0.5) as i64;
    let (digits, exponent) = if digits >= 1_000_000 {
        (digits / 10, exponent + 1)
    } else {
        (digits, exponent)
    };
    format!("{sign}{}e{exponent}", shortest(digits, 5))
}

#[cfg(test)]
mod tests {
    use super::{approximate, shortest};

    /// Below this, a decimal has at most 15 significant digits, and its text is also `{}`'s for
    /// the `f64` nearest to it.
    const EXACT_DIGITS: u64 = 1_000_000_000_000_000;

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
        for n in cases
            .into_iter()
            .filter(|n| n.unsigned_abs() < EXACT_DIGITS)
        {
            for places in [0, 2, 4, 6] {
                for n in [n, -n] {
                    assert_eq!(shortest(n, places), display(n, places), "{n} / 10^{places}");
                }
            }
        }
    }

    #[test]
    fn past_fifteen_digits_every_digit_is_kept() {
        assert_eq!(shortest(1_000_000_000_000_000, 6), "1000000000");
        assert_eq!(
            shortest(1_234_567_890_123_456_789, 6),
            "1234567890123.456789"
        );
        assert_eq!(shortest(-1_234_567_890_123_450_000, 6), "-1234567890123.45");
        assert_eq!(shortest(i64::MAX, 6), "9223372036854.775807");
        assert_eq!(shortest(i64::MIN, 6), "-9223372036854.775808");
    }

    #[test]
    fn approximate_keeps_six_significant_digits_in_json_s_shape() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (2.0, "2.0"),
            (-3.5, "-3.5"),
            (0.02, "0.02"),
            (0.0123456789, "0.0123457"),
            (1.0 / 3.0, "0.333333"),
            (2.0 / 3.0, "0.666667"),
            (123_456_789.4, "123456789.0"),
            (9.9999996, "10.0"),
            (1e-5, "0.00001"),
            (1.5e-7, "1.5e-7"),
            (6.02214076e23, "6.02214e23"),
            (9.9999999e22, "1e23"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ];
        for (x, text) in cases {
            assert_eq!(approximate(x), text, "{x}");
        }
        // Any value: JSON, and within half a unit of the sixth digit.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = f64::from_bits(x);
            let text = approximate(value);
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            if !value.is_finite() {
                assert!(back.is_null());
                continue;
            }
            let back = back.as_f64().unwrap();
            assert!(
                (back - value).abs() <= 5.01e-6 * value.abs(),
                "{value:e} written {text}"
            );
        }
    }
}
