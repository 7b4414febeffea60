//! The text + image tab's logic: its task and inputs (a caption to draw, a digit to caption),
//! the knobs of each task through the page's knob table, their place in a link, and what a run's
//! canvas shows at any step — the 8×8 grid's cells (masked, or a grey level with the step it
//! arrived in) and the caption as far as it has unmasked.
//!
//! A run of this family is a token canvas ([`crate::unified`]): the lane keeps a text
//! [`Replay`], and the grid reads its image positions back as grey levels by the tokens' own
//! names, so an imported run draws the same as a live one.

use crate::export::{ExportError, encode_apng, encode_png, frame_steps, grid, svg};
use crate::sampler::maskgit::MaskGitSettings;
use crate::sampler::{KNOBS, Knob, KnobValue};
use crate::unified::{CaptionSettings, MAX_VALUE, PIXELS, TaskKind, UnifiedTask, level_named};

use super::images::{ANIMATION_DELAY_MS, PICTURE_SCALE, PictureFile, PictureKind};
use super::replay::{Cell, CellState, Replay};

/// The caption a fresh tab draws.
pub const DEFAULT_CAPTION: &str = "a handwritten seven";

/// The digits of a link's `image`: one character per pixel, its grey level in base 17.
const LEVEL_DIGITS: &[u8; MAX_VALUE as usize + 1] = b"0123456789abcdefg";

/// Both tasks' knobs: switching task keeps the other's as they were.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnifiedKnobs {
    /// Text → image: MaskGIT's steps, guidance, temperature and seed.
    pub t2i: MaskGitSettings,
    /// Image → text: LLaDA's steps and seed.
    pub mmu: CaptionSettings,
}

impl UnifiedKnobs {
    /// `knob`'s value for `task`; `None`: that task has no such knob.
    pub fn get(&self, task: TaskKind, knob: Knob) -> Option<KnobValue> {
        let number = |x: f64| Some(KnobValue::Number(x));
        match (task, knob) {
            (TaskKind::T2i, Knob::Steps) => number(self.t2i.steps as f64),
            (TaskKind::T2i, Knob::Cfg) => number(self.t2i.cfg_scale),
            (TaskKind::T2i, Knob::Temperature) => number(self.t2i.temperature),
            (TaskKind::T2i, Knob::Seed) => number(self.t2i.seed as f64),
            (TaskKind::Mmu, Knob::Steps) => number(self.mmu.steps as f64),
            (TaskKind::Mmu, Knob::Seed) => number(self.mmu.seed as f64),
            _ => None,
        }
    }

    /// Sets `knob` for `task`, when the task has it and the value is one it takes.
    pub fn set(&mut self, task: TaskKind, knob: Knob, value: KnobValue) -> Result<(), String> {
        let KnobValue::Number(x) = value else {
            return Err(format!("{} takes a number", knob.key()));
        };
        let whole = (x.fract() == 0.0 && x >= 0.0).then_some(x as u64);
        let mut next = self.clone();
        match (task, knob, whole) {
            (TaskKind::T2i, Knob::Steps, Some(n)) => next.t2i.steps = n as usize,
            (TaskKind::T2i, Knob::Cfg, _) => next.t2i.cfg_scale = x,
            (TaskKind::T2i, Knob::Temperature, _) => next.t2i.temperature = x,
            (TaskKind::Mmu, Knob::Steps, Some(n)) => next.mmu.steps = n as usize,
            // One seed for both tasks, as the page has one seed field.
            (_, Knob::Seed, Some(n)) => next.set_seed(n),
            (_, Knob::Steps | Knob::Seed, None) => {
                return Err(format!("{} takes a whole number", knob.key()));
            }
            _ => {
                return Err(format!(
                    "the {} task has no {} knob",
                    task.name(),
                    knob.key()
                ));
            }
        }
        next.t2i.validate().map_err(|e| e.to_string())?;
        next.mmu.validate().map_err(|e| e.to_string())?;
        *self = next;
        Ok(())
    }

    /// Both tasks on `seed`.
    pub fn set_seed(&mut self, seed: u64) {
        self.t2i.seed = seed;
        self.mmu.seed = seed;
    }

    /// The knobs a race sets against these: guided against unguided for text → image, one
    /// token a step against three for image → text.
    pub fn rival(&self) -> Self {
        let mut b = self.clone();
        b.t2i.cfg_scale = if self.t2i.cfg_scale > 0.0 {
            0.0
        } else {
            MaskGitSettings::default().cfg_scale
        };
        b.mmu.steps = (self.mmu.steps / 3).max(1);
        b
    }
}

