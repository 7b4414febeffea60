//! An image run as the page draws it: x_t and x̂₀ of every image at any step of the timeline
//! (live, or from an imported trajectory), and the series the plots draw — the classifier's
//! p(y | x_t) of the target class and ‖x_t‖ per step.
//!
//! Pixels are on the diffusion's scale (−1 blank, 1 ink); [`crate::export::gray_of`] turns one
//! into the grey level the page paints, ink dark on paper as the digits were written.

use crate::export::{ExportError, encode_apng, encode_png, grid, run_frames, svg};
use crate::sampler::gaussian::Schedule;
use crate::sampler::image::ImageStep;
use crate::trajectory::images::ImageTrajectory;

/// Real digits for the page's forward-process view: one validation image of each class, on the
/// diffusion's scale, written by `unmask prepare --digits --examples FILE` from `data/digits`
/// (shipped as `www/models/default/ddpm/examples.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DigitExamples {
    /// Where the images come from, and their licence.
    pub licence: String,
    /// Pixels along a side.
    pub side: usize,
    /// One image per class, by class.
    pub images: Vec<DigitExample>,
}

/// One real digit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DigitExample {
    /// The digit shown.
    pub class: usize,
    /// Row-major pixels on the diffusion's scale (−1 blank, 1 ink).
    pub x: Vec<f32>,
}

/// Where the page finds its real digits, relative to the page.
pub const DIGIT_EXAMPLES_URL: &str = "./models/default/ddpm/examples.json";

impl DigitExamples {
    /// Reads and checks the file: every image `side²` finite values in [−1, 1].
    pub fn from_json(text: &str) -> Result<Self, String> {
        let e: DigitExamples =
            serde_json::from_str(text).map_err(|e| format!("unreadable examples: {e}"))?;
        crate::limits::check("side", e.side, crate::model::patch_dit::MAX_SIDE)
            .map_err(|e| e.to_string())?;
        if let Some(bad) = e
            .images
            .iter()
            .find(|i| i.x.len() != e.side * e.side || i.x.iter().any(|v| !(-1.0..=1.0).contains(v)))
        {
            return Err(format!(
                "the example of class {} is not {} values in [−1, 1]",
                bad.class,
                e.side * e.side
            ));
        }
        Ok(e)
    }
}

/// Classes the page offers before a digits model has said how many it has.
pub const DIGIT_CLASSES: usize = 10;

/// The steps of one image run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageReplay {
    side: usize,
    count: usize,
    /// x_T, the noise the run starts from (empty for an imported run, whose file keeps none).
    start: Vec<f32>,
    steps: Vec<ImageStep>,
    /// Steps the run will take.
    total: usize,
    /// Mean over the images of ‖x‖ after each step.
    norms: Vec<f64>,
    /// Mean over the images of p(y | x_t) at each step, where a classifier watched.
    class_probs: Vec<Option<f64>>,
}

impl ImageReplay {
    /// A run of `count` images of `side`² pixels starting from `start` = x_T, `total` steps long.
    pub fn new(side: usize, count: usize, start: Vec<f32>, total: usize) -> Self {
        Self {
            side,
            count,
            start,
            total,
            ..Self::default()
        }
    }

    /// A recorded run, ready to play with no model.
    pub fn from_trajectory(t: &ImageTrajectory) -> Self {
        let count = t.settings.condition().count;
        let mut r = Self::new(t.model.image_size, count, Vec::new(), t.steps.len());
        for s in &t.steps {
            r.push(s.clone());
        }
        r
    }

    /// Appends the next step; one whose images are not this run's size is dropped (the worker
    /// never sends one, and an imported file was checked).
    pub fn push(&mut self, step: ImageStep) {
        let values = self.count * self.side * self.side;
        if step.x.len() != values || step.x0.len() != values {
            return;
        }
        self.norms.push(self.mean_norm(&step.x));
        self.class_probs.push(
            step.class_prob
                .as_ref()
                .and_then(|p| (!p.is_empty()).then(|| p.iter().sum::<f64>() / p.len() as f64)),
        );
        self.steps.push(step);
    }

