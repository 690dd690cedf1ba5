//! The solver: Caffe's SolverParameter (from YAML or a Caffe `solver.prototxt`), its
//! learning-rate policies and its update rules, applied in place to a net's parameters.

use std::path::Path;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::engine::Param;
use crate::spec::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SolverType {
    #[serde(rename = "SGD", alias = "sgd")]
    Sgd,
    #[serde(rename = "Nesterov", alias = "nesterov", alias = "NESTEROV")]
    Nesterov,
    #[serde(rename = "AdaGrad", alias = "adagrad", alias = "ADAGRAD")]
    AdaGrad,
    #[serde(rename = "RMSProp", alias = "rmsprop", alias = "RMSPROP")]
    RmsProp,
    #[serde(rename = "AdaDelta", alias = "adadelta", alias = "ADADELTA")]
    AdaDelta,
    #[serde(rename = "Adam", alias = "adam", alias = "ADAM")]
    Adam,
}

/// Caffe's solver settings, with DIGITS' epochs; field names as in `solver.prototxt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolverConfig {
    #[serde(rename = "type")]
    pub solver_type: SolverType,
    pub base_lr: f64,
    pub momentum: f64,
    pub momentum2: f64,
    pub delta: f64,
    pub rms_decay: f64,
    pub weight_decay: f64,
    pub regularization_type: String,
    pub clip_gradients: f64,
    pub lr_policy: String,
    pub gamma: f64,
    pub power: f64,
    pub stepsize: u64,
    pub stepvalue: Vec<u64>,
    /// Training length in epochs (passes over the training split), as DIGITS counts.
    pub epochs: Option<f64>,
    /// Training length in iterations; used when `epochs` is not set.
    pub max_iter: Option<u64>,
    /// Snapshot every this many epochs (and at the end).
    pub snapshot_interval: f64,
    /// Validate every this many epochs.
    pub validation_interval: f64,
    /// Overrides the data layers' batch size.
    pub batch_size: Option<usize>,
    pub random_seed: u64,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            solver_type: SolverType::Sgd,
            base_lr: 0.01,
            momentum: 0.0,
            momentum2: 0.999,
            delta: 1e-8,
            rms_decay: 0.99,
            weight_decay: 0.0,
            regularization_type: "L2".into(),
            clip_gradients: -1.0,
            lr_policy: "fixed".into(),
            gamma: 0.0,
            power: 0.0,
            stepsize: 0,
            stepvalue: vec![],
            epochs: None,
            max_iter: None,
            snapshot_interval: 1.0,
            validation_interval: 1.0,
            batch_size: None,
            random_seed: 1,
        }
    }
}

/// A solver setting that cannot work, said in the solver file's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct SolverError(pub String);

impl SolverError {
    /// What to do: for a misspelt field (serde's "unknown field `x`, expected one of
    /// ..."), the nearest field by edit distance; always where the fields are described.
    pub fn help(&self) -> String {
        let fields = "see specs/lenet.solver.yaml for the fields and their meaning";
        let Some(rest) = self.0.strip_prefix("unknown field `") else {
            return fields.into();
        };
        let Some((field, expected)) = rest.split_once('`') else {
            return fields.into();
        };
        let lower = field.to_ascii_lowercase();
        let nearest = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|c| (strsim::damerau_levenshtein(&lower, c), c))
            .filter(|&(d, c)| d <= 2.max(c.len() / 4))
            .min_by_key(|&(d, _)| d);
        match nearest {
            Some((_, c)) => format!("did you mean `{c}`? ({fields})"),
            None => fields.into(),
        }
    }
}