/// The tab as the reader left it: the task, both tasks' inputs and knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct UnifiedPage {
    /// Draw a digit, or caption one.
    pub task: TaskKind,
    /// What to draw.
    pub caption: String,
    /// The digit to caption: 64 grey levels on 0–16, row by row.
    pub image: Vec<u8>,
    /// Both tasks' knobs.
    pub knobs: UnifiedKnobs,
}

impl Default for UnifiedPage {
    fn default() -> Self {
        Self {
            task: TaskKind::T2i,
            caption: DEFAULT_CAPTION.into(),
            image: vec![0; PIXELS],
            knobs: UnifiedKnobs::default(),
        }
    }
}

impl UnifiedPage {
    /// The run the tab asks for, with `knobs` (the tab's own, or a race's).
    pub fn task_with(&self, knobs: &UnifiedKnobs) -> UnifiedTask {
        match self.task {
            TaskKind::T2i => UnifiedTask::T2i {
                caption: self.caption.clone(),
                settings: knobs.t2i.clone(),
            },
            TaskKind::Mmu => UnifiedTask::Mmu {
                image: self.image.clone(),
                settings: knobs.mmu.clone(),
            },
        }
    }

    /// Reads the tab from a link's pairs (`task`, `caption`, `image`, the task's knobs and the
    /// race's under `b.`); each bad value is reported and its default kept. Answers the race's
    /// knobs, when the link names one.
    pub fn read(
        &mut self,
        get: impl Fn(&str) -> Option<String>,
        errors: &mut Vec<String>,
    ) -> Option<UnifiedKnobs> {
        match get("task").as_deref() {
            None => {}
            Some("t2i") => self.task = TaskKind::T2i,
            Some("mmu") => self.task = TaskKind::Mmu,
            Some(v) => errors.push(format!("task: expected t2i or mmu, got `{v}`")),
        }
        if let Some(v) = get("caption") {
            self.caption = v;
        }
        if let Some(v) = get("image") {
            match image_from_param(&v) {
                Some(image) => self.image = image,
                None => errors.push(format!(
                    "image: expected {PIXELS} grey levels, each one of 0-9 or a-g (0 to 16), got `{v}`"
                )),
            }
        }
        let task = self.task;
        let mut read_knobs = |knobs: &mut UnifiedKnobs, prefix: &str| -> bool {
            let mut named = false;
            let specs: Vec<_> = KNOBS
                .iter()
                .filter(|s| knobs.get(task, s.knob).is_some())
                .collect();
            for spec in specs {
                if spec.knob == Knob::Seed && !prefix.is_empty() {
                    continue;
                }
                let key = format!("{prefix}{}", spec.key);
                let Some(raw) = get(&key) else { continue };
                named = true;
                let set = raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("expected a number, got `{raw}`"))
                    .and_then(|x| knobs.set(task, spec.knob, KnobValue::Number(x)));
                if let Err(e) = set {
                    errors.push(format!("{key}: {e}"));
                }
            }
            named
        };
        let mut knobs = self.knobs.clone();
        read_knobs(&mut knobs, "");
        self.knobs = knobs;
        // The link names the race's knobs of its task; the other task's are the rival's.
        let mut race = self.knobs.rival();
        read_knobs(&mut race, "b.").then_some(race)
    }

    /// Writes the tab into a link: the task, its input, its knobs and the race's (which shares
    /// the seed).
    pub fn write(&self, race: Option<&UnifiedKnobs>, out: &mut Vec<(String, String)>) {
        out.push(("task".into(), self.task.name().into()));
        match self.task {
            TaskKind::T2i => out.push(("caption".into(), self.caption.clone())),
            TaskKind::Mmu => out.push(("image".into(), image_param(&self.image))),
        }
        let mut write = |knobs: &UnifiedKnobs, prefix: &str| {
            for spec in &KNOBS {
                if spec.knob == Knob::Seed && !prefix.is_empty() {
                    continue;
                }
                if let Some(KnobValue::Number(x)) = knobs.get(self.task, spec.knob) {
                    out.push((format!("{prefix}{}", spec.key), format!("{x}")));
                }
            }
        };
        write(&self.knobs, "");
        if let Some(race) = race {
            write(race, "b.");
        }
    }
}

