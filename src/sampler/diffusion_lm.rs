//! Diffusion-LM's sampler: Gaussian reverse steps on a sequence of word vectors, each step's
//! x̂₀ rounded to words — Li et al., "Diffusion-LM Improves Controllable Text Generation",
//! arXiv:2205.14217 (§4.2, §4.3; `XiangLi1999/Diffusion-LM` `improved-diffusion/scripts/
//! text_sample.py`, `improved_diffusion/gaussian_diffusion.py` `p_mean_variance`, `respace.py`).
//!
//! - The denoiser predicts x̂₀ = f_θ(x_t, t); the step's mean is the posterior mean μ̃(x_t, x̂₀)
//!   of the schedule respaced to `steps` of the model's T ([`Schedule::respace`]), its variance
//!   σ² = β (the reference's fixed-large) or β̃ ([`Variance`]); no noise at the last step.
//! - Rounding: each position's word is the argmax of the tied logits x̂₀·EMBᵀ (`get_logits`,
//!   as the reference decodes), shown as the step's text. Nothing is ever committed: a word can
//!   change until the last step.
//! - The clamping trick (§4.3, `denoised_fn_round`): x̂₀ is replaced by the word vector nearest
//!   to it (Euclidean) before the mean is taken, at every step.
//! - Held positions (the prompt's words): their x̂₀ is their word's vector, and x_{t−1} there is
//!   a fresh draw of q(x_{t−1} | EMB(w)), so the rest of the sequence is denoised around them.
//!   A prompt's `[MASK]` tokens are gaps, denoised like the positions after it: infilling, as the
//!   reference's `infill_util.py` holds every position but the ones it fills.
//! - Plug-and-play control (§5.2; `improved-diffusion/scripts/infill_util.py`, `langevin_fn3`):
//!   after each reverse step, K = 3 gradient steps on the sample x_{t−1} (none in the last 10
//!   steps) on S·CE(c | x_{t−1}) + λ·Σ(x_{t−1} − μ)²/σ², the classifier's cross-entropy of the
//!   target attribute c at the time of x_{t−1} plus the fluency term that holds the sample near
//!   the step's mean μ (σ² the step's variance, 1 where it is 0). Each gradient step is Adagrad's
//!   at learning rate 0.1 from a fresh state, as the reference makes a new optimiser every
//!   iteration: −0.1·g/(|g| + 10⁻¹⁰) for each number. The gradient of the classifier is burn's
//!   autodiff ([`NoisyClassifier`]); the fluency term's is 2λ(x − μ)/σ².
//!
//! Everything but the network runs on the CPU in f64: a sequence is a few thousand numbers,
//! and rounding against the word vectors (V·d) stays the same on every backend.

use serde::{Deserialize, Serialize};

use super::gaussian::{Schedule, Variance};
use super::image::normal;
use super::{SampleError, SettingsError, TOP_CANDIDATES};
use crate::network::{NoisyClassifier, VectorSpec, WordVectorDenoiser};
use crate::rng::Rng;

/// The reference's reverse steps (2,000 respaced to 200).
pub const DEFAULT_STEPS: usize = 200;
/// Control's gradient steps after each reverse step (`langevin_fn3`'s K).
pub const CONTROL_ITERATIONS: usize = 3;
/// The last reverse steps, which control leaves alone (`langevin_fn3`: K = 0 when t < 10).
pub const CONTROL_QUIET_STEPS: usize = 10;
/// Adagrad's learning rate in control (the reference's `step_size`).
pub const CONTROL_LEARNING_RATE: f64 = 0.1;
/// Adagrad's ε (PyTorch's default).
const ADAGRAD_EPS: f64 = 1e-10;
/// λ, the fluency term's weight (the reference's `coef` for attributes).
pub const DEFAULT_FLUENCY: f64 = 0.01;
/// S, the classifier's weight (the reference's, which adds its loss unscaled).
pub const DEFAULT_CONTROL_SCALE: f64 = 1.0;

/// Plug-and-play control: the sentence steered toward an attribute of the control classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The attribute steered toward: one of the classifier's labels (`austen`, `bible`).
    pub target: String,
    /// S, the weight of the classifier's cross-entropy; 0 only watches the classifier's
    /// probability of the target, without steering.
    #[serde(with = "crate::float_json")]
    pub scale: f64,
    /// λ, the weight of the fluency term Σ(x − μ)²/σ².
    #[serde(with = "crate::float_json")]
    pub fluency: f64,
}

impl Control {
    /// Steering toward `target` at the reference's weights.
    pub fn toward(target: &str) -> Self {
        Self {
            target: target.into(),
            scale: DEFAULT_CONTROL_SCALE,
            fluency: DEFAULT_FLUENCY,
        }
    }

