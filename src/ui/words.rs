//! Diffusion-LM's view: every position's word at the step shown, coloured by how far x̂₀ was
//! from that word's vector (near: green, far: red), the words that changed since the step before
//! outlined; the plots of the mean distance and of the control classifier's probability of its
//! target; and the knobs this family has beyond the shared ones (clamping, control).

use leptos::prelude::*;

use crate::export::confidence_hue;
use crate::page::protocol::Network;
use crate::page::session::ModelStatus;
use crate::sampler::diffusion_lm::{Control, VectorSettings};

use super::app::ctx;
use super::canvas::{candidate_list, select_by_keys, visible};
use super::controls::Which;
use super::plots::series_plot;

/// The words of lane `lane` at the step shown.
#[component]
pub fn WordsView(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let words = Memo::new(move |_| {
        let cursor = ctx.cursor.get();
        ctx.lanes_with(|l| l.get(lane)?.words().map(|r| r.words(cursor)))
    });
    let on_key = select_by_keys(lane, move || {
        words.with_untracked(|w| w.as_ref().map_or(0, Vec::len))
    });
    view! {
        <div
            class="canvas words"
            data-testid="words"
            aria-live="off"
            tabindex="0"
            role="group"
            aria-label="The words: arrow keys move between positions; the inspector below describes the selected one"
            on:keydown=on_key
        >
            {move || {
                let selected = ctx.selected.get().filter(|(l, _)| *l == lane).map(|(_, p)| p);
                words
                    .get()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(pos, w)| {
                        let mut class = String::from("cell");
                        if w.prompt {
                            class.push_str(" prompt");
                        }
                        if w.changed {
                            class.push_str(" fresh");
                        }
                        if selected == Some(pos) {
                            class.push_str(" selected");
                        }
                        let bg = (!w.prompt).then(|| {
                            format!("hsl({:.0} 75% 50% / .35)", confidence_hue(1.0 - w.far))
                        });
                        let title = if w.prompt {
                            "prompt".to_string()
                        } else {
                            format!(
                                "distance from x̂₀ {:.3}{}",
                                w.distance,
                                if w.changed { " · changed at this step" } else { "" }
                            )
                        };
                        let select = move |_| ctx.selected.set(Some((lane, pos)));
                        view! {
                            <span
                                class=class
                                data-pos=pos
                                style:background-color=bg
                                title=title
                                on:mouseenter=select
                                on:click=select
                            >
                                {visible(&w.text)}
                            </span>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
}

/// The selected position of lane `lane` at the step shown: its word, since when it has held it,
/// and the words x̂₀ was nearest to, with the rounding's probability and the distance of each.
#[component]
pub fn WordsInspector(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let body = move || {
        let (_, pos) = ctx.selected.get().filter(|(l, _)| *l == lane)?;
        let at = ctx.cursor.get();
        let d = ctx.lanes_with(|l| l.get(lane)?.words()?.detail(pos, at))?;
        let head = format!("position {pos}");
        let word = visible(&d.word.text);
        if d.word.prompt {
            return Some(view! { <p><b>{head}</b>" · prompt word “"{word}"”"</p> }.into_any());
        }
        let held = match d.changes {
            0 => "held since the first step".to_string(),
            1 => format!("held since step {} (changed once)", d.since + 1),
            n => format!("held since step {} (changed {n} times)", d.since + 1),
        };
        Some(
            view! {
                <div>
                    <p>
                        <b>{head}</b>" · “"{word}"” at distance "{format!("{:.3}", d.word.distance)}
                        " from x̂₀ · "{held}
                    </p>
                    {(!d.nearest.is_empty()).then(|| view! {
                        <p class="hint">"The words x̂₀ rounds to most likely: p(w | x̂₀) and the distance to each"</p>
                        {candidate_list(d.nearest.into_iter().map(|w| {
                            (visible(&w.text), w.prob, Some(format!("d {:.2}", w.distance)))
                        }))}
                    })}
                </div>
            }
            .into_any(),
        )
    };
    view! {
        <div class="inspector" aria-live="polite" data-testid="words-inspector">
            {move || body().unwrap_or_else(|| {
                view! { <p class="hint">"Hover, tap or arrow to a word to inspect it."</p> }.into_any()
            })}
        </div>
    }
}

/// The per-step plots of lane `lane`: the mean distance to the words, and under control the
/// classifier's probability of the target.
#[component]
pub fn WordsPlots(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let series = Memo::new(move |_| {
        ctx.lanes_with(|l| {
            let r = l.get(lane)?.words()?;
            Some((
                r.distance_series().to_vec(),
                r.target_prob_series().to_vec(),
                r.total(),
            ))
        })
    });
    let plot = move |which: &'static str| {
        move || {
            let (distances, probs, total) = series.get()?;
            let last = |v: &[Option<f64>]| v.iter().rev().flatten().next().copied().unwrap_or(0.0);
            let (values, max, label) = if which == "control-prob" {
                if probs.iter().all(Option::is_none) {
                    return None;
                }
                let now = last(&probs);
                (
                    probs,
                    1.0,
                    format!("p(target | x_t) by the control classifier (now {now:.2})"),
                )
            } else {
                let max = distances.iter().flatten().copied().fold(0.0, f64::max);
                let now = last(&distances);
                (
                    distances,
                    max,
                    format!("mean distance from x̂₀ to its words ({now:.2})"),
                )
            };
            let steps = total.max(values.len());
            let at = ctx.cursor.get();
            Some(series_plot(which, &values, max, (steps, at), label))
        }
    };
    view! {
        <div class="plots">
            {plot("mean-distance")}
            {plot("control-prob")}
        </div>
    }
}

/// Updates the Diffusion-LM settings `which` (the race's only while it runs).
fn update(which: Which, f: impl FnOnce(&mut VectorSettings)) {
    ctx().state.update(|s| match which {
        Which::A => f(&mut s.words),
        Which::B => {
            if let Some(b) = s.words_race.as_mut() {
                f(b)
            }
        }
    });
}

/// Reads the Diffusion-LM settings `which`.
fn read<T>(which: Which, f: impl Fn(&VectorSettings) -> T) -> Option<T> {
    ctx().state.with(|s| match which {
        Which::A => Some(f(&s.words)),
        Which::B => s.words_race.as_ref().map(&f),
    })
}

/// The attributes the loaded model's control classifier knows.
fn labels() -> Vec<String> {
    match ctx().model_status() {
        ModelStatus::Loaded(m) => match m.network {
            Network::DiffusionLm { labels, .. } => labels,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Clamping, and control: its target and weights.
pub(crate) fn words_knobs(which: Which) -> impl IntoView {
    let suffix = if which == Which::A { "" } else { "-b" };
    let controlled = move || read(which, |s| s.control.is_some()).unwrap_or(false);
    let weight = move |key: &'static str, label: &'static str, help: &'static str| {
        let value = move || {
            read(which, |s| {
                s.control.as_ref().map(|c| match key {
                    "control_scale" => c.scale,
                    _ => c.fluency,
                })
            })
            .flatten()
            .map_or(String::new(), |x| x.to_string())
        };
        let invalid = RwSignal::new(false);
        view! {
            <label class="knob" title=help>
                <span>{label}</span>
                <input
                    type="number"
                    min="0"
                    step="any"
                    data-knob=key
                    class:invalid=move || invalid.get()
                    prop:value=value
                    on:change=move |ev| {
                        let x = event_target_value(&ev).trim().parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
                        invalid.set(x.is_none());
                        if let Some(x) = x {
                            update(which, |s| {
                                if let Some(c) = s.control.as_mut() {
                                    match key {
                                        "control_scale" => c.scale = x,
                                        _ => c.fluency = x,
                                    }
                                }
                            });
                        }
                    }
                />
            </label>
        }
    };
    view! {
        <label class="knob check" title="The clamping trick: x̂₀ replaced by its nearest word vector at every step">
            <input
                type="checkbox"
                data-knob=format!("clamp{suffix}")
                prop:checked=move || read(which, |s| s.clamp).unwrap_or(true)
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    update(which, |s| s.clamp = on);
                }
            />
            <span>"clamping"</span>
        </label>
        <label class="knob" title="Plug-and-play control: gradient steps on each step's sample toward an attribute of the control classifier. Length needs no classifier: it is the canvas (gen).">
            <span>"control"</span>
            <select
                data-knob=format!("control{suffix}")
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    update(which, |s| {
                        s.control = (v != "none").then(|| Control {
                            target: v.clone(),
                            ..s.control.clone().unwrap_or_else(|| Control::toward(&v))
                        });
                    });
                }
            >
                {move || {
                    let current = read(which, |s| s.control.as_ref().map(|c| c.target.clone())).flatten();
                    let mut names = labels();
                    // A target from a link is offered even before the classifier has loaded.
                    if let Some(t) = current.clone().filter(|t| !names.contains(t)) {
                        names.push(t);
                    }
                    std::iter::once("none".to_string())
                        .chain(names)
                        .map(|name| {
                            let selected = current.as_deref().unwrap_or("none") == name;
                            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                        })
                        .collect_view()
                }}
            </select>
        </label>
        <Show when=controlled>
            {weight("control_scale", "control scale", "S: the weight of the classifier's cross-entropy (0 only watches its probability)")}
            {weight("fluency", "fluency", "λ: the weight of the term that holds each step's sample near its mean")}
        </Show>
    }
}
