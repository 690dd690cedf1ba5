//! Times the panel kernels on LeNet's conv2 shapes (a measuring aid for
//! `src/engine/kernels.rs`; run with `cargo run --release --example panel_probe`), against
//! the measured peak of one core (FMAs in registers only).
use netc::engine::im2col::Geom;
use netc::engine::kernels::{panel_outer_acc, panel_product, Isa, PackedA, NR};
use netc::engine::{Blob, Op, Param};
use netc::layers::convolution::ConvOp;
use std::time::Instant;

/// What this core does in GFLOP/s with nothing but FMAs in registers (see [`peak`]).
static PEAK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

fn time(label: &str, macs: f64, mut f: impl FnMut()) {
    f();
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let rate = 2.0 * macs / best / 1e9;
    let of_peak = PEAK.get().map_or(String::new(), |p| {
        format!("  {:>3.0}% of peak", 100.0 * rate / p)
    });
    println!(
        "{label:<48} {:>8.3} ms  {rate:>6.1} GFLOP/s{of_peak}",
        best * 1e3
    );
}

/// The most GFLOP/s one core reaches here: 16-lane FMAs on 20 independent accumulators in
/// registers, no memory (the best of 5 runs). On a virtual machine this is the ceiling
/// that counts, whatever the processor's paper figure: it shows the clock the vector
/// units really get.
#[cfg(target_arch = "x86_64")]
fn peak() -> Option<f64> {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx512f")]
    unsafe fn fmas(n: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); 20];
        let (a, b) = std::hint::black_box((_mm512_set1_ps(0.999), _mm512_set1_ps(0.001)));
        for _ in 0..std::hint::black_box(n) {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }
    if Isa::detect() != Isa::Avx512 {
        return None;
    }
    let n = 5_000_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        // SAFETY: AVX-512F was detected; the loop touches registers only.
        let sum = unsafe { fmas(n) };
        best = best.min(t.elapsed().as_secs_f64());
        assert!(sum.is_finite());
    }
    Some((n * 20 * 16 * 2) as f64 / best / 1e9)
}

#[cfg(not(target_arch = "x86_64"))]
fn peak() -> Option<f64> {
    None
}

/// LeNet's convolution `(c, h, out)` (5×5 kernel) as the engine runs it, batch 64.
fn conv(name: &str, c: usize, h: usize, out: usize, prop: bool) {
    let g = Geom {
        channels: c,
        height: h,
        width: h,
        kernel_h: 5,
        kernel_w: 5,
        pad_h: 0,
        pad_w: 0,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
    };
    let param = |shape: &[usize]| {
        let mut blob = Blob::zeros(shape);
        blob.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 * 0.37).sin() * 0.1);
        Param {
            blob,
            lr_mult: 1.0,
            decay_mult: 1.0,
        }
    };
    let n = 64;
    let mut op = ConvOp::new(g, out, 1, vec![param(&[out, c, 5, 5]), param(&[out])], n);
    let mut x = Blob::zeros(&[n, c, h, h]);
    x.data
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i as f32 * 0.11).cos());
    let mut y = Blob::zeros(&[n, out, g.out_h(), g.out_w()]);
    y.diff
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i as f32 * 0.13).sin());
    let macs = (n * out * c * 25 * g.out_h() * g.out_w()) as f64;
    time(&format!("{name} forward, batch 64"), macs, || {
        op.forward(&[&x], &mut [&mut y], true)
    });
    let bw = if prop { 2.0 } else { 1.0 };
    time(&format!("{name} backward, batch 64"), bw * macs, || {
        op.backward(&[&y], &mut [&mut x], &[prop])
    });
}