    /// The index of the target among the classifier's `labels`.
    pub fn class_of(&self, labels: &[String]) -> Result<usize, SettingsError> {
        labels
            .iter()
            .position(|l| *l == self.target)
            .ok_or_else(|| SettingsError::NoSuchAttribute {
                target: self.target.clone(),
                known: labels.join(", "),
            })
    }
}

/// How a Diffusion-LM run samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorSettings {
    /// Reverse steps, respaced evenly over the model's T (both ends kept).
    pub steps: usize,
    /// Positions generated after the prompt.
    pub gen_length: usize,
    /// The clamping trick: x̂₀ replaced by its nearest word vector at every step.
    pub clamp: bool,
    /// The variance of each reverse step.
    pub variance: Variance,
    /// Seed of x_T and of every step's noise.
    pub seed: u64,
    /// Plug-and-play control; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

impl VectorSettings {
    /// The reference's sampling: 200 steps, fixed-large variance, clamping on, over the whole
    /// sequence of `gen_length` positions.
    pub fn defaults(gen_length: usize) -> Self {
        Self {
            steps: DEFAULT_STEPS,
            gen_length,
            clamp: true,
            variance: Variance::Beta,
            seed: 0,
            control: None,
        }
    }
}

/// One reverse step: the words x̂₀ rounds to, and how far it is from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorStep {
    /// 0-based step number.
    pub index: usize,
    /// The model's time denoised from, 0..T.
    pub t: usize,
    /// √(1 − ᾱ_t): the noise's share of x_t.
    #[serde(with = "crate::float_json")]
    pub noise_level: f64,
    /// Each position's word: the argmax of x̂₀'s tied logits (the prompt's own words where fixed).
    pub ids: Vec<u32>,
    /// Each position's Euclidean distance from x̂₀ to its word's vector (before clamping).
    #[serde(with = "crate::float_json::f32s")]
    pub distance: Vec<f32>,
    /// Positions whose word differs from the previous step's.
    pub changed: Vec<usize>,
    /// Under control: the classifier's probability of the target at this step's sample x_{t−1},
    /// before the step's control moved it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::float_json::option"
    )]
    pub target_probability: Option<f64>,
    /// Each generated position's most likely words under x̂₀'s rounding, when the run shows
    /// them ([`VectorRun::show_candidates`]; empty otherwise). The first is the position's word.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nearest: Vec<NearWords>,
}

/// A word x̂₀ might round to at a position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NearWord {
    /// Its id.
    pub token: u32,
    /// p(w | x̂₀): the softmax of the tied logits x̂₀·EMBᵀ, the rounding term's distribution
    /// (`get_logits`; the argmax is the position's word).
    #[serde(with = "crate::float_json")]
    pub prob: f64,
    /// Euclidean distance from x̂₀ to its vector.
    #[serde(with = "crate::float_json")]
    pub distance: f64,
}

/// The words most likely at one position of a step, most likely first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NearWords {
    /// The position.
    pub position: usize,
    /// [`TOP_CANDIDATES`] words at most.
    pub top: Vec<NearWord>,
}

impl VectorStep {
    /// Every id the step names: its words, then its nearest words'.
    pub fn words(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.iter().copied().chain(
            self.nearest
                .iter()
                .flat_map(|n| n.top.iter().map(|w| w.token)),
        )
    }

    /// The mean of [`VectorStep::distance`] over the positions generated: those `held` does not
    /// mark (see [`held_positions`]).
    pub fn mean_distance(&self, held: &[bool]) -> f64 {
        let free: Vec<f64> = self
            .distance
            .iter()
            .enumerate()
            .filter(|&(i, _)| !held.get(i).copied().unwrap_or(false))
            .map(|(_, &d)| f64::from(d))
            .collect();
        if free.is_empty() {
            return 0.0;
        }
        free.iter().sum::<f64>() / free.len() as f64
    }
}

/// Which positions of a run its prompt holds: each of the prompt's but its gaps (the `mask`
/// token); the positions after the prompt are free.
pub fn held_positions(prompt: &[u32], mask: Option<u32>) -> Vec<bool> {
    prompt.iter().map(|&id| Some(id) != mask).collect()
}

/// The first position a run writes: its first gap, or the first after its prompt.
pub fn first_free(held: &[bool]) -> usize {
    held.iter().position(|h| !h).unwrap_or(held.len())
}

/// A Diffusion-LM run in progress.
#[derive(Clone, Debug)]
pub struct VectorRun {
    settings: VectorSettings,
    /// The model's schedule respaced to the run's steps.
    schedule: Schedule,
    /// The model's time of each respaced step, ascending.
    times: Vec<usize>,
    /// Respaced steps left: the next step goes from `left − 1`.
    left: usize,
    /// The sequence now, `[n · d]`.
    x: Vec<f64>,
    /// Each position's word when the prompt holds it (`None`: a gap, or after the prompt).
    held: Vec<Option<u32>>,
    d: usize,
    rng: Rng,
    previous: Option<Vec<u32>>,
    /// Words reported per generated position ([`TOP_CANDIDATES`], or 0: none computed).
    candidates: usize,
}

