//! `unmask schedule`: diffusion forcing's scheduling matrix drawn in the terminal (or as JSON) —
//! tokens across, sampling steps down, each cell its token's noise level — sliding from
//! full-sequence diffusion to autoregression with the pyramid's slope
//! ([`unmask::sampler::forcing`]).

use clap::{Args, ValueEnum};
use unmask::sampler::forcing::{Schedule, SchedulingMatrix};
use unmask::sampler::settings::DEFAULT_SLOPE;
use unmask::sampler::{Knob, KnobValue};

use crate::CliError;

/// The schedules `--schedule` names.
#[derive(Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// Each token trails the one before by `--slope` steps.
    Pyramid,
    /// One token at a time (the pyramid with slope = levels).
    Autoregressive,
    /// Every token at the same level (the pyramid with slope 0).
    FullSequence,
}

#[derive(Args)]
pub struct ScheduleArgs {
    /// Which schedule.
    #[arg(long, value_enum, default_value = "pyramid")]
    schedule: ScheduleArg,
    /// Steps by which each token trails the one before it (pyramid only), 0 to --levels.
    #[arg(long, default_value_t = 1.0)]
    slope: f64,
    /// Noise levels, fully masked down to clean.
    #[arg(long, default_value_t = 8)]
    levels: usize,
    /// Tokens scheduled.
    #[arg(long, default_value_t = 16)]
    tokens: usize,
    /// Print the matrix as JSON (`{"levels", "tokens", "matrix": [[level per token] per row]}`).
    #[arg(long)]
    json: bool,
}

impl ScheduleArg {
    /// The schedule it names; the pyramid at `slope`.
    pub fn schedule(self, slope: f64) -> Schedule {
        match self {
            ScheduleArg::Pyramid => Schedule::Pyramid { slope },
            ScheduleArg::Autoregressive => Schedule::Autoregressive,
            ScheduleArg::FullSequence => Schedule::FullSequence,
        }
    }
}

/// The forcing sampler's knobs its flags set, in the order they must be set (the level count,
/// then the schedule, then the pyramid's slope); a flag not given sets nothing.
pub fn forcing_knobs(
    schedule: Option<ScheduleArg>,
    slope: Option<f64>,
    levels: Option<usize>,
) -> [(Knob, Option<KnobValue>); 3] {
    let pyramid_slope = slope.unwrap_or(DEFAULT_SLOPE);
    [
        (Knob::Levels, levels.map(|n| KnobValue::Number(n as f64))),
        (
            Knob::Schedule,
            schedule.map(|s| KnobValue::Schedule(s.schedule(pyramid_slope))),
        ),
        (Knob::Slope, slope.map(KnobValue::Number)),
    ]
}

pub fn run(args: ScheduleArgs) -> Result<(), CliError> {
    let schedule = args.schedule.schedule(args.slope);
    if !matches!(args.schedule, ScheduleArg::Pyramid) && args.slope != 1.0 {
        return Err(CliError::Input(
            "--slope shapes the pyramid only; --schedule autoregressive and full-sequence fix it"
                .into(),
        ));
    }
    // Printing it holds every row, as a recorded run does.
    let k = schedule
        .matrix(args.levels, args.tokens)
        .and_then(|k| k.check_recordable().map(|()| k))
        .map_err(|e| CliError::Input(e.to_string()))?;
    if args.json {
        let rows: Vec<Vec<u32>> = (0..k.rows()).map(|m| k.row(m).collect()).collect();
        let json = serde_json::json!({"levels": k.levels(), "tokens": k.tokens(), "matrix": rows});
        outln!("{json}");
        return Ok(());
    }
    outln!(
        "{} steps × {} tokens, {} levels (█ masked … · clean), slope {}",
        k.rows() - 1,
        k.tokens(),
        k.levels(),
        schedule.slope(args.levels)
    );
    for m in 0..k.rows() {
        outln!("{m:>5} {}", draw(&k, m));
    }
    Ok(())
}

/// Row `m` as one character per token, its level as a shade.
fn draw(k: &SchedulingMatrix, m: usize) -> String {
    const SHADES: [char; 3] = ['░', '▒', '▓'];
    k.row(m)
        .map(|level| match level as usize {
            0 => '·',
            l if l == k.levels() => '█',
            l => SHADES[(l * SHADES.len() - 1) / k.levels()],
        })
        .collect()
}
