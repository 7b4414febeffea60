//! Controls: the family, the prompt and every knob of the chosen sampler (for the digits: chain,
//! class and guidance), the race, the model source and backend, sharing, trajectory files and
//! pictures.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::browser::fetch::clear_cache;
use crate::browser::js_error;
use crate::chat::Role;
use crate::config::{Attention, Family};
use crate::export::{ColorPicture, TextSvg, cells_svg, encode_apng_rgba};
use crate::page::human_bytes;
use crate::page::images::PictureKind;
use crate::page::protocol::{ClassifierStatus, Network};
use crate::page::source::{DLLM_BD3LM_BLOCK_SIZE, ModelSource, TRAINED_MODELS, describe_attention};
use crate::page::state::{BackendChoice, PageState, Theme, parse_attention};
use crate::sampler::diffusion_lm::VectorSettings;
use crate::sampler::forcing::Schedule;
use crate::sampler::gaussian::Variance;
use crate::sampler::image::{Guidance, ImageSampler};
use crate::sampler::settings::{DEFAULT_SLOPE, describe};
use crate::sampler::{
    KNOBS, Knob, KnobKind, KnobSpec, KnobValue, Remasking, SamplerKind, Settings,
};
use crate::trajectory::AnyTrajectory;

use super::app::ctx;
use crate::page::session::ModelStatus;

/// Which settings an input edits: the run's, or the race's second sampler.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Which {
    A,
    B,
}

fn read(which: Which) -> impl Fn() -> Option<Settings> + Copy {
    let ctx = ctx();
    move || {
        ctx.state.with(|s| match which {
            Which::A => Some(s.settings.clone()),
            Which::B => s.race.clone(),
        })
    }
}

/// `knob`'s value in the settings `which` of the page's family (`None`: that sampler has none).
fn knob_value(which: Which, knob: Knob) -> Option<KnobValue> {
    ctx().state.with(|s| match (s.family, which) {
        (Family::Text, Which::A) => s.settings.get(knob),
        (Family::Text, Which::B) => s.race.as_ref()?.get(knob),
        (Family::Unified, Which::A) => s.unified.knobs.get(s.unified.task, knob),
        (Family::Unified, Which::B) => s.unified_race.as_ref()?.get(s.unified.task, knob),
        (Family::Ddpm, Which::A) => s.ddpm.get(knob),
        (Family::Ddpm, Which::B) => s.ddpm_race.as_ref()?.get(knob),
        (Family::DiffusionLm, Which::A) => words_knob(&s.words, knob),
        (Family::DiffusionLm, Which::B) => words_knob(s.words_race.as_ref()?, knob),
    })
}

/// The knobs of the table Diffusion-LM shares with the other families.
fn words_knob(s: &VectorSettings, knob: Knob) -> Option<KnobValue> {
    match knob {
        Knob::Steps => Some(KnobValue::Number(s.steps as f64)),
        Knob::GenLength => Some(KnobValue::Number(s.gen_length as f64)),
        Knob::Variance => Some(KnobValue::Variance(s.variance)),
        Knob::Seed => Some(KnobValue::Number(s.seed as f64)),
        _ => None,
    }
}

/// Sets one of [`words_knob`]'s knobs; whether the value was taken.
fn set_words_knob(s: &mut VectorSettings, knob: Knob, value: KnobValue) -> bool {
    let whole = |x: f64, most: usize| {
        (x.fract() == 0.0 && x >= 1.0 && x <= most as f64).then_some(x as usize)
    };
    match (knob, value) {
        (Knob::Steps, KnobValue::Number(x)) => whole(x, crate::sampler::gaussian::MAX_STEPS)
            .map(|n| s.steps = n)
            .is_some(),
        (Knob::GenLength, KnobValue::Number(x)) => whole(x, crate::limits::MAX_MODEL_LENGTH)
            .map(|n| s.gen_length = n)
            .is_some(),
        (Knob::Variance, KnobValue::Variance(v)) => {
            s.variance = v;
            true
        }
        (Knob::Seed, KnobValue::Number(x)) if x >= 0.0 && x.fract() == 0.0 => {
            s.seed = x as u64;
            true
        }
        _ => false,
    }
}

/// Sets `knob` in the settings `which` of the page's family, through the knob table; whether the
/// value was taken.
fn set_knob(which: Which, knob: Knob, value: KnobValue) -> bool {
    let mut ok = false;
    ctx().state.update(|s| {
        ok = match (s.family, which) {
            (Family::Text, Which::A) => s.settings.set(knob, value).is_ok(),
            (Family::Text, Which::B) => s.race.as_mut().is_some_and(|b| b.set(knob, value).is_ok()),
            (Family::Unified, Which::A) => {
                let task = s.unified.task;
                s.unified.knobs.set(task, knob, value).is_ok()
            }
            (Family::Unified, Which::B) => {
                let task = s.unified.task;
                s.unified_race
                    .as_mut()
                    .is_some_and(|b| b.set(task, knob, value).is_ok())
            }
            (Family::DiffusionLm, Which::A) => set_words_knob(&mut s.words, knob, value),
            (Family::DiffusionLm, Which::B) => s
                .words_race
                .as_mut()
                .is_some_and(|b| set_words_knob(b, knob, value)),
            (Family::Ddpm, Which::A) => s.ddpm.set(knob, value).is_ok(),
            (Family::Ddpm, Which::B) => s
                .ddpm_race
                .as_mut()
                .is_some_and(|b| b.set(knob, value).is_ok()),
        }
    });
    ok
}

