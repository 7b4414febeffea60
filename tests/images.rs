//! The image samplers with stand-in networks: an oracle noise predictor for a data set of one
//! image per class (its ε is the exact noise, so every chain must land on that image), and an
//! analytic classifier whose log-probability rises towards its class's image.

use unmask::network::{ImageSpec, ModelError, NoisePredictor, NoisyClassifier};
use unmask::sampler::gaussian::{BetaSchedule, Schedule, Variance};
use unmask::sampler::image::{Condition, Guidance, ImageRun, ImageSettings, ImageStep};
use unmask::sampler::{SampleError, SettingsError};

const SIDE: usize = 4;
const PIXELS: usize = SIDE * SIDE;
const CLASSES: usize = 3;

/// The image of class `y` (and, for the null class, their mean).
fn target(y: Option<usize>) -> Vec<f64> {
    match y {
        Some(y) => (0..PIXELS)
            .map(|i| (((i + 5 * y) % 7) as f64 / 3.0 - 1.0).clamp(-1.0, 1.0))
            .collect(),
        None => (0..PIXELS)
            .map(|i| (0..CLASSES).map(|y| target(Some(y))[i]).sum::<f64>() / CLASSES as f64)
            .collect(),
    }
}

/// ε = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t): the noise that made x_t from its class's image.
struct Oracle {
    spec: ImageSpec,
    schedule: Schedule,
    calls: Vec<(usize, Vec<Option<usize>>)>,
}

impl Oracle {
    fn new(steps: usize) -> Self {
        let spec = ImageSpec {
            side: SIDE,
            classes: CLASSES,
            diffusion_steps: steps,
            beta_schedule: BetaSchedule::Linear,
        };
        Oracle {
            schedule: Schedule::new(spec.beta_schedule, steps).unwrap(),
            spec,
            calls: Vec::new(),
        }
    }
}

impl Oracle {
    /// E[x₀ | x_t] when x₀ is one of the class images, each as likely: the exact denoiser of the
    /// unconditional data.
    fn mixture_mean(&self, x_t: &[f64], t: usize) -> Vec<f64> {
        let a = self.schedule.alpha_bars[t];
        let logs: Vec<f64> = (0..CLASSES)
            .map(|y| {
                let m = target(Some(y));
                -x_t.iter()
                    .zip(&m)
                    .map(|(x, m)| (x - a.sqrt() * m).powi(2))
                    .sum::<f64>()
                    / (2.0 * (1.0 - a))
            })
            .collect();
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = w.iter().sum();
        (0..PIXELS)
            .map(|i| {
                (0..CLASSES)
                    .map(|y| w[y] / total * target(Some(y))[i])
                    .sum()
            })
            .collect()
    }
}

impl NoisePredictor for Oracle {
    fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    async fn predict_noise(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError> {
        self.calls.push((t, classes.to_vec()));
        let mut out = Vec::with_capacity(x.len());
        for (image, &y) in x.chunks(PIXELS).zip(classes) {
            let x_t: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
            let x0 = match y {
                Some(_) => target(y),
                None => self.mixture_mean(&x_t, t),
            };
            out.extend(self.schedule.eps_of(&x_t, &x0, t).iter().map(|&e| e as f32));
        }
        Ok(out)
    }
}

/// log p(y | x) = −‖x − m_y‖²/2 + const: its gradient points at class y's image.
struct Analytic;

impl NoisyClassifier for Analytic {
    fn classes(&self) -> usize {
        CLASSES
    }

