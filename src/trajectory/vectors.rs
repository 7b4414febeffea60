//! A run of the Diffusion-LM family as a file (`kind: "diffusion-lm"`, format version 2): the
//! settings (control included), the prompt, and for every step the time, the noise level, each
//! position's rounded word and its distance from x̂₀, the words that changed and, under control,
//! the classifier's probability of the target; the text of every id that appears, so that a
//! replay needs neither the model nor its tokenizer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{TRAJECTORY_FORMAT, TRAJECTORY_VERSION, TrajectoryError};
use crate::config::Family;
use crate::network::VectorSpec;
use crate::sampler::diffusion_lm::{VectorSettings, VectorStep, first_free, held_positions};
use crate::sampler::gaussian::BetaSchedule;
use crate::text::TextCodec;

/// What the run ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorModelInfo {
    /// A name for the model (its folder).
    pub name: String,
    /// Words of its vocabulary.
    pub vocab_size: usize,
    /// d, numbers per word vector.
    pub embed_dim: usize,
    /// Positions of a sequence at most.
    pub model_length: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// Its β schedule.
    pub beta_schedule: BetaSchedule,
    /// The control classifier that steered it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
    /// Its mask token: where the prompt holds it, a gap the run filled (files before infilling
    /// have none: their prompts hold every position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_id: Option<u32>,
}

/// A Diffusion-LM run, step by step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorTrajectory {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// [`TRAJECTORY_VERSION`].
    pub version: u32,
    /// Always [`Family::DiffusionLm`].
    pub kind: Family,
    /// The model.
    pub model: VectorModelInfo,
    /// The settings, seed and control included.
    pub settings: VectorSettings,
    /// The prompt as typed.
    pub prompt: String,
    /// Its ids, which hold the first positions but its gaps ([`VectorModelInfo::mask_id`]).
    pub prompt_ids: Vec<u32>,
    /// id → text of every id that appears.
    pub vocab: BTreeMap<u32, String>,
    /// Every step.
    pub steps: Vec<VectorStep>,
    /// Each step's words from its first free position (the prompt's first gap, or the first
    /// after it) on, decoded: the text a reader watches change.
    pub texts: Vec<String>,
    /// The last step's, the same way.
    pub text: String,
}

