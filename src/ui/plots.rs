//! SVG plots of one run: masked positions and mean confidence per step, and the positions × steps
//! map of when each token was committed — the staircase of block diffusion against the scatter of
//! masked diffusion.

use leptos::prelude::*;

use super::app::ctx;
use super::canvas::confidence_hue;

/// Plot width and height in SVG units.
pub(crate) const W: f64 = 300.0;
pub(crate) const H: f64 = 90.0;

pub(crate) fn polyline(values: &[Option<f64>], max: f64, steps: usize) -> String {
    let dx = if steps > 1 {
        W / (steps - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| format!("{:.2},{:.2}", i as f64 * dx, H - v / max.max(1e-9) * H))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The x of the cursor at step `at` of a plot over `steps` steps.
pub(crate) fn cursor_x(at: usize, steps: usize) -> f64 {
    if steps > 1 {
        at.min(steps - 1) as f64 * W / (steps - 1) as f64
    } else {
        0.0
    }
}

/// One series per step as a plot: `values` (`None`: no point) scaled to `max`, over `steps`
/// steps, the cursor at step `at`, `label` beneath.
pub(crate) fn series_plot(
    which: &'static str,
    values: &[Option<f64>],
    max: f64,
    (steps, at): (usize, usize),
    label: String,
) -> impl IntoView + use<> {
    let x = cursor_x(at, steps);
    view! {
        <figure class="plot" data-testid=which>
            <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" role="img" aria-label=label.clone()>
                <polyline class=format!("series {which}") points=polyline(values, max, steps) fill="none"></polyline>
                <line class="cursor" x1=x x2=x y1="0" y2=H></line>
            </svg>
            <figcaption>{label}</figcaption>
        </figure>
    }
}

/// The three plots of lane `lane`.
#[component]
pub fn Plots(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let series = Memo::new(move |_| {
        ctx.lanes_with(|l| {
            l.get(lane).and_then(|l| l.text()).map(|r| {
                let masked = r.masked_series().to_vec();
                let conf = r.confidence_series().to_vec();
                (masked, conf, r.width())
            })
        })
    });
    let line_plot = move |which: &'static str| {
        move || {
            let (masked, conf, _) = series.get()?;
            let steps = masked.len();
            let (values, max, label) = if which == "masked" {
                let max = masked.first().copied().unwrap_or(1).max(1) as f64;
                let v: Vec<Option<f64>> = masked.iter().map(|&m| Some(m as f64)).collect();
                (
                    v,
                    max,
                    format!(
                        "masked ({max:.0} → {})",
                        masked.last().copied().unwrap_or(0)
                    ),
                )
            } else {
                let mean = {
                    let v: Vec<f64> = conf.iter().flatten().copied().collect();
                    if v.is_empty() {
                        0.0
                    } else {
                        v.iter().sum::<f64>() / v.len() as f64
                    }
                };
                (conf, 1.0, format!("mean confidence (avg {mean:.2})"))
            };
            let at = ctx.cursor.get();
            Some(series_plot(which, &values, max, (steps, at), label))
        }
    };
    let heatmap = move || {
        let at = ctx.cursor.get();
        ctx.lanes_with(|l| {
            let r = l.get(lane)?.text()?;
            let steps = r.len().max(1);
            let width = r.width().max(1);
            let cells: Vec<_> = (0..width)
                .filter_map(|i| r.commit_of(i).map(|(s, c)| (i, s, c)))
                .collect();
            Some(view! {
                <figure class="plot heatmap">
                    <svg
                        viewBox=format!("0 0 {width} {steps}")
                        preserveAspectRatio="none"
                        role="img"
                        aria-label="when each position was committed: positions across, steps down"
                    >
                        {cells
                            .into_iter()
                            .map(|(i, s, c)| {
                                let hue = confidence_hue(c);
                                view! {
                                    <rect class="after" x=i y=s width="1" height=steps.saturating_sub(s)></rect>
                                    <rect
                                        x=i
                                        y=s
                                        width="1"
                                        height="1"
                                        fill=format!("hsl({hue:.0} 75% 45%)")
                                    ></rect>
                                }
                            })
                            .collect_view()}
                        <rect class="cursor-band" x="0" y=at.min(steps - 1) width=width height="1"></rect>
                    </svg>
                    <figcaption>"commit map: positions → , steps ↓"</figcaption>
                </figure>
            })
        })
    };
    view! {
        <div class="plots">
            {line_plot("masked")}
            {line_plot("confidence")}
            {heatmap}
        </div>
    }
}
