//! Smaller Caffe types netc can shape but not train yet: Silence, ArgMax, Reduction, Tile,
//! Embed, Parameter, Im2col, SPP.

use super::deconvolution::ConvGeom;
use super::shape_only::{self, cannot_train, fmt_shape, param, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};

#[derive(Debug)]
pub enum Misc {
    Silence,
    ArgMax {
        top_k: usize,
        out_max_val: bool,
        axis: Option<i64>,
    },
    Reduction {
        op: String,
        axis: i64,
    },
    Tile {
        axis: i64,
        tiles: usize,
    },
    Embed {
        num_output: usize,
        input_dim: usize,
        bias: bool,
    },
    Parameter {
        shape: Shape,
    },
    Im2col {
        geom: ConvGeom,
    },
    Spp {
        height: usize,
    },
}

macro_rules! ty {
    ($stat:ident, $name:literal, $kind:expr, $b:expr, $t:expr, |$l:ident| $build:expr) => {
        pub static $stat: LayerType = LayerType {
            name: $name,
            kind: $kind,
            bottoms: $b,
            tops: $t,
            in_place: false,
            runnable: false,
            build: |$l| Ok(Box::new($build)),
        };
    };
}

ty!(
    SILENCE,
    "Silence",
    Kind::Other,
    Arity::AtLeast(1),
    Arity::Exactly(0),
    |_l| Misc::Silence
);
ty!(
    ARGMAX,
    "ArgMax",
    Kind::Other,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| {
        let m = param(l, "argmax_param");
        let top_k = uint(l, m, "top_k", 1)?;
        Misc::ArgMax {
            top_k,
            out_max_val: m.boolean("out_max_val").unwrap_or(false),
            axis: m.int("axis").map(|a| a as i64),
        }
    }
);
ty!(
    REDUCTION,
    "Reduction",
    Kind::Other,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| {
        let m = param(l, "reduction_param");
        Misc::Reduction {
            op: m.ident("operation").unwrap_or("SUM").to_string(),
            axis: shape_only::int(m, "axis", 0),
        }
    }
);
ty!(
    TILE,
    "Tile",
    Kind::Other,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| {
        let m = param(l, "tile_param");
        Misc::Tile {
            axis: shape_only::int(m, "axis", 1),
            tiles: uint(l, m, "tiles", 1)?,
        }
    }
);
ty!(
    EMBED,
    "Embed",
    Kind::InnerProduct,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| {
        let m = param(l, "embed_param");
        Misc::Embed {
            num_output: uint(l, m, "num_output", 0)?,
            input_dim: uint(l, m, "input_dim", 0)?,
            bias: m.boolean("bias_term").unwrap_or(true),
        }
    }
);
ty!(
    PARAMETER,
    "Parameter",
    Kind::Data,
    Arity::Exactly(0),
    Arity::Exactly(1),
    |l| {
        Misc::Parameter {
            shape: param(l, "parameter_param")
                .msg("shape")
                .map(|s| s.usizes("dim"))
                .unwrap_or_default(),
        }
    }
);
ty!(
    IM2COL,
    "Im2col",
    Kind::Other,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| Misc::Im2col {
        geom: ConvGeom::read_kernel_only(l)?
    }
);
ty!(
    SPP,
    "SPP",
    Kind::Pooling,
    Arity::Exactly(1),
    Arity::Exactly(1),
    |l| Misc::Spp {
        height: uint(l, param(l, "spp_param"), "pyramid_height", 1)?
    }
);

pub static ALL: &[&LayerType] = &[
    &SILENCE, &ARGMAX, &REDUCTION, &TILE, &EMBED, &PARAMETER, &IM2COL, &SPP,
];

