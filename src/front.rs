//! The front end's entry points: read a spec file, parse it, check it against Caffe's
//! schema, upgrade old formats, and build the typed [`NetSpec`]; render diagnostics.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diagnostic, Severity};
use crate::spec::{LayerSpec, Message, NetSpec, Phase, Source, Span, StateRule};
use crate::{schema, syntax, upgrade};

/// Reads a spec file. A missing or unreadable file is a usage error (exit 2).
pub fn read_source(path: &Path) -> miette::Result<Source> {
    let text = crate::data::read_text(
        path,
        "a spec or solver in protobuf text format",
        "specs/lenet.net",
    )?;
    Ok(Source {
        path: path.to_path_buf(),
        text: Arc::from(text),
    })
}

/// Parses, schema-checks and upgrades a net spec. Returns `None` only when the text cannot
/// be turned into layers (a syntax error, or a solver file where the net belongs); schema
/// errors and upgrade warnings come in the diagnostics alongside a net.
pub fn load_net(src: &Source) -> (Option<NetSpec>, Vec<Diagnostic>) {
    let (root, mut diags) = syntax::parse(src);
    let Some(mut root) = root else {
        return (None, diags);
    };
    diags.extend(schema::check(src, &mut root, schema::NET));
    if diags.iter().any(|d| d.code == schema::SOLVER_GIVEN_AS_NET) {
        return (None, diags);
    }
    let (upgraded, up_diags) = upgrade::upgrade_net(src, &root);
    diags.extend(up_diags);
    let layers = upgraded
        .msgs("layer")
        .into_iter()
        .map(|m| layer_spec(m, src))
        .collect();
    let name = root.str("name").map(str::to_string);
    (
        Some(NetSpec {
            name,
            layers,
            root,
            source: src.clone(),
        }),
        diags,
    )
}

/// Parses and schema-checks a Caffe solver file (`SolverParameter`), and rewrites the
/// deprecated `solver_type` enum to `type`, as Caffe does.
pub fn load_solver(src: &Source) -> (Option<Message>, Vec<Diagnostic>) {
    let (root, mut diags) = syntax::parse(src);
    let Some(mut root) = root else {
        return (None, diags);
    };
    diags.extend(schema::check(src, &mut root, schema::SOLVER));
    if diags.iter().any(|d| d.code == schema::NET_GIVEN_AS_SOLVER) {
        return (None, diags);
    }
    diags.extend(upgrade::upgrade_solver(src, &mut root));
    (Some(root), diags)
}

fn layer_spec(m: &Message, _src: &Source) -> LayerSpec {
    let whole = m.span.clone();
    let str_and_span = |name: &str| -> (String, Span) {
        match m.get(name) {
            Some(f) => (
                f.value.as_str().unwrap_or_default().to_string(),
                f.value_span.clone(),
            ),
            None => (String::new(), whole.start..whole.start + 1),
        }
    };
    let (name, name_span) = str_and_span("name");
    let (ty, type_span) = str_and_span("type");
    let list = |field: &str| -> (Vec<String>, Vec<Span>) {
        m.get_all(field)
            .map(|f| {
                (
                    f.value.as_str().unwrap_or_default().to_string(),
                    f.value_span.clone(),
                )
            })
            .unzip()
    };
    let (bottoms, bottom_spans) = list("bottom");
    let (tops, top_spans) = list("top");
    let rules = |field: &str| -> Vec<StateRule> {
        m.get_all(field)
            .filter_map(|f| {
                f.value
                    .as_message()
                    .map(|r| state_rule(r, f.value_span.clone()))
            })
            .collect()
    };
    LayerSpec {
        name,
        ty,
        bottoms,
        tops,
        include: rules("include"),
        exclude: rules("exclude"),
        msg: m.clone(),
        span: whole,
        name_span,
        type_span,
        bottom_spans,
        top_spans,
    }
}

fn state_rule(r: &Message, span: Span) -> StateRule {
    let phase = match r.get("phase").map(|f| &f.value) {
        Some(v) if v.as_ident() == Some("TRAIN") || v.as_int() == Some(0) => Some(Phase::Train),
        Some(v) if v.as_ident() == Some("TEST") || v.as_int() == Some(1) => Some(Phase::Test),
        _ => None,
    };
    let level = |n: &str| r.int(n).and_then(|i| i64::try_from(i).ok());
    StateRule {
        phase,
        min_level: level("min_level"),
        max_level: level("max_level"),
        stages: r.strs("stage").into_iter().map(str::to_string).collect(),
        not_stages: r
            .strs("not_stage")
            .into_iter()
            .map(str::to_string)
            .collect(),
        span,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..offset].chars().count() + 1)
}

/// A [`Diagnostic`] seen through miette.
#[derive(Debug)]
pub struct Report {
    diag: Diagnostic,
    source: Option<miette::NamedSource<Arc<str>>>,
}

impl Report {
    pub fn new(diag: Diagnostic) -> Self {
        let source = diag
            .source
            .as_ref()
            .map(|s| miette::NamedSource::new(s.path.display().to_string(), s.text.clone()));
        Report { diag, source }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let len = self.diag.source.as_ref().map(|s| s.text.len()).unwrap_or(0);
        Some(Box::new(self.diag.labels.iter().enumerate().map(
            move |(i, (span, label))| {
                let start = span.start.min(len);
                let end = span.end.clamp(start, len);
                let label = (!label.is_empty()).then(|| label.clone());
                if i == 0 {
                    miette::LabeledSpan::new_primary_with_span(label, start..end)
                } else {
                    miette::LabeledSpan::new_with_span(label, start..end)
                }
            },
        )))
    }
}

impl From<Diagnostic> for Report {
    fn from(d: Diagnostic) -> Self {
        Report::new(d)
    }
}

/// Renders diagnostics as text: colours only when `color` is set.
pub fn render_with(diags: &[Diagnostic], color: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let report = Report::new(d.clone());
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&plain_line(d));
        }
        out.push('\n');
    }
    out
}

/// Plain text (no colours), as tests and pipes see it.
pub fn render(diags: &[Diagnostic]) -> String {
    render_with(diags, false)
}

/// Prints diagnostics to stderr, in colour only on a terminal without `NO_COLOR`.
pub fn print_diagnostics(diags: &[Diagnostic]) {
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    eprint!("{}", render_with(diags, color));
}

/// `file:line:col: severity: message`, one line, for places miette cannot render.
pub fn plain_line(d: &Diagnostic) -> String {
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    match (&d.source, d.labels.first()) {
        (Some(s), Some((span, _))) => {
            let (l, c) = line_col(&s.text, span.start);
            format!("{}:{l}:{c}: {sev}: {}\n", s.path.display(), d.message)
        }
        _ => format!("{sev}: {}\n", d.message),
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}
