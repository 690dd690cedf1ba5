//! Caffe's data layers beyond Data and Input, with their batch and crop sizes: ImageData,
//! WindowData, MemoryData, HDF5Data (its shapes live in the HDF5 files), DummyData. netc
//! cannot train with them yet.

use super::shape_only::{cannot_train, param, span_of, uint};
use super::{Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::spec::LayerSpec;

#[derive(Debug)]
pub struct Source {
    ty: super::shape_only::TypeRef,
    batch: Option<usize>,
    channels: Option<usize>,
    /// Height and width, when the spec fixes them (crop or resize).
    hw: Option<[usize; 2]>,
    /// Shapes given in full (DummyData, MemoryData).
    fixed: Option<Vec<Shape>>,
    tops: usize,
}

fn crop(l: &LayerSpec) -> Result<usize, LayerError> {
    uint(l, param(l, "transform_param"), "crop_size", 0)
}

impl Layer for Source {
    fn ty(&self) -> &'static LayerType {
        self.ty.0
    }
    fn shapes(&self, _bottoms: &[Shape], ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        if let Some(f) = &self.fixed {
            return Ok(f.clone());
        }
        if std::ptr::eq(self.ty.0, &HDF5_DATA) {
            return Err(LayerError::new(
                "HDF5Data's shapes come from its HDF5 files",
            ));
        }
        let n = self.batch.or(ctx.batch).unwrap_or(1);
        let c = self.channels.or(ctx.data_chw.map(|d| d[0]));
        let hw = self.hw.or(ctx.data_chw.map(|d| [d[1], d[2]]));
        let (Some(c), Some([h, w])) = (c, hw) else {
            return Err(LayerError::new("the image size comes from the data files")
                .help("set new_height/new_width or crop_size, or give a dataset"));
        };
        let mut v = vec![vec![n, c, h, w], vec![n]];
        v.truncate(self.tops.max(1));
        Ok(v)
    }
    fn details(&self) -> Vec<String> {
        match (self.batch, self.hw) {
            (Some(b), Some([h, w])) => vec![format!("batch {b}"), format!("{h}×{w}")],
            (Some(b), None) => vec![format!("batch {b}")],
            _ => Vec::new(),
        }
    }
    cannot_train!();
}

fn source(ty: &'static LayerType, l: &LayerSpec) -> Source {
    Source {
        ty: super::shape_only::TypeRef(ty),
        batch: None,
        channels: None,
        hw: None,
        fixed: None,
        tops: l.tops.len(),
    }
}

pub static IMAGE_DATA: LayerType = LayerType {
    name: "ImageData",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::Range(1, 2),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "image_data_param");
        let (nh, nw) = (uint(l, m, "new_height", 0)?, uint(l, m, "new_width", 0)?);
        if (nh == 0) != (nw == 0) {
            return Err(
                LayerError::new("new_height and new_width must be given together").at(span_of(
                    m,
                    "new_height",
                    &span_of(m, "new_width", &l.name_span),
                )),
            );
        }
        let c = crop(l)?;
        let hw = if c > 0 {
            Some([c, c])
        } else if nh > 0 {
            Some([nh, nw])
        } else {
            None
        };
        let color = m.boolean("is_color").unwrap_or(true);
        Ok(Box::new(Source {
            batch: Some(uint(l, m, "batch_size", 1)?),
            channels: Some(if color { 3 } else { 1 }),
            hw,
            ..source(&IMAGE_DATA, l)
        }))
    },
};

pub static WINDOW_DATA: LayerType = LayerType {
    name: "WindowData",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::Exactly(2),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "window_data_param");
        let c = match crop(l)? {
            0 => uint(l, m, "crop_size", 0)?,
            c => c,
        };
        let hw = (c > 0).then_some([c, c]);
        Ok(Box::new(Source {
            batch: Some(uint(l, m, "batch_size", 1)?),
            channels: Some(3),
            hw,
            ..source(&WINDOW_DATA, l)
        }))
    },
};

pub static MEMORY_DATA: LayerType = LayerType {
    name: "MemoryData",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::Exactly(2),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "memory_data_param");
        let mut dims = Vec::new();
        for f in ["batch_size", "channels", "height", "width"] {
            match uint(l, m, f, 0)? {
                0 => {
                    return Err(
                        LayerError::new(format!("memory_data_param needs a positive {f}"))
                            .at(span_of(m, f, &l.name_span)),
                    )
                }
                d => dims.push(d),
            }
        }
        let fixed = Some(vec![dims.clone(), vec![dims[0]]]);
        Ok(Box::new(Source {
            fixed,
            ..source(&MEMORY_DATA, l)
        }))
    },
};

pub static HDF5_DATA: LayerType = LayerType {
    name: "HDF5Data",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "hdf5_data_param");
        Ok(Box::new(Source {
            batch: Some(uint(l, m, "batch_size", 1)?),
            ..source(&HDF5_DATA, l)
        }))
    },
};

pub static DUMMY_DATA: LayerType = LayerType {
    name: "DummyData",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::AtLeast(1),
    in_place: false,
    runnable: false,
    build: |l| {
        let m = param(l, "dummy_data_param");
        let n = l.tops.len();
        let shapes: Vec<Shape> = m
            .msgs("shape")
            .into_iter()
            .map(|s| s.usizes("dim"))
            .collect();
        let legacy: Vec<Vec<usize>> = ["num", "channels", "height", "width"]
            .iter()
            .map(|f| m.usizes(f))
            .collect();
        let pick = |v: &Vec<usize>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let fixed: Vec<Shape> = if !shapes.is_empty() {
            if shapes.len() != 1 && shapes.len() != n {
                return Err(
                    LayerError::new(format!("{} shapes for {n} tops", shapes.len()))
                        .at(span_of(m, "shape", &l.name_span))
                        .help("give one shape, or one per top"),
                );
            }
            (0..n)
                .map(|i| shapes[if shapes.len() == 1 { 0 } else { i }].clone())
                .collect()
        } else if legacy.iter().all(|v| v.len() == 1 || v.len() == n) {
            (0..n)
                .map(|i| legacy.iter().map(|v| pick(v, i)).collect())
                .collect()
        } else {
            return Err(LayerError::new("dummy_data_param needs `shape { dim }` (or num/channels/height/width) for each top").at(l.name_span.clone()));
        };
        Ok(Box::new(Source {
            fixed: Some(fixed),
            ..source(&DUMMY_DATA, l)
        }))
    },
};

pub static ALL: &[&LayerType] = &[
    &IMAGE_DATA,
    &WINDOW_DATA,
    &MEMORY_DATA,
    &HDF5_DATA,
    &DUMMY_DATA,
];
