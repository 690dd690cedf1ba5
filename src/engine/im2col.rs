//! Caffe's im2col and col2im for 2-D convolution with padding, stride and dilation.

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
}
