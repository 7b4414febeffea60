//! The player: play, pause, single steps, scrubbing and speed, over the recorded steps (during
//! the run and after it). Keyboard: the buttons and the slider are ordinary controls, and outside
//! text fields Space (or K) plays and pauses, ←/→ (or J/L) step.

use std::time::Duration;

use leptos::prelude::*;

use crate::page::state::SPEEDS;

use super::app::ctx;

/// A 16×16 icon drawn as SVG (no icon font needed: headless and minimal systems lack the glyphs).
pub fn icon(path: &'static str) -> impl IntoView {
    view! {
        <svg class="icon" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
            <path d=path fill="currentColor"></path>
        </svg>
    }
}

const FIRST: &str = "M3 3h2v10H3zM13 3v10L6 8z";
const BACK: &str = "M12 3v10L4 8z";
const PLAY: &str = "M4 3v10l9-5z";
const PAUSE: &str = "M4 3h3v10H4zM9 3h3v10H9z";
const FORWARD: &str = "M4 3v10l7-5zM11 3h2v10h-2z";
const LAST: &str = "M3 3v10l7-5zM11 3h2v10h-2z";

/// The timeline under the canvases.
#[component]
pub fn Timeline() -> impl IntoView {
    let ctx = ctx();
    let last = move || ctx.last_step();
    // One tick per step at the chosen speed; `speed` changes restart the timer.
    Effect::new(move |prev: Option<Option<IntervalHandle>>| {
        if let Some(Some(h)) = prev {
            h.clear();
        }
        let speed = ctx.state.with(|s| s.speed);
        set_interval_with_handle(
            move || {
                if !ctx.playing.get_untracked() {
                    return;
                }
                let last = ctx.last_step();
                let cur = ctx.cursor.get_untracked();
                if ctx.reduced_motion.get_untracked() {
                    ctx.cursor.set(last);
                } else if cur < last {
                    ctx.cursor.set(cur + 1);
                }
                if ctx.cursor.get_untracked() >= last && !ctx.busy() {
                    ctx.playing.set(false);
                }
            },
            Duration::from_secs_f64(1.0 / speed),
        )
        .ok()
    });
    let toggle = move |_| ctx.toggle_play();
    let step_by = move |d: isize| ctx.step_by(d);
    view! {
        <div class="timeline" role="group" aria-label="Timeline">
            <button on:click=move |_| { ctx.playing.set(false); ctx.cursor.set(0); } title="First step" aria-label="First step">{icon(FIRST)}</button>
            <button on:click=move |_| step_by(-1) title="Step back" aria-label="Step back">{icon(BACK)}</button>
            <button
                class="play"
                data-testid="play"
                on:click=toggle
                aria-label=move || if ctx.playing.get() { "Pause" } else { "Play" }
            >
                {move || if ctx.playing.get() { icon(PAUSE) } else { icon(PLAY) }}
            </button>
            <button on:click=move |_| step_by(1) title="Step forward" aria-label="Step forward">{icon(FORWARD)}</button>
            <button on:click=move |_| { ctx.playing.set(false); ctx.cursor.set(last()); } title="Last step" aria-label="Last step">{icon(LAST)}</button>
            <input
                type="range"
                data-testid="scrub"
                aria-label="Scrub through the steps"
                min="0"
                max=last
                prop:value=move || ctx.cursor.get().to_string()
                on:input=move |ev| {
                    ctx.playing.set(false);
                    if let Ok(v) = event_target_value(&ev).parse::<usize>() {
                        ctx.cursor.set(v);
                    }
                }
            />
            <span class="step-label" data-testid="step-label">
                {move || format!("{} / {}", if ctx.max_steps() == 0 { 0 } else { ctx.cursor.get().min(last()) + 1 }, ctx.max_steps())}
            </span>
            <label class="speed">
                "speed "
                <select
                    aria-label="Playback speed in steps per second"
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            ctx.state.update(|s| s.speed = v);
                        }
                    }
                >
                    {SPEEDS
                        .iter()
                        .map(|&s| {
                            view! {
                                <option value=s.to_string() selected=move || ctx.state.with(|st| st.speed == s)>
                                    {format!("{s}/s")}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
        </div>
    }
}
