//! Caffe's schema (BVLC caffe.proto): messages, fields, scalar types, repeated-ness and
//! enums, and the check of a parsed [`Message`] tree against it.

use crate::diag::Diagnostic;
use crate::spec::{Message, Source};

/// The root message type of a net file.
pub const NET: &str = "NetParameter";
/// The root message type of a solver file.
pub const SOLVER: &str = "SolverParameter";

/// Checks `root` against message type `ty`, rewriting enum values given by number to their
/// names. Returns every problem found.
pub fn check(src: &Source, root: &mut Message, ty: &str) -> Vec<Diagnostic> {
    let _ = (src, root, ty);
    Vec::new()
}