/// LeNet's ip1 (800 → 500) at batch `m`, on one thread: the op, and the `gemm` crate's
/// products for the same three matrices.
fn ip(m: usize) {
    use netc::layers::inner_product::InnerProductOp;
    let (k, n) = (800usize, 500usize);
    let mut w = Blob::zeros(&[n, k]);
    w.data
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i as f32 * 0.3).sin());
    let mut op = InnerProductOp {
        m,
        k,
        n,
        params: vec![Param {
            blob: w,
            lr_mult: 1.0,
            decay_mult: 1.0,
        }],
        threads: false,
    };
    let mut x = Blob::zeros(&[m, k]);
    x.data
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i as f32 * 0.7).cos());
    let mut y = Blob::zeros(&[m, n]);
    y.diff.iter_mut().for_each(|v| *v = 0.5);
    let macs = (m * k * n) as f64;
    time(&format!("ip1 forward, batch {m}"), macs, || {
        op.forward(&[&x], &mut [&mut y], true)
    });
    time(&format!("ip1 backward, batch {m}"), 2.0 * macs, || {
        op.backward(&[&y], &mut [&mut x], &[true])
    });
    let wd = op.params[0].blob.data.clone();
    let mut c = vec![0.0f32; m * n];
    // (rows, columns, depth), then each operand as (values, column stride, row stride).
    time(&format!("gemm crate X·Wᵀ, batch {m}"), macs, || {
        gemm_serial((m, n, k), (&x.data, 1, k), (&wd, k, 1), &mut c)
    });
    let mut dw = vec![0.0f32; n * k];
    time(&format!("gemm crate dYᵀ·X, batch {m}"), macs, || {
        gemm_serial((n, k, m), (&y.diff, n, 1), (&x.data, 1, k), &mut dw)
    });
    let mut dx = vec![0.0f32; m * k];
    time(&format!("gemm crate dY·W, batch {m}"), macs, || {
        gemm_serial((m, k, n), (&y.diff, 1, n), (&wd, 1, k), &mut dx)
    });
}

/// `c = a · b` (c row-major, m × n) with the `gemm` crate on this thread: the reference
/// the kernels are measured against (candle's CPU products use it).
fn gemm_serial(
    (m, n, k): (usize, usize, usize),
    (a, a_cs, a_rs): (&[f32], usize, usize),
    (b, b_cs, b_rs): (&[f32], usize, usize),
    c: &mut [f32],
) {
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    assert!(c.len() >= m * n);
    // SAFETY: the asserts keep every element the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn main() {
    if let (Some("ip"), Some(p)) = (std::env::args().nth(1).as_deref(), peak()) {
        let _ = PEAK.set(p);
    }
    if std::env::args().nth(1).as_deref() == Some("ip") {
        ip(64);
        ip(32);
        return;
    }
    let isa = Isa::detect();
    println!("kernels: {isa:?}, {} threads", rayon::current_num_threads());
    if let Some(p) = peak() {
        println!("peak: FMAs in registers only, one core            {p:>6.1} GFLOP/s");
        let _ = PEAK.set(p);
    }
    conv("conv1", 1, 28, 20, false);
    conv("conv2", 20, 12, 50, true);
    conv("conv2 (no input gradient)", 20, 12, 50, false);
    if std::env::args().nth(1).as_deref() == Some("conv") {
        return;
    }
    // conv2 at batch 64 on one thread: 4096 pixels = 128 panels, K = 500, O = 50.
    let (o, k, np) = (50usize, 500usize, 128usize);
    let w: Vec<f32> = (0..o * k).map(|i| (i as f32 * 0.1).sin()).collect();
    let col: Vec<f32> = (0..np * k * NR).map(|i| (i as f32 * 0.3).cos()).collect();
    let mut y = vec![0.0f32; np * o * NR];
    let mut a = PackedA::default();
    a.pack(&w, k, 1, o, k);
    let macs = (o * k * np * NR) as f64;
    time("forward: W·col, 128 panels (50×500 each)", macs, || {
        for j in 0..np {
            panel_product(isa, &a, &col[j * k * NR..], &mut y[j * o * NR..]);
        }
    });
    let mut at = PackedA::default();
    at.pack(&w, 1, k, k, o);
    let mut dcol = vec![0.0f32; k * NR];
    time(
        "input grad: Wᵀ·dY, 128 panels (500×50 each)",
        macs,
        || {
            for j in 0..np {
                panel_product(isa, &at, &y[j * o * NR..], &mut dcol);
            }
        },
    );
    // The output gradient transposed, its 50 columns padded to 64 (two vectors of 16).
    let ldt = o.div_ceil(NR) * NR;
    let yt: Vec<f32> = (0..np * NR * ldt).map(|i| (i as f32 * 0.7).sin()).collect();
    let mut dwt = vec![0.0f32; k * ldt];
    for g in [1usize, 2, 4, 16] {
        time(
            &format!("weight grad: col·dYᵀ, {g} panel(s) a call, ldt {ldt}"),
            macs,
            || {
                for j0 in (0..np).step_by(g) {
                    for ob in (0..ldt).step_by(NR) {
                        panel_outer_acc(
                            isa,
                            (k, NR),
                            g,
                            &col[j0 * k * NR..],
                            k * NR,
                            &yt[j0 * NR * ldt + ob..],
                            NR * ldt,
                            ldt,
                            &mut dwt[ob..],
                            ldt,
                        );
                    }
                }
            },
        );
    }
}
