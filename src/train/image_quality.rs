//! `unmask quality` for a digits model: are its class-conditional samples the digits asked for,
//! and are they new?
//!
//! - **Recognisable.** A digit classifier of our own — multinomial logistic regression on the
//!   clean training split (not the noisy classifier of guidance, which the samples were steered
//!   by) — reads 10 samples of each class per guidance setting; its accuracy on the validation
//!   split is printed beside it as the baseline.
//! - **Not copies.** The mean distance of each sample to its nearest training image, against the
//!   same figure for the validation images: a model that memorised the training set would score
//!   near 0; samples as new as real unseen digits score about 1× the validation figure.
//!
//! Every sample is drawn with DDIM (Song et al. 2020) at a fixed seed per class, so two models
//! or two scales compare on the same starting noise.

use serde::{Deserialize, Serialize};

use crate::corpus::digits::{CLASSES, Digit, MAX_VALUE, PIXELS};
use crate::network::{NoisePredictor, NoisyClassifier};
use crate::sampler::SampleError;
use crate::sampler::image::{Condition, Guidance, ImageRun, ImageSettings};

/// Samples of each class per guidance setting.
pub const PER_CLASS: usize = 10;
/// DDIM steps of every sample unless asked otherwise.
pub const DEFAULT_STEPS: usize = 100;
/// Gradient-descent iterations of the clean classifier.
const ITERATIONS: usize = 400;
/// Its learning rate.
const LEARNING_RATE: f64 = 0.5;
/// Its L2 penalty.
const L2: f64 = 1e-3;

/// A linear softmax classifier of clean digits on the 0–16 scale.
#[derive(Clone, Debug)]
pub struct DigitClassifier {
    /// `[CLASSES][PIXELS + 1]`: weights, then the bias.
    weights: Vec<[f64; PIXELS + 1]>,
}

fn features(pixels: &[f64]) -> [f64; PIXELS + 1] {
    let mut f = [1.0; PIXELS + 1];
    for (out, &p) in f.iter_mut().zip(pixels) {
        *out = p / f64::from(MAX_VALUE);
    }
    f
}

impl DigitClassifier {
    /// Fits the classifier to `digits` by full-batch gradient descent on the cross-entropy
    /// (deterministic: no random draw anywhere).
    pub fn train(digits: &[Digit]) -> Self {
        let xs: Vec<[f64; PIXELS + 1]> = digits
            .iter()
            .map(|d| features(&d.pixels.map(f64::from)))
            .collect();
        let mut model = Self {
            weights: vec![[0.0; PIXELS + 1]; CLASSES],
        };
        let n = xs.len().max(1) as f64;
        for _ in 0..ITERATIONS {
            let mut grad = vec![[0.0; PIXELS + 1]; CLASSES];
            for (x, d) in xs.iter().zip(digits) {
                let p = model.probabilities_of(x);
                for (k, g) in grad.iter_mut().enumerate() {
                    let err = p[k] - f64::from(u8::from(usize::from(d.label) == k));
                    for (gi, xi) in g.iter_mut().zip(x) {
                        *gi += err * xi / n;
                    }
                }
            }
            for (w, g) in model.weights.iter_mut().zip(&grad) {
                for (wi, gi) in w.iter_mut().zip(g) {
                    *wi -= LEARNING_RATE * (gi + L2 * *wi);
                }
            }
        }
        model
    }

    fn probabilities_of(&self, x: &[f64; PIXELS + 1]) -> [f64; CLASSES] {
        let mut logits = [0.0; CLASSES];
        for (l, w) in logits.iter_mut().zip(&self.weights) {
            *l = w.iter().zip(x).map(|(a, b)| a * b).sum();
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        logits.map(|l| (l - max).exp() / total)
    }

    /// The most likely class of an image on the 0–16 scale.
    pub fn predict(&self, pixels: &[f64]) -> usize {
        let p = self.probabilities_of(&features(pixels));
        (0..CLASSES)
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0)
    }

    /// p(`class` | image) of an image on the 0–16 scale.
    pub fn probability(&self, pixels: &[f64], class: usize) -> f64 {
        self.probabilities_of(&features(pixels))
            .get(class)
            .copied()
            .unwrap_or(0.0)
    }

    /// Its accuracy on labelled digits.
    pub fn accuracy(&self, digits: &[Digit]) -> f64 {
        let right = digits
            .iter()
            .filter(|d| self.predict(&d.pixels.map(f64::from)) == usize::from(d.label))
            .count();
        right as f64 / digits.len().max(1) as f64
    }
}

/// The Euclidean distance (0–16 scale) from `image` to its nearest image in `set`.
pub fn nearest_distance(image: &[f64], set: &[Digit]) -> f64 {
    set.iter()
        .map(|d| {
            d.pixels
                .iter()
                .zip(image)
                .map(|(&a, &b)| (f64::from(a) - b).powi(2))
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min)
        .sqrt()
}

/// The mean of [`nearest_distance`] over `images`.
pub fn mean_nearest_distance(images: &[Vec<f64>], set: &[Digit]) -> f64 {
    images.iter().map(|i| nearest_distance(i, set)).sum::<f64>() / images.len().max(1) as f64
}

/// The scores of one guidance setting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GuidanceScore {
    /// The guidance (kind and scale).
    pub guidance: Guidance,
    /// The clean classifier's accuracy on the samples.
    pub accuracy: f64,
    /// The accuracy per class asked for.
    pub per_class: Vec<f64>,
    /// The samples' mean distance to their nearest training image.
    pub nearest_train_distance: f64,
}

