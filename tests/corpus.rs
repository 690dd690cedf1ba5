//! Every real Caffe file in `../shared/corpus/prototxt` (see its README and MANIFEST.tsv):
//! files Caffe accepts parse with no error and give the same layers as an independent
//! reading; files Caffe rejects get an error on the line Caffe names.

use std::path::{Path, PathBuf};

use netc::diag::Severity;
use netc::front;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/prototxt");
    if p.join("MANIFEST.tsv").exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}

struct Row {
    file: String,
    kind: String,
    format: String,
    oracle: String,
}

fn manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() >= 8).then(|| Row {
                file: c[0].into(),
                kind: c[5].into(),
                format: c[6].into(),
                oracle: c[7].into(),
            })
        })
        .collect()
}

/// One layer as (name, type, bottoms, tops).
type Layer = (String, String, Vec<String>, Vec<String>);

/// A reading of a net's layers that shares no code with netc's parser: a hand-written
/// tokenizer and a walk over brace depth, with Caffe's V0/V1 type tables and its V0
/// padding and legacy-input rules.
mod independent {
    use super::Layer;

    #[derive(Debug, PartialEq)]
    enum Tok {
        Open,
        Close,
        Colon,
        Str(String),
        Word(String),
    }

    fn tokens(text: &str) -> Vec<Tok> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'{' | b'<' => {
                    out.push(Tok::Open);
                    i += 1;
                }
                b'}' | b'>' => {
                    out.push(Tok::Close);
                    i += 1;
                }
                b':' => {
                    out.push(Tok::Colon);
                    i += 1;
                }
                b'"' | b'\'' => {
                    let mut s = Vec::new();
                    i += 1;
                    while i < b.len() && b[i] != c {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        s.push(b[i]);
                        i += 1;
                    }
                    i += 1;
                    let s = String::from_utf8_lossy(&s).into_owned();
                    // Adjacent strings concatenate.
                    if let Some(Tok::Str(prev)) = out.last_mut() {
                        prev.push_str(&s);
                    } else {
                        out.push(Tok::Str(s));
                    }
                }
                c if c.is_ascii_whitespace()
                    || c == b','
                    || c == b';'
                    || c == b'['
                    || c == b']' =>
                {
                    i += 1
                }
                _ => {
                    let start = i;
                    while i < b.len() && !b" \t\r\n{}<>:#,;[]\"'".contains(&b[i]) {
                        i += 1;
                    }
                    out.push(Tok::Word(text[start..i].to_string()));
                }
            }
        }
        out
    }

    fn v1(t: &str) -> String {
        let s = match t {
            "ABSVAL" => "AbsVal",
            "ACCURACY" => "Accuracy",
            "ARGMAX" => "ArgMax",
            "BNLL" => "BNLL",
            "CONCAT" => "Concat",
            "CONTRASTIVE_LOSS" => "ContrastiveLoss",
            "CONVOLUTION" => "Convolution",
            "DECONVOLUTION" => "Deconvolution",
            "DATA" => "Data",
            "DROPOUT" => "Dropout",
            "DUMMY_DATA" => "DummyData",
            "EUCLIDEAN_LOSS" => "EuclideanLoss",
            "ELTWISE" => "Eltwise",
            "EXP" => "Exp",
            "FLATTEN" => "Flatten",
            "HDF5_DATA" => "HDF5Data",
            "HDF5_OUTPUT" => "HDF5Output",
            "HINGE_LOSS" => "HingeLoss",
            "IM2COL" => "Im2col",
            "IMAGE_DATA" => "ImageData",
            "INFOGAIN_LOSS" => "InfogainLoss",
            "INNER_PRODUCT" => "InnerProduct",
            "LRN" => "LRN",
            "MEMORY_DATA" => "MemoryData",
            "MULTINOMIAL_LOGISTIC_LOSS" => "MultinomialLogisticLoss",
            "MVN" => "MVN",
            "POOLING" => "Pooling",
            "POWER" => "Power",
            "RELU" => "ReLU",
            "SIGMOID" => "Sigmoid",
            "SIGMOID_CROSS_ENTROPY_LOSS" => "SigmoidCrossEntropyLoss",
            "SILENCE" => "Silence",
            "SOFTMAX" => "Softmax",
            "SOFTMAX_LOSS" => "SoftmaxWithLoss",
            "SPLIT" => "Split",
            "SLICE" => "Slice",
            "TANH" => "TanH",
            "WINDOW_DATA" => "WindowData",
            "THRESHOLD" => "Threshold",
            other => other,
        };
        s.to_string()
    }

    fn v0(t: &str) -> String {
        let up = match t {
            "conv" => "CONVOLUTION",
            "innerproduct" => "INNER_PRODUCT",
            "pool" => "POOLING",
            "images" => "IMAGE_DATA",
            "softmax_loss" => "SOFTMAX_LOSS",
            other => return v1(&other.to_ascii_uppercase()),
        };
        v1(up)
    }

    /// The layers of a net file, after Caffe's upgrades.
    pub fn layers(text: &str) -> Vec<Layer> {
        let toks = tokens(text);
        // Path of open messages, by field name.
        let mut path: Vec<String> = Vec::new();
        let mut layers: Vec<(Layer, bool, u32)> = Vec::new(); // (layer, is_padding, pad)
        let mut inputs: Vec<String> = Vec::new();
        let mut has_input_shape = false;
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::Word(name) => {
                    let mut j = i + 1;
                    if toks.get(j) == Some(&Tok::Colon) {
                        j += 1;
                    }
                    if toks.get(j) == Some(&Tok::Open) {
                        if path.is_empty() && (name == "layer" || name == "layers") {
                            layers.push(((String::new(), String::new(), vec![], vec![]), false, 0));
                        }
                        path.push(name.clone());
                        i = j + 1;
                        continue;
                    }
                    let value = match toks.get(j) {
                        Some(Tok::Str(s)) | Some(Tok::Word(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    match (p.as_slice(), name.as_str()) {
                        ([], "input") => inputs.push(value),
                        ([], "input_dim" | "input_shape") => has_input_shape = true,
                        (["layer" | "layers"] | ["layers", "layer"], _) => {
                            if let Some((l, pad, padv)) = layers.last_mut() {
                                let is_v0 = p.len() == 2;
                                match name.as_str() {
                                    "name" => l.0 = value,
                                    "type" if is_v0 => {
                                        *pad = value == "padding";
                                        l.1 = v0(&value);
                                    }
                                    "type" if p[0] == "layers" => l.1 = v1(&value),
                                    "type" => l.1 = value,
                                    "bottom" => l.2.push(value),
                                    "top" => l.3.push(value),
                                    "pad" if is_v0 => *padv = value.parse().unwrap_or(0),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                    i = j + 1;
                }
                Tok::Open => {
                    path.push(String::new());
                    i += 1;
                }
                Tok::Close => {
                    path.pop();
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if toks.iter().any(|t| *t == Tok::Word("input_shape".into())) {
            has_input_shape = true;
        }
        // V0 padding layers fold into the layer they feed.
        let mut out: Vec<Layer> = Vec::new();
        let mut padded: Vec<(String, String)> = Vec::new(); // (padding top, its bottom)
        for (l, is_pad, _) in layers {
            if is_pad {
                padded.push((
                    l.3.first().cloned().unwrap_or_default(),
                    l.2.first().cloned().unwrap_or_default(),
                ));
                continue;
            }
            let mut l = l;
            for b in &mut l.2 {
                if let Some((_, src)) = padded.iter().rev().find(|(t, _)| t == b) {
                    *b = src.clone();
                }
            }
            out.push(l);
        }
        if !inputs.is_empty() && has_input_shape {
            out.insert(0, ("input".into(), "Input".into(), vec![], inputs));
        }
        out
    }
}

fn line_of_oracle(oracle: &str) -> Option<usize> {
    oracle
        .strip_prefix("error:")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

#[test]
fn corpus_matches_caffe() {
    let Some(dir) = corpus() else { return };
    let rows = manifest(&dir);
    assert!(rows.len() >= 180, "manifest has {} rows", rows.len());
    let mut failures = Vec::new();
    let (mut accepted, mut rejected, mut compared) = (0, 0, 0);
    for row in &rows {
        let path = dir.join(&row.file);
        let src = match front::read_source(&path) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", row.file));
                continue;
            }
        };
        let (layers, diags) = if row.kind == "solver" {
            let (m, d) = front::load_solver(&src);
            (m.map(|_| None), d)
        } else {
            let (n, d) = front::load_net(&src);
            (
                n.map(|n| {
                    Some(
                        n.layers
                            .iter()
                            .map(|l| {
                                (
                                    l.name.clone(),
                                    l.ty.clone(),
                                    l.bottoms.clone(),
                                    l.tops.clone(),
                                )
                            })
                            .collect::<Vec<Layer>>(),
                    )
                }),
                d,
            )
        };
        let errors: Vec<_> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if row.oracle == "ok" {
            accepted += 1;
            if !errors.is_empty() {
                failures.push(format!(
                    "{}: Caffe accepts it, netc says:\n{}",
                    row.file,
                    front::render(&diags)
                ));
                continue;
            }
            let has_old = diags.iter().any(|d| d.code == "netc::old_format");
            if (row.format == "v0" || row.format == "v1") && row.kind == "net" && !has_old {
                failures.push(format!(
                    "{}: {} file without an old-format warning",
                    row.file, row.format
                ));
            }
            if let Some(Some(ours)) = layers {
                compared += 1;
                let theirs = independent::layers(&src.text);
                if ours != theirs {
                    let diff = ours.iter().zip(&theirs).find(|(a, b)| a != b);
                    failures.push(format!(
                        "{}: layers differ ({} vs {}); first difference: {diff:?}",
                        row.file,
                        ours.len(),
                        theirs.len()
                    ));
                }
            }
        } else {
            rejected += 1;
            let Some(first) = errors.first() else {
                failures.push(format!(
                    "{}: Caffe rejects it ({}), netc accepts it",
                    row.file, row.oracle
                ));
                continue;
            };
            if let Some(line) = line_of_oracle(&row.oracle) {
                let at = first
                    .labels
                    .first()
                    .map(|(s, _)| front::line_col(&src.text, s.start).0);
                if at != Some(line) {
                    failures.push(format!(
                        "{}: Caffe's error is on line {line}, netc's first on {at:?}: {}",
                        row.file, first.message
                    ));
                }
            }
        }
    }
    eprintln!("corpus: {accepted} accepted, {rejected} rejected, {compared} layer lists compared");
    assert!(
        failures.is_empty(),
        "{} of {} files disagree:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(compared >= 85, "only {compared} nets compared");
}

#[test]
fn independent_reader_sanity() {
    let layers = independent::layers("layers { name: 'a' type: CONVOLUTION bottom: 'x' top: 'a' }");
    assert_eq!(
        layers,
        vec![(
            "a".to_string(),
            "Convolution".to_string(),
            vec!["x".to_string()],
            vec!["a".to_string()]
        )]
    );
}

#[test]
fn upgraded_old_nets_reparse_to_the_same_layers() {
    let Some(dir) = corpus() else { return };
    let mut n = 0;
    for row in manifest(&dir)
        .iter()
        .filter(|r| r.kind == "net" && r.oracle == "ok" && (r.format == "v0" || r.format == "v1"))
    {
        let Ok(src) = front::read_source(&dir.join(&row.file)) else {
            panic!("cannot read {}", row.file)
        };
        let (Some(mut root), _) = netc::syntax::parse(&src) else {
            panic!("{} does not parse", row.file)
        };
        netc::schema::check(&src, &mut root, netc::schema::NET);
        let (net, _) = netc::upgrade::upgrade_net(&src, &root);
        let printed = netc::syntax::print(&net);
        let again = netc::spec::Source {
            path: "upgraded.prototxt".into(),
            text: printed.into(),
        };
        let (Some(spec2), diags2) = front::load_net(&again) else {
            panic!("{}: upgraded text does not parse", row.file)
        };
        assert!(
            diags2.is_empty(),
            "{}: upgraded text has diagnostics:\n{}",
            row.file,
            front::render(&diags2)
        );
        let (Some(spec1), _) = front::load_net(&src) else {
            panic!("{}", row.file)
        };
        let key = |s: &netc::spec::NetSpec| {
            s.layers
                .iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        l.ty.clone(),
                        l.bottoms.clone(),
                        l.tops.clone(),
                        l.include.len(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&spec1), key(&spec2), "{}", row.file);
        let msgs = |s: &netc::spec::NetSpec| {
            s.layers
                .iter()
                .map(|l| netc::syntax::print(&l.msg))
                .collect::<Vec<_>>()
        };
        assert_eq!(msgs(&spec1), msgs(&spec2), "{}", row.file);
        n += 1;
    }
    assert!(n >= 35, "only {n} old nets");
}

/// `netc check` on every solver file of the corpus gives Caffe's verdict: exit 0 for the
/// ones Caffe reads, 1 for the others (a solver is checked against the solver's schema,
/// not read as a net).
#[test]
fn netc_check_reads_solver_files_as_solvers() {
    let Some(dir) = corpus() else { return };
    let mut seen = 0;
    for row in manifest(&dir).iter().filter(|r| r.kind == "solver") {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .arg("check")
            .arg(dir.join(&row.file))
            .output()
            .unwrap();
        let want = if row.oracle == "ok" { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{} (Caffe: {}): {}",
            row.file,
            row.oracle,
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 60, "{seen} solver files");
}