/// A digit as a link carries it: 64 characters, each pixel's level in base 17.
pub fn image_param(image: &[u8]) -> String {
    image
        .iter()
        .map(|&v| char::from(LEVEL_DIGITS[usize::from(v.min(MAX_VALUE))]))
        .collect()
}

/// A link's digit back, when it is 64 base-17 levels.
pub fn image_from_param(param: &str) -> Option<Vec<u8>> {
    let image: Vec<u8> = param
        .bytes()
        .map(|c| {
            LEVEL_DIGITS
                .iter()
                .position(|&d| d == c.to_ascii_lowercase())
                .map(|v| v as u8)
        })
        .collect::<Option<_>>()?;
    (image.len() == PIXELS).then_some(image)
}

/// A digit of the diffusion's scale (−1 blank, 1 ink; the digits family's examples) on the
/// unified family's 0–16 grey levels.
pub fn levels_of(x: &[f32]) -> Vec<u8> {
    x.iter()
        .map(|&v| {
            let level = ((f64::from(v) + 1.0) / 2.0 * f64::from(MAX_VALUE)).round();
            level.clamp(0.0, f64::from(MAX_VALUE)) as u8
        })
        .collect()
}

/// One cell of the 8×8 grid at some step.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixel {
    /// Its grey level, once it has one (0 blank … 16 ink).
    pub level: Option<u8>,
    /// Given (the image to caption), still masked, or drawn at a step.
    pub state: CellState,
}

/// The grid of a run of `task` from its canvas's `cells` at some step ([`Replay::cells`]): the
/// image positions' cells; empty before the run has a canvas.
pub fn pixels(cells: &[Cell], task: TaskKind) -> Vec<Pixel> {
    cells
        .get(task.image_positions())
        .unwrap_or_default()
        .iter()
        .map(|c| Pixel {
            level: level_named(&c.text),
            state: c.state.clone(),
        })
        .collect()
}

/// The caption of a run of `task` from its canvas's `cells` at some step: for text → image the one it draws, for image →
/// text what has unmasked so far (a masked token shows as `▒`), up to the first special token
/// (`<eos>` ends a caption and pads its slot; the corpus tokenizer names its specials `<…>`).
pub fn caption(cells: &[Cell], task: TaskKind) -> String {
    let special =
        |t: &str| t.len() > 2 && t.starts_with('<') && t.ends_with('>') && !t.contains(' ');
    let mut out = String::new();
    for c in cells.get(task.caption_positions()).unwrap_or_default() {
        if c.state == CellState::Masked {
            out.push('▒');
        } else if special(&c.text) {
            break;
        } else {
            out.push_str(&c.text);
        }
    }
    out.trim().to_owned()
}

impl UnifiedPage {
    /// The tab set to replay `task`: its task, its input and its knobs.
    pub fn set_task(&mut self, task: &UnifiedTask) {
        self.task = task.kind();
        match task {
            UnifiedTask::T2i { caption, settings } => {
                self.caption = caption.clone();
                self.knobs.t2i = settings.clone();
            }
            UnifiedTask::Mmu { image, settings } => {
                self.image = image.clone();
                self.knobs.mmu = settings.clone();
            }
        }
    }
}

/// The grid at step `at` on the diffusion's scale, as the digits family's pictures draw images:
/// each drawn or given cell its grey level, a masked one blank.
fn grid_values(replay: &Replay, task: TaskKind, at: usize) -> Vec<f32> {
    pixels(&replay.cells(at), task)
        .iter()
        .map(|p| {
            p.level
                .map_or(-1.0, |v| 2.0 * f32::from(v) / f32::from(MAX_VALUE) - 1.0)
        })
        .collect()
}

