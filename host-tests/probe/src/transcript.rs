//! What the probe saw, as deterministic text: one line per host call, `phase: call -> Status
//! value`. Bytes print as a quoted string when they are plain ASCII, else as hex.

use crate::abi::{Out, parse_pairs};

#[derive(Default)]
pub struct Transcript {
    phase: &'static str,
    lines: Vec<String>,
}

impl Transcript {
    pub fn phase(&mut self, phase: &'static str) {
        self.phase = phase;
    }

    /// A call that returned only a status.
    pub fn status(&mut self, call: impl AsRef<str>, status: u32) {
        self.line(call, status, String::new());
    }

    /// A call and what came back with its status.
    pub fn value(&mut self, call: impl AsRef<str>, status: u32, value: impl AsRef<str>) {
        self.line(call, status, format!(" {}", value.as_ref()));
    }

    /// A call that hands back bytes.
    pub fn out(&mut self, call: impl AsRef<str>, (status, out): (u32, Out)) {
        self.value(call, status, show_out(&out));
    }

    /// A call that hands back a header map: its pairs (or only its keys, when values vary from
    /// run to run, like `date`).
    pub fn pairs(&mut self, call: impl AsRef<str>, (status, out): (u32, Out), values: bool) {
        let shown = match &out {
            Out::Bytes(bytes) if !bytes.is_empty() => match parse_pairs(bytes) {
                Some(pairs) => {
                    let shown: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| match values {
                            true => format!("{}={}", show(k), show(v)),
                            false => show(k),
                        })
                        .collect();
                    format!("[{}]", shown.join(", "))
                }
                None => format!("unparsable {}", show(bytes)),
            },
            other => show_out(other),
        };
        self.value(call, status, shown);
    }

    fn line(&mut self, call: impl AsRef<str>, status: u32, rest: String) {
        self.lines.push(format!(
            "{}: {} -> {}{rest}",
            self.phase,
            call.as_ref(),
            status_name(status)
        ));
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}

/// The ABI's `proxy_status_t` by name.
pub fn status_name(status: u32) -> String {
    match status {
        0 => "Ok".into(),
        1 => "NotFound".into(),
        2 => "BadArgument".into(),
        3 => "SerializationFailure".into(),
        4 => "ParseFailure".into(),
        6 => "InvalidMemoryAccess".into(),
        7 => "Empty".into(),
        8 => "CasMismatch".into(),
        10 => "InternalFailure".into(),
        12 => "Unimplemented".into(),
        other => format!("Status({other})"),
    }
}

pub fn show_out(out: &Out) -> String {
    match out {
        Out::Untouched => "(out untouched)".into(),
        Out::Bytes(bytes) => show(bytes),
    }
}

/// Printable ASCII as a quoted string, anything else (numbers, binary) as hex.
pub fn show(bytes: &[u8]) -> String {
    let printable = |b: &u8| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\';
    if bytes.iter().all(printable) {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    }
}
