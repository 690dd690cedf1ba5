//! `netc visualize SPEC [-o FILE] [--phase train|test|deploy|all] [--rankdir TB|LR|BT|RL]`:
//! draws the IR. DOT to stdout or `-o x.dot`; `-o x.svg` through Graphviz's `dot` when it
//! is installed, else laid out in pure Rust; `-o x.png` through `dot`. Specs with
//! validation errors are drawn with a warning; a syntax error exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::CmdResult;
use crate::analysis::ShapeArgs;
use crate::diag::Severity;
use crate::dot::{self, RankDir};
use crate::{front, ir};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec (`.net` or `.prototxt`).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Output file: `.dot`/`.gv`, `.svg` or `.png`; DOT on stdout when absent.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which net to draw: train, test (DIGITS' val), deploy, or all layers of the file
    /// with those of only some phases marked.
    #[arg(long, default_value = "all", value_parser = ["train", "test", "val", "deploy", "all"])]
    pub phase: String,
    /// Graphviz rank direction.
    #[arg(long, value_enum, default_value_t = RankDir::Tb)]
    pub rankdir: RankDir,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// The install hint for Graphviz.
pub const INSTALL_DOT: &str = "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` (Fedora), `brew install graphviz` (macOS); or write `-o net.svg`, which netc lays out without Graphviz";

/// Whether Graphviz's `dot` runs here.
pub fn has_dot() -> bool {
    Command::new("dot")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `dot -T<format>` on `dot_text`, returning its output or its complaint.
pub fn run_dot(dot_text: &str, format: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `dot`: {e}"))?;
    // `dot` may stop reading and exit (it refuses strings over 16 KiB); netc restores the
    // default SIGPIPE for `netc ... | head`, so while writing to `dot` a closed pipe must
    // be an error to report, not the end of netc (it died silently with status 141).
    #[cfg(unix)]
    // SAFETY: setting a signal disposition; no handler code runs.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let writer = child.stdin.take().map(|mut stdin| {
        let text = dot_text.to_string();
        std::thread::spawn(move || stdin.write_all(text.as_bytes()))
    });
    let out = child.wait_with_output();
    let written = writer.map(|w| w.join());
    #[cfg(unix)]
    // SAFETY: as above, putting the previous disposition back.
    unsafe {
        libc::signal(libc::SIGPIPE, previous);
    }
    let out = out.map_err(|e| format!("`dot` failed: {e}"))?;
    if out.status.success() {
        if let Some(Ok(Err(e))) = written {
            return Err(format!("cannot write to `dot`: {e}"));
        }
    }
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`dot` rejected the drawing: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), miette::Report> {
    crate::data::write_atomic(path, bytes)
}

pub fn run(args: Args) -> CmdResult {
    // Drawing over the spec itself (a spec named `x.dot` given `-o x.dot`) would lose it.
    if let Some(out) = &args.output {
        let same = match (out.canonicalize(), args.spec.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            return Err(super::usage(
                format!(
                    "-o {} is the spec itself: drawing there would replace it",
                    out.display()
                ),
                Some("give another output file, e.g. -o net.svg".into()),
            ));
        }
    }
    let src = front::read_source(&args.spec)?;
    let (spec, mut diags) = front::load_net(&src);
    let Some(spec) = spec else {
        front::print_diagnostics(&diags);
        return Ok(1);
    };
    let ctx = args.shape.ctx_for(&spec);
    let irs: Vec<(&'static str, ir::NetIr)> = if args.phase == "all" {
        let (irs, d) = ir::check_all(&spec, &ctx);
        diags.extend(d);
        irs
    } else {
        let state = ir::state_named(&args.phase)
            .ok_or_else(|| super::usage(format!("unknown phase `{}`", args.phase), None))?;
        let (net, d) = ir::build_partial(&spec, &state, &ctx);
        diags.extend(d);
        let name = ir::phases()
            .iter()
            .find(|(_, s)| *s == state)
            .map_or("test", |(n, _)| *n);
        vec![(name, net)]
    };
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors > 0 {
        eprintln!(
            "warning: {} has {errors} error{}; drawing it anyway (run `netc check {}` to see them)",
            args.spec.display(),
            if errors == 1 { "" } else { "s" },
            args.spec.display()
        );
    }
    let refs: Vec<(&'static str, &ir::NetIr)> = irs.iter().map(|(p, n)| (*p, n)).collect();
    let drawing = dot::drawing(&spec, &refs);
    if drawing.nodes.is_empty() {
        return Err(miette::miette!(
            help = "a net's layers are `layer { name: ... type: ... }` blocks; `netc check` says what the file holds",
            "nothing to draw: {} has no layers",
            args.spec.display()
        ));
    }
    let dot_text = dot::to_dot(&drawing, args.rankdir);
    let Some(out) = &args.output else {
        print!("{dot_text}");
        return Ok(0);
    };
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "dot" | "gv" => write(out, dot_text.as_bytes())?,
        "svg" => {
            let by_dot = if has_dot() {
                match run_dot(&dot_text, "svg") {
                    Ok(svg) => Some(svg),
                    Err(e) => {
                        eprintln!("warning: {e}; drawing without Graphviz instead");
                        None
                    }
                }
            } else {
                None
            };
            let svg = if let Some(svg) = by_dot {
                svg
            } else {
                if matches!(args.rankdir, RankDir::Bt | RankDir::Rl) {
                    eprintln!(
                        "note: without Graphviz, {} is drawn as {}",
                        args.rankdir.as_str(),
                        if args.rankdir == RankDir::Bt {
                            "TB"
                        } else {
                            "LR"
                        }
                    );
                }
                dot::to_svg(&drawing, args.rankdir).into_bytes()
            };
            write(out, &svg)?;
        }
        "png" => {
            if !has_dot() {
                return Err(super::usage(
                    "PNG output needs Graphviz's `dot`, which is not installed",
                    Some(INSTALL_DOT.into()),
                ));
            }
            let png = run_dot(&dot_text, "png").map_err(|e| miette::miette!("{e}"))?;
            write(out, &png)?;
        }
        _ => {
            return Err(super::usage(
                format!(
                    "cannot tell the format of {} from its extension",
                    out.display()
                ),
                Some("use .dot (or .gv), .svg or .png".into()),
            ))
        }
    }
    eprintln!("wrote {}", out.display());
    Ok(0)
}