    async fn log_prob_gradient(
        &mut self,
        x: &[f32],
        _t: usize,
        classes: &[usize],
    ) -> Result<(Vec<f32>, Vec<f64>), ModelError> {
        let mut grad = Vec::new();
        let mut probs = Vec::new();
        for (image, &y) in x.chunks(PIXELS).zip(classes) {
            let m = target(Some(y));
            grad.extend(
                image
                    .iter()
                    .zip(&m)
                    .map(|(&x, &m)| (m - f64::from(x)) as f32),
            );
            let d: f64 = image
                .iter()
                .zip(&m)
                .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                .sum();
            probs.push((-d / 2.0).exp());
        }
        Ok((grad, probs))
    }
}

fn run(
    settings: &ImageSettings,
    net: &mut Oracle,
    classifier: Option<&mut Analytic>,
) -> Result<Vec<ImageStep>, SampleError> {
    let mut r = ImageRun::new(
        settings,
        &net.spec.clone(),
        classifier.as_ref().map(|c| c.classes()),
    )?;
    let mut steps = Vec::new();
    let mut classifier = classifier;
    while let Some(s) = pollster::block_on(r.step(net, classifier.as_deref_mut()))? {
        steps.push(s);
    }
    Ok(steps)
}

fn condition(class: Option<usize>, guidance: Guidance, seed: u64) -> Condition {
    Condition {
        class,
        guidance,
        count: 2,
        seed,
    }
}

fn max_error(images: &[f32], want: &[f64]) -> f64 {
    images
        .chunks(PIXELS)
        .flat_map(|img| {
            img.iter()
                .zip(want)
                .map(|(&a, &b)| (f64::from(a) - b).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn with_the_exact_noise_every_chain_lands_on_its_class_s_image() {
    let y = Some(1);
    let c = condition(y, Guidance::None, 4);
    for settings in [
        ImageSettings::Ddpm {
            variance: Variance::Beta,
            condition: c.clone(),
        },
        ImageSettings::Ddpm {
            variance: Variance::Posterior,
            condition: c.clone(),
        },
        ImageSettings::Ddim {
            steps: 10,
            eta: 0.0,
            condition: c.clone(),
        },
        ImageSettings::Ddim {
            steps: 25,
            eta: 1.0,
            condition: c.clone(),
        },
    ] {
        let mut net = Oracle::new(100);
        let steps = run(&settings, &mut net, None).unwrap();
        let expected = match &settings {
            ImageSettings::Ddpm { .. } => 100,
            ImageSettings::Ddim { steps, .. } => *steps,
        };
        assert_eq!(steps.len(), expected, "{}", settings.name());
        // One call of the predictor a step, from T − 1 down to 0.
        assert_eq!(net.calls.len(), expected);
        assert_eq!(net.calls[0].0, 99);
        assert_eq!(net.calls.last().unwrap().0, 0);
        let last = steps.last().unwrap();
        assert!(
            max_error(&last.x, &target(y)) < 1e-5,
            "{}: {}",
            settings.name(),
            max_error(&last.x, &target(y))
        );
        assert!(max_error(&last.x0, &target(y)) < 1e-5);
        // The noise's share falls to almost nothing.
        assert!(steps[0].noise_level > 0.7 && last.noise_level < 0.02);
    }
}

#[test]
fn a_seed_replays_a_run_and_another_seed_draws_another() {
    let settings = |seed| ImageSettings::Ddpm {
        variance: Variance::Beta,
        condition: condition(Some(2), Guidance::None, seed),
    };
    let a = run(&settings(1), &mut Oracle::new(50), None).unwrap();
    let b = run(&settings(1), &mut Oracle::new(50), None).unwrap();
    let c = run(&settings(2), &mut Oracle::new(50), None).unwrap();
    assert_eq!(a, b);
    assert_ne!(a[10].x, c[10].x);
}

#[test]
fn classifier_free_guidance_batches_both_halves_in_one_call() {
    let settings = ImageSettings::Ddim {
        steps: 5,
        eta: 0.0,
        condition: condition(Some(0), Guidance::Free { scale: 2.0 }, 3),
    };
    let mut net = Oracle::new(100);
    let steps = run(&settings, &mut net, None).unwrap();
    assert_eq!(net.calls.len(), 5);
    assert_eq!(net.calls[0].1, vec![Some(0), Some(0), None, None]);
    assert_eq!(steps.last().unwrap().model_calls, 5);
    // w = 0 is the conditional model alone, which lands on its image.
    let plain = ImageSettings::Ddim {
        steps: 5,
        eta: 0.0,
        condition: condition(Some(0), Guidance::Free { scale: 0.0 }, 3),
    };
    let steps = run(&plain, &mut Oracle::new(100), None).unwrap();
    assert!(max_error(&steps.last().unwrap().x, &target(Some(0))) < 1e-5);
}

#[test]
fn classifier_guidance_pulls_an_unconditional_chain_to_its_class() {
    // Unguided, the exact unconditional denoiser lands on one of the three class images, chosen by
    // the seed; the classifier's gradient makes it class 2's more often, the more the larger the
    // scale, on both samplers.
    let hits = |ddim: bool, scale: f64| {
        (0..12)
            .filter(|&seed| {
                let c = Condition {
                    class: Some(2),
                    guidance: Guidance::Classifier { scale },
                    count: 1,
                    seed,
                };
                let settings = if ddim {
                    ImageSettings::Ddim {
                        steps: 50,
                        eta: 1.0,
                        condition: c,
                    }
                } else {
                    ImageSettings::Ddpm {
                        variance: Variance::Posterior,
                        condition: c,
                    }
                };
                let steps = run(&settings, &mut Oracle::new(100), Some(&mut Analytic)).unwrap();
                let last = steps.last().unwrap();
                assert!(last.class_prob.is_some());
                max_error(&last.x, &target(Some(2))) < 1e-3
            })
            .count()
    };
    for ddim in [false, true] {
        let (h0, h3) = (hits(ddim, 0.0), hits(ddim, 3.0));
        assert!(h0 < 12, "ddim={ddim}: unguided runs all landed on class 2");
        assert!(h3 > h0 && h3 == 12, "ddim={ddim}: {h0} → {h3} of 12");
    }
}

#[test]
fn settings_a_network_cannot_serve_are_refused_before_the_first_call() {
    let spec = Oracle::new(10).spec;
    let at = |c: Condition| ImageSettings::Ddpm {
        variance: Variance::Beta,
        condition: c,
    };
    let cases = [
        (at(condition(Some(3), Guidance::None, 0)), "class 3"),
        (
            at(condition(None, Guidance::Free { scale: 1.0 }, 0)),
            "give one",
        ),
        (
            at(condition(Some(1), Guidance::Classifier { scale: 1.0 }, 0)),
            "classifier",
        ),
        (
            at(condition(Some(1), Guidance::Free { scale: f64::NAN }, 0)),
            "cfg_scale",
        ),
        (
            at(Condition {
                count: 0,
                ..Condition::default()
            }),
            "count",
        ),
        (
            ImageSettings::Ddim {
                steps: 11,
                eta: 0.0,
                condition: Condition::default(),
            },
            "steps",
        ),
        (
            ImageSettings::Ddim {
                steps: 5,
                eta: 2.0,
                condition: Condition::default(),
            },
            "eta",
        ),
    ];
    for (settings, said) in cases {
        let err = ImageRun::new(&settings, &spec, None).expect_err("accepted");
        assert!(err.to_string().contains(said), "{said}: {err}");
    }
    let unconditional = ImageSpec { classes: 0, ..spec };
    let err = ImageRun::new(
        &at(condition(Some(0), Guidance::Free { scale: 1.0 }, 0)),
        &unconditional,
        None,
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            SettingsError::NoSuchClass { .. } | SettingsError::UnconditionalModel
        ),
        "{err}"
    );
}
