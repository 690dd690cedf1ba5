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

// ---------------------------------------------------------------- create, export, show

use netc::data::create::{self, Augment, Options};
use netc::data::format::Encoding;

/// An MNIST-like IDX folder: `per_class[c]` training images of class c (each image's pixels
/// are distinct), and `test_per_class` t10k images per class when given.
fn make_idx(dir: &Path, per_class: &[usize], test_per_class: Option<usize>) {
    let (h, w) = (4u32, 3u32);
    let write = |prefix: &str, counts: &[usize], salt: u8| {
        let mut px = Vec::new();
        let mut lb = Vec::new();
        let mut k = 0u32;
        for (c, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                for j in 0..(h * w) {
                    px.push((k.wrapping_mul(7).wrapping_add(j * 13) as u8) ^ salt);
                }
                lb.push(c as u8);
                k += 1;
            }
        }
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            2051,
            &[k, h, w],
            &px,
        );
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            2049,
            &[k],
            &lb,
        );
    };
    write("train", per_class, 0);
    if let Some(t) = test_per_class {
        write("t10k", &vec![t; per_class.len()], 0x55);
    }
}

fn opts(src: &Path) -> Options {
    Options {
        src: src.to_path_buf(),
        height: 4,
        width: 3,
        ..Options::default()
    }
}

/// (label, pixels, source) of every image, sorted: a split's content regardless of order.
fn content(s: &data::Split) -> Vec<(u32, Vec<u8>)> {
    let mut v: Vec<(u32, Vec<u8>)> = (0..s.len())
        .map(|i| (s.labels[i], s.image(i).to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn split_is_stratified_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[20, 8, 12, 40], None);
    let o = Options {
        val_percent: Some(25.0),
        seed: 5,
        ..opts(dir.path())
    };
    let (a, _) = create::build(&o).unwrap();
    let val = a.val.as_ref().unwrap();
    assert_eq!(val.counts(4), vec![5, 2, 3, 10]);
    assert_eq!(a.train.counts(4), vec![15, 6, 9, 30]);
    // Every image is in exactly one split.
    let mut all: Vec<&String> = a.train.sources.iter().chain(&val.sources).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 80);
    // Same seed, same split and order; another seed, another split.
    let (b, _) = create::build(&o).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.val, b.val);
    let (c, _) = create::build(&Options {
        seed: 6,
        ..o.clone()
    })
    .unwrap();
    assert_ne!(c.val.as_ref().unwrap().sources, val.sources);
    assert_eq!(c.val.as_ref().unwrap().counts(4), vec![5, 2, 3, 10]);
    // The mean is over the training split only.
    let mean = create::mean_image(&a.train, 12);
    assert_eq!(a.mean.as_ref().unwrap(), &mean);
    // With a test split too.
    let (t, _) = create::build(&Options {
        test_percent: 10.0,
        ..o
    })
    .unwrap();
    assert_eq!(t.test.as_ref().unwrap().counts(4), vec![2, 1, 1, 4]);
    assert_eq!(t.val.as_ref().unwrap().counts(4), vec![5, 2, 3, 10]);
    assert_eq!(t.train.counts(4), vec![13, 5, 8, 26]);
}

#[test]
fn idx_keeps_mnist_split_unless_val_percent_is_given() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[10, 10, 10], Some(4));
    let (ds, _) = create::build(&opts(dir.path())).unwrap();
    assert_eq!(ds.train.len(), 30);
    let val = ds.val.as_ref().unwrap();
    assert_eq!(val.counts(3), vec![4, 4, 4]);
    assert!(val
        .sources
        .iter()
        .all(|s| s.starts_with("t10k-images-idx3-ubyte#")));
    let (ds, report) = create::build(&Options {
        val_percent: Some(20.0),
        ..opts(dir.path())
    })
    .unwrap();
    assert_eq!((ds.train.len(), ds.val.as_ref().unwrap().len()), (24, 6));
    assert!(ds
        .val
        .as_ref()
        .unwrap()
        .sources
        .iter()
        .all(|s| s.starts_with("train-")));
    assert!(
        report.warnings.iter().any(|w| w.contains("not used")),
        "{:?}",
        report.warnings
    );
    // --fraction and --val-fraction subset each class of each source.
    let (ds, _) = create::build(&Options {
        fraction: Some(0.5),
        val_fraction: Some(0.5),
        ..opts(dir.path())
    })
    .unwrap();
    assert_eq!(ds.train.counts(3), vec![5, 5, 5]);
    assert_eq!(ds.val.as_ref().unwrap().counts(3), vec![2, 2, 2]);
    let (ds, _) = create::build(&Options {
        max_per_class: Some(3),
        ..opts(dir.path())
    })
    .unwrap();
    assert_eq!(ds.train.counts(3), vec![3, 3, 3]);
}

