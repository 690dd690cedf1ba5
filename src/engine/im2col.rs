//! Caffe's im2col and col2im for 2-D convolution with padding, stride and dilation, whole
//! or a panel of pixels at a time.

use super::kernels::Isa;

/// Geometry of a 2-D convolution over one image's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
}

impl Geom {
    pub fn out_h(&self) -> usize {
        let ext = self.dilation_h * (self.kernel_h - 1) + 1;
        (self.height + 2 * self.pad_h - ext) / self.stride_h + 1
    }
    pub fn out_w(&self) -> usize {
        let ext = self.dilation_w * (self.kernel_w - 1) + 1;
        (self.width + 2 * self.pad_w - ext) / self.stride_w + 1
    }
    /// Rows of the column buffer: C·kh·kw.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }
    /// Columns of the column buffer: OH·OW.
    pub fn col_cols(&self) -> usize {
        self.out_h() * self.out_w()
    }
}

/// `col` (C·kh·kw × OH·OW) from `im` (C × H × W).
pub fn im2col(g: &Geom, im: &[f32], col: &mut [f32]) {
    let (hw, per) = (
        g.height * g.width,
        g.kernel_h * g.kernel_w * g.out_h() * g.out_w(),
    );
    for c in 0..g.channels {
        let ld = g.col_cols();
        im2col_plane(
            g,
            &im[c * hw..(c + 1) * hw],
            &mut col[c * per..(c + 1) * per],
            ld,
            0,
        );
    }
}

/// One channel's kh·kw rows of a column buffer whose rows are `ld` long, written at
/// column `off` (a batch of samples side by side: sample n at `off = n·OH·OW`).
pub fn im2col_plane(g: &Geom, plane: &[f32], rows: &mut [f32], ld: usize, off: usize) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut row = 0;
    for ki in 0..g.kernel_h {
        for kj in 0..g.kernel_w {
            let dst = &mut rows[row * ld + off..row * ld + off + oh * ow];
            for y in 0..oh {
                let iy = (y * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                let drow = &mut dst[y * ow..(y + 1) * ow];
                if iy < 0 || iy >= g.height as isize {
                    drow.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * g.width..(iy as usize + 1) * g.width];
                let off = (kj * g.dilation_w) as isize - g.pad_w as isize;
                if g.stride_w == 1 && off >= 0 && off as usize + ow <= g.width {
                    copy_short(drow, &src[off as usize..off as usize + ow]);
                    continue;
                }
                for (x, d) in drow.iter_mut().enumerate() {
                    let ix = (x * g.stride_w) as isize + off;
                    *d = if ix < 0 || ix >= g.width as isize {
                        0.0
                    } else {
                        src[ix as usize]
                    };
                }
            }
            row += 1;
        }
    }
}

/// A stretch of consecutive pixels inside one row: pixel `p` of a batch is sample
/// `p / per`, position `p % per`; a run starts at position `pos` of sample `n`, holds `len`
/// pixels and lands at column `at` of its panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub n: usize,
    pub pos: usize,
    pub len: usize,
    pub at: usize,
}

/// Splits pixels `p0..p1` into runs that stay inside one row of `row` positions (`row`
/// divides `per`: the output width for the unrolling, the whole map for copies).
pub fn runs(per: usize, row: usize, p0: usize, p1: usize, out: &mut Vec<Run>) {
    out.clear();
    let mut p = p0;
    while p < p1 {
        let (n, pos) = (p / per, p % per);
        let len = (row - pos % row).min(p1 - p);
        out.push(Run {
            n,
            pos,
            len,
            at: p - p0,
        });
        p += len;
    }
}

