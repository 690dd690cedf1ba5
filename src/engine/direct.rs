//! Direct convolution, for convolutions whose output rows are wide and whose unrolled
//! input is short (LeNet's conv1: one input channel, 25 taps, 24 outputs a row). Unrolled
//! into panels, such a layer spends most of its time copying (each tap's row is used by
//! only 20 outputs); here the kernels read the input rows where they lie instead:
//! - forward: for each output row, a block of outputs and 16 + 16 (or 16 + 8) output
//!   columns in registers, every tap one load of the shifted input row and one fused
//!   multiply-add per output; rows of 17 to 24 outputs two at a time, whose 34 to 48
//!   outputs fill three vectors (LeNet's conv1, 24 a row: 60 → 105 GFLOP/s on one core);
//! - weight gradient: for two outputs and up to five taps of a kernel row, the products of
//!   output-gradient rows and shifted input rows summed in registers over the whole share
//!   of the batch, then across lanes once.
//!
//! AVX-512 only; [`applies`] says when. Tested against the panel path in
//! `layers::convolution`.

use super::im2col::Geom;
use super::kernels::{Isa, PackedA};

/// Whether the direct kernels handle this convolution: AVX-512, one group, stride and
/// dilation 1, no padding, and output rows of 16 values or more.
pub fn applies(isa: Isa, g: &Geom, group: usize) -> bool {
    isa == Isa::Avx512
        && group == 1
        && (g.stride_h, g.stride_w, g.dilation_h, g.dilation_w) == (1, 1, 1, 1)
        && (g.pad_h, g.pad_w) == (0, 0)
        && g.out_w() >= 16
}

/// An output row cut into pieces of at most 32 columns: (first column, columns in the
/// first vector (≤ 16), columns in the second).
fn pieces(ow: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..ow).step_by(32).map(move |x0| {
        let len = (ow - x0).min(32);
        (x0, len.min(16), len.saturating_sub(16))
    })
}

/// Each tap's offset from a window's origin in a sample: c·H·W + ki·W + kj.
fn taps(g: &Geom) -> Vec<usize> {
    let mut t = Vec::with_capacity(g.col_rows());
    for c in 0..g.channels {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                t.push((c * g.height + ki) * g.width + kj);
            }
        }
    }
    t
}

/// `y = conv(x) + bias` for the samples in `x` (C×H×W each) into `y` (O×OH×OW each), with
/// the weights packed as `w` (O rows of C·kh·kw).
pub fn forward(g: &Geom, w: &PackedA, bias: Option<&[f32]>, x: &[f32], y: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let in_per = g.channels * g.height * g.width;
    let out = w.m;
    let nb = x.len() / in_per.max(1);
    assert!(
        applies(Isa::detect(), g, 1),
        "direct::forward: unsupported geometry"
    );
    assert!(
        w.k == g.col_rows() && y.len() >= nb * out * oh * ow,
        "direct::forward: sizes"
    );
    let taps = taps(g);
    let zero = vec![0.0f32; out];
    let bias = bias.unwrap_or(&zero);
    // Rows of 17 to 24 outputs (LeNet's conv1: 24) go two at a time: the pair's outputs
    // lie side by side in `y`, three vectors, all of whose lanes work (one row alone
    // takes a vector and a half).
    let pairs = if ow > 16 && ow <= 24 { oh / 2 } else { 0 };
    for n in 0..nb {
        let xs = &x[n * in_per..(n + 1) * in_per];
        let ys = &mut y[n * out * oh * ow..(n + 1) * out * oh * ow];
        for (o0, mo, wb) in w.row_blocks() {
            // Halves of the block's outputs, so that three vectors each stay in registers.
            for (s0, sm) in [(0, mo.div_ceil(2)), (mo.div_ceil(2), mo / 2)] {
                if sm == 0 {
                    continue;
                }
                for q in 0..pairs {
                    let origin = 2 * q * g.width;
                    let dst = &mut ys[(o0 + s0) * oh * ow + 2 * q * ow..];
                    // SAFETY: AVX-512F was detected (`applies`); the kernel reads
                    // xs[origin + tap + t] and xs[origin + W + tap + t] for t < ow (rows
                    // 2q + ki and 2q + 1 + ki < H, columns t + kj < W), wb[tap·mo + s0 +
                    // m] for m < sm, bias[o0 + s0..][..sm], and writes dst[m·oh·ow + t]
                    // for m < sm, t < 2·ow: outputs o0 + s0 + m, rows 2q and 2q + 1.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        avx512::forward_pair(
                            (sm, ow),
                            &taps,
                            (wb[s0..].as_ptr(), mo),
                            bias[o0 + s0..o0 + s0 + sm].as_ptr(),
                            (xs[origin..].as_ptr(), g.width),
                            dst.as_mut_ptr(),
                            oh * ow,
                        )
                    };
                }
            }
            for r in 2 * pairs..oh {
                for (x0, la, lb) in pieces(ow) {
                    // Every tap of every column in the piece reads inside this sample:
                    // row r + ki < H and column x0 + t + kj < W.
                    let origin = r * g.width + x0;
                    let dst = &mut ys[o0 * oh * ow + r * ow + x0..];
                    // SAFETY: AVX-512F and VL were detected (`applies`); the kernel reads
                    // xs[origin + tap + t] for t < la + lb (inside the sample, above),
                    // wb[..taps·mo], bias[o0..o0 + mo], and writes dst[m·oh·ow + t] for
                    // m < mo, t < la + lb, inside this sample's block of outputs.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        avx512::forward(
                            mo,
                            la,
                            lb,
                            &taps,
                            wb.as_ptr(),
                            bias[o0..o0 + mo].as_ptr(),
                            xs[origin..].as_ptr(),
                            dst.as_mut_ptr(),
                            oh * ow,
                        )
                    };
                }
            }
        }
    }
}

