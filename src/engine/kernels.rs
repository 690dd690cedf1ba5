//! The engine's matrix products: over column panels for the convolution, over rows read
//! in place for the inner product.
//!
//! The convolution's wide operands (the unrolled input, the outputs and their gradients)
//! are kept in panels of [`NR`] columns (pixels): a panel of a K-row matrix is K rows of
//! `NR` values, stored one after another. The products:
//! - [`panel_product`]: `C = A · B` for one panel `B` (K × NR) and a small packed `A`
//!   (M × K: the weights, or their transpose), giving one panel `C` (M × NR). Used by the
//!   forward pass (outputs from unrolled inputs) and for the input gradient.
//! - [`panel_outer_acc`]: `C += A · Bᵀ` summed over many panels, `A` in panels and `B`
//!   in transposed panels (the weight gradient: unrolled inputs times transposed output
//!   gradients), with `C` held in registers throughout.
//! - [`strided_product`] and [`matrix_product`]: [`panel_product`] over NR columns of
//!   wider matrices read and written in place (the inner product's gradients).
//! - [`rows_dot`]: products of rows of two matrices (the inner product's `X·Wᵀ`).
//!
//! Each has an AVX-512 kernel, chosen at run time when the processor has it, and a portable
//! one; both are tested against a plain triple loop. `cargo run --release --example
//! panel_probe` measures them on LeNet's shapes (105–116 GFLOP/s a core here; the `gemm`
//! crate, which candle's CPU products use, did 72–107 on the same products).

/// Columns in a panel: two 16-lane vectors.
pub const NR: usize = 32;
/// Most rows of `A` one call of the outer-product kernel handles (2·12 accumulators).
const MR: usize = 12;
/// Rows of `A` and of `B` per block of [`rows_dot`] (4·4 accumulators, summed across
/// lanes together).
const DI: usize = 4;
const DJ: usize = 4;

/// Which kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Portable,
}

impl Isa {
    /// AVX-512 where the processor has it, unless `NETC_PORTABLE_KERNELS` is set (to
    /// compare the two on one machine).
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::env::var_os("NETC_PORTABLE_KERNELS").is_none()
                    && std::is_x86_feature_detected!("avx512f")
                {
                    return Isa::Avx512;
                }
            }
            Isa::Portable
        })
    }
}

/// `m` rows split into blocks of at most `max`, as even as possible: (first row, rows).
fn blocks(m: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let n = m.div_ceil(max).max(1);
    let (base, extra) = (m / n, m % n);
    (0..n).scan(0, move |at, i| {
        let len = base + usize::from(i < extra);
        let start = *at;
        *at += len;
        Some((start, len))
    })
}

/// A small left operand packed for [`panel_product`]: rows in blocks of at most 12, each
/// block stored column by column (for every k, the block's values side by side).
#[derive(Debug, Clone, Default)]
pub struct PackedA {
    pub m: usize,
    pub k: usize,
    data: Vec<f32>,
    /// (first row, rows, offset in `data`) per block.
    blocks: Vec<(usize, usize, usize)>,
}

impl PackedA {
    /// The blocks: (first row, rows, values: for every k, the block's rows side by side).
    pub fn row_blocks(&self) -> impl Iterator<Item = (usize, usize, &[f32])> {
        self.blocks
            .iter()
            .map(|&(r0, mr, off)| (r0, mr, &self.data[off..off + mr * self.k]))
    }

    /// Packs the m × k matrix whose element (i, kk) is `src[i·rs + kk·cs]`.
    pub fn pack(&mut self, src: &[f32], rs: usize, cs: usize, m: usize, k: usize) {
        if m > 0 && k > 0 {
            assert!(
                src.len() > (m - 1) * rs + (k - 1) * cs,
                "PackedA: source too small"
            );
        }
        self.m = m;
        self.k = k;
        self.data.clear();
        self.data.reserve(m * k);
        self.blocks.clear();
        for (r0, mr) in blocks(m, MR) {
            self.blocks.push((r0, mr, self.data.len()));
            for kk in 0..k {
                for i in r0..r0 + mr {
                    self.data.push(src[i * rs + kk * cs]);
                }
            }
        }
    }
}

