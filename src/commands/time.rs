//! `netc time`.

use super::CmdResult;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(super::usage("`netc time` is not built yet", None))
}
