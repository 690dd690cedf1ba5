//! Snapshots: learned blobs as safetensors (`<layer>.<blob index>`, Caffe's blob order),
//! with the solver state beside them, written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::data::io_err;
use crate::engine::net::Net;
use crate::solver::SolverState;

pub use crate::data::write_atomic;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn serialize(
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
) -> miette::Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<_, _>>()
        .map_err(|e| miette::miette!("could not build a snapshot tensor: {e}"))?;
    safetensors::serialize(views, Some(meta))
        .map_err(|e| miette::miette!("could not serialize a snapshot: {e}"))
}

/// A snapshot file's name: epoch and iteration, sortable.
pub fn snapshot_name(epoch: usize, iter: u64) -> String {
    format!("snapshot-e{epoch:03}-i{iter:07}.safetensors")
}

/// Saves the net's learned blobs and the solver state (`.state` companion file).
pub fn save(
    dir: &Path,
    net: &Net,
    state: &SolverState,
    meta: &HashMap<String, String>,
    epoch: usize,
) -> miette::Result<PathBuf> {
    let weights: Vec<_> = net
        .params()
        .map(|(l, i, p)| {
            (
                format!("{l}.{i}"),
                p.blob.shape.clone(),
                f32_bytes(&p.blob.data),
            )
        })
        .collect();
    let path = dir.join(snapshot_name(epoch, state.iter));
    let mut m = meta.clone();
    m.insert("epoch".into(), epoch.to_string());
    m.insert("iteration".into(), state.iter.to_string());
    write_atomic(
        &path.with_extension("state"),
        &serialize(state_tensors(state), m.clone())?,
    )?;
    write_atomic(&path, &serialize(weights, m)?)?;
    Ok(path)
}

fn state_tensors(state: &SolverState) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut t = Vec::new();
    for (i, h) in state.history.iter().enumerate() {
        t.push((format!("history.{i:04}"), vec![h.len()], f32_bytes(h)));
    }
    for (i, h) in state.history2.iter().enumerate() {
        t.push((format!("history2.{i:04}"), vec![h.len()], f32_bytes(h)));
    }
    t
}

/// Learned blobs by name, and the file's metadata.
pub struct Weights {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: HashMap<String, String>,
}