impl VectorRun {
    /// Checks `settings` and the prompt's ids against the network and draws x_T ~ N(0, I); the
    /// prompt holds every one of its positions.
    pub fn new(
        settings: &VectorSettings,
        prompt: &[u32],
        spec: &VectorSpec,
    ) -> Result<Self, SettingsError> {
        Self::infilling(settings, prompt, None, spec)
    }

    /// As [`VectorRun::new`], with the prompt's `mask` tokens as gaps to fill.
    pub fn infilling(
        settings: &VectorSettings,
        prompt: &[u32],
        mask: Option<u32>,
        spec: &VectorSpec,
    ) -> Result<Self, SettingsError> {
        let range =
            |field: &'static str, value: String, expected: String| SettingsError::ImageKnob {
                field,
                value,
                expected,
            };
        let held = held_positions(prompt, mask);
        let gaps = held.iter().filter(|&&h| !h).count();
        if gaps == 0 && prompt.len() >= spec.model_length {
            return Err(range(
                "prompt",
                format!("{} tokens", prompt.len()),
                format!(
                    "fewer than the model's {} positions (model_length), to leave some to generate",
                    spec.model_length
                ),
            ));
        }
        let n = prompt.len() + settings.gen_length;
        if n > spec.model_length {
            return Err(SettingsError::TooLong {
                prompt: prompt.len(),
                gen_length: settings.gen_length,
                model_length: spec.model_length,
            });
        }
        if settings.gen_length == 0 && gaps == 0 {
            return Err(SettingsError::NothingToGenerate);
        }
        if let Some(&token) = prompt.iter().find(|&&id| id as usize >= spec.vocab_size) {
            return Err(SettingsError::TokenOutsideVocabulary {
                token,
                vocab_size: spec.vocab_size,
            });
        }
        if !(1..=spec.diffusion_steps).contains(&settings.steps) {
            return Err(range(
                "steps",
                settings.steps.to_string(),
                format!(
                    "1 to {} (the model's diffusion steps)",
                    spec.diffusion_steps
                ),
            ));
        }
        if let Some(c) = &settings.control {
            for (field, value) in [("control_scale", c.scale), ("fluency", c.fluency)] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(range(field, value.to_string(), "a number ≥ 0".into()));
                }
            }
        }
        let full = Schedule::new(spec.beta_schedule, spec.diffusion_steps)
            .map_err(|e| range("diffusion_steps", e.0.to_string(), e.to_string()))?;
        let mut times = full.respaced(settings.steps);
        times.reverse();
        let schedule = full.respace(&times);
        let mut rng = Rng::new(settings.seed);
        let d = spec.embed_dim;
        let x = (0..n * d).map(|_| normal(&mut rng)).collect();
        Ok(Self {
            settings: settings.clone(),
            left: times.len(),
            schedule,
            times,
            x,
            held: prompt
                .iter()
                .zip(&held)
                .map(|(&id, &h)| h.then_some(id))
                .chain(std::iter::repeat_n(None, settings.gen_length))
                .collect(),
            d,
            rng,
            previous: None,
            candidates: 0,
        })
    }

    /// Whether steps report each generated position's most likely words
    /// ([`VectorStep::nearest`]: the page's inspector and `--trace` show them; a quiet run or
    /// a quality check does not compute them).
    pub fn show_candidates(&mut self, show: bool) {
        self.candidates = if show { TOP_CANDIDATES } else { 0 };
    }

    /// Steps this run takes.
    pub fn total_steps(&self) -> usize {
        self.times.len()
    }

    /// The settings.
    pub fn settings(&self) -> &VectorSettings {
        &self.settings
    }

    /// The prompt's positions, gaps included.
    pub fn prompt_len(&self) -> usize {
        self.held.len() - self.settings.gen_length
    }

    /// Which positions the prompt holds (the gaps and the positions after it are free).
    pub fn held(&self) -> Vec<bool> {
        self.held.iter().map(Option::is_some).collect()
    }

    /// The sequence now, `[n · d]`.
    pub fn vectors(&self) -> &[f64] {
        &self.x
    }

    /// One reverse step: a call of the denoiser; `None` once x₀ is reached. A run under control
    /// needs its classifier: [`VectorRun::step_controlled`].
    pub async fn step<N: WordVectorDenoiser>(
        &mut self,
        net: &mut N,
    ) -> Result<Option<VectorStep>, SampleError> {
        self.step_with(net, None::<&mut Uncontrolled>).await
    }

    /// One reverse step, then the control's gradient steps with `classifier` (unused when the
    /// settings ask for no control; at scale 0 it only watches).
    pub async fn step_controlled<N: WordVectorDenoiser, C: NoisyClassifier>(
        &mut self,
        net: &mut N,
        classifier: &mut C,
    ) -> Result<Option<VectorStep>, SampleError> {
        self.step_with(net, Some(classifier)).await
    }

    /// One reverse step, with the classifier when there is one: what [`VectorRun::step`] and
    /// [`VectorRun::step_controlled`] do, for a caller that holds an `Option` (one copy of the
    /// step's code in the page, whichever it holds).
    pub async fn step_with<N: WordVectorDenoiser, C: NoisyClassifier>(
        &mut self,
        net: &mut N,
        classifier: Option<&mut C>,
    ) -> Result<Option<VectorStep>, SampleError> {
        if self.left == 0 {
            return Ok(None);
        }
        let control = match (&self.settings.control, classifier) {
            (None, _) => None,
            (Some(_), None) => return Err(SettingsError::ControlNeedsClassifier.into()),
            (Some(c), Some(classifier)) => {
                let target = c.class_of(&classifier.labels())?;
                Some((c.clone(), target, classifier))
            }
        };
        let k = self.left - 1;
        let t = self.times[k];
        let d = self.d;
        let x: Vec<f32> = self.x.iter().map(|&v| v as f32).collect();
        let predicted = net.predict_x0(&x, t).await?;
        if predicted.len() != x.len() {
            return Err(crate::network::ModelError::Unsupported(format!(
                "the denoiser answered {} values for {}",
                predicted.len(),
                x.len()
            ))
            .into());
        }
        let emb = net.embedding();
        let mut x0: Vec<f64> = predicted.iter().map(|&v| f64::from(v)).collect();
        let n = x0.len() / d;
        let mut ids = Vec::with_capacity(n);
        let mut distance = Vec::with_capacity(n);
        let mut nearest_words = Vec::new();
        for (i, v) in x0.chunks_exact_mut(d).enumerate() {
            let id = match self.held[i] {
                Some(w) => w,
                None if self.candidates > 0 => {
                    let top = rank(v, emb, d, self.candidates);
                    let id = top[0].token;
                    nearest_words.push(NearWords { position: i, top });
                    id
                }
                None => round(v, emb, d),
            };
            let row = &emb[id as usize * d..(id as usize + 1) * d];
            distance.push(euclidean(v, row) as f32);
            ids.push(id);
            if self.held[i].is_some() {
                copy_row(v, row);
            } else if self.settings.clamp {
                copy_row(v, &emb[nearest(v, emb, d) * d..][..d]);
            }
        }
        let mean = self.schedule.posterior_mean(&self.x, &x0, k);
        let variance = self.schedule.variance(k, self.settings.variance);
        let sigma = variance.sqrt();
        let mut x = mean.clone();
        if sigma > 0.0 {
            x.iter_mut()
                .for_each(|v| *v += sigma * normal(&mut self.rng));
        }
        let target_probability = match control {
            None => None,
            Some((c, target, classifier)) => {
                // The classifier reads x_{t−1}: the time stepped to (the smallest at the end).
                let t_prev = self.times[k.saturating_sub(1)];
                let iterations = if k < CONTROL_QUIET_STEPS || c.scale == 0.0 {
                    0
                } else {
                    CONTROL_ITERATIONS
                };
                let variance = if variance > 0.0 { variance } else { 1.0 };
                Some(
                    steer(
                        &mut x,
                        &mean,
                        variance,
                        (&c, target, iterations, t_prev),
                        classifier,
                    )
                    .await?,
                )
            }
        };
        // The held positions: a fresh draw of q at the time stepped to (the word at the end).
        let a_prev = self.schedule.alpha_bar(k.checked_sub(1));
        let held = self.held.iter().enumerate();
        for (i, w) in held.filter_map(|(i, w)| Some((i, (*w)?))) {
            let row = &emb[w as usize * d..(w as usize + 1) * d];
            for (v, &e) in x[i * d..(i + 1) * d].iter_mut().zip(row) {
                let noise = if k == 0 { 0.0 } else { normal(&mut self.rng) };
                *v = a_prev.sqrt() * f64::from(e) + (1.0 - a_prev).sqrt() * noise;
            }
        }
        self.x = x;
        let changed = match &self.previous {
            Some(before) => (0..n).filter(|&i| before[i] != ids[i]).collect(),
            None => Vec::new(),
        };
        self.previous = Some(ids.clone());
        self.left = k;
        let index = self.times.len() - 1 - k;
        Ok(Some(VectorStep {
            index,
            t,
            noise_level: (1.0 - self.schedule.alpha_bar(Some(k))).sqrt(),
            ids,
            distance,
            changed,
            target_probability,
            nearest: nearest_words,
        }))
    }
}