/// What `unmask quality` reports for a digits model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageQualityReport {
    /// DDIM steps of every sample.
    pub steps: usize,
    /// One entry per guidance setting.
    pub scores: Vec<GuidanceScore>,
    /// The clean classifier's accuracy on the validation split.
    pub validation_accuracy: f64,
    /// The validation images' mean distance to their nearest training image.
    pub validation_nearest_train_distance: f64,
}

/// Images of `pixels` each on the data's 0–16 scale from the diffusion's −1…1, one vector per
/// image.
pub fn to_data_scale(x: &[f32], pixels: usize) -> Vec<Vec<f64>> {
    let max = f64::from(MAX_VALUE);
    x.chunks(pixels.max(1))
        .map(|image| {
            image
                .iter()
                .map(|&v| ((f64::from(v) + 1.0) * max / 2.0).clamp(0.0, max))
                .collect()
        })
        .collect()
}

/// [`PER_CLASS`] samples of `class` with `guidance` by DDIM in `steps`, seeded by the class.
pub async fn samples<N: NoisePredictor, C: NoisyClassifier>(
    net: &mut N,
    classifier: Option<&mut C>,
    class: usize,
    guidance: Guidance,
    steps: usize,
) -> Result<Vec<Vec<f64>>, SampleError> {
    let settings = ImageSettings::Ddim {
        steps,
        eta: 0.0,
        condition: Condition {
            class: Some(class),
            guidance,
            count: PER_CLASS,
            seed: class as u64,
        },
    };
    let spec = net.spec().clone();
    let mut run = ImageRun::new(&settings, &spec, classifier.as_ref().map(|c| c.classes()))?;
    // The classifier only steers classifier guidance: elsewhere it is not called at all.
    let mut classifier = classifier.filter(|_| matches!(guidance, Guidance::Classifier { .. }));
    let mut last = None;
    while let Some(step) = run.step(net, classifier.as_deref_mut()).await? {
        last = Some(step.x);
    }
    Ok(to_data_scale(&last.unwrap_or_default(), spec.pixels()))
}

/// Scores every guidance setting of `guidances` on `net` (and `classifier` for classifier
/// guidance) against the clean classifier trained on `train`, with `valid` as the baseline.
pub async fn check<N: NoisePredictor, C: NoisyClassifier>(
    net: &mut N,
    mut classifier: Option<&mut C>,
    guidances: &[Guidance],
    steps: usize,
    train: &[Digit],
    valid: &[Digit],
) -> Result<ImageQualityReport, SampleError> {
    let judge = DigitClassifier::train(train);
    let mut scores = Vec::new();
    for &guidance in guidances {
        let mut per_class = Vec::new();
        let mut all = Vec::new();
        for class in 0..CLASSES {
            let images = samples(net, classifier.as_deref_mut(), class, guidance, steps).await?;
            let right = images.iter().filter(|i| judge.predict(i) == class).count();
            per_class.push(right as f64 / images.len().max(1) as f64);
            all.extend(images);
        }
        scores.push(GuidanceScore {
            guidance,
            accuracy: per_class.iter().sum::<f64>() / CLASSES as f64,
            per_class,
            nearest_train_distance: mean_nearest_distance(&all, train),
        });
    }
    let valid_images: Vec<Vec<f64>> = valid
        .iter()
        .map(|d| d.pixels.map(f64::from).to_vec())
        .collect();
    Ok(ImageQualityReport {
        steps,
        scores,
        validation_accuracy: judge.accuracy(valid),
        validation_nearest_train_distance: mean_nearest_distance(&valid_images, train),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(split: crate::corpus::Split) -> Vec<Digit> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits");
        crate::corpus::digits::read_digits(&dir, split).unwrap()
    }

    #[test]
    fn the_clean_classifier_reads_unseen_digits_and_training_images_are_their_own_nearest() {
        let (train, valid) = (
            digits(crate::corpus::Split::Train),
            digits(crate::corpus::Split::Valid),
        );
        let judge = DigitClassifier::train(&train);
        let accuracy = judge.accuracy(&valid);
        assert!(accuracy > 0.9, "validation accuracy {accuracy}");
        // A copy of a training image is at distance 0; unseen digits are not.
        let copy = train[5].pixels.map(f64::from);
        assert_eq!(nearest_distance(&copy, &train), 0.0);
        let valid_images: Vec<Vec<f64>> = valid
            .iter()
            .map(|d| d.pixels.map(f64::from).to_vec())
            .collect();
        assert!(mean_nearest_distance(&valid_images, &train) > 5.0);
        // A blank image is far from every digit.
        assert!(nearest_distance(&[0.0; PIXELS], &train) > 10.0);
    }
}
