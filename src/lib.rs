//! netc: a declarative network-spec compiler and runner.
//!
//! The pipeline, one module per stage:
//! text → [`syntax`] (pest parse tree → [`spec::Message`] tree with spans) →
//! [`upgrade`] (V0/V1 → current) → [`spec`] (typed net) → [`ir`] (petgraph IR, validation,
//! shape inference; layer types in [`layers`]) → {[`dot`], [`engine`]} → [`train`] /
//! [`classify`]. Datasets live in [`data`].

pub mod analysis;
pub mod classify;
pub mod commands;
pub mod data;
pub mod diag;
pub mod dot;
pub mod engine;
pub mod feed;
pub mod front;
pub mod ir;
pub mod layers;
pub mod schema;
pub mod solver;
pub mod spec;
pub mod syntax;
pub mod train;
pub mod upgrade;
