//! The text + image tab: its inputs — the task, the caption to draw, the drawing pad with the
//! validation digits — and a lane's 8×8 grid at the step shown (masked cells hatched, each drawn
//! cell at its grey level and outlined in the colour of the step it arrived in) with the caption
//! as far as it has unmasked. What each shows is `page::unified`'s to decide.

use leptos::prelude::*;

use crate::page::replay::CellState;
use crate::page::unified::{Pixel, caption, levels_of, pixels};
use crate::unified::{CLASSES, MAX_VALUE, PIXELS, SIDE, TaskKind};

use super::app::ctx;
use super::controls::radio_tabs;

/// The CSS colour of grey level `level`: ink dark on paper, as the digits were written.
pub(crate) fn grey(level: u8) -> String {
    let g = 255 - u32::from(level.min(MAX_VALUE)) * 255 / u32::from(MAX_VALUE);
    format!("rgb({g} {g} {g})")
}

/// The hue of the step a cell arrived in, early blue to late red.
fn step_hue(step: usize, steps: usize) -> f64 {
    240.0 * (1.0 - step as f64 / steps.saturating_sub(1).max(1) as f64)
}

/// Lane `lane`'s grid and caption at the step shown.
#[component]
pub fn UnifiedView(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let frame = Memo::new(move |_| {
        let at = ctx.cursor.get();
        ctx.lanes_with(|l| {
            let lane = l.get(lane)?;
            let job = lane.job.unified()?;
            let replay = lane.text()?;
            // The canvas at the step once, for the grid and the caption both.
            let cells = replay.cells(at);
            let task = job.kind();
            Some((
                task,
                pixels(&cells, task),
                caption(&cells, task),
                job.steps().max(replay.len()),
            ))
        })
    });
    let cells = move || {
        let (task, pixels, _, total) = frame.get()?;
        let cells = pixels
            .into_iter()
            .enumerate()
            .map(|(i, Pixel { level, state })| {
                let (class, outline, step) = match state {
                    CellState::Masked => ("px masked", None, String::new()),
                    CellState::Prompt => ("px given", None, String::new()),
                    CellState::Committed { step, fresh, .. } => (
                        if fresh { "px drawn fresh" } else { "px drawn" },
                        (task == TaskKind::T2i)
                            .then(|| format!("hsl({:.0} 80% 45%)", step_hue(step, total))),
                        step.to_string(),
                    ),
                };
                let title = match (level, step.as_str()) {
                    (None, _) => format!("cell {}: masked", i + 1),
                    (Some(v), "") => format!("cell {}: grey level {v}", i + 1),
                    (Some(v), s) => format!("cell {}: grey level {v}, drawn at step {s}", i + 1),
                };
                view! {
                    <span
                        class=class
                        style:background-color=level.map(grey)
                        style:outline-color=outline
                        data-level=level.map_or(String::new(), |v| v.to_string())
                        data-step=step
                        title=title
                    ></span>
                }
            })
            .collect_view();
        Some(cells)
    };
    let said = move || frame.get().map(|f| f.2).unwrap_or_default();
    let heading = move || match frame.get().map(|f| f.0) {
        Some(TaskKind::Mmu) => "caption",
        _ => "drawn for",
    };
    view! {
        <div class="unified-view">
            <div class="grid8" data-testid="unified-grid" role="img" aria-label="The 8×8 digit at this step">
                {cells}
            </div>
            <p class="unified-caption">
                <span class="hint">{heading}</span>
                " "
                <q data-testid="unified-caption">{said}</q>
            </p>
        </div>
    }
}

/// The tab's inputs: the task, then the caption to draw or the digit to caption.
#[component]
pub fn UnifiedInputs() -> impl IntoView {
    let ctx = ctx();
    let task = move || ctx.state.with(|s| s.unified.task);
    let pick = move |t: TaskKind| ctx.state.update(|s| s.unified.task = t);
    view! {
        <div class="unified-inputs">
            <div class="row" role="radiogroup" aria-label="Task">
                {radio_tabs(
                    "task",
                    [
                        (TaskKind::T2i, "text → image", "Draw a digit from a caption (MaskGIT with classifier-free guidance)"),
                        (TaskKind::Mmu, "image → text", "Caption a digit (LLaDA's low-confidence remasking over the caption)"),
                    ],
                    TaskKind::name,
                    task,
                    pick,
                )}
            </div>
            <Show
                when=move || task() == TaskKind::T2i
                fallback=|| view! { <DrawingPad/> }
            >
                <label class="prompt">
                    <span>"Caption — what to draw (e.g. “the digit 3”, “nine, written by hand”)"</span>
                    <input
                        type="text"
                        data-testid="caption"
                        prop:value=move || ctx.state.with(|s| s.unified.caption.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            ctx.state.update(|s| s.unified.caption = v);
                        }
                    />
                </label>
            </Show>
        </div>
    }
}

/// The brushes of the pad: ink, grey and the eraser.
const BRUSHES: [(u8, &str, &str); 3] = [
    (MAX_VALUE, "ink", "Paint black"),
    (MAX_VALUE / 2, "grey", "Paint grey"),
    (0, "erase", "Paint blank"),
];