/// Adds the weight gradient (O × C·kh·kw, row-major) and the bias gradient of the samples
/// in `x` and their output gradients `dy` into `dw` and `db`.
pub fn weight_grad(g: &Geom, out: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let in_per = g.channels * g.height * g.width;
    let out_per = out * oh * ow;
    let nb = x.len() / in_per.max(1);
    let k = g.col_rows();
    assert!(
        applies(Isa::detect(), g, 1),
        "direct::weight_grad: unsupported geometry"
    );
    assert!(
        dy.len() >= nb * out_per && dw.len() >= out * k && db.len() >= out,
        "direct::weight_grad: sizes"
    );
    for o0 in (0..out).step_by(2) {
        let p = (out - o0).min(2);
        for o in o0..o0 + p {
            for n in 0..nb {
                db[o] += lane_sum(&dy[n * out_per + o * oh * ow..][..oh * ow]);
            }
        }
        for c in 0..g.channels {
            for ki in 0..g.kernel_h {
                for kj0 in (0..g.kernel_w).step_by(5) {
                    let q = (g.kernel_w - kj0).min(5);
                    let mut sums = [[0.0f32; 5]; 2];
                    for (x0, la, lb) in pieces(ow) {
                        let origin = (c * g.height + ki) * g.width + kj0 + x0;
                        // SAFETY: AVX-512F and VL were detected (`applies`); the kernel
                        // reads x[n·in_per + origin + r·W + j + t] (inside sample n: row
                        // r + ki < H, column x0 + t + kj0 + j < W) and dy[n·out_per +
                        // o·OH·OW + r·OW + x0 + t] for n < nb, r < OH, j < q, t < la + lb,
                        // o in o0..o0 + p.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            avx512::weight(
                                p,
                                q,
                                la,
                                lb,
                                (nb, oh),
                                (x[origin..].as_ptr(), in_per, g.width),
                                (dy[o0 * oh * ow + x0..].as_ptr(), out_per, oh * ow, ow),
                                &mut sums,
                            )
                        };
                    }
                    for (i, row) in sums.iter().enumerate().take(p) {
                        for (j, s) in row.iter().enumerate().take(q) {
                            dw[(o0 + i) * k + (c * g.kernel_h + ki) * g.kernel_w + kj0 + j] += s;
                        }
                    }
                }
            }
        }
    }
}

