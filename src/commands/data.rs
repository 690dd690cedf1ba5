//! `netc data`.

use super::CmdResult;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(super::usage("`netc data` is not built yet", None))
}