/// `c[i·NR + j] = Σ_kk A(i, kk) · b[kk·NR + j]` for every row i of `a`: one panel of the
/// product (`b` is a k × NR panel, `c` an m × NR one).
pub fn panel_product(isa: Isa, a: &PackedA, b: &[f32], c: &mut [f32]) {
    strided_product(isa, a, b, NR, c, NR)
}

/// [`panel_product`] with `B` and `C` read and written in place: `B`'s k rows of NR values
/// `ldb` apart, `C`'s m rows `ldc` apart (NR columns of wider matrices).
pub fn strided_product(isa: Isa, a: &PackedA, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize) {
    let need = |rows: usize, ld: usize| if rows == 0 { 0 } else { (rows - 1) * ld + NR };
    assert!(
        ldb >= NR && b.len() >= need(a.k, ldb),
        "strided_product: b too small"
    );
    assert!(
        ldc >= NR && c.len() >= need(a.m, ldc),
        "strided_product: c too small"
    );
    for &(r0, mr, off) in &a.blocks {
        let ab = &a.data[off..off + mr * a.k];
        let cb = &mut c[r0 * ldc..];
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` comes from `detect`, which saw AVX-512F; the kernel
            // reads ab[..k·mr], b[kk·ldb + j] and writes cb[i·ldc + j] for kk < k,
            // i < mr, j < NR, inside the slices (asserted above).
            Isa::Avx512 => unsafe {
                avx512::outer(mr, a.k, ab.as_ptr(), b.as_ptr(), ldb, cb.as_mut_ptr(), ldc)
            },
            _ => portable::outer(mr, a.k, ab, b, ldb, cb, ldc),
        }
    }
}

/// `C = A · B` for a packed `A` (m × k) and `B` (k rows of `cols` values, `ldb` apart),
/// into `C` (m rows of `cols` values, `ldc` apart): [`strided_product`] over every NR
/// columns, the last ones through zero-padded copies when `cols` is not a multiple of NR.
pub fn matrix_product(
    isa: Isa,
    a: &PackedA,
    b: &[f32],
    ldb: usize,
    cols: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for c0 in (0..cols).step_by(NR) {
        let w = NR.min(cols - c0);
        if w == NR {
            strided_product(isa, a, &b[c0..], ldb, &mut c[c0..], ldc);
            continue;
        }
        let mut tb = vec![0.0f32; a.k * NR];
        for (kk, row) in tb.chunks_mut(NR).enumerate() {
            row[..w].copy_from_slice(&b[kk * ldb + c0..kk * ldb + c0 + w]);
        }
        let mut tc = vec![0.0f32; a.m * NR];
        strided_product(isa, a, &tb, NR, &mut tc, NR);
        for (i, row) in tc.chunks(NR).enumerate() {
            c[i * ldc + c0..i * ldc + c0 + w].copy_from_slice(&row[..w]);
        }
    }
}

/// `c[i·ldc + j] = Σ_kk a[i·lda + kk] · b[j·ldb + kk]` for i < m, j < n: products of rows
/// of `A` and rows of `B` (an inner product layer's forward pass, `X·Wᵀ`, without
/// rearranging the weights), summed in 16 lanes and then across them.
#[allow(clippy::too_many_arguments)]
pub fn rows_dot(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        lda >= k && a.len() >= (m - 1) * lda + k,
        "rows_dot: a too small"
    );
    assert!(
        ldb >= k && b.len() >= (n - 1) * ldb + k,
        "rows_dot: b too small"
    );
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "rows_dot: c too small"
    );
    for (j0, nj) in blocks(n, DJ) {
        for (i0, mi) in blocks(m, DI) {
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F was detected; the kernel reads rows i0.. (mi of them)
                // of `a` and j0.. (nj) of `b`, k values each, and writes c[i·ldc + j] of
                // the block: inside the slices (asserted above).
                Isa::Avx512 => unsafe {
                    avx512::dot(
                        (mi, nj, k),
                        a[i0 * lda..].as_ptr(),
                        lda,
                        b[j0 * ldb..].as_ptr(),
                        ldb,
                        c[i0 * ldc + j0..].as_mut_ptr(),
                        ldc,
                    )
                },
                _ => {
                    for i in i0..i0 + mi {
                        for j in j0..j0 + nj {
                            let (ar, br) = (&a[i * lda..i * lda + k], &b[j * ldb..j * ldb + k]);
                            let mut lanes = [0.0f32; 16];
                            for (t, (x, y)) in ar.iter().zip(br).enumerate() {
                                lanes[t % 16] += x * y;
                            }
                            c[i * ldc + j] = lanes.iter().sum();
                        }
                    }
                }
            }
        }
    }
}

/// `c[i·ldc + j] += Σ_p Σ_t a[p·pa + i·NR + t] · b[p·pb + t·ldb + j]` for i < m, j <
/// `width` (16, 32 or 48), over `np` panels and the NR columns t of each: rows of the `A`
/// panels (m rows a panel) times the transposed panels of `B` (NR rows of at least `width`
/// values each), with the result accumulated in registers over every panel. The weight
/// gradient's product.
#[allow(clippy::too_many_arguments)]
pub fn panel_outer_acc(
    isa: Isa,
    (m, width): (usize, usize),
    np: usize,
    a: &[f32],
    pa: usize,
    b: &[f32],
    pb: usize,
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        matches!(width, 16 | 32 | 48),
        "panel_outer_acc: width {width}"
    );
    if m == 0 || np == 0 {
        return;
    }
    assert!(
        a.len() >= (np - 1) * pa + m * NR,
        "panel_outer_acc: a too small"
    );
    assert!(
        ldb >= width && b.len() >= (np - 1) * pb + (NR - 1) * ldb + width,
        "panel_outer_acc: b too small"
    );
    assert!(
        ldc >= width && c.len() >= (m - 1) * ldc + width,
        "panel_outer_acc: c too small"
    );
    // Three vectors a row leave registers for 8 rows; one or two, for 12.
    let rows = if width == 48 { 8 } else { MR };
    for (r0, mr) in blocks(m, rows) {
        let ab = &a[r0 * NR..];
        let cb = &mut c[r0 * ldc..];
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F was detected; the asserts above bound every offset the
            // kernel reads (panels below np, rows below mr, columns below width) and
            // writes.
            Isa::Avx512 => unsafe {
                avx512::outer_acc(
                    (mr, width / 16),
                    np,
                    ab.as_ptr(),
                    pa,
                    b.as_ptr(),
                    pb,
                    ldb,
                    cb.as_mut_ptr(),
                    ldc,
                )
            },
            _ => portable::outer_acc((mr, width), np, ab, pa, b, pb, ldb, cb, ldc),
        }
    }
}

/// `c[i·ldc + o] += Σ_p Σ_t a[p·pa + i·NR + t] · d[p·pd + o·NR + t]` for i < m, o < r:
/// products of the rows of `A` panels (m rows a panel) with rows of `D` panels (r rows),
/// summed over the NR columns of `np` panels. The weight gradient of the few outputs that
/// [`panel_outer_acc`]'s 16-column vectors would leave mostly empty (LeNet's conv2 has
/// 50: 48 go through the vectors, 2 through this, instead of 64 lanes for 50).
#[allow(clippy::too_many_arguments)]
pub fn panel_dot_acc(
    isa: Isa,
    (m, r): (usize, usize),
    np: usize,
    a: &[f32],
    pa: usize,
    d: &[f32],
    pd: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || r == 0 || np == 0 {
        return;
    }
    assert!(
        a.len() >= (np - 1) * pa + m * NR,
        "panel_dot_acc: a too small"
    );
    assert!(
        d.len() >= (np - 1) * pd + r * NR,
        "panel_dot_acc: d too small"
    );
    assert!(
        ldc >= r && c.len() >= (m - 1) * ldc + r,
        "panel_dot_acc: c too small"
    );
    for o0 in (0..r).step_by(2) {
        let q = (r - o0).min(2);
        for (r0, mr) in blocks(m, 8) {
            let ab = &a[r0 * NR..];
            let db = &d[o0 * NR..];
            let cb = &mut c[r0 * ldc + o0..];
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F was detected; the asserts above bound every offset
                // the kernel reads (panels below np, rows below mr of `a` and q of `d`,
                // NR columns) and writes (rows below mr, columns below q of `c`).
                Isa::Avx512 => unsafe {
                    avx512::dot_acc(
                        (mr, q),
                        np,
                        ab.as_ptr(),
                        pa,
                        db.as_ptr(),
                        pd,
                        cb.as_mut_ptr(),
                        ldc,
                    )
                },
                _ => {
                    for i in 0..mr {
                        for o in 0..q {
                            let mut lanes = [0.0f32; 16];
                            for p in 0..np {
                                let (ar, dr) = (&ab[p * pa + i * NR..], &db[p * pd + o * NR..]);
                                for t in 0..NR {
                                    lanes[t % 16] += ar[t] * dr[t];
                                }
                            }
                            cb[i * ldc + o] += lanes.iter().sum::<f32>();
                        }
                    }
                }
            }
        }
    }
}

mod portable {
    use super::NR;

    pub fn outer(mr: usize, k: usize, a: &[f32], b: &[f32], ldb: usize, c: &mut [f32], ldc: usize) {
        for i in 0..mr {
            c[i * ldc..i * ldc + NR].fill(0.0);
        }
        for kk in 0..k {
            let bv = &b[kk * ldb..kk * ldb + NR];
            for i in 0..mr {
                let av = a[kk * mr + i];
                for (cv, bv) in c[i * ldc..i * ldc + NR].iter_mut().zip(bv) {
                    *cv += av * bv;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn outer_acc(
        (mr, width): (usize, usize),
        np: usize,
        a: &[f32],
        pa: usize,
        b: &[f32],
        pb: usize,
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        for i in 0..mr {
            let mut acc = [0.0f32; 48];
            let acc = &mut acc[..width];
            for p in 0..np {
                for t in 0..NR {
                    let av = a[p * pa + i * NR + t];
                    let bv = &b[p * pb + t * ldb..][..width];
                    for (s, bv) in acc.iter_mut().zip(bv) {
                        *s += av * bv;
                    }
                }
            }
            for (cv, s) in c[i * ldc..][..width].iter_mut().zip(acc) {
                *cv += *s;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::NR;
    use std::arch::x86_64::*;

    /// The first `n` (≤ 16) lanes of `v` to `d` with plain stores of 16, 8, 4 and 1 values:
    /// masked stores are slow on AMD's Zen 4, and a copy of a variable length is a `memcpy`
    /// call. Shared by the kernels that write short rows (pooling, direct convolution).
    ///
    /// # Safety
    /// AVX-512F must be available and `d` valid for `n` writes.
    #[inline(always)]
    pub unsafe fn store_first(d: *mut f32, v: __m512, n: usize) {
        if n == 16 {
            _mm512_storeu_ps(d, v);
            return;
        }
        let mut i = 0;
        let mut y = _mm512_castps512_ps256(v);
        if n >= 8 {
            _mm256_storeu_ps(d, y);
            y = _mm512_castps512_ps256(_mm512_shuffle_f32x4::<0b11_10_11_10>(v, v));
            i = 8;
        }
        let mut x = _mm256_castps256_ps128(y);
        if n - i >= 4 {
            _mm_storeu_ps(d.add(i), x);
            x = _mm256_extractf128_ps::<1>(y);
            i += 4;
        }
        while i < n {
            _mm_store_ss(d.add(i), x);
            x = _mm_shuffle_ps::<0b00_11_10_01>(x, x);
            i += 1;
        }
    }

    macro_rules! by_rows {
        ($mr:expr, $f:ident ( $($arg:expr),* )) => {
            match $mr {
                1 => $f::<1>($($arg),*),
                2 => $f::<2>($($arg),*),
                3 => $f::<3>($($arg),*),
                4 => $f::<4>($($arg),*),
                5 => $f::<5>($($arg),*),
                6 => $f::<6>($($arg),*),
                7 => $f::<7>($($arg),*),
                8 => $f::<8>($($arg),*),
                9 => $f::<9>($($arg),*),
                10 => $f::<10>($($arg),*),
                11 => $f::<11>($($arg),*),
                12 => $f::<12>($($arg),*),
                _ => unreachable!("blocks have 1 to 12 rows"),
            }
        };
    }

    /// See [`super::panel_product`]; `a` holds k·mr values, `b` k·NR, `c` mr·NR.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn outer(
        mr: usize,
        k: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        by_rows!(mr, outer_n(k, a, b, ldb, c, ldc))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn outer_n<const R: usize>(
        k: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for kk in 0..k {
            let b0 = _mm512_loadu_ps(b.add(kk * ldb));
            let b1 = _mm512_loadu_ps(b.add(kk * ldb + 16));
            let ak = a.add(kk * R);
            for i in 0..R {
                let av = _mm512_set1_ps(*ak.add(i));
                lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
            }
        }
        for i in 0..R {
            _mm512_storeu_ps(c.add(i * ldc), lo[i]);
            _mm512_storeu_ps(c.add(i * ldc + 16), hi[i]);
        }
    }

    /// See [`super::rows_dot`], for a block of mi ≤ 4 rows of A and nj ≤ 5 of B.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot(
        (mi, nj, k): (usize, usize, usize),
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        macro_rules! go {
            ($($i:literal $j:literal)*) => {
                match (mi, nj) {
                    $(($i, $j) => dot_n::<$i, $j>(k, a, lda, b, ldb, c, ldc),)*
                    _ => unreachable!("blocks of 1 to 4 by 1 to 5"),
                }
            };
        }
        go!(1 1 1 2 1 3 1 4 1 5 2 1 2 2 2 3 2 4 2 5 3 1 3 2 3 3 3 4 3 5 4 1 4 2 4 3 4 4 4 5)
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_n<const I: usize, const J: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); J]; I];
        let mut kk = 0;
        while kk < k {
            let m = if k - kk >= 16 {
                0xffff
            } else {
                ((1u32 << (k - kk)) - 1) as __mmask16
            };
            let mut av = [_mm512_setzero_ps(); I];
            for (i, v) in av.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(m, a.add(i * lda + kk));
            }
            for j in 0..J {
                let bv = _mm512_maskz_loadu_ps(m, b.add(j * ldb + kk));
                for (row, v) in acc.iter_mut().zip(&av) {
                    row[j] = _mm512_fmadd_ps(*v, bv, row[j]);
                }
            }
            kk += 16;
        }
        // Sixteen sums across lanes at once, row i of the block in lanes 4i..4i + 4. Each
        // sum is added in the same order whatever the block's size, so that a row's result
        // does not depend on the rows beside it (classification gives an image the same
        // probabilities at any position in any batch).
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                v[i * 4 + j] = *a;
            }
        }
        let mut sums = [0.0f32; 16];
        _mm512_storeu_ps(sums.as_mut_ptr(), reduce16(&v));
        for i in 0..I {
            for j in 0..J {
                *c.add(i * ldc + j) = sums[i * 4 + j];
            }
        }
    }

    /// Lane `q` of the result is the sum of the lanes of `v[q]`: pairs of vectors are
    /// interleaved and added three times over (within 128-bit lanes, then across them),
    /// about three instructions a sum instead of ten.
    #[inline(always)]
    unsafe fn reduce16(v: &[__m512; 16]) -> __m512 {
        // Within 128-bit lanes: t[p] holds, per 128-bit lane, partial sums of v[2p] in
        // positions 0 and 2 and of v[2p + 1] in 1 and 3.
        let mut t = [_mm512_setzero_ps(); 8];
        for p in 0..8 {
            let (a, b) = (v[2 * p], v[2 * p + 1]);
            t[p] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        }
        // u[q] holds, per 128-bit lane, one partial sum of each of v[4q..4q + 4] in order.
        let mut u = [_mm512_setzero_ps(); 4];
        for q in 0..4 {
            let (a, b) = (_mm512_castps_pd(t[2 * q]), _mm512_castps_pd(t[2 * q + 1]));
            u[q] = _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
            );
        }
        // Across 128-bit lanes: each u[q]'s four lanes summed into 128-bit lane q.
        let x01 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(u[0], u[1]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(u[0], u[1]),
        );
        let x23 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(u[2], u[3]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(u[2], u[3]),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x01, x23),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x01, x23),
        )
    }

    /// See [`super::panel_outer_acc`], for one block of mr rows (≤ 12, or ≤ 8 for three
    /// vectors) and `v` (1 to 3) vectors of 16 columns.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn outer_acc(
        (mr, v): (usize, usize),
        np: usize,
        a: *const f32,
        pa: usize,
        b: *const f32,
        pb: usize,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        match v {
            1 => by_rows!(mr, outer_acc_1(np, a, pa, b, pb, ldb, c, ldc)),
            2 => by_rows!(mr, outer_acc_2(np, a, pa, b, pb, ldb, c, ldc)),
            _ => match mr {
                1 => outer_acc_n::<1, 3>(np, a, pa, b, pb, ldb, c, ldc),
                2 => outer_acc_n::<2, 3>(np, a, pa, b, pb, ldb, c, ldc),
                3 => outer_acc_n::<3, 3>(np, a, pa, b, pb, ldb, c, ldc),
                4 => outer_acc_n::<4, 3>(np, a, pa, b, pb, ldb, c, ldc),
                5 => outer_acc_n::<5, 3>(np, a, pa, b, pb, ldb, c, ldc),
                6 => outer_acc_n::<6, 3>(np, a, pa, b, pb, ldb, c, ldc),
                7 => outer_acc_n::<7, 3>(np, a, pa, b, pb, ldb, c, ldc),
                8 => outer_acc_n::<8, 3>(np, a, pa, b, pb, ldb, c, ldc),
                _ => unreachable!("blocks of three vectors have 1 to 8 rows"),
            },
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn outer_acc_1<const R: usize>(
        np: usize,
        a: *const f32,
        pa: usize,
        b: *const f32,
        pb: usize,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        outer_acc_n::<R, 1>(np, a, pa, b, pb, ldb, c, ldc)
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn outer_acc_2<const R: usize>(
        np: usize,
        a: *const f32,
        pa: usize,
        b: *const f32,
        pb: usize,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        outer_acc_n::<R, 2>(np, a, pa, b, pb, ldb, c, ldc)
    }

    /// R rows by V vectors of 16 columns, in R·V accumulators.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn outer_acc_n<const R: usize, const V: usize>(
        np: usize,
        a: *const f32,
        pa: usize,
        b: *const f32,
        pb: usize,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..np {
            let ap = a.add(p * pa);
            let bp = b.add(p * pb);
            for t in 0..NR {
                let mut bv = [_mm512_setzero_ps(); V];
                for (u, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(bp.add(t * ldb + 16 * u));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(i * NR + t));
                    for (x, bu) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(av, *bu, *x);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (u, x) in row.iter().enumerate() {
                let ci = c.add(i * ldc + 16 * u);
                _mm512_storeu_ps(ci, _mm512_add_ps(_mm512_loadu_ps(ci), *x));
            }
        }
    }

    /// See [`super::panel_dot_acc`], for mr ≤ 8 rows of `a` and q ≤ 2 rows of `d`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dot_acc(
        (mr, q): (usize, usize),
        np: usize,
        a: *const f32,
        pa: usize,
        d: *const f32,
        pd: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        macro_rules! go {
            ($($r:literal)*) => {
                match (mr, q) {
                    $(($r, 1) => dot_acc_n::<$r, 1>(np, a, pa, d, pd, c, ldc),
                      ($r, _) => dot_acc_n::<$r, 2>(np, a, pa, d, pd, c, ldc),)*
                    _ => unreachable!("blocks of 1 to 8 rows"),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8)
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_acc_n<const R: usize, const Q: usize>(
        np: usize,
        a: *const f32,
        pa: usize,
        d: *const f32,
        pd: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // Row i of `a` with row o of `d` in acc[o·8 + i], both halves of each panel's
        // columns into the same 16 lanes; then sixteen sums across lanes at once.
        let mut acc = [_mm512_setzero_ps(); 16];
        for p in 0..np {
            let ap = a.add(p * pa);
            let dp = d.add(p * pd);
            let mut dv = [[_mm512_setzero_ps(); 2]; Q];
            for (o, h) in dv.iter_mut().enumerate() {
                h[0] = _mm512_loadu_ps(dp.add(o * NR));
                h[1] = _mm512_loadu_ps(dp.add(o * NR + 16));
            }
            for i in 0..R {
                let lo = _mm512_loadu_ps(ap.add(i * NR));
                let hi = _mm512_loadu_ps(ap.add(i * NR + 16));
                for (o, h) in dv.iter().enumerate() {
                    let x = &mut acc[o * 8 + i];
                    *x = _mm512_fmadd_ps(lo, h[0], *x);
                    *x = _mm512_fmadd_ps(hi, h[1], *x);
                }
            }
        }
        let mut sums = [0.0f32; 16];
        _mm512_storeu_ps(sums.as_mut_ptr(), reduce16(&acc));
        for i in 0..R {
            for o in 0..Q {
                *c.add(i * ldc + o) += sums[o * 8 + i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        if Isa::detect() == Isa::Avx512 {
            v.push(Isa::Avx512);
        }
        v
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.618).sin()).collect()
    }

    #[test]
    fn blocks_cover_the_rows_evenly() {
        let b: Vec<_> = blocks(50, 12).collect();
        assert_eq!(b, vec![(0, 10), (10, 10), (20, 10), (30, 10), (40, 10)]);
        let b: Vec<_> = blocks(25, 12).collect();
        assert_eq!(b, vec![(0, 9), (9, 8), (17, 8)]);
        assert_eq!(blocks(7, 12).collect::<Vec<_>>(), vec![(0, 7)]);
    }

    #[test]
    fn panel_product_matches_a_triple_loop() {
        for isa in isas() {
            for (m, k) in [(1, 1), (5, 3), (12, 7), (13, 25), (50, 40), (31, 2)] {
                // A given transposed (rs 1, cs m) to exercise the strides.
                let at = values(m * k, 1.0);
                let b = values(k * NR, 2.0);
                let mut a = PackedA::default();
                a.pack(&at, 1, m, m, k);
                let mut c = vec![7.0; m * NR];
                panel_product(isa, &a, &b, &mut c);
                for i in 0..m {
                    for j in 0..NR {
                        let want: f32 = (0..k).map(|kk| at[kk * m + i] * b[kk * NR + j]).sum();
                        let got = c[i * NR + j];
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{isa:?} {m}×{k}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Σ over panels p < np and their columns t < NR of `f(p, t)`: the plain loop the
    /// accumulating kernels are checked against.
    fn panel_sum(np: usize, f: impl Fn(usize, usize) -> f32) -> f32 {
        (0..np)
            .flat_map(|p| (0..NR).map(move |t| (p, t)))
            .map(|(p, t)| f(p, t))
            .sum()
    }

    #[test]
    fn panel_outer_acc_matches_a_triple_loop() {
        for isa in isas() {
            for width in [16, 32, 48] {
                for (m, np) in [(1, 1), (5, 2), (12, 3), (25, 2), (13, 1), (9, 2)] {
                    let pa = m * NR + 3;
                    let ldb = width + 5;
                    let pb = NR * ldb + 7;
                    let a = values(np * pa, 5.0);
                    let b = values(np * pb, 6.0);
                    let ldc = width + 4;
                    let mut c = vec![0.5; m * ldc];
                    panel_outer_acc(isa, (m, width), np, &a, pa, &b, pb, ldb, &mut c, ldc);
                    for i in 0..m {
                        for j in 0..width {
                            let want = 0.5
                                + panel_sum(np, |p, t| {
                                    a[p * pa + i * NR + t] * b[p * pb + t * ldb + j]
                                });
                            let got = c[i * ldc + j];
                            assert!(
                                (got - want).abs() < 1e-3,
                                "{isa:?} {m}×{np}, width {width}: {got} vs {want}"
                            );
                        }
                        assert_eq!(c[i * ldc + width], 0.5, "past the block's columns");
                    }
                }
            }
        }
    }

    #[test]
    fn panel_dot_acc_matches_a_triple_loop() {
        for isa in isas() {
            for (m, r, np) in [(1, 1, 1), (8, 2, 3), (13, 3, 2), (25, 7, 1), (500, 2, 2)] {
                let pa = m * NR + 3;
                let pd = r * NR + 5;
                let a = values(np * pa, 3.0);
                let d = values(np * pd, 4.0);
                let ldc = r + 2;
                let mut c = vec![0.25; m * ldc];
                panel_dot_acc(isa, (m, r), np, &a, pa, &d, pd, &mut c, ldc);
                for i in 0..m {
                    for o in 0..r {
                        let want = 0.25
                            + panel_sum(np, |p, t| a[p * pa + i * NR + t] * d[p * pd + o * NR + t]);
                        let got = c[i * ldc + o];
                        assert!(
                            (got - want).abs() < 1e-3,
                            "{isa:?} {m}×{r}×{np}: {got} vs {want}"
                        );
                    }
                    assert_eq!(c[i * ldc + r], 0.25, "past the outputs");
                }
            }
        }
    }

    #[test]
    fn matrix_product_and_rows_dot_match_a_triple_loop() {
        for isa in isas() {
            for (m, k, n) in [(3, 5, 32), (13, 7, 70), (1, 1, 1), (30, 33, 40)] {
                let a = values(m * k, 7.0);
                let b = values(k * n, 8.0);
                let want = |i: usize, j: usize| {
                    (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum::<f32>()
                };
                // C = A·B with B and C in place (rows n apart, plus padding in C).
                let mut pa = PackedA::default();
                pa.pack(&a, k, 1, m, k);
                let ldc = n + 3;
                let mut c = vec![9.0; m * ldc];
                matrix_product(isa, &pa, &b, n, n, &mut c, ldc);
                for i in 0..m {
                    for j in 0..n {
                        let (g, w) = (c[i * ldc + j], want(i, j));
                        assert!(
                            (g - w).abs() < 1e-4,
                            "{isa:?} product {m}×{k}×{n}: {g} vs {w}"
                        );
                    }
                    assert_eq!(c[i * ldc + n], 9.0, "past the columns");
                }
                // The same through rows of A against rows of Bᵀ.
                let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                let mut d = vec![9.0; m * ldc];
                rows_dot(isa, (m, n, k), &a, k, &bt, k, &mut d, ldc);
                for i in 0..m {
                    for j in 0..n {
                        let (g, w) = (d[i * ldc + j], want(i, j));
                        assert!(
                            (g - w).abs() < 1e-4,
                            "{isa:?} rows_dot {m}×{k}×{n}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
