//! `Data`: images and labels from a dataset (netc's dataset folders, MNIST IDX files or
//! class folders; see [`crate::data`]), with Caffe's `transform_param`. The engine fills its
//! tops before each forward pass; the layer itself only says what they hold.

use super::{positive, span_of, Arity, Kind, Layer, LayerError, LayerType, Shape, ShapeCtx};
use crate::engine::{Op, Rng};
use crate::spec::{LayerSpec, Message};

pub static DATA: LayerType = LayerType {
    name: "Data",
    kind: Kind::Data,
    bottoms: Arity::Exactly(0),
    tops: Arity::Range(1, 2),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(Data::parse(spec)?)),
};

/// Caffe's `TransformationParameter`, applied to u8 pixels as
/// `(pixel - mean) * scale`, after a crop and an optional mirror.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Transform {
    pub scale: f32,
    pub mean_values: Vec<f32>,
    pub mean_file: Option<String>,
    pub mirror: bool,
    pub crop_size: usize,
}

impl Transform {
    pub fn parse(layer: &Message) -> Result<Transform, LayerError> {
        let Some(t) = layer.msg("transform_param") else {
            return Ok(Transform {
                scale: 1.0,
                ..Transform::default()
            });
        };
        let scale = t.float("scale").unwrap_or(1.0) as f32;
        if !scale.is_finite() {
            return Err(
                LayerError::new("transform_param.scale must be finite").at(span_of(t, "scale"))
            );
        }
        let mean_values: Vec<f32> = t
            .floats("mean_value")
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let mean_file = t.str("mean_file").map(str::to_owned);
        if mean_file.is_some() && !mean_values.is_empty() {
            return Err(
                LayerError::new("transform_param has both mean_file and mean_value")
                    .at(span_of(t, "mean_file"))
                    .help("Caffe allows one of the two; remove one"),
            );
        }
        Ok(Transform {
            scale,
            mean_values,
            mean_file,
            mirror: t.boolean("mirror").unwrap_or(false),
            crop_size: t.usize("crop_size").unwrap_or(0),
        })
    }

    /// The C×H×W the network sees for images of `chw`.
    pub fn output_chw(&self, chw: [usize; 3]) -> Result<[usize; 3], LayerError> {
        if self.crop_size == 0 {
            return Ok(chw);
        }
        if self.crop_size > chw[1] || self.crop_size > chw[2] {
            return Err(LayerError::new(format!(
                "crop_size {} is larger than the images ({}x{})",
                self.crop_size, chw[1], chw[2]
            ))
            .help("lower crop_size or build the dataset with larger images"));
        }
        Ok([chw[0], self.crop_size, self.crop_size])
    }
}

/// What a data layer feeds, for the trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// `data_param.source` as written (relative to the spec file).
    pub source: Option<String>,
    pub batch_size: Option<usize>,
    pub transform: Transform,
    /// For `Input` layers: the shapes given in the spec.
    pub shapes: Vec<Shape>,
}

#[derive(Debug, Clone)]
pub struct Data {
    pub input: InputSpec,
    pub tops: usize,
}

impl Data {
    fn parse(spec: &LayerSpec) -> Result<Data, LayerError> {
        let (source, batch_size) = match spec.msg.msg("data_param") {
            Some(d) => (
                d.str("source").map(str::to_owned),
                positive(d, "batch_size")?,
            ),
            None => (None, None),
        };
        Ok(Data {
            input: InputSpec {
                source,
                batch_size,
                transform: Transform::parse(&spec.msg)?,
                shapes: vec![],
            },
            tops: spec.tops.len(),
        })
    }
}

impl Layer for Data {
    fn ty(&self) -> &'static LayerType {
        &DATA
    }
    fn shapes(&self, _bottoms: &[Shape], ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let batch = ctx.batch.or(self.input.batch_size).ok_or_else(|| {
            LayerError::new("the batch size is not known").help("set data_param { batch_size: 64 }")
        })?;
        let chw = ctx.data_chw.ok_or_else(|| {
            LayerError::new("the image size comes from the dataset, which is not open")
                .help("netc reads it from data_param.source when the dataset exists")
        })?;
        let [c, h, w] = self.input.transform.output_chw(chw)?;
        let mut shapes = vec![vec![batch, c, h, w]];
        if self.tops > 1 {
            shapes.push(vec![batch]);
        }
        Ok(shapes)
    }
    fn details(&self) -> Vec<String> {
        let mut d = Vec::new();
        if let Some(s) = &self.input.source {
            d.push(s.clone());
        }
        if let Some(b) = self.input.batch_size {
            d.push(format!("batch {b}"));
        }
        d
    }
    fn input(&self) -> Option<&InputSpec> {
        Some(&self.input)
    }
    fn lower(&self, _b: &[Shape], _c: &ShapeCtx, _r: &mut Rng) -> Result<Box<dyn Op>, LayerError> {
        Ok(Box::new(Feed))
    }
}

/// The op of a data layer: the engine writes its tops; forward and backward do nothing.
#[derive(Debug)]
pub struct Feed;

impl Op for Feed {
    fn forward(
        &mut self,
        _b: &[&crate::engine::Blob],
        _t: &mut [&mut crate::engine::Blob],
        _train: bool,
    ) {
    }
    fn backward(
        &mut self,
        _t: &[&crate::engine::Blob],
        _b: &mut [&mut crate::engine::Blob],
        _p: &[bool],
    ) {
    }
    fn is_feed(&self) -> bool {
        true
    }
}
