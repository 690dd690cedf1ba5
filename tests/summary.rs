//! `netc summary`'s figures: Caffe's LeNet has 431,080 parameters and 2,293,000
//! multiply-accumulates per image; in-place layers are listed under their producer and
//! not counted twice.

use std::path::{Path, PathBuf};

use netc::commands::summary::{render, table};
use netc::layers::ShapeCtx;
use netc::spec::NetState;
use netc::{front, ir};

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

fn totals(path: &Path, state: &NetState, ctx: &ShapeCtx) -> (u64, u64, String) {
    let src = front::read_source(path).expect("readable");
    let (spec, diags) = front::load_net(&src);
    let spec = spec.unwrap_or_else(|| panic!("{}", front::render(&diags)));
    let (net, diags) = ir::build(&spec, state, ctx);
    let net = net.unwrap_or_else(|| panic!("{}", front::render(&diags)));
    let (rows, t) = table(&net, ctx);
    assert!(!t.partial, "all shapes known");
    (t.params, t.macs, render("LeNet", &rows, &t))
}

#[test]
fn caffe_lenet_train_test_golden_numbers() {
    let Some(p) = shared("corpus/prototxt/BVLC__caffe/examples__mnist__lenet_train_test.prototxt")
    else {
        return;
    };
    let ctx = ShapeCtx {
        data_chw: Some([1, 28, 28]),
        ..ShapeCtx::default()
    };
    for state in [NetState::train(), NetState::val()] {
        let (params, macs, text) = totals(&p, &state, &ctx);
        assert_eq!((params, macs), (431_080, 2_293_000), "{text}");
        assert!(text.contains("  ↳ relu1  ReLU"), "{text}");
        assert!(
            text.contains("Total") && text.contains("431,080  2,293,000"),
            "{text}"
        );
    }
}

#[test]
fn caffe_lenet_deploy_table() {
    let Some(p) = shared("corpus/prototxt/BVLC__caffe/examples__mnist__lenet.prototxt") else {
        return;
    };
    let (params, macs, text) = totals(&p, &NetState::deploy(), &ShapeCtx::default());
    assert_eq!((params, macs), (431_080, 2_293_000));
    insta::assert_snapshot!(text);
}

#[test]
fn shipped_lenet_golden_numbers() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lenet.net");
    assert!(p.exists(), "specs/lenet.net is part of the crate");
    let ctx = ShapeCtx {
        data_chw: Some([1, 28, 28]),
        num_classes: Some(10),
        ..ShapeCtx::default()
    };
    for state in [NetState::train(), NetState::val(), NetState::deploy()] {
        let (params, macs, text) = totals(&p, &state, &ctx);
        assert_eq!((params, macs), (431_080, 2_293_000), "{text}");
    }
}

/// Published figures for well-known nets (deploy files from the corpus): parameters as
/// Caffe stores them (BatchNorm's mean, variance and factor included) and MACs per image
/// (Scale counts one multiply per element; pooling counts none).
#[test]
fn known_nets_match_published_figures() {
    let nets = [
        (
            "BVLC__caffe/models__bvlc_alexnet__deploy.prototxt",
            60_965_224,
            724_406_816,
        ),
        (
            "ethereon__netscope/presets__vgg-16.prototxt",
            138_357_544,
            15_470_264_320,
        ),
        (
            "ethereon__netscope/presets__googlenet.prototxt",
            6_998_552,
            1_582_671_872,
        ),
        (
            "KaimingHe__deep-residual-networks/prototxt__ResNet-50-deploy.prototxt",
            25_610_269,
            3_868_560_384,
        ),
        (
            "forresti__SqueezeNet/SqueezeNet_v1.0__deploy.prototxt",
            1_248_424,
            861_339_936,
        ),
    ];
    for (file, params, macs) in nets {
        let Some(p) = shared(&format!("corpus/prototxt/{file}")) else {
            return;
        };
        let (got_p, got_m, text) = totals(&p, &NetState::deploy(), &ShapeCtx::default());
        assert_eq!((got_p, got_m), (params, macs), "{file}\n{text}");
    }
}

/// `--classes 0` would give an output layer of no outputs: refused by the flag's parser.
#[test]
fn zero_classes_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["summary", "specs/lenet.net", "--classes", "0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("netc runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value '0' for '--classes <N>'"),
        "{err}"
    );
}
