//! Every corpus net that Caffe accepts goes through `ir::build` for the train and test
//! phases without panicking; shape errors are counted and must stay at the known few.

use std::path::{Path, PathBuf};

use netc::diag::Severity;
use netc::layers::ShapeCtx;
use netc::{front, ir};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/prototxt");
    if dir.join("MANIFEST.tsv").exists() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared/corpus/prototxt is absent");
        None
    }
}

/// (file, code, message) of every error the IR reports over the accepted corpus nets.
fn corpus_errors(dir: &Path) -> (usize, Vec<(String, &'static str, String)>) {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let mut nets = 0;
    let mut errors = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 8 || cols[5] != "net" || cols[7] != "ok" {
            continue;
        }
        nets += 1;
        let src = front::read_source(&dir.join(cols[0])).expect("readable");
        let (spec, _) = front::load_net(&src);
        let spec = spec.unwrap_or_else(|| panic!("{} should parse", cols[0]));
        for state in [netc::spec::NetState::train(), netc::spec::NetState::val()] {
            let (_, diags) = ir::build(&spec, &state, &ShapeCtx::default());
            for d in diags.into_iter().filter(|d| d.severity == Severity::Error) {
                let e = (cols[0].to_string(), d.code, d.message.clone());
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    (nets, errors)
}

#[test]
fn accepted_corpus_nets_build_in_train_and_test() {
    let Some(dir) = corpus() else { return };
    let (nets, errors) = corpus_errors(&dir);
    for e in &errors {
        eprintln!("{}: {}: {}", e.0, e.1, e.2);
    }
    eprintln!("{nets} accepted nets, {} IR errors", errors.len());
    assert_eq!(nets, 88);
    // The only accepted nets with validation errors: Caffe's mnist_autoencoder (two copies)
    // names two layers `loss` in one phase, and its test data layers need the stages
    // "test-on-train"/"test-on-test", which the TEST state (stage "val") does not have.
    let files: std::collections::BTreeSet<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        [
            "BVLC__caffe/examples__mnist__mnist_autoencoder.prototxt",
            "BVLC__caffe/hist-11a4c16__examples__mnist__mnist_autoencoder.prototxt"
        ]
    );
    assert!(errors
        .iter()
        .all(|e| e.1 == "netc::duplicate_name" || e.1 == "netc::missing_bottom"));
}

#[test]
#[ignore = "exploration: shape rules on every corpus net with a 3×256×256 input"]
fn explore_shapes_with_an_input_size() {
    let Some(dir) = corpus() else { return };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let ctx = ShapeCtx {
        data_chw: Some([3, 256, 256]),
        num_classes: Some(10),
        batch: None,
    };
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 8 || cols[5] != "net" || cols[7] != "ok" {
            continue;
        }
        let src = front::read_source(&dir.join(cols[0])).expect("readable");
        let Some(spec) = front::load_net(&src).0 else {
            continue;
        };
        let (_, diags) = ir::check_all(&spec, &ctx);
        for d in diags {
            eprintln!("{}: {:?} {}: {}", cols[0], d.severity, d.code, d.message);
        }
    }
}
