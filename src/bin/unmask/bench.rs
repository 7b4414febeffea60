//! `unmask bench`: forward latency by sequence length and backend, sampler throughput, and the
//! BD3 KV-cache speedup. Prints a Markdown table for BENCHMARKS.md. A benchmark, not a test:
//! nothing here asserts a time.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, CONFIG_FILE, TOKENIZER_FILE, TextConfig, TextModel, WEIGHTS_FILE};
use unmask::config::{Attention, ModelConfig};
use unmask::engine::Generation;
use unmask::model::presets::Preset as Published;
use unmask::model::{
    DitDenoiser, TransformerDenoiser, load_dit, load_transformer, random_checkpoint, transformer,
};
use unmask::network::ModelError;
use unmask::rng::Rng;
use unmask::sampler::{Denoiser, Knob, KnobValue, ModelSpec, SampleError, SamplerKind, Settings};

#[derive(Args)]
pub struct BenchArgs {
    /// Model folder, or a Hugging Face id (owner/name[@revision]) from its cache (downloaded into
    /// it when missing); without
    /// it a random-weight model of `--preset`'s shape.
    #[arg(long, value_parser = crate::model_folder())]
    model: Option<PathBuf>,
    /// Shape of the random-weight model when no folder is given.
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Skip the sampler runs (forward latency only).
    #[arg(long)]
    forward_only: bool,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "cpu,wgpu")]
    backends: Vec<BackendKind>,
    /// Sequence lengths for the forward latency.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    lengths: Vec<usize>,
    /// Timed repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Tokens generated per sampler run.
    #[arg(long, default_value_t = 64)]
    gen_length: usize,
    /// Memory the random-weight model may take, in GB [default: what the system has available].
    #[arg(long)]
    memory_limit: Option<f64>,
}

/// Random-weight model shapes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Hidden 256, 4 blocks, 4 heads, vocab 4096, block 4 (6.2 M parameters).
    Small,
    /// The published kuleshov-group OWT checkpoints' shape: hidden 768, 12 blocks, 12 heads,
    /// cond 128, vocab 50258 (GPT-2 + mask), block 4 (169.6 M parameters).
    Owt170m,
    /// dllm's Qwen3-0.6B-diffusion-mdlm (0.60 B parameters, vocab 151,936).
    #[value(name = "a2d-qwen3-0.6b")]
    A2dQwen3,
    /// dllm's Qwen3-0.6B-diffusion-bd3lm: the same, block-causal with blocks of 32.
    #[value(name = "a2d-qwen3-0.6b-bd3lm")]
    A2dQwen3Bd3lm,
    /// dllm's Qwen2.5-Coder-0.5B-Instruct-diffusion-mdlm (0.49 B).
    #[value(name = "a2d-qwen2.5-coder-0.5b")]
    A2dQwen2Coder,
    /// LLaDA-8B-Instruct (8.0 B).
    #[value(name = "llada-8b")]
    Llada8b,
    /// Dream-v0-Instruct-7B (7.6 B).
    #[value(name = "dream-7b")]
    Dream7b,
}

impl Preset {
    /// The published model whose config.json this preset is, if it is one.
    fn published(self) -> Option<&'static Published> {
        let name = match self {
            Preset::Small | Preset::Owt170m => return None,
            Preset::A2dQwen3 => "a2d-qwen3-0.6b",
            Preset::A2dQwen3Bd3lm => "a2d-qwen3-0.6b-bd3lm",
            Preset::A2dQwen2Coder => "a2d-qwen2.5-coder-0.5b",
            Preset::Llada8b => "llada-8b",
            Preset::Dream7b => "dream-7b",
        };
        Published::find(name)
    }
}

/// A synthetic model: its config.json and weights, and where the mask is.
struct Synthetic {
    config: TextConfig,
    config_json: Vec<u8>,
    weights: Vec<u8>,
    mask_id: u32,
    mask_token: &'static str,
}

/// Bytes per parameter that building a random-weight checkpoint holds at its peak: the drawn
/// f32 values, their encoding as `dtype`, and the serialised file.
fn build_bytes_per_parameter(dtype: safetensors::Dtype) -> u64 {
    4 + 2 * dtype.bitsize() as u64 / 8
}