#[test]
fn invert_doubles_training_and_inverts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[6, 6], Some(2));
    let (plain, _) = create::build(&opts(dir.path())).unwrap();
    let (inv, _) = create::build(&Options {
        augment: vec![Augment::Invert],
        ..opts(dir.path())
    })
    .unwrap();
    let n = plain.train.len();
    assert_eq!(inv.train.len(), 2 * n);
    assert_eq!(&inv.train.pixels[..n * 12], &plain.train.pixels[..]);
    for i in 0..n {
        let want: Vec<u8> = plain.train.image(i).iter().map(|p| 255 - p).collect();
        assert_eq!(inv.train.image(n + i), &want[..]);
        assert_eq!(inv.train.labels[n + i], plain.train.labels[i]);
    }
    // Validation is untouched; the info says what was done.
    assert_eq!(inv.val, plain.val);
    let aug = format!("{:?}", inv.info.get("augmentation").unwrap());
    assert!(aug.contains("invert"), "{aug}");
    // The mean of the union is 127.5 everywhere.
    assert!(inv.mean.as_ref().unwrap().iter().all(|&m| m == 127.5));
}

#[test]
fn written_dataset_reads_back_in_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[5, 7, 9], Some(3));
    for enc in [Encoding::Raw, Encoding::Gz, Encoding::Png] {
        let out = dir.path().join(format!("ds-{enc:?}"));
        let (made, _) = create::create(&opts(dir.path()), &out, enc, false).unwrap();
        let read = data::open(&out).unwrap();
        assert_eq!(read.train, made.train, "{enc:?}");
        assert_eq!(read.val, made.val, "{enc:?}");
        assert_eq!(read.labels, vec!["0", "1", "2"]);
        assert_eq!(read.mean, made.mean);
        assert_eq!(read.root, out);
        assert_eq!(read.info.get("seed").and_then(|v| v.as_u64()), Some(0));
        // No temporary folders are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        // Not overwritten without force; replaced with it.
        let err = create::create(&opts(dir.path()), &out, enc, false).unwrap_err();
        assert!(format!("{err}").contains("already exists"));
        create::create(
            &Options {
                seed: 3,
                ..opts(dir.path())
            },
            &out,
            enc,
            true,
        )
        .unwrap();
        assert_eq!(
            data::open(&out)
                .unwrap()
                .info
                .get("seed")
                .and_then(|v| v.as_u64()),
            Some(3)
        );
    }
}

#[test]
fn open_refuses_incomplete_or_damaged_datasets() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[5, 5], None);
    let out = dir.path().join("ds");
    create::create(&opts(dir.path()), &out, Encoding::Raw, false).unwrap();
    let info = std::fs::read_to_string(out.join("info.yaml")).unwrap();
    // Not marked complete.
    std::fs::write(
        out.join("info.yaml"),
        info.replace("complete: true", "complete: false"),
    )
    .unwrap();
    let msg = format!("{}", data::open(&out).unwrap_err());
    assert!(
        msg.contains("info.yaml") && msg.contains("complete"),
        "{msg}"
    );
    // Truncated pixels.
    std::fs::write(out.join("info.yaml"), &info).unwrap();
    let px = std::fs::read(out.join("train.pixels")).unwrap();
    std::fs::write(out.join("train.pixels"), &px[..px.len() - 5]).unwrap();
    let msg = format!("{}", data::open(&out).unwrap_err());
    assert!(
        msg.contains("train.pixels") && msg.contains("expected"),
        "{msg}"
    );
    // No info.yaml at all.
    std::fs::remove_file(out.join("info.yaml")).unwrap();
    let msg = format!("{}", data::open(&out).unwrap_err());
    assert!(msg.contains("info.yaml"), "{msg}");
}

