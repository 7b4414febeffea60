//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/TARGET/` (run by
//! scripts/fuzz.sh before fuzzing; the seeds are committed with everything the fuzzers found).
//!
//! The model seeds are the tiny fixture's config and tokenizer with a narrower random-weight
//! checkpoint (a few KB, so that libFuzzer mutates it quickly) and the dllm parity fixtures (one
//! per transformer architecture); the trajectory seeds are runs of
//! each sampler on it (and two version-1 files); the link seeds are links the page and its tests
//! write.

use std::path::Path;

use unmask::backend::{BackendKind, init};
use unmask::bundle::{Bundle, ModelFiles};
use unmask::engine::Generation;
use unmask::fuzzing::pack_model_folder;
use unmask::model::patch_dit::{PatchDitConfig, Role, random_patch_dit};
use unmask::model::quant::QuantFormat;
use unmask::model::random_checkpoint;
use unmask::model::transformer::quantize_checkpoint;
use unmask::sampler::{SamplerKind, Settings};
use unmask::{Attention, ModelConfig};

fn main() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("../tests/fixtures/tiny");
    let read = |name: &str| std::fs::read(fixture.join(name)).map_err(|e| format!("{name}: {e}"));
    let mut config: serde_json::Value =
        serde_json::from_slice(&read("config.json")?).map_err(|e| e.to_string())?;
    for (field, value) in [
        ("hidden_dim", 8),
        ("cond_dim", 4),
        ("n_blocks", 1),
        ("n_heads", 2),
    ] {
        config[field] = value.into();
    }
    let config_bytes = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
    let model_config = ModelConfig::from_json(&config_bytes).map_err(|e| e.to_string())?;
    let weights = random_checkpoint(&model_config, 1).map_err(|e| e.to_string())?;
    let tokenizer = read("tokenizer.json")?;
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join("corpus").join(target);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(name), bytes).map_err(|e| e.to_string())
    };
    write(
        "model_folder",
        "seed-tiny-narrow",
        &pack_model_folder(&config_bytes, &tokenizer, &weights),
    )?;

    // The diffusion LMs' decoder transformer: the dllm parity fixtures (hidden 32, a few KB
    // of weights each), one per architecture.
    for name in ["a2d-qwen3", "a2d-qwen3-bd3lm", "a2d-qwen2", "llada", "dream"] {
        let dir = root.join("../tests/fixtures/dllm").join(name);
        let read = |file: &str| {
            std::fs::read(dir.join(file)).map_err(|e| format!("{name}/{file}: {e}"))
        };
        write(
            "model_folder",
            &format!("seed-dllm-{name}"),
            &pack_model_folder(
                &read("config.json")?,
                &read("tokenizer.json")?,
                &read("model.safetensors")?,
            ),
        )?;
    }

    // a2d-qwen3 quantized, both formats.
    {
        let dir = root.join("../tests/fixtures/dllm/a2d-qwen3");
        let read = |file: &str| std::fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"));
        let config_json = read("config.json")?;
        let Ok(unmask::bundle::TextConfig::Transformer(config)) =
            unmask::bundle::TextConfig::from_json(&config_json)
        else {
            return Err("a2d-qwen3's config.json is not a transformer's".into());
        };
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let weights = quantize_checkpoint(&config, &[read("model.safetensors")?], format)
                .map_err(|e| e.to_string())?;
            let mut json: serde_json::Value =
                serde_json::from_slice(&config_json).map_err(|e| e.to_string())?;
            json["quantization"] = serde_json::json!({"format": format.name(), "block_size": 32});
            write(
                "model_folder",
                &format!("seed-dllm-a2d-qwen3-{}", format.name()),
                &pack_model_folder(json.to_string().as_bytes(), &read("tokenizer.json")?, &weights),
            )?;
        }
    }

    // The ddpm family's two roles, narrow too; their folders have no tokenizer.
    for (name, role) in [
        ("seed-ddpm-denoiser", Role::Denoiser),
        ("seed-ddpm-classifier", Role::Classifier),
    ] {
        let c = PatchDitConfig {
            family: unmask::config::Family::Ddpm,
            role,
            image_size: 4,
            patch_size: 2,
            hidden_dim: 8,
            cond_dim: 4,
            n_blocks: 1,
            n_heads: 2,
            classes: 3,
            diffusion_steps: 10,
            beta_schedule: unmask::sampler::gaussian::BetaSchedule::Linear,
            classifier: None,
        };
        let config = serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())?;
        let weights = random_patch_dit(&c, 2).map_err(|e| e.to_string())?;
        write(
            "model_folder",
            name,
            &pack_model_folder(&config, b"", &weights),
        )?;
    }

    let device = init(BackendKind::Cpu).map_err(|e| e.to_string())?;
    let files = ModelFiles {
        config: &config_bytes,
        weights: std::slice::from_ref(&weights),
        tokenizer: &tokenizer,
        tokenizer_config: None,
    };
    let mut bundle = Bundle::from_files(files, &device).map_err(|e| e.to_string())?;
    for sampler in SamplerKind::ALL {
        let mut settings = Settings::for_tokens(sampler, 8);
        settings.draw_mut().seed = 3;
        let attention = match sampler {
            SamplerKind::Ar => Attention::Causal,
            SamplerKind::Bd3 => model_config.attention(),
            _ => Attention::Bidirectional,
        };
        bundle.model.set_attention(attention);
        let spec = unmask::sampler::Denoiser::spec(&bundle.model).clone();
        let prompt = "the old man [MASK] a";
        let mut g =
            Generation::new(settings, prompt, &bundle.codec, &spec).map_err(|e| e.to_string())?;
        pollster::block_on(g.run(&mut bundle.model, |_| {})).map_err(|e| e.to_string())?;
        let json = serde_json::to_string(&g.trajectory("tiny", &bundle.codec, &spec))
            .map_err(|e| e.to_string())?;
        write(
            "trajectory",
            &format!("seed-{}", sampler.name()),
            json.as_bytes(),
        )?;
    }

    // Version-1 files, which the import still reads.
    for name in ["ar", "bd3"] {
        let path = root.join(format!("../tests/fixtures/trajectories/v1-{name}.json"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        write("trajectory", &format!("seed-v1-{name}"), &bytes)?;
    }

    for (i, query) in [
        "?model=default&prompt=The+next+morning%2C+Elizabeth&sampler=bd3&gen=64&seed=0",
        "sampler=llada&steps=12&gen=24&temperature=0.7&seed=3&remasking=margin&cfg=1.5&block=8",
        "sampler=mdlm&steps=128&gen=64&top_k=40&top_p=0.95&cache=0&b.sampler=ar&b.eos=0",
        "model=./fixtures/tiny/&sampler=bd3&threshold=0.9&first_hitting=0&embed=1&autoplay=1&theme=dark&backend=cpu&precision=f32&speed=16",
        "model=owner%2Fname&prompt=%3Cimg+src%3Dx%3E+%5BMASK%5D&steps=banana&theme=neon",
        "family=ddpm&class=7&classifier_scale=3&seed=1",
        "family=ddpm&sampler=ddpm&variance=posterior&class=3&cfg=1.5&count=4&b.sampler=ddim&b.steps=20&b.eta=0.5",
        "family=ddpm&sampler=ddim&steps=0&eta=nan&class=-1&cfg=2&classifier_scale=inf&temperature=1",
    ]
    .iter()
    .enumerate()
    {
        write("page_query", &format!("seed-{i}"), query.as_bytes())?;
    }
    Ok(())
}
