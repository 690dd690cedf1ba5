//! From u8 images to a data layer's blob: Caffe's `DataTransformer` (crop, mirror, mean,
//! scale), shared by training and classification so both see the same numbers.

use std::path::{Path, PathBuf};

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::data::ResizeMode;
use crate::engine::Rng;
use crate::layers::data::Transform;

/// Everything needed to turn an image file or a dataset image into network input; saved in
/// every run folder as `preprocess.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub resize: ResizeMode,
    pub scale: f32,
    /// Per-channel mean values (Caffe's `mean_value`); empty for none.
    pub mean_values: Vec<f32>,
    /// A mean image, C×H×W at the dataset's size (from `mean_file`), if any.
    pub mean_image: Option<Vec<f32>>,
    pub crop_size: usize,
    pub mirror: bool,
}

impl Preprocess {
    /// Builds the preprocessing for images of `chw` from a data layer's transform; a
    /// `mean_file` is looked up beside the spec and then in the dataset folder (`.png` of
    /// the dataset's size, or raw little-endian `.f32`), or is the dataset's own mean.
    pub fn new(
        t: &Transform,
        chw: [usize; 3],
        resize: ResizeMode,
        spec_dir: &Path,
        dataset: Option<&crate::data::Dataset>,
    ) -> miette::Result<Preprocess> {
        let mut mean_image = None;
        if let Some(name) = &t.mean_file {
            mean_image = Some(load_mean(name, chw, spec_dir, dataset)?);
        }
        if !t.mean_values.is_empty() && t.mean_values.len() != 1 && t.mean_values.len() != chw[0] {
            return Err(crate::commands::usage(
                format!(
                    "{} mean_value entries for {} channels",
                    t.mean_values.len(),
                    chw[0]
                ),
                Some("give one mean_value, or one per channel".into()),
            ));
        }
        Ok(Preprocess {
            channels: chw[0],
            height: chw[1],
            width: chw[2],
            resize,
            scale: t.scale,
            mean_values: t.mean_values.clone(),
            mean_image,
            crop_size: t.crop_size,
            mirror: t.mirror,
        })
    }

    /// C×H×W after cropping.
    pub fn output_chw(&self) -> [usize; 3] {
        if self.crop_size > 0 {
            [self.channels, self.crop_size, self.crop_size]
        } else {
            [self.channels, self.height, self.width]
        }
    }

    pub fn output_len(&self) -> usize {
        self.output_chw().iter().product()
    }

    /// Whether [`Preprocess::apply`] draws random numbers when training (random crops or
    /// mirroring); without them, images can be prepared in any order on any thread.
    pub fn draws_random(&self) -> bool {
        self.crop_size > 0 || self.mirror
    }

    /// Writes one image (`C×H×W` u8) into `out`. Training crops at random and mirrors at
    /// random when asked; otherwise the crop is centred and nothing is mirrored.
    pub fn apply(&self, img: &[u8], out: &mut [f32], train: bool, rng: &mut Rng) {
        let [c, oh, ow] = self.output_chw();
        let (h, w) = (self.height, self.width);
        let (y0, x0) = if self.crop_size > 0 {
            if train {
                (rng.random_range(0..=h - oh), rng.random_range(0..=w - ow))
            } else {
                ((h - oh) / 2, (w - ow) / 2)
            }
        } else {
            (0, 0)
        };
        let flip = train && self.mirror && rng.random::<bool>();
        if (oh, ow) == (h, w) && !flip {
            // The whole image as it lies: one pass a channel, in vectors.
            let planes = out[..c * h * w].chunks_mut(h * w).zip(img.chunks(h * w));
            for (ch, (out, img)) in planes.enumerate() {
                let scale = self.scale;
                match &self.mean_image {
                    Some(m) => {
                        let m = &m[ch * h * w..(ch + 1) * h * w];
                        for ((o, &v), &m) in out.iter_mut().zip(img).zip(m) {
                            *o = (v as f32 - m) * scale;
                        }
                    }
                    None => {
                        let mv = match self.mean_values.len() {
                            0 => 0.0,
                            1 => self.mean_values[0],
                            _ => self.mean_values[ch],
                        };
                        for (o, &v) in out.iter_mut().zip(img) {
                            *o = (v as f32 - mv) * scale;
                        }
                    }
                }
            }
            return;
        }
        for ch in 0..c {
            let mv = match self.mean_values.len() {
                0 => 0.0,
                1 => self.mean_values[0],
                _ => self.mean_values[ch],
            };
            for y in 0..oh {
                for x in 0..ow {
                    let sx = if flip { x0 + ow - 1 - x } else { x0 + x };
                    let src = (ch * h + y0 + y) * w + sx;
                    let mean = self.mean_image.as_ref().map_or(mv, |m| m[src]);
                    out[(ch * oh + y) * ow + x] = (img[src] as f32 - mean) * self.scale;
                }
            }
        }
    }
}

