//! `unmask train --objective ddpm|classifier`: the digits family's networks (see
//! `unmask::train::images`), with the text runs' flags, run directory and resume.

use std::path::Path;

use unmask::backend;
use unmask::corpus::Split;
use unmask::corpus::digits::{self, CLASSES};
use unmask::model::patch_dit::{PatchDitConfig, Role};
use unmask::train::Checkpointed;
use unmask::train::Start;
use unmask::train::checkpoint::run_format;
use unmask::train::images::{
    DEFAULT_LABEL_DROPOUT, IMAGE_RUN_FORMAT, IMAGE_RUN_VERSION, ImageHistoryEntry, ImageObjective,
    ImageRunState, ImageStepReport, ImageTrainConfig, ImageTrainer, export_image_model,
    image_run_state, load_image_run, save_image_run,
};

use super::progress::{Plan, Session, speed_record, step_line, train_loop};
use super::train::{ObjectiveArg, TrainArgs};
use crate::CliResult;

/// Architecture defaults of a new digits run (sized for 2 CPU cores: see README "Digits").
const DEFAULT_PATCH_SIZE: usize = 2;
const DEFAULT_HIDDEN_DIM: usize = 64;
const DEFAULT_COND_DIM: usize = 64;
const DEFAULT_N_BLOCKS: usize = 4;
const DEFAULT_N_HEADS: usize = 4;
/// Validation every this many steps unless --val-every says otherwise.
const DEFAULT_VAL_EVERY: usize = 500;

/// Whether `dir` holds an image run (its run.json says so).
pub fn holds_image_run(dir: &Path) -> bool {
    run_format(dir).as_deref() == Some(IMAGE_RUN_FORMAT)
}

fn new_run(args: &TrainArgs) -> CliResult<ImageRunState> {
    let objective = match args.objective {
        Some(ObjectiveArg::Ddpm) => ImageObjective::Ddpm {
            label_dropout: match (args.unconditional, args.label_dropout) {
                (true, Some(p)) if p > 0.0 => {
                    return Err(
                        "--unconditional trains without classes: drop --label-dropout".into(),
                    );
                }
                (true, _) => 0.0,
                (false, p) => p.unwrap_or(DEFAULT_LABEL_DROPOUT),
            },
        },
        Some(ObjectiveArg::Classifier) => {
            if args.unconditional || args.label_dropout.is_some() {
                return Err(
                    "--unconditional and --label-dropout are flags of the ddpm objective".into(),
                );
            }
            ImageObjective::Classifier
        }
        _ => return Err("an image run needs --objective ddpm or classifier".into()),
    };
    let text_only = [
        ("--block-size", args.block_size.is_some()),
        ("--model-length", args.model_length.is_some()),
        ("--val-windows", args.val_windows.is_some()),
        ("--warm-start", args.warm_start.is_some()),
    ];
    if let Some((flag, _)) = text_only.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} is a flag of the text objectives, not of --objective {}",
            objective.name()
        ));
    }
    if args.classifier.is_some() && objective == ImageObjective::Classifier {
        return Err(
            "--classifier names the noise predictor's classifier: drop it from a classifier run"
                .into(),
        );
    }
    let role = objective.role();
    let model = PatchDitConfig {
        patch_size: args.patch_size.unwrap_or(DEFAULT_PATCH_SIZE),
        cond_dim: args.cond_dim.unwrap_or(DEFAULT_COND_DIM),
        classes: if role == Role::Denoiser && args.unconditional {
            0
        } else {
            CLASSES
        },
        diffusion_steps: args
            .diffusion_steps
            .unwrap_or(unmask::sampler::gaussian::DEFAULT_STEPS),
        beta_schedule: args
            .beta_schedule
            .map_or(unmask::sampler::gaussian::BetaSchedule::Linear, Into::into),
        classifier: args.classifier.clone(),
        ..PatchDitConfig::digits(
            role,
            args.hidden_dim.unwrap_or(DEFAULT_HIDDEN_DIM),
            args.n_blocks.unwrap_or(DEFAULT_N_BLOCKS),
            args.n_heads.unwrap_or(DEFAULT_N_HEADS),
        )
    };
    model.validate().map_err(|e| e.to_string())?;
    let train = ImageTrainConfig {
        objective,
        recipe: args.recipe(),
        val_every: args.val_every.unwrap_or(DEFAULT_VAL_EVERY),
    };
    train.validate(&model).map_err(|e| e.to_string())?;
    let manifest = digits::read_manifest(&args.digits).map_err(|e| e.to_string())?;
    Ok(ImageRunState {
        format: IMAGE_RUN_FORMAT.into(),
        version: IMAGE_RUN_VERSION,
        train,
        model,
        step: 0,
        images_seen: 0,
        train_seconds: 0.0,
        backends: Vec::new(),
        history: Vec::new(),
        commands: Vec::new(),
        data: format!(
            "{} (training split sha256 {})",
            args.digits.display(),
            manifest.sha256[0]
        ),
    })
}

