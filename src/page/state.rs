//! The page's whole state as a URL query: the family (`family=ddpm` for the digits; text by
//! default), model, prompt, sampler, every knob, seed, race, autoplay, embed, theme, backend and
//! playback speed. A shared link reproduces the run exactly (the seed
//! fixes every draw). Reading a query never fails: each bad value is reported with what is
//! expected and the default is kept, so a half-broken link still opens a working page.

use crate::sampler::{
    KNOBS, Knob, KnobKind, KnobSpec, KnobValue, Remasking, SamplerKind, Settings,
};

use crate::config::{Attention, Family};
use crate::sampler::diffusion_lm::{Control, VectorSettings};
use crate::sampler::forcing::Schedule;
use crate::sampler::gaussian::Variance;
use crate::sampler::image::{Guidance, ImageSampler, ImageSettings};
use crate::sampler::settings::DEFAULT_SLOPE;

use crate::chat::{Message, Role};

use super::protocol::Job;
use super::source::ModelSource;
use super::unified::{UnifiedKnobs, UnifiedPage};

/// The prompt on a fresh page, for the default models (trained on Austen and the Bible).
pub const DEFAULT_PROMPT: &str = "The next morning, Elizabeth";
/// Steps per second the timeline plays at by default.
pub const DEFAULT_SPEED: f64 = 8.0;
/// Playback speeds the page offers, in steps per second.
pub const SPEEDS: [f64; 6] = [1.0, 2.0, 4.0, 8.0, 16.0, 60.0];
/// Longest prompt kept from a URL, in characters (the chat's messages together included).
pub const MAX_PROMPT_CHARS: usize = 20_000;
/// Megabytes of weights the page downloads by itself (opening a link, autoplay or not) before it
/// asks the reader (`autoload` in a link; 0: always ask).
pub const AUTOLOAD_MB: f64 = 100.0;
/// Most chat turns a link carries (a reader's message and a reply are two).
pub const MAX_TURNS: usize = 64;

/// Which backend the reader asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// WebGPU when the browser has a working adapter, else the CPU.
    Auto,
    /// The CPU backend in wasm, always.
    Cpu,
}

/// Colour scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    /// Follows `prefers-color-scheme`.
    Auto,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

impl Theme {
    /// The URL and CSS name.
    pub fn name(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// Everything a link carries.
#[derive(Clone, Debug, PartialEq)]
pub struct PageState {
    /// What the page runs: text, the digits of Gaussian diffusion, Diffusion-LM's words, or
    /// text and images on one model. Each family keeps its own settings below, so switching
    /// back finds them as they were.
    pub family: Family,
    /// The model to load.
    pub model: ModelSource,
    /// The prompt (`[MASK]` in it infills); in a chat, the reader's next message.
    pub prompt: String,
    /// Chat with the model (text family, a model whose folder has a chat template): the prompt
    /// is the reader's message, and the run goes through the model's chat template with
    /// [`PageState::system`] and [`PageState::turns`] before it.
    pub chat: bool,
    /// The chat's system prompt.
    pub system: Option<String>,
    /// The chat so far: the reader's messages and the model's replies, in order.
    pub turns: Vec<Message>,
    /// The run's sampler and knobs, seed included.
    pub settings: Settings,
    /// A second sampler raced against the first on the same prompt and seed.
    pub race: Option<Settings>,
    /// The image chain, its class and guidance (family `ddpm`).
    pub ddpm: ImageSettings,
    /// A second chain or guidance raced against the first on the same seed.
    pub ddpm_race: Option<ImageSettings>,
    /// Diffusion-LM's chain, clamping and control (family `diffusion-lm`); its prompt is
    /// [`PageState::prompt`].
    pub words: VectorSettings,
    /// A second Diffusion-LM chain raced against the first on the same prompt and seed.
    pub words_race: Option<VectorSettings>,
    /// The text + image tab: its task, inputs and knobs (family `unified`).
    pub unified: UnifiedPage,
    /// Other knobs raced against the tab's on the same input and seed.
    pub unified_race: Option<UnifiedKnobs>,
    /// Start the run as soon as the model is loaded.
    pub autoplay: bool,
    /// Megabytes of weights the page may download without a click (opening the link): above,
    /// it shows their size and a button.
    pub autoload_mb: f64,
    /// How a LLaDA / Dream / A2D model attends, when not as its config.json says (link
    /// `attention=bidirectional|causal|block-causal`, with `block_size=N` for block-causal): a
    /// published `-bd3lm` folder whose config.json has no block size, or an experiment.
    pub attention: Option<Attention>,
    /// A minimal frame for blog posts: canvas, timeline and a run button.
    pub embed: bool,
    /// Colour scheme.
    pub theme: Theme,
    /// Backend preference.
    pub backend: BackendChoice,
    /// Keep f32 weights on WebGPU even where the adapter has f16 (the default halves GPU memory).
    pub full_precision: bool,
    /// Playback speed, steps per second.
    pub speed: f64,
}

impl Default for PageState {
    fn default() -> Self {
        Self {
            family: Family::Text,
            model: ModelSource::Default,
            prompt: DEFAULT_PROMPT.into(),
            chat: false,
            system: None,
            turns: Vec::new(),
            settings: Settings::defaults(SamplerKind::Bd3),
            race: None,
            ddpm: ImageSettings::defaults(ImageSampler::Ddim),
            ddpm_race: None,
            words: VectorSettings::defaults(DEFAULT_WORDS_GEN),
            words_race: None,
            unified: UnifiedPage::default(),
            unified_race: None,
            autoplay: false,
            autoload_mb: AUTOLOAD_MB,
            attention: None,
            embed: false,
            theme: Theme::Auto,
            backend: BackendChoice::Auto,
            full_precision: false,
            speed: DEFAULT_SPEED,
        }
    }
}

impl PageState {
    /// The runs the page's Run button starts: the first, and the race's second on its seed.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs = match self.family {
            Family::Unified => std::iter::once(&self.unified.knobs)
                .chain(&self.unified_race)
                .map(|knobs| Job::Unified {
                    task: self.unified.task_with(knobs),
                })
                .collect(),
            Family::Text => std::iter::once(&self.settings)
                .chain(&self.race)
                .map(|settings| Job::Text {
                    prompt: self.prompt.clone(),
                    settings: settings.clone(),
                    chat: self.chat.then(|| self.conversation()),
                })
                .collect::<Vec<_>>(),
            Family::Ddpm => std::iter::once(&self.ddpm)
                .chain(&self.ddpm_race)
                .map(|settings| Job::Ddpm {
                    settings: settings.clone(),
                })
                .collect(),
            Family::DiffusionLm => std::iter::once(&self.words)
                .chain(&self.words_race)
                .map(|settings| Job::DiffusionLm {
                    prompt: self.prompt.clone(),
                    settings: settings.clone(),
                })
                .collect(),
        };
        let seed = self.seed();
        jobs.iter_mut().for_each(|j| j.set_seed(seed));
        jobs
    }