impl VectorTrajectory {
    /// The record of a run of `settings` on a model of `spec` named `name`, from its steps, the
    /// words read with `codec`.
    pub fn new(
        name: &str,
        spec: &VectorSpec,
        classifier: Option<String>,
        settings: VectorSettings,
        (prompt, prompt_ids): (&str, &[u32]),
        steps: Vec<VectorStep>,
        codec: &TextCodec,
    ) -> Self {
        let vocab = steps
            .iter()
            .flat_map(VectorStep::words)
            .chain(prompt_ids.iter().copied())
            .map(|id| (id, codec.token_text(id)))
            .collect();
        let mask_id = Some(codec.mask_id());
        let start = first_free(&held_positions(prompt_ids, mask_id));
        let generated = |s: &VectorStep| codec.decode(&s.ids[start.min(s.ids.len())..]);
        let texts: Vec<String> = steps.iter().map(generated).collect();
        Self {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: Family::DiffusionLm,
            model: VectorModelInfo {
                name: name.into(),
                vocab_size: spec.vocab_size,
                embed_dim: spec.embed_dim,
                model_length: spec.model_length,
                diffusion_steps: spec.diffusion_steps,
                beta_schedule: spec.beta_schedule,
                classifier,
                mask_id,
            },
            settings,
            prompt: prompt.into(),
            prompt_ids: prompt_ids.to_vec(),
            vocab,
            steps,
            text: texts.last().cloned().unwrap_or_default(),
            texts,
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks a Diffusion-LM trajectory.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        super::read_family(text, Family::DiffusionLm, Self::check)
    }

    /// Checks what a replay relies on: sizes within bounds, steps numbered 0, 1, … at times
    /// inside the diffusion, each as long as the prompt and its words, every id known and in the
    /// vocabulary, every changed position on the canvas, distances finite and probabilities in
    /// [0, 1].
    pub fn check(&self) -> Result<(), TrajectoryError> {
        use crate::limits::{self, check};
        let bad = |m: String| Err(TrajectoryError::Inconsistent(m));
        let too_large = |e: limits::TooLarge| TrajectoryError::Inconsistent(e.to_string());
        let m = &self.model;
        check("vocab_size", m.vocab_size, limits::MAX_VOCAB_SIZE).map_err(too_large)?;
        check("model_length", m.model_length, limits::MAX_MODEL_LENGTH).map_err(too_large)?;
        check(
            "diffusion_steps",
            m.diffusion_steps,
            crate::sampler::gaussian::MAX_STEPS,
        )
        .map_err(too_large)?;
        let n = self.prompt_ids.len() + self.settings.gen_length;
        if self.texts.len() != self.steps.len() {
            return bad(format!(
                "{} texts for {} steps",
                self.texts.len(),
                self.steps.len()
            ));
        }
        if n > m.model_length || self.steps.len() > m.diffusion_steps {
            return bad(format!(
                "{n} positions or {} steps do not fit the model's {} positions and {} steps",
                self.steps.len(),
                m.model_length,
                m.diffusion_steps
            ));
        }
        let unknown = |id: u32| id as usize >= m.vocab_size || !self.vocab.contains_key(&id);
        let held = held_positions(&self.prompt_ids, m.mask_id);
        for (i, s) in self.steps.iter().enumerate() {
            if s.index != i || s.t >= m.diffusion_steps {
                return bad(format!("step {i} is numbered {} at time {}", s.index, s.t));
            }
            if s.ids.len() != n || s.distance.len() != n {
                return bad(format!("step {i} does not hold the run's {n} positions"));
            }
            if let Some(id) = s.ids.iter().find(|&&id| unknown(id)) {
                return bad(format!("step {i} writes id {id}, which has no text here"));
            }
            if let Some(p) = (0..held.len()).find(|&p| held[p] && s.ids[p] != self.prompt_ids[p]) {
                return bad(format!(
                    "step {i} rewrites the prompt's word at position {p}"
                ));
            }
            if s.changed.iter().any(|&p| p >= n) {
                return bad(format!("step {i} changes a position outside its canvas"));
            }
            for near in &s.nearest {
                let Some(first) = near.top.first() else {
                    return bad(format!("step {i} lists no words at {}", near.position));
                };
                let free = near.position < n && !held.get(near.position).copied().unwrap_or(false);
                if !free || first.token != s.ids[near.position] {
                    return bad(format!(
                        "step {i} lists nearest words at position {} that it did not round there",
                        near.position
                    ));
                }
                if near.top.iter().any(|w| unknown(w.token)) {
                    return bad(format!("step {i} lists a nearest word with no text here"));
                }
            }
            let in_unit = |p: f64| (0.0..=1.0).contains(&p);
            let finite = s.noise_level.is_finite()
                && s.distance.iter().all(|d| d.is_finite())
                && s.nearest
                    .iter()
                    .flat_map(|n| &n.top)
                    .all(|w| w.distance.is_finite() && in_unit(w.prob));
            let probability = s.target_probability.is_none_or(in_unit);
            if !finite || !probability {
                return bad(format!(
                    "step {i} holds a number that is not a distance or a probability"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::diffusion_lm::{Control, NearWord, NearWords};

    fn trajectory() -> VectorTrajectory {
        let step = |index: usize, ids: Vec<u32>| VectorStep {
            index,
            t: 9 - index * 9,
            noise_level: 0.5,
            distance: vec![0.0, 1.5],
            changed: vec![1],
            target_probability: Some(0.75),
            nearest: vec![NearWords {
                position: 1,
                top: [(ids[1], 0.6), (11 - ids[1], 0.3)]
                    .map(|(token, prob)| NearWord {
                        token,
                        prob,
                        distance: 1.5,
                    })
                    .into(),
            }],
            ids,
        };
        VectorTrajectory {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: Family::DiffusionLm,
            model: VectorModelInfo {
                name: "words".into(),
                vocab_size: 8,
                embed_dim: 2,
                model_length: 4,
                diffusion_steps: 10,
                beta_schedule: BetaSchedule::Sqrt,
                classifier: Some("../c".into()),
                mask_id: None,
            },
            settings: VectorSettings {
                steps: 2,
                control: Some(Control::toward("bible")),
                ..VectorSettings::defaults(1)
            },
            prompt: "It".into(),
            prompt_ids: vec![4],
            vocab: [
                (4, "It".to_string()),
                (5, " was".to_string()),
                (6, " is".into()),
            ]
            .into(),
            steps: vec![step(0, vec![4, 6]), step(1, vec![4, 5])],
            texts: vec![" is".into(), " was".into()],
            text: " was".into(),
        }
    }

    #[test]
    fn a_run_round_trips_and_a_damaged_one_is_refused_by_what_is_wrong() {
        let t = trajectory();
        let json = t.to_json();
        assert_eq!(VectorTrajectory::from_json(&json).unwrap(), t);
        assert_eq!(super::super::kind_of(&json).unwrap(), Family::DiffusionLm);
        let damaged: [(&str, fn(&mut VectorTrajectory)); 10] = [
            ("numbered", |t| t.steps[1].index = 5),
            ("rewrites the prompt's word at position 0", |t| {
                t.steps[1].ids[0] = 5
            }),
            ("did not round there", |t| {
                t.steps[0].nearest[0].top.swap(0, 1)
            }),
            ("did not round there", |t| {
                t.steps[0].nearest[0].position = 0
            }),
            ("no text", |t| t.steps[1].nearest[0].top[1].token = 7),
            ("a distance or a probability", |t| {
                t.steps[1].nearest[0].top[1].prob = 1.5
            }),
            ("has no text", |t| t.steps[1].ids[1] = 7),
            ("positions", |t| {
                t.steps[0].distance.pop().map(drop).unwrap_or(())
            }),
            ("probability", |t| t.steps[0].target_probability = Some(1.5)),
            ("texts", |t| t.texts.pop().map(drop).unwrap_or(())),
        ];
        for (what, damage) in damaged {
            let mut bad = trajectory();
            damage(&mut bad);
            let err = VectorTrajectory::from_json(&bad.to_json())
                .unwrap_err()
                .to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
        // A prompt whose gap (its mask token) the run filled: the gap is free.
        let mut gap = trajectory();
        gap.model.mask_id = Some(7);
        gap.vocab.insert(7, "[MASK]".into());
        gap.prompt_ids = vec![7];
        gap.steps[1].ids[0] = 5;
        gap.steps[1].nearest[0].position = 0;
        gap.steps[1].nearest[0].top[0].token = 5;
        assert_eq!(VectorTrajectory::from_json(&gap.to_json()).unwrap(), gap);
        // Another family's file is named as such.
        let mut other = serde_json::to_value(&t).unwrap();
        other["kind"] = "ddpm".into();
        let err = VectorTrajectory::from_json(&other.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ddpm"), "{err}");
    }
}
