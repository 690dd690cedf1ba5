//! Times the matrix products of LeNet's conv2 in both layouts (a measuring aid for the
//! convolution kernels; run with `cargo run --release --example gemm_probe`).
use netc::engine::blas::{sgemm, sgemm_ld, Mat, T};
use std::time::Instant;

fn time(label: &str, macs: f64, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        f();
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{label:<40} {:>8.3} ms  {:>6.1} GFLOP/s",
        s * 1e3,
        2.0 * macs / s / 1e9
    );
}

fn main() {
    let (m, k, hw, nb) = (50usize, 500usize, 64usize, 64usize);
    let w = vec![0.5f32; m * k];
    let col = vec![0.25f32; k * hw * nb];
    let mut y = vec![0.0f32; m * hw * nb];
    let macs = (m * k * hw * nb) as f64;
    time("batched W·col (50×4096×500)", macs, || {
        sgemm_ld(
            true,
            m,
            hw * nb,
            k,
            Mat {
                data: &w,
                ld: k,
                t: T::N,
            },
            Mat {
                data: &col,
                ld: hw * nb,
                t: T::N,
            },
            &mut y,
            hw * nb,
            false,
        )
    });
    time("batched serial", macs, || {
        sgemm_ld(
            false,
            m,
            hw * nb,
            k,
            Mat {
                data: &w,
                ld: k,
                t: T::N,
            },
            Mat {
                data: &col,
                ld: hw * nb,
                t: T::N,
            },
            &mut y,
            hw * nb,
            false,
        )
    });
    time("per-sample 64 × (50×64×500)", macs, || {
        for s in 0..nb {
            sgemm(
                T::N,
                T::N,
                m,
                hw,
                k,
                &w,
                &col[s * k * hw..],
                &mut y[s * m * hw..],
                false,
            )
        }
    });
    let mut dw = vec![0.0f32; m * k];
    time("weight grad dY·colT (50×500×4096)", macs, || {
        sgemm_ld(
            true,
            m,
            k,
            hw * nb,
            Mat {
                data: &y,
                ld: hw * nb,
                t: T::N,
            },
            Mat {
                data: &col,
                ld: hw * nb,
                t: T::T,
            },
            &mut dw,
            k,
            false,
        )
    });
    let mut dcol = vec![0.0f32; k * hw * nb];
    time("input grad WT·dY (500×4096×50)", macs, || {
        sgemm_ld(
            true,
            k,
            hw * nb,
            m,
            Mat {
                data: &w,
                ld: k,
                t: T::T,
            },
            Mat {
                data: &y,
                ld: hw * nb,
                t: T::N,
            },
            &mut dcol,
            hw * nb,
            false,
        )
    });
    println!("threads: {}", rayon::current_num_threads());
}