/// Class folders with odd names: spaces, non-ASCII, nested folders, upper-case extensions.
fn make_folders(root: &Path, classes: &[(&str, usize)]) {
    for (ci, (name, n)) in classes.iter().enumerate() {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("nested deeper")).unwrap();
        for i in 0..*n {
            let v = (ci * 40 + i) as u8;
            let img = ImageBuffer::from_fn(6, 4, |x, y| Luma([v.wrapping_add((x + y) as u8)]));
            let p = if i % 3 == 2 {
                d.join("nested deeper").join(format!("im {i}.PNG"))
            } else {
                d.join(format!("im{i}.png"))
            };
            img.save_with_format(&p, image::ImageFormat::Png).unwrap();
        }
    }
}

#[test]
fn folders_with_odd_names_drop_small_classes_and_skip_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_folders(&src, &[("cat five", 6), ("chien été", 9), ("rare", 1)]);
    std::fs::write(src.join("cat five").join("corrupt.png"), b"not a png").unwrap();
    std::fs::write(src.join("cat five").join("notes.txt"), b"ignored").unwrap();
    let o = Options {
        src: src.clone(),
        height: 4,
        width: 6,
        val_percent: Some(0.0),
        ..Options::default()
    };
    let (ds, report) = create::build(&o).unwrap();
    assert_eq!(ds.labels, vec!["cat five", "chien été"]);
    assert_eq!(report.dropped, vec![("rare".to_string(), 1)]);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].0.ends_with("corrupt.png"),
        "{:?}",
        report.skipped
    );
    assert_eq!(ds.train.counts(2), vec![6, 9]);
    assert!(ds.val.is_none());
    // --strict makes the bad image fatal, naming it.
    let msg = format!(
        "{}",
        create::build(&Options {
            strict: true,
            ..o.clone()
        })
        .unwrap_err()
    );
    assert!(msg.contains("corrupt.png"), "{msg}");
    // Fewer than two classes is an error.
    let msg = format!(
        "{}",
        create::build(&Options {
            min_per_class: 7,
            ..o
        })
        .unwrap_err()
    );
    assert!(msg.contains("at least 2"), "{msg}");
    // A folder of class folders opens directly, too.
    std::fs::remove_file(src.join("cat five").join("corrupt.png")).unwrap();
    let direct = data::open(&src).unwrap();
    assert_eq!(direct.labels, vec!["cat five", "chien été", "rare"]);
    assert_eq!((direct.channels, direct.height, direct.width), (1, 4, 6));
    assert_eq!(direct.train.len(), 16);
}

#[test]
fn export_then_create_gives_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[6, 5, 7], Some(3));
    let ds_path = dir.path().join("ds");
    let (ds, _) = create::create(&opts(dir.path()), &ds_path, Encoding::Raw, false).unwrap();
    let exported = dir.path().join("exported");
    let n = data::show::export(&data::open(&ds_path).unwrap(), &exported).unwrap();
    assert_eq!(n, 18 + 9);
    assert!(exported.join("train").join("1").is_dir() && exported.join("val").join("2").is_dir());
    let (again, _) = create::build(&Options {
        src: exported,
        ..opts(dir.path())
    })
    .unwrap();
    assert_eq!(again.labels, ds.labels);
    assert_eq!(content(&again.train), content(&ds.train));
    assert_eq!(
        content(again.val.as_ref().unwrap()),
        content(ds.val.as_ref().unwrap())
    );
}