/// Control's gradient steps on the sample `x` around the step's `mean`: `iterations` Adagrad
/// steps, each from a fresh state, on S·CE(c | x) + λ·Σ(x − μ)²/σ² with the classifier at time
/// `t`. Answers the classifier's probability of the target before the first step (it is read
/// once even when there are no steps to take).
async fn steer<C: NoisyClassifier>(
    x: &mut [f64],
    mean: &[f64],
    variance: f64,
    (control, target, iterations, t): (&Control, usize, usize, usize),
    classifier: &mut C,
) -> Result<f64, SampleError> {
    let mut first = None;
    for i in 0..iterations.max(1) {
        let point: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let (gradient, p) = classifier.log_prob_gradient(&point, t, &[target]).await?;
        if gradient.len() != x.len() || p.len() != 1 {
            return Err(crate::network::ModelError::Unsupported(format!(
                "the control classifier answered {} gradients and {} probabilities for {} numbers",
                gradient.len(),
                p.len(),
                x.len()
            ))
            .into());
        }
        first.get_or_insert(p[0]);
        if i == iterations {
            break;
        }
        for ((v, &g), &m) in x.iter_mut().zip(&gradient).zip(mean) {
            // ∇ of S·(−log p) + λ·(x − μ)²/σ².
            let g = -control.scale * f64::from(g) + 2.0 * control.fluency * (*v - m) / variance;
            *v -= CONTROL_LEARNING_RATE * g / (g.abs() + ADAGRAD_EPS);
        }
    }
    Ok(first.unwrap_or(0.0))
}

