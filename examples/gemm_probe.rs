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
    let mut yt = vec![0.0f32; m * hw * nb];
    time("transposed colT·WT (4096×50×500) serial", macs, || {
        sgemm_ld(
            false,
            hw * nb,
            m,
            k,
            Mat {
                data: &col,
                ld: hw * nb,
                t: T::T,
            },
            Mat {
                data: &w,
                ld: k,
                t: T::T,
            },
            &mut yt,
            m,
            false,
        )
    });
    time("batched serial, half batch ×2", macs, || {
        for _ in 0..2 {
            sgemm_ld(
                false,
                m,
                hw * nb / 2,
                k,
                Mat {
                    data: &w,
                    ld: k,
                    t: T::N,
                },
                Mat {
                    data: &col,
                    ld: hw * nb / 2,
                    t: T::N,
                },
                &mut y,
                hw * nb / 2,
                false,
            )
        }
    });
    time(
        "per-sample weight grad 64 × (50×500×64) acc",
        macs,
        || {
            for s in 0..nb {
                sgemm(
                    T::N,
                    T::T,
                    m,
                    k,
                    hw,
                    &y[s * m * hw..],
                    &col[s * k * hw..],
                    &mut dw,
                    s > 0,
                )
            }
        },
    );
    time("per-sample input grad 64 × (500×64×50)", macs, || {
        for s in 0..nb {
            sgemm(
                T::T,
                T::N,
                k,
                hw,
                m,
                &w,
                &y[s * m * hw..],
                &mut dcol[s * k * hw..],
                false,
            )
        }
    });
    for group in [2usize, 4, 8] {
        time(
            &format!("batched serial, {group} samples a product"),
            macs,
            || {
                for c in 0..nb / group {
                    let ld = hw * group;
                    sgemm_ld(
                        false,
                        m,
                        ld,
                        k,
                        Mat {
                            data: &w,
                            ld: k,
                            t: T::N,
                        },
                        Mat {
                            data: &col[c * k * ld..],
                            ld,
                            t: T::N,
                        },
                        &mut y[c * m * ld..],
                        ld,
                        false,
                    )
                }
            },
        );
    }
    println!("threads: {}", rayon::current_num_threads());
}
