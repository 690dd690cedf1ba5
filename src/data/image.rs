//! Decoding one image file and fitting it to a dataset's `C×H×W`, as DIGITS does it
//! (`digits/utils/image.py`: `load_image`, `image_to_array`, `resize_image`).
//!
//! - Any format and bit depth the `image` crate decodes (PNG 1–16 bit grey/RGB/alpha/palette,
//!   JPEG, BMP, GIF, TIFF, WebP, PNM).
//! - 16-bit samples are scaled to 8 bits (`round(v·255/65535)`), never clipped.
//! - Alpha is composited over white (DIGITS pastes transparent images on a white canvas).
//! - RGB → grey with ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B` (PIL's integer form,
//!   rounded); grey → RGB by repeating the grey value.
//! - Resizing is bilinear (a triangle filter, as PIL's BILINEAR), and an image already at the
//!   target size is not resampled. [`ResizeMode`] says how the aspect ratio is handled; `fill`
//!   and `half_crop` pad with uniform noise in `0..=254`, drawn from the caller's `rng`.

use std::path::Path;

use image::DynamicImage;
use rand::Rng;

use super::{bad, ResizeMode};

/// An image in memory, rows of pixels with `channels` interleaved bytes (HWC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hwc {
    pub data: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Decodes an image file, guessing the format from its bytes (the extension is a fallback).
pub fn decode(path: &Path) -> miette::Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| super::io_err("open image", path, e))?
        .with_guessed_format()
        .map_err(|e| super::io_err("read image", path, e))?;
    reader.decode().map_err(|e| {
        bad(
            format!("cannot decode image `{}`: {e}", path.display()),
            "the file is corrupt or not an image (png, jpeg, bmp, gif, tiff, webp, pnm)",
        )
    })
}

/// Brings a decoded image to 1 (grey) or 3 (RGB) channels of u8, alpha over white.
pub fn to_channels(img: &DynamicImage, channels: usize) -> Hwc {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let to8 = |v: u64| ((v * 255 + 32767) / 65535) as u32;
    let mut data = Vec::with_capacity(w * h * channels);
    let rgba = img.to_rgba16();
    for p in rgba.pixels() {
        let a = p[3] as u64;
        let over = |c: u16| to8((c as u64 * a + 65535 * (65535 - a)) / 65535);
        let (r, g, b) = (over(p[0]), over(p[1]), over(p[2]));
        if channels == 1 {
            data.push(luma(r, g, b));
        } else {
            data.extend_from_slice(&[r as u8, g as u8, b as u8]);
        }
    }
    Hwc {
        data,
        channels,
        height: h,
        width: w,
    }
}

/// Bilinear resize of an HWC image to `height×width`.
pub fn resize(src: &Hwc, height: usize, width: usize) -> Hwc {
    let (h, w) = (height.max(1), width.max(1));
    if (src.height, src.width) == (h, w) {
        return src.clone();
    }
    let filter = image::imageops::FilterType::Triangle;
    let data = if src.channels == 1 {
        let img = image::GrayImage::from_raw(src.width as u32, src.height as u32, src.data.clone());
        img.map(|i| image::imageops::resize(&i, w as u32, h as u32, filter).into_raw())
    } else {
        let img = image::RgbImage::from_raw(src.width as u32, src.height as u32, src.data.clone());
        img.map(|i| image::imageops::resize(&i, w as u32, h as u32, filter).into_raw())
    };
    Hwc {
        data: data.unwrap_or_else(|| vec![0; h * w * src.channels]),
        channels: src.channels,
        height: h,
        width: w,
    }
}

/// Rows `top..top+height` and columns `left..left+width` of `src`.
fn crop(src: &Hwc, top: usize, left: usize, height: usize, width: usize) -> Hwc {
    let c = src.channels;
    let mut data = Vec::with_capacity(height * width * c);
    for y in top..top + height {
        let row = (y * src.width + left) * c;
        data.extend_from_slice(&src.data[row..row + width * c]);
    }
    Hwc {
        data,
        channels: c,
        height,
        width,
    }
}

/// `src` centred in a `height×width` canvas whose uncovered pixels are noise in `0..=254`.
fn pad_with_noise(src: &Hwc, height: usize, width: usize, rng: &mut impl Rng) -> Hwc {
    let c = src.channels;
    let top = height.saturating_sub(src.height) / 2;
    let left = width.saturating_sub(src.width) / 2;
    let mut data = vec![0u8; height * width * c];
    for y in 0..height {
        for x in 0..width {
            let o = (y * width + x) * c;
            let (sy, sx) = (y.wrapping_sub(top), x.wrapping_sub(left));
            if sy < src.height && sx < src.width {
                let i = (sy * src.width + sx) * c;
                data[o..o + c].copy_from_slice(&src.data[i..i + c]);
            } else {
                for v in &mut data[o..o + c] {
                    *v = rng.random_range(0..255u8);
                }
            }
        }
    }
    Hwc {
        data,
        channels: c,
        height,
        width,
    }
}

fn round(x: f64) -> usize {
    x.round().max(1.0) as usize
}

