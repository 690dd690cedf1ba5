//! Datasets: the format, the IDX reader, the image loader, create/export/show.

use std::path::{Path, PathBuf};

use netc::data::{self, ResizeMode};

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_small_mnist_opens_with_documented_counts() {
    let ds =
        data::open(&crate_root().join("specs/data/mnist-small")).expect("shipped dataset opens");
    assert_eq!(
        ds.labels,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        (ds.channels, ds.height, ds.width, ds.resize),
        (1, 28, 28, ResizeMode::Squash)
    );
    assert_eq!(ds.train.len(), 10_002);
    assert_eq!(
        ds.train.counts(10),
        vec![987, 1124, 993, 1022, 974, 904, 987, 1044, 975, 992]
    );
    let val = ds.val.as_ref().expect("a val split");
    assert_eq!(val.len(), 2_000);
    assert_eq!(
        val.counts(10),
        vec![196, 227, 206, 202, 196, 178, 192, 206, 195, 202]
    );
    assert_eq!(ds.train.pixels.len(), 10_002 * 784);
    assert_eq!(ds.train.image(3).len(), 784);
    assert_eq!(ds.train.sources.len(), 10_002);
    assert!(ds.train.sources[0].starts_with("train-images-idx3-ubyte.gz#"));
    // MNIST: background 0, digits white; the mean is on the 0..255 scale.
    let mean = ds.mean.as_ref().expect("a mean image");
    assert_eq!(mean.len(), 784);
    assert_eq!(mean[0], 0.0);
    let centre = mean[14 * 28 + 14];
    assert!(centre > 60.0 && centre < 200.0, "centre mean {centre}");
}

fn write_idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn idx_reader_reads_raw_and_gz() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
    write_idx(
        &dir.path().join("train-images-idx3-ubyte"),
        2051,
        &[3, 4, 5],
        &pixels,
    );
    let mut labels = 2049u32.to_be_bytes().to_vec();
    labels.extend(3u32.to_be_bytes());
    labels.extend([2, 0, 1]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&labels).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    let ds = data::open(dir.path()).unwrap();
    assert_eq!((ds.height, ds.width, ds.channels), (4, 5, 1));
    assert_eq!(ds.train.labels, vec![2, 0, 1]);
    assert_eq!(ds.train.image(1), &pixels[20..40]);
    assert_eq!(ds.labels.len(), 3);
    assert!(ds.val.is_none());
}

#[test]
fn idx_reader_rejects_wrong_magic_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train-images-idx3-ubyte");
    write_idx(&p, 2049, &[1, 2, 2], &[0; 4]);
    let err = data::idx::read_images(&p).unwrap_err();
    let msg = format!("{err}");
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(
        msg.contains("magic number 2049") && msg.contains("expected 2051"),
        "{msg}"
    );
}

#[test]
fn idx_reader_rejects_truncated_file_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t10k-images-idx3-ubyte");
    write_idx(&p, 2051, &[10, 28, 28], &[0; 700]);
    let msg = format!("{}", data::idx::read_images(&p).unwrap_err());
    assert!(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );
    assert!(msg.contains("7840") && msg.contains("700"), "{msg}");
    // A header cut short, too.
    std::fs::write(&p, [0, 0, 8, 3, 0, 0]).unwrap();
    let msg = format!("{}", data::idx::read_images(&p).unwrap_err());
    assert!(msg.contains("truncated"), "{msg}");
}

// ---------------------------------------------------------------- image loading

use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};
use rand::SeedableRng;

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn load(path: &Path, c: usize, h: usize, w: usize, mode: ResizeMode) -> Vec<u8> {
    data::load_image(path, c, h, w, mode, &mut rng(7))
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

/// Four pixels in a row: red, green, blue, dark grey — and their luma.
const RGB4: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]];
const LUMA4: [u8; 4] = [76, 150, 29, 10];

fn rgb4() -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(4, 1, |x, _| Rgb(RGB4[x as usize])))
}

fn assert_close(got: &[u8], want: &[u8], tol: u8, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.abs_diff(*w) <= tol,
            "{what}: pixel {i} is {g}, want {w} ± {tol} (all: {got:?})"
        );
    }
}

