//! The digits family's view: x_t beside the x̂₀ the network predicted from it, drawn large with
//! hard pixel edges, every image of the run in a grid; and the plots of the classifier's
//! p(y | x_t) of the target class and of ‖x_t‖ per step; and the forward process on a real digit.

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};

use crate::browser::fetch::fetch_bytes;
use crate::export::{Picture, grid};
use crate::page::images::{DIGIT_CLASSES, DIGIT_EXAMPLES_URL, DigitExamples, noised};
use crate::page::protocol::Network;
use crate::page::session::ModelStatus;
use crate::rng::Rng;
use crate::sampler::gaussian::{BetaSchedule, Schedule};
use crate::sampler::image::normal;

use super::app::ctx;
use super::plots::series_plot;

/// Draws `picture` into `canvas` at one canvas pixel per picture pixel (CSS scales it up with
/// `image-rendering: pixelated`).
fn paint(canvas: &web_sys::HtmlCanvasElement, picture: &Picture) {
    canvas.set_width(picture.width as u32);
    canvas.set_height(picture.height as u32);
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let rgba: Vec<u8> = picture
        .gray
        .iter()
        .flat_map(|&g| [g, g, g, u8::MAX])
        .collect();
    if let Ok(data) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        Clamped(&rgba),
        picture.width as u32,
        picture.height as u32,
    ) {
        let _ = context.put_image_data(&data, 0.0, 0.0);
    }
}

/// A grid of images (`side²` values each, on the diffusion's scale) as a pixelated canvas.
#[component]
fn PixelGrid(
    /// Pixels along a side, and the images' values back to back.
    images: Signal<Option<(usize, Vec<f32>)>>,
    /// What the canvas shows, for screen readers.
    label: &'static str,
) -> impl IntoView {
    let node = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let Some(canvas) = node.get() else { return };
        let Some((side, values)) = images.get() else {
            return;
        };
        let pixels = (side * side).max(1);
        let list: Vec<&[f32]> = values.chunks(pixels).collect();
        let columns = (list.len() as f64).sqrt().ceil().max(1.0) as usize;
        if let Ok(picture) = grid(&list, side, columns, 1) {
            paint(&canvas, &picture);
        }
    });
    view! { <canvas class="pixels" node_ref=node role="img" aria-label=label></canvas> }
}

/// x_t and x̂₀ of lane `lane` at the timeline's step.
#[component]
pub fn DigitsView(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let frame = Memo::new(move |_| {
        let at = ctx.cursor.get();
        ctx.lanes_with(|l| {
            let r = l.get(lane)?.images()?;
            let (x, x0) = r.frame(at);
            let step = r.step(at).map(|s| (s.t, s.noise_level));
            Some((r.side(), x.to_vec(), x0.map(<[f32]>::to_vec), step))
        })
    });
    let x = Signal::derive(move || frame.get().map(|(side, x, ..)| (side, x)));
    let x0 = Signal::derive(move || {
        frame
            .get()
            .and_then(|(side, _, x0, _)| x0.map(|x0| (side, x0)))
    });
    let caption = move || match frame.get().and_then(|f| f.3) {
        Some((t, level)) => format!("x̂₀ predicted from x at t = {t} (noise {level:.3})"),
        None => "x̂₀: after the first step".into(),
    };
    view! {
        <div class="digits-view" data-testid="digits">
            <figure>
                <PixelGrid images=x label="x_t: the images at this step"/>
                <figcaption>"x_t — the images after this step"</figcaption>
            </figure>
            <figure>
                <PixelGrid images=x0 label="x̂₀: the network's prediction of the clean images"/>
                <figcaption>{caption}</figcaption>
            </figure>
        </div>
    }
}

/// The per-step plots of lane `lane`: p(y | x_t) and ‖x_t‖.
#[component]
pub fn DigitsPlots(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let series = Memo::new(move |_| {
        ctx.lanes_with(|l| {
            let r = l.get(lane)?.images()?;
            Some((
                r.class_prob_series().to_vec(),
                r.norm_series().to_vec(),
                r.total(),
            ))
        })
    });
    let plot = move |which: &'static str| {
        move || {
            let (probs, norms, total) = series.get()?;
            let (values, max, label) = if which == "class-prob" {
                if probs.iter().all(Option::is_none) {
                    return None;
                }
                let last = probs.iter().rev().flatten().next().copied().unwrap_or(0.0);
                (
                    probs,
                    1.0,
                    format!("p(class | x_t) by the noisy classifier (now {last:.2})"),
                )
            } else {
                let max = norms.iter().copied().fold(0.0, f64::max);
                let last = norms.last().copied().unwrap_or(0.0);
                let v: Vec<Option<f64>> = norms.into_iter().map(Some).collect();
                (v, max, format!("‖x_t‖ ({last:.1})"))
            };
            let steps = total.max(values.len());
            let at = ctx.cursor.get();
            Some(series_plot(which, &values, max, (steps, at), label))
        }
    };
    view! {
        <div class="plots">
            {plot("class-prob")}
            {plot("norm")}
        </div>
    }
}

