//! `InnerProduct`: a fully connected layer over everything from `axis` on (Caffe's
//! flattening), `y = x·Wᵀ + b` with W stored `num_output × K`.

use super::filler::Filler;
use super::{
    canonical_axis, first, param_mults, positive, span_of, Arity, Kind, Layer, LayerError,
    LayerType, Shape, ShapeCtx,
};
use crate::layers::filler::learned;
use rayon::prelude::*;

use crate::engine::kernels::{matrix_product, rows_dot, Isa, PackedA};
use crate::engine::{Blob, Op, Param, Rng};
use crate::spec::LayerSpec;

pub static TYPE: LayerType = LayerType {
    name: "InnerProduct",
    kind: Kind::InnerProduct,
    bottoms: Arity::Exactly(1),
    tops: Arity::Exactly(1),
    in_place: false,
    runnable: true,
    build: |spec| Ok(Box::new(InnerProduct::parse(spec)?)),
};

#[derive(Debug, Clone)]
pub struct InnerProduct {
    /// `None` when the spec leaves it to the dataset's class count (DIGITS' LeNet).
    pub num_output: Option<usize>,
    pub bias_term: bool,
    pub axis: i128,
    pub transpose: bool,
    pub weight_filler: Filler,
    pub bias_filler: Filler,
    pub mults: Vec<(f32, f32)>,
}

impl InnerProduct {
    fn parse(spec: &LayerSpec) -> Result<InnerProduct, LayerError> {
        let empty = crate::spec::Message::default();
        let p = spec.msg.msg("inner_product_param").unwrap_or(&empty);
        let bias_term = p.boolean("bias_term").unwrap_or(true);
        let transpose = p.boolean("transpose").unwrap_or(false);
        if transpose {
            return Err(
                LayerError::new("netc does not run transposed InnerProduct weights yet")
                    .at(span_of(p, "transpose")),
            );
        }
        Ok(InnerProduct {
            num_output: positive(p, "num_output")?,
            bias_term,
            axis: p.int("axis").unwrap_or(1),
            transpose,
            weight_filler: Filler::parse(p, "weight_filler", Filler::default())?,
            bias_filler: Filler::parse(p, "bias_filler", Filler::default())?,
            mults: param_mults(spec, if bias_term { 2 } else { 1 }),
        })
    }

    /// (outer count M, inner count K, outputs N).
    fn dims(&self, b: &Shape, ctx: &ShapeCtx) -> Result<(usize, usize, usize), LayerError> {
        let axis = canonical_axis(self.axis, b.len())?;
        let m: usize = b[..axis].iter().product();
        let k: usize = b[axis..].iter().product();
        if k == 0 {
            return Err(LayerError::new("InnerProduct on an empty input"));
        }
        let n = self.num_output.or(ctx.num_classes).ok_or_else(|| {
            LayerError::new("num_output is not set and the number of classes is not known yet")
                .help("it is taken from the dataset at training time; or set inner_product_param { num_output: N }")
        })?;
        Ok((m, k, n))
    }
}

impl Layer for InnerProduct {
    fn ty(&self) -> &'static LayerType {
        &TYPE
    }
    fn shapes(&self, bottoms: &[Shape], ctx: &ShapeCtx) -> Result<Vec<Shape>, LayerError> {
        let b = first(bottoms)?;
        let (_, _, n) = self.dims(b, ctx)?;
        let axis = canonical_axis(self.axis, b.len())?;
        let mut top = b[..axis].to_vec();
        top.push(n);
        Ok(vec![top])
    }
    fn param_shapes(&self, bottoms: &[Shape], ctx: &ShapeCtx) -> Vec<Shape> {
        let Some(Ok((_, k, n))) = bottoms.first().map(|b| self.dims(b, ctx)) else {
            return vec![];
        };
        let mut p = vec![vec![n, k]];
        if self.bias_term {
            p.push(vec![n]);
        }
        p
    }
    fn macs(&self, bottoms: &[Shape], tops: &[Shape]) -> u64 {
        let (Some(b), Some(t)) = (bottoms.first(), tops.first()) else {
            return 0;
        };
        let Ok(axis) = canonical_axis(self.axis, b.len()) else {
            return 0;
        };
        // Per sample: the product over the axes after the batch.
        let k: usize = b[axis..].iter().product();
        let n = t.last().copied().unwrap_or(0);
        let per_sample_rows: usize = b[1.min(axis)..axis].iter().product();
        (per_sample_rows * k * n) as u64
    }
    fn details(&self) -> Vec<String> {
        vec![match self.num_output {
            Some(n) => format!("{n} outputs"),
            None => "outputs = classes".into(),
        }]
    }
    fn forward_candle(
        &self,
        bottoms: &[candle_core::Tensor],
        params: &[candle_core::Tensor],
        _train: bool,
    ) -> Result<Vec<candle_core::Tensor>, LayerError> {
        let x = &bottoms[0];
        let axis = canonical_axis(self.axis, x.rank())?;
        let lead = x.dims()[..axis].to_vec();
        let k: usize = x.dims()[axis..].iter().product();
        let m: usize = lead.iter().product();
        let mut y = x
            .reshape((m, k))
            .and_then(|x| x.matmul(&params[0].t()?))
            .map_err(super::candle_err)?;
        if let Some(b) = params.get(1) {
            y = y.broadcast_add(b).map_err(super::candle_err)?;
        }
        let mut shape = lead;
        shape.push(y.dims()[1]);
        Ok(vec![y.reshape(shape).map_err(super::candle_err)?])
    }
    fn lower(
        &self,
        bottoms: &[Shape],
        ctx: &ShapeCtx,
        rng: &mut Rng,
    ) -> Result<Box<dyn Op>, LayerError> {
        let b = first(bottoms)?;
        let (m, k, n) = self.dims(b, ctx)?;
        let params = learned(
            &self.param_shapes(bottoms, ctx),
            &[&self.weight_filler, &self.bias_filler],
            &self.mults,
            rng,
        );
        Ok(Box::new(InnerProductOp {
            m,
            k,
            n,
            params,
            threads: rayon::current_num_threads() > 1,
        }))
    }
}