impl Layer for Misc {
    fn ty(&self) -> &'static LayerType {
        match self {
            Misc::Silence => &SILENCE,
            Misc::ArgMax { .. } => &ARGMAX,
            Misc::Reduction { .. } => &REDUCTION,
            Misc::Tile { .. } => &TILE,
            Misc::Embed { .. } => &EMBED,
            Misc::Parameter { .. } => &PARAMETER,
            Misc::Im2col { .. } => &IM2COL,
            Misc::Spp { .. } => &SPP,
        }
    }
    fn shapes(&self, bottoms: &[Shape], _ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        if let Misc::Silence = self {
            return Ok(Vec::new());
        }
        if let Misc::Parameter { shape } = self {
            return Ok(vec![shape.clone()]);
        }
        let s = shape_only::first(bottoms)?;
        let out = match self {
            Misc::ArgMax {
                top_k,
                out_max_val,
                axis,
            } => match axis {
                Some(a) => {
                    let a = shape_only::axis(*a, s.len(), None)?;
                    if *top_k > s[a] {
                        return Err(LayerError::new(format!(
                            "top_k {top_k} is larger than axis {a} of {}",
                            fmt_shape(s)
                        )));
                    }
                    let mut o = s.clone();
                    o[a] = *top_k;
                    o
                }
                None => {
                    let per: u64 = shape_only::per_sample(s);
                    if *top_k as u64 > per {
                        return Err(LayerError::new(format!(
                            "top_k {top_k} is larger than the {per} values per sample"
                        )));
                    }
                    vec![s[0], if *out_max_val { 2 } else { 1 }, *top_k]
                }
            },
            Misc::Reduction { axis, .. } => s[..shape_only::axis(*axis, s.len(), None)?].to_vec(),
            Misc::Tile { axis, tiles } => {
                let a = shape_only::axis(*axis, s.len(), None)?;
                let mut o = s.clone();
                o[a] *= tiles;
                o
            }
            Misc::Embed { num_output, .. } => {
                let mut o = s.clone();
                o.push(*num_output);
                o
            }
            Misc::Im2col { geom } => {
                if s.len() != 4 {
                    return Err(LayerError::new(format!(
                        "Im2col needs N×C×H×W, not {}",
                        fmt_shape(s)
                    )));
                }
                let k: usize = geom.kernel.iter().product();
                let mut o = vec![s[0], s[1] * k];
                for i in 0..2 {
                    let ext = geom.dilation[i] * (geom.kernel[i] - 1) + 1;
                    let padded = s[2 + i] + 2 * geom.pad[i];
                    if padded < ext {
                        return Err(LayerError::new(format!(
                            "the kernel is larger than the padded input {}",
                            fmt_shape(s)
                        )));
                    }
                    o.push((padded - ext) / geom.stride[i] + 1);
                }
                o
            }
            Misc::Spp { height } => {
                // Levels 0..height pool into 1, 4, 16, ... bins per channel.
                let bins: usize = (0..*height).map(|l| 1usize << (2 * l)).sum();
                vec![s[0], s.get(1).copied().unwrap_or(1) * bins]
            }
            Misc::Silence | Misc::Parameter { .. } => unreachable!("handled above"),
        };
        Ok(vec![out])
    }
    fn param_shapes(&self, _bottoms: &[Shape], _ctx: &ShapeCtx) -> Vec<Shape> {
        match self {
            Misc::Embed {
                num_output,
                input_dim,
                bias,
            } => {
                let mut v = vec![vec![*input_dim, *num_output]];
                if *bias {
                    v.push(vec![*num_output]);
                }
                v
            }
            Misc::Parameter { shape } => vec![shape.clone()],
            _ => Vec::new(),
        }
    }
    fn details(&self) -> Vec<String> {
        match self {
            Misc::ArgMax { top_k, .. } => vec![format!("top {top_k}")],
            Misc::Reduction { op, axis } => vec![format!("{op} from axis {axis}")],
            Misc::Tile { tiles, .. } => vec![format!("×{tiles}")],
            Misc::Embed { num_output, .. } => vec![num_output.to_string()],
            Misc::Im2col { geom } => vec![geom.describe()],
            Misc::Spp { height } => vec![format!("pyramid {height}")],
            _ => Vec::new(),
        }
    }
    cannot_train!();
}
