//! `netc classify`.

use super::CmdResult;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(super::usage("`netc classify` is not built yet", None))
}