/// A number field for one knob of [`KNOBS`]: its range and step from the table, empty for an
/// optional knob that is off; a value the table refuses marks the field invalid and changes nothing.
///
/// Diffusion forcing's slope is a slider instead, from full-sequence (0) to autoregressive (the
/// level count): letting go of it runs again, with the same seed.
fn number_knob(which: Which, spec: &'static KnobSpec) -> impl IntoView {
    let (min, max, step) = match spec.kind {
        KnobKind::Whole { min, max } => (min as f64, max as f64, 1.0),
        KnobKind::Real { min, max, step } => (min, max, step),
        _ => (0.0, 0.0, 1.0),
    };
    let slider = spec.knob == Knob::Slope;
    let max = move || match knob_value(which, Knob::Levels) {
        Some(KnobValue::Number(levels)) if slider => levels,
        _ => max,
    };
    let value = move || match knob_value(which, spec.knob) {
        Some(KnobValue::Number(x)) => x.to_string(),
        _ => String::new(),
    };
    let invalid = RwSignal::new(false);
    view! {
        <label class="knob" title=spec.help>
            <span>{spec.label}{move || slider.then(value)}</span>
            <input
                type=if slider { "range" } else { "number" }
                min=min
                max=max
                step=step
                data-knob=spec.key
                placeholder=if spec.optional { "off" } else { "" }
                class:invalid=move || invalid.get()
                prop:value=value
                on:change=move |ev| {
                    let raw = event_target_value(&ev);
                    let raw = raw.trim();
                    let parsed = if raw.is_empty() && spec.optional {
                        Some(KnobValue::Off)
                    } else {
                        raw.parse::<f64>().ok().map(KnobValue::Number)
                    };
                    let ok = parsed.is_some_and(|v| set_knob(which, spec.knob, v));
                    invalid.set(!ok);
                    if slider && ok && ctx().model_ready() {
                        ctx().run();
                    }
                }
            />
        </label>
    }
}

/// A checkbox for one on/off knob of [`KNOBS`].
fn check_knob(which: Which, spec: &'static KnobSpec) -> impl IntoView {
    view! {
        <label class="knob check" title=spec.help>
            <input
                type="checkbox"
                data-knob=spec.key
                prop:checked=move || knob_value(which, spec.knob) == Some(KnobValue::Flag(true))
                on:change=move |ev| {
                    set_knob(which, spec.knob, KnobValue::Flag(event_target_checked(&ev)));
                }
            />
            <span>{spec.label}</span>
        </label>
    }
}

