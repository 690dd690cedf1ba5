//! `netc visualize`: hostile names survive DOT and SVG, every parsing corpus net gives DOT
//! that Graphviz accepts, and the shipped LeNets draw as snapshotted.

use std::path::{Path, PathBuf};

use netc::analysis::ShapeArgs;
use netc::commands::visualize::{has_dot, run_dot};
use netc::dot::{self, RankDir};
use netc::spec::Source;
use netc::{front, ir};

fn draw(src: &Source, phase: Option<&str>) -> dot::Drawing {
    let (spec, diags) = front::load_net(src);
    let spec = spec.unwrap_or_else(|| panic!("{}", front::render(&diags)));
    let ctx = ShapeArgs {
        input: Some([1, 28, 28]),
        classes: Some(10),
    }
    .ctx();
    let irs: Vec<(&'static str, ir::NetIr)> = match phase {
        None => ir::check_all(&spec, &ctx).0,
        Some(p) => vec![(
            "train",
            ir::build_partial(&spec, &ir::state_named(p).expect("phase"), &ctx).0,
        )],
    };
    let refs: Vec<_> = irs.iter().map(|(p, n)| (*p, n)).collect();
    dot::drawing(&spec, &refs)
}

/// Undoes [`dot::escape`] on a DOT label, as Graphviz reads it.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out.replace("&amp;", "&")
}

const HOSTILE: &[&str] = &[
    r#"say "hi""#,
    r"back\slash",
    "{braces}",
    "a:b",
    "naïve 名前",
    r"trail\",
    "<b>&amp;</b>",
    "a|b",
];

fn hostile_spec() -> Source {
    let mut text = String::from(
        r#"layer { name: "in" type: "Input" top: "x0" input_param { shape { dim: 1 dim: 3 } } }"#,
    );
    for (i, name) in HOSTILE.iter().enumerate() {
        let q = name.replace('\\', r"\\").replace('"', r#"\""#);
        text += &format!(
            "\nlayer {{ name: \"{q}\" type: \"ReLU\" bottom: \"x{i}\" top: \"x{}\" }}",
            i + 1
        );
    }
    Source {
        path: PathBuf::from("hostile.net"),
        text: text.into(),
    }
}

#[test]
fn hostile_names_round_trip_through_dot_and_svg() {
    let d = draw(&hostile_spec(), Some("train"));
    let text = dot::to_dot(&d, RankDir::Lr);
    for name in HOSTILE {
        // Each node label's first line reads back as the name.
        let found = text
            .lines()
            .filter_map(|l| l.split_once("[label=\""))
            .map(|(_, rest)| {
                let end = rest.find("\\n").unwrap_or(rest.len());
                unescape(&rest[..end])
            });
        assert!(
            found.clone().any(|n| n == *name),
            "{name} not found in\n{text}"
        );
    }
    let xml = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let svg = dot::to_svg(&d, RankDir::Tb);
    for name in HOSTILE {
        assert!(
            svg.contains(&xml(name)) || svg.contains(&xml(name).replace('"', "&quot;")),
            "{name} not in the pure-Rust SVG"
        );
    }
    if !has_dot() {
        eprintln!("skipping the Graphviz half: `dot` is not installed");
        return;
    }
    let svg = String::from_utf8(run_dot(&text, "svg").expect("dot accepts the escaped DOT"))
        .expect("utf-8");
    for name in HOSTILE {
        let n = xml(name);
        assert!(
            svg.contains(&n) || svg.contains(&n.replace('"', "&quot;")),
            "{name} not shown as written by dot"
        );
    }
}

#[test]
fn in_place_layers_hang_off_their_producer_without_a_cycle() {
    let src = Source {
        path: PathBuf::from("t.net"),
        text:
            r#"layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "r" type: "ReLU" bottom: "x" top: "x" }
layer { name: "s" type: "Softmax" bottom: "x" top: "p" }"#
                .into(),
    };
    let d = draw(&src, Some("deploy"));
    let pairs: Vec<(usize, usize)> = d.edges.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(pairs, [(0, 1), (1, 2), (2, 3)]);
    assert_eq!(d.nodes[1].lines, ["r", "ReLU", "(in place)"]);
}

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/prototxt");
    if dir.join("MANIFEST.tsv").exists() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared/corpus/prototxt is absent");
        None
    }
}

