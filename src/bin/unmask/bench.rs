//! `unmask bench`: forward latency by sequence length and backend, sampler throughput, and the
//! BD3 KV-cache speedup. Prints a Markdown table for BENCHMARKS.md. A benchmark, not a test:
//! nothing here asserts a time.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use unmask::config::{Attention, ModelConfig};
use unmask::engine::Generation;
use unmask::model::{DitDenoiser, load_dit, parameter_count, random_checkpoint};
use unmask::rng::Rng;
use unmask::sampler::{Denoiser, Knob, KnobValue, ModelSpec, SamplerKind, Settings};

#[derive(Args)]
pub struct BenchArgs {
    /// Model folder; without it a random-weight DiT of `--preset`'s shape.
    #[arg(long)]
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
}

/// Random-weight model shapes.
#[derive(Clone, Copy, ValueEnum)]
pub enum Preset {
    /// Hidden 256, 4 blocks, 4 heads, vocab 4096, block 4 (6.2 M parameters).
    Small,
    /// The published kuleshov-group OWT checkpoints' shape: hidden 768, 12 blocks, 12 heads,
    /// cond 128, vocab 50258 (GPT-2 + mask), block 4 (169.6 M parameters).
    Owt170m,
}

/// The synthetic model measured when no folder is given.
fn synthetic_config(preset: Preset) -> ModelConfig {
    let (vocab_size, hidden_dim, n_blocks, n_heads) = match preset {
        Preset::Small => (4096, 256, 4, 4),
        Preset::Owt170m => (50258, 768, 12, 12),
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
        dropout: 0.0,
        mask_token_id: Some(vocab_size as u32 - 1),
    }
}

fn load(args: &BenchArgs, kind: BackendKind) -> Result<(DitDenoiser, ModelConfig), String> {
    let device = backend::init(kind).map_err(|e| e.to_string())?;
    match &args.model {
        Some(dir) => {
            let b = Bundle::from_dir(dir, &device).map_err(|e| e.to_string())?;
            Ok((b.model, b.config))
        }
        None => {
            let config = synthetic_config(args.preset);
            let dit = load_dit(
                &config,
                &random_checkpoint(&config, 1).map_err(|e| e.to_string())?,
                &device,
            )
            .map_err(|e| e.to_string())?;
            let spec = ModelSpec {
                vocab_size: config.vocab_size,
                model_length: config.model_length,
                mask_id: config.mask_token_id.unwrap_or(0),
                eos_id: None,
                attention: config.attention(),
                time_conditioning: false,
            };
            Ok((DitDenoiser::new(dit, device, spec), config))
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
                "model: {} params, hidden {}, {} blocks, vocab {}",
                parameter_count(&config),
                config.hidden_dim,
                config.n_blocks,
                config.vocab_size
            );
        }
        let native = model.spec().attention;
        let mut rng = Rng::new(7);
        let mask = model.spec().mask_id;
        let vocab = config.vocab_size;
        for &l in &args.lengths {
            if l == 0 || l > config.model_length {
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
        let runs: [(SamplerKind, Attention, bool, &str); 5] = [
            (SamplerKind::Llada, Attention::Bidirectional, false, "llada"),
            (SamplerKind::Mdlm, Attention::Bidirectional, true, "mdlm"),
            (SamplerKind::Bd3, native, true, "bd3 (KV cache)"),
            (SamplerKind::Bd3, native, false, "bd3 (no cache)"),
            (SamplerKind::Ar, Attention::Causal, true, "ar (KV cache)"),
        ];
        let mut bd3_times = Vec::new();
        for (sampler, attention, cache, label) in runs {
            if sampler == SamplerKind::Bd3 && !matches!(native, Attention::BlockCausal { .. }) {
                continue;
            }
            model.set_attention(attention);
            let mut settings = Settings::for_tokens(sampler, args.gen_length);
            for (knob, on) in [(Knob::Cache, cache), (Knob::StopAtEos, false)] {
                if settings.has(knob) {
                    settings
                        .set(knob, KnobValue::Flag(on))
                        .map_err(|e| e.to_string())?;
                }
            }
            let spec = model.spec().clone();
            let mut generation =
                Generation::from_ids(settings, &prompt, &spec).map_err(|e| e.to_string())?;
            // What a quiet run computes: no candidates.
            generation.show_candidates(false);
            let read_before = model.bytes_read_back();
            let start = Instant::now();
            pollster::block_on(generation.run(&mut model, |_| {})).map_err(|e| e.to_string())?;
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
}

/// A word-level tokenizer with `vocab_size` ids: `<pad>`, `<bos>`, `<eos>`, `<unk>`, words `w4`…,
/// and `[MASK]` last, so any id decodes to a readable placeholder.
fn synthetic_tokenizer(vocab_size: usize) -> serde_json::Value {
    let special = ["<pad>", "<bos>", "<eos>", "<unk>"];
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for id in 0..vocab_size {
        let word = match id {
            i if i < special.len() => special[i].to_string(),
            i if i == vocab_size - 1 => "[MASK]".to_string(),
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
/// start): config.json, model.safetensors (f32) and a synthetic tokenizer.json.
pub fn init(args: InitArgs) -> Result<(), String> {
    let config = synthetic_config(args.preset);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let weights = random_checkpoint(&config, args.seed).map_err(|e| e.to_string())?;
    let config_json = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
    let tokenizer_json =
        serde_json::to_vec(&synthetic_tokenizer(config.vocab_size)).map_err(|e| e.to_string())?;
    for (name, bytes) in [
        (CONFIG_FILE, &config_json),
        (WEIGHTS_FILE, &weights),
        (TOKENIZER_FILE, &tokenizer_json),
    ] {
        let path = args.out.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot write {}: {e} (it is not overwritten)",
                    path.display()
                )
            })?;
        std::io::Write::write_all(&mut file, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    outln!(
        "wrote {} ({} parameters, {:.1} MB of weights)",
        args.out.display(),
        parameter_count(&config),
        weights.len() as f64 / 1e6
    );
    Ok(())
}