#[derive(Debug)]
pub struct InnerProductOp {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub params: Vec<Param>,
    /// Whether the products spread over threads: not in a net built for one thread (a
    /// replica, which has a thread of its own).
    pub threads: bool,
}

/// The rows `0..m` split into one range per thread (one range without threads).
fn row_ranges(m: usize, threads: bool) -> Vec<std::ops::Range<usize>> {
    let parts = if threads {
        rayon::current_num_threads().clamp(1, m.max(1))
    } else {
        1
    };
    let (base, extra) = (m / parts, m % parts);
    let mut at = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            at += len;
            at - len..at
        })
        .collect()
}

/// `y = x·Wᵀ + b` for m rows of k inputs and n outputs on the kernels of
/// [`crate::engine::kernels`]: the forward pass as products of rows (no rearranged copy
/// of the weights), the gradients as products over column panels of `x` and `W` read in
/// place. With `threads`, the rows of each result are split over the threads.
impl Op for InnerProductOp {
    fn forward(&mut self, bottoms: &[&Blob], tops: &mut [&mut Blob], _train: bool) {
        let (m, k, n) = (self.m, self.k, self.n);
        let isa = Isa::detect();
        let w = &self.params[0].blob.data;
        let x = &bottoms[0].data;
        let y = &mut tops[0].data;
        let ranges = row_ranges(m, self.threads);
        let mut ys: Vec<&mut [f32]> = Vec::with_capacity(ranges.len());
        let mut rest = &mut y[..m * n];
        for r in &ranges {
            let (head, tail) = rest.split_at_mut(r.len() * n);
            ys.push(head);
            rest = tail;
        }
        ys.into_par_iter().zip(ranges).for_each(|(y, r)| {
            rows_dot(isa, (r.len(), n, k), &x[r.start * k..], k, w, k, y, n);
        });
        if let Some(b) = self.params.get(1) {
            for row in y.chunks_mut(n).take(m) {
                row.iter_mut().zip(&b.blob.data).for_each(|(v, b)| *v += b);
            }
        }
    }