#[test]
fn list_files_are_read_relative_to_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("imgs");
    make_folders(&src, &[("a", 4), ("b", 4)]);
    let mut list = String::new();
    for (c, name) in ["a", "b"].iter().enumerate() {
        for i in [0, 1, 3] {
            list.push_str(&format!("imgs/{name}/im{i}.png {c}\r\n"));
        }
        list.push_str(&format!("\nimgs/{name}/nested deeper/im 2.PNG {c}\n"));
    }
    let lf = dir.path().join("list.txt");
    std::fs::write(&lf, &list).unwrap();
    let (ds, _) = create::build(&Options {
        src: lf.clone(),
        height: 4,
        width: 6,
        val_percent: Some(25.0),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(ds.labels, vec!["0", "1"]);
    assert_eq!(ds.train.counts(2), vec![3, 3]);
    assert_eq!(ds.val.as_ref().unwrap().counts(2), vec![1, 1]);
    std::fs::write(&lf, "imgs/a/im0.png\n").unwrap();
    let msg = format!(
        "{}",
        create::build(&Options {
            src: lf,
            ..Options::default()
        })
        .unwrap_err()
    );
    assert!(msg.contains("list.txt:1"), "{msg}");
}

// ---------------------------------------------------------------- the command line

fn netc(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn total_line(out: &str) -> Vec<&str> {
    out.lines()
        .find(|l| l.starts_with("total"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn cli_create_show_export() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mnist");
    std::fs::create_dir(&src).unwrap();
    make_idx(&src, &[6, 6, 6], Some(2));
    let ds = dir.path().join("ds");
    let (code, out, err) = netc(&[
        "data",
        "create",
        s(&src),
        "--out",
        s(&ds),
        "--size",
        "4x3",
        "--augment",
        "invert",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("3 classes, 4x3 pixels, 1 channel, resize squash"),
        "{out}"
    );
    assert_eq!(total_line(&out), vec!["total", "36", "6"], "{out}");
    assert!(out.contains("augmentation: invert"), "{out}");
    // --max-per-class 0 would keep nothing: refused by the flag's parser.
    let (code, _, err) = netc(&[
        "data",
        "create",
        s(&src),
        "--out",
        s(&dir.path().join("none")),
        "--max-per-class",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value '0' for '--max-per-class"),
        "{err}"
    );
    // Not overwritten without --force: exit 2, and the message says what to do.
    let (code, _, err) = netc(&["data", "create", s(&src), "--out", s(&ds), "--size", "4x3"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = netc(&[
        "data",
        "create",
        s(&src),
        "--out",
        s(&ds),
        "--size",
        "4x3",
        "--force",
        "--resize",
        "half_crop",
    ]);
    assert_eq!(code, 0, "{err}");

    let shown = dir.path().join("shown");
    let (code, out, err) = netc(&["data", "show", s(&ds), "--out", s(&shown), "--samples", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 classes, 4x3 pixels, 1 channel, resize half_crop"),
        "{out}"
    );
    assert_eq!(total_line(&out), vec!["total", "18", "6"], "{out}");
    let grid = image::open(shown.join("samples-train.png")).unwrap();
    // Three rows of 4-pixel tiles; three columns of 3-pixel tiles after the names' margin.
    assert_eq!(grid.height(), 3 * (4 + 2) + 2);
    assert!(grid.width() > 3 * (3 + 2) + 2, "{}", grid.width());
    let mean = image::open(shown.join("mean.png")).unwrap();
    assert_eq!((mean.width(), mean.height()), (3, 4));
    assert!(shown.join("samples-val.png").is_file());
    // Pictures already there are not replaced without --force.
    std::fs::write(shown.join("mean.png"), b"mine").unwrap();
    let (code, _, err) = netc(&["data", "show", s(&ds), "--out", s(&shown)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already has mean.png, samples-train.png"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(shown.join("mean.png")).unwrap(), b"mine");
    let (code, _, err) = netc(&["data", "show", s(&ds), "--out", s(&shown), "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(image::open(shown.join("mean.png")).is_ok());

    let exported = dir.path().join("exported");
    let (code, out, err) = netc(&["data", "export", s(&ds), "--out", s(&exported)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 24 PNG files"), "{out}");
    let n = std::fs::read_dir(exported.join("train").join("2"))
        .unwrap()
        .count();
    assert_eq!(n, 6);
    let (code, _, err) = netc(&["data", "export", s(&ds), "--out", s(&exported)]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn cli_bad_input_exits() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("imgs");
    make_folders(&src, &[("only", 5)]);
    let out = dir.path().join("ds");
    // One class: a problem with the data, exit 1.
    let (code, _, err) = netc(&["data", "create", s(&src), "--out", s(&out), "--size", "4x6"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("at least 2"), "{err}");
    assert!(!out.exists());
    // An unreadable image is listed and skipped; --strict makes it fatal.
    make_folders(&src, &[("second", 4)]);
    std::fs::write(src.join("second").join("bad.jpg"), b"garbage").unwrap();
    let (code, stdout, err) = netc(&["data", "create", s(&src), "--out", s(&out), "--size", "4x6"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("bad.jpg"), "{err}");
    assert!(stdout.contains("skipped: 1 unreadable image"), "{stdout}");
    let (code, _, err) = netc(&[
        "data",
        "create",
        s(&src),
        "--out",
        s(&dir.path().join("ds2")),
        "--size",
        "4x6",
        "--strict",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.jpg"), "{err}");
    // From a list file, the unreadable image's line is named too.
    let list = dir.path().join("list.txt");
    let mut lines: Vec<String> = std::fs::read_dir(src.join("only"))
        .unwrap()
        .map(|e| format!("{} 0", e.unwrap().path().display()))
        .collect();
    lines.push(String::new());
    lines.push(format!(
        "{} 1",
        src.join("second").join("bad.jpg").display()
    ));
    for e in std::fs::read_dir(src.join("second")).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("bad.jpg") {
            lines.push(format!("{} 1", p.display()));
        }
    }
    std::fs::write(&list, lines.join("\n")).unwrap();
    let (code, _, err) = netc(&[
        "data",
        "create",
        s(&list),
        "--out",
        s(&dir.path().join("ds3")),
        "--size",
        "4x6",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("bad.jpg (") && err.contains("list.txt:7)"),
        "{err}"
    );
    // Usage errors exit 2.
    let (code, _, err) = netc(&[
        "data",
        "create",
        s(&src),
        "--out",
        s(&out),
        "--size",
        "4by6",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HEIGHTxWIDTH"), "{err}");
    let (code, _, err) = netc(&["data", "show", s(&dir.path().join("nowhere"))]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );
    // A corrupt IDX file: exit 1, naming the file.
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    make_idx(&m, &[3, 3], None);
    let f = m.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 1]).unwrap();
    let (code, _, err) = netc(&["data", "show", s(&m), "--out", s(&dir.path().join("x"))]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn separate_validation_source() {
    let dir = tempfile::tempdir().unwrap();
    let (tr, va) = (dir.path().join("tr"), dir.path().join("va"));
    make_folders(&tr, &[("a", 5), ("b", 6)]);
    make_folders(&va, &[("a", 2), ("b", 3)]);
    let o = Options {
        src: tr,
        val_src: Some(va.clone()),
        height: 4,
        width: 6,
        ..Options::default()
    };
    let (ds, _) = create::build(&o).unwrap();
    assert_eq!(ds.train.counts(2), vec![5, 6]);
    assert_eq!(ds.val.as_ref().unwrap().counts(2), vec![2, 3]);
    assert!(ds
        .val
        .as_ref()
        .unwrap()
        .sources
        .iter()
        .all(|s| s.starts_with(va.to_str().unwrap())));
    // A class the training source lacks.
    make_folders(&va, &[("zebra", 2)]);
    let msg = format!("{}", create::build(&o).unwrap_err());
    assert!(msg.contains("zebra"), "{msg}");
}

#[test]
fn a_netc_dataset_is_a_source_too() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[4, 5], Some(2));
    let ds_path = dir.path().join("ds");
    let (ds, _) = create::create(&opts(dir.path()), &ds_path, Encoding::Raw, false).unwrap();
    // Same size: the same images (in a new order), and its own val split is kept.
    let (same, _) = create::build(&Options {
        src: ds_path.clone(),
        ..opts(dir.path())
    })
    .unwrap();
    assert_eq!(content(&same.train), content(&ds.train));
    assert_eq!(
        content(same.val.as_ref().unwrap()),
        content(ds.val.as_ref().unwrap())
    );
    assert_eq!(
        same.info.get("source_kind").and_then(|v| v.as_str()),
        Some("netc-dataset")
    );
    // Grey → RGB repeats each plane; resizing works from memory as from files.
    let o = Options {
        src: ds_path,
        channels: 3,
        height: 8,
        width: 6,
        augment: vec![Augment::Invert],
        ..Options::default()
    };
    let (rgb, _) = create::build(&o).unwrap();
    assert_eq!((rgb.channels, rgb.height, rgb.width), (3, 8, 6));
    assert_eq!(rgb.train.len(), 18);
    let img = rgb.train.image(0);
    assert_eq!(img.len(), 3 * 48);
    assert_eq!(&img[..48], &img[48..96]);
    assert_eq!(&img[..48], &img[96..]);
}

#[test]
fn force_replaces_only_datasets_and_idx_folders_open_with_t10k_as_val() {
    let dir = tempfile::tempdir().unwrap();
    make_idx(dir.path(), &[3, 4], Some(2));
    let precious = dir.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("thesis.txt"), b"keep me").unwrap();
    let msg = format!(
        "{}",
        create::create(&opts(dir.path()), &precious, Encoding::Raw, true).unwrap_err()
    );
    assert!(msg.contains("not a netc dataset"), "{msg}");
    assert_eq!(
        std::fs::read(precious.join("thesis.txt")).unwrap(),
        b"keep me"
    );
    // The IDX folder itself: train-* for training, t10k-* for validation, labels 0..=max.
    let ds = data::open(dir.path()).unwrap();
    assert_eq!(ds.labels, vec!["0", "1"]);
    assert_eq!(ds.train.counts(2), vec![3, 4]);
    assert_eq!(ds.val.as_ref().unwrap().counts(2), vec![2, 2]);
    assert_eq!(
        ds.val.as_ref().unwrap().sources[1],
        "t10k-images-idx3-ubyte#1"
    );
    // A single IDX file given as the path opens its folder.
    let again = data::open(&dir.path().join("train-labels-idx1-ubyte")).unwrap();
    assert_eq!(again.train, ds.train);
}

/// IDX files carry no class list (the classes are 0..=the largest label), so one damaged
/// label byte makes hundreds of empty classes: netc says which file and item.
#[test]
fn a_damaged_idx_label_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(
        &dir.path().join("train-images-idx3-ubyte"),
        2051,
        &[4, 2, 2],
        &[7; 16],
    );
    write_idx(
        &dir.path().join("train-labels-idx1-ubyte"),
        2049,
        &[4],
        &[1, 0, 200, 1],
    );
    let out = dir.path().join("show");
    let (code, _, err) = netc(&[
        "data",
        "show",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("train-labels-idx1-ubyte: label 200 (item 2) makes 201 classes, 198 of them without images"),
        "{err}"
    );
    // Labels 0 and 1 only: every class has images, nothing to say.
    write_idx(
        &dir.path().join("train-labels-idx1-ubyte"),
        2049,
        &[4],
        &[1, 0, 0, 1],
    );
    let (code, _, err) = netc(&[
        "data",
        "show",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("show2").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// Ctrl-C during `data export` leaves no half folder (a later `data create` read one as a
/// whole dataset): the export goes to a temporary folder that is removed at the signal, or
/// renamed when complete. Whichever way the race goes, the outcome is checked.
#[cfg(unix)]
#[test]
fn an_interrupted_export_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exported");
    for delay_ms in [150u64, 400] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["data", "export"])
            .arg(crate_root().join("specs/data/mnist-small"))
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: kill with a child's process id.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        let left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        // Whatever the timing: either no folder at all, or the whole export (the signal
        // may come after its rename); never a part, nor a temporary folder.
        match done.status.code() {
            // The signal came before anything was written (still reading the dataset, no
            // handler yet): the default action ended netc.
            None | Some(0) | Some(130) => {}
            other => panic!("exit {other:?}: {err}"),
        }
        if out.exists() {
            assert_eq!(left, vec!["exported".to_string()], "{err}");
            assert_eq!(walk_count(&out), 12_002, "a complete export");
            std::fs::remove_dir_all(&out).unwrap();
        } else {
            assert!(left.is_empty(), "{left:?} {err}");
            assert_ne!(done.status.code(), Some(0), "{err}");
            if done.status.code() == Some(130) {
                assert!(err.contains("interrupted: removed the unfinished"), "{err}");
            }
        }
    }
}

#[cfg(unix)]
fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk_count(&p)
            } else {
                1
            }
        })
        .sum()
}