    fn mean_norm(&self, x: &[f32]) -> f64 {
        let pixels = (self.side * self.side).max(1);
        let norms: f64 = x
            .chunks(pixels)
            .map(|img| {
                img.iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum();
        norms / self.count.max(1) as f64
    }

    /// Steps so far.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step has arrived.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Steps the run takes in all.
    pub fn total(&self) -> usize {
        self.total.max(self.steps.len())
    }

    /// Pixels along a side.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Images drawn together.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Step `at` (clamped to the last).
    pub fn step(&self, at: usize) -> Option<&ImageStep> {
        self.steps.get(at.min(self.steps.len().checked_sub(1)?))
    }

    /// Every step.
    pub fn steps(&self) -> &[ImageStep] {
        &self.steps
    }

    /// The images at step `at`: x after it and the x̂₀ it predicted; before any step, x_T (and
    /// no prediction yet).
    pub fn frame(&self, at: usize) -> (&[f32], Option<&[f32]>) {
        match self.step(at) {
            Some(s) => (&s.x, Some(&s.x0)),
            None => (&self.start, None),
        }
    }

    /// The finished images (the last step's x), when the run has a step.
    pub fn samples(&self) -> Option<&[f32]> {
        self.steps.last().map(|s| s.x.as_slice())
    }

    /// Mean ‖x‖ after each step.
    pub fn norm_series(&self) -> &[f64] {
        &self.norms
    }

    /// Mean p(y | x_t) of the target class at each step, where a classifier watched.
    pub fn class_prob_series(&self) -> &[Option<f64>] {
        &self.class_probs
    }
}

/// A picture of an image run for posts that cannot embed the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PictureKind {
    /// The step shown: x_t beside x̂₀, a row per image (PNG).
    View,
    /// The finished samples as one grid (PNG).
    Samples,
    /// The whole run of the first image, x_t beside x̂₀ (animated PNG).
    Animation,
    /// The first image at the step shown, a rectangle per pixel (SVG).
    Vector,
}

/// A picture file.
#[derive(Clone, Debug, PartialEq)]
pub struct PictureFile {
    /// A file name for it.
    pub name: &'static str,
    /// Its media type.
    pub mime: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Output pixels per image pixel in the page's pictures.
pub const PICTURE_SCALE: usize = 16;
/// Milliseconds per frame of the page's animations.
pub const ANIMATION_DELAY_MS: u16 = 125;

impl ImageReplay {
    /// The picture `kind` of this run at step `at`.
    pub fn picture(&self, at: usize, kind: PictureKind) -> Result<PictureFile, ExportError> {
        let pixels = self.side * self.side;
        let images =
            |x: &[f32]| -> Vec<Vec<f32>> { x.chunks(pixels.max(1)).map(<[f32]>::to_vec).collect() };
        let step = self.step(at).ok_or(ExportError::Empty("no step yet"))?;
        Ok(match kind {
            PictureKind::View => {
                let (x, x0) = (images(&step.x), images(&step.x0));
                let pairs: Vec<&[f32]> = x
                    .iter()
                    .zip(&x0)
                    .flat_map(|(a, b)| [a.as_slice(), b.as_slice()])
                    .collect();
                PictureFile {
                    name: "unmask-step.png",
                    mime: "image/png",
                    bytes: encode_png(&grid(&pairs, self.side, 2, PICTURE_SCALE)?)?,
                }
            }
            PictureKind::Samples => {
                let last = self.steps.last().ok_or(ExportError::Empty("no step yet"))?;
                let x = images(&last.x);
                let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
                let columns = (refs.len() as f64).sqrt().ceil() as usize;
                PictureFile {
                    name: "unmask-samples.png",
                    mime: "image/png",
                    bytes: encode_png(&grid(&refs, self.side, columns.max(1), PICTURE_SCALE)?)?,
                }
            }
            PictureKind::Animation => PictureFile {
                name: "unmask-run.png",
                mime: "image/apng",
                bytes: encode_apng(
                    &run_frames(&self.steps, self.side, PICTURE_SCALE)?,
                    ANIMATION_DELAY_MS,
                )?,
            },
            PictureKind::Vector => PictureFile {
                name: "unmask-step.svg",
                mime: "image/svg+xml",
                bytes: svg(
                    step.x.get(..pixels).unwrap_or_default(),
                    self.side,
                    PICTURE_SCALE,
                )?
                .into_bytes(),
            },
        })
    }
}

/// The forward process q(x_t | x₀) = N(√ᾱ_t·x₀, (1 − ᾱ_t)·I) on one image with a fixed draw of
/// the noise `eps`: what the page's forward view shows as its slider drags t. `None` when `t` is
/// outside the schedule or the sizes differ.
pub fn noised(schedule: &Schedule, x0: &[f32], eps: &[f32], t: usize) -> Option<Vec<f32>> {
    if t >= schedule.steps() || x0.len() != eps.len() {
        return None;
    }
    let a = schedule.alpha_bar(Some(t));
    let (keep, noise) = (a.sqrt(), (1.0 - a).sqrt());
    Some(
        x0.iter()
            .zip(eps)
            .map(|(&x, &e)| (keep * f64::from(x) + noise * f64::from(e)) as f32)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::gaussian::BetaSchedule;

    fn step(index: usize, x: f32, prob: Option<f64>) -> ImageStep {
        ImageStep {
            index,
            model_calls: index + 1,
            t: 9 - index,
            noise_level: 0.5,
            x: vec![x; 8],
            x0: vec![-x; 8],
            class_prob: prob.map(|p| vec![p, 1.0 - p]),
        }
    }

    #[test]
    fn steps_give_frames_and_the_plotted_series() {
        let mut r = ImageReplay::new(2, 2, vec![0.5; 8], 3);
        assert_eq!(r.frame(0), (&[0.5f32; 8][..], None));
        r.push(step(0, 1.0, Some(0.8)));
        r.push(step(1, 0.5, None));
        // A step of the wrong size is dropped.
        r.push(ImageStep {
            x: vec![0.0; 3],
            ..step(2, 0.0, None)
        });
        assert_eq!(r.len(), 2);
        assert_eq!(r.total(), 3);
        let (x, x0) = r.frame(1);
        assert_eq!(x, &[0.5; 8]);
        assert_eq!(x0, Some(&[-0.5f32; 8][..]));
        // Past the end, the last step.
        assert_eq!(r.frame(99).0, &[0.5; 8]);
        // ‖x‖ of a 2×2 image of ones is 2; the mean over both images too.
        assert_eq!(r.norm_series(), &[2.0, 1.0]);
        assert_eq!(r.class_prob_series(), &[Some(0.5), None]);
        assert_eq!(r.samples(), Some(&[0.5f32; 8][..]));
    }

    #[test]
    fn every_picture_of_a_run_is_drawn_and_none_before_its_first_step() {
        let mut r = ImageReplay::new(2, 2, vec![0.0; 8], 2);
        for kind in [PictureKind::View, PictureKind::Vector] {
            assert!(r.picture(0, kind).is_err());
        }
        r.push(step(0, 1.0, None));
        r.push(step(1, -1.0, None));
        let png = |f: &PictureFile| {
            let mut reader = ::png::Decoder::new(std::io::Cursor::new(&f.bytes))
                .read_info()
                .unwrap();
            let info = reader.info().clone();
            let frames = info.animation_control.map_or(1, |a| a.num_frames);
            let _ = reader.next_frame(&mut vec![0; reader.output_buffer_size().unwrap()]);
            (info.width as usize, info.height as usize, frames)
        };
        let cell = 2 * PICTURE_SCALE + crate::export::GAP;
        let extent = |n: usize| n * cell + crate::export::GAP;
        // Two images, each x beside x̂₀: two columns, two rows.
        let view = r.picture(0, PictureKind::View).unwrap();
        assert_eq!((view.name, view.mime), ("unmask-step.png", "image/png"));
        assert_eq!(png(&view), (extent(2), extent(2), 1));
        // Two samples in a square grid.
        assert_eq!(
            png(&r.picture(1, PictureKind::Samples).unwrap()),
            (extent(2), extent(1), 1)
        );
        // One frame per step.
        assert_eq!(png(&r.picture(1, PictureKind::Animation).unwrap()).2, 2);
        // The SVG of step 0's first image: all ink, four pixels.
        let svg = String::from_utf8(r.picture(0, PictureKind::Vector).unwrap().bytes).unwrap();
        assert_eq!(svg.matches("fill=\"#000000\"").count(), 4, "{svg}");
    }

    #[test]
    fn the_forward_view_dissolves_the_digit_into_its_noise() {
        let s = Schedule::new(BetaSchedule::Linear, 1000).unwrap();
        let x0 = vec![1.0f32, -1.0];
        let eps = vec![0.3f32, -2.0];
        let early = noised(&s, &x0, &eps, 0).unwrap();
        assert!((early[0] - 1.0).abs() < 0.02 && (early[1] + 1.0).abs() < 0.03);
        let late = noised(&s, &x0, &eps, 999).unwrap();
        assert!((late[0] - 0.3).abs() < 0.01 && (late[1] + 2.0).abs() < 0.01);
        assert_eq!(noised(&s, &x0, &eps, 1000), None);
        assert_eq!(noised(&s, &x0, &eps[..1], 3), None);
    }
}