    /// Bytes of weights the page may download by itself.
    pub fn autoload_bytes(&self) -> u64 {
        (self.autoload_mb * 1e6) as u64
    }

    /// The chat's messages before the reader's next one: the system prompt, then the turns.
    pub fn conversation(&self) -> Vec<Message> {
        self.system
            .iter()
            .map(|s| Message::new(Role::System, s.clone()))
            .chain(self.turns.iter().cloned())
            .collect()
    }

    /// Records a finished exchange: the reader's `message` and the model's `reply` join the
    /// turns, and the message box empties for the next one.
    pub fn add_exchange(&mut self, message: String, reply: String) {
        self.turns.push(Message::new(Role::User, message));
        self.turns.push(Message::new(Role::Assistant, reply));
        self.prompt.clear();
    }

    /// The first run.
    pub fn job(&self) -> Job {
        self.jobs().swap_remove(0)
    }

    /// The seed of the page's family.
    pub fn seed(&self) -> u64 {
        match self.family {
            Family::Text => self.settings.seed(),
            Family::Unified => self.unified.task_with(&self.unified.knobs).seed(),
            Family::Ddpm => self.ddpm.seed(),
            Family::DiffusionLm => self.words.seed,
        }
    }

    /// Sets the seed of the page's runs (both of a race).
    pub fn set_seed(&mut self, seed: u64) {
        match self.family {
            Family::Text => {
                for s in std::iter::once(&mut self.settings).chain(&mut self.race) {
                    s.draw_mut().seed = seed;
                }
            }
            Family::Unified => {
                for k in std::iter::once(&mut self.unified.knobs).chain(&mut self.unified_race) {
                    k.set_seed(seed);
                }
            }
            Family::DiffusionLm => {
                for s in std::iter::once(&mut self.words).chain(&mut self.words_race) {
                    s.seed = seed;
                }
            }
            Family::Ddpm => {
                for s in std::iter::once(&mut self.ddpm).chain(&mut self.ddpm_race) {
                    s.condition_mut().seed = seed;
                }
            }
        }
    }

    /// Whether a race is on.
    pub fn racing(&self) -> bool {
        match self.family {
            Family::Text => self.race.is_some(),
            Family::Unified => self.unified_race.is_some(),
            Family::Ddpm => self.ddpm_race.is_some(),
            Family::DiffusionLm => self.words_race.is_some(),
        }
    }

    /// Reads a query string (with or without its leading `?`). Returns the state and one message
    /// per value that was ignored.
    pub fn from_query(query: &str) -> (Self, Vec<String>) {
        let pairs = parse_query(query.strip_prefix('?').unwrap_or(query));
        let mut state = PageState::default();
        let mut errors = Vec::new();
        let get = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };

