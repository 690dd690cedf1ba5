//! `netc check SPEC...`: parse, upgrade and validate every phase of each spec; print every
//! problem at once. Exit 0 when clean (warnings allowed), 1 on errors, 2 on usage or I/O
//! errors.

use std::path::PathBuf;

use serde_json::json;

use super::CmdResult;
use crate::analysis::{self, Format, ShapeArgs};
use crate::diag::Diagnostic;
use crate::{front, ir};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec files (`.net` or `.prototxt`; Caffe solver files and netc's `.yaml` solver
    /// files are checked as solvers).
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// `json`: one JSON object per spec (one per line) with `diagnostics` and `layers`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// What checking one spec found.
pub struct Checked {
    pub diagnostics: Vec<Diagnostic>,
    pub rows: Vec<analysis::LayerRow>,
}

/// Whether a parsed file is a solver (Caffe's SolverParameter) rather than a net: it sets
/// fields only solvers have and no layers.
fn is_solver(root: &crate::spec::Message) -> bool {
    const SOLVER: &[&str] = &[
        "base_lr",
        "lr_policy",
        "max_iter",
        "net",
        "net_param",
        "train_net",
        "test_net",
        "test_iter",
        "test_interval",
        "solver_mode",
        "solver_type",
        "snapshot_prefix",
    ];
    const NET: &[&str] = &["layer", "layers", "input", "input_shape", "input_dim"];
    let has = |names: &[&str]| root.fields.iter().any(|f| names.contains(&f.name.as_str()));
    has(SOLVER) && !has(NET)
}

/// A solver file's values that netc cannot train with, as an error naming the file.
fn solver_error(
    src: &crate::spec::Source,
    e: &crate::solver::SolverError,
    help: String,
) -> crate::diag::Diagnostic {
    crate::diag::Diagnostic {
        severity: crate::diag::Severity::Error,
        code: "netc::solver",
        message: format!("{}: {}", src.path.display(), e.0),
        labels: Vec::new(),
        help: Some(help),
        source: None,
    }
}

/// Checks one spec's text: syntax, schema, upgrade, every phase, trainability. A solver
/// file is checked against the solver's schema instead.
pub fn check_source(src: &crate::spec::Source, shape: &ShapeArgs) -> Checked {
    // netc's own solver files are YAML (specs/lenet.solver.yaml).
    if matches!(
        src.path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    ) {
        let diagnostics = match crate::solver::SolverConfig::from_yaml(&src.text) {
            Ok(_) => Vec::new(),
            Err(e) => vec![solver_error(
                src,
                &e,
                format!("a netc solver file is YAML: {}", e.help()),
            )],
        };
        return Checked {
            diagnostics,
            rows: Vec::new(),
        };
    }
    if let (Some(root), _) = crate::syntax::parse(src) {
        if is_solver(&root) {
            let (msg, mut diagnostics) = front::load_solver(src);
            let clean = !diagnostics
                .iter()
                .any(|d| d.severity == crate::diag::Severity::Error);
            // The values too, as `netc train --solver` reads them (a negative base_lr, an
            // unknown type, a step policy without stepsize).
            if let (Some(m), true) = (msg, clean) {
                let read = crate::solver::SolverConfig::from_message(&m)
                    .and_then(|c| c.validate().map(|()| c));
                if let Err(e) = read {
                    diagnostics.push(solver_error(src, &e, e.help()));
                }
            }
            return Checked {
                diagnostics,
                rows: Vec::new(),
            };
        }
    }
    let (spec, mut diagnostics) = front::load_net(src);
    let Some(spec) = spec else {
        return Checked {
            diagnostics,
            rows: Vec::new(),
        };
    };
    if spec.layers.is_empty() {
        diagnostics.push(crate::diag::Diagnostic {
            severity: crate::diag::Severity::Warning,
            code: "netc::empty_net",
            message: "the spec has no layers".into(),
            labels: vec![(0..src.text.len().min(1), "nothing to build".into())],
            help: Some("add layers, e.g. start from specs/lenet.net".into()),
            source: Some(src.clone()),
        });
    }
    let ctx = shape.ctx_for(&spec);
    let (irs, ir_diags) = ir::check_all(&spec, &ctx);
    diagnostics.extend(ir_diags);
    diagnostics.extend(analysis::cannot_train(&spec));
    Checked {
        diagnostics,
        rows: analysis::rows(&spec, &irs, &ctx),
    }
}

pub fn run(args: Args) -> CmdResult {
    let mut code = 0;
    for path in &args.specs {
        let src = match front::read_source(path) {
            Ok(s) => s,
            Err(e) => {
                if args.format == Format::Json {
                    println!(
                        "{}",
                        json!({ "file": path.display().to_string(), "error": e.to_string() })
                    );
                } else {
                    eprintln!("{e:?}");
                }
                code = 2;
                continue;
            }
        };
        let checked = check_source(&src, &args.shape);
        let errors = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .count();
        let warnings = checked.diagnostics.len() - errors;
        match args.format {
            Format::Json => println!(
                "{}",
                json!({
                    "file": path.display().to_string(),
                    "ok": errors == 0,
                    "errors": errors,
                    "warnings": warnings,
                    "diagnostics": checked.diagnostics.iter().map(analysis::diagnostic_json).collect::<Vec<_>>(),
                    "layers": checked.rows.iter().map(analysis::row_json).collect::<Vec<_>>(),
                })
            ),
            Format::Text => {
                front::print_diagnostics(&checked.diagnostics);
                let verdict = if errors > 0 {
                    "has problems"
                } else {
                    "is fine"
                };
                eprintln!(
                    "{}: {verdict}: {errors} error{}, {warnings} warning{}",
                    path.display(),
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                );
            }
        }
        if errors > 0 && code == 0 {
            code = 1;
        }
    }
    Ok(code)
}
