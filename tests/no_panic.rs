//! Property tests: no input makes the front end panic, whatever bytes it is given or
//! however a real spec is mangled.

use std::path::PathBuf;

use netc::front;
use netc::spec::Source;
use proptest::prelude::*;

const LENET: &str = r#"name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "x" batch_size: 64 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layers { name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip" blobs_lr: 1 inner_product_param { num_output: 10 } }
layers { layer { name: "p" type: "pool" pool: MAX kernelsize: 2 } bottom: "ip" top: "p" }
input: "data" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28
"#;

fn run_all(text: &str) {
    let src = Source {
        path: PathBuf::from("fuzz.prototxt"),
        text: text.into(),
    };
    let (net, diags) = front::load_net(&src);
    let _ = front::render(&diags);
    if let Some(net) = net {
        for l in &net.layers {
            let _ = netc::syntax::print(&l.msg);
        }
    }
    let (_, diags) = front::load_solver(&src);
    let _ = front::render(&diags);
    for d in &diags {
        for (span, _) in &d.labels {
            let _ = front::line_col(text, span.start);
        }
    }
}

/// Text built from the language's own tokens, so that deep structure gets exercised.
fn tokens() -> impl Strategy<Value = String> {
    let tok = prop::sample::select(vec![
        "layer",
        "layers",
        "name",
        "type",
        ":",
        "{",
        "}",
        "<",
        ">",
        "[",
        "]",
        ",",
        ";",
        "\"a\"",
        "'b'",
        "\"\\x4",
        "\"\\1",
        "0x",
        "019",
        "1e",
        ".5",
        "-",
        "inf",
        "nan",
        "TRAIN",
        "7",
        "-3",
        "1.5f",
        "#c\n",
        "\n",
        "\r\n",
        " ",
        "include",
        "phase",
        "param",
        "input",
        "input_dim",
        "input_shape",
        "dim",
        "convolution_param",
        "pad",
        "kernelsize",
        "\u{FEFF}",
        "é",
        "\\",
    ]);
    prop::collection::vec(tok, 0..80).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_strings(s in ".{0,300}") {
        run_all(&s);
    }

    #[test]
    fn random_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
        run_all(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn token_soup(s in tokens()) {
        run_all(&s);
    }

    #[test]
    fn mutated_real_spec(cut in 0..LENET.len(), len in 0usize..40, insert in prop::sample::select(vec!["", "{", "}", "\"", ":", "layers {", "-", "0x", "\\"])) {
        let mut text = LENET.to_string();
        let mut start = cut;
        while !text.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        text.replace_range(start..end, insert);
        run_all(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = "a {".repeat(100_000);
    let src = Source {
        path: PathBuf::from("deep"),
        text: text.into(),
    };
    let (net, diags) = front::load_net(&src);
    assert!(net.is_none());
    assert_eq!(diags[0].code, "netc::too_deep");
}

#[test]
fn mixed_formats_upgrade_like_caffe() {
    // Caffe upgrades the `layers { }` (here V0, since one holds a V0 `layer { }`), ignores
    // the `layer { }`s, and then cannot find `conv1`, which only an ignored layer made.
    let src = Source {
        path: PathBuf::from("lenet"),
        text: LENET.into(),
    };
    let (net, diags) = front::load_net(&src);
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "netc::old_format",
            "netc::mixed_formats",
            "netc::v0_upgrade",
            "netc::legacy_input"
        ]
    );
    assert_eq!(net.map(|n| n.layers.len()), Some(3));
}
