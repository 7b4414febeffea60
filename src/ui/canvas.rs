//! The token canvas: one cell per position, and the inspector for the cell under the pointer or
//! the keyboard focus.

use leptos::prelude::*;

use crate::page::replay::{Cell, CellState};

use super::app::ctx;

pub use crate::export::confidence_hue;
pub use crate::page::replay::visible;

fn cell_class(cell: &Cell) -> String {
    let mut class = String::from("cell");
    match cell.state {
        CellState::Prompt => class.push_str(" prompt"),
        CellState::Masked => class.push_str(" masked"),
        CellState::Committed { fresh: true, .. } => class.push_str(" fresh"),
        CellState::Committed { .. } => class.push_str(" done"),
    }
    if cell.in_block {
        class.push_str(" in-block");
    }
    class
}

/// The keys that move the selection over lane `lane`'s `len()` cells: arrows step, Home and
/// End jump, Escape clears it (the token canvas's and the words' alike).
pub(crate) fn select_by_keys(
    lane: usize,
    len: impl Fn() -> usize + Copy + 'static,
) -> impl Fn(web_sys::KeyboardEvent) + Copy + 'static {
    let ctx = ctx();
    move |ev: web_sys::KeyboardEvent| {
        let len = len();
        if len == 0 {
            return;
        }
        let cur = ctx
            .selected
            .get_untracked()
            .filter(|(l, _)| *l == lane)
            .map_or(0, |(_, p)| p);
        let next = match ev.key().as_str() {
            "ArrowRight" | "ArrowDown" => (cur + 1).min(len - 1),
            "ArrowLeft" | "ArrowUp" => cur.saturating_sub(1),
            "Home" => 0,
            "End" => len - 1,
            "Escape" => {
                ctx.selected.set(None);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        ctx.selected.set(Some((lane, next)));
    }
}

/// The canvas of lane `lane` at the timeline's step.
#[component]
pub fn TokenCanvas(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let cells = Memo::new(move |_| {
        let at = ctx.cursor.get();
        ctx.lanes_with(|l| {
            l.get(lane)
                .and_then(|l| l.text())
                .map(|r| r.cells(at))
                .unwrap_or_default()
        })
    });
    let select = move |pos: usize| ctx.selected.set(Some((lane, pos)));
    let on_key = select_by_keys(lane, move || cells.with_untracked(Vec::len));
    view! {
        <div
            class="canvas"
            data-testid="canvas"
            tabindex="0"
            role="group"
            aria-label="Token canvas: arrow keys move between tokens; the inspector below describes the selected one"
            on:keydown=on_key
        >
            {move || {
                let steps = ctx.cursor.get().max(1) as f64;
                let selected = ctx.selected.get();
                cells
                    .get()
                    .into_iter()
                    .map(|cell| {
                        let pos = cell.position;
                        let mut class = cell_class(&cell);
                        if selected == Some((lane, pos)) {
                            class.push_str(" selected");
                        }
                        // Diffusion forcing: a masked token's level, as a bar filling the cell.
                        let level = cell
                            .level
                            .filter(|_| cell.state == CellState::Masked)
                            .map(|share| format!("{:.0}%", 100.0 * share));
                        let (bg, title) = match cell.state {
                            CellState::Committed { step, confidence, fresh } => {
                                let hue = confidence_hue(confidence);
                                // Older tokens fade towards the page colour by their age.
                                let alpha = if fresh {
                                    0.55
                                } else {
                                    0.12 + 0.3 * (step as f64 / steps)
                                };
                                (
                                    Some(format!("hsl({hue:.0} 75% 50% / {alpha:.2})")),
                                    format!("step {} · p = {confidence:.3}", step + 1),
                                )
                            }
                            CellState::Prompt => (None, "prompt".to_string()),
                            CellState::Masked => (
                                None,
                                match &level {
                                    Some(l) => format!("masked · noise level {l}"),
                                    None => "masked".to_string(),
                                },
                            ),
                        };
                        view! {
                            <span
                                class=class
                                data-pos=pos
                                title=title
                                style:background-color=bg
                                on:mouseenter=move |_| select(pos)
                                on:click=move |_| select(pos)
                            >
                                {level.map(|l| view! {
                                    <span class="level" data-testid="level" style:height=l></span>
                                })}
                                {match crate::unified::level_named(&cell.text) {
                                    // A grey level of the text + image family: a swatch of it.
                                    Some(v) => view! {
                                        <span class="swatch" style:background-color=super::unified::grey(v)></span>
                                        {v.to_string()}
                                    }
                                    .into_any(),
                                    None => visible(&cell.text).into_any(),
                                }}
                            </span>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
}

/// Diffusion forcing's scheduling matrix of lane `lane` as recorded so far: positions across,
/// steps down, each cell shaded by its noise level, the timeline's step outlined.
#[component]
pub fn ScheduleHeatmap(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let heatmap = Memo::new(move |_| {
        ctx.lanes_with(|l| l.get(lane).and_then(|l| l.text()).and_then(|r| r.heatmap()))
    });
    move || {
        let h = heatmap.get()?;
        // Row 0 is the opening; step `at` leaves row `at + 1`.
        let row = (ctx.cursor.get() + 1).min(h.rows - 1);
        let view_box = format!("0 0 {} {}", h.columns, h.rows);
        Some(view! {
            <figure class="heatmap" data-testid="heatmap" data-rows=h.rows>
                <svg viewBox=view_box preserveAspectRatio="none" role="img"
                    aria-label="The scheduling matrix: positions across, steps down, darker cells noisier">
                    {h.shades
                        .into_iter()
                        .map(|(share, path)| view! {
                            <path d=path fill="var(--mask-level)" fill-opacity=format!("{:.3}", 0.15 + 0.85 * share)/>
                        })
                        .collect_view()}
                    <rect class="heatmap-row" x="0" y=row width=h.columns height="1"/>
                </svg>
                <figcaption>"Noise level of every position (across) at every step (down): the schedule"</figcaption>
            </figure>
        })
    }
}

/// The inspector's list of candidates: each one's text on a bar of its probability, the
/// probability, and a note beside it when there is one (a word's distance).
pub(crate) fn candidate_list(
    rows: impl IntoIterator<Item = (String, f64, Option<String>)>,
) -> impl IntoView {
    view! {
        <ol class="candidates" data-testid="candidates">
            {rows
                .into_iter()
                .map(|(text, p, note)| view! {
                    <li>
                        <span class="bar" style:width=format!("{:.1}%", p * 100.0)></span>
                        <span class="tok">{text}</span>
                        <span class="p">{format!("{p:.3}")}</span>
                        {note.map(|n| view! { <span class="p">{n}</span> })}
                    </li>
                })
                .collect_view()}
        </ol>
    }
}

/// What the selected cell of lane `lane` is: its token, step and confidence, or its top
/// candidates while masked.
#[component]
pub fn Inspector(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let body = move || {
        let (l, pos) = ctx.selected.get().filter(|(l, _)| *l == lane)?;
        let at = ctx.cursor.get();
        ctx.lanes_with(|lanes| {
            let r = lanes.get(l)?.text()?;
            let cell = r.cells(at).into_iter().nth(pos)?;
            let head = format!("position {pos}");
            Some(match cell.state {
                CellState::Prompt => view! {
                    <p><b>{head}</b>" · prompt token “"{visible(&cell.text)}"”"</p>
                }
                .into_any(),
                CellState::Committed {
                    step, confidence, ..
                } => view! {
                    <p>
                        <b>{head}</b>" · “"{visible(&cell.text)}"” committed at step "
                        {step + 1}" with p = "{format!("{confidence:.3}")}
                    </p>
                }
                .into_any(),
                CellState::Masked => {
                    let top: Vec<(String, f64)> = r
                        .candidates(pos, at)
                        .map(|c| {
                            c.top
                                .iter()
                                .map(|t| (visible(&r.text(t.token)), t.prob))
                                .collect()
                        })
                        .unwrap_or_default();
                    view! {
                        <div>
                            <p><b>{head}</b>" · masked"
                                {top.is_empty().then_some(" · not predicted yet")}
                            </p>
                            {candidate_list(top.into_iter().map(|(text, p)| (text, p, None)))}
                        </div>
                    }
                    .into_any()
                }
            })
        })
    };
    view! {
        <div class="inspector" aria-live="polite">
            {move || body().unwrap_or_else(|| {
                view! { <p class="hint">"Hover, tap or arrow to a token to inspect it."</p> }.into_any()
            })}
        </div>
    }
}