#[test]
fn every_format_and_bit_depth_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grey4 = [0u8, 85, 170, 255];
    let l8 = DynamicImage::ImageLuma8(ImageBuffer::from_fn(4, 1, |x, _| Luma([grey4[x as usize]])));
    let l16 = DynamicImage::ImageLuma16(ImageBuffer::from_fn(4, 1, |x, _| {
        Luma([[0u16, 32768, 65535, 170 * 257][x as usize]])
    }));
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_fn(4, 1, |x, _| {
        let [r, g, b] = RGB4[x as usize];
        Rgb([r as u16 * 257, g as u16 * 257, b as u16 * 257])
    }));
    // Alpha over white: transparent black is white, half-transparent black is mid grey.
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(4, 1, |x, _| {
        Rgba(
            [
                [0, 0, 0, 0],
                [0, 0, 0, 255],
                [0, 0, 0, 128],
                [255, 0, 0, 255],
            ][x as usize],
        )
    }));
    let rgba_luma = [255u8, 0, 127, 76];
    let gif_rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(4, 1, |x, _| {
        Rgba(
            [
                [0, 0, 0, 0],
                [0, 0, 0, 255],
                [200, 200, 200, 255],
                [255, 0, 0, 255],
            ][x as usize],
        )
    }));
    let la = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(4, 1, |x, _| {
        LumaA([[0, 0], [0, 255], [200, 255], [255, 0]][x as usize])
    }));
    let cases: Vec<(&str, DynamicImage, Vec<u8>, u8)> = vec![
        ("grey8.png", l8.clone(), grey4.to_vec(), 0),
        ("grey16.png", l16.clone(), vec![0, 128, 255, 170], 0),
        ("rgb8.png", rgb4(), LUMA4.to_vec(), 0),
        ("rgb16.png", rgb16.clone(), LUMA4.to_vec(), 0),
        ("rgba8.png", rgba.clone(), rgba_luma.to_vec(), 0),
        ("greyalpha.png", la, vec![255, 0, 200, 255], 0),
        ("UPPER.PNG", l8.clone(), grey4.to_vec(), 0),
        ("rgb.bmp", rgb4(), LUMA4.to_vec(), 0),
        ("rgba.bmp", rgba.clone(), rgba_luma.to_vec(), 0),
        ("grey8.tif", l8.clone(), grey4.to_vec(), 0),
        ("grey16.tiff", l16, vec![0, 128, 255, 170], 0),
        ("rgb.tif", rgb4(), LUMA4.to_vec(), 0),
        ("rgb16.tif", rgb16, LUMA4.to_vec(), 0),
        ("rgb.webp", rgb4(), LUMA4.to_vec(), 0),
        ("rgba.webp", rgba.clone(), rgba_luma.to_vec(), 0),
        ("grey.pgm", l8.clone(), grey4.to_vec(), 0),
        ("rgb.ppm", rgb4(), LUMA4.to_vec(), 0),
        // GIF transparency is all or nothing.
        ("rgba.gif", gif_rgba, vec![255, 0, 200, 76], 3),
    ];
    for (name, img, want, tol) in cases {
        let p = d.join(name);
        img.save(&p)
            .unwrap_or_else(|e| panic!("saving {name}: {e}"));
        assert_close(&load(&p, 1, 1, 4, ResizeMode::Squash), &want, tol, name);
    }
    // Three channels: grey repeats, RGB stays (CHW order).
    let p = d.join("grey8.png");
    let grey3 = load(&p, 3, 1, 4, ResizeMode::Squash);
    assert_eq!(grey3, [grey4, grey4, grey4].concat());
    let rgb3 = load(&d.join("rgb.bmp"), 3, 1, 4, ResizeMode::Squash);
    assert_eq!(rgb3, vec![255, 0, 0, 10, 0, 255, 0, 10, 0, 0, 255, 10]);

    // JPEG is lossy: flat 16×16 patches.
    let flat = |c: [u8; 3]| DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 16, Rgb(c)));
    for (name, img, want) in [
        (
            "grey.jpg",
            DynamicImage::ImageLuma8(ImageBuffer::from_pixel(16, 16, Luma([100]))),
            100,
        ),
        ("red.JPEG", flat([255, 0, 0]), 76),
        ("blue.jpeg", flat([0, 0, 255]), 29),
    ] {
        let p = d.join(name);
        img.save_with_format(&p, image::ImageFormat::Jpeg).unwrap();
        assert_close(
            &load(&p, 1, 16, 16, ResizeMode::Squash),
            &[want; 256],
            4,
            name,
        );
    }

    // A palette PNG with a transparent entry (tRNS).
    let p = d.join("palette.png");
    {
        let f = std::fs::File::create(&p).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 5, 1);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 10, 10, 0, 0, 0]);
        enc.set_trns(vec![255, 255, 255, 255, 0]);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 1, 2, 3, 4]).unwrap();
    }
    assert_eq!(
        load(&p, 1, 1, 5, ResizeMode::Squash),
        vec![76, 150, 29, 10, 255]
    );
    // A 4-bit palette too.
    let p4 = d.join("palette4.png");
    {
        let f = std::fs::File::create(&p4).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 2, 1);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Four);
        enc.set_palette(vec![0, 0, 0, 200, 200, 200]);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0x10]).unwrap();
    }
    assert_eq!(load(&p4, 1, 1, 2, ResizeMode::Squash), vec![200, 0]);
}

