//! Diagnostics shared by every stage: a message, a span into the policy source, a label and a help
//! line. Rendered like rustc's through miette, or as JSON for tools.
//!
//! Message style: lowercase, no trailing period, user input in backticks, the extra sentence in
//! `help`, no Rust type names.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

/// A byte range into the policy source.
pub type Span = Range<usize>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier, e.g. `unknown-key` or `lint::weights-do-not-sum`.
    pub code: &'static str,
    pub message: String,
    /// Where in the source; `None` only for findings about the file as a whole.
    pub span: Option<Span>,
    /// Short text under the underline.
    pub label: Option<String>,
    pub help: Option<String>,
    /// Secondary locations, e.g. the earlier rule that shadows this one.
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: Some(span),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.span.as_ref().map_or(0, |s| s.start))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Every finding about one policy file, with the source needed to show them.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file_name: String,
    pub source: Arc<str>,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file_name: &str, source: &str, mut items: Vec<Diagnostic>) -> Self {
        // Errors first, then by position, so output is stable whatever order stages ran in.
        items.sort_by_key(|d| (d.severity, d.span.as_ref().map_or(0, |s| s.start)));
        Diagnostics {
            file_name: file_name.to_owned(),
            source: Arc::from(source),
            items,
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// rustc-style report: the message, the source snippet with `file:line:col`, label and help.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for d in &self.items {
            let report = Report {
                d,
                src: NamedSource::new(&self.file_name, self.source.clone()),
            };
            let (line, col) = d.line_col(&self.source);
            out.push_str(&format!(
                "{}[{}]: {}:{line}:{col}: {}\n",
                d.severity, d.code, self.file_name, d.message
            ));
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&d.message);
            }
            out.push('\n');
        }
        out
    }

    /// One line per finding: `file:line:col: severity[code]: message`.
    pub fn render_short(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            let (line, col) = d.line_col(&self.source);
            out.push_str(&format!(
                "{}:{line}:{col}: {}[{}]: {}\n",
                self.file_name, d.severity, d.code, d.message
            ));
        }
        out
    }

    /// Machine-readable findings, for editors and CI.
    pub fn to_json(&self) -> serde_json::Value {
        let items: Vec<_> = self
            .items
            .iter()
            .map(|d| {
                let (line, column) = d.line_col(&self.source);
                let (end_line, end_column) =
                    line_col(&self.source, d.span.as_ref().map_or(0, |s| s.end));
                serde_json::json!({
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                    "file": self.file_name,
                    "line": line,
                    "column": column,
                    "end_line": end_line,
                    "end_column": end_column,
                    "span": d.span.as_ref().map(|s| [s.start, s.end]),
                    "label": d.label,
                    "help": d.help,
                    "related": d.related.iter().map(|(s, label)| {
                        let (line, column) = line_col(&self.source, s.start);
                        serde_json::json!({ "line": line, "column": column, "span": [s.start, s.end], "label": label })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "file": self.file_name,
            "errors": self.errors().count(),
            "warnings": self.warnings().count(),
            "diagnostics": items,
        })
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_short())
    }
}

impl std::error::Error for Diagnostics {}

/// Adapter from a [`Diagnostic`] to miette's renderer.
struct Report<'a> {
    d: &'a Diagnostic,
    src: NamedSource<Arc<str>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        None
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.d
            .span
            .as_ref()
            .map(|_| &self.src as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.d.span.clone()?;
        let primary =
            LabeledSpan::new_primary_with_span(self.d.label.clone(), to_source_span(&span));
        let related = self
            .d
            .related
            .iter()
            .map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), to_source_span(s)));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

fn to_source_span(span: &Span) -> SourceSpan {
    SourceSpan::new(span.start.into(), span.end.saturating_sub(span.start))
}

/// The closest candidate to a misspelt name, for "did you mean" help.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let s = "a = 1\nbé = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        assert_eq!(line_col(s, 9), (2, 3));
        assert_eq!(line_col(s, 1000), (3, 1));
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("wieghts", ["weights", "key", "salt"]),
            Some("weights")
        );
        assert_eq!(did_you_mean("zzz", ["weights", "key"]), None);
    }
}