/// Fits an image to `height×width` the way DIGITS' `resize_image` does.
pub fn fit(src: &Hwc, height: usize, width: usize, mode: ResizeMode, rng: &mut impl Rng) -> Hwc {
    if (src.height, src.width) == (height, width) {
        return src.clone();
    }
    let wr = src.width as f64 / width as f64;
    let hr = src.height as f64 / height as f64;
    if mode == ResizeMode::Squash || wr == hr {
        return resize(src, height, width);
    }
    let odd = |target: usize, got: usize| target.abs_diff(got) % 2 == 1;
    match mode {
        ResizeMode::Squash => resize(src, height, width),
        ResizeMode::Crop => {
            if wr > hr {
                let rw = round(src.width as f64 / hr);
                let r = resize(src, height, rw);
                let start = ((rw as f64 - width as f64) / 2.0).round() as usize;
                crop(
                    &r,
                    0,
                    start.min(rw.saturating_sub(width)),
                    height,
                    width.min(rw),
                )
            } else {
                let rh = round(src.height as f64 / wr);
                let r = resize(src, rh, width);
                let start = ((rh as f64 - height as f64) / 2.0).round() as usize;
                crop(
                    &r,
                    start.min(rh.saturating_sub(height)),
                    0,
                    height.min(rh),
                    width,
                )
            }
        }
        ResizeMode::Fill => {
            let r = if wr > hr {
                let mut rh = round(src.height as f64 / wr).min(height);
                if odd(height, rh) {
                    rh += 1;
                }
                resize(src, rh, width)
            } else {
                let mut rw = round(src.width as f64 / hr).min(width);
                if odd(width, rw) {
                    rw += 1;
                }
                resize(src, height, rw)
            };
            pad_with_noise(&r, height, width, rng)
        }
        ResizeMode::HalfCrop => {
            let nr = (wr + hr) / 2.0;
            let mut rw = round(src.width as f64 / nr);
            let mut rh = round(src.height as f64 / nr);
            if wr > hr && odd(height, rh) {
                rh += 1;
            } else if wr < hr && odd(width, rw) {
                rw += 1;
            }
            let r = resize(src, rh, rw);
            let r = if wr > hr {
                let start = ((rw as f64 - width as f64) / 2.0).round().max(0.0) as usize;
                let keep = width.min(rw);
                crop(&r, 0, start.min(rw - keep), r.height.min(height), keep)
            } else {
                let start = ((rh as f64 - height as f64) / 2.0).round().max(0.0) as usize;
                let keep = height.min(rh);
                crop(&r, start.min(rh - keep), 0, keep, r.width.min(width))
            };
            pad_with_noise(&r, height, width, rng)
        }
    }
}

/// HWC → CHW.
pub fn hwc_to_chw(src: &Hwc) -> Vec<u8> {
    let (c, n) = (src.channels, src.height * src.width);
    if c == 1 {
        return src.data.clone();
    }
    let mut out = vec![0u8; c * n];
    for (i, px) in src.data.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            out[k * n + i] = v;
        }
    }
    out
}

/// CHW → HWC.
pub fn chw_to_hwc(chw: &[u8], channels: usize, height: usize, width: usize) -> Hwc {
    let n = height * width;
    let mut data = vec![0u8; channels * n];
    for i in 0..n {
        for k in 0..channels {
            data[i * channels + k] = chw[k * n + i];
        }
    }
    Hwc {
        data,
        channels,
        height,
        width,
    }
}

/// Grey → RGB by repetition, RGB → grey by luma; otherwise unchanged.
pub fn convert_channels(src: &Hwc, channels: usize) -> Hwc {
    let data = match (src.channels, channels) {
        (1, 3) => src.data.iter().flat_map(|&v| [v, v, v]).collect(),
        (3, 1) => src
            .data
            .chunks_exact(3)
            .map(|p| luma(p[0] as u32, p[1] as u32, p[2] as u32))
            .collect(),
        _ => return src.clone(),
    };
    Hwc {
        data,
        channels,
        ..*src
    }
}

/// ITU-R 601 luma of 8-bit RGB, as PIL computes it (`L = R·299/1000 + G·587/1000 +
/// B·114/1000`, in 16-bit fixed point, rounded).
pub fn luma(r: u32, g: u32, b: u32) -> u8 {
    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
}

/// CHW (1 or 3 channels) → an image for saving as PNG.
pub fn chw_to_image(chw: &[u8], channels: usize, height: usize, width: usize) -> DynamicImage {
    let n = height * width;
    if channels == 3 {
        let mut hwc = vec![0u8; 3 * n];
        for i in 0..n {
            for k in 0..3 {
                hwc[i * 3 + k] = chw[k * n + i];
            }
        }
        image::RgbImage::from_raw(width as u32, height as u32, hwc).map(DynamicImage::ImageRgb8)
    } else {
        image::GrayImage::from_raw(width as u32, height as u32, chw[..n].to_vec())
            .map(DynamicImage::ImageLuma8)
    }
    .unwrap_or_else(|| DynamicImage::new_luma8(width as u32, height as u32))
}

/// Fits an already-decoded image to `c×h×w` u8 (CHW).
pub fn fit_image(
    img: &DynamicImage,
    channels: usize,
    height: usize,
    width: usize,
    resize: ResizeMode,
    rng: &mut impl Rng,
) -> Vec<u8> {
    hwc_to_chw(&fit(
        &to_channels(img, channels),
        height,
        width,
        resize,
        rng,
    ))
}

/// Loads one image file (any format/bit depth `image` reads) and fits it to `c×h×w` u8 as
/// DIGITS does (RGB→grey luma 0.299/0.587/0.114; grey→RGB repeat; alpha over white;
/// 16-bit scaled; resize mode). Used by classify.
pub fn load_image(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
    resize: ResizeMode,
    rng: &mut impl Rng,
) -> miette::Result<Vec<u8>> {
    if channels != 1 && channels != 3 {
        return Err(crate::commands::usage(
            format!("images can have 1 or 3 channels, not {channels}"),
            None,
        ));
    }
    if height == 0 || width == 0 {
        return Err(crate::commands::usage(
            format!("image size {height}×{width} is empty"),
            None,
        ));
    }
    Ok(fit_image(
        &decode(path)?,
        channels,
        height,
        width,
        resize,
        rng,
    ))
}