/// The unrolled columns of the pixels in `runs` (output-pixel runs of the samples in `x`,
/// C×H×W each) as one panel: `col_rows()` rows of `width` values; columns no run fills
/// are zero.
pub fn im2col_panel(isa: Isa, g: &Geom, x: &[f32], runs: &[Run], panel: &mut [f32], width: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` means the processor has AVX-512F.
        Isa::Avx512 => unsafe { im2col_avx512(g, x, runs, panel, width) },
        _ => im2col_body::<Plain>(g, x, runs, panel, width),
    }
}

/// Adds a panel of column gradients back into the input gradient `dx` (C×H×W per
/// sample): the adjoint of [`im2col_panel`].
pub fn col2im_panel(isa: Isa, g: &Geom, panel: &[f32], runs: &[Run], width: usize, dx: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` means the processor has AVX-512F.
        Isa::Avx512 => unsafe { col2im_avx512(g, panel, runs, width, dx) },
        _ => col2im_body::<Plain>(g, panel, runs, width, dx),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn im2col_avx512(g: &Geom, x: &[f32], runs: &[Run], panel: &mut [f32], width: usize) {
    if !im2col_rows_of_8(g, x, runs, panel, width) {
        im2col_body::<Masked>(g, x, runs, panel, width)
    }
}

/// A panel of four whole output rows of 8 (LeNet's conv2), unrolled with permutes: for
/// each input channel and kernel row, the four input rows it reads are loaded once, and
/// each tap's panel row is two permutes of them (8 shifted values of two rows each) and
/// two stores, instead of four short copies. False (nothing written) for any other panel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn im2col_rows_of_8(
    g: &Geom,
    x: &[f32],
    runs: &[Run],
    panel: &mut [f32],
    width: usize,
) -> bool {
    use std::arch::x86_64::*;
    if !rows_of_8(g, runs, width) {
        return false;
    }
    let (hw_in, in_per) = (g.height * g.width, g.channels * g.height * g.width);
    let oy = runs[0].pos / 8;
    // Rows oy..oy + 3 + kh - 1 of each channel lie inside the image: no padding, and the
    // output rows are rows of this image.
    let img = &x[runs[0].n * in_per..][..in_per];
    let mask = ((1u32 << g.width) - 1) as __mmask16;
    let idx: Vec<__m512i> = (0..g.kernel_w)
        .map(|kj| {
            let k = kj as i32;
            _mm512_setr_epi32(
                k,
                k + 1,
                k + 2,
                k + 3,
                k + 4,
                k + 5,
                k + 6,
                k + 7,
                16 + k,
                17 + k,
                18 + k,
                19 + k,
                20 + k,
                21 + k,
                22 + k,
                23 + k,
            )
        })
        .collect();
    let panel = &mut panel[..g.col_rows() * 32];
    let mut k = 0;
    for c in 0..g.channels {
        let plane = &img[c * hw_in..][..hw_in];
        for ki in 0..g.kernel_h {
            let mut rows = [_mm512_setzero_ps(); 4];
            for (r, v) in rows.iter_mut().enumerate() {
                let at = (oy + r + ki) * g.width;
                *v = _mm512_maskz_loadu_ps(mask, plane[at..at + g.width].as_ptr());
            }
            let [r0, r1, r2, r3] = rows;
            for ix in &idx {
                let d = panel[k * 32..k * 32 + 32].as_mut_ptr();
                _mm512_storeu_ps(d, _mm512_permutex2var_ps(r0, *ix, r1));
                _mm512_storeu_ps(d.add(16), _mm512_permutex2var_ps(r2, *ix, r3));
                k += 1;
            }
        }
    }
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_avx512(g: &Geom, panel: &[f32], runs: &[Run], width: usize, dx: &mut [f32]) {
    if !col2im_rows_of_8(g, panel, runs, width, dx) {
        col2im_body::<Masked>(g, panel, runs, width, dx)
    }
}

/// Whether a panel is four whole output rows of 8 of one image, on a geometry whose
/// windows stay inside the image and whose input rows fit one vector (LeNet's conv2).
fn rows_of_8(g: &Geom, runs: &[Run], width: usize) -> bool {
    width == 32
        && g.out_w() == 8
        && g.width <= 16
        && g.kernel_h + 3 <= 16
        && (g.stride_h, g.stride_w, g.dilation_h, g.dilation_w) == (1, 1, 1, 1)
        && (g.pad_h, g.pad_w) == (0, 0)
        && runs.len() == 4
        && runs.iter().enumerate().all(|(i, r)| {
            r.len == 8 && r.n == runs[0].n && r.pos == runs[0].pos + 8 * i && r.at == 8 * i
        })
}

/// [`col2im_panel`] for the panels of [`rows_of_8`]: per input channel, the kh + 3 input
/// rows the panel touches are summed in registers over every tap (each tap's panel row
/// shifted into place by masked permutes) and written back once, instead of one short
/// read-add-write per run and kernel row (whose overlapping writes also stalled the reads
/// after them). False (nothing written) for any other panel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_rows_of_8(
    g: &Geom,
    panel: &[f32],
    runs: &[Run],
    width: usize,
    dx: &mut [f32],
) -> bool {
    use std::arch::x86_64::*;
    if !rows_of_8(g, runs, width) {
        return false;
    }
    let (hw_in, in_per) = (g.height * g.width, g.channels * g.height * g.width);
    let oy = runs[0].pos / 8;
    let img = &mut dx[runs[0].n * in_per..][..in_per];
    let mask = ((1u32 << g.width) - 1) as __mmask16;
    // Lanes kj..kj + 8 take lanes h·8.. of a panel vector (h = 0 or 1), the others zero.
    let idx: Vec<[__m512i; 2]> = (0..g.kernel_w)
        .map(|kj| {
            let lane = |h: i32| {
                let mut v = [0i32; 16];
                for (j, x) in v.iter_mut().enumerate() {
                    *x = (h * 8 + j as i32 - kj as i32).clamp(0, 15);
                }
                _mm512_loadu_si512(v.as_ptr().cast())
            };
            [lane(0), lane(1)]
        })
        .collect();
    let rows = g.kernel_h + 3;
    let panel = &panel[..g.col_rows() * 32];
    let mut k = 0;
    for c in 0..g.channels {
        let plane = &mut img[c * hw_in..][..hw_in];
        let mut acc = [_mm512_setzero_ps(); 16];
        for ki in 0..g.kernel_h {
            for (kj, ix) in idx.iter().enumerate() {
                let p = panel[k * 32..k * 32 + 32].as_ptr();
                k += 1;
                let (p0, p1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                let keep = (0xffu32 << kj) as __mmask16;
                // Output row r of the panel lands on input row r + ki.
                for (r, (src, h)) in [(p0, 0), (p0, 1), (p1, 0), (p1, 1)].into_iter().enumerate() {
                    let v = _mm512_maskz_permutexvar_ps(keep, ix[h], src);
                    acc[r + ki] = _mm512_add_ps(acc[r + ki], v);
                }
            }
        }
        for (r, a) in acc.iter().enumerate().take(rows) {
            let row = &mut plane[(oy + r) * g.width..(oy + r + 1) * g.width];
            let v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row.as_ptr()), *a);
            super::kernels::avx512::store_first(row.as_mut_ptr(), v, g.width);
        }
    }
    true
}

