//! Row-major single-precision matrix products over slices, on the `gemm` crate (the one
//! candle's CPU backend uses).

use gemm::Parallelism;

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T {
    N,
    T,
}

/// Work below this many multiply-accumulates runs on the calling thread: spreading a small
/// product over threads costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `c = beta_c * c + a' * b'` where `a'` is `a` (m×k) or `a`ᵀ (stored k×m), `b'` is `b`
/// (k×n) or `b`ᵀ (stored n×k), all row-major and dense. `accumulate` false overwrites `c`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    ta: T,
    tb: T,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    product(true, ta, tb, m, n, k, a, b, c, accumulate)
}

/// [`sgemm`] on the calling thread only, for callers that already split work over threads.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_serial(
    ta: T,
    tb: T,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    product(false, ta, tb, m, n, k, a, b, c, accumulate)
}

/// A matrix operand: its slice, its row stride, and whether it is used transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub t: T,
}

#[allow(clippy::too_many_arguments)]
fn product(
    threads: bool,
    ta: T,
    tb: T,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let lda = if ta == T::N { k } else { m };
    let ldb = if tb == T::N { n } else { k };
    sgemm_ld(
        threads,
        m,
        n,
        k,
        Mat {
            data: a,
            ld: lda,
            t: ta,
        },
        Mat {
            data: b,
            ld: ldb,
            t: tb,
        },
        c,
        n,
        accumulate,
    )
}

/// `c = [c +] a' · b'` with explicit row strides (`c` is m×n with rows `ldc` long), for
/// products over sub-blocks of larger buffers.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_ld(
    threads: bool,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let need =
        |rows: usize, cols: usize, ld: usize| if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    let (ar, ac) = if a.t == T::N { (m, k) } else { (k, m) };
    let (br, bc) = if b.t == T::N { (k, n) } else { (n, k) };
    assert!(
        a.ld >= ac && a.data.len() >= need(ar, ac, a.ld),
        "sgemm: a too small"
    );
    assert!(
        b.ld >= bc && b.data.len() >= need(br, bc, b.ld),
        "sgemm: b too small"
    );
    assert!(ldc >= n && c.len() >= need(m, n, ldc), "sgemm: c too small");
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                c[row * ldc..row * ldc + n].fill(0.0);
            }
        }
        return;
    }
    // (column stride, row stride) of each operand as the product sees it.
    let (a_cs, a_rs) = match a.t {
        T::N => (1isize, a.ld as isize),
        T::T => (a.ld as isize, 1isize),
    };
    let (b_cs, b_rs) = match b.t {
        T::N => (1isize, b.ld as isize),
        T::T => (b.ld as isize, 1isize),
    };
    let par = if threads && m * n * k >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices; `c`
    // does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(ta: T, tb: T, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta == T::N {
                        a[i * k + p]
                    } else {
                        a[p * m + i]
                    };
                    let bv = if tb == T::N {
                        b[p * n + j]
                    } else {
                        b[j * k + p]
                    };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn all_transpositions_match_naive_product() {
        let (m, n, k) = (7, 5, 11);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for ta in [T::N, T::T] {
            for tb in [T::N, T::T] {
                let want = naive(ta, tb, m, n, k, &a, &b);
                let mut c = vec![1.0; m * n];
                sgemm(ta, tb, m, n, k, &a, &b, &mut c, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-4, "{ta:?}{tb:?}: {x} vs {y}");
                }
                let mut c2 = vec![1.0; m * n];
                sgemm(ta, tb, m, n, k, &a, &b, &mut c2, true);
                for (x, y) in c2.iter().zip(&want) {
                    assert!((x - (y + 1.0)).abs() < 1e-4);
                }
            }
        }
    }
}