#[test]
fn unreadable_image_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.png");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let msg = format!(
        "{}",
        data::load_image(&p, 1, 28, 28, ResizeMode::Squash, &mut rng(0)).unwrap_err()
    );
    assert!(msg.contains("broken.png"), "{msg}");
    let missing = dir.path().join("missing.png");
    let msg = format!(
        "{}",
        data::load_image(&missing, 1, 28, 28, ResizeMode::Squash, &mut rng(0)).unwrap_err()
    );
    assert!(msg.contains("missing.png"), "{msg}");
}

/// A 4-row, 8-column grey image: columns 0-1 are 10, 2-5 are 100, 6-7 are 250.
fn wide_image(dir: &Path) -> PathBuf {
    let cols = [10u8, 10, 100, 100, 100, 100, 250, 250];
    let p = dir.join("wide.png");
    ImageBuffer::from_fn(8, 4, |x, _| Luma([cols[x as usize]]))
        .save(&p)
        .unwrap();
    p
}

fn rows(v: &[u8], w: usize) -> Vec<Vec<u8>> {
    v.chunks(w).map(<[u8]>::to_vec).collect()
}

#[test]
fn squash_resizes_the_whole_image() {
    let dir = tempfile::tempdir().unwrap();
    let got = rows(
        &load(&wide_image(dir.path()), 1, 4, 4, ResizeMode::Squash),
        4,
    );
    // Bilinear (triangle filter, PIL's BILINEAR): halving the width, output column x averages
    // source columns around 2x+1 with weights 1 - |d|/2, e.g. column 0 =
    // (0.75·10 + 0.75·10 + 0.25·100) / 1.75 = 22.9 and column 1 =
    // (0.25·10 + 0.75·100 + 0.75·100 + 0.25·100) / 2 = 88.75.
    for r in &got {
        assert_eq!(r, &vec![23, 89, 119, 229], "{got:?}");
    }
    // The target size already: nothing is resampled.
    let same = load(&wide_image(dir.path()), 1, 4, 8, ResizeMode::Squash);
    assert_eq!(&same[..8], &[10, 10, 100, 100, 100, 100, 250, 250]);
}

#[test]
fn crop_keeps_the_centre() {
    let dir = tempfile::tempdir().unwrap();
    // 4×8 → 4×4: no scaling needed on the short side, the centre columns 2-5 remain.
    assert_eq!(
        load(&wide_image(dir.path()), 1, 4, 4, ResizeMode::Crop),
        vec![100; 16]
    );
    // A tall image: rows 0-1 are 10, 2-5 are 100, 6-7 are 250 → the centre rows.
    let p = dir.path().join("tall.png");
    let rows_v = [10u8, 10, 100, 100, 100, 100, 250, 250];
    ImageBuffer::from_fn(4, 8, |_, y| Luma([rows_v[y as usize]]))
        .save(&p)
        .unwrap();
    assert_eq!(load(&p, 1, 4, 4, ResizeMode::Crop), vec![100; 16]);
}

fn flat_image(dir: &Path, w: u32, h: u32) -> PathBuf {
    let p = dir.join(format!("flat{w}x{h}.png"));
    ImageBuffer::from_pixel(w, h, Luma([100u8]))
        .save(&p)
        .unwrap();
    p
}

