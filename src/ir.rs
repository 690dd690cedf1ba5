//! Stage 3: the graph IR. One node per layer of one phase, edges along blobs, every blob
//! carrying its inferred shape. Built by [`build`], which also runs validation and shape
//! inference and names the layer each problem belongs to.

use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::Diagnostic;
use crate::layers::{Layer, Shape, ShapeCtx};
use crate::spec::{NetSpec, NetState};

/// Index into [`NetIr::blobs`]. Blobs are in SSA form: an in-place layer (`top` equal to
/// its `bottom`) produces a new blob id with the same name, so every id has exactly one
/// producer and ids of a layer's bottoms are always smaller than ids of its tops.
pub type BlobId = usize;

#[derive(Debug, Clone)]
pub struct IrBlob {
    pub name: String,
    /// Full shape, batch first; `None` where it could not be inferred.
    pub shape: Option<Shape>,
    /// Index into [`NetIr::layers`] of the producer.
    pub producer: usize,
}

#[derive(Debug)]
pub struct IrLayer {
    /// Index into `NetSpec::layers`.
    pub spec_index: usize,
    pub name: String,
    pub layer: Box<dyn Layer>,
    pub bottoms: Vec<BlobId>,
    pub tops: Vec<BlobId>,
    /// Whether this layer writes into its bottom's name (ReLU in place).
    pub in_place: bool,
}

/// One phase of a net, validated, in execution (file) order.
#[derive(Debug)]
pub struct NetIr {
    pub state: NetState,
    pub layers: Vec<IrLayer>,
    pub blobs: Vec<IrBlob>,
    /// Layers as nodes (weights: layer index), blobs as edges (weights: blob id).
    pub graph: DiGraph<usize, BlobId>,
    pub nodes: Vec<NodeIndex>,
}

/// Builds and checks the net `spec` holds for `state`. Returns the IR when there was no
/// error (warnings may be present), and every diagnostic found either way.
pub fn build(spec: &NetSpec, state: &NetState, ctx: &ShapeCtx) -> (Option<NetIr>, Vec<Diagnostic>) {
    let _ = (spec, state, ctx);
    unimplemented_front_end()
}

fn unimplemented_front_end() -> (Option<NetIr>, Vec<Diagnostic>) {
    (None, Vec::new())
}
