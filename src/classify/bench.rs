//! `netc classify RUN --bench`: single-image latency (one image per request, as
//! `netc classify RUN IMAGE` runs it: a forward pass of the classification batch, padded)
//! and list throughput (images per second through `classify_all`'s batched path), each end
//! to end (read, decode, fit, preprocess, forward) and for the forward pass alone; plus the
//! forward pass of a batch-1 net, the floor for one image.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::list::Entry;
use super::{classify_all, Model, ModelInfo};

/// Milliseconds per image.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub runs: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
}

fn latency(mut times: Vec<Duration>) -> Latency {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = times.len().max(1);
    Latency {
        runs: times.len(),
        median_ms: times.get(times.len() / 2).map_or(0.0, |d| ms(*d)),
        mean_ms: times.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
        p90_ms: times.get(times.len() * 9 / 10).map_or(0.0, |d| ms(*d)),
        min_ms: times.first().map_or(0.0, |d| ms(*d)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: ModelInfo,
    /// Distinct images cycled through.
    pub images: usize,
    pub threads: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// One image: read + decode + fit + preprocess + forward (padded to `batch`).
    pub latency: Latency,
    /// One image: the forward pass alone (padded to `batch`).
    pub forward_latency: Latency,
    /// One image through a net of batch 1, forward pass alone.
    pub forward_latency_batch1: Latency,
    /// Images classified in the throughput runs.
    pub list_images: usize,
    /// End to end through the list path (parallel decoding, batched forward).
    pub images_per_second: f64,
    /// The batched forward pass alone.
    pub forward_images_per_second: f64,
}

/// Times a model on `entries` for about `seconds` in all.
pub fn run(
    run: &Path,
    epoch: Option<usize>,
    entries: &[Entry],
    batch: usize,
    seconds: f64,
) -> miette::Result<BenchReport> {
    if entries.is_empty() {
        return Err(crate::commands::usage(
            "--bench needs images to classify",
            Some("give image files after the run, or --list FILE".into()),
        ));
    }
    let mut one = Model::open(run, epoch, batch)?;
    let mut single = Model::open(run, epoch, 1)?;
    let decoded = entries
        .iter()
        .map(|e| crate::data::image::decode(&e.path))
        .collect::<miette::Result<Vec<_>>>()?;
    let inputs: Vec<Vec<f32>> = decoded.iter().map(|d| one.prepare(d)).collect();
    let budget = Duration::from_secs_f64(seconds.max(0.1) / 4.0);
    let timed = |f: &mut dyn FnMut(usize)| -> Vec<Duration> {
        for i in 0..3 {
            f(i);
        }
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < 10 || (start.elapsed() < budget && times.len() < 100_000) {
            let t = Instant::now();
            f(times.len());
            times.push(t.elapsed());
        }
        times
    };
    let e2e = timed(&mut |i| {
        let e = &entries[i % entries.len()];
        if let Ok(img) = crate::data::image::decode(&e.path) {
            let x = one.prepare(&img);
            std::hint::black_box(one.classify(&[x]));
        }
    });
    let fwd = timed(&mut |i| {
        std::hint::black_box(one.classify(&[&inputs[i % inputs.len()]]));
    });
    let fwd1 = timed(&mut |i| {
        std::hint::black_box(single.classify(&[&inputs[i % inputs.len()]]));
    });
    let many = &mut one;
    let per_pass = batch.max(1) * 16;
    let list: Vec<Entry> = entries
        .iter()
        .cycle()
        .take(per_pass.max(entries.len()))
        .cloned()
        .collect();
    let many_inputs: Vec<&Vec<f32>> = inputs.iter().cycle().take(list.len()).collect();
    let throughput = |f: &mut dyn FnMut()| -> f64 {
        f();
        let start = Instant::now();
        let mut passes = 0usize;
        while passes < 1 || start.elapsed() < budget {
            f();
            passes += 1;
        }
        (passes * list.len()) as f64 / start.elapsed().as_secs_f64()
    };
    let models = std::slice::from_mut(many);
    let ips = throughput(&mut || {
        std::hint::black_box(classify_all(models, &list, 5));
    });
    let fips = throughput(&mut || {
        std::hint::black_box(models[0].classify(&many_inputs));
    });
    Ok(BenchReport {
        model: models[0].info.clone(),
        images: entries.len(),
        threads: rayon::current_num_threads(),
        batch: models[0].batch(),
        latency: latency(e2e),
        forward_latency: latency(fwd),
        forward_latency_batch1: latency(fwd1),
        list_images: list.len(),
        images_per_second: ips,
        forward_images_per_second: fips,
    })
}

/// The figures as terminal text.
pub fn render(r: &BenchReport) -> String {
    let l = |x: &Latency| {
        format!(
            "median {:.3} ms, mean {:.3} ms, p90 {:.3} ms, min {:.3} ms ({} runs)",
            x.median_ms, x.mean_ms, x.p90_ms, x.min_ms, x.runs
        )
    };
    format!(
        "{} ({} thread{}, {} distinct images)\n\
         one image, end to end (decode + preprocess + forward, batch {}): {}\n\
         one image, forward only (batch {}):                               {}\n\
         one image, forward only in a batch-1 net:                       {}\n\
         list of {} images, batch {}, end to end: {:.0} images/s\n\
         list, forward only:                        {:.0} images/s\n",
        r.model.name,
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.images,
        r.batch,
        l(&r.latency),
        r.batch,
        l(&r.forward_latency),
        l(&r.forward_latency_batch1),
        r.list_images,
        r.batch,
        r.images_per_second,
        r.forward_images_per_second
    )
}