/// The memory the system has free for new allocations (Linux's `MemAvailable`), if it says.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses, before allocating anything, a random-weight model that needs more than `limit_gb`
/// (default: the available memory) at `bytes_per_parameter`: the 8B presets need tens of GB,
/// and running out of memory would abort the process instead of saying so.
fn check_memory(
    preset: Preset,
    bytes_per_parameter: u64,
    limit_gb: Option<f64>,
) -> Result<(), String> {
    let parameters = match preset.published() {
        Some(p) => p
            .transformer()
            .map_err(|e| e.to_string())?
            .parameter_count(),
        None => unmask::model::parameter_count(&synthetic_config(preset)),
    };
    let need = parameters.saturating_mul(bytes_per_parameter);
    let (limit, whose) = match limit_gb {
        Some(gb) if gb.is_finite() && gb > 0.0 => ((gb * 1e9) as u64, "--memory-limit"),
        Some(gb) => {
            return Err(format!(
                "--memory-limit {gb} must be a positive number of GB"
            ));
        }
        None => match available_memory() {
            Some(bytes) => (bytes, "this machine's available memory"),
            None => return Ok(()),
        },
    };
    if need > limit {
        return Err(format!(
            "this preset's random-weight model ({:.2} B parameters) needs about {:.1} GB of memory, above {whose} ({:.1} GB); pick a smaller preset (a2d-qwen3-0.6b) or raise --memory-limit",
            parameters as f64 / 1e9,
            need as f64 / 1e9,
            limit as f64 / 1e9
        ));
    }
    Ok(())
}

/// The random-weight model of `preset`, its weights stored as `dtype`.
fn synthetic(preset: Preset, seed: u64, dtype: safetensors::Dtype) -> Result<Synthetic, String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    match preset.published() {
        Some(p) => {
            let config = p.transformer().map_err(|e| fail(&e))?;
            let weights =
                transformer::random_checkpoint(&config, seed, dtype).map_err(|e| fail(&e))?;
            Ok(Synthetic {
                config: TextConfig::Transformer(config),
                config_json: p.config.as_bytes().to_vec(),
                weights,
                mask_id: p.mask_id,
                mask_token: p.mask_token,
            })
        }
        None => {
            let config = synthetic_config(preset);
            let weights = random_checkpoint(&config, seed).map_err(|e| fail(&e))?;
            Ok(Synthetic {
                config_json: serde_json::to_vec_pretty(&config).map_err(|e| fail(&e))?,
                mask_id: config.vocab_size as u32 - 1,
                config: TextConfig::Dit(config),
                weights,
                mask_token: "[MASK]",
            })
        }
    }
}

/// The synthetic model measured when no folder is given.
fn synthetic_config(preset: Preset) -> ModelConfig {
    let (vocab_size, hidden_dim, n_blocks, n_heads) = match preset {
        Preset::Owt170m => (50258, 768, 12, 12),
        _ => (4096, 256, 4, 4),
    };
    ModelConfig {
        family: unmask::config::Family::Text,
        sampler: None,
        model_type: Some("bd3lm".into()),
        vocab_size,
        model_length: 1024,
        hidden_dim,
        cond_dim: 128,
        n_blocks,
        n_heads,
        block_size: Some(4),
        cross_attn: Some(true),
        adaln: true,
        causal: false,
        time_conditioning: false,
        per_token_noise: false,
        dropout: 0.0,
        mask_token_id: Some(vocab_size as u32 - 1),
    }
}

fn load(args: &BenchArgs, kind: BackendKind) -> Result<(TextModel, TextConfig), String> {
    let device = backend::init(kind).map_err(|e| e.to_string())?;
    match &args.model {
        Some(dir) => {
            let b = Bundle::from_dir(dir, &device).map_err(|e| e.to_string())?;
            Ok((b.model, b.config))
        }
        None => {
            // f32 weights: what the forward computes in, so nothing is converted at load.
            let dtype = safetensors::Dtype::F32;
            // Building the file, then the loaded copy beside it.
            let loaded = 4;
            check_memory(
                args.preset,
                build_bytes_per_parameter(dtype) + loaded,
                args.memory_limit,
            )?;
            let s = synthetic(args.preset, 1, dtype)?;
            let spec = ModelSpec {
                vocab_size: s.config.vocab_size(),
                model_length: s.config.model_length(),
                mask_id: s.mask_id,
                eos_id: None,
                attention: s.config.attention(),
                time_conditioning: false,
                per_token_noise: false,
            };
            let model = match &s.config {
                TextConfig::Dit(c) => TextModel::Dit(DitDenoiser::new(
                    load_dit(c, &s.weights, &device).map_err(|e| e.to_string())?,
                    device,
                    spec,
                )),
                TextConfig::Transformer(c) => TextModel::Transformer(TransformerDenoiser::new(
                    load_transformer(c, &[s.weights], &device).map_err(|e| e.to_string())?,
                    device,
                    spec,
                )),
            };
            Ok((model, s.config))
        }
    }
}

