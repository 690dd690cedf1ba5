//! `front::load_net` on real and small specs: layers, rules and spans.

use std::path::{Path, PathBuf};

use netc::front;
use netc::spec::{NetState, Phase, Source};

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}

fn source(text: &str) -> Source {
    Source {
        path: PathBuf::from("net.prototxt"),
        text: text.into(),
    }
}

#[test]
fn caffe_lenet() {
    let Some(path) =
        shared("corpus/prototxt/BVLC__caffe/examples__mnist__lenet_train_test.prototxt")
    else {
        return;
    };
    let src = match front::read_source(&path) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    let (net, diags) = front::load_net(&src);
    assert!(!front::has_errors(&diags), "{}", front::render(&diags));
    let Some(net) = net else { panic!("no net") };
    assert_eq!(net.name.as_deref(), Some("LeNet"));
    let names: Vec<&str> = net.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mnist", "mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
            "accuracy", "loss"
        ]
    );
    let types: Vec<&str> = net.layers.iter().map(|l| l.ty.as_str()).collect();
    assert_eq!(
        types,
        [
            "Data",
            "Data",
            "Convolution",
            "Pooling",
            "Convolution",
            "Pooling",
            "InnerProduct",
            "ReLU",
            "InnerProduct",
            "Accuracy",
            "SoftmaxWithLoss"
        ]
    );
    assert_eq!(net.layers[0].include[0].phase, Some(Phase::Train));
    assert_eq!(net.layers[1].include[0].phase, Some(Phase::Test));
    assert_eq!(net.layers[0].tops, ["data", "label"]);
    let conv1 = &net.layers[2];
    assert_eq!(&src.text[conv1.name_span.clone()], "\"conv1\"");
    assert_eq!(&src.text[conv1.type_span.clone()], "\"Convolution\"");
    assert_eq!(&src.text[conv1.bottom_spans[0].clone()], "\"data\"");
    assert_eq!(&src.text[conv1.top_spans[0].clone()], "\"conv1\"");
    assert!(src.text[conv1.span.clone()].starts_with('{'));
    assert_eq!(front::line_col(&src.text, conv1.name_span.start), (37, 9));
    assert_eq!(
        conv1
            .msg
            .msg("convolution_param")
            .and_then(|c| c.usize("num_output")),
        Some(20)
    );
    assert_eq!(net.layers_for(&NetState::train()).len(), 9);
    assert_eq!(net.layers_for(&NetState::val()).len(), 10);
}

#[test]
fn rules_and_spans() {
    let text = "name: 'n'\nlayer { name: 'a' type: 'Input' top: 'x' include { phase: TRAIN stage: 'train' } }\n\
                layer < name: 'b' type: 'ReLU' bottom: 'x' top: 'x' exclude { not_stage: 'deploy' min_level: 1 } >\n";
    let (net, diags) = front::load_net(&source(text));
    assert!(diags.is_empty(), "{}", front::render(&diags));
    let Some(net) = net else { panic!("no net") };
    let a = &net.layers[0];
    assert_eq!(a.include[0].stages, ["train"]);
    assert!(a.included_in(&NetState::train()));
    assert!(!a.included_in(&NetState::val()));
    let b = &net.layers[1];
    assert_eq!(b.exclude[0].not_stages, ["deploy"]);
    assert_eq!(b.exclude[0].min_level, Some(1));
    assert_eq!(&text[b.bottom_spans[0].clone()], "'x'");
    assert_eq!(front::line_col(text, b.type_span.start), (3, 25));
}

#[test]
fn syntax_error_gives_no_net() {
    let (net, diags) = front::load_net(&source("layer {\n name: 'a'\n"));
    assert!(net.is_none());
    assert_eq!(diags[0].code, "netc::unclosed_brace");
}

#[test]
fn missing_file_is_a_usage_error() {
    let err = match front::read_source(Path::new("/nonexistent/x.prototxt")) {
        Ok(_) => panic!("read a missing file"),
        Err(e) => e,
    };
    assert_eq!(netc::commands::exit_code_of(&err), 2);
    assert!(err.to_string().contains("/nonexistent/x.prototxt"));
}

#[test]
fn crlf_and_bom() {
    let text = "\u{FEFF}name: 'n'\r\nlayer {\r\n  name: 'a'\r\n  type: 'Input'\r\n}\r\n";
    let (net, diags) = front::load_net(&source(text));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "netc::byte_order_mark");
    let Some(net) = net else { panic!("no net") };
    assert_eq!(front::line_col(text, net.layers[0].name_span.start), (3, 9));
    assert_eq!(front::line_col(text, net.layers[0].type_span.start), (4, 9));
}

#[test]
fn enum_numbers_become_names() {
    let text = "layer { name: 'p' type: 'Pooling' include { phase: 1 } pooling_param { pool: 1 } }";
    let (net, diags) = front::load_net(&source(text));
    assert!(diags.is_empty(), "{}", front::render(&diags));
    let Some(net) = net else { panic!("no net") };
    assert_eq!(net.layers[0].include[0].phase, Some(Phase::Test));
    assert_eq!(
        net.layers[0]
            .msg
            .msg("pooling_param")
            .and_then(|p| p.ident("pool")),
        Some("AVE")
    );
}

#[test]
fn solver_is_checked_against_solver_parameter() {
    let text = "net: 'train_val.prototxt'\nbase_lr: 0.01\nmomentum: .9\nsolver_mode: 0\nlr_policy: \"step\" stepsize: 0x10\n";
    let (solver, diags) = front::load_solver(&source(text));
    assert!(diags.is_empty(), "{}", front::render(&diags));
    let Some(s) = solver else { panic!("no solver") };
    assert_eq!(s.ident("solver_mode"), Some("CPU"));
    assert_eq!(s.float("momentum"), Some(0.9));
    assert_eq!(s.int("stepsize"), Some(16));
    let (_, diags) = front::load_solver(&source("base_lr: 0.01\nnum_output: 3\n"));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "netc::unknown_field");
}
