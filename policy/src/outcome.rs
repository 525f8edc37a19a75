//! Reading a model's decision from a response: a header, or a field of a JSON body such as TF
//! Serving's `{"predictions": [0.93]}` or KServe v2's `{"outputs": [{"data": [0.93]}]}`.

mod json_path;

use crate::rollout::{Outcome, OutcomeSource, Positive};
use json_path::Leaf;

/// Response bodies longer than this are not parsed: the outcome is unknown, not guessed.
pub const MAX_OUTCOME_BODY: usize = 64 * 1024;

/// What one response says of one outcome: whether it is positive (for an outcome with a
/// `positive` test) and its value as a number (when it is one), read in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub positive: Option<bool>,
    pub number: Option<f64>,
}

impl Outcome {
    /// Whether this outcome needs the response body (and so bounded buffering of it).
    pub fn reads_body(&self) -> bool {
        matches!(self.source, OutcomeSource::Json { .. })
    }

    /// The outcome from a response header value: `None` when absent.
    pub fn from_header(&self, value: Option<&[u8]>) -> Option<bool> {
        self.read_header(value, false)?.positive
    }

    /// The outcome from a JSON response body: `None` when the body is too long, not JSON, or
    /// lacks the field.
    pub fn from_json_body(&self, body: &[u8]) -> Option<bool> {
        self.read_json_body(body, false)?.positive
    }

    /// A response header's value, read as positive or not and, if `numeric`, as a number.
    pub fn read_header(&self, value: Option<&[u8]>, numeric: bool) -> Option<Reading> {
        let text = std::str::from_utf8(value?).ok()?.trim();
        Some(Reading {
            positive: self.positive.as_ref().map(|p| p.holds_text(text)),
            number: numeric.then(|| text.parse::<f64>().ok()).flatten(),
        })
    }

    /// A JSON body's field, read as positive or not and, if `numeric`, as a number (a JSON
    /// number, or a string that parses as one). `None` when the body is too long, not JSON,
    /// or lacks the field.
    pub fn read_json_body(&self, body: &[u8], numeric: bool) -> Option<Reading> {
        let OutcomeSource::Json { path } = &self.source else {
            return None;
        };
        if body.len() > MAX_OUTCOME_BODY {
            return None;
        }
        let positive = self.positive.as_ref();
        Some(match json_path::read(body, path)? {
            Leaf::Text(s) => Reading {
                positive: positive.map(|p| p.holds_text(&s)),
                number: numeric.then(|| s.trim().parse::<f64>().ok()).flatten(),
            },
            Leaf::Number(text) => {
                // Parsed once, and only when something reads the value.
                let above = matches!(positive, Some(Positive::Above { .. }));
                let value = (numeric || above)
                    .then(|| crate::json::number_value(text))
                    .flatten();
                Reading {
                    positive: positive.map(|p| p.holds_number(text, value)),
                    number: numeric.then_some(value).flatten(),
                }
            }
            Leaf::Bool(b) => Reading {
                positive: positive.map(|p| p.holds_text(if b { "true" } else { "false" })),
                number: None,
            },
        })
    }
}

impl Positive {
    fn holds_text(&self, text: &str) -> bool {
        match self {
            Positive::Equals { any_of } => any_of.iter().any(|v| v == text),
            Positive::Above { value } => text.parse::<f64>().is_ok_and(|x| x > *value),
        }
    }

    /// A number, as the body wrote it (`text`) and as an `f64` (`number`, read for `Above`):
    /// `Equals` compares the text, `Above` the value.
    fn holds_number(&self, text: &[u8], number: Option<f64>) -> bool {
        match self {
            Positive::Equals { any_of } => any_of.iter().any(|v| v.as_bytes() == text),
            Positive::Above { value } => number.is_some_and(|x| x > *value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::PathStep;

    fn json_outcome(path: Vec<PathStep>, positive: Positive) -> Outcome {
        Outcome {
            name: "flagged".into(),
            source: OutcomeSource::Json { path },
            positive: Some(positive),
        }
    }

    #[test]
    fn tf_serving_and_kserve_shapes() {
        let tf = json_outcome(
            vec![PathStep::Key("predictions".into()), PathStep::Index(0)],
            Positive::Above { value: 0.5 },
        );
        assert_eq!(
            tf.from_json_body(br#"{"predictions": [0.93, 0.1]}"#),
            Some(true)
        );
        assert_eq!(tf.from_json_body(br#"{"predictions": [0.2]}"#), Some(false));
        assert_eq!(tf.from_json_body(br#"{"predictions": []}"#), None);
        assert_eq!(tf.from_json_body(b"not json"), None);
        let kserve = json_outcome(
            vec![
                PathStep::Key("outputs".into()),
                PathStep::Index(0),
                PathStep::Key("data".into()),
                PathStep::Index(0),
            ],
            Positive::Equals {
                any_of: vec!["1".into(), "fraud".into()],
            },
        );
        assert_eq!(
            kserve.from_json_body(br#"{"outputs":[{"name":"y","data":[1]}]}"#),
            Some(true)
        );
        assert_eq!(
            kserve.from_json_body(br#"{"outputs":[{"data":["fraud"]}]}"#),
            Some(true)
        );
        assert_eq!(
            kserve.from_json_body(br#"{"outputs":[{"data":[0]}]}"#),
            Some(false)
        );
        let huge = format!(
            r#"{{"predictions":[0.9],"pad":"{}"}}"#,
            "x".repeat(MAX_OUTCOME_BODY)
        );
        assert_eq!(
            tf.from_json_body(huge.as_bytes()),
            None,
            "over the limit: unknown, not parsed"
        );
    }

    #[test]
    fn header_outcomes() {
        let o = Outcome {
            name: "flagged".into(),
            source: OutcomeSource::Header {
                name: "x-model-decision".into(),
            },
            positive: Some(Positive::Equals {
                any_of: vec!["flagged".into()],
            }),
        };
        assert_eq!(o.from_header(Some(b"flagged")), Some(true));
        assert_eq!(o.from_header(Some(b"approved")), Some(false));
        assert_eq!(o.from_header(None), None);
    }

    #[test]
    fn numeric_readings_come_with_the_binary_one_in_one_pass() {
        let score = json_outcome(
            vec![PathStep::Key("predictions".into()), PathStep::Index(0)],
            Positive::Above { value: 0.5 },
        );
        let r = score
            .read_json_body(br#"{"predictions": [0.93]}"#, true)
            .unwrap();
        assert_eq!((r.positive, r.number), (Some(true), Some(0.93)));
        let r = score
            .read_json_body(br#"{"predictions": ["0.25"]}"#, true)
            .unwrap();
        assert_eq!((r.positive, r.number), (Some(false), Some(0.25)));
        let unread = score.read_json_body(br#"{"predictions": [0.93]}"#, false);
        assert_eq!(unread.unwrap().number, None, "not asked for");
        // A numeric outcome without a positive test reads numbers only.
        let numeric = Outcome {
            positive: None,
            ..score
        };
        let r = numeric
            .read_json_body(br#"{"predictions": [true]}"#, true)
            .unwrap();
        assert_eq!((r.positive, r.number), (None, None));
        assert_eq!(numeric.from_json_body(br#"{"predictions": [0.9]}"#), None);
        let header = Outcome {
            name: "score".into(),
            source: OutcomeSource::Header {
                name: "x-score".into(),
            },
            positive: None,
        };
        assert_eq!(
            header.read_header(Some(b" 0.5 "), true).unwrap().number,
            Some(0.5)
        );
    }
}
