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
