//! Times the front end on the largest file of `../shared/corpus/prototxt`: parse, schema
//! check, and the whole `load_net` (parse + check + upgrade + layer specs); and `netc
//! check`'s whole work on long chains of in-place layers (generated), whose cost once grew
//! with the square of their length.
//!
//! `cargo bench --bench front` (a plain `harness = false` bench with std::time).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use netc::{front, schema, syntax};

fn time<T>(label: &str, runs: usize, mut f: impl FnMut() -> T) {
    for _ in 0..runs / 10 + 1 {
        black_box(f());
    }
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<28} median {:>7.3} ms   min {:>7.3} ms   max {:>7.3} ms   ({runs} runs)",
        ms(samples[runs / 2]),
        ms(samples[0]),
        ms(samples[runs - 1])
    );
}

/// An Input and `n` in-place ReLUs on its top.
fn chain(n: usize) -> netc::spec::Source {
    let mut text = String::from(
        "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 1 dim: 4 } } }\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "layer {{ name: \"r{i}\" type: \"ReLU\" bottom: \"data\" top: \"data\" }}\n"
        ));
    }
    netc::spec::Source {
        path: format!("chain-{n}.net").into(),
        text: text.as_str().into(),
    }
}

fn main() {
    for n in [5_000, 10_000, 20_000] {
        let src = chain(n);
        let args = netc::analysis::ShapeArgs::default();
        time(&format!("check, {n} in-place ReLUs"), 5, || {
            netc::commands::check::check_source(&src, &args)
        });
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/prototxt");
    let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    };
    let largest = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((c.get(4)?.parse::<u64>().ok()?, c[0].to_string()))
        })
        .max();
    let Some((size, file)) = largest else {
        eprintln!("skipping: empty manifest");
        return;
    };
    let src = match front::read_source(&dir.join(&file)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    let (net, diags) = front::load_net(&src);
    println!(
        "{file}: {size} bytes, {} layers, {} diagnostics",
        net.map(|n| n.layers.len()).unwrap_or(0),
        diags.len()
    );
    let runs = 200;
    time("syntax::parse", runs, || syntax::parse(&src));
    let (root, _) = syntax::parse(&src);
    let root = root.unwrap_or_default();
    time("schema::check", runs, || {
        let mut r = root.clone();
        schema::check(&src, &mut r, schema::NET)
    });
    time("front::load_net (all)", runs, || front::load_net(&src));
}