#[test]
fn graphviz_accepts_every_parsing_corpus_net() {
    let Some(dir) = corpus() else { return };
    if !has_dot() {
        eprintln!("skipping: `dot` is not installed (.ci/run installs Graphviz)");
        return;
    }
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let files: Vec<String> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() >= 8 && c[5] == "net")
        .map(|c| c[0].to_string())
        .collect();
    use rayon::prelude::*;
    let drawn: usize = files
        .par_iter()
        .map(|f| {
            let src = front::read_source(&dir.join(f)).expect("readable");
            if front::load_net(&src).0.is_none() {
                return 0;
            }
            let text = dot::to_dot(&draw(&src, None), RankDir::Tb);
            run_dot(&text, "svg").unwrap_or_else(|e| panic!("{f}: {e}"));
            1
        })
        .sum();
    eprintln!("dot drew {drawn} corpus nets");
    assert!(drawn >= 88, "{drawn}");
}

fn shipped(name: &str) -> Source {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(name);
    let mut src = front::read_source(&p).expect("shipped spec");
    src.path = PathBuf::from(format!("specs/{name}"));
    src
}

#[test]
fn lenet_dot_snapshot() {
    let text = dot::to_dot(&draw(&shipped("lenet.net"), None), RankDir::Tb);
    insta::assert_snapshot!(text);
}

#[test]
fn lenet_custom_dot_snapshot_shows_the_changes() {
    let text = dot::to_dot(&draw(&shipped("lenet-custom.net"), None), RankDir::Tb);
    assert!(text.contains("reluP1\\nReLU\\n(in place)"), "{text}");
    assert!(
        text.contains("75 outputs") && text.contains("100 outputs"),
        "{text}"
    );
    assert!(text.contains("pool1\\n75×12×12"), "{text}");
    insta::assert_snapshot!(text);
}

/// Graphviz refuses strings over 16 KiB and stops reading its input: netc used to die of
/// SIGPIPE (status 141, no message). Now `run_dot` reports dot's complaint, `-o x.svg`
/// falls back to netc's own layout, and `-o x.png` fails with the complaint.
#[test]
fn a_name_too_long_for_graphviz_is_reported_not_fatal() {
    if !has_dot() {
        eprintln!("skipped: Graphviz's dot is not installed");
        return;
    }
    let long = "x".repeat(100_000);
    let err = run_dot(&format!("digraph {{ \"{long}\" }}"), "svg").expect_err("dot refuses");
    assert!(err.contains("rejected"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("long.net");
    std::fs::write(
        &spec,
        format!("name: \"{long}\"\nlayer {{ name: \"in\" type: \"Input\" top: \"data\" input_param {{ shape {{ dim: 1 dim: 1 dim: 8 dim: 8 }} }} }}\n"),
    )
    .unwrap();
    let run = |out: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["visualize", spec.to_str().unwrap(), "-o"])
            .arg(tmp.path().join(out))
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run("long.svg");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("drawing without Graphviz instead"), "{err}");
    let svg = std::fs::read_to_string(tmp.path().join("long.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains(">in<"),
        "{}",
        &svg[..200]
    );
    let (code, err) = run("long.png");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("rejected the drawing"), "{err}");
    assert!(!tmp.path().join("long.png").exists());
}

/// Nothing to draw is an error, not a panic: a net without layers, and a solver file
/// given as the net (one error saying so), each exit 1 whatever the output format.
#[test]
fn a_solver_or_an_empty_net_is_refused_not_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.net");
    std::fs::write(&empty, "name: \"empty\"\n").unwrap();
    let solver = dir.path().join("solver.prototxt");
    std::fs::write(&solver, "net: \"train_val.prototxt\"\nbase_lr: 0.01\n").unwrap();
    for (spec, want) in [
        (&empty, "has no layers"),
        (&solver, "is a solver file (it sets `net`), not a net"),
    ] {
        for out in ["x.svg", "x.dot"] {
            let out = dir.path().join(out);
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
                .arg("visualize")
                .arg(spec)
                .arg("-o")
                .arg(&out)
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr).replace('│', " ");
            let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(!out.exists());
        }
    }
}

/// `-o` naming the spec itself (a spec called `net.dot`) is refused and the spec kept: it
/// was overwritten by its own drawing.
#[test]
fn drawing_over_the_spec_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("net.dot");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lenet.net"),
    )
    .unwrap();
    std::fs::write(&spec, &text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("visualize")
        .arg(&spec)
        .arg("-o")
        .arg(dir.path().join(".").join("net.dot"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is the spec itself: drawing there would replace it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), text);
}