/// A choice among named values (the remasking rule, DDPM's variance, the forcing schedule),
/// the current one picked by its name (a pyramid is picked whatever its slope).
fn choice_knob(
    which: Which,
    spec: &'static KnobSpec,
    options: Vec<(&'static str, KnobValue)>,
) -> impl IntoView {
    let picked = options.clone();
    view! {
        <label class="knob" title=spec.help>
            <span>{spec.label}</span>
            <select data-knob=spec.key on:change=move |ev| {
                let name = event_target_value(&ev);
                if let Some(&(_, v)) = picked.iter().find(|(n, _)| *n == name) {
                    set_knob(which, spec.knob, v);
                }
            }>
                {options
                    .into_iter()
                    .map(|(name, _)| view! {
                        <option value=name selected=move || {
                            knob_value(which, spec.knob).map(describe).as_deref() == Some(name)
                        }>
                            {name}
                        </option>
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

/// The control of one knob, by its kind.
fn knob_control(which: Which, spec: &'static KnobSpec) -> AnyView {
    match spec.kind {
        KnobKind::Flag => check_knob(which, spec).into_any(),
        KnobKind::Remasking => choice_knob(
            which,
            spec,
            Remasking::ALL
                .map(|r| (r.name(), KnobValue::Remasking(r)))
                .to_vec(),
        )
        .into_any(),
        KnobKind::Variance => choice_knob(
            which,
            spec,
            Variance::ALL
                .map(|v| (v.name(), KnobValue::Variance(v)))
                .to_vec(),
        )
        .into_any(),
        KnobKind::Schedule => choice_knob(
            which,
            spec,
            Schedule::NAMES
                .iter()
                .filter_map(|&name| {
                    Schedule::from_name(name, DEFAULT_SLOPE).map(|s| (name, KnobValue::Schedule(s)))
                })
                .collect(),
        )
        .into_any(),
        KnobKind::Whole { .. } | KnobKind::Real { .. } => number_knob(which, spec).into_any(),
    }
}

fn sampler_select(which: Which) -> impl IntoView {
    let settings = read(which);
    view! {
        <label class="knob">
            <span>{if which == Which::A { "sampler" } else { "race against" }}</span>
            <select
                data-testid=if which == Which::A { "sampler" } else { "sampler-b" }
                on:change=move |ev| {
                    let name = event_target_value(&ev);
                    if let Some(&kind) = SamplerKind::ALL.iter().find(|k| k.name() == name) {
                        let ctx = ctx();
                        ctx.state.update(|s| {
                            let base = match which {
                                Which::A => &s.settings,
                                Which::B => s.race.as_ref().unwrap_or(&s.settings),
                            };
                            let mut next = base.switched(kind);
                            next.draw_mut().seed = s.settings.seed();
                            match which {
                                Which::A => s.settings = next,
                                Which::B => s.race = Some(next),
                            }
                        });
                        // On the default models each sampler has its own: this one may need another.
                        ctx.follow_sampler();
                    }
                }
            >
                {SamplerKind::ALL
                    .iter()
                    .map(|&k| {
                        view! {
                            <option value=k.name() selected=move || settings().is_some_and(|s| s.sampler() == k)>
                                {k.name()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

/// The knobs of one run: every row of [`KNOBS`] its sampler has as its settings stand (the seed
/// has its own row, shared by a race; the digits' class and guidance have theirs).
fn knobs(which: Which) -> impl IntoView {
    let ctx = ctx();
    let digits = move || ctx.state.with(|s| s.family == Family::Ddpm);
    let family = move || ctx.state.with(|s| s.family);
    view! {
        <div class="knobs">
            {move || match family() {
                Family::Ddpm => view! { {image_sampler_select(which)} {class_select(which)} {guidance_select(which)} }.into_any(),
                Family::DiffusionLm => super::words::words_knobs(which).into_any(),
                Family::Text => sampler_select(which).into_any(),
                Family::Unified => ().into_any(),
            }}
            {KNOBS
                .iter()
                .filter(|spec| !matches!(spec.knob, Knob::Seed | Knob::Class | Knob::ClassifierScale))
                .map(|spec| {
                    // The digits' cfg is a scale of the guidance control.
                    let shown = move || {
                        knob_value(which, spec.knob).is_some()
                            && !(digits() && spec.knob == Knob::Cfg)
                    };
                    view! { <Show when=shown>{move || knob_control(which, spec)}</Show> }
                })
                .collect_view()}
        </div>
    }
}

/// DDIM or DDPM.
fn image_sampler_select(which: Which) -> impl IntoView {
    let ctx = ctx();
    let current = move || {
        ctx.state.with(|s| match which {
            Which::A => Some(s.ddpm.sampler()),
            Which::B => s.ddpm_race.as_ref().map(|b| b.sampler()),
        })
    };
    view! {
        <label class="knob" title="DDIM: a few deterministic (η = 0) steps; DDPM: the ancestral chain over all T steps">
            <span>{if which == Which::A { "sampler" } else { "race against" }}</span>
            <select
                data-testid=if which == Which::A { "sampler" } else { "sampler-b" }
                on:change=move |ev| {
                    if let Some(kind) = ImageSampler::from_name(&event_target_value(&ev)) {
                        ctx.state.update(|s| match which {
                            Which::A => s.ddpm = s.ddpm.switched(kind),
                            Which::B => {
                                if let Some(b) = &mut s.ddpm_race {
                                    *b = b.switched(kind)
                                }
                            }
                        });
                    }
                }
            >
                {ImageSampler::ALL
                    .map(|k| view! {
                        <option value=k.name() selected=move || current() == Some(k)>{k.name()}</option>
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

/// The classes the loaded digits model draws (ten before it has loaded).
fn model_classes() -> usize {
    match ctx().model_status() {
        ModelStatus::Loaded(m) => match m.network {
            Network::Ddpm { spec, .. } if spec.classes > 0 => spec.classes,
            _ => crate::page::images::DIGIT_CLASSES,
        },
        _ => crate::page::images::DIGIT_CLASSES,
    }
}

/// Whether the loaded digits model brought its classifier, or why not.
fn classifier_state() -> Result<(), String> {
    match ctx().model_status() {
        ModelStatus::Loaded(m) => match m.network {
            Network::Ddpm {
                classifier: Some(ClassifierStatus::Loaded { .. }),
                ..
            } => Ok(()),
            Network::Ddpm {
                classifier: Some(ClassifierStatus::Failed { message, .. }),
                ..
            } => Err(message),
            _ => Err("this model names no noisy classifier".into()),
        },
        _ => Err("the model is still loading".into()),
    }
}

/// The digit to draw, or any.
fn class_select(which: Which) -> impl IntoView {
    let spec = Knob::Class.spec();
    view! {
        <label class="knob" title=spec.help>
            <span>{spec.label}</span>
            <select data-knob=spec.key on:change=move |ev| {
                let v = event_target_value(&ev);
                let value = v.parse::<f64>().map_or(KnobValue::Off, KnobValue::Number);
                set_knob(which, Knob::Class, value);
            }>
                <option value="" selected=move || knob_value(which, Knob::Class) == Some(KnobValue::Off)>"any"</option>
                {move || {
                    (0..model_classes())
                        .map(|y| {
                            let v = KnobValue::Number(y as f64);
                            view! {
                                <option value=y.to_string() selected=move || knob_value(which, Knob::Class) == Some(v)>
                                    {y.to_string()}
                                </option>
                            }
                        })
                        .collect_view()
                }}
            </select>
        </label>
    }
}

/// How the run is steered to its class, and how hard.
fn guidance_select(which: Which) -> impl IntoView {
    let ctx = ctx();
    let guidance = move || {
        ctx.state.with(|s| match which {
            Which::A => Some(s.ddpm.condition().guidance),
            Which::B => s.ddpm_race.as_ref().map(|b| b.condition().guidance),
        })
    };
    let kind = move || match guidance() {
        Some(Guidance::Free { .. }) => "free",
        Some(Guidance::Classifier { .. }) => "classifier",
        _ => "none",
    };
    let classifier = move || classifier_state();
    let scale_spec = move || match guidance() {
        Some(Guidance::Free { .. }) => Some(Knob::Cfg.spec()),
        Some(Guidance::Classifier { .. }) => Some(Knob::ClassifierScale.spec()),
        _ => None,
    };
    view! {
        <label class="knob" title="Classifier-free guidance mixes the model's conditional and unconditional predictions; classifier guidance adds the noisy classifier's gradient">
            <span>"guidance"</span>
            <select data-testid=if which == Which::A { "guidance" } else { "guidance-b" } on:change=move |ev| {
                let (knob, value) = match event_target_value(&ev).as_str() {
                    "free" => (Knob::Cfg, KnobValue::Number(DEFAULT_CFG)),
                    "classifier" => (Knob::ClassifierScale, KnobValue::Number(DEFAULT_CLASSIFIER_SCALE)),
                    _ => (
                        if kind() == "free" { Knob::Cfg } else { Knob::ClassifierScale },
                        if kind() == "free" { KnobValue::Number(0.0) } else { KnobValue::Off },
                    ),
                };
                // Guidance steers to a class: pick one when there is none.
                if knob_value(which, Knob::Class) == Some(KnobValue::Off) && value != KnobValue::Off && value != KnobValue::Number(0.0) {
                    set_knob(which, Knob::Class, KnobValue::Number(DEFAULT_CLASS as f64));
                }
                set_knob(which, knob, value);
            }>
                <option value="none" selected=move || kind() == "none">"none"</option>
                <option value="free" selected=move || kind() == "free">"classifier-free"</option>
                <option
                    value="classifier"
                    selected=move || kind() == "classifier"
                    disabled=move || classifier().is_err() && kind() != "classifier"
                    title=move || classifier().err().unwrap_or_default()
                >
                    "classifier"
                </option>
            </select>
        </label>
        {move || scale_spec().map(|spec| number_knob(which, spec))}
    }
}

/// Classifier-free guidance's scale when the reader picks it (Ho & Salimans report w = 0.3–4).
const DEFAULT_CFG: f64 = 1.0;
/// Classifier guidance's scale when the reader picks it (the shipped classifier reaches 92% at 3).
const DEFAULT_CLASSIFIER_SCALE: f64 = 3.0;
/// The class guidance picks when none was chosen.
const DEFAULT_CLASS: usize = 7;

/// A row of radio buttons drawn as tabs: one per `(value, label, title)` of `options`, the one
/// `current` answers checked, `pick` called with the one the reader checks; each input's test id
/// is `{name}-{id(value)}`.
pub(crate) fn radio_tabs<T: Copy + PartialEq + Send + Sync + 'static, const N: usize>(
    name: &'static str,
    options: [(T, &'static str, &'static str); N],
    id: fn(T) -> &'static str,
    current: impl Fn() -> T + Copy + Send + Sync + 'static,
    pick: impl Fn(T) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    options
        .map(|(value, label, title)| {
            view! {
                <label class="tab" class:active=move || current() == value title=title>
                    <input
                        type="radio"
                        name=name
                        data-testid=format!("{name}-{}", id(value))
                        prop:checked=move || current() == value
                        on:change=move |_| pick(value)
                    />
                    <span>{label}</span>
                </label>
            }
        })
        .collect_view()
}

/// Text, the digits, the word vectors, or text and images.
fn family_select() -> impl IntoView {
    let ctx = ctx();
    let tabs = radio_tabs(
        "family",
        [
            (
                Family::Text,
                "Text",
                "Masked, block and autoregressive text diffusion",
            ),
            (
                Family::Ddpm,
                "Digits",
                "Gaussian diffusion (DDPM, DDIM) on 8×8 handwritten digits, with guidance",
            ),
            (
                Family::DiffusionLm,
                "Word vectors",
                "Diffusion-LM: Gaussian diffusion on word vectors, rounded to words at every step, steered toward Austen or the Bible",
            ),
            (
                Family::Unified,
                "Text + image",
                "One model for captions and digits (MMaDA): draw a digit from a caption, or caption a digit you draw",
            ),
        ],
        Family::name,
        move || ctx.state.with(|s| s.family),
        move |f| ctx.switch_family(f),
    );
    view! { <div class="family" role="radiogroup" aria-label="What to generate">{tabs}</div> }
}

/// The chat sampler of the loaded model, when its folder has a chat template.
fn chat_preset() -> Option<Settings> {
    match ctx().model_status() {
        ModelStatus::Loaded(m) => m.chat,
        _ => None,
    }
}

/// Chat mode (a model with a chat template): the switch, the system prompt and the
/// conversation so far. Each Send runs the conversation and the new message through the
/// model's template; its reply joins the turns, and the link carries them all.
fn chat_panel() -> impl IntoView {
    let ctx = ctx();
    let on = move || ctx.state.with(|s| s.chat);
    let offered = move || on() || chat_preset().is_some();
    let switch = move |chat: bool| {
        let preset = chat_preset();
        ctx.state.update(|s| {
            s.chat = chat;
            if chat {
                // The authors' chat sampler, on the page's seed; the box takes a message.
                if let Some(mut preset) = preset {
                    preset.draw_mut().seed = s.settings.seed();
                    s.settings = preset;
                    s.race = None;
                }
                if s.prompt == crate::page::state::DEFAULT_PROMPT {
                    s.prompt.clear();
                }
            }
        });
    };
    view! {
        <Show when=offered>
            <div class="chat" data-testid="chat-panel">
                <div class="row">
                    <label class="knob check" title="Talk to the model through its own chat template, with the sampler its authors chat with">
                        <input
                            type="checkbox"
                            data-testid="chat"
                            prop:checked=on
                            on:change=move |ev| switch(event_target_checked(&ev))
                        />
                        <span>"chat"</span>
                    </label>
                    <Show when=on>
                        <label class="knob wide" title="Instructions before the conversation (optional)">
                            <input
                                type="text"
                                data-testid="system"
                                placeholder="system prompt (optional)"
                                prop:value=move || ctx.state.with(|s| s.system.clone().unwrap_or_default())
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    ctx.state.update(|s| s.system = (!v.trim().is_empty()).then_some(v));
                                }
                            />
                        </label>
                        <button
                            data-testid="new-chat"
                            title="Forget the turns so far"
                            disabled=move || ctx.state.with(|s| s.turns.is_empty())
                            on:click=move |_| ctx.state.update(|s| s.turns.clear())
                        >"new chat"</button>
                    </Show>
                </div>
                <Show when=move || on() && ctx.state.with(|s| !s.turns.is_empty())>
                    <ol class="turns" aria-label="The conversation so far">
                        {move || ctx.state.with(|s| s.turns.iter().map(|m| {
                            let role = match m.role {
                                Role::User => "user",
                                Role::Assistant => "assistant",
                                Role::System => "system",
                            };
                            view! {
                                <li class=format!("turn {role}") data-testid="chat-turn" data-role=role>
                                    {m.content.clone()}
                                </li>
                            }
                        }).collect_view())}
                    </ol>
                </Show>
            </div>
        </Show>
    }
}

/// Family, prompt, knobs, seed, run and race.
#[component]
pub fn Controls() -> impl IntoView {
    let ctx = ctx();
    let racing = move || ctx.state.with(PageState::racing);
    let family = move || ctx.state.with(|s| s.family);
    let chatting = move || ctx.state.with(|s| s.chat && s.family == Family::Text);
    view! {
        <section class="controls" aria-label="Sampler settings">
            {family_select()}
            <Show when=move || family() == Family::Unified>
                <super::unified::UnifiedInputs/>
            </Show>
            <Show when=move || matches!(family(), Family::Text | Family::DiffusionLm)>
                {chat_panel()}
                <label class="prompt">
                    {move || if chatting() {
                        view! { <span>"Your message"</span> }.into_any()
                    } else {
                        view! { <span>"Prompt — "<code>"[MASK]"</code>" in it is filled in place"</span> }.into_any()
                    }}
                    <textarea
                        data-testid="prompt"
                        rows="2"
                        prop:value=move || ctx.state.with(|s| s.prompt.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            ctx.state.update(|s| s.prompt = v);
                        }
                    ></textarea>
                </label>
            </Show>
            {knobs(Which::A)}
            <div class="knobs row">
                {number_knob(Which::A, Knob::Seed.spec())}
                <button title="New random seed" aria-label="New random seed" on:click=move |_| {
                    let seed = (js_sys::Math::random() * 1e9) as u64;
                    ctx.state.update(|s| s.set_seed(seed));
                }>"new seed"</button>
                <label class="knob check" title="Run a second sampler on the same prompt and seed, side by side">
                    <input
                        type="checkbox"
                        data-testid="race"
                        prop:checked=racing
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ctx.state.update(|s| match s.family {
                                Family::DiffusionLm => {
                                    s.words_race = on.then(|| {
                                        // The same chain: without control against with, or
                                        // clamping off against on.
                                        let mut b = s.words.clone();
                                        if b.control.is_some() {
                                            b.control = None;
                                        } else {
                                            b.clamp = !b.clamp;
                                        }
                                        b
                                    });
                                }
                                Family::Unified => {
                                    s.unified_race = on.then(|| s.unified.knobs.rival());
                                }
                                Family::Text => {
                                    s.race = on.then(|| {
                                        let other = if s.settings.sampler() == SamplerKind::Llada { SamplerKind::Bd3 } else { SamplerKind::Llada };
                                        s.settings.switched(other)
                                    });
                                }
                                Family::Ddpm => {
                                    s.ddpm_race = on.then(|| {
                                        // The same chain and class: unguided against guided.
                                        let mut b = s.ddpm.clone();
                                        let c = b.condition_mut();
                                        c.guidance = match c.guidance {
                                            Guidance::None => Guidance::Free { scale: DEFAULT_CFG },
                                            _ => Guidance::None,
                                        };
                                        if c.class.is_none() {
                                            c.class = Some(DEFAULT_CLASS);
                                        }
                                        b
                                    });
                                }
                            });
                        }
                    />
                    <span>"race"</span>
                </label>
                <div class="actions">
                    <button
                        class="primary"
                        data-testid="run"
                        disabled=move || !ctx.model_ready()
                        on:click=move |_| ctx.run()
                    >
                        {move || match (ctx.busy(), chatting()) {
                            (true, _) => "Restart",
                            (false, true) => "Send",
                            (false, false) => "Run",
                        }}
                    </button>
                    <button data-testid="cancel" disabled=move || !ctx.busy() on:click=move |_| ctx.cancel()>
                        "Cancel"
                    </button>
                </div>
            </div>
            <Show when=racing>
                <div class="race-knobs">{knobs(Which::B)}</div>
            </Show>
        </section>
    }
}

/// Model source, progress, backend switch and cache.
/// How a transformer attends: as its folder says, or as the reader picks (the link's
/// `attention`). A change runs the held weights under the new mask; nothing is downloaded.
#[component]
fn AttentionKnob() -> impl IntoView {
    let ctx = ctx();
    let pick = move |kind: &str, block: Option<usize>| {
        let attention = match kind {
            "" => None,
            kind => parse_attention(Some(kind), block.map(|b| b.to_string()).as_deref()).ok(),
        };
        ctx.state.update(|s| s.attention = attention);
        ctx.load_model(ctx.state.with_untracked(|s| s.model.clone()));
    };
    move || {
        let ModelStatus::Loaded(m) = ctx.model_status() else {
            return None;
        };
        let default = m.default_attention?;
        let running = m.text_spec().map_or(default, |s| s.attention);
        let block = match (running, default) {
            (Attention::BlockCausal { block_size }, _)
            | (_, Attention::BlockCausal { block_size }) => block_size,
            _ => DLLM_BD3LM_BLOCK_SIZE,
        };
        let asked = ctx
            .state
            .with_untracked(|s| s.attention)
            .map_or("", Attention::name);
        Some(view! {
            <div class="row">
                <label class="knob" title="Which positions see which: as the model's folder says, or another mask (LLaDA, Dream and A2D models; a DiT runs as it was trained)">
                    <span>"attention"</span>
                    <select
                        data-testid="attention"
                        on:change=move |ev| {
                            let kind = event_target_value(&ev);
                            pick(&kind, (kind == "block-causal").then_some(block));
                        }
                    >
                        <option value="" selected=asked.is_empty()>
                            {format!("as trained: {}", describe_attention(default))}
                        </option>
                        {["bidirectional", "causal", "block-causal"]
                            .map(|k| view! { <option value=k selected=asked == k>{k}</option> })
                            .collect_view()}
                    </select>
                </label>
                {matches!(running, Attention::BlockCausal { .. })
                    .then(|| {
                        view! {
                            <label class="knob">
                                <span>"block"</span>
                                <input
                                    type="number"
                                    min="1"
                                    data-testid="attention-block"
                                    prop:value=block.to_string()
                                    on:change=move |ev| {
                                        if let Ok(b) = event_target_value(&ev).parse::<usize>() {
                                            pick("block-causal", Some(b));
                                        }
                                    }
                                />
                            </label>
                        }
                    })}
            </div>
        })
    }
}

#[component]
pub fn ModelPanel() -> impl IntoView {
    let ctx = ctx();
    let input = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let load = move || {
        let text = input.get_untracked();
        match ModelSource::parse(&text) {
            Ok(source) => {
                error.set(None);
                ctx.state.update(|s| s.model = source.clone());
                ctx.load_model(source);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    let progress = move || match ctx.model_status() {
        ModelStatus::Loading {
            file,
            loaded,
            total,
            cached,
            source,
        } => {
            let pct = total
                .filter(|&t| t > 0)
                .map(|t| loaded as f64 / t as f64 * 100.0);
            let what = if file.is_empty() { source } else { file };
            let text = match total {
                Some(t) => format!(
                    "{what}: {} of {}{}",
                    human_bytes(loaded),
                    human_bytes(t),
                    if cached { " (cached)" } else { "" }
                ),
                None => format!("{what}: {}", human_bytes(loaded)),
            };
            Some(view! {
                <div class="progress" data-testid="progress">
                    <progress max="100" value=pct.unwrap_or(0.0)></progress>
                    <span>{text}</span>
                </div>
            })
        }
        _ => None,
    };
    let info = move || match ctx.model_status() {
        ModelStatus::Loaded(m) => Some(match &m.network {
            Network::Text(spec) => format!(
                "{} — {}, vocabulary {}, context {}, loaded in {:.1} s{}",
                m.name,
                m.shape,
                spec.vocab_size,
                spec.model_length,
                m.load_seconds,
                m.streamed.map_or(String::new(), |held| format!(
                    " a block at a time (at most {} of weights held)",
                    human_bytes(held)
                ))
            ),
            Network::Ddpm { spec, classifier } => format!(
                "{} — {}, {}×{} images, {} classes, loaded in {:.1} s; {}",
                m.name,
                m.shape,
                spec.side,
                spec.side,
                spec.classes,
                m.load_seconds,
                match classifier {
                    Some(ClassifierStatus::Loaded { name, .. }) => format!("classifier {name}"),
                    Some(ClassifierStatus::Failed { message, .. }) => message.clone(),
                    None => "no classifier".into(),
                }
            ),
            Network::Unified(spec) => format!(
                "{} — {}, vocabulary {} (text, task tokens and 17 grey levels), loaded in {:.1} s",
                m.name, m.shape, spec.vocab_size, m.load_seconds
            ),
            Network::DiffusionLm {
                spec, classifier, ..
            } => format!(
                "{} — {}, vocabulary {}, loaded in {:.1} s; {}",
                m.name,
                m.shape,
                spec.vocab_size,
                m.load_seconds,
                match classifier {
                    Some(ClassifierStatus::Loaded { name, .. }) => {
                        format!("control classifier {name}")
                    }
                    Some(ClassifierStatus::Failed { message, .. }) => message.clone(),
                    None => "no control classifier".into(),
                }
            ),
        }),
        _ => None,
    };
    let cache_note = RwSignal::new(String::new());
    view! {
        <section class="panel model" aria-label="Model">
            <h3>"Model"</h3>
            <p class="model-info" data-testid="model-info">{info}</p>
            {progress}
            <AttentionKnob/>
            <form class="load" on:submit=move |ev| { ev.prevent_default(); load(); }>
                <input
                    type="text"
                    data-testid="model-url"
                    placeholder="https://…/folder/ or owner/repo (e.g. kuleshov-group/bd3lm-owt-block_size4)"
                    aria-label="Model folder URL or Hugging Face repo id"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="load">"Load model"</button>
                <button type="button" on:click=move |_| {
                    ctx.state.update(|s| s.model = ModelSource::Default);
                    ctx.load_model(ModelSource::Default);
                }>"Default"</button>
            </form>
            <div class="row trained" aria-label="Models trained for Unmask">
                <span class="hint">"trained here:"</span>
                {TRAINED_MODELS
                    .into_iter()
                    .map(|m| {
                        view! {
                            <button
                                type="button"
                                data-testid=format!("trained-{}", m.sampler.name())
                                title=format!("The default {} model ({}, trained by unmask train) with the {} sampler", m.label, m.dir, m.sampler.name())
                                on:click=move |_| {
                                    ctx.state.update(|s| {
                                        s.model = ModelSource::Default;
                                        s.family = Family::Text;
                                        s.settings = s.settings.switched(m.sampler);
                                    });
                                    ctx.load_model(ModelSource::Default);
                                }
                            >
                                {m.label}
                            </button>
                        }
                    })
                    .collect_view()}
                {[
                    (Family::Ddpm, "trained-ddpm", "Digits", "The default digits model (./models/default/ddpm/, DDPM trained by unmask train) with its noisy classifier"),
                    (Family::Unified, "trained-unified", "Text + image", "The default text + image model (./models/default/unified/, trained by unmask train --objective unified)"),
                ]
                    .map(|(family, id, label, title)| view! {
                        <button
                            type="button"
                            data-testid=id
                            title=title
                            on:click=move |_| {
                                ctx.state.update(|s| {
                                    s.model = ModelSource::Default;
                                    s.family = family;
                                });
                                ctx.load_model(ModelSource::Default);
                            }
                        >
                            {label}
                        </button>
                    })
                    .collect_view()}
            </div>
            {move || error.get().map(|e| view! { <p class="notice error">{e}</p> })}
            <p class="hint">"Or drop config.json, model.safetensors and tokenizer.json (and tokenizer_config.json, chat_template.jinja) on the page, or a llama.cpp .gguf file of LLaDA, Dream or an A2D Qwen."</p>
            <div class="row">
                <label class="knob check" title="Run on the CPU even where WebGPU works">
                    <input
                        type="checkbox"
                        data-testid="force-cpu"
                        prop:checked=move || ctx.state.with(|s| s.backend == BackendChoice::Cpu)
                        on:change=move |ev| {
                            let cpu = event_target_checked(&ev);
                            ctx.state.update(|s| s.backend = if cpu { BackendChoice::Cpu } else { BackendChoice::Auto });
                            ctx.restart_worker();
                        }
                    />
                    <span>"force CPU"</span>
                </label>
                <label class="knob check" title="Keep f32 weights on WebGPU (by default they become f16 where the GPU supports it, halving its memory)">
                    <input
                        type="checkbox"
                        data-testid="full-precision"
                        prop:checked=move || ctx.state.with(|s| s.full_precision)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ctx.state.update(|s| s.full_precision = on);
                            ctx.restart_worker();
                        }
                    />
                    <span>"full precision (f32)"</span>
                </label>
                <label class="knob">
                    <span>"theme"</span>
                    <select on:change=move |ev| {
                        let t = match event_target_value(&ev).as_str() { "light" => Theme::Light, "dark" => Theme::Dark, _ => Theme::Auto };
                        ctx.state.update(|s| s.theme = t);
                    }>
                        {[Theme::Auto, Theme::Light, Theme::Dark].into_iter().map(|t| view! {
                            <option value=t.name() selected=move || ctx.state.with(|s| s.theme == t)>{t.name()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="button" on:click=move |_| {
                    leptos::task::spawn_local(async move {
                        cache_note.set(match clear_cache().await {
                            Ok(true) => "cached model files deleted".into(),
                            Ok(false) => "nothing was cached".into(),
                            Err(e) => format!("could not clear the cache: {e}"),
                        });
                    });
                }>"Clear cached models"</button>
                <span class="hint">{move || cache_note.get()}</span>
            </div>
        </section>
    }
}

async fn copy_text(text: String) -> Result<(), String> {
    let clipboard = window().navigator().clipboard();
    JsFuture::from(clipboard.write_text(&text))
        .await
        .map(|_| ())
        .map_err(|e| js_error(&e))
}

/// Offers `bytes` as a file called `name` of type `mime`.
fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|e| js_error(&e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| js_error(&e))?;
    let a: web_sys::HtmlAnchorElement = document()
        .create_element("a")
        .map_err(|e| js_error(&e))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Rasterises an SVG picture in the browser (an image element drawn onto a canvas): its pixels.
async fn rasterize(picture: &TextSvg) -> Result<ColorPicture, String> {
    let parts = js_sys::Array::of1(&picture.svg.as_str().into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/svg+xml");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|e| js_error(&e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| js_error(&e))?;
    let image = web_sys::HtmlImageElement::new().map_err(|e| js_error(&e))?;
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        image.set_onload(Some(&resolve));
        image.set_onerror(Some(&reject));
    });
    image.set_src(&url);
    let drawn = JsFuture::from(loaded).await;
    let _ = web_sys::Url::revoke_object_url(&url);
    drawn.map_err(|_| "the browser could not draw the picture".to_string())?;
    let canvas: web_sys::HtmlCanvasElement = document()
        .create_element("canvas")
        .map_err(|e| js_error(&e))?
        .unchecked_into();
    canvas.set_width(picture.width);
    canvas.set_height(picture.height);
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        .ok_or("no 2D canvas here")?;
    context
        .draw_image_with_html_image_element(&image, 0.0, 0.0)
        .map_err(|e| js_error(&e))?;
    let data = context
        .get_image_data(
            0.0,
            0.0,
            f64::from(picture.width),
            f64::from(picture.height),
        )
        .map_err(|e| js_error(&e))?;
    Ok(ColorPicture {
        width: picture.width as usize,
        height: picture.height as usize,
        rgba: data.data().0,
    })
}

/// A text run's canvases (the step shown, or every frame of an animation) as one PNG: one frame
/// is a plain PNG, more an animated one, all as tall as the tallest.
async fn text_png(frames: Vec<Vec<crate::page::Cell>>) -> Result<Vec<u8>, String> {
    let height = frames
        .iter()
        .map(|cells| cells_svg(cells, 0).height)
        .max()
        .unwrap_or(1);
    let mut pictures = Vec::with_capacity(frames.len());
    for cells in &frames {
        pictures.push(rasterize(&cells_svg(cells, height)).await?);
    }
    encode_apng_rgba(&pictures, crate::page::images::ANIMATION_DELAY_MS).map_err(|e| e.to_string())
}

/// The address of this page showing `state`.
pub fn page_link(state: &PageState) -> String {
    let loc = window().location();
    format!(
        "{}{}?{}",
        loc.origin().unwrap_or_default(),
        loc.pathname().unwrap_or_default(),
        state.to_query()
    )
}

/// Share link, embed snippet, trajectory export and import.
#[component]
pub fn SharePanel() -> impl IntoView {
    let ctx = ctx();
    let link = move || ctx.state.with(page_link);
    let embed_link = move || {
        ctx.state.with(|s| {
            page_link(&PageState {
                embed: true,
                autoplay: true,
                ..s.clone()
            })
        })
    };
    let snippet = move || {
        format!(
            r#"<iframe src="{}" width="100%" height="520" style="border:0" sandbox="allow-scripts allow-same-origin" loading="lazy" title="Unmask: a diffusion language model writing"></iframe>"#,
            embed_link().replace('&', "&amp;").replace('"', "&quot;")
        )
    };
    let note = RwSignal::new(String::new());
    let copy = move |text: String, what: &'static str| {
        leptos::task::spawn_local(async move {
            note.set(match copy_text(text).await {
                Ok(()) => format!("{what} copied"),
                Err(_) => {
                    format!("copy the {what} from the box above (the clipboard is blocked here)")
                }
            });
        });
    };
    let export = move |_| {
        let t = ctx.lanes_with(|l| l.first().and_then(|l| l.trajectory.clone()));
        note.set(match t {
            Some(t) => match download(
                "unmask-trajectory.json",
                "application/json",
                t.to_json().as_bytes(),
            ) {
                Ok(()) => "trajectory saved".into(),
                Err(e) => format!("could not save: {e}"),
            },
            None => "finish a run first: there is no trajectory to export yet".into(),
        });
    };
    let digits = move || ctx.lanes_with(|l| l.first().is_some_and(|l| l.images().is_some()));
    let unified = move || ctx.lanes_with(|l| l.first().is_some_and(|l| l.job.unified().is_some()));
    // The digits' images, or a text + image run's grid.
    let picture = move |kind: PictureKind| {
        let at = ctx.cursor.get_untracked();
        let file = ctx.lanes_with(|l| {
            let lane = l.first()?;
            match (lane.images(), lane.job.unified(), lane.text()) {
                (Some(r), _, _) => Some(r.picture(at, kind)),
                (_, Some(task), Some(r)) => {
                    Some(crate::page::unified::picture(r, task.kind(), at, kind))
                }
                _ => None,
            }
        });
        note.set(match file {
            Some(Ok(f)) => match download(f.name, f.mime, &f.bytes) {
                Ok(()) => format!("{} saved", f.name),
                Err(e) => format!("could not save: {e}"),
            },
            Some(Err(e)) => format!("no picture yet: {e}"),
            None => "run the digits first: there is no picture to save yet".into(),
        });
    };
    // Text and Diffusion-LM lanes draw as a canvas of cells.
    let text_lane = move || {
        ctx.lanes_with(|l| {
            l.first()
                .is_some_and(|l| l.text().is_some() || l.words().is_some())
        })
    };
    // The text canvas at the step shown (`whole`: at every step of the animation's frames).
    let text_frames = move |whole: bool| {
        let at = ctx.cursor.get_untracked();
        ctx.lanes_with(|l| {
            let lane = l.first()?;
            let len = lane.record.len();
            let steps = if whole {
                crate::export::frame_steps(len)
            } else {
                vec![at]
            };
            Some(match (lane.text(), lane.words()) {
                (Some(r), _) => steps.into_iter().map(|s| r.cells(s)).collect::<Vec<_>>(),
                (_, Some(r)) => steps.into_iter().map(|s| r.cells(s)).collect(),
                _ => return None,
            })
        })
    };
    let text_picture = move |kind: PictureKind| {
        let whole = kind == PictureKind::Animation;
        let Some(frames) = text_frames(whole).filter(|f| !f.is_empty()) else {
            return note.set("run something first: there is no picture to save yet".into());
        };
        if kind == PictureKind::Vector {
            let svg = cells_svg(&frames[0], 0).svg;
            return note.set(
                match download("unmask-step.svg", "image/svg+xml", svg.as_bytes()) {
                    Ok(()) => "unmask-step.svg saved".into(),
                    Err(e) => format!("could not save: {e}"),
                },
            );
        }
        let (name, mime) = if whole {
            ("unmask-run.png", "image/apng")
        } else {
            ("unmask-step.png", "image/png")
        };
        note.set("drawing…".into());
        leptos::task::spawn_local(async move {
            note.set(match text_png(frames).await {
                Ok(bytes) => match download(name, mime, &bytes) {
                    Ok(()) => format!("{name} saved"),
                    Err(e) => format!("could not save: {e}"),
                },
                Err(e) => format!("could not draw the picture: {e}"),
            });
        });
    };
    let import = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        input.set_value("");
        leptos::task::spawn_local(async move {
            let text = match JsFuture::from(file.text()).await {
                Ok(t) => t.as_string().unwrap_or_default(),
                Err(e) => {
                    return note.set(format!("could not read {}: {}", file.name(), js_error(&e)));
                }
            };
            match AnyTrajectory::from_json(&text) {
                Ok(t) => {
                    ctx.import(t);
                    note.set(format!("replaying {}", file.name()));
                }
                Err(e) => note.set(format!("{}: {e}", file.name())),
            }
        });
    };
    view! {
        <section class="panel share" aria-label="Share">
            <h3>"Share and embed"</h3>
            <label class="knob wide"><span>"link"</span>
                <input type="text" readonly data-testid="share-link" prop:value=link/>
            </label>
            <label class="knob wide"><span>"embed"</span>
                <input type="text" readonly data-testid="embed-snippet" prop:value=snippet/>
            </label>
            <div class="row">
                <button on:click=move |_| copy(link(), "link")>"Copy link"</button>
                <button on:click=move |_| copy(snippet(), "embed snippet")>"Copy embed"</button>
                <button data-testid="export" on:click=export>"Export trajectory"</button>
                <Show when=text_lane>
                    <button data-testid="export-text-png" title="The canvas at the step shown, as PNG" on:click=move |_| text_picture(PictureKind::View)>"PNG"</button>
                    <button data-testid="export-text-svg" title="The canvas at the step shown, as SVG" on:click=move |_| text_picture(PictureKind::Vector)>"SVG"</button>
                    <button data-testid="export-text-apng" title="The whole run, animated (up to 120 frames)" on:click=move |_| text_picture(PictureKind::Animation)>"Animation"</button>
                </Show>
                <Show when=unified>
                    <button data-testid="export-grid-png" title="The 8×8 grid at the step shown" on:click=move |_| picture(PictureKind::View)>"Grid PNG"</button>
                    <button data-testid="export-grid-svg" title="The 8×8 grid at the step shown, as SVG" on:click=move |_| picture(PictureKind::Vector)>"Grid SVG"</button>
                    <button data-testid="export-grid-apng" title="The grid at every step, animated" on:click=move |_| picture(PictureKind::Animation)>"Grid animation"</button>
                </Show>
                <Show when=digits>
                    <button data-testid="export-png" title="The step shown: x_t beside x̂₀ for every image" on:click=move |_| picture(PictureKind::View)>"PNG"</button>
                    <button data-testid="export-svg" title="The first image at the step shown, as SVG" on:click=move |_| picture(PictureKind::Vector)>"SVG"</button>
                    <button data-testid="export-apng" title="The whole run of the first image, animated" on:click=move |_| picture(PictureKind::Animation)>"Animation"</button>
                    <button data-testid="export-grid" title="Every finished sample in one grid" on:click=move |_| picture(PictureKind::Samples)>"Samples grid"</button>
                </Show>
                <label class="file-button">
                    "Import trajectory"
                    <input type="file" accept=".json,application/json" data-testid="import" on:change=import/>
                </label>
                <label class="knob check">
                    <input type="checkbox"
                        prop:checked=move || ctx.state.with(|s| s.autoplay)
                        on:change=move |ev| { let on = event_target_checked(&ev); ctx.state.update(|s| s.autoplay = on); }/>
                    <span>"autoplay in links"</span>
                </label>
            </div>
            <p class="hint" role="status">{move || note.get()}</p>
        </section>
    }
}
