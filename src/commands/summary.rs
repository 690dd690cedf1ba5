//! `netc summary SPEC [--phase train|test|deploy]`: a per-layer table like Netscope's CNN
//! Analyzer and Keras' `summary()`: type, output shape per sample, learned parameters,
//! multiply-accumulates per sample and activation memory, with a total row. In-place
//! layers are listed under their producer and their output is not counted twice.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use super::CmdResult;
use crate::analysis::{self, Format, ShapeArgs};
use crate::diag::Severity;
use crate::front;
use crate::ir::{self, NetIr};
use crate::layers::ShapeCtx;
use crate::spec::NetSpec;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec (`.net` or `.prototxt`).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Which net to summarise: train, test (DIGITS' val) or deploy.
    #[arg(long, default_value = "deploy", value_parser = ["train", "test", "val", "deploy"])]
    pub phase: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub ty: String,
    /// Per-sample shapes of the tops; `None` where unknown.
    pub output: Vec<Option<Vec<usize>>>,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    /// Bytes of f32 activations per sample this layer adds (0 for in-place layers).
    pub memory: Option<u64>,
    pub in_place: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub params: u64,
    pub macs: u64,
    pub memory: u64,
    /// Whether some layer's figures are unknown (the totals are then lower bounds).
    pub partial: bool,
}

/// The rows and totals of one phase's IR.
pub fn table(ir: &NetIr, ctx: &ShapeCtx) -> (Vec<Row>, Totals) {
    let mut rows = Vec::new();
    let mut t = Totals::default();
    for (i, l) in ir.layers.iter().enumerate() {
        let output: Vec<Option<Vec<usize>>> = l
            .tops
            .iter()
            .map(|&b| ir.blobs[b].shape.as_ref().map(|s| analysis::per_sample(s)))
            .collect();
        let memory = if l.in_place {
            Some(0)
        } else {
            output
                .iter()
                .map(|o| o.as_ref().map(|s| 4 * s.iter().product::<usize>() as u64))
                .sum::<Option<u64>>()
        };
        let row = Row {
            name: l.name.clone(),
            ty: l.layer.ty().name.to_string(),
            output,
            params: ir.params(i, ctx),
            macs: ir.macs(i),
            memory,
            in_place: l.in_place,
        };
        match (row.params, row.macs, row.memory) {
            (Some(p), Some(m), Some(b)) => {
                t.params += p;
                t.macs += m;
                t.memory += b;
            }
            _ => t.partial = true,
        }
        rows.push(row);
    }
    (rows, t)
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

fn shape_text(o: &[Option<Vec<usize>>]) -> String {
    if o.is_empty() {
        return "-".into();
    }
    o.iter()
        .map(|s| match s {
            None => "?".to_string(),
            Some(s) if s.is_empty() => "scalar".to_string(),
            Some(s) => analysis_fmt(s),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn analysis_fmt(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// The table as text.
pub fn render(title: &str, rows: &[Row], t: &Totals) -> String {
    let opt = |v: Option<u64>, f: fn(u64) -> String| v.map(f).unwrap_or_else(|| "?".into());
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                if r.in_place {
                    format!("  ↳ {}", r.name)
                } else {
                    r.name.clone()
                },
                r.ty.clone(),
                shape_text(&r.output),
                opt(r.params, thousands),
                opt(r.macs, thousands),
                if r.in_place {
                    "in place".into()
                } else {
                    opt(r.memory, bytes)
                },
            ]
        })
        .collect();
    let head = [
        "Layer",
        "Type",
        "Output (per sample)",
        "Params",
        "MACs",
        "Activations",
    ];
    let total = [
        "Total".to_string(),
        String::new(),
        String::new(),
        thousands(t.params),
        thousands(t.macs),
        bytes(t.memory),
    ];
    let mut w = head.map(|h| h.chars().count());
    for c in cells.iter().chain(std::iter::once(&total)) {
        for (k, s) in c.iter().enumerate() {
            w[k] = w[k].max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (k, x) in c.iter().enumerate() {
            let pad = w[k] - x.chars().count();
            if k < 3 {
                s += x;
                s += &" ".repeat(pad);
            } else {
                s += &" ".repeat(pad);
                s += x;
            }
            if k < 5 {
                s += "  ";
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let rule = "─".repeat(w.iter().sum::<usize>() + 10) + "\n";
    let mut out = format!("{title}\n");
    out += &line(&head.map(String::from));
    out += &rule;
    for c in &cells {
        out += &line(c);
    }
    out += &rule;
    out += &line(&total);
    if t.partial {
        let _ = writeln!(
            out,
            "(some shapes are unknown, marked ?: the totals leave those layers out)"
        );
    }
    out
}

fn title(spec: &NetSpec, phase: &str) -> String {
    format!(
        "{} — {phase} net, figures per sample",
        spec.name.as_deref().unwrap_or("net")
    )
}

pub fn run(args: Args) -> CmdResult {
    let src = front::read_source(&args.spec)?;
    let (spec, mut diags) = front::load_net(&src);
    let Some(spec) = spec else {
        front::print_diagnostics(&diags);
        return Ok(1);
    };
    let state = ir::state_named(&args.phase)
        .ok_or_else(|| super::usage(format!("unknown phase `{}`", args.phase), None))?;
    let phase = if args.phase == "val" {
        "test"
    } else {
        args.phase.as_str()
    };
    let ctx = args.shape.ctx_for(&spec);
    let (net, ir_diags) = ir::build_partial(&spec, &state, &ctx);
    diags.extend(ir_diags);
    let errors = diags.iter().any(|d| d.severity == Severity::Error);
    let (rows, totals) = table(&net, &ctx);
    match args.format {
        Format::Json => {
            let layers: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name, "type": r.ty, "output": r.output, "params": r.params,
                        "macs": r.macs, "memory": r.memory, "in_place": r.in_place,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "file": args.spec.display().to_string(),
                    "phase": phase,
                    "diagnostics": diags.iter().map(analysis::diagnostic_json).collect::<Vec<_>>(),
                    "layers": layers,
                    "total": { "params": totals.params, "macs": totals.macs, "memory": totals.memory, "complete": !totals.partial },
                })
            );
        }
        Format::Text => {
            front::print_diagnostics(&diags);
            print!("{}", render(&title(&spec, phase), &rows, &totals));
        }
    }
    Ok(u8::from(errors))
}