/// `unmask train` for the image objectives.
pub fn run(args: TrainArgs) -> CliResult<()> {
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let saved = load_image_run(&args.run).map_err(|e| e.to_string())?;
    let resuming = saved.is_some();
    let (mut state, files) = match saved {
        Some((mut state, files)) => {
            args.resume(&mut state.train.recipe)?;
            (state, Some(files))
        }
        None => (new_run(&args)?, None),
    };
    state
        .commands
        .push(std::env::args().collect::<Vec<_>>().join(" "));
    let read = |split| digits::read_digits(&args.digits, split).map_err(|e| e.to_string());
    let (train, valid) = (read(Split::Train)?, read(Split::Valid)?);
    let start = match &files {
        None => Start::Fresh,
        Some([weights, ema, _]) => Start::From {
            weights,
            ema,
            step: state.step,
        },
    };
    let mut trainer = ImageTrainer::new(
        state.train.clone(),
        state.model.clone(),
        train,
        valid,
        &device,
        start,
    )
    .map_err(|e| e.to_string())?;
    if let Some([_, _, optimizer]) = files {
        trainer
            .load_optimizer(optimizer)
            .map_err(|e| e.to_string())?;
    }
    let (n_train, n_valid) = trainer.image_counts();
    let r = &state.train.recipe;
    eprintln!(
        "{} {} run: {} parameters, {} images per step, {} training images ({:.1} epochs planned), {} validation images; {} at step {}/{} on {}",
        if resuming { "resuming the" } else { "new" },
        state.train.objective.name(),
        state.model.parameter_count(),
        r.batch_size,
        n_train,
        (r.max_steps * r.batch_size) as f64 / n_train as f64,
        n_valid,
        args.run.display(),
        state.step,
        r.max_steps,
        args.backend.name(),
    );
    let plan = Plan {
        step: state.step,
        max_steps: state.train.recipe.max_steps,
        val_every: state.train.val_every,
        checkpoint_every: state.train.recipe.checkpoint_every,
        seen: state.images_seen,
    };
    let mut run = Run {
        args: &args,
        trainer: &mut trainer,
        state: &mut state,
    };
    train_loop(&mut run, plan, args.time_limit_minutes)?;
    if let Some(out) = &args.out {
        // The saved state: its history, time and backends span every session of the run.
        let state = image_run_state(&args.run)
            .map_err(|e| e.to_string())?
            .ok_or("the run directory vanished before the export")?;
        let evaluation = trainer.evaluate().map_err(|e| e.to_string())?;
        let dtype = if args.half {
            safetensors::Dtype::F16
        } else {
            safetensors::Dtype::F32
        };
        export_image_model(out, &trainer, &state, dtype, evaluation).map_err(|e| e.to_string())?;
        eprintln!("exported {} ({})", out.display(), describe(&evaluation));
    }
    Ok(())
}

fn describe(e: &unmask::train::images::ImageEvaluation) -> String {
    match e.accuracy {
        Some(a) => format!(
            "validation cross-entropy {:.4}, accuracy {:.1}% on noised images, {} images",
            e.loss,
            100.0 * a,
            e.images
        ),
        None => format!("validation ε-MSE {:.4} over {} images", e.loss, e.images),
    }
}

/// An image run as the shared loop drives it.
struct Run<'a> {
    args: &'a TrainArgs,
    trainer: &'a mut ImageTrainer,
    state: &'a mut ImageRunState,
}

impl Session for Run<'_> {
    type Report = ImageStepReport;
    type Losses = f64;
    const UNIT: &'static str = "images";

    fn train_step(&mut self) -> CliResult<(ImageStepReport, usize, u64)> {
        let report = self.trainer.train_step().map_err(|e| e.to_string())?;
        let units = report.images as u64;
        self.state.step = report.step;
        self.state.images_seen += units;
        let step = report.step;
        Ok((report, step, units))
    }

    fn describe(&self, r: &ImageStepReport) -> (f64, String) {
        let line = step_line(&format!("loss {:.4}", r.loss), r.lr, r.grad_norm);
        (r.loss, line)
    }

    fn add(losses: &mut f64, r: &ImageStepReport) {
        *losses += r.loss;
    }

    fn validate(
        &mut self,
        r: &ImageStepReport,
        losses: f64,
        steps: usize,
        rate: f64,
    ) -> CliResult<String> {
        let valid = self.trainer.evaluate().map_err(|e| e.to_string())?;
        let entry = ImageHistoryEntry {
            step: r.step,
            train_loss: losses / steps.max(1) as f64,
            lr: r.lr,
            images_seen: self.state.images_seen,
            images_per_second: rate,
            valid,
        };
        let line = format!(
            "step {}: train loss {:.4}, {}",
            r.step,
            entry.train_loss,
            describe(&valid)
        );
        self.state.history.push(entry);
        Ok(line)
    }

    fn save(&self, seconds: f64, seen: u64) -> CliResult<()> {
        let mut saved = self.state.clone();
        saved.train_seconds += seconds;
        saved.backends.push(speed_record(
            self.args.backend.name(),
            Self::UNIT,
            (seen, seconds),
            Some(self.state.train.recipe.batch_size),
        ));
        save_image_run(&self.args.run, self.trainer, &saved).map_err(|e| e.to_string())
    }
}
