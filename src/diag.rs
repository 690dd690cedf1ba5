//! Diagnostics: every problem the front end finds, with spans into the source, rendered by
//! miette.

use crate::spec::{Source, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code, e.g. `netc::unknown_field`.
    pub code: &'static str,
    pub message: String,
    /// The primary label first.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    pub source: Option<Source>,
}
