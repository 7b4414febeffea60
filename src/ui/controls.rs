//! Controls: the prompt and every knob of the chosen sampler, the race, the model source and
//! backend, sharing and trajectory files.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::browser::fetch::clear_cache;
use crate::browser::js_error;
use crate::page::source::{ModelSource, TRAINED_MODELS};
use crate::page::state::{BackendChoice, PageState, Theme};
use crate::sampler::{
    KNOBS, Knob, KnobKind, KnobSpec, KnobValue, Remasking, SamplerKind, Settings,
};
use crate::trajectory::Trajectory;

use super::app::ctx;
use crate::page::session::ModelStatus;

/// Which settings an input edits: the run's, or the race's second sampler.
#[derive(Clone, Copy, PartialEq)]
enum Which {
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

fn edit(which: Which, f: impl FnOnce(&mut Settings)) {
    ctx().state.update(|s| match which {
        Which::A => f(&mut s.settings),
        Which::B => {
            if let Some(b) = &mut s.race {
                f(b)
            }
        }
    });
}

/// A number field for one knob of [`KNOBS`]: its range and step from the table, empty for an
/// optional knob that is off; a value the table refuses marks the field invalid and changes nothing.
fn number_knob(which: Which, spec: &'static KnobSpec) -> impl IntoView {
    let settings = read(which);
    let (min, max, step) = match spec.kind {
        KnobKind::Whole { min, max } => (min as f64, max as f64, 1.0),
        KnobKind::Real { min, max, step } => (min, max, step),
        _ => (0.0, 0.0, 1.0),
    };
    let value = move || match settings().and_then(|s| s.get(spec.knob)) {
        Some(KnobValue::Number(x)) => x.to_string(),
        _ => String::new(),
    };
    let invalid = RwSignal::new(false);
    view! {
        <label class="knob" title=spec.help>
            <span>{spec.label}</span>
            <input
                type="number"
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
                    let ok = parsed.is_some_and(|v| {
                        let mut ok = false;
                        edit(which, |s| ok = s.set(spec.knob, v).is_ok());
                        ok
                    });
                    invalid.set(!ok);
                }
            />
        </label>
    }
}

/// A checkbox for one on/off knob of [`KNOBS`].
fn check_knob(which: Which, spec: &'static KnobSpec) -> impl IntoView {
    let settings = read(which);
    view! {
        <label class="knob check" title=spec.help>
            <input
                type="checkbox"
                data-knob=spec.key
                prop:checked=move || {
                    settings().and_then(|s| s.get(spec.knob)) == Some(KnobValue::Flag(true))
                }
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    edit(which, |s| {
                        let _ = s.set(spec.knob, KnobValue::Flag(on));
                    });
                }
            />
            <span>{spec.label}</span>
        </label>
    }
}

/// The remasking rule's choice.
fn remasking_knob(which: Which, spec: &'static KnobSpec) -> impl IntoView {
    let settings = read(which);
    view! {
        <label class="knob" title=spec.help>
            <span>{spec.label}</span>
            <select data-knob=spec.key on:change=move |ev| {
                if let Some(r) = Remasking::from_name(&event_target_value(&ev)) {
                    edit(which, |s| {
                        let _ = s.set(spec.knob, KnobValue::Remasking(r));
                    });
                }
            }>
                {Remasking::ALL
                    .into_iter()
                    .map(|r| view! {
                        <option
                            value=r.name()
                            selected=move || {
                                settings().and_then(|s| s.get(spec.knob)) == Some(KnobValue::Remasking(r))
                            }
                        >
                            {r.name()}
                        </option>
                    })
                    .collect_view()}
            </select>
        </label>
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
/// has its own row, shared by a race).
fn knobs(which: Which) -> impl IntoView {
    let settings = read(which);
    view! {
        <div class="knobs">
            {sampler_select(which)}
            {KNOBS
                .iter()
                .filter(|spec| spec.knob != Knob::Seed)
                .map(|spec| {
                    let shown = move || settings().is_some_and(|s| s.has(spec.knob));
                    let control = move || match spec.kind {
                        KnobKind::Flag => check_knob(which, spec).into_any(),
                        KnobKind::Remasking => remasking_knob(which, spec).into_any(),
                        KnobKind::Whole { .. } | KnobKind::Real { .. } => {
                            number_knob(which, spec).into_any()
                        }
                    };
                    view! { <Show when=shown>{control}</Show> }
                })
                .collect_view()}
        </div>
    }
}

/// Prompt, knobs, seed, run and race.
#[component]
pub fn Controls() -> impl IntoView {
    let ctx = ctx();
    let racing = move || ctx.state.with(|s| s.race.is_some());
    view! {
        <section class="controls" aria-label="Sampler settings">
            <label class="prompt">
                <span>"Prompt — "<code>"[MASK]"</code>" in it is filled in place"</span>
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
            {knobs(Which::A)}
            <div class="knobs row">
                {number_knob(Which::A, Knob::Seed.spec())}
                <button title="New random seed" aria-label="New random seed" on:click=move |_| {
                    let seed = (js_sys::Math::random() * 1e9) as u64;
                    ctx.state.update(|s| {
                        s.settings.draw_mut().seed = seed;
                        if let Some(b) = &mut s.race { b.draw_mut().seed = seed; }
                    });
                }>"new seed"</button>
                <label class="knob check" title="Run a second sampler on the same prompt and seed, side by side">
                    <input
                        type="checkbox"
                        data-testid="race"
                        prop:checked=racing
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ctx.state.update(|s| {
                                s.race = on.then(|| {
                                    let other = if s.settings.sampler() == SamplerKind::Llada { SamplerKind::Bd3 } else { SamplerKind::Llada };
                                    s.settings.switched(other)
                                });
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
                        {move || if ctx.busy() { "Restart" } else { "Run" }}
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

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Model source, progress, backend switch and cache.
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
        ModelStatus::Loaded(m) => Some(format!(
            "{} — {}, vocabulary {}, context {}, loaded in {:.1} s",
            m.name, m.shape, m.spec.vocab_size, m.spec.model_length, m.load_seconds
        )),
        _ => None,
    };
    let cache_note = RwSignal::new(String::new());
    view! {
        <section class="panel model" aria-label="Model">
            <h3>"Model"</h3>
            <p class="model-info" data-testid="model-info">{info}</p>
            {progress}
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
            </div>
            {move || error.get().map(|e| view! { <p class="notice error">{e}</p> })}
            <p class="hint">"Or drop config.json, model.safetensors and tokenizer.json on the page."</p>
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

fn download(name: &str, text: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&text.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
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
            Some(t) => match download("unmask-trajectory.json", &t.to_json()) {
                Ok(()) => "trajectory saved".into(),
                Err(e) => format!("could not save: {e}"),
            },
            None => "finish a run first: there is no trajectory to export yet".into(),
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
            match Trajectory::from_json(&text) {
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
