//! The command line: one module per subcommand, each with its clap `Args` and a `run`.

use clap::{Parser, Subcommand};

pub mod check;
pub mod classify;
pub mod data;
pub mod summary;
pub mod time;
pub mod train;
pub mod upgrade;
pub mod visualize;

/// What a command returns: its exit code (0 fine, 1 problems found), or a report.
pub type CmdResult = miette::Result<u8>;

#[derive(Parser, Debug)]
#[command(
    name = "netc",
    version,
    about = "Compile, check, draw, train and run Caffe-style network specs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and validate specs; print every problem with its place in the file.
    Check(check::Args),
    /// Per-layer table of shapes, parameters and multiply-accumulates.
    Summary(summary::Args),
    /// Print an old-format (V0/V1) spec in the current `layer { }` format.
    Upgrade(upgrade::Args),
    /// Draw a spec with Graphviz (DOT, SVG, PNG).
    Visualize(visualize::Args),
    /// Build, export and inspect datasets.
    Data(data::Args),
    /// Train a network.
    Train(train::Args),
    /// Classify images with a trained run.
    Classify(classify::Args),
    /// Time each layer's forward and backward pass, like `caffe time`.
    Time(time::Args),
}

/// Usage and I/O problems exit with 2, everything else with 1.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(netc::usage))]
pub struct UsageError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

pub fn usage(message: impl Into<String>, help: Option<String>) -> miette::Report {
    miette::Report::new(UsageError {
        message: message.into(),
        help,
    })
}

pub fn exit_code_of(report: &miette::Report) -> u8 {
    if report.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}