/// A brush's name, for its test id.
fn brush_name(level: u8) -> &'static str {
    BRUSHES
        .iter()
        .find(|b| b.0 == level)
        .map_or("brush", |b| b.1)
}

/// An 8×8 pad to draw the digit to caption: mouse or touch paint with the brush; from the
/// keyboard, the arrows move the cursor and Space or Enter paints it (Delete erases). Or start
/// from a digit of the validation split.
#[component]
fn DrawingPad() -> impl IntoView {
    let ctx = ctx();
    let brush = RwSignal::new(MAX_VALUE);
    let cursor = RwSignal::new(0usize);
    let drawing = RwSignal::new(false);
    let examples = super::digits::digit_examples();
    let paint = move |cell: usize, level: u8| {
        ctx.state.update(|s| {
            if let Some(p) = s.unified.image.get_mut(cell) {
                *p = level;
            }
        });
    };
    // The cell under a pointer event, from where it is on the pad.
    let cell_at = |ev: &web_sys::PointerEvent| -> Option<usize> {
        let target = ev.current_target()?;
        let el: &web_sys::Element = wasm_bindgen::JsCast::dyn_ref(&target)?;
        let r = el.get_bounding_client_rect();
        let x = (f64::from(ev.client_x()) - r.left()) / r.width();
        let y = (f64::from(ev.client_y()) - r.top()) / r.height();
        ((0.0..1.0).contains(&x) && (0.0..1.0).contains(&y))
            .then(|| (y * SIDE as f64) as usize * SIDE + (x * SIDE as f64) as usize)
    };
    let on_down = move |ev: web_sys::PointerEvent| {
        if let Some(target) = ev.current_target() {
            let el: Option<&web_sys::Element> = wasm_bindgen::JsCast::dyn_ref(&target);
            if let Some(el) = el {
                let _ = el.set_pointer_capture(ev.pointer_id());
            }
        }
        drawing.set(true);
        if let Some(c) = cell_at(&ev) {
            cursor.set(c);
            paint(c, brush.get_untracked());
        }
    };
    let on_move = move |ev: web_sys::PointerEvent| {
        if drawing.get_untracked()
            && let Some(c) = cell_at(&ev)
        {
            cursor.set(c);
            paint(c, brush.get_untracked());
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let c = cursor.get_untracked();
        let (row, col) = (c / SIDE, c % SIDE);
        let next = match ev.key().as_str() {
            "ArrowLeft" => Some(row * SIDE + col.saturating_sub(1)),
            "ArrowRight" => Some(row * SIDE + (col + 1).min(SIDE - 1)),
            "ArrowUp" => Some(row.saturating_sub(1) * SIDE + col),
            "ArrowDown" => Some((row + 1).min(SIDE - 1) * SIDE + col),
            " " | "Enter" => {
                paint(c, brush.get_untracked());
                None
            }
            "Delete" | "Backspace" => {
                paint(c, 0);
                None
            }
            _ => return,
        };
        ev.prevent_default();
        if let Some(n) = next {
            cursor.set(n);
        }
    };
    let load_example = move |class: usize| {
        let image = examples.with_untracked(|e| {
            let e = e.as_ref()?.as_ref().ok()?;
            let x = &e.images.iter().find(|i| i.class == class)?.x;
            (x.len() == PIXELS).then(|| levels_of(x))
        });
        if let Some(image) = image {
            ctx.state.update(|s| s.unified.image = image);
        }
    };
    let error = move || examples.with(|e| e.as_ref().and_then(|e| e.as_ref().err().cloned()));
    view! {
        <div class="pad-row">
            <div
                class="grid8 pad"
                tabindex="0"
                role="application"
                aria-label="Drawing pad, 8 by 8: draw with the mouse or a finger; arrows move, Space paints, Delete erases"
                data-testid="pad"
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=move |_| drawing.set(false)
                on:pointercancel=move |_| drawing.set(false)
                on:keydown=on_key
            >
                {move || {
                    let image = ctx.state.with(|s| s.unified.image.clone());
                    let at = cursor.get();
                    image
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| view! {
                            <span class="px given" class:cursor=i == at style:background-color=grey(v)></span>
                        })
                        .collect_view()
                }}
            </div>
            <div class="pad-tools">
                <div class="row" role="radiogroup" aria-label="Brush">
                    {radio_tabs("brush", BRUSHES, brush_name, move || brush.get(), move |b| brush.set(b))}
                    <button type="button" data-testid="pad-clear" on:click=move |_| ctx.state.update(|s| s.unified.image = vec![0; PIXELS])>"clear"</button>
                </div>
                <div class="row" aria-label="A digit of the validation split">
                    <span class="hint">"or a real one:"</span>
                    {(0..CLASSES)
                        .map(|class| view! {
                            <button type="button" data-testid=format!("pad-example-{class}") on:click=move |_| load_example(class)>{class.to_string()}</button>
                        })
                        .collect_view()}
                </div>
                {move || error().map(|e| view! { <p class="notice error">{e}</p> })}
            </div>
        </div>
    }
}