/// The classifier type of an uncontrolled step: there is none.
enum Uncontrolled {}

impl NoisyClassifier for Uncontrolled {
    fn classes(&self) -> usize {
        match *self {}
    }

    async fn log_prob_gradient(
        &mut self,
        _: &[f32],
        _: usize,
        _: &[usize],
    ) -> Result<(Vec<f32>, Vec<f64>), crate::network::ModelError> {
        match *self {}
    }
}

/// The row of the word vectors `emb` (`[V · d]`) with the largest dot product with `v`: the
/// argmax of the tied logits.
fn round(v: &[f64], emb: &[f32], d: usize) -> u32 {
    let mut best = (f64::NEG_INFINITY, 0);
    for (id, row) in emb.chunks_exact(d).enumerate() {
        let score: f64 = v.iter().zip(row).map(|(a, &b)| a * f64::from(b)).sum();
        if score > best.0 {
            best = (score, id);
        }
    }
    best.1 as u32
}

/// The `k` (≥ 1) words of `emb` most likely under the softmax of the tied logits `v·EMBᵀ`, most
/// likely first (ties to the lower id, so the first is [`round`]'s word), with their
/// probabilities and distances.
fn rank(v: &[f64], emb: &[f32], d: usize, k: usize) -> Vec<NearWord> {
    let scores: Vec<f64> = emb
        .chunks_exact(d)
        .map(|row| v.iter().zip(row).map(|(a, &b)| a * f64::from(b)).sum())
        .collect();
    let mut top: Vec<usize> = Vec::with_capacity(k + 1);
    for (id, &s) in scores.iter().enumerate() {
        if top.len() == k && s <= scores[top[k - 1]] {
            continue;
        }
        let at = top.partition_point(|&j| scores[j] >= s);
        top.insert(at, id);
        top.truncate(k);
    }
    let max = scores[top[0]];
    // exp(−50) is below f64's precision against the largest term's 1: such words add nothing.
    let total: f64 = scores
        .iter()
        .filter(|&&s| s > max - 50.0)
        .map(|&s| (s - max).exp())
        .sum();
    top.into_iter()
        .map(|id| NearWord {
            token: id as u32,
            prob: (scores[id] - max).exp() / total,
            distance: euclidean(v, &emb[id * d..(id + 1) * d]),
        })
        .collect()
}

/// The row of `emb` nearest to `v` in Euclidean distance.
fn nearest(v: &[f64], emb: &[f32], d: usize) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (id, row) in emb.chunks_exact(d).enumerate() {
        let dist = euclidean(v, row);
        if dist < best.0 {
            best = (dist, id);
        }
    }
    best.1
}

