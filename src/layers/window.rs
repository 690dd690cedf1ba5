//! The sliding window shared by Convolution and Pooling: kernel, pad, stride and dilation,
//! given as `kernel_size` (one value or one per spatial axis) or as `kernel_h`/`kernel_w`.

use super::{span_of, LayerError};
use crate::spec::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub pad: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
}

/// One of kernel/pad/stride/dilation: `base` (repeated, 1 or 2 values) or `base_h`/`base_w`.
fn pair(
    p: &Message,
    base: &str,
    default: Option<usize>,
    allow_zero: bool,
) -> Result<Option<[usize; 2]>, LayerError> {
    let h_name = format!("{base}_h");
    let w_name = format!("{base}_w");
    let list = p.ints(base);
    let (h, w) = (p.int(&h_name), p.int(&w_name));
    let check = |v: i128, name: &str| -> Result<usize, LayerError> {
        if v < 0 || (!allow_zero && v == 0) || v > u32::MAX as i128 {
            let what = if allow_zero {
                "non-negative"
            } else {
                "positive"
            };
            return Err(
                LayerError::new(format!("{name} must be {what}, not {v}")).at(span_of(p, name))
            );
        }
        Ok(v as usize)
    };
    if h.is_some() || w.is_some() {
        if !list.is_empty() {
            return Err(LayerError::new(format!(
                "{base} is given both as {base}_size and as {h_name}/{w_name}"
            ))
            .at(span_of(p, &h_name))
            .help(format!(
                "keep one of the two forms (remove {base}_size or {h_name}/{w_name})"
            )));
        }
        let (Some(h), Some(w)) = (h, w) else {
            return Err(
                LayerError::new(format!("{h_name} and {w_name} must be given together"))
                    .at(span_of(p, if h.is_some() { &h_name } else { &w_name })),
            );
        };
        return Ok(Some([check(h, &h_name)?, check(w, &w_name)?]));
    }
    match list.len() {
        0 => Ok(default.map(|d| [d, d])),
        1 => {
            let v = check(list[0], base)?;
            Ok(Some([v, v]))
        }
        2 => Ok(Some([check(list[0], base)?, check(list[1], base)?])),
        n => Err(LayerError::new(format!(
            "{base} has {n} values; netc runs 2-D windows (1 or 2 values)"
        ))
        .at(span_of(p, base))),
    }
}

impl Window {
    /// Reads a window from `p` (`convolution_param` or `pooling_param`); `None` when no
    /// kernel is given.
    pub fn parse(p: &Message, dilation: bool) -> Result<Option<Window>, LayerError> {
        let Some(kernel) = pair_named(p)? else {
            return Ok(None);
        };
        let pad = pair(p, "pad", Some(0), true)?.unwrap_or([0, 0]);
        let stride = pair(p, "stride", Some(1), false)?.unwrap_or([1, 1]);
        let dilation = if dilation {
            pair(p, "dilation", Some(1), false)?.unwrap_or([1, 1])
        } else {
            [1, 1]
        };
        Ok(Some(Window {
            kernel,
            pad,
            stride,
            dilation,
        }))
    }
}

/// `kernel_size` with `kernel_h`/`kernel_w` as the alternative form.
fn pair_named(p: &Message) -> Result<Option<[usize; 2]>, LayerError> {
    let list = p.ints("kernel_size");
    let (h, w) = (p.int("kernel_h"), p.int("kernel_w"));
    if (h.is_some() || w.is_some()) && !list.is_empty() {
        return Err(LayerError::new(
            "the kernel is given both as kernel_size and as kernel_h/kernel_w",
        )
        .at(span_of(p, "kernel_size"))
        .help("keep one of the two forms"));
    }
    if h.is_some() || w.is_some() {
        let (Some(h), Some(w)) = (h, w) else {
            return Err(
                LayerError::new("kernel_h and kernel_w must be given together").at(span_of(
                    p,
                    if h.is_some() { "kernel_h" } else { "kernel_w" },
                )),
            );
        };
        if h <= 0 || w <= 0 {
            return Err(
                LayerError::new(format!("the kernel must be positive, not {h}x{w}"))
                    .at(span_of(p, "kernel_h")),
            );
        }
        return Ok(Some([h as usize, w as usize]));
    }
    let bad = |v: i128| v <= 0 || v > u32::MAX as i128;
    match list.as_slice() {
        [] => Ok(None),
        [k] if !bad(*k) => Ok(Some([*k as usize, *k as usize])),
        [a, b] if !bad(*a) && !bad(*b) => Ok(Some([*a as usize, *b as usize])),
        [_] | [_, _] => Err(LayerError::new("kernel_size must be positive")
            .at(span_of(p, "kernel_size"))
            .help("a kernel of size 0 has no output; give kernel_size: 1 or more")),
        _ => Err(
            LayerError::new("kernel_size has more than 2 values; netc runs 2-D windows")
                .at(span_of(p, "kernel_size")),
        ),
    }
}

/// Output extent of a convolution along one axis (Caffe: floor division).
pub fn conv_out(
    input: usize,
    k: usize,
    pad: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let ext = dilation * (k - 1) + 1;
    (input + 2 * pad).checked_sub(ext).map(|d| d / stride + 1)
}