/// A sum in 16 lanes (a plain sum of floats is one long chain of dependent adds).
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::engine::kernels::avx512::store_first;
    use std::arch::x86_64::*;

    fn mask16(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// See [`super::forward`]: outputs `mo` (≤ 12) of one output row, columns `la` (≤ 16)
    /// then `lb` (≤ 16).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn forward(
        mo: usize,
        la: usize,
        lb: usize,
        taps: &[usize],
        w: *const f32,
        bias: *const f32,
        x: *const f32,
        y: *mut f32,
        ys: usize,
    ) {
        macro_rules! go {
            ($($m:literal)*) => {
                match (mo, lb) {
                    $(($m, 0) => fwd::<$m, 0>(la, lb, taps, w, bias, x, y, ys),
                      ($m, 1..=8) => fwd::<$m, 1>(la, lb, taps, w, bias, x, y, ys),
                      ($m, _) => fwd::<$m, 2>(la, lb, taps, w, bias, x, y, ys),)*
                    _ => unreachable!("blocks have 1 to 12 rows"),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// See [`super::forward`]: outputs `m` (≤ 6) of two output rows of `ow` (17 to 24)
    /// columns, whose 2·ow outputs a row pair lie side by side: three vectors, the middle
    /// one holding the end of the first row and the start of the second. `w` is the
    /// packed weights (tap t of output i at `w[t·ws + i]`), `x` the first row's origin
    /// and `xr` the input's row length.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn forward_pair(
        (m, ow): (usize, usize),
        taps: &[usize],
        (w, ws): (*const f32, usize),
        bias: *const f32,
        (x, xr): (*const f32, usize),
        y: *mut f32,
        ys: usize,
    ) {
        match m {
            1 => pair::<1>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            2 => pair::<2>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            3 => pair::<3>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            4 => pair::<4>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            5 => pair::<5>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            6 => pair::<6>(ow, taps, (w, ws), bias, (x, xr), y, ys),
            _ => unreachable!("halves of blocks have 1 to 6 rows"),
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn pair<const M: usize>(
        ow: usize,
        taps: &[usize],
        (w, ws): (*const f32, usize),
        bias: *const f32,
        (x, xr): (*const f32, usize),
        y: *mut f32,
        ys: usize,
    ) {
        // Lanes of the middle vector: 0..ow - 16 from the first row (its columns 16..),
        // the rest from the second row (its columns 0..32 - ow); the last vector holds
        // the second row's columns 32 - ow.. (2·ow - 32 lanes).
        let tail = ow - 16;
        let (m1a, m1b) = (mask16(tail), !mask16(tail));
        let last = 2 * ow - 32;
        let m2 = mask16(last);
        let mut acc = [[_mm512_setzero_ps(); 3]; M];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = [_mm512_set1_ps(*bias.add(i)); 3];
        }
        for (t, &off) in taps.iter().enumerate() {
            let (p, q) = (x.add(off), x.add(off + xr));
            let v0 = _mm512_loadu_ps(p);
            let v1 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m1a, p.add(16)), m1b, q.sub(tail));
            let v2 = _mm512_maskz_loadu_ps(m2, q.add(32 - ow));
            let wt = w.add(t * ws);
            for (i, a) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*wt.add(i));
                a[0] = _mm512_fmadd_ps(wv, v0, a[0]);
                a[1] = _mm512_fmadd_ps(wv, v1, a[1]);
                a[2] = _mm512_fmadd_ps(wv, v2, a[2]);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let row = y.add(i * ys);
            _mm512_storeu_ps(row, a[0]);
            _mm512_storeu_ps(row.add(16), a[1]);
            store_first(row.add(32), a[2], last);
        }
    }

    /// `T`: the second vector is absent (0), 8 lanes wide (1), or 16 (2).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn fwd<const M: usize, const T: u8>(
        la: usize,
        lb: usize,
        taps: &[usize],
        w: *const f32,
        bias: *const f32,
        x: *const f32,
        y: *mut f32,
        ys: usize,
    ) {
        let (ma, mb) = (mask16(la), mask16(lb));
        let mut a = [_mm512_setzero_ps(); M];
        let mut b = [_mm512_setzero_ps(); M];
        let mut h = [_mm256_setzero_ps(); M];
        for m in 0..M {
            a[m] = _mm512_set1_ps(*bias.add(m));
            b[m] = a[m];
            h[m] = _mm512_castps512_ps256(a[m]);
        }
        for (t, &off) in taps.iter().enumerate() {
            let p = x.add(off);
            let xa = _mm512_maskz_loadu_ps(ma, p);
            let xb = if T == 2 {
                _mm512_maskz_loadu_ps(mb, p.add(16))
            } else {
                _mm512_setzero_ps()
            };
            let xh = if T == 1 {
                _mm256_maskz_loadu_ps(mb as __mmask8, p.add(16))
            } else {
                _mm256_setzero_ps()
            };
            let wt = w.add(t * M);
            for m in 0..M {
                let wv = _mm512_set1_ps(*wt.add(m));
                a[m] = _mm512_fmadd_ps(wv, xa, a[m]);
                if T == 2 {
                    b[m] = _mm512_fmadd_ps(wv, xb, b[m]);
                }
                if T == 1 {
                    h[m] = _mm256_fmadd_ps(_mm512_castps512_ps256(wv), xh, h[m]);
                }
            }
        }
        for m in 0..M {
            let row = y.add(m * ys);
            store_first(row, a[m], la);
            if T == 2 {
                store_first(row.add(16), b[m], lb);
            }
            if T == 1 {
                store_first(row.add(16), _mm512_castps256_ps512(h[m]), lb);
            }
        }
    }

    /// See [`super::weight_grad`]: `sums[i][j] +=` the products of output `i` (< p ≤ 2)
    /// with tap `j` (< q ≤ 5) over `nb` samples and `oh` rows, columns `la` then `lb`.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn weight(
        p: usize,
        q: usize,
        la: usize,
        lb: usize,
        rows: (usize, usize),
        x: (*const f32, usize, usize),
        dy: (*const f32, usize, usize, usize),
        sums: &mut [[f32; 5]; 2],
    ) {
        macro_rules! go {
            ($($p:literal $q:literal)*) => {
                match (p, q, lb) {
                    $(($p, $q, 0) => wgt::<$p, $q, 0>(la, lb, rows, x, dy, sums),
                      ($p, $q, 1..=8) => wgt::<$p, $q, 1>(la, lb, rows, x, dy, sums),
                      ($p, $q, _) => wgt::<$p, $q, 2>(la, lb, rows, x, dy, sums),)*
                    _ => unreachable!("1 or 2 outputs, 1 to 5 taps"),
                }
            };
        }
        go!(1 1 1 2 1 3 1 4 1 5 2 1 2 2 2 3 2 4 2 5)
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn wgt<const P: usize, const Q: usize, const T: u8>(
        la: usize,
        lb: usize,
        (nb, oh): (usize, usize),
        (x, xn, xr): (*const f32, usize, usize),
        (dy, dn, dout, dr): (*const f32, usize, usize, usize),
        sums: &mut [[f32; 5]; 2],
    ) {
        let (ma, mb) = (mask16(la), mask16(lb));
        let mut a = [[_mm512_setzero_ps(); Q]; P];
        let mut b = [[_mm512_setzero_ps(); Q]; P];
        let mut h = [[_mm256_setzero_ps(); Q]; P];
        for n in 0..nb {
            for r in 0..oh {
                let xrow = x.add(n * xn + r * xr);
                let drow = dy.add(n * dn + r * dr);
                let mut da = [_mm512_setzero_ps(); P];
                let mut db = [_mm512_setzero_ps(); P];
                let mut dh = [_mm256_setzero_ps(); P];
                for i in 0..P {
                    let d = drow.add(i * dout);
                    da[i] = _mm512_maskz_loadu_ps(ma, d);
                    if T == 2 {
                        db[i] = _mm512_maskz_loadu_ps(mb, d.add(16));
                    }
                    if T == 1 {
                        dh[i] = _mm256_maskz_loadu_ps(mb as __mmask8, d.add(16));
                    }
                }
                for j in 0..Q {
                    let xp = xrow.add(j);
                    let xa = _mm512_maskz_loadu_ps(ma, xp);
                    for i in 0..P {
                        a[i][j] = _mm512_fmadd_ps(da[i], xa, a[i][j]);
                    }
                    if T == 2 {
                        let xb = _mm512_maskz_loadu_ps(mb, xp.add(16));
                        for i in 0..P {
                            b[i][j] = _mm512_fmadd_ps(db[i], xb, b[i][j]);
                        }
                    }
                    if T == 1 {
                        let xh = _mm256_maskz_loadu_ps(mb as __mmask8, xp.add(16));
                        for i in 0..P {
                            h[i][j] = _mm256_fmadd_ps(dh[i], xh, h[i][j]);
                        }
                    }
                }
            }
        }
        for i in 0..P {
            for j in 0..Q {
                let mut v = a[i][j];
                if T == 2 {
                    v = _mm512_add_ps(v, b[i][j]);
                }
                if T == 1 {
                    v = _mm512_add_ps(v, _mm512_zextps256_ps512(h[i][j]));
                }
                sums[i][j] += _mm512_reduce_add_ps(v);
            }
        }
    }
}