pub fn load(path: &Path) -> miette::Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| io_err("read the snapshot", path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        // A safetensors file starts with its header's length and then the header's `{`.
        let started_like_one = bytes.len() > 8 && bytes[8] == b'{';
        crate::commands::usage(
            format!("{} is not a readable snapshot: {e}", path.display()),
            Some(if started_like_one {
                "it may be truncated; use an older snapshot of the run (`netc classify RUN --epoch N` picks one)".into()
            } else {
                "it is not a netc snapshot: give a run folder or one of its snapshot-e*.safetensors files".into()
            }),
        )
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| miette::miette!("{}: bad snapshot header: {e}", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(miette::miette!(
                "{}: tensor {name} is not f32",
                path.display()
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let bad = data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(crate::commands::usage(
                format!(
                    "{}: {name} holds {bad} values that are not finite (NaN or infinite)",
                    path.display()
                ),
                Some("the run diverged or the file was changed: use an older snapshot of the run, or train again with a lower learning rate".into()),
            ));
        }
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    Ok(Weights {
        tensors,
        meta: header.metadata().clone().unwrap_or_default(),
    })
}

/// What [`apply`] did: layers copied, and those not copied with the reason.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub copied: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

/// Copies into `net` the layers whose blobs all have a blob of the same name and shape in
/// the snapshot; a layer with one blob missing or of another shape keeps all its own (a
/// bias copied without its weights would pair with weights it was not trained with).
pub fn apply(w: &Weights, net: &mut Net) -> CopyReport {
    let mut r = CopyReport::default();
    let mut layers: Vec<(String, Vec<(String, &mut crate::engine::Param)>)> = Vec::new();
    for (l, i, p) in net.params_mut() {
        let key = format!("{l}.{i}");
        match layers.last_mut() {
            Some((name, blobs)) if name == l => blobs.push((key, p)),
            _ => layers.push((l.to_string(), vec![(key, p)])),
        }
    }
    for (layer, blobs) in layers {
        let why = |key: &str, p: &crate::engine::Param| match w.tensors.get(key) {
            Some((shape, _)) if *shape == p.blob.shape => None,
            Some((shape, _)) => Some(format!(
                "shape {:?} in the snapshot, {:?} here",
                shape, p.blob.shape
            )),
            None => Some("not in the snapshot".to_string()),
        };
        let bad: Vec<(String, String)> = blobs
            .iter()
            .filter_map(|(k, p)| why(k, p).map(|w| (k.clone(), w)))
            .collect();
        if bad.is_empty() {
            for (key, p) in blobs {
                if let Some((_, data)) = w.tensors.get(&key) {
                    p.blob.data.copy_from_slice(data);
                }
                r.copied.push(key);
            }
            continue;
        }
        for (key, _) in &blobs {
            let reason = match bad.iter().find(|(k, _)| k == key) {
                Some((_, w)) => w.clone(),
                None => format!(
                    "kept with the rest of layer {layer} ({} {})",
                    bad[0].0, bad[0].1
                ),
            };
            r.skipped.push((key.clone(), reason));
        }
    }
    r
}

/// Restores the solver state saved beside a snapshot.
pub fn load_state(
    snapshot: &Path,
    state: &mut SolverState,
) -> miette::Result<HashMap<String, String>> {
    let w = load(&snapshot.with_extension("state"))?;
    for (i, h) in state.history.iter_mut().enumerate() {
        if let Some((_, d)) = w.tensors.get(&format!("history.{i:04}")) {
            if d.len() == h.len() {
                h.copy_from_slice(d);
            }
        }
    }
    for (i, h) in state.history2.iter_mut().enumerate() {
        if let Some((_, d)) = w.tensors.get(&format!("history2.{i:04}")) {
            if d.len() == h.len() {
                h.copy_from_slice(d);
            }
        }
    }
    state.iter = w
        .meta
        .get("iteration")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(w.meta)
}

/// The snapshots in a run folder, oldest first, as (epoch, iteration, path).
pub fn list(dir: &Path) -> Vec<(usize, u64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name
            .strip_prefix("snapshot-e")
            .and_then(|r| r.strip_suffix(".safetensors"))
        else {
            continue;
        };
        let Some((ep, it)) = rest.split_once("-i") else {
            continue;
        };
        if let (Ok(ep), Ok(it)) = (ep.parse(), it.parse()) {
            out.push((ep, it, e.path()));
        }
    }
    out.sort_by_key(|(_, it, _)| *it);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: miette::Report) -> String {
        format!(
            "{e} / {}",
            e.help().map(|h| h.to_string()).unwrap_or_default()
        )
    }

    /// A snapshot is read back as written; one with a weight that is not finite is refused
    /// naming the blob (classify scored every image as class 0 with it); a damaged one
    /// and a file that never was a snapshot get their own hints.
    #[test]
    fn snapshots_that_cannot_serve_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, w: &[f32]| {
            let t = vec![("ip2.0".to_string(), vec![2, 2], f32_bytes(w))];
            let path = dir.path().join(name);
            std::fs::write(&path, serialize(t, HashMap::new()).unwrap()).unwrap();
            path
        };
        let good = write("good.safetensors", &[1.0, -2.0, 0.5, 0.0]);
        let w = load(&good).expect("reads");
        assert_eq!(w.tensors["ip2.0"], (vec![2, 2], vec![1.0, -2.0, 0.5, 0.0]));

        let nan = write("nan.safetensors", &[1.0, f32::NAN, f32::INFINITY, 0.0]);
        let e = message(load(&nan).err().expect("refused"));
        assert!(
            e.contains("nan.safetensors: ip2.0 holds 2 values that are not finite")
                && e.contains("use an older snapshot"),
            "{e}"
        );

        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        let e = message(load(&cut).err().expect("refused"));
        assert!(
            e.contains("is not a readable snapshot") && e.contains("it may be truncated"),
            "{e}"
        );

        let text = dir.path().join("README.md");
        std::fs::write(&text, "# not a snapshot\n").unwrap();
        let e = message(load(&text).err().expect("refused"));
        assert!(
            e.contains("is not a readable snapshot") && e.contains("it is not a netc snapshot"),
            "{e}"
        );
    }
}
