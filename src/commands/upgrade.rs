//! `netc upgrade SPEC`: prints a V0/V1 net (or one with legacy `input:` fields) in the
//! current `layer { }` format on stdout; problems go to stderr.

use std::path::PathBuf;

use super::CmdResult;
use crate::{front, schema, syntax, upgrade};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec to upgrade (`.prototxt` or `.net`).
    pub spec: PathBuf,
}

pub fn run(args: Args) -> CmdResult {
    let src = front::read_source(&args.spec)?;
    let (root, mut diags) = syntax::parse(&src);
    let Some(mut root) = root else {
        front::print_diagnostics(&diags);
        return Ok(1);
    };
    diags.extend(schema::check(&src, &mut root, schema::NET));
    let (net, up) = upgrade::upgrade_net(&src, &root);
    diags.extend(up);
    // The old-format warnings are what this command is for; say only what else is wrong
    // (errors of those codes too: three `input_dim` values printed a net with an empty
    // input_param, exit 0).
    let shown: Vec<_> = diags
        .into_iter()
        .filter(|d| {
            d.severity == crate::diag::Severity::Error
                || (d.code != "netc::old_format" && d.code != "netc::legacy_input")
        })
        .collect();
    front::print_diagnostics(&shown);
    if front::has_errors(&shown) {
        return Ok(1);
    }
    print!("{}", syntax::print(&net));
    Ok(0)
}