fn time<T>(repeats: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<f64, String> {
    f()?; // warm-up: kernels compiled, memory pools filled
    let start = Instant::now();
    for _ in 0..repeats {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / repeats.max(1) as f64)
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    outln!("| backend | measure | value |");
    outln!("|---|---|---|");
    for &kind in &args.backends {
        let (mut model, config) = match load(&args, kind) {
            Ok(m) => m,
            Err(e) => {
                outln!("| {} | unavailable | {e} |", kind.name());
                continue;
            }
        };
        if kind == args.backends[0] {
            eprintln!(
                "model: {}, {} params, vocab {}",
                config.describe(),
                config.parameter_count(),
                config.vocab_size()
            );
        }
        let native = model.spec().attention;
        let mut rng = Rng::new(7);
        let mask = model.spec().mask_id;
        let vocab = config.vocab_size();
        for &l in &args.lengths {
            if l == 0 || l > config.model_length() {
                continue;
            }
            let tokens: Vec<u32> = (0..l)
                .map(|_| rng.below(vocab) as u32)
                .map(|t| if t == mask { 0 } else { t })
                .collect();
            let secs = time(args.repeats, || {
                pollster::block_on(async {
                    let rows = model.predict(&[&tokens], l - 1..l, 0.0).await?;
                    // Read back, so the forward has run.
                    rows[0].to_host().await
                })
                .map_err(|e| e.to_string())
            })?;
            outln!("| {} | forward L={l} | {:.1} ms |", kind.name(), secs * 1e3);
        }
        if args.forward_only {
            continue;
        }
        let prompt: Vec<u32> = (0..8)
            .map(|i| (i * 7 % vocab) as u32)
            .map(|t| if t == mask { 0 } else { t })
            .collect();
        // A diffusion-forcing model runs its own sampler only: each schedule in turn.
        let forcing = model.spec().per_token_noise;
        let runs: Vec<(SamplerKind, Attention, bool, &str)> = if forcing {
            [
                "autoregressive (clean-prefix cache)",
                "autoregressive (no cache)",
                "pyramid (clean-prefix cache)",
                "pyramid (no cache)",
                "full-sequence",
            ]
            .into_iter()
            .map(|label| {
                let cache = !label.ends_with("(no cache)");
                (SamplerKind::Forcing, native, cache, label)
            })
            .collect()
        } else {
            vec![
                (SamplerKind::Llada, Attention::Bidirectional, false, "llada"),
                (SamplerKind::Mdlm, Attention::Bidirectional, true, "mdlm"),
                (SamplerKind::Bd3, native, true, "bd3 (KV cache)"),
                (SamplerKind::Bd3, native, false, "bd3 (no cache)"),
                (SamplerKind::Ar, Attention::Causal, true, "ar (KV cache)"),
            ]
        };
        let mut bd3_times = Vec::new();
        for (sampler, attention, cache, label) in runs {
            if sampler == SamplerKind::Bd3 && !matches!(native, Attention::BlockCausal { .. }) {
                continue;
            }
            model.set_attention(attention);
            let mut settings = Settings::for_tokens(sampler, args.gen_length);
            let schedule_name = label.split(' ').next().unwrap_or(label);
            if let Some(schedule) = unmask::sampler::forcing::Schedule::from_name(
                schedule_name,
                unmask::sampler::settings::DEFAULT_SLOPE,
            )
            .filter(|_| forcing)
            {
                settings
                    .set(Knob::Schedule, KnobValue::Schedule(schedule))
                    .map_err(|e| e.to_string())?;
            }
            for (knob, on) in [(Knob::Cache, cache), (Knob::StopAtEos, false)] {
                if settings.has(knob) {
                    settings
                        .set(knob, KnobValue::Flag(on))
                        .map_err(|e| e.to_string())?;
                }
            }
            let spec = model.spec().clone();
            let mut generation = match Generation::from_ids(settings, &prompt, &spec) {
                Ok(g) => g,
                // Full-sequence cannot roll: one step would span more than the context.
                Err(e) if forcing => {
                    outln!("| {} | {label} | skipped: {e} |", kind.name());
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            // What a quiet run computes: no candidates.
            generation.show_candidates(false);
            let read_before = model.bytes_read_back();
            let start = Instant::now();
            match pollster::block_on(generation.run(&mut model, |_| {})) {
                Ok(()) => {}
                // A network that does not run this way (Dream's shifted logits have no KV cache)
                // is a row that says so, not the end of the benchmark.
                Err(SampleError::Model(ModelError::Unsupported(why))) => {
                    outln!("| {} | {label} | skipped: {why} |", kind.name());
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
            let secs = start.elapsed().as_secs_f64();
            let read_back = model.bytes_read_back() - read_before;
            let progress = generation.sampler().progress();
            let tokens: usize = generation.steps().iter().map(|s| s.commits.len()).sum();
            if sampler == SamplerKind::Bd3 {
                bd3_times.push(secs);
            }
            outln!(
                "| {} | {label}: {} tokens | {:.1} tokens/s, {:.2} calls/token, {} B read back per step |",
                kind.name(),
                tokens,
                tokens as f64 / secs,
                progress.model_calls as f64 / tokens.max(1) as f64,
                read_back / progress.steps.max(1) as u64
            );
        }
        if let [cached, uncached] = bd3_times[..] {
            outln!(
                "| {} | bd3 KV-cache speedup | {:.2}× |",
                kind.name(),
                uncached / cached
            );
        }
        model.set_attention(native);
    }
    Ok(())
}

/// Arguments of `unmask init`.
#[derive(Args)]
pub struct InitArgs {
    /// Shape of the model.
    #[arg(long, value_enum, default_value = "small")]
    pub preset: Preset,
    /// Folder to write (created; existing files are not overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Memory the random weights may take while they are built, in GB [default: what the system
    /// has available].
    #[arg(long)]
    pub memory_limit: Option<f64>,
}

/// A word-level tokenizer with `vocab_size` ids: `<pad>`, `<bos>`, `<eos>`, `<unk>`, words `w4`…,
/// and the mask (`mask`, e.g. `[MASK]`) last, so any id decodes to a readable placeholder.
fn synthetic_tokenizer(vocab_size: usize, mask: &str) -> serde_json::Value {
    let special = ["<pad>", "<bos>", "<eos>", "<unk>"];
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for id in 0..vocab_size {
        let word = match id {
            i if i < special.len() => special[i].to_string(),
            i if i == vocab_size - 1 => mask.to_string(),
            i => format!("w{i}"),
        };
        if id < special.len() || id == vocab_size - 1 {
            added.push(serde_json::json!({
                "id": id, "content": word, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            }));
        }
        vocab.insert(word, id.into());
    }
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}

/// Writes a random-weight model folder of a preset's shape (for page benchmarks and as a fresh
/// start): config.json, model.safetensors and a synthetic tokenizer.json whose last token is
/// the mask (at the published mask id for the published presets; their embeddings' padding
/// rows have no token). The DiT presets' weights are f32, the published ones' bf16, as
/// published.
pub fn init(args: InitArgs) -> Result<(), String> {
    let dtype = match args.preset.published() {
        Some(_) => safetensors::Dtype::BF16,
        None => safetensors::Dtype::F32,
    };
    check_memory(
        args.preset,
        build_bytes_per_parameter(dtype),
        args.memory_limit,
    )?;
    let s = synthetic(args.preset, args.seed, dtype)?;
    let (config, config_json, weights) = (s.config, s.config_json, s.weights);
    let tokenizer_json =
        serde_json::to_vec(&synthetic_tokenizer(s.mask_id as usize + 1, s.mask_token))
            .map_err(|e| e.to_string())?;
    crate::write_new_files(
        &args.out,
        &[
            (CONFIG_FILE, &config_json),
            (WEIGHTS_FILE, &weights),
            (TOKENIZER_FILE, &tokenizer_json),
        ],
    )?;
    outln!(
        "wrote {} ({} parameters, {:.1} MB of weights)",
        args.out.display(),
        config.parameter_count(),
        weights.len() as f64 / 1e6
    );
    Ok(())
}
