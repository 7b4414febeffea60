//! The image samplers' knobs by name, through the same table as the text samplers' ([`KNOBS`]):
//! the page's link parser and writer, its controls and [`ImageSettings::validate`] read one range
//! per knob. `steps`, `cfg` and `seed` mean what they mean for text (the family's sampling steps,
//! classifier-free guidance's scale, the seed); `eta`, `variance`, `class`, `classifier_scale` and
//! `count` are the images' own.
//!
//! Guidance is one choice with two knobs: `cfg` above 0 is classifier-free guidance at that
//! scale, `classifier_scale` (any value, 0 included: the classifier then only watches) is
//! classifier guidance, and setting one switches the other off.

use super::SettingsError;
use super::gaussian::Variance;
use super::image::{Condition, Guidance, ImageSettings};
use super::settings::{KNOBS, Knob, KnobValue, describe};

/// The two reverse chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageSampler {
    /// DDPM's ancestral sampler over all T steps.
    Ddpm,
    /// DDIM over a few of them.
    Ddim,
}

impl ImageSampler {
    /// Both, the page's default first.
    pub const ALL: [ImageSampler; 2] = [ImageSampler::Ddim, ImageSampler::Ddpm];

    /// The name in links, flags and settings files.
    pub fn name(self) -> &'static str {
        match self {
            ImageSampler::Ddpm => "ddpm",
            ImageSampler::Ddim => "ddim",
        }
    }

    /// The sampler called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// DDIM's steps on a fresh page: few enough to watch, enough for a clean digit.
pub const DEFAULT_DDIM_STEPS: usize = 50;

impl ImageSettings {
    /// `sampler` with its defaults: DDIM at [`DEFAULT_DDIM_STEPS`] and η = 0 (deterministic), DDPM
    /// with σ² = β; any class, unguided, one image, seed 0.
    pub fn defaults(sampler: ImageSampler) -> Self {
        let condition = Condition::default();
        match sampler {
            ImageSampler::Ddpm => ImageSettings::Ddpm {
                variance: Variance::Beta,
                condition,
            },
            ImageSampler::Ddim => ImageSettings::Ddim {
                steps: DEFAULT_DDIM_STEPS,
                eta: 0.0,
                condition,
            },
        }
    }

    /// Which chain.
    pub fn sampler(&self) -> ImageSampler {
        match self {
            ImageSettings::Ddpm { .. } => ImageSampler::Ddpm,
            ImageSettings::Ddim { .. } => ImageSampler::Ddim,
        }
    }

    /// These settings for another chain: its defaults with this run's class, guidance, count
    /// and seed.
    pub fn switched(&self, sampler: ImageSampler) -> Self {
        let mut next = Self::defaults(sampler);
        *next.condition_mut() = self.condition().clone();
        next
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.condition().seed
    }

    /// Whether this chain has `knob`.
    pub fn has(&self, knob: Knob) -> bool {
        self.get(knob).is_some()
    }

    /// `knob`'s value, or `None` where this chain has no such knob.
    pub fn get(&self, knob: Knob) -> Option<KnobValue> {
        let c = self.condition();
        let number = |x: f64| Some(KnobValue::Number(x));
        match (self, knob) {
            (_, Knob::Class) => Some(
                c.class
                    .map_or(KnobValue::Off, |y| KnobValue::Number(y as f64)),
            ),
            (_, Knob::Cfg) => number(match c.guidance {
                Guidance::Free { scale } => scale,
                _ => 0.0,
            }),
            (_, Knob::ClassifierScale) => Some(match c.guidance {
                Guidance::Classifier { scale } => KnobValue::Number(scale),
                _ => KnobValue::Off,
            }),
            (_, Knob::Count) => number(c.count as f64),
            (_, Knob::Seed) => number(c.seed as f64),
            (ImageSettings::Ddpm { variance, .. }, Knob::Variance) => {
                Some(KnobValue::Variance(*variance))
            }
            (ImageSettings::Ddim { steps, .. }, Knob::Steps) => number(*steps as f64),
            (ImageSettings::Ddim { eta, .. }, Knob::Eta) => number(*eta),
            _ => None,
        }
    }

    /// Sets `knob`, checked against its row of [`KNOBS`]; refused where this chain has no such
    /// knob or the value is out of range.
    pub fn set(&mut self, knob: Knob, value: KnobValue) -> Result<(), SettingsError> {
        let spec = knob.spec();
        if !self.has(knob) {
            return Err(SettingsError::NoSuchKnob {
                sampler: self.sampler().name(),
                knob,
            });
        }
        if !spec.admits(value) {
            return Err(SettingsError::OutOfRange {
                knob,
                value: describe(value),
                expected: spec.expected(),
            });
        }
        let x = match value {
            KnobValue::Number(x) => Some(x),
            _ => None,
        };
        let c = self.condition_mut();
        match knob {
            Knob::Class => c.class = x.map(|y| y as usize),
            Knob::Cfg => match (x, c.guidance) {
                (Some(w), _) if w > 0.0 => c.guidance = Guidance::Free { scale: w },
                (_, Guidance::Free { .. }) => c.guidance = Guidance::None,
                _ => {}
            },
            Knob::ClassifierScale => match (x, c.guidance) {
                (Some(s), _) => c.guidance = Guidance::Classifier { scale: s },
                (None, Guidance::Classifier { .. }) => c.guidance = Guidance::None,
                _ => {}
            },
            Knob::Count => c.count = x.unwrap_or(1.0) as usize,
            Knob::Seed => c.seed = x.unwrap_or(0.0) as u64,
            _ => match (self, value) {
                (ImageSettings::Ddpm { variance, .. }, KnobValue::Variance(v)) => *variance = v,
                (ImageSettings::Ddim { steps, .. }, KnobValue::Number(n))
                    if knob == Knob::Steps =>
                {
                    *steps = n as usize
                }
                (ImageSettings::Ddim { eta, .. }, KnobValue::Number(e)) if knob == Knob::Eta => {
                    *eta = e
                }
                _ => {}
            },
        }
        Ok(())
    }