    fn backward(&mut self, tops: &[&Blob], bottoms: &mut [&mut Blob], prop_down: &[bool]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let isa = Isa::detect();
        let dy = &tops[0].diff;
        let x = &mut *bottoms[0];
        // dW (n × k) = dYᵀ · X: rows of dW split over the threads, each with its rows of
        // dYᵀ packed.
        let ranges = row_ranges(n, self.threads);
        let mut dws: Vec<&mut [f32]> = Vec::with_capacity(ranges.len());
        let mut rest = &mut self.params[0].blob.diff[..n * k];
        for r in &ranges {
            let (head, tail) = rest.split_at_mut(r.len() * k);
            dws.push(head);
            rest = tail;
        }
        let xd = &x.data;
        dws.into_par_iter().zip(ranges).for_each(|(dw, r)| {
            let mut a = PackedA::default();
            a.pack(&dy[r.start..], 1, n, r.len(), m);
            matrix_product(isa, &a, xd, k, k, dw, k);
        });
        if let Some(b) = self.params.get_mut(1) {
            b.blob.diff.fill(0.0);
            for row in dy.chunks(n).take(m) {
                b.blob.diff.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
        }
        if prop_down.first().copied().unwrap_or(false) {
            // dX (m × k) = dY · W: rows of dX split over the threads.
            let w = &self.params[0].blob.data;
            let ranges = row_ranges(m, self.threads);
            let mut dxs: Vec<&mut [f32]> = Vec::with_capacity(ranges.len());
            let mut rest = &mut x.diff[..m * k];
            for r in &ranges {
                let (head, tail) = rest.split_at_mut(r.len() * k);
                dxs.push(head);
                rest = tail;
            }
            dxs.into_par_iter().zip(ranges).for_each(|(dx, r)| {
                let mut a = PackedA::default();
                a.pack(&dy[r.start * n..], n, 1, r.len(), n);
                matrix_product(isa, &a, w, k, k, dx, k);
            });
        }
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::check_op;
    use rand::SeedableRng;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::seed_from_u64(5);
        let mut params = vec![
            Param {
                blob: Blob::zeros(&[4, 6]),
                lr_mult: 1.0,
                decay_mult: 1.0,
            },
            Param {
                blob: Blob::zeros(&[4]),
                lr_mult: 1.0,
                decay_mult: 1.0,
            },
        ];
        Filler::Xavier(super::super::filler::VarianceNorm::FanIn).fill(
            &[4, 6],
            &mut params[0].blob.data,
            &mut rng,
        );
        params[1].blob.data = vec![0.1, -0.2, 0.3, 0.0];
        let mut op = InnerProductOp {
            m: 3,
            k: 6,
            n: 4,
            params,
            threads: false,
        };
        check_op(&mut op, &[vec![3, 6]], &[vec![3, 4]]);
        // Flattening: a 3×2×3 input is a 3×6 one.
        check_op(&mut op, &[vec![3, 2, 3]], &[vec![3, 4]]);
        // Rows split over the threads (the test pool has one or more).
        op.threads = true;
        check_op(&mut op, &[vec![3, 6]], &[vec![3, 4]]);
    }

    /// Sizes past one panel of 32 columns and one block of rows, with a partial last panel
    /// (LeNet's ip2 reads 500 inputs): every product against a plain loop.
    #[test]
    fn wide_products_match_plain_loops() {
        let (m, k, n) = (7, 75, 40);
        let val = |i: usize, s: f32| ((i as f32 + s) * 0.37).sin();
        let mut w = Blob::zeros(&[n, k]);
        w.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = val(i, 1.0));
        let mut op = InnerProductOp {
            m,
            k,
            n,
            params: vec![Param {
                blob: w,
                lr_mult: 1.0,
                decay_mult: 1.0,
            }],
            threads: true,
        };
        let mut x = Blob::zeros(&[m, k]);
        x.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = val(i, 2.0));
        let mut y = Blob::zeros(&[m, n]);
        op.forward(&[&x], &mut [&mut y], true);
        y.diff
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = val(i, 3.0));
        op.backward(&[&y], &mut [&mut x], &[true]);
        let w = &op.params[0].blob;
        let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        for i in 0..m {
            for j in 0..n {
                close(
                    y.data[i * n + j],
                    (0..k).map(|t| x.data[i * k + t] * w.data[j * k + t]).sum(),
                );
            }
            for t in 0..k {
                close(
                    x.diff[i * k + t],
                    (0..n).map(|j| y.diff[i * n + j] * w.data[j * k + t]).sum(),
                );
            }
        }
        for j in 0..n {
            for t in 0..k {
                close(
                    w.diff[j * k + t],
                    (0..m).map(|i| y.diff[i * n + j] * x.data[i * k + t]).sum(),
                );
            }
        }
    }

    #[test]
    fn lenet_ip1_shape_and_macs() {
        let ip = InnerProduct {
            num_output: Some(500),
            bias_term: true,
            axis: 1,
            transpose: false,
            weight_filler: Filler::default(),
            bias_filler: Filler::default(),
            mults: vec![(1.0, 1.0); 2],
        };
        let b = vec![64, 50, 4, 4];
        let ctx = ShapeCtx::default();
        assert_eq!(
            ip.shapes(std::slice::from_ref(&b), &ctx).unwrap(),
            vec![vec![64, 500]]
        );
        assert_eq!(
            ip.param_shapes(std::slice::from_ref(&b), &ctx),
            vec![vec![500, 800], vec![500]]
        );
        assert_eq!(ip.macs(&[b], &[vec![64, 500]]), 400_000);
    }
}