fn load_mean(
    name: &str,
    chw: [usize; 3],
    spec_dir: &Path,
    dataset: Option<&crate::data::Dataset>,
) -> miette::Result<Vec<f32>> {
    let n: usize = chw.iter().product();
    let mut tried: Vec<PathBuf> = vec![spec_dir.join(name)];
    if let Some(d) = dataset {
        tried.push(d.root.join(name));
    }
    for p in &tried {
        if !p.is_file() {
            continue;
        }
        let bytes =
            std::fs::read(p).map_err(|e| crate::data::io_err("read the mean file", p, e))?;
        let is_png = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let mean: Vec<f32> = if is_png {
            let img = image::load_from_memory(&bytes)
                .map_err(|e| crate::data::io_err("decode the mean image", p, e))?;
            let raw: Vec<u8> = if chw[0] == 1 {
                img.to_luma8().into_raw()
            } else {
                img.to_rgb8().into_raw()
            };
            // HWC to CHW.
            let (h, w, c) = (chw[1], chw[2], chw[0]);
            if raw.len() != n {
                return Err(size_error(p, chw));
            }
            let mut m = vec![0.0; n];
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        m[(ch * h + y) * w + x] = raw[(y * w + x) * c + ch] as f32;
                    }
                }
            }
            m
        } else {
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        if mean.len() != n {
            return Err(size_error(p, chw));
        }
        return Ok(mean);
    }
    if let Some(m) = dataset.and_then(|d| d.mean.clone()) {
        if m.len() == n {
            return Ok(m);
        }
    }
    Err(crate::commands::usage(
        format!(
            "mean_file \"{name}\" not found (looked for {})",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some("give a path relative to the spec, or remove mean_file".into()),
    ))
}

fn size_error(p: &Path, chw: [usize; 3]) -> miette::Report {
    crate::commands::usage(
        format!(
            "the mean image {} does not have the dataset's size {}×{}×{}",
            p.display(),
            chw[0],
            chw[1],
            chw[2]
        ),
        Some("make the mean from the same dataset (netc data create writes mean.png)".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn pre(crop: usize, mirror: bool) -> Preprocess {
        Preprocess {
            channels: 1,
            height: 4,
            width: 4,
            resize: ResizeMode::Squash,
            scale: 0.5,
            mean_values: vec![2.0],
            mean_image: None,
            crop_size: crop,
            mirror,
        }
    }

    #[test]
    fn scale_mean_and_centre_crop() {
        let img: Vec<u8> = (0..16).collect();
        let mut out = vec![0.0; 16];
        let mut rng = Rng::seed_from_u64(0);
        pre(0, false).apply(&img, &mut out, true, &mut rng);
        assert_eq!(out[5], (5.0 - 2.0) * 0.5);
        let mut out = vec![0.0; 4];
        pre(2, false).apply(&img, &mut out, false, &mut rng);
        // The centre 2×2 of a 4×4 image: pixels 5, 6, 9, 10.
        assert_eq!(out, vec![1.5, 2.0, 3.5, 4.0]);
    }

    /// Whole images (no crop, no mirror) take a pass a channel: the same values as the
    /// per-pixel formula, with a mean image, per-channel means, or none, on 3 channels.
    #[test]
    fn whole_images_take_the_per_pixel_values() {
        let img: Vec<u8> = (0..48).map(|i| (i * 37 % 256) as u8).collect();
        let mean: Vec<f32> = (0..48).map(|i| i as f32 * 0.5).collect();
        let mut rng = Rng::seed_from_u64(0);
        for (values, image) in [
            (vec![], Some(mean.clone())),
            (vec![1.0, 2.0, 3.0], None),
            (vec![7.0], None),
            (vec![], None),
        ] {
            let p = Preprocess {
                channels: 3,
                mean_values: values.clone(),
                mean_image: image.clone(),
                ..pre(0, false)
            };
            assert!(!p.draws_random());
            let mut out = vec![f32::NAN; 48];
            p.apply(&img, &mut out, true, &mut rng);
            for (i, o) in out.iter().enumerate() {
                let m = match (&image, values.len()) {
                    (Some(m), _) => m[i],
                    (None, 0) => 0.0,
                    (None, 1) => values[0],
                    (None, _) => values[i / 16],
                };
                assert_eq!(*o, (img[i] as f32 - m) * 0.5, "pixel {i}");
            }
        }
        assert!(pre(3, false).draws_random() && pre(0, true).draws_random());
    }

    #[test]
    fn training_crops_stay_inside_and_mirror_flips() {
        let img: Vec<u8> = (0..16).collect();
        let mut rng = Rng::seed_from_u64(3);
        let p = pre(3, true);
        let mut flipped = false;
        for _ in 0..50 {
            let mut out = vec![0.0; 9];
            p.apply(&img, &mut out, true, &mut rng);
            let px: Vec<i32> = out.iter().map(|v| (v / 0.5 + 2.0) as i32).collect();
            // Rows are consecutive image rows; columns ascend or (mirrored) descend by 1.
            assert_eq!(px[3] - px[0], 4);
            flipped |= px[1] < px[0];
            assert!((px[1] - px[0]).abs() == 1);
        }
        assert!(flipped, "mirror: true flips some images");
    }
}