        if let Some(v) = get("model") {
            match ModelSource::parse(v) {
                Ok(m) => state.model = m,
                Err(e) => errors.push(format!("model: {e}")),
            }
        }
        if let Some(v) = get("prompt") {
            if v.chars().count() > MAX_PROMPT_CHARS {
                errors.push(format!(
                    "prompt: longer than {MAX_PROMPT_CHARS} characters; ignored"
                ));
            } else {
                state.prompt = v.to_owned();
            }
        }
        if let Some(v) = get("family") {
            match v {
                "text" => state.family = Family::Text,
                "ddpm" => state.family = Family::Ddpm,
                "diffusion-lm" => state.family = Family::DiffusionLm,
                "unified" => state.family = Family::Unified,
                other => errors.push(format!(
                    "family: expected text, ddpm, diffusion-lm or unified, got `{other}`"
                )),
            }
        }
        match state.family {
            Family::DiffusionLm => {
                state.words = read_vector_settings(&pairs, "", None, &mut errors)
                    .unwrap_or_else(|| VectorSettings::defaults(DEFAULT_WORDS_GEN));
                state.words_race =
                    read_vector_settings(&pairs, "b.", Some(&state.words), &mut errors);
            }
            Family::Unified => {
                state.unified_race = state
                    .unified
                    .read(|k: &str| get(k).map(str::to_owned), &mut errors);
            }
            Family::Text => {
                state.settings = read_settings(&pairs, "", None, &mut errors)
                    .unwrap_or_else(|| Settings::defaults(SamplerKind::Bd3));
                state.race = read_settings(&pairs, "b.", Some(&state.settings), &mut errors);
            }
            Family::Ddpm => {
                state.ddpm = read_image_settings(&pairs, "", None, &mut errors)
                    .unwrap_or_else(|| ImageSettings::defaults(ImageSampler::Ddim));
                state.ddpm_race = read_image_settings(&pairs, "b.", Some(&state.ddpm), &mut errors);
            }
        }
        let mut flag = |key: &str, out: &mut bool| {
            if let Some(v) = get(key) {
                match parse_bool(v) {
                    Some(b) => *out = b,
                    None => errors.push(format!("{key}: expected 1 or 0, got `{v}`")),
                }
            }
        };
        flag("autoplay", &mut state.autoplay);
        flag("chat", &mut state.chat);
        flag("embed", &mut state.embed);
        if let Some(v) = get("theme") {
            state.theme = match v {
                "auto" => Theme::Auto,
                "light" => Theme::Light,
                "dark" => Theme::Dark,
                other => {
                    errors.push(format!(
                        "theme: expected auto, light or dark, got `{other}`"
                    ));
                    Theme::Auto
                }
            }
        }
        if let Some(v) = get("backend") {
            match v {
                "auto" | "webgpu" | "gpu" => state.backend = BackendChoice::Auto,
                "cpu" => state.backend = BackendChoice::Cpu,
                other => errors.push(format!("backend: expected auto or cpu, got `{other}`")),
            }
        }
        if let Some(v) = get("precision") {
            match v {
                "auto" | "f16" => state.full_precision = false,
                "f32" => state.full_precision = true,
                other => errors.push(format!("precision: expected auto or f32, got `{other}`")),
            }
        }
        read_chat(&pairs, &mut state, &mut errors);
        if let Some(v) = get("autoload") {
            match v.parse::<f64>() {
                Ok(x) if (0.0..=1e6).contains(&x) => state.autoload_mb = x,
                _ => errors.push(format!(
                    "autoload: expected the megabytes the page may download by itself (0 to 1000000), got `{v}`"
                )),
            }
        }
        match (get("attention"), get("block_size")) {
            (None, None) => {}
            (kind, block) => match parse_attention(kind, block) {
                Ok(a) => state.attention = Some(a),
                Err(e) => errors.push(e),
            },
        }
        if let Some(v) = get("speed") {
            match v.parse::<f64>() {
                Ok(x) if (0.25..=1000.0).contains(&x) => state.speed = x,
                _ => errors.push(format!(
                    "speed: expected steps per second between 0.25 and 1000, got `{v}`"
                )),
            }
        }
        (state, errors)
    }

    /// The query string (without `?`) that reproduces this state. Dropped files cannot travel in
    /// a link, so they are left out (the default model is named instead).
    pub fn to_query(&self) -> String {
        let mut out: Vec<(String, String)> = Vec::new();
        out.push((
            "model".into(),
            self.model.to_param().unwrap_or_else(|| "default".into()),
        ));
        match self.family {
            Family::DiffusionLm => {
                out.insert(0, ("family".into(), Family::DiffusionLm.name().into()));
                out.push(("prompt".into(), self.prompt.clone()));
                write_vector_settings(&mut out, "", &self.words, None);
                if let Some(b) = &self.words_race {
                    write_vector_settings(&mut out, "b.", b, Some(&self.words));
                }
            }
            Family::Unified => {
                out.insert(0, ("family".into(), Family::Unified.name().into()));
                self.unified.write(self.unified_race.as_ref(), &mut out);
            }
            Family::Text => {
                if self.chat {
                    out.push(("chat".into(), "1".into()));
                    if let Some(system) = &self.system {
                        out.push(("system".into(), system.clone()));
                    }
                    out.extend(self.turns.iter().map(|m| {
                        let key = match m.role {
                            Role::Assistant => "assistant",
                            Role::User | Role::System => "user",
                        };
                        (key.into(), m.content.clone())
                    }));
                }
                out.push(("prompt".into(), self.prompt.clone()));
                write_settings(&mut out, "", &self.settings);
                if let Some(b) = &self.race {
                    write_settings(&mut out, "b.", b);
                }
            }
            Family::Ddpm => {
                out.insert(0, ("family".into(), Family::Ddpm.name().into()));
                // The text tab's prompt travels only when the reader changed it.
                if self.prompt != DEFAULT_PROMPT {
                    out.push(("prompt".into(), self.prompt.clone()));
                }
                write_image_settings(&mut out, "", &self.ddpm);
                if let Some(b) = &self.ddpm_race {
                    write_image_settings(&mut out, "b.", b);
                }
            }
        }
        if self.autoplay {
            out.push(("autoplay".into(), "1".into()));
        }
        if self.autoload_mb != AUTOLOAD_MB {
            out.push(("autoload".into(), fmt_num(self.autoload_mb)));
        }
        match self.attention {
            None => {}
            Some(Attention::BlockCausal { block_size }) => {
                out.push(("attention".into(), "block-causal".into()));
                out.push(("block_size".into(), block_size.to_string()));
            }
            Some(a) => out.push(("attention".into(), a.name().into())),
        }
        if self.embed {
            out.push(("embed".into(), "1".into()));
        }
        if self.theme != Theme::Auto {
            out.push(("theme".into(), self.theme.name().into()));
        }
        if self.backend == BackendChoice::Cpu {
            out.push(("backend".into(), "cpu".into()));
        }
        if self.full_precision {
            out.push(("precision".into(), "f32".into()));
        }
        if self.speed != DEFAULT_SPEED {
            out.push(("speed".into(), fmt_num(self.speed)));
        }
        out.iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Reads a chat's system prompt and turns (`system=`, then `user=` and `assistant=` in the
/// order they were said), within [`MAX_TURNS`] and [`MAX_PROMPT_CHARS`] in all.
fn read_chat(pairs: &[(String, String)], state: &mut PageState, errors: &mut Vec<String>) {
    let mut chars = state.prompt.chars().count();
    let mut fits = |text: &str, key: &str, errors: &mut Vec<String>| {
        chars += text.chars().count();
        let ok = chars <= MAX_PROMPT_CHARS;
        if !ok {
            errors.push(format!(
                "{key}: the chat is longer than {MAX_PROMPT_CHARS} characters; the rest is ignored"
            ));
        }
        ok
    };
    if let Some((_, v)) = pairs.iter().rev().find(|(k, _)| k == "system")
        && fits(v, "system", errors)
    {
        state.system = Some(v.clone());
    }
    for (key, text) in pairs {
        let role = match key.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => continue,
        };
        if state.turns.len() == MAX_TURNS {
            errors.push(format!(
                "{key}: a link keeps at most {MAX_TURNS} chat turns; the rest are ignored"
            ));
            break;
        }
        if !fits(text, key, errors) {
            break;
        }
        state.turns.push(Message::new(role, text.clone()));
    }
}