    /// Checks every knob against its row of [`KNOBS`] (NaN and infinities included); what
    /// depends on the model (its T, its classes, a classifier) is [`super::image::ImageRun`]'s.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for spec in &KNOBS {
            if let Some(value) = self.get(spec.knob)
                && !spec.admits(value)
            {
                return Err(SettingsError::OutOfRange {
                    knob: spec.knob,
                    value: describe(value),
                    expected: spec.expected(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_round_trips_through_set_and_get() {
        let mut s = ImageSettings::defaults(ImageSampler::Ddim);
        let cases = [
            (Knob::Steps, KnobValue::Number(20.0)),
            (Knob::Eta, KnobValue::Number(0.5)),
            (Knob::Class, KnobValue::Number(7.0)),
            (Knob::Count, KnobValue::Number(4.0)),
            (Knob::Seed, KnobValue::Number(9.0)),
            (Knob::Cfg, KnobValue::Number(2.0)),
        ];
        for (knob, value) in cases {
            s.set(knob, value).unwrap();
            assert_eq!(s.get(knob), Some(value), "{knob:?}");
        }
        s.validate().unwrap();
        let mut d = s.switched(ImageSampler::Ddpm);
        assert_eq!(d.condition(), s.condition());
        d.set(Knob::Variance, KnobValue::Variance(Variance::Posterior))
            .unwrap();
        assert_eq!(
            d.get(Knob::Variance),
            Some(KnobValue::Variance(Variance::Posterior))
        );
    }

    #[test]
    fn the_two_guidance_knobs_are_one_choice() {
        let mut s = ImageSettings::defaults(ImageSampler::Ddim);
        s.set(Knob::Cfg, KnobValue::Number(3.0)).unwrap();
        assert_eq!(s.condition().guidance, Guidance::Free { scale: 3.0 });
        // Classifier guidance replaces classifier-free guidance, at 0 too.
        s.set(Knob::ClassifierScale, KnobValue::Number(0.0))
            .unwrap();
        assert_eq!(s.condition().guidance, Guidance::Classifier { scale: 0.0 });
        assert_eq!(s.get(Knob::Cfg), Some(KnobValue::Number(0.0)));
        // cfg 0 leaves the classifier alone; cfg > 0 takes over; its 0 then switches it off.
        s.set(Knob::Cfg, KnobValue::Number(0.0)).unwrap();
        assert_eq!(s.condition().guidance, Guidance::Classifier { scale: 0.0 });
        s.set(Knob::Cfg, KnobValue::Number(1.5)).unwrap();
        assert_eq!(s.get(Knob::ClassifierScale), Some(KnobValue::Off));
        s.set(Knob::Cfg, KnobValue::Number(0.0)).unwrap();
        assert_eq!(s.condition().guidance, Guidance::None);
    }

    #[test]
    fn knobs_a_chain_lacks_and_values_outside_the_table_are_refused() {
        let mut ddpm = ImageSettings::defaults(ImageSampler::Ddpm);
        let err = ddpm.set(Knob::Steps, KnobValue::Number(20.0)).unwrap_err();
        assert!(matches!(
            err,
            SettingsError::NoSuchKnob {
                knob: Knob::Steps,
                sampler: "ddpm"
            }
        ));
        assert!(err.to_string().contains("ddim"), "{err}");
        let err = ddpm
            .set(Knob::Temperature, KnobValue::Number(1.0))
            .unwrap_err();
        assert!(matches!(err, SettingsError::NoSuchKnob { .. }), "{err}");
        let mut ddim = ImageSettings::defaults(ImageSampler::Ddim);
        for (knob, bad) in [
            (Knob::Eta, 1.5),
            (Knob::Eta, f64::NAN),
            (Knob::Count, 0.0),
            (Knob::Class, 2.5),
            (Knob::ClassifierScale, -1.0),
            (Knob::Cfg, f64::INFINITY),
        ] {
            let before = ddim.clone();
            let err = ddim.set(knob, KnobValue::Number(bad)).unwrap_err();
            assert!(
                matches!(err, SettingsError::OutOfRange { .. }),
                "{knob:?} {bad}: {err}"
            );
            assert_eq!(ddim, before, "a refused value changes nothing");
        }
        // A text knob on an image sampler names who has it.
        let err = ImageSettings::defaults(ImageSampler::Ddim)
            .set(Knob::Remasking, KnobValue::Off)
            .unwrap_err();
        assert!(err.to_string().contains("llada"), "{err}");
        // validate catches what serde let in.
        let nan = ImageSettings::Ddim {
            steps: 10,
            eta: f64::NAN,
            condition: Condition::default(),
        };
        assert!(nan.validate().is_err());
    }
}