fn euclidean(v: &[f64], row: &[f32]) -> f64 {
    v.iter()
        .zip(row)
        .map(|(a, &b)| (a - f64::from(b)).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn copy_row(v: &mut [f64], row: &[f32]) {
    v.iter_mut().zip(row).for_each(|(a, &b)| *a = f64::from(b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ModelError;
    use crate::sampler::gaussian::BetaSchedule;

    /// A denoiser that answers a fixed blend of x_t and a target sequence, counting its calls.
    struct Pull {
        spec: VectorSpec,
        emb: Vec<f32>,
        target: Vec<f32>,
        calls: usize,
    }

    impl WordVectorDenoiser for Pull {
        fn spec(&self) -> &VectorSpec {
            &self.spec
        }
        fn embedding(&self) -> &[f32] {
            &self.emb
        }
        async fn predict_x0(&mut self, x: &[f32], _t: usize) -> Result<Vec<f32>, ModelError> {
            self.calls += 1;
            Ok(x.iter()
                .zip(&self.target)
                .map(|(a, b)| 0.3 * a + 0.7 * b)
                .collect())
        }
    }

    fn pull(words: &[u32]) -> Pull {
        let (v, d) = (7, 3);
        let mut rng = Rng::new(5);
        let emb: Vec<f32> = (0..v * d).map(|_| normal(&mut rng) as f32).collect();
        let target = words
            .iter()
            .flat_map(|&w| emb[w as usize * d..(w as usize + 1) * d].to_vec())
            .collect();
        Pull {
            spec: VectorSpec {
                vocab_size: v,
                embed_dim: d,
                model_length: 8,
                diffusion_steps: 100,
                beta_schedule: BetaSchedule::Sqrt,
            },
            emb,
            target,
            calls: 0,
        }
    }

    fn run_all(run: &mut VectorRun, net: &mut Pull) -> Vec<VectorStep> {
        let mut steps = Vec::new();
        while let Some(s) = pollster::block_on(run.step(net)).unwrap() {
            steps.push(s);
        }
        steps
    }

    #[test]
    fn clamping_puts_every_step_s_x0_on_a_word_vector_and_the_prompt_holds() {
        let words = [2, 5, 1, 6, 0];
        let mut net = pull(&words);
        let settings = VectorSettings {
            steps: 20,
            gen_length: 3,
            clamp: true,
            variance: Variance::Beta,
            seed: 9,
            control: None,
        };
        let mut run = VectorRun::new(&settings, &words[..2], &net.spec).unwrap();
        let steps = run_all(&mut run, &mut net);
        assert_eq!((steps.len(), net.calls), (20, 20));
        assert_eq!(steps.last().unwrap().t, 0);
        assert_eq!(steps[0].t, 99);
        for s in &steps {
            assert_eq!(&s.ids[..2], &words[..2], "the prompt holds");
        }
        // The last step adds no noise: with clamping, the final sequence is word vectors exactly.
        let d = net.spec.embed_dim;
        for (i, v) in run.vectors().chunks_exact(d).enumerate() {
            let row = nearest(v, &net.emb, d);
            let exact = v
                .iter()
                .zip(&net.emb[row * d..(row + 1) * d])
                .all(|(a, &b)| *a == f64::from(b));
            assert!(exact, "position {i}: {v:?}");
        }
        // The pull toward the target wins by the end.
        assert_eq!(steps.last().unwrap().ids, words);
        // The same seed replays; another seed starts elsewhere.
        let mut again = VectorRun::new(&settings, &words[..2], &net.spec).unwrap();
        assert_eq!(run_all(&mut again, &mut pull(&words)), steps);
        let other = VectorSettings {
            seed: 10,
            ..settings.clone()
        };
        let mut other = VectorRun::new(&other, &words[..2], &net.spec).unwrap();
        assert_ne!(run_all(&mut other, &mut pull(&words))[0], steps[0]);
    }

    #[test]
    fn a_prompt_s_gaps_are_filled_around_its_held_words() {
        let words = [2, 5, 1, 6, 0];
        let mut net = pull(&words);
        let mask = 4;
        let settings = VectorSettings {
            steps: 20,
            seed: 3,
            ..VectorSettings::defaults(2)
        };
        // "2 [gap] 1", then two positions.
        let prompt = [2, mask, 1];
        let mut run = VectorRun::infilling(&settings, &prompt, Some(mask), &net.spec).unwrap();
        assert_eq!(run.held(), [true, false, true, false, false]);
        assert_eq!(first_free(&run.held()), 1);
        let steps = run_all(&mut run, &mut net);
        for s in &steps {
            assert_eq!((s.ids[0], s.ids[2]), (2, 1), "the held words stay");
        }
        assert_eq!(
            steps.last().unwrap().ids[1],
            5,
            "the gap is filled with the pull's word"
        );
        // Without the mask named, the same prompt holds all three.
        let plain = VectorRun::new(&settings, &prompt, &net.spec).unwrap();
        assert_eq!(plain.held(), [true, true, true, false, false]);
        // A gap is something to generate, with no positions after the prompt.
        let none = VectorSettings {
            gen_length: 0,
            ..settings.clone()
        };
        let mut infill = VectorRun::infilling(&none, &prompt, Some(mask), &net.spec).unwrap();
        let last = run_all(&mut infill, &mut pull(&words)).pop().unwrap();
        assert_eq!(last.ids, [2, 5, 1]);
        assert_eq!(
            last.mean_distance(&infill.held()),
            f64::from(last.distance[1])
        );
        assert!(matches!(
            VectorRun::new(&none, &prompt, &net.spec),
            Err(SettingsError::NothingToGenerate)
        ));
    }

    #[test]
    fn shown_candidates_rank_the_rounding_s_softmax_and_change_nothing_else() {
        let words = [2, 5, 1, 6, 0];
        let net = pull(&words);
        let settings = VectorSettings {
            steps: 12,
            gen_length: 3,
            ..VectorSettings::defaults(3)
        };
        let mut quiet = VectorRun::new(&settings, &words[..2], &net.spec).unwrap();
        let plain = run_all(&mut quiet, &mut pull(&words));
        let mut shown = VectorRun::new(&settings, &words[..2], &net.spec).unwrap();
        shown.show_candidates(true);
        let steps = run_all(&mut shown, &mut pull(&words));
        let (v, d) = (net.spec.vocab_size, net.spec.embed_dim);
        for (s, p) in steps.iter().zip(&plain) {
            assert!(p.nearest.is_empty(), "a quiet run computes none");
            assert_eq!(
                VectorStep {
                    nearest: Vec::new(),
                    ..s.clone()
                },
                *p,
                "showing them changes nothing else"
            );
            // The generated positions only, each led by its word, most likely first.
            let positions: Vec<usize> = s.nearest.iter().map(|n| n.position).collect();
            assert_eq!(positions, [2, 3, 4]);
            for n in &s.nearest {
                assert_eq!(n.top.len(), TOP_CANDIDATES.min(v));
                assert_eq!(n.top[0].token, s.ids[n.position]);
                assert!(n.top.windows(2).all(|w| w[0].prob >= w[1].prob));
                let sum: f64 = n.top.iter().map(|w| w.prob).sum();
                assert!(sum <= 1.0 + 1e-12 && n.top[0].prob > 0.0, "{sum}");
                assert!((n.top[0].distance - f64::from(s.distance[n.position])).abs() < 1e-5);
            }
        }
        // Against the softmax written out: all V words' probabilities add up to 1.
        let x0 = [0.3, -1.2, 0.8];
        let all = rank(&x0, &net.emb, d, v);
        let scores: Vec<f64> = net
            .emb
            .chunks_exact(d)
            .map(|r| x0.iter().zip(r).map(|(a, &b)| a * f64::from(b)).sum())
            .collect();
        let z: f64 = scores.iter().map(|s| s.exp()).sum();
        for w in &all {
            assert!((w.prob - scores[w.token as usize].exp() / z).abs() < 1e-12);
            let row = &net.emb[w.token as usize * d..][..d];
            assert!((w.distance - euclidean(&x0, row)).abs() < 1e-12);
        }
        assert!((all.iter().map(|w| w.prob).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(all[0].token, round(&x0, &net.emb, d));
    }

    #[test]
    fn without_clamping_x0_is_the_network_s_and_bad_settings_are_named() {
        let words = [3, 3, 4];
        let mut net = pull(&words);
        let settings = VectorSettings {
            clamp: false,
            ..VectorSettings::defaults(3)
        };
        let settings = VectorSettings {
            steps: 5,
            ..settings
        };
        let mut run = VectorRun::new(&settings, &[], &net.spec).unwrap();
        let steps = run_all(&mut run, &mut net);
        // The last step's mean is x̂₀ itself: 0.3·x_t + 0.7·target, not a word vector.
        let d = net.spec.embed_dim;
        let on_a_row = run.vectors().chunks_exact(d).all(|v| {
            let row = nearest(v, &net.emb, d);
            euclidean(v, &net.emb[row * d..(row + 1) * d]) == 0.0
        });
        assert!(!on_a_row);
        assert!(
            steps
                .iter()
                .all(|s| s.distance.iter().all(|d| d.is_finite()))
        );
        let spec = &net.spec;
        let err = |s: VectorSettings, prompt: &[u32]| {
            VectorRun::new(&s, prompt, spec).unwrap_err().to_string()
        };
        let base = VectorSettings::defaults(3);
        assert!(
            err(
                VectorSettings {
                    steps: 0,
                    ..base.clone()
                },
                &[]
            )
            .contains("steps")
        );
        assert!(
            err(
                VectorSettings {
                    steps: 101,
                    ..base.clone()
                },
                &[]
            )
            .contains("1 to 100")
        );
        assert!(
            err(
                VectorSettings {
                    gen_length: 9,
                    ..base.clone()
                },
                &[]
            )
            .contains("model_length")
        );
        assert!(
            err(
                VectorSettings {
                    gen_length: 0,
                    ..base.clone()
                },
                &[]
            )
            .contains("gen_length")
        );
        assert!(err(base.clone(), &[7]).contains("token id 7"));
        // A prompt as long as the model: too long, whatever gen_length says.
        let full = [1; 8];
        assert!(
            err(
                VectorSettings {
                    gen_length: 0,
                    ..base
                },
                &full
            )
            .contains("model_length")
        );
    }

    /// A classifier of two attributes: p(1 | x) = sigmoid(a · mean(x)), counting its calls.
    struct Leaning {
        a: f64,
        calls: usize,
    }

    impl NoisyClassifier for Leaning {
        fn classes(&self) -> usize {
            2
        }
        fn labels(&self) -> Vec<String> {
            vec!["low".into(), "high".into()]
        }
        async fn log_prob_gradient(
            &mut self,
            x: &[f32],
            _t: usize,
            classes: &[usize],
        ) -> Result<(Vec<f32>, Vec<f64>), ModelError> {
            self.calls += 1;
            let n = x.len() as f64;
            let z = self.a * x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let p1 = 1.0 / (1.0 + (-z).exp());
            // d log p(1)/dx_i = (1 − p1)·a/n; d log p(0)/dx_i = −p1·a/n.
            let (p, slope) = match classes[0] {
                1 => (p1, (1.0 - p1) * self.a / n),
                _ => (1.0 - p1, -p1 * self.a / n),
            };
            Ok((vec![slope as f32; x.len()], vec![p]))
        }
    }

    #[test]
    fn control_pulls_the_sample_toward_the_target_and_watching_changes_nothing() {
        let words = [2, 5, 1, 6, 0, 3];
        let base = VectorSettings {
            steps: 30,
            gen_length: 6,
            clamp: false,
            ..VectorSettings::defaults(6)
        };
        let run = |settings: &VectorSettings, classifier: Option<&mut Leaning>| {
            let mut net = pull(&words);
            let mut run = VectorRun::new(settings, &[], &net.spec).unwrap();
            let mut steps = Vec::new();
            match classifier {
                None => steps = run_all(&mut run, &mut net),
                Some(c) => {
                    while let Some(s) =
                        pollster::block_on(run.step_controlled(&mut net, c)).unwrap()
                    {
                        steps.push(s);
                    }
                }
            }
            let mean = run.vectors().iter().sum::<f64>() / run.vectors().len() as f64;
            (steps, mean)
        };
        let (plain, plain_mean) = run(&base, None);
        assert!(plain.iter().all(|s| s.target_probability.is_none()));
        // Scale 0 watches: the same steps, each with the classifier's probability.
        let watch = VectorSettings {
            control: Some(Control {
                scale: 0.0,
                ..Control::toward("high")
            }),
            ..base.clone()
        };
        let mut leaning = Leaning { a: 4.0, calls: 0 };
        let (watched, _) = run(&watch, Some(&mut leaning));
        assert_eq!(leaning.calls, 30, "one reading per step");
        for (w, p) in watched.iter().zip(&plain) {
            assert!(w.target_probability.is_some());
            assert_eq!((&w.ids, &w.distance), (&p.ids, &p.distance));
        }
        // Toward each attribute: K = 3 readings a step but in the last 10, and the sample moves
        // toward the attribute.
        let mut high = Leaning { a: 4.0, calls: 0 };
        let toward = |target: &str| VectorSettings {
            control: Some(Control::toward(target)),
            ..base.clone()
        };
        let (steered, high_mean) = run(&toward("high"), Some(&mut high));
        assert_eq!(high.calls, 20 * CONTROL_ITERATIONS + 10);
        let (_, low_mean) = run(&toward("low"), Some(&mut Leaning { a: 4.0, calls: 0 }));
        assert!(
            low_mean < plain_mean && plain_mean < high_mean,
            "{low_mean} {plain_mean} {high_mean}"
        );
        let p = |steps: &[VectorStep]| steps.last().unwrap().target_probability.unwrap();
        assert!(p(&steered) > p(&watched), "{} {}", p(&steered), p(&watched));
        // Control without a classifier, an unknown attribute, a negative weight: named.
        let mut net = pull(&words);
        let mut lone = VectorRun::new(&toward("high"), &[], &net.spec).unwrap();
        let err = pollster::block_on(lone.step(&mut net)).unwrap_err();
        assert!(err.to_string().contains("control classifier"), "{err}");
        let mut odd = VectorRun::new(&toward("bible"), &[], &net.spec).unwrap();
        let err = pollster::block_on(odd.step_controlled(&mut net, &mut leaning)).unwrap_err();
        assert!(err.to_string().contains("low, high"), "{err}");
        let negative = VectorSettings {
            control: Some(Control {
                fluency: -1.0,
                ..Control::toward("high")
            }),
            ..base
        };
        let err = VectorRun::new(&negative, &[], &net.spec).unwrap_err();
        assert!(err.to_string().contains("fluency"), "{err}");
    }
}
