//! `netc upgrade SPEC` from the command line: output, exit codes, messages.

use std::process::Command;

use netc::front;
use netc::spec::Source;

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = match Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run netc: {e}"),
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    if let Err(e) = std::fs::write(&p, text) {
        panic!("cannot write {}: {e}", p.display());
    }
    p.display().to_string()
}

#[test]
fn upgrades_a_v1_net() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    let path = write(
        &dir,
        "old.prototxt",
        "name: 'old'\ninput: 'data'\ninput_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28\n\
         layers { name: 'ip' type: INNER_PRODUCT bottom: 'data' top: 'ip' blobs_lr: 1 blobs_lr: 2\n\
           inner_product_param { num_output: 10 } }\n\
         layers { name: 'prob' type: SOFTMAX bottom: 'ip' top: 'prob' }\n",
    );
    let (code, out, err) = netc(&["upgrade", &path]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.is_empty(), "unexpected stderr: {err}");
    assert!(
        out.starts_with("name: \"old\"\nlayer {\n  name: \"input\"\n  type: \"Input\"\n"),
        "{out}"
    );
    let src = Source {
        path: "upgraded".into(),
        text: out.as_str().into(),
    };
    let (net, diags) = front::load_net(&src);
    assert!(diags.is_empty(), "{}", front::render(&diags));
    let types: Vec<String> = net
        .map(|n| n.layers.iter().map(|l| l.ty.clone()).collect())
        .unwrap_or_default();
    assert_eq!(types, ["Input", "InnerProduct", "Softmax"]);
}

#[test]
fn broken_spec_exits_1_with_a_located_message() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    let path = write(
        &dir,
        "bad.prototxt",
        "layers {\n  name: 'x'\n  type: CONVOLUTON\n}\n",
    );
    let (code, out, err) = netc(&["upgrade", &path]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("bad.prototxt:3:9"), "{err}");
    assert!(err.contains("did you mean `CONVOLUTION`?"), "{err}");
}

#[test]
fn missing_file_exits_2() {
    let (code, _, err) = netc(&["upgrade", "/nonexistent/net.prototxt"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/net.prototxt"), "{err}");
}

/// Files `upgrade` cannot turn into a sound net exit 1 with the reason and print nothing:
/// three `input_dim` values (it printed an empty input_param, exit 0) and V1 `layers` mixed
/// with current `layer`s (Caffe refuses to upgrade those; the new layer was dropped).
#[test]
fn unsound_old_nets_are_refused() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    let three = write(
        &dir,
        "three.prototxt",
        "input: 'data'\ninput_dim: 1 input_dim: 28 input_dim: 28\n\
         layers { name: 'ip' type: INNER_PRODUCT bottom: 'data' top: 'ip' inner_product_param { num_output: 10 } }\n",
    );
    let mixed = write(
        &dir,
        "mixed.prototxt",
        "input: 'data'\ninput_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28\n\
         layers { name: 'ip' type: INNER_PRODUCT bottom: 'data' top: 'ip' inner_product_param { num_output: 10 } }\n\
         layer { name: 'r2' type: 'ReLU' bottom: 'ip' top: 'ip' }\n",
    );
    for (path, says) in [
        (three, "input `data` needs four `input_dim` values"),
        (
            mixed,
            "this file mixes V1 `layers { }` and `layer { }`, which Caffe refuses to upgrade",
        ),
    ] {
        let (code, out, err) = netc(&["upgrade", &path]);
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(says), "{err}");
        let (code, _, err) = netc(&["check", &path]);
        assert_eq!(code, 1, "{err}");
    }
}