/// Where a run's kernel row starts in its input row, and whether every tap of the row
/// reads a contiguous stretch inside the image (stride 1, no padding reached).
fn taps(g: &Geom, ox: usize, len: usize) -> (isize, bool) {
    let off = (ox * g.stride_w) as isize - g.pad_w as isize;
    let last = off + ((g.kernel_w - 1) * g.dilation_w + len) as isize;
    (off, g.stride_w == 1 && off >= 0 && last <= g.width as isize)
}

#[inline(always)]
fn im2col_body<M: Moves>(g: &Geom, x: &[f32], runs: &[Run], panel: &mut [f32], width: usize) {
    let filled: usize = runs.iter().map(|r| r.len).sum();
    if filled < width {
        panel[..g.col_rows() * width].fill(0.0);
    }
    let (ow, hw_in) = (g.out_w(), g.height * g.width);
    let in_per = g.channels * hw_in;
    for r in runs {
        let (oy, ox) = (r.pos / ow, r.pos % ow);
        let (off, inside) = taps(g, ox, r.len);
        let img = &x[r.n * in_per..][..in_per];
        let mut k = 0;
        for c in 0..g.channels {
            let plane = &img[c * hw_in..][..hw_in];
            for ki in 0..g.kernel_h {
                let iy = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                if iy < 0 || iy >= g.height as isize {
                    for _ in 0..g.kernel_w {
                        panel[k * width + r.at..][..r.len].fill(0.0);
                        k += 1;
                    }
                    continue;
                }
                let src = &plane[iy as usize * g.width..][..g.width];
                if inside {
                    for kj in 0..g.kernel_w {
                        let s = off as usize + kj * g.dilation_w;
                        // SAFETY: `M` is `Plain`, or `Masked` inside an AVX-512 function.
                        unsafe {
                            M::copy(&mut panel[k * width + r.at..][..r.len], &src[s..s + r.len])
                        };
                        k += 1;
                    }
                    continue;
                }
                for kj in 0..g.kernel_w {
                    let dst = &mut panel[k * width + r.at..][..r.len];
                    k += 1;
                    let o = off + (kj * g.dilation_w) as isize;
                    for (t, d) in dst.iter_mut().enumerate() {
                        let ix = o + (t * g.stride_w) as isize;
                        *d = if ix < 0 || ix >= g.width as isize {
                            0.0
                        } else {
                            src[ix as usize]
                        };
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn col2im_body<M: Moves>(g: &Geom, panel: &[f32], runs: &[Run], width: usize, dx: &mut [f32]) {
    let (ow, hw_in) = (g.out_w(), g.height * g.width);
    let in_per = g.channels * hw_in;
    let mut taps_rows: [&[f32]; 16] = [&[]; 16];
    for r in runs {
        let (oy, ox) = (r.pos / ow, r.pos % ow);
        let (off, inside) = taps(g, ox, r.len);
        let img = &mut dx[r.n * in_per..][..in_per];
        let mut k = 0;
        for c in 0..g.channels {
            let plane = &mut img[c * hw_in..][..hw_in];
            for ki in 0..g.kernel_h {
                let iy = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                if iy < 0 || iy >= g.height as isize {
                    k += g.kernel_w;
                    continue;
                }
                let dst = &mut plane[iy as usize * g.width..][..g.width];
                if inside && g.kernel_w <= taps_rows.len() {
                    let span = r.len + (g.kernel_w - 1) * g.dilation_w;
                    for (kj, row) in taps_rows[..g.kernel_w].iter_mut().enumerate() {
                        *row = &panel[(k + kj) * width + r.at..][..r.len];
                    }
                    // SAFETY: `M` is `Plain`, or `Masked` inside an AVX-512 function.
                    let done = unsafe {
                        M::add_taps(
                            &mut dst[off as usize..off as usize + span],
                            &taps_rows[..g.kernel_w],
                            g.dilation_w,
                        )
                    };
                    if done {
                        k += g.kernel_w;
                        continue;
                    }
                }
                if inside {
                    for kj in 0..g.kernel_w {
                        let d = off as usize + kj * g.dilation_w;
                        // SAFETY: `M` is `Plain`, or `Masked` inside an AVX-512 function.
                        unsafe {
                            M::add(&mut dst[d..d + r.len], &panel[k * width + r.at..][..r.len])
                        };
                        k += 1;
                    }
                    continue;
                }
                for kj in 0..g.kernel_w {
                    let src = &panel[k * width + r.at..][..r.len];
                    k += 1;
                    let o = off + (kj * g.dilation_w) as isize;
                    for (t, s) in src.iter().enumerate() {
                        let ix = o + (t * g.stride_w) as isize;
                        if ix >= 0 && ix < g.width as isize {
                            dst[ix as usize] += s;
                        }
                    }
                }
            }
        }
    }
}

/// Copies and sums of the short runs of an unrolling (8 or 24 values in LeNet).
trait Moves {
    /// `dst = src` (equal lengths).
    ///
    /// # Safety
    /// The implementation's instructions must be available.
    unsafe fn copy(dst: &mut [f32], src: &[f32]);
    /// `dst += src` (equal lengths).
    ///
    /// # Safety
    /// As for `copy`.
    unsafe fn add(dst: &mut [f32], src: &[f32]);
    /// `dst[kj·step + t] += rows[kj][t]` for every row kj and t below the rows' length,
    /// in one pass over `dst` (the adds of a kernel row's taps overlap, and adding them
    /// one by one reads back values still on their way to memory); false when the
    /// implementation cannot (then nothing was written).
    ///
    /// # Safety
    /// As for `copy`.
    unsafe fn add_taps(_dst: &mut [f32], _rows: &[&[f32]], _step: usize) -> bool {
        false
    }
}

/// Plain loops in blocks of 8.
struct Plain;

impl Moves for Plain {
    #[inline(always)]
    unsafe fn copy(dst: &mut [f32], src: &[f32]) {
        copy_short(dst, src)
    }
    #[inline(always)]
    unsafe fn add(dst: &mut [f32], src: &[f32]) {
        add_short(dst, src)
    }
}

/// AVX-512 moves: 16 values at a time, then 8, 4 and single ones. Masked loads are cheap
/// here but masked stores are not (on AMD's Zen 4 a masked store took most of the
/// unrolling's time), so stores are never masked.
#[cfg(target_arch = "x86_64")]
struct Masked;

#[cfg(target_arch = "x86_64")]
impl Moves for Masked {
    #[inline(always)]
    unsafe fn copy(dst: &mut [f32], src: &[f32]) {
        use std::arch::x86_64::*;
        let len = dst.len().min(src.len());
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let mut i = 0;
        while i + 16 <= len {
            _mm512_storeu_ps(d.add(i), _mm512_loadu_ps(s.add(i)));
            i += 16;
        }
        if i + 8 <= len {
            _mm256_storeu_ps(d.add(i), _mm256_loadu_ps(s.add(i)));
            i += 8;
        }
        if i + 4 <= len {
            _mm_storeu_ps(d.add(i), _mm_loadu_ps(s.add(i)));
            i += 4;
        }
        while i < len {
            *d.add(i) = *s.add(i);
            i += 1;
        }
    }
    #[inline(always)]
    unsafe fn add(dst: &mut [f32], src: &[f32]) {
        use std::arch::x86_64::*;
        let len = dst.len().min(src.len());
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let mut i = 0;
        while i + 16 <= len {
            let v = _mm512_add_ps(_mm512_loadu_ps(d.add(i)), _mm512_loadu_ps(s.add(i)));
            _mm512_storeu_ps(d.add(i), v);
            i += 16;
        }
        if i + 8 <= len {
            let v = _mm256_add_ps(_mm256_loadu_ps(d.add(i)), _mm256_loadu_ps(s.add(i)));
            _mm256_storeu_ps(d.add(i), v);
            i += 8;
        }
        if i + 4 <= len {
            let v = _mm_add_ps(_mm_loadu_ps(d.add(i)), _mm_loadu_ps(s.add(i)));
            _mm_storeu_ps(d.add(i), v);
            i += 4;
        }
        while i < len {
            *d.add(i) += *s.add(i);
            i += 1;
        }
    }
    #[inline(always)]
    unsafe fn add_taps(dst: &mut [f32], rows: &[&[f32]], step: usize) -> bool {
        use std::arch::x86_64::*;
        let len = rows.first().map_or(0, |r| r.len());
        let span = dst.len();
        if span > 16 || rows.iter().any(|r| r.len() != len) || span < len + (rows.len() - 1) * step
        {
            return false;
        }
        // Lane q of the span gets row kj's value q - kj·step where that lies in 0..len:
        // each row is read through a mask, from a base kj·step values before it (the
        // masked-off lanes are never read, so the base may lie outside the row).
        let d = dst.as_mut_ptr();
        let mut acc = _mm512_maskz_loadu_ps(((1u32 << span) - 1) as __mmask16, d);
        for (kj, r) in rows.iter().enumerate() {
            let shift = kj * step;
            let m = (((1u32 << len) - 1) << shift) as __mmask16;
            let base = r.as_ptr().wrapping_sub(shift);
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, base));
        }
        let mut buf = [0.0f32; 16];
        _mm512_storeu_ps(buf.as_mut_ptr(), acc);
        Self::copy(dst, &buf[..span]);
        true
    }
}

/// `dst = src` for the short rows of a convolution (8 or 24 values in LeNet): in blocks of
/// 8 that compile to vector moves, since a `memcpy` call per row cost more than the copy
/// (9% of a LeNet training step went to `memcpy` calls from im2col).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("8 values");
        let d: &mut [f32; 8] = d.try_into().expect("8 values");
        *d = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `dst += src`, in blocks of 8 as [`copy_short`].
#[inline(always)]
fn add_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("8 values");
        let d: &mut [f32; 8] = d.try_into().expect("8 values");
        for i in 0..8 {
            d[i] += s[i];
        }
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d += *s;
    }
}

/// Adds `col` back into `im` (which the caller zeroes first): the adjoint of [`im2col`].
pub fn col2im(g: &Geom, col: &[f32], im: &mut [f32]) {
    let (hw, per) = (
        g.height * g.width,
        g.kernel_h * g.kernel_w * g.out_h() * g.out_w(),
    );
    for c in 0..g.channels {
        let ld = g.col_cols();
        col2im_plane(
            g,
            &col[c * per..(c + 1) * per],
            ld,
            0,
            &mut im[c * hw..(c + 1) * hw],
        );
    }
}

/// Adds one channel's kh·kw rows (rows `ld` long, this sample's block at column `off`)
/// into `plane`: the adjoint of [`im2col_plane`].
pub fn col2im_plane(g: &Geom, rows: &[f32], ld: usize, off: usize, plane: &mut [f32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut row = 0;
    for ki in 0..g.kernel_h {
        for kj in 0..g.kernel_w {
            let srcm = &rows[row * ld + off..row * ld + off + oh * ow];
            for y in 0..oh {
                let iy = (y * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                if iy < 0 || iy >= g.height as isize {
                    continue;
                }
                let dst = &mut plane[iy as usize * g.width..(iy as usize + 1) * g.width];
                let off = (kj * g.dilation_w) as isize - g.pad_w as isize;
                let src = &srcm[y * ow..(y + 1) * ow];
                if g.stride_w == 1 && off >= 0 && off as usize + ow <= g.width {
                    add_short(&mut dst[off as usize..off as usize + ow], src);
                    continue;
                }
                for (x, s) in src.iter().enumerate() {
                    let ix = (x * g.stride_w) as isize + off;
                    if ix >= 0 && ix < g.width as isize {
                        dst[ix as usize] += s;
                    }
                }
            }
            row += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for any x, y.
        let g = Geom {
            channels: 2,
            height: 7,
            width: 6,
            kernel_h: 3,
            kernel_w: 2,
            pad_h: 1,
            pad_w: 2,
            stride_h: 2,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 2,
        };
        let n_im = g.channels * g.height * g.width;
        let n_col = g.col_rows() * g.col_cols();
        let x: Vec<f32> = (0..n_im).map(|i| (i as f32 * 0.3).sin()).collect();
        let y: Vec<f32> = (0..n_col).map(|i| (i as f32 * 0.7).cos()).collect();
        let mut cx = vec![0.0; n_col];
        im2col(&g, &x, &mut cx);
        let mut iy = vec![0.0; n_im];
        col2im(&g, &y, &mut iy);
        let lhs: f32 = cx.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&iy).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn output_size_follows_caffe() {
        let g = Geom {
            channels: 1,
            height: 28,
            width: 28,
            kernel_h: 5,
            kernel_w: 5,
            pad_h: 0,
            pad_w: 0,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
        };
        assert_eq!((g.out_h(), g.out_w()), (24, 24));
        let im: Vec<f32> = (0..784).map(|i| i as f32).collect();
        let mut col = vec![0.0; 25 * 576];
        im2col(&g, &im, &mut col);
        // Row (ki=1, kj=2) at output (3, 4) reads input (4, 6).
        assert_eq!(col[(5 + 2) * 576 + 3 * 24 + 4], (4 * 28 + 6) as f32);
    }

    /// Every geometry path (inside runs, padding, stride 2, dilation) and both move
    /// implementations: panels of 32 pixels over two samples match the whole-image
    /// unrolling column for column, and the panel col2im is its adjoint.
    #[test]
    fn panels_match_the_whole_unrolling_and_col2im_is_their_adjoint() {
        let mut isas = vec![Isa::Portable];
        if Isa::detect() == Isa::Avx512 {
            isas.push(Isa::Avx512);
        }
        let geoms = [
            (1, 9, 11, 5, 5, 0, 0, 1, 1, 1, 1),
            (2, 7, 6, 3, 2, 1, 2, 2, 1, 1, 2),
            (3, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1),
            (2, 20, 21, 1, 3, 0, 0, 1, 1, 1, 1),
            // Output rows of 8 (LeNet's conv2): panels of four whole rows.
            (3, 12, 12, 5, 5, 0, 0, 1, 1, 1, 1),
        ];
        for (c, h, w, kh, kw, ph, pw, sh, sw, dh, dw) in geoms {
            let g = Geom {
                channels: c,
                height: h,
                width: w,
                kernel_h: kh,
                kernel_w: kw,
                pad_h: ph,
                pad_w: pw,
                stride_h: sh,
                stride_w: sw,
                dilation_h: dh,
                dilation_w: dw,
            };
            let (n, per, rows) = (2, g.col_cols(), g.col_rows());
            let in_per = c * h * w;
            let x: Vec<f32> = (0..n * in_per).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut whole = vec![0.0; n * rows * per];
            for s in 0..n {
                im2col(&g, &x[s * in_per..][..in_per], &mut whole[s * rows * per..]);
            }
            let width = 32;
            let pixels = n * per;
            let dpanel: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.71).cos()).collect();
            for &isa in &isas {
                let mut dx = vec![0.0; n * in_per];
                let mut want_dot = 0.0f64;
                let mut panel = vec![f32::NAN; rows * width];
                let mut rs = Vec::new();
                for p0 in (0..pixels).step_by(width) {
                    let p1 = pixels.min(p0 + width);
                    runs(per, g.out_w(), p0, p1, &mut rs);
                    im2col_panel(isa, &g, &x, &rs, &mut panel, width);
                    for k in 0..rows {
                        for t in 0..width {
                            let p = p0 + t;
                            let want = if p < pixels {
                                whole[(p / per) * rows * per + k * per + p % per]
                            } else {
                                0.0
                            };
                            assert_eq!(panel[k * width + t], want, "{isa:?} {g:?} k {k} p {p}");
                            want_dot += want as f64 * dpanel[k * width + t] as f64;
                        }
                    }
                    col2im_panel(isa, &g, &dpanel, &rs, width, &mut dx);
                }
                let got_dot: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
                assert!(
                    (got_dot - want_dot).abs() < 1e-3,
                    "{isa:?} {g:?}: {got_dot} vs {want_dot}"
                );
            }
        }
    }
}