fn fmt_num(x: f64) -> String {
    format!("{x}")
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads a knob's value from a link.
fn parse_knob(spec: &KnobSpec, raw: &str) -> Option<KnobValue> {
    let raw = raw.trim();
    if raw == "none" {
        return spec.optional.then_some(KnobValue::Off);
    }
    let value = match spec.kind {
        KnobKind::Whole { .. } | KnobKind::Real { .. } => KnobValue::Number(raw.parse().ok()?),
        KnobKind::Flag => KnobValue::Flag(parse_bool(raw)?),
        KnobKind::Remasking => KnobValue::Remasking(Remasking::from_name(raw)?),
        KnobKind::Variance => KnobValue::Variance(Variance::from_name(raw)?),
        KnobKind::Schedule => KnobValue::Schedule(Schedule::from_name(raw, DEFAULT_SLOPE)?),
    };
    spec.admits(value).then_some(value)
}

/// Writes a knob's value into a link.
fn write_knob(value: KnobValue) -> String {
    match value {
        KnobValue::Number(x) => fmt_num(x),
        KnobValue::Flag(b) => (b as u8).to_string(),
        KnobValue::Remasking(r) => r.name().into(),
        KnobValue::Variance(v) => v.name().into(),
        KnobValue::Schedule(s) => s.name().into(),
        KnobValue::Off => "none".into(),
    }
}

/// The last value of `prefix` + `key` in a link's pairs.
fn prefixed(pairs: &[(String, String)], prefix: &str, key: &str) -> Option<String> {
    let key = format!("{prefix}{key}");
    pairs
        .iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

/// BD3-LM's knobs that exist only without first-hitting: a link naming one of them (and not
/// `first_hitting`) asks for the ranked order.
const RANKED_ONLY: [Knob; 3] = [Knob::Steps, Knob::Remasking, Knob::Threshold];

/// Reads one run's settings under `prefix` through [`KNOBS`]; `None` when the prefix names no
/// sampler (for the race: no race). The race runs on the first run's seed, and on its length
/// unless `b.gen` says else. A link without `steps` takes one step per generated token.
fn read_settings(
    pairs: &[(String, String)],
    prefix: &str,
    first: Option<&Settings>,
    errors: &mut Vec<String>,
) -> Option<Settings> {
    let get = |key: &str| prefixed(pairs, prefix, key);
    let sampler = match get("sampler") {
        None if !prefix.is_empty() => return None,
        None => SamplerKind::Bd3,
        Some(v) => match SamplerKind::ALL.iter().find(|s| s.name() == v) {
            Some(&s) => s,
            None => {
                let names: Vec<&str> = SamplerKind::ALL.iter().map(|s| s.name()).collect();
                errors.push(format!(
                    "{prefix}sampler: expected one of {}, got `{v}`",
                    names.join(", ")
                ));
                if prefix.is_empty() {
                    SamplerKind::Bd3
                } else {
                    return None;
                }
            }
        },
    };
    let mut s = Settings::defaults(sampler);
    if let Some(first) = first {
        s.set_gen_length(first.gen_length());
    }
    if sampler == SamplerKind::Bd3
        && get(Knob::FirstHitting.key()).is_none()
        && RANKED_ONLY.iter().any(|k| get(k.key()).is_some())
    {
        let _ = s.set(Knob::FirstHitting, KnobValue::Flag(false));
    }
    // First-hitting first: it decides whether BD3 has steps, remasking and a threshold.
    let order = std::iter::once(Knob::FirstHitting.spec())
        .chain(KNOBS.iter().filter(|k| k.knob != Knob::FirstHitting));
    let mut steps_given = false;
    for spec in order {
        // The race always shares the first run's seed.
        if spec.knob == Knob::Seed && first.is_some() {
            continue;
        }
        let Some(raw) = get(spec.key) else { continue };
        let key = format!("{prefix}{}", spec.key);
        let Some(value) = parse_knob(spec, &raw) else {
            errors.push(format!("{key}: expected {}, got `{raw}`", spec.expected()));
            continue;
        };
        match s.set(spec.knob, value) {
            Ok(()) => steps_given |= spec.knob == Knob::Steps,
            Err(_) => errors.push(format!(
                "{key}: the {} sampler has no such setting; ignored",
                sampler.name()
            )),
        }
    }
    if let Some(first) = first {
        s.draw_mut().seed = first.seed();
    }
    if !steps_given {
        s.set_steps(steps_for(s.gen_length()));
    }
    Some(s)
}

/// The page's step count for `gen_length` tokens when none is given: one token per step, the
/// setting LLaDA and MDLM report their best samples at.
pub fn steps_for(gen_length: usize) -> usize {
    gen_length.clamp(1, crate::sampler::settings::MAX_STEPS)
}

/// Writes every knob the run's sampler has, through [`KNOBS`] (the race leaves out the seed it
/// shares).
fn write_settings(out: &mut Vec<(String, String)>, prefix: &str, s: &Settings) {
    out.push((format!("{prefix}sampler"), s.sampler().name().into()));
    for spec in &KNOBS {
        if spec.knob == Knob::Seed && !prefix.is_empty() {
            continue;
        }
        if let Some(value) = s.get(spec.knob) {
            out.push((format!("{prefix}{}", spec.key), write_knob(value)));
        }
    }
}

/// Reads one image run's settings under `prefix` through [`KNOBS`]; `None` when the prefix names
/// no chain (for the race: no race). The race starts from the first run's class and count and
/// always runs on its seed; its guidance is its own. `cfg` and `classifier_scale` are one choice:
/// a link giving both keeps the classifier's and says so.
fn read_image_settings(
    pairs: &[(String, String)],
    prefix: &str,
    first: Option<&ImageSettings>,
    errors: &mut Vec<String>,
) -> Option<ImageSettings> {
    let get = |key: &str| prefixed(pairs, prefix, key);
    let sampler = match get("sampler") {
        None if !prefix.is_empty() => return None,
        None => ImageSampler::Ddim,
        Some(v) => match ImageSampler::from_name(&v) {
            Some(s) => s,
            None => {
                errors.push(format!(
                    "{prefix}sampler: expected ddim or ddpm for the digits, got `{v}`"
                ));
                if prefix.is_empty() {
                    ImageSampler::Ddim
                } else {
                    return None;
                }
            }
        },
    };
    let mut s = ImageSettings::defaults(sampler);
    if let Some(first) = first {
        let c = s.condition_mut();
        c.class = first.condition().class;
        c.count = first.condition().count;
    }
    if get(Knob::ClassifierScale.key()).is_some()
        && get(Knob::Cfg.key()).is_some_and(|w| w.trim() != "0")
    {
        errors.push(format!(
            "{prefix}cfg: classifier-free and classifier guidance are one choice; {prefix}classifier_scale kept"
        ));
    }
    for spec in &KNOBS {
        if spec.knob == Knob::Seed && first.is_some() {
            continue;
        }
        let Some(raw) = get(spec.key) else { continue };
        let key = format!("{prefix}{}", spec.key);
        let Some(value) = parse_knob(spec, &raw) else {
            errors.push(format!("{key}: expected {}, got `{raw}`", spec.expected()));
            continue;
        };
        if s.set(spec.knob, value).is_err() {
            errors.push(format!(
                "{key}: the {} sampler has no such setting; ignored",
                sampler.name()
            ));
        }
    }
    if let Some(first) = first {
        s.condition_mut().seed = first.seed();
    }
    Some(s)
}

/// Positions a Diffusion-LM run fills after the prompt unless the link says otherwise: the
/// shipped model's 32 less the default prompt's words, with room to spare.
pub const DEFAULT_WORDS_GEN: usize = 24;

/// The link keys of Diffusion-LM's settings (after the race's `b.` prefix).
const WORDS_KEYS: [&str; 8] = [
    "steps",
    "gen",
    "clamp",
    "variance",
    "seed",
    "control",
    "control_scale",
    "fluency",
];

/// Reads Diffusion-LM's settings under `prefix`: the first run's (every key optional), or the
/// race's (`first` given), which exists when one of its keys does and starts from the first's.
fn read_vector_settings(
    pairs: &[(String, String)],
    prefix: &str,
    first: Option<&VectorSettings>,
    errors: &mut Vec<String>,
) -> Option<VectorSettings> {
    let get = |key: &str| prefixed(pairs, prefix, key);
    if first.is_some() && WORDS_KEYS.iter().all(|k| get(k).is_none()) {
        return None;
    }
    let mut s = first
        .cloned()
        .unwrap_or_else(|| VectorSettings::defaults(DEFAULT_WORDS_GEN));
    let mut whole = |key: &str, at_least: usize, most: usize, out: &mut usize| {
        if let Some(v) = get(key) {
            match v.parse::<usize>() {
                Ok(n) if (at_least..=most).contains(&n) => *out = n,
                _ => errors.push(format!(
                    "{prefix}{key}: expected a whole number from {at_least} to {most}, got `{v}`"
                )),
            }
        }
    };
    whole(
        "steps",
        1,
        crate::sampler::gaussian::MAX_STEPS,
        &mut s.steps,
    );
    whole("gen", 1, crate::limits::MAX_MODEL_LENGTH, &mut s.gen_length);
    if let Some(v) = get("clamp") {
        match parse_bool(&v) {
            Some(b) => s.clamp = b,
            None => errors.push(format!("{prefix}clamp: expected 1 or 0, got `{v}`")),
        }
    }
    if let Some(v) = get("variance") {
        match v.as_str() {
            "beta" => s.variance = Variance::Beta,
            "posterior" => s.variance = Variance::Posterior,
            _ => errors.push(format!(
                "{prefix}variance: expected beta or posterior, got `{v}`"
            )),
        }
    }
    if first.is_none()
        && let Some(v) = get("seed")
    {
        match v.parse::<u64>() {
            Ok(n) => s.seed = n,
            Err(_) => errors.push(format!("{prefix}seed: expected a whole number, got `{v}`")),
        }
    }
    match get("control").as_deref() {
        None => {}
        Some("none") => s.control = None,
        Some(target) if !target.is_empty() && target.len() <= MAX_LABEL_CHARS => {
            s.control = Some(Control {
                target: target.into(),
                ..s.control.clone().unwrap_or_else(|| Control::toward(target))
            })
        }
        Some(v) => errors.push(format!(
            "{prefix}control: expected an attribute (austen, bible) or none, got `{v}`"
        )),
    }
    for (key, field) in [("control_scale", 0), ("fluency", 1)] {
        let Some(v) = get(key) else { continue };
        let Some(c) = s.control.as_mut() else {
            errors.push(format!(
                "{prefix}{key}: weighs control, and the link asks for none; ignored"
            ));
            continue;
        };
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => {
                if field == 0 {
                    c.scale = x
                } else {
                    c.fluency = x
                }
            }
            _ => errors.push(format!("{prefix}{key}: expected a number ≥ 0, got `{v}`")),
        }
    }
    Some(s)
}

/// The longest attribute name a link may ask control for.
const MAX_LABEL_CHARS: usize = 64;

/// Writes Diffusion-LM's settings under `prefix`: the first run's whole, the race's where it
/// differs from `first` (and at least its clamping, so that the race reads back).
fn write_vector_settings(
    out: &mut Vec<(String, String)>,
    prefix: &str,
    s: &VectorSettings,
    first: Option<&VectorSettings>,
) {
    let mut put = |key: &str, value: String, same: bool| {
        if !same || first.is_none() {
            out.push((format!("{prefix}{key}"), value));
        }
    };
    let f = first.unwrap_or(s);
    put("steps", s.steps.to_string(), s.steps == f.steps);
    put(
        "gen",
        s.gen_length.to_string(),
        s.gen_length == f.gen_length,
    );
    put("clamp", if s.clamp { "1" } else { "0" }.into(), false);
    let variance = |v| match v {
        Variance::Beta => "beta",
        Variance::Posterior => "posterior",
    };
    put(
        "variance",
        variance(s.variance).into(),
        s.variance == f.variance,
    );
    if first.is_none() {
        put("seed", s.seed.to_string(), false);
    }
    match &s.control {
        None => put("control", "none".into(), f.control.is_none()),
        Some(c) => {
            let same = f.control.as_ref() == Some(c);
            put("control", c.target.clone(), same);
            put("control_scale", fmt_num(c.scale), same);
            put("fluency", fmt_num(c.fluency), same);
        }
    }
}

/// Writes every knob the image run's chain has, through [`KNOBS`]: of the two guidance knobs
/// only the one in use (the race leaves out the seed it shares).
fn write_image_settings(out: &mut Vec<(String, String)>, prefix: &str, s: &ImageSettings) {
    out.push((format!("{prefix}sampler"), s.sampler().name().into()));
    let guidance = s.condition().guidance;
    for spec in &KNOBS {
        let skip = match spec.knob {
            Knob::Seed => !prefix.is_empty(),
            Knob::Cfg => !matches!(guidance, Guidance::Free { .. }),
            Knob::ClassifierScale => !matches!(guidance, Guidance::Classifier { .. }),
            _ => false,
        };
        if skip {
            continue;
        }
        if let Some(value) = s.get(spec.knob) {
            out.push((format!("{prefix}{}", spec.key), write_knob(value)));
        }
    }
}

/// Splits `a=1&b=x%20y` into decoded pairs (`+` is a space, as in forms).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`encode_component`] (and `+` for space); malformed escapes are kept as typed, and
/// invalid UTF-8 becomes U+FFFD.
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The link's `attention` and `block_size`: block-causal needs its block size, and a block size
/// means block-causal.
pub(crate) fn parse_attention(
    kind: Option<&str>,
    block: Option<&str>,
) -> Result<Attention, String> {
    let block_size = match block {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(b) if (1..=crate::limits::MAX_MODEL_LENGTH).contains(&b) => Some(b),
            _ => {
                return Err(format!(
                    "block_size: expected tokens per block (1 to {}), got `{v}`",
                    crate::limits::MAX_MODEL_LENGTH
                ));
            }
        },
    };
    match (kind.unwrap_or("block-causal"), block_size) {
        ("block-causal", Some(block_size)) => Ok(Attention::BlockCausal { block_size }),
        ("block-causal", None) => {
            Err("attention: block-causal needs block_size=N (tokens per block); ignored".into())
        }
        ("bidirectional", None) => Ok(Attention::Bidirectional),
        ("causal", None) => Ok(Attention::Causal),
        ("bidirectional" | "causal", Some(_)) => Err(format!(
            "block_size: only block-causal attention has blocks, not {}; ignored",
            kind.unwrap_or_default()
        )),
        (other, _) => Err(format!(
            "attention: expected bidirectional, causal or block-causal, got `{other}`"
        )),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    use crate::sampler::{Bd3Order, Draw, LladaSettings, MdlmSettings};

    #[test]
    fn a_full_state_survives_the_round_trip_through_a_link() {
        let state = PageState {
            family: Family::Text,
            ddpm: ImageSettings::defaults(ImageSampler::Ddim),
            ddpm_race: None,
            words: VectorSettings::defaults(DEFAULT_WORDS_GEN),
            words_race: None,
            unified: UnifiedPage::default(),
            unified_race: None,
            prompt: "a & b = [MASK] 100% <img src=x>\nnext line é".into(),
            chat: true,
            system: Some("Answer in one line & no more.".into()),
            turns: vec![
                Message::new(Role::User, "Hi? a=b&c"),
                Message::new(Role::Assistant, "Hello!\n<|im_end|>"),
                Message::new(Role::User, "again"),
                Message::new(Role::Assistant, ""),
            ],
            model: ModelSource::Hub("kuleshov-group/mdlm-owt".into()),
            settings: Settings::Llada(LladaSettings {
                threshold: Some(0.9),
                cfg_scale: 1.5,
                block_length: Some(8),
                draw: Draw {
                    top_k: Some(7),
                    seed: 42,
                    ..Draw::at(0.0)
                },
                ..LladaSettings::default()
            }),
            race: Some(Settings::Mdlm(MdlmSettings {
                use_cache: false,
                draw: Draw {
                    seed: 42,
                    ..Draw::at(1.0)
                },
                ..MdlmSettings::default()
            })),
            autoplay: true,
            autoload_mb: 2.5,
            attention: Some(Attention::BlockCausal { block_size: 32 }),
            embed: true,
            theme: Theme::Dark,
            backend: BackendChoice::Cpu,
            full_precision: true,
            speed: 16.0,
        };
        let (back, errors) = PageState::from_query(&format!("?{}", state.to_query()));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, state);
    }

    #[test]
    fn an_attention_override_reads_from_the_link_and_bad_ones_are_named() {
        for (query, attention) in [
            ("attention=bidirectional", Attention::Bidirectional),
            ("attention=causal", Attention::Causal),
            (
                "attention=block-causal&block_size=32",
                Attention::BlockCausal { block_size: 32 },
            ),
            ("block_size=8", Attention::BlockCausal { block_size: 8 }),
        ] {
            let (state, errors) = PageState::from_query(query);
            assert!(errors.is_empty(), "{query}: {errors:?}");
            assert_eq!(state.attention, Some(attention), "{query}");
            let (back, _) = PageState::from_query(&state.to_query());
            assert_eq!(back.attention, Some(attention), "{query}");
        }
        for (query, named) in [
            ("attention=block-causal", "needs block_size"),
            ("attention=causal&block_size=4", "only block-causal"),
            (
                "attention=sideways",
                "expected bidirectional, causal or block-causal",
            ),
            (
                "attention=block-causal&block_size=0",
                "block_size: expected",
            ),
            ("block_size=99999999999", "block_size: expected"),
        ] {
            let (state, errors) = PageState::from_query(query);
            assert_eq!(state.attention, None, "{query}");
            assert!(
                errors.len() == 1 && errors[0].contains(named),
                "{query}: {errors:?}"
            );
        }
        assert!(!PageState::default().to_query().contains("attention"));
    }

    #[test]
    fn a_chat_link_runs_its_conversation_then_the_new_message() {
        let (state, errors) = PageState::from_query(
            "chat=1&system=Be%20brief&user=hi&assistant=hello&prompt=and%20you%3F&sampler=llada",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let Job::Text { prompt, chat, .. } = state.job() else {
            panic!("a text job")
        };
        assert_eq!(prompt, "and you?");
        assert_eq!(
            chat,
            Some(vec![
                Message::new(Role::System, "Be brief"),
                Message::new(Role::User, "hi"),
                Message::new(Role::Assistant, "hello"),
            ])
        );
        // Without chat=1 the turns are kept but the run is plain text.
        let (plain, _) = PageState::from_query("user=hi&prompt=x");
        assert!(matches!(plain.job(), Job::Text { chat: None, .. }));
        // A finished exchange joins the turns and empties the box.
        let mut next = state.clone();
        next.add_exchange("and you?".into(), "fine".into());
        assert_eq!(next.prompt, "");
        assert_eq!(
            next.turns[2..],
            [
                Message::new(Role::User, "and you?"),
                Message::new(Role::Assistant, "fine"),
            ]
        );
        let (back, _) = PageState::from_query(&next.to_query());
        assert_eq!(back.turns, next.turns);
    }

    #[test]
    fn autoload_bounds_what_a_link_downloads_by_itself() {
        assert_eq!(PageState::default().autoload_bytes(), 100_000_000);
        let (state, errors) = PageState::from_query("autoload=0");
        assert!(errors.is_empty());
        assert_eq!(state.autoload_bytes(), 0);
        assert!(state.to_query().contains("autoload=0"));
        for bad in ["-1", "lots", "1e9"] {
            let (state, errors) = PageState::from_query(&format!("autoload={bad}"));
            assert_eq!(state.autoload_mb, AUTOLOAD_MB, "{bad}");
            assert!(errors[0].starts_with("autoload: expected"), "{errors:?}");
        }
    }

    #[test]
    fn a_chat_link_keeps_at_most_its_turn_and_length_limits() {
        let many = (0..MAX_TURNS + 5)
            .map(|i| format!("user=t{i}"))
            .collect::<Vec<_>>()
            .join("&");
        let (state, errors) = PageState::from_query(&format!("chat=1&{many}"));
        assert_eq!(state.turns.len(), MAX_TURNS);
        assert!(
            errors.iter().any(|e| e.contains("at most 64 chat turns")),
            "{errors:?}"
        );
        let long = "x".repeat(MAX_PROMPT_CHARS / 2 + 1);
        let (state, errors) =
            PageState::from_query(&format!("chat=1&user={long}&assistant={long}&user=ok"));
        assert_eq!(state.turns, [Message::new(Role::User, long.clone())]);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("assistant: the chat is longer")),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_values_are_reported_and_the_defaults_kept() {
        let (state, errors) = PageState::from_query(
            "sampler=llada&steps=0&temperature=hot&top_p=1.5&cfg=2&theme=neon&embed=maybe&speed=9999&b.sampler=xyz&model=not%20a%20model",
        );
        assert_eq!(state.settings.sampler(), SamplerKind::Llada);
        assert_eq!(
            state.settings.steps(),
            Some(steps_for(state.settings.gen_length()))
        );
        assert_eq!(state.settings.get(Knob::Cfg), Some(KnobValue::Number(2.0)));
        assert_eq!(state.race, None);
        assert_eq!(state.theme, Theme::Auto);
        assert!(!state.embed);
        assert_eq!(state.model, ModelSource::Default);
        for key in [
            "steps",
            "temperature",
            "top_p",
            "theme",
            "embed",
            "speed",
            "b.sampler",
            "model",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("{key}:"))),
                "no message for {key}: {errors:?}"
            );
        }
        assert_eq!(errors.len(), 8, "{errors:?}");
    }

    #[test]
    fn knobs_a_sampler_does_not_read_are_dropped_with_a_message() {
        let (state, errors) = PageState::from_query("sampler=mdlm&cfg=3&threshold=0.5");
        assert_eq!(state.settings, Settings::for_tokens(SamplerKind::Mdlm, 64));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .all(|e| e.ends_with("has no such setting; ignored")),
            "{errors:?}"
        );
        assert!(!state.to_query().contains("cfg="));
    }

    #[test]
    fn a_link_without_steps_takes_one_step_per_token() {
        let (state, errors) = PageState::from_query("sampler=llada&gen=12&b.sampler=mdlm&b.gen=20");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(state.settings.steps(), Some(12));
        assert_eq!(state.race.unwrap().steps(), Some(20));
        let (state, _) = PageState::from_query("sampler=llada&gen=12&steps=6");
        assert_eq!(state.settings.steps(), Some(6));
        let (state, _) = PageState::from_query("sampler=mdlm&gen=0");
        assert_eq!(state.settings.steps(), Some(1));
    }

    #[test]
    fn the_race_shares_the_seed_and_by_default_the_length() {
        let (state, errors) =
            PageState::from_query("sampler=bd3&gen=16&seed=5&b.sampler=llada&b.steps=8&b.seed=9");
        assert!(errors.is_empty(), "{errors:?}");
        let b = state.race.unwrap();
        assert_eq!(
            (b.sampler(), b.steps(), b.gen_length(), b.seed()),
            (SamplerKind::Llada, Some(8), 16, 5)
        );
    }

    #[test]
    fn a_bd3_link_with_ranked_knobs_asks_for_the_ranked_order() {
        let (state, errors) =
            PageState::from_query("sampler=bd3&gen=16&threshold=0.8&remasking=margin");
        assert!(errors.is_empty(), "{errors:?}");
        match &state.settings {
            Settings::Bd3(b) => assert_eq!(
                b.order,
                Bd3Order::Ranked {
                    steps: 16,
                    remasking: Remasking::Margin,
                    threshold: Some(0.8)
                }
            ),
            other => panic!("{other:?}"),
        }
        // Asking for first-hitting as well: the ranked knobs are the ones ignored.
        let (state, errors) = PageState::from_query("sampler=bd3&first_hitting=1&steps=4");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(state.settings.steps(), None);
    }

    #[test]
    fn every_sampler_accepts_its_page_settings_with_every_knob_it_reads_set() {
        use crate::config::Attention;
        use crate::sampler::{AnySampler, ModelSpec};
        for sampler in SamplerKind::ALL {
            let attention = match sampler {
                SamplerKind::Bd3 => Attention::BlockCausal { block_size: 4 },
                SamplerKind::Ar | SamplerKind::Forcing => Attention::Causal,
                _ => Attention::Bidirectional,
            };
            let forcing = sampler == SamplerKind::Forcing;
            let spec = ModelSpec {
                vocab_size: 44,
                model_length: 128,
                mask_id: 43,
                eos_id: Some(2),
                attention,
                time_conditioning: forcing,
                per_token_noise: forcing,
            };
            for ranked in [false, true] {
                let mut s = Settings::for_tokens(sampler, 8);
                if ranked {
                    let _ = s.set(Knob::FirstHitting, KnobValue::Flag(false));
                }
                // Every knob it has, set through the table the page reads.
                for (knob, value) in [
                    (Knob::Cfg, KnobValue::Number(1.0)),
                    (Knob::BlockLength, KnobValue::Number(4.0)),
                    (Knob::TopK, KnobValue::Number(5.0)),
                    (Knob::Threshold, KnobValue::Number(0.9)),
                    (Knob::Remasking, KnobValue::Remasking(Remasking::Margin)),
                    (Knob::Levels, KnobValue::Number(6.0)),
                    (Knob::Slope, KnobValue::Number(2.5)),
                ] {
                    if s.has(knob) {
                        s.set(knob, value).unwrap();
                    }
                }
                let (back, errors) = PageState::from_query(
                    &PageState {
                        settings: s.clone(),
                        ..PageState::default()
                    }
                    .to_query(),
                );
                assert!(errors.is_empty(), "{errors:?}");
                assert_eq!(back.settings, s);
                AnySampler::new(&s, &[1, 5, 6], &spec)
                    .unwrap_or_else(|e| panic!("{}: {e}", sampler.name()));
            }
        }
    }

    #[test]
    fn none_clears_a_default_nucleus() {
        let (state, errors) = PageState::from_query("sampler=bd3&top_p=none");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(state.settings.draw().top_p, None);
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes_and_plus_is_space() {
        assert_eq!(decode_component("a+b%20c%zz%4"), "a b c%zz%4");
        assert_eq!(decode_component("%E2%9C%93"), "✓");
        assert_eq!(decode_component("%FF"), "\u{FFFD}");
        let s = "∑ <&> ?=#";
        assert_eq!(decode_component(&encode_component(s)), s);
    }

    #[test]
    fn a_digits_link_reads_its_family_chain_class_and_guidance() {
        use crate::sampler::image::Guidance;
        let (s, errors) = PageState::from_query("family=ddpm&class=7&classifier_scale=3&seed=1");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.family, Family::Ddpm);
        let c = s.ddpm.condition();
        assert_eq!(
            (c.class, c.guidance, c.seed),
            (Some(7), Guidance::Classifier { scale: 3.0 }, 1)
        );
        assert_eq!(s.ddpm.sampler(), ImageSampler::Ddim);
        // The text settings are untouched, and the link it writes reads back the same.
        assert_eq!(s.settings, PageState::default().settings);
        let (back, errors) = PageState::from_query(&s.to_query());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, s);
        let q = s.to_query();
        assert!(q.starts_with("family=ddpm&"), "{q}");
        assert!(!q.contains("prompt=") && !q.contains("cfg="), "{q}");
        // A prompt the reader typed on the text tab survives a digits link.
        let (typed, _) = PageState::from_query("family=ddpm&prompt=Once");
        assert_eq!(PageState::from_query(&typed.to_query()).0.prompt, "Once");
    }

    #[test]
    fn a_digits_race_and_a_full_chain_survive_the_link() {
        let mut state = PageState {
            family: Family::Ddpm,
            ..PageState::default()
        };
        state.ddpm = ImageSettings::defaults(ImageSampler::Ddpm);
        state
            .ddpm
            .set(Knob::Variance, KnobValue::Variance(Variance::Posterior))
            .unwrap();
        state.ddpm.set(Knob::Class, KnobValue::Number(3.0)).unwrap();
        state.ddpm.set(Knob::Count, KnobValue::Number(4.0)).unwrap();
        state.ddpm.set(Knob::Cfg, KnobValue::Number(1.5)).unwrap();
        state.set_seed(11);
        let mut b = state.ddpm.switched(ImageSampler::Ddim);
        b.set(Knob::Eta, KnobValue::Number(0.5)).unwrap();
        b.set(Knob::Cfg, KnobValue::Number(0.0)).unwrap();
        state.ddpm_race = Some(b);
        let (back, errors) = PageState::from_query(&state.to_query());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, state);
        assert_eq!(back.jobs().len(), 2);
        assert!(back.jobs().iter().all(|j| j.seed() == 11));
    }

    #[test]
    fn bad_digits_values_are_reported_and_the_defaults_kept() {
        let (s, errors) = PageState::from_query(
            "family=ddpm&sampler=llada&eta=2&class=x&temperature=1&cfg=2&classifier_scale=1&count=0",
        );
        let text = errors.join("\n");
        for key in ["sampler", "eta", "class", "temperature", "cfg", "count"] {
            assert!(text.contains(&format!("{key}:")), "{key} in {text}");
        }
        assert_eq!(s.ddpm.sampler(), ImageSampler::Ddim);
        assert_eq!(s.ddpm.condition().class, None);
        assert_eq!(s.ddpm.condition().count, 1);
        assert!(matches!(
            s.ddpm.condition().guidance,
            crate::sampler::image::Guidance::Classifier { scale } if scale == 1.0
        ));
        let (s, errors) = PageState::from_query("family=images");
        assert_eq!(s.family, Family::Text);
        assert!(errors[0].starts_with("family:"), "{errors:?}");
    }

    #[test]
    fn a_words_link_reads_its_chain_control_and_race_and_writes_them_back() {
        let (s, errors) = PageState::from_query(
            "family=diffusion-lm&prompt=It%20was&steps=50&gen=12&clamp=0&seed=7&control=bible&control_scale=3&b.clamp=1&b.control=none",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.family, Family::DiffusionLm);
        assert_eq!(
            (s.words.steps, s.words.gen_length, s.words.clamp),
            (50, 12, false)
        );
        let c = s.words.control.clone().unwrap();
        assert_eq!(
            (c.target.as_str(), c.scale, c.fluency),
            ("bible", 3.0, 0.01)
        );
        // The race: the first's chain, clamped, without control, on the same seed.
        let race = s.words_race.clone().unwrap();
        assert_eq!(
            (race.steps, race.clamp, race.control.is_none()),
            (50, true, true)
        );
        let jobs = s.jobs();
        assert_eq!(jobs.len(), 2);
        assert!(
            jobs.iter()
                .all(|j| j.seed() == 7 && j.family() == Family::DiffusionLm)
        );
        assert!(matches!(&jobs[0], Job::DiffusionLm { prompt, .. } if prompt == "It was"));
        let query = s.to_query();
        assert!(query.starts_with("family=diffusion-lm&"), "{query}");
        let (again, errors) = PageState::from_query(&query);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((again.words, again.words_race), (s.words, s.words_race));
        // The model of a default run is the shipped one.
        assert_eq!(
            s.model.for_job(&jobs[0]),
            ModelSource::Url(super::super::source::WORDS_MODEL_DIR.into())
        );
        // Bad values are named and the defaults kept.
        let (bad, errors) = PageState::from_query(
            "family=diffusion-lm&steps=0&clamp=maybe&control_scale=2&variance=wide",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        for key in ["steps", "clamp", "control_scale", "variance"] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key}: {errors:?}"
            );
        }
        assert_eq!(bad.words, VectorSettings::defaults(DEFAULT_WORDS_GEN));
        assert!(bad.words_race.is_none());
    }
}