/// A picture of a text + image run for posts that cannot embed the page: the grid at step `at`
/// (PNG, or an SVG of a square per inked cell), or every step's grid (animated PNG). A picture
/// of every sample at once is the digits family's; here it is the grid at `at`.
pub fn picture(
    replay: &Replay,
    task: TaskKind,
    at: usize,
    kind: PictureKind,
) -> Result<PictureFile, ExportError> {
    let side = crate::unified::SIDE;
    let png = |values: &[f32]| grid(&[values], side, 1, PICTURE_SCALE);
    if replay.is_empty() {
        return Err(ExportError::Empty("no step yet"));
    }
    Ok(match kind {
        PictureKind::View | PictureKind::Samples => PictureFile {
            name: "unmask-grid.png",
            mime: "image/png",
            bytes: encode_png(&png(&grid_values(replay, task, at))?)?,
        },
        PictureKind::Animation => {
            let frames = frame_steps(replay.len())
                .into_iter()
                .map(|s| png(&grid_values(replay, task, s)))
                .collect::<Result<Vec<_>, _>>()?;
            PictureFile {
                name: "unmask-grid-run.png",
                mime: "image/apng",
                bytes: encode_apng(&frames, ANIMATION_DELAY_MS)?,
            }
        }
        PictureKind::Vector => PictureFile {
            name: "unmask-grid.svg",
            mime: "image/svg+xml",
            bytes: svg(&grid_values(replay, task, at), side, PICTURE_SCALE)?.into_bytes(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;
    use crate::page::protocol::Job;
    use crate::page::state::PageState;
    use crate::sampler::{Commit, Step};
    use crate::unified::SEQUENCE_LEN;

    #[test]
    fn each_task_has_its_own_knobs_and_refuses_values_off_their_range() {
        let mut k = UnifiedKnobs::default();
        assert_eq!(
            k.get(TaskKind::T2i, Knob::Cfg),
            Some(KnobValue::Number(3.5))
        );
        assert_eq!(k.get(TaskKind::Mmu, Knob::Cfg), None);
        assert_eq!(
            k.get(TaskKind::Mmu, Knob::Steps),
            Some(KnobValue::Number(15.0))
        );
        k.set(TaskKind::T2i, Knob::Steps, KnobValue::Number(8.0))
            .unwrap();
        k.set(TaskKind::Mmu, Knob::Steps, KnobValue::Number(5.0))
            .unwrap();
        assert_eq!((k.t2i.steps, k.mmu.steps), (8, 5));
        // Past the caption's 15 positions, a fraction, a negative scale, a knob the task lacks:
        // refused, and nothing changes.
        let before = k.clone();
        for (task, knob, x) in [
            (TaskKind::Mmu, Knob::Steps, 16.0),
            (TaskKind::T2i, Knob::Steps, 2.5),
            (TaskKind::T2i, Knob::Cfg, -1.0),
            (TaskKind::Mmu, Knob::Temperature, 1.0),
        ] {
            assert!(
                k.set(task, knob, KnobValue::Number(x)).is_err(),
                "{knob:?} {x}"
            );
        }
        assert_eq!(k, before);
        // The race's rival: unguided against guided, fewer caption steps.
        let b = k.rival();
        assert_eq!((b.t2i.cfg_scale, b.mmu.steps), (0.0, 1));
        assert_eq!(b.rival().t2i.cfg_scale, 3.5);
    }

    #[test]
    fn a_link_carries_the_task_its_input_its_knobs_and_the_race() {
        let mut state = PageState {
            family: Family::Unified,
            ..PageState::default()
        };
        state.unified.task = TaskKind::Mmu;
        state.unified.image = (0..PIXELS).map(|i| (i % 17) as u8).collect();
        state.unified.knobs.set_seed(9);
        state.unified_race = Some(state.unified.knobs.rival());
        let query = state.to_query();
        assert!(query.starts_with("family=unified"), "{query}");
        assert!(query.contains("image=0123456789abcdefg0123"), "{query}");
        let (back, errors) = PageState::from_query(&query);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back.unified, state.unified);
        assert_eq!(back.unified_race, state.unified_race);
        // Both runs of the race on the first one's seed.
        let jobs = back.jobs();
        assert_eq!(jobs.len(), 2);
        assert!(
            jobs.iter()
                .all(|j| j.seed() == 9 && j.family() == Family::Unified)
        );
        let Job::Unified { task } = &jobs[1] else {
            panic!()
        };
        assert_eq!(task.steps(), 5);
        // Text → image from a link; bad values are named and their defaults kept.
        let (s, errors) = PageState::from_query(
            "family=unified&task=t2i&caption=the%20digit%203&cfg=2&steps=0&image=xyz&task2=1",
        );
        assert_eq!(s.unified.caption, "the digit 3");
        assert_eq!(s.unified.knobs.t2i.cfg_scale, 2.0);
        assert_eq!(s.unified.knobs.t2i.steps, 15);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("steps:")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("image:")), "{errors:?}");
        let (_, errors) = PageState::from_query("family=unified&task=draw");
        assert!(errors[0].contains("t2i or mmu"), "{errors:?}");
    }

    #[test]
    fn a_digit_travels_in_64_characters_and_anything_else_is_refused() {
        let image: Vec<u8> = (0..PIXELS).map(|i| (i * 7 % 17) as u8).collect();
        let param = image_param(&image);
        assert_eq!(param.len(), PIXELS);
        assert_eq!(image_from_param(&param), Some(image.clone()));
        assert_eq!(image_from_param(&param.to_uppercase()), Some(image));
        assert_eq!(image_from_param(&param[1..]), None);
        assert_eq!(image_from_param(&format!("h{}", &param[1..])), None);
        // The digits family's scale: −1 blank, 1 ink, halfway grey.
        assert_eq!(levels_of(&[-1.0, 1.0, 0.0, 2.0]), [0, 16, 8, 16]);
    }

    /// A text → image run of two steps on a canvas whose image tokens are named as the
    /// tokenizer names them.
    fn replay() -> Replay {
        let mask = 3;
        let mut prompt = vec![0u32; SEQUENCE_LEN];
        prompt[TaskKind::T2i.image_positions()].fill(mask);
        let mut r = Replay::new(prompt.clone(), prompt.clone(), mask);
        r.add_vocab([(0, "<eos>".to_string()), (1, " seven".to_string())]);
        r.add_vocab((0..17).map(|v| (100 + v, crate::unified::image_token_name(v as usize))));
        let start = TaskKind::T2i.image_positions().start;
        let mut canvas = prompt;
        canvas[Layout::T2I_CAPTION.start + 1] = 1;
        for (index, (cell, level)) in [(start, 16u32), (start + 1, 5)].into_iter().enumerate() {
            canvas[cell] = 100 + level;
            r.push(Step {
                index,
                model_calls: index + 1,
                commits: vec![Commit {
                    position: cell,
                    token: 100 + level,
                    confidence: 0.5,
                }],
                masked: canvas.iter().map(|&t| t == mask).collect(),
                canvas: canvas.clone(),
                block: [start, start + PIXELS],
                candidates: Vec::new(),
                levels: Vec::new(),
            });
        }
        r
    }

    use crate::unified::Layout;

    #[test]
    fn the_grid_shows_each_cell_s_level_from_the_step_it_arrived_in() {
        let r = replay();
        let at0 = pixels(&r.cells(0), TaskKind::T2i);
        assert_eq!(at0.len(), PIXELS);
        assert_eq!(at0[0].level, Some(16));
        assert!(matches!(
            at0[0].state,
            CellState::Committed {
                step: 0,
                fresh: true,
                ..
            }
        ));
        assert_eq!((at0[1].level, &at0[1].state), (None, &CellState::Masked));
        let at1 = pixels(&r.cells(1), TaskKind::T2i);
        assert!(matches!(
            at1[0].state,
            CellState::Committed {
                step: 0,
                fresh: false,
                ..
            }
        ));
        assert_eq!(at1[1].level, Some(5));
        assert_eq!(at1.iter().filter(|p| p.level.is_none()).count(), PIXELS - 2);
        // The caption slot reads up to its end of sequence.
        assert_eq!(caption(&r.cells(1), TaskKind::T2i), "seven");
        // Its pictures: the grid at a step, every step's, the inked cells as squares.
        let png = picture(&r, TaskKind::T2i, 1, PictureKind::View).unwrap();
        let decoder = ::png::Decoder::new(std::io::Cursor::new(&png.bytes));
        let info = decoder.read_info().unwrap().info().clone();
        let extent = crate::unified::SIDE * PICTURE_SCALE + 2 * crate::export::GAP;
        assert_eq!(
            (info.width as usize, info.height as usize),
            (extent, extent)
        );
        let run = picture(&r, TaskKind::T2i, 1, PictureKind::Animation).unwrap();
        let frames = ::png::Decoder::new(std::io::Cursor::new(&run.bytes))
            .read_info()
            .unwrap()
            .info()
            .animation_control
            .map(|a| a.num_frames);
        assert_eq!(frames, Some(2));
        let svg = String::from_utf8(
            picture(&r, TaskKind::T2i, 0, PictureKind::Vector)
                .unwrap()
                .bytes,
        )
        .unwrap();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(picture(&Replay::default(), TaskKind::T2i, 0, PictureKind::View).is_err());
        // A name that is not a grey level's is none.
        assert_eq!(level_named("<|img_17|>"), None);
        assert_eq!(level_named("<|img_05|>"), None);
    }
}