/// The validation digits the page shows (one per class), fetched once the signal is made:
/// `None` until they arrive, then them or why not.
pub fn digit_examples() -> RwSignal<Option<Result<DigitExamples, String>>> {
    let examples = RwSignal::new(None);
    leptos::task::spawn_local(async move {
        let got = fetch_bytes(DIGIT_EXAMPLES_URL, None, |_, _, _| {}, |_| {})
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| DigitExamples::from_json(&String::from_utf8_lossy(&b)));
        examples.set(Some(got));
    });
    examples
}

/// The forward process on a real digit: pick a class, drag t, watch q(x_t | x₀) dissolve it into
/// the noise (drawn once from the page's seed).
#[component]
pub fn ForwardView() -> impl IntoView {
    let ctx = ctx();
    let examples = digit_examples();
    let class = RwSignal::new(FORWARD_CLASS);
    let t = RwSignal::new(FORWARD_T);
    let schedule = Memo::new(move |_| {
        let (kind, steps) = match ctx.model_status() {
            ModelStatus::Loaded(m) => match m.network {
                Network::Ddpm { spec, .. } => (spec.beta_schedule, spec.diffusion_steps),
                _ => (BetaSchedule::Linear, FORWARD_STEPS),
            },
            _ => (BetaSchedule::Linear, FORWARD_STEPS),
        };
        Schedule::new(kind, steps).ok()
    });
    let steps = move || schedule.with(|s| s.as_ref().map_or(1, Schedule::steps));
    let clean = Signal::derive(move || {
        examples.with(|e| {
            let e = e.as_ref()?.as_ref().ok()?;
            let image = e.images.iter().find(|i| i.class == class.get())?;
            Some((e.side, image.x.clone()))
        })
    });
    let noisy = Signal::derive(move || {
        let (side, x0) = clean.get()?;
        let mut rng = Rng::new(ctx.state.with(|s| s.seed()));
        let eps: Vec<f32> = x0.iter().map(|_| normal(&mut rng) as f32).collect();
        let at = t.get().min(steps().saturating_sub(1));
        schedule.with(|s| noised(s.as_ref()?, &x0, &eps, at).map(|x| (side, x)))
    });
    let caption = move || {
        let at = t.get().min(steps().saturating_sub(1));
        schedule.with(|s| {
            s.as_ref().map_or(String::new(), |s| {
                let a = s.alpha_bar(Some(at));
                format!(
                    "x_t = {:.3}·x₀ + {:.3}·ε at t = {at}",
                    a.sqrt(),
                    (1.0 - a).sqrt()
                )
            })
        })
    };
    let error = move || examples.with(|e| e.as_ref().and_then(|e| e.as_ref().err().cloned()));
    view! {
        <section class="panel forward" aria-label="The forward process" data-testid="forward">
            <h3>"The forward process: a real digit dissolving into noise"</h3>
            {move || error().map(|e| view! { <p class="notice error">{e}</p> })}
            <div class="row">
                <label class="knob">
                    <span>"digit"</span>
                    <select data-testid="forward-class" on:change=move |ev| {
                        if let Ok(y) = event_target_value(&ev).parse() { class.set(y) }
                    }>
                        {(0..DIGIT_CLASSES)
                            .map(|y| view! { <option value=y.to_string() selected=move || class.get() == y>{y.to_string()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="knob wide">
                    <span>"t"</span>
                    <input
                        type="range"
                        min="0"
                        max=move || steps().saturating_sub(1)
                        prop:value=move || t.get().to_string()
                        data-testid="forward-t"
                        on:input=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse() { t.set(v) }
                        }
                    />
                </label>
            </div>
            <div class="digits-view">
                <figure>
                    <PixelGrid images=clean label="x₀: a digit of the validation split"/>
                    <figcaption>"x₀ — a real digit"</figcaption>
                </figure>
                <figure>
                    <PixelGrid images=noisy label="x_t: the digit noised to time t"/>
                    <figcaption>{caption}</figcaption>
                </figure>
            </div>
        </section>
    }
}

/// The forward view's first digit and time.
const FORWARD_CLASS: usize = 7;
const FORWARD_T: usize = 300;
/// T before a digits model has loaded (DDPM's).
const FORWARD_STEPS: usize = 1000;
