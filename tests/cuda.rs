//! The CUDA build's device selection (`cargo test --features cuda`, which
//! `scripts/build-cuda.sh test` runs). On a machine without a GPU the build links the stub
//! driver, every CUDA call fails, and these tests check that netc says so and that `auto`
//! falls back to the CPU; where a GPU answers, they check that it trains and that it
//! classifies like the CPU.
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(crate_root())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "400")
        .output()
        .expect("netc runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A 16-iteration LeNet run on the shipped small MNIST.
fn tiny_run(dir: &Path, device: &str) -> (i32, String) {
    let (code, _, err) = netc(&[
        "train",
        "specs/lenet.net",
        "--epochs",
        "0.1",
        "--device",
        device,
        "--out",
        dir.to_str().expect("utf-8 temp path"),
    ]);
    (code, err)
}

fn gpu_answers(err: &str) -> bool {
    !err.contains("is not usable")
}

fn assert_says_what_is_missing(code: i32, err: &str, help: &str) {
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("device cuda:0 is not usable"), "{err}");
    assert!(err.contains(help), "{err}");
    // The cause, not candle's backtrace (RUST_BACKTRACE=1 made candle attach forty frames).
    assert!(!err.contains("candle-core-0."), "{err}");
    assert!(!err.contains("rayon"), "{err}");
    if err.contains("CUDA_ERROR_STUB_LIBRARY") {
        assert!(err.contains("stub driver"), "{err}");
    }
}

#[test]
fn cuda_trains_or_says_what_is_missing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (code, err) = tiny_run(&tmp.path().join("run"), "cuda");
    if gpu_answers(&err) {
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("device: cuda (candle's CUDA backend)"),
            "{err}"
        );
        let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.csv")).expect("metrics");
        assert_eq!(metrics.lines().count(), 2, "{metrics}");
    } else {
        assert_says_what_is_missing(code, &err, "train with --device cpu");
        assert!(
            !tmp.path().join("run/metrics.csv").exists(),
            "nothing trained"
        );
    }
}

#[test]
fn auto_uses_the_gpu_or_falls_back_to_the_cpu_and_says_why() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (code, err) = tiny_run(&tmp.path().join("run"), "auto");
    assert_eq!(code, 0, "{err}");
    if err.contains("device: cuda") {
        assert!(!err.contains("running on the CPU"), "{err}");
    } else {
        assert!(
            err.contains("note: --device auto: no usable GPU (")
                && err.contains("running on the CPU"),
            "{err}"
        );
        assert!(!err.contains("candle-core-0."), "{err}");
    }
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.csv")).expect("metrics");
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
}

#[test]
fn classify_on_cuda_matches_the_cpu_or_says_what_is_missing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tmp.path().join("run");
    let (code, err) = tiny_run(&run, "cpu");
    assert_eq!(code, 0, "{err}");
    // The dataset's mean image: a 28×28 grey picture like the digits.
    let image = "specs/data/mnist-small/mean.png";
    let run_s = run.to_str().expect("utf-8");
    let classify = |device: &str| {
        netc(&[
            "classify", run_s, image, "--device", device, "--format", "json",
        ])
    };
    let (code, cpu, err) = classify("cpu");
    assert_eq!(code, 0, "{err}");
    let (code, gpu, err) = classify("cuda");
    if gpu_answers(&err) {
        assert_eq!(code, 0, "{err}");
        let probs = |s: &str| -> Vec<f64> {
            let v: serde_json::Value = serde_json::from_str(s).expect("json");
            v["images"][0]["predictions"][0]
                .as_array()
                .expect("predictions")
                .iter()
                .map(|p| p["probability"].as_f64().expect("probability"))
                .collect()
        };
        let (a, b) = (probs(&cpu), probs(&gpu));
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "cpu {a:?} gpu {b:?}");
        }
    } else {
        assert_says_what_is_missing(code, &err, "classify with --device cpu");
    }
}