impl SolverConfig {
    /// Reads a YAML solver (`.yaml`/`.yml`).
    pub fn from_yaml(text: &str) -> Result<SolverConfig, SolverError> {
        let c: SolverConfig = serde_yaml::from_str(text).map_err(|e| SolverError(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads the fields netc uses from a parsed Caffe `solver.prototxt`. Settings that
    /// only Caffe's own runner uses (net paths, display, solver_mode) are ignored.
    pub fn from_message(m: &Message) -> Result<SolverConfig, SolverError> {
        let mut c = SolverConfig::default();
        let f = |name: &str| m.float(name);
        if let Some(t) = m.str("type").or(m.ident("solver_type")) {
            c.solver_type = serde_yaml::from_str(t).map_err(|_| {
                SolverError(format!("unknown solver type {t}: use SGD, Nesterov, AdaGrad, RMSProp, AdaDelta or Adam"))
            })?;
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = f(stringify!($field)) { c.$field = v; } )* };
        }
        set!(
            base_lr,
            momentum,
            momentum2,
            delta,
            rms_decay,
            weight_decay,
            clip_gradients,
            gamma,
            power
        );
        if let Some(v) = m.str("lr_policy") {
            c.lr_policy = v.to_owned();
        }
        if let Some(v) = m.str("regularization_type") {
            c.regularization_type = v.to_owned();
        }
        if let Some(v) = m.int("stepsize") {
            c.stepsize = v.max(0) as u64;
        }
        c.stepvalue = m
            .ints("stepvalue")
            .into_iter()
            .map(|v| v.max(0) as u64)
            .collect();
        c.max_iter = m.int("max_iter").map(|v| v.max(0) as u64);
        if let Some(s) = m.int("random_seed") {
            if s >= 0 {
                c.random_seed = s as u64;
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Reads `path` by its extension: YAML, or a Caffe prototxt through the front end.
    pub fn load(path: &Path) -> miette::Result<SolverConfig> {
        let src = crate::front::read_source(path)?;
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let result = if is_yaml {
            SolverConfig::from_yaml(&src.text)
        } else {
            let (msg, diags) = crate::front::load_solver(&src);
            if diags
                .iter()
                .any(|d| d.severity == crate::diag::Severity::Error)
                || msg.is_none()
            {
                crate::front::print_diagnostics(&diags);
                return Err(miette::miette!(
                    "the solver file {} has errors",
                    path.display()
                ));
            }
            SolverConfig::from_message(&msg.unwrap_or_default())
        };
        result.map_err(|e| {
            crate::commands::usage(
                format!("bad solver file {}: {}", path.display(), e.0),
                Some(e.help()),
            )
        })
    }

    pub fn validate(&self) -> Result<(), SolverError> {
        let bad = |m: String| Err(SolverError(m));
        if !(self.base_lr.is_finite() && self.base_lr > 0.0) {
            return bad(format!(
                "base_lr must be a positive number, not {}",
                self.base_lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) && self.solver_type != SolverType::AdaDelta {
            return bad(format!("momentum must be in [0, 1), not {}", self.momentum));
        }
        if self.batch_size == Some(0) {
            return bad("batch_size must be at least 1".into());
        }
        if self.weight_decay < 0.0 {
            return bad("weight_decay must not be negative".into());
        }
        if !matches!(self.regularization_type.as_str(), "L1" | "L2") {
            return bad(format!(
                "regularization_type must be L1 or L2, not {}",
                self.regularization_type
            ));
        }
        let needs = |what: &str| SolverError(format!("lr_policy {} needs {what}", self.lr_policy));
        match self.lr_policy.as_str() {
            "fixed" => {}
            "step" if self.stepsize == 0 => return Err(needs("stepsize > 0 and gamma")),
            "multistep" if self.stepvalue.is_empty() => return Err(needs("stepvalue entries")),
            "poly" | "step" | "exp" | "inv" | "multistep" | "sigmoid" => {}
            other => {
                return bad(format!(
                "unknown lr_policy {other}: use fixed, step, multistep, exp, inv, poly or sigmoid"
            ))
            }
        }
        if let Some(e) = self.epochs {
            if !(e.is_finite() && e > 0.0) {
                return bad(format!("epochs must be positive, not {e}"));
            }
        }
        if self.snapshot_interval < 0.0 || self.validation_interval < 0.0 {
            return bad("snapshot_interval and validation_interval must not be negative".into());
        }
        Ok(())
    }

    /// Caffe's `GetLearningRate` at iteration `iter` of `max_iter`.
    pub fn learning_rate(&self, iter: u64, max_iter: u64) -> f64 {
        let (b, g, p, it) = (self.base_lr, self.gamma, self.power, iter as f64);
        match self.lr_policy.as_str() {
            "step" => b * g.powf((iter / self.stepsize.max(1)) as f64),
            "exp" => b * g.powf(it),
            "inv" => b * (1.0 + g * it).powf(-p),
            "multistep" => b * g.powi(self.stepvalue.iter().filter(|&&s| iter >= s).count() as i32),
            "poly" => b * (1.0 - it / max_iter.max(1) as f64).max(0.0).powf(p),
            "sigmoid" => b / (1.0 + (-g * (it - self.stepsize as f64)).exp()),
            _ => b,
        }
    }
}

/// The solver's state: per-parameter history buffers, allocated once.
#[derive(Debug, Clone, Default)]
pub struct SolverState {
    pub iter: u64,
    /// One entry per learned blob, in the net's order; Adam and AdaDelta use two.
    pub history: Vec<Vec<f32>>,
    pub history2: Vec<Vec<f32>>,
}

impl SolverState {
    pub fn new<'a>(params: impl Iterator<Item = &'a Param>) -> SolverState {
        let sizes: Vec<usize> = params.map(|p| p.blob.count()).collect();
        SolverState {
            iter: 0,
            history: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            history2: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }
}

/// One update of every parameter from its gradient (Caffe's `ApplyUpdate`), at `rate`.
/// Every step is elementwise except the gradient clipping's norm, so the blobs are cut into
/// chunks that the threads update in parallel, each chunk in one pass while it is in
/// cache (regularisation, then the solver's rule).
pub fn apply_update<'a>(
    cfg: &SolverConfig,
    state: &mut SolverState,
    params: impl Iterator<Item = &'a mut Param>,
    rate: f64,
) {
    let params = params.map(|p| (p, Vec::<()>::new()));
    apply_update_with(cfg, state, params, rate, |_, _| {}, |_, _| {});
}

/// Values per chunk of the update: the `T`s of [`apply_update_with`] go one a chunk.
pub const UPDATE_CHUNK: usize = 64 << 10;

/// [`apply_update`] with work of the caller's on each chunk of [`UPDATE_CHUNK`] values in
/// the same pass: a param comes with one `T` per chunk of its blob (or none), `before(t,
/// g)` makes the chunk's gradient before the rule and `after(t, w)` takes its updated
/// weights. With gradient clipping, whose norm needs every gradient first, each `before`
/// runs ahead of the rest. Params that are not trained (lr_mult 0) are left alone, their
/// `T`s dropped.
pub fn apply_update_with<'a, T: Send>(
    cfg: &SolverConfig,
    state: &mut SolverState,
    params: impl Iterator<Item = (&'a mut Param, Vec<T>)>,
    rate: f64,
    before: impl Fn(&mut T, &mut [f32]) + Sync,
    after: impl Fn(T, &[f32]) + Sync,
) {
    let (mut params, mut extras): (Vec<&mut Param>, Vec<Vec<T>>) = params.unzip();
    let l1 = cfg.regularization_type == "L1";
    let decay_of = |p: &Param| {
        if p.lr_mult == 0.0 {
            0.0
        } else {
            (cfg.weight_decay * p.decay_mult as f64) as f32
        }
    };
    // Gradient clipping by the global L2 norm of the regularised gradients: regularise
    // first, then scale.
    let clip = cfg.clip_gradients >= 0.0;
    if clip {
        let mut early: Vec<(&mut [f32], &mut T)> = Vec::new();
        for (p, ts) in params.iter_mut().zip(extras.iter_mut()) {
            early.extend(p.blob.diff.chunks_mut(UPDATE_CHUNK).zip(ts.iter_mut()));
        }
        early.into_par_iter().for_each(|(g, t)| before(t, g));
        for p in params.iter_mut() {
            let decay = decay_of(p);
            if decay != 0.0 {
                let (w, g) = (&p.blob.data, &mut p.blob.diff);
                regularise(g, w, decay, l1);
            }
        }
        let norm = params
            .iter()
            .filter(|p| p.lr_mult != 0.0)
            .map(|p| p.blob.diff.iter().map(|g| (*g as f64).powi(2)).sum::<f64>())
            .sum::<f64>()
            .sqrt();
        if norm > cfg.clip_gradients {
            let s = (cfg.clip_gradients / norm) as f32;
            params
                .iter_mut()
                .for_each(|p| p.blob.diff.iter_mut().for_each(|g| *g *= s));
        }
    }
    let t = state.iter + 1;
    let rule = Rule {
        solver: cfg.solver_type,
        l1,
        mom: cfg.momentum as f32,
        mom2: cfg.momentum2 as f32,
        delta: cfg.delta as f32,
        rms: cfg.rms_decay as f32,
        // (From the f32 momenta, as the rule uses them.)
        corr: ((1.0 - (cfg.momentum2 as f32 as f64).powi(t as i32)).sqrt()
            / (1.0 - (cfg.momentum as f32 as f64).powi(t as i32))) as f32,
    };
    let mut tasks = Vec::new();
    for (((p, ts), h), h2) in params
        .into_iter()
        .zip(extras)
        .zip(state.history.iter_mut())
        .zip(state.history2.iter_mut())
    {
        if p.lr_mult == 0.0 {
            continue;
        }
        let lr = (rate * p.lr_mult as f64) as f32;
        let decay = if clip { 0.0 } else { decay_of(p) };
        let (w, g) = (&mut p.blob.data, &mut p.blob.diff);
        let mut ts = ts.into_iter();
        for (((w, g), h), h2) in w
            .chunks_mut(UPDATE_CHUNK)
            .zip(g.chunks_mut(UPDATE_CHUNK))
            .zip(h.chunks_mut(UPDATE_CHUNK))
            .zip(h2.chunks_mut(UPDATE_CHUNK))
        {
            tasks.push((w, g, h, h2, lr, decay, ts.next()));
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(w, g, h, h2, lr, decay, mut t)| {
            if let (false, Some(t)) = (clip, t.as_mut()) {
                before(t, g);
            }
            rule.apply(w, g, h, h2, lr, decay);
            if let Some(t) = t {
                after(t, w);
            }
        });
    state.iter = t;
}

/// `g += decay·w` (L2) or `g += decay·sign(w)` (L1).
fn regularise(g: &mut [f32], w: &[f32], decay: f32, l1: bool) {
    if l1 {
        g.iter_mut()
            .zip(w)
            .for_each(|(g, w)| *g += decay * w.signum() * (*w != 0.0) as i32 as f32);
    } else {
        g.iter_mut().zip(w).for_each(|(g, w)| *g += decay * w);
    }
}

/// A solver's update rule with its constants.
struct Rule {
    solver: SolverType,
    l1: bool,
    mom: f32,
    mom2: f32,
    delta: f32,
    rms: f32,
    /// Adam's bias correction at this iteration.
    corr: f32,
}

impl Rule {
    fn apply(
        &self,
        w: &mut [f32],
        g: &mut [f32],
        h: &mut [f32],
        h2: &mut [f32],
        lr: f32,
        decay: f32,
    ) {
        let (mom, mom2, delta) = (self.mom, self.mom2, self.delta);
        if self.solver == SolverType::Sgd && !self.l1 {
            // Caffe's LeNet recipe, L2 decay and momentum SGD, in one pass.
            for ((w, g), h) in w.iter_mut().zip(g.iter_mut()).zip(h.iter_mut()) {
                *g += decay * *w;
                *h = mom * *h + lr * *g;
                *w -= *h;
            }
            return;
        }
        if decay != 0.0 {
            regularise(g, w, decay, self.l1);
        }
        match self.solver {
            SolverType::Sgd => {
                for ((w, g), h) in w.iter_mut().zip(&*g).zip(h.iter_mut()) {
                    *h = mom * *h + lr * g;
                    *w -= *h;
                }
            }
            SolverType::Nesterov => {
                for ((w, g), h) in w.iter_mut().zip(&*g).zip(h.iter_mut()) {
                    let prev = *h;
                    *h = mom * *h + lr * g;
                    *w -= (1.0 + mom) * *h - mom * prev;
                }
            }
            SolverType::AdaGrad => {
                for ((w, g), h) in w.iter_mut().zip(&*g).zip(h.iter_mut()) {
                    *h += g * g;
                    *w -= lr * g / (h.sqrt() + delta);
                }
            }
            SolverType::RmsProp => {
                let r = self.rms;
                for ((w, g), h) in w.iter_mut().zip(&*g).zip(h.iter_mut()) {
                    *h = r * *h + (1.0 - r) * g * g;
                    *w -= lr * g / (h.sqrt() + delta);
                }
            }
            SolverType::AdaDelta => {
                for (((w, g), h), h2) in w.iter_mut().zip(&*g).zip(h.iter_mut()).zip(h2.iter_mut())
                {
                    *h = mom * *h + (1.0 - mom) * g * g;
                    let u = g * ((*h2 + delta) / (*h + delta)).sqrt();
                    *h2 = mom * *h2 + (1.0 - mom) * u * u;
                    *w -= lr * u;
                }
            }
            SolverType::Adam => {
                let corr = self.corr;
                for (((w, g), m), v) in w.iter_mut().zip(&*g).zip(h.iter_mut()).zip(h2.iter_mut()) {
                    *m = mom * *m + (1.0 - mom) * g;
                    *v = mom2 * *v + (1.0 - mom2) * g * g;
                    *w -= lr * corr * *m / (v.sqrt() + delta);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Blob;

    /// A misspelt field gets the nearest one; a field like no other, only the pointer to
    /// the fields.
    #[test]
    fn misspelt_fields_get_the_nearest_one() {
        let help = |text: &str| SolverConfig::from_yaml(text).expect_err("refused").help();
        assert_eq!(
            help("base_lrr: 0.01\n"),
            "did you mean `base_lr`? (see specs/lenet.solver.yaml for the fields and their meaning)"
        );
        assert!(help("lr_polcy: fixed\n").starts_with("did you mean `lr_policy`?"));
        assert!(help("Momentum: 0.9\n").starts_with("did you mean `momentum`?"));
        assert_eq!(
            help("frobnicate: 1\n"),
            "see specs/lenet.solver.yaml for the fields and their meaning"
        );
    }

    fn param(w: f32, g: f32) -> Param {
        let mut blob = Blob::zeros(&[1]);
        blob.data[0] = w;
        blob.diff[0] = g;
        Param {
            blob,
            lr_mult: 1.0,
            decay_mult: 1.0,
        }
    }

    fn cfg(t: SolverType) -> SolverConfig {
        SolverConfig {
            solver_type: t,
            momentum: 0.9,
            weight_decay: 0.0,
            ..SolverConfig::default()
        }
    }

    /// Two steps with gradient 1 and 0.5 from w = 1 at lr 0.1.
    fn two_steps(c: &SolverConfig) -> f32 {
        let mut p = param(1.0, 1.0);
        let mut s = SolverState::new(std::iter::once(&p));
        apply_update(c, &mut s, std::iter::once(&mut p), 0.1);
        p.blob.diff[0] = 0.5;
        apply_update(c, &mut s, std::iter::once(&mut p), 0.1);
        p.blob.data[0]
    }

    #[test]
    fn update_rules_on_known_values() {
        let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        // SGD with momentum: h1 = 0.1, w = 0.9; h2 = 0.09 + 0.05 = 0.14, w = 0.76.
        close(two_steps(&cfg(SolverType::Sgd)), 0.76);
        // Nesterov: step1 update 1.9·0.1 = 0.19 → 0.81; h2 = 0.14, update 1.9·0.14 − 0.9·0.1 = 0.176.
        close(two_steps(&cfg(SolverType::Nesterov)), 0.81 - 0.176);
        // AdaGrad: h = 1 → w -= 0.1; h = 1.25 → w -= 0.05/√1.25.
        close(
            two_steps(&cfg(SolverType::AdaGrad)),
            1.0 - 0.1 - 0.05 / 1.25f32.sqrt(),
        );
        // RMSProp (0.99): h = 0.01 → w -= 0.1/0.1 = 1; h = 0.0099 + 0.0025 → w -= 0.05/√0.0124.
        close(
            two_steps(&cfg(SolverType::RmsProp)),
            1.0 - 1.0 - 0.05 / 0.0124f32.sqrt(),
        );
        // Adam's first step moves by lr (bias-corrected m/√v = 1).
        let mut p = param(1.0, 1.0);
        let mut s = SolverState::new(std::iter::once(&p));
        apply_update(&cfg(SolverType::Adam), &mut s, std::iter::once(&mut p), 0.1);
        close(p.blob.data[0], 0.9);
        // L2 weight decay adds decay·w to the gradient; L1 adds decay·sign(w).
        let mut c = cfg(SolverType::Sgd);
        c.momentum = 0.0;
        c.weight_decay = 0.5;
        let mut p = param(2.0, 0.0);
        let mut s = SolverState::new(std::iter::once(&p));
        apply_update(&c, &mut s, std::iter::once(&mut p), 0.1);
        close(p.blob.data[0], 2.0 - 0.1 * 1.0);
        c.regularization_type = "L1".into();
        let mut p = param(2.0, 0.0);
        apply_update(&c, &mut s, std::iter::once(&mut p), 0.1);
        close(p.blob.data[0], 2.0 - 0.05);
        // Clipping scales the whole gradient to the given norm.
        let mut c = cfg(SolverType::Sgd);
        c.momentum = 0.0;
        c.clip_gradients = 1.0;
        let mut p = param(0.0, 10.0);
        let mut s = SolverState::new(std::iter::once(&p));
        apply_update(&c, &mut s, std::iter::once(&mut p), 0.1);
        close(p.blob.data[0], -0.1);
    }

    #[test]
    fn learning_rate_policies() {
        let mut c = SolverConfig {
            base_lr: 0.01,
            gamma: 1e-4,
            power: 0.75,
            lr_policy: "inv".into(),
            ..Default::default()
        };
        assert!((c.learning_rate(10_000, 0) - 0.01 * 2f64.powf(-0.75)).abs() < 1e-12);
        c.lr_policy = "step".into();
        c.gamma = 0.1;
        c.stepsize = 100;
        assert!((c.learning_rate(250, 0) - 0.0001).abs() < 1e-12);
        c.lr_policy = "multistep".into();
        c.stepvalue = vec![10, 20];
        assert!((c.learning_rate(20, 0) - 0.0001).abs() < 1e-12);
        assert!((c.learning_rate(19, 0) - 0.001).abs() < 1e-12);
        c.lr_policy = "exp".into();
        c.gamma = 0.5;
        assert!((c.learning_rate(3, 0) - 0.00125).abs() < 1e-12);
        c.lr_policy = "poly".into();
        c.power = 2.0;
        assert!((c.learning_rate(50, 100) - 0.0025).abs() < 1e-12);
        c.lr_policy = "sigmoid".into();
        c.gamma = 1.0;
        c.stepsize = 10;
        assert!((c.learning_rate(10, 0) - 0.005).abs() < 1e-12);
        c.lr_policy = "fixed".into();
        assert_eq!(c.learning_rate(123, 0), 0.01);
    }

    #[test]
    fn yaml_errors_are_clear() {
        let e = SolverConfig::from_yaml("base_lr: 0.01\nmomentm: 0.9\n").unwrap_err();
        assert!(e.0.contains("momentm"), "{}", e.0);
        let e = SolverConfig::from_yaml("base_lr: -1\n").unwrap_err();
        assert!(e.0.contains("base_lr"), "{}", e.0);
        let e = SolverConfig::from_yaml("lr_policy: stair\n").unwrap_err();
        assert!(e.0.contains("unknown lr_policy"), "{}", e.0);
        let c = SolverConfig::from_yaml("type: Adam\nbase_lr: 0.001\nepochs: 3\n").unwrap();
        assert_eq!((c.solver_type, c.epochs), (SolverType::Adam, Some(3.0)));
    }
}