#[test]
fn fill_keeps_everything_and_pads_with_noise() {
    let dir = tempfile::tempdir().unwrap();
    // 4×8 → 4×4: scaled to 2×4 and centred; rows 0 and 3 are noise in 0..=254.
    let p = flat_image(dir.path(), 8, 4);
    let got = rows(&load(&p, 1, 4, 4, ResizeMode::Fill), 4);
    assert_eq!(got[1], vec![100; 4]);
    assert_eq!(got[2], vec![100; 4]);
    let noise: Vec<u8> = [got[0].clone(), got[3].clone()].concat();
    assert!(
        noise.iter().all(|&v| v < 255) && noise.iter().any(|&v| v != 100),
        "{noise:?}"
    );
    // The noise comes from the caller's generator: same seed, same pixels.
    let a = data::load_image(&p, 1, 4, 4, ResizeMode::Fill, &mut rng(1)).unwrap();
    let b = data::load_image(&p, 1, 4, 4, ResizeMode::Fill, &mut rng(1)).unwrap();
    let c = data::load_image(&p, 1, 4, 4, ResizeMode::Fill, &mut rng(2)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // A tall image is padded left and right: 8×4 (h×w) → 4×4 gives columns 1-2.
    let t = flat_image(dir.path(), 4, 8);
    let got = rows(&load(&t, 1, 4, 4, ResizeMode::Fill), 4);
    for r in &got {
        assert_eq!(&r[1..3], &[100, 100]);
    }
    // 3 channels: noise per channel, image grey repeated.
    let got3 = load(&p, 3, 4, 4, ResizeMode::Fill);
    for ch in got3.chunks(16) {
        assert_eq!(&ch[4..12], &[100; 8]);
    }
}

#[test]
fn half_crop_crops_half_and_pads_half() {
    let dir = tempfile::tempdir().unwrap();
    // 4×16 → 4×4: ratios 4 and 1, mean 2.5: scaled to 2×6, columns 1-4 kept, and padded to
    // 4 rows with noise (rows 0 and 3).
    let p = flat_image(dir.path(), 16, 4);
    let got = rows(&load(&p, 1, 4, 4, ResizeMode::HalfCrop), 4);
    assert_eq!(got[1], vec![100; 4]);
    assert_eq!(got[2], vec![100; 4]);
    assert!(
        [&got[0], &got[3]]
            .iter()
            .any(|r| r.iter().any(|&v| v != 100)),
        "{got:?}"
    );
    // A square image needs neither: plain resize.
    let s = flat_image(dir.path(), 8, 8);
    assert_eq!(load(&s, 1, 4, 4, ResizeMode::HalfCrop), vec![100; 16]);
    // Which part is kept: 4×16 with columns 0-5 at 10, 6-9 at 100, 10-15 at 250 → the
    // centre column values survive in the middle.
    let g = dir.path().join("g.png");
    ImageBuffer::from_fn(16, 4, |x, _| {
        Luma([if x < 6 {
            10u8
        } else if x < 10 {
            100
        } else {
            250
        }])
    })
    .save(&g)
    .unwrap();
    let got = rows(&load(&g, 1, 4, 4, ResizeMode::HalfCrop), 4);
    assert!(got[1][0] < got[1][1] || got[1][0] == 10, "{got:?}");
    assert!(got[1][3] > 100, "{got:?}");
}

#[test]
fn resize_mode_names_round_trip() {
    for m in [
        ResizeMode::Squash,
        ResizeMode::Crop,
        ResizeMode::Fill,
        ResizeMode::HalfCrop,
    ] {
        assert_eq!(m.name().parse::<ResizeMode>().unwrap(), m);
        let y = serde_yaml::to_string(&m).unwrap();
        assert_eq!(y.trim(), m.name());
    }
    assert!("stretch".parse::<ResizeMode>().is_err());
}

#[test]
fn real_world_pictures_all_load() {
    let dir = crate_root().join("../shared/datasets/real-world");
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let list = std::fs::read_to_string(dir.join("images.list")).unwrap();
    let mut n = 0;
    for name in list.lines().filter(|l| !l.trim().is_empty()) {
        for mode in [
            ResizeMode::Squash,
            ResizeMode::Crop,
            ResizeMode::Fill,
            ResizeMode::HalfCrop,
        ] {
            for c in [1, 3] {
                assert_eq!(
                    load(&dir.join(name.trim()), c, 28, 28, mode).len(),
                    c * 28 * 28
                );
            }
        }
        n += 1;
    }
    assert_eq!(n, 27);
}
