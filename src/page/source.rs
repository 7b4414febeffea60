//! Where a model comes from, and the URL of each of its files.
//!
//! A Hugging Face repo id resolves to `https://huggingface.co/{id}/resolve/main/{file}`. The
//! GPT-2-based MDLM and BD3-LM checkpoints ship no `tokenizer.json`; for those the page takes GPT-2's
//! and the mask id `vocab_size − 1` = 50257 (the text layer's rule for GPT-2 vocabularies).

use std::fmt;

use crate::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
use crate::sampler::SamplerKind;

use super::protocol::Job;

/// The tokenizer a GPT-2-based checkpoint falls back to when its folder has none.
pub const GPT2_TOKENIZER_URL: &str =
    "https://huggingface.co/openai-community/gpt2/resolve/main/tokenizer.json";

/// A model trained by `unmask train` and shipped with the page (README, "Default models").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainedModel {
    /// What the page calls it.
    pub label: &'static str,
    /// Its folder, relative to the page.
    pub dir: &'static str,
    /// The sampler it was trained for.
    pub sampler: SamplerKind,
    /// Every sampler it is the default model of (its own first).
    pub serves: &'static [SamplerKind],
}

/// The shipped trained models: masked diffusion (also the model of LLaDA's sampler, which reads
/// the same bidirectional denoiser), block diffusion (block 4), autoregressive.
pub const TRAINED_MODELS: [TrainedModel; 4] = [
    TrainedModel {
        label: "MDLM",
        dir: "./models/default/mdlm/",
        sampler: SamplerKind::Mdlm,
        serves: &[SamplerKind::Mdlm, SamplerKind::Llada],
    },
    TrainedModel {
        label: "BD3-LM",
        dir: "./models/default/bd3/",
        sampler: SamplerKind::Bd3,
        serves: &[SamplerKind::Bd3],
    },
    TrainedModel {
        label: "AR",
        dir: "./models/default/ar/",
        sampler: SamplerKind::Ar,
        serves: &[SamplerKind::Ar],
    },
    TrainedModel {
        label: "diffusion forcing",
        dir: "./models/default/forcing/",
        sampler: SamplerKind::Forcing,
        serves: &[SamplerKind::Forcing],
    },
];

/// The shipped digits model (Gaussian diffusion, class-conditional); its config names the noisy
/// classifier beside it (`../ddpm-classifier`).
pub const DIGITS_MODEL_DIR: &str = "./models/default/ddpm/";

/// The shipped Diffusion-LM model; its config names the control classifier beside it
/// (`../diffusion-lm-classifier`).
pub const WORDS_MODEL_DIR: &str = "./models/default/diffusion-lm/";

/// The shipped text + image model (captioned digits in one vocabulary).
pub const UNIFIED_MODEL_DIR: &str = "./models/default/unified/";

/// The shipped model a sampler runs on when the page's model is [`ModelSource::Default`].
pub fn trained_for(sampler: SamplerKind) -> &'static TrainedModel {
    TRAINED_MODELS
        .iter()
        .find(|m| m.serves.contains(&sampler))
        // Every sampler is served (a test holds it); the masked-diffusion model is the fallback.
        .unwrap_or(&TRAINED_MODELS[0])
}

/// A model the page can load.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum ModelSource {
    /// The models shipped with the page: each sampler gets the one trained for it
    /// ([`trained_for`]; resolved by [`ModelSource::for_sampler`]).
    Default,
    /// A folder URL in the Hugging Face layout (ends with `/`).
    Url(String),
    /// A Hugging Face repo id, `owner/name`, optionally `@revision` (a branch, tag or commit).
    Hub(String),
    /// Files the reader dropped on the page (not in the URL).
    Files(String),
}

/// Longest owner or name of a Hugging Face repo id (`huggingface_hub`'s `validate_repo_id`).
pub const MAX_REPO_PART: usize = 96;

/// Whether `p` can be the owner or the name of a Hugging Face repo id: ASCII letters, digits,
/// `-`, `_` and `.`, not starting with `.` or `-`, no `..`, at most [`MAX_REPO_PART`] long.
pub fn is_repo_part(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_REPO_PART
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !p.starts_with(['.', '-'])
        && !p.contains("..")
}

/// Whether `r` can be a revision after an id's `@`: a branch, tag or commit, whose slashes
/// (`refs/pr/1`) never lead, trail, double or climb (`..`).
pub fn is_revision(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= MAX_REPO_PART
        && !r.starts_with('/')
        && !r.ends_with('/')
        && !r.contains("..")
        && !r.contains("//")
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl ModelSource {
    /// Reads what a reader typed or a URL carried: `default`, an `http(s)://` or relative folder
    /// URL, or `owner/name`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() || s == "default" {
            return Ok(Self::Default);
        }
        if s.starts_with("//") {
            return Err(format!(
                "`{s}` leaves out the scheme; write https:{s} for another site"
            ));
        }
        if s.starts_with("https://")
            || s.starts_with("http://")
            || s.starts_with("./")
            || s.starts_with("../")
            || s.starts_with('/')
        {
            if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("the model URL `{s}` contains spaces; remove them"));
            }
            let mut url = s.to_owned();
            // A link straight to one of the files names its folder.
            for file in [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE] {
                if let Some(dir) = url.strip_suffix(file) {
                    url = dir.to_owned();
                }
            }
            if !url.ends_with('/') {
                url.push('/');
            }
            return Ok(Self::Url(url));
        }
        let (repo, revision) = match s.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (s, None),
        };
        match repo.split_once('/') {
            Some((owner, name))
                if is_repo_part(owner)
                    && is_repo_part(name)
                    && revision.is_none_or(is_revision) =>
            {
                Ok(Self::Hub(s.to_owned()))
            }
            _ => Err(format!(
                "`{s}` is neither a model folder URL (https://…/) nor a Hugging Face repo id (owner/name, optionally @revision)"
            )),
        }
    }

    /// The model `sampler` runs on: the shipped model trained for it when this is
    /// [`ModelSource::Default`], else this very source.
    pub fn for_sampler(&self, sampler: SamplerKind) -> ModelSource {
        match self {
            Self::Default => Self::Url(trained_for(sampler).dir.into()),
            other => other.clone(),
        }
    }

    /// The model `job` runs on: the shipped model of its family (for text, of its sampler) when
    /// this is [`ModelSource::Default`], else this very source.
    pub fn for_job(&self, job: &Job) -> ModelSource {
        match (self, job) {
            (_, Job::Text { settings, .. }) => self.for_sampler(settings.sampler()),
            (Self::Default, Job::Ddpm { .. }) => Self::Url(DIGITS_MODEL_DIR.into()),
            (Self::Default, Job::DiffusionLm { .. }) => Self::Url(WORDS_MODEL_DIR.into()),
            (Self::Default, Job::Unified { .. }) => Self::Url(UNIFIED_MODEL_DIR.into()),
            (other, Job::Ddpm { .. } | Job::DiffusionLm { .. } | Job::Unified { .. }) => {
                other.clone()
            }
        }
    }

    /// The folder a config names relative to this one (a digits model's `classifier`): a
    /// sibling folder on the same site, or for a Hugging Face repo `../name` as the same owner's
    /// repo. `None` for dropped files and for paths that leave the site or the owner.
    pub fn beside(&self, relative: &str) -> Option<ModelSource> {
        let relative = relative.trim().trim_end_matches('/');
        if relative.is_empty()
            || relative
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return None;
        }
        if relative.starts_with("https://") || relative.starts_with("http://") {
            return Some(Self::Url(format!("{relative}/")));
        }
        match self {
            Self::Default | Self::Files(_) => None,
            Self::Hub(id) => {
                // A sibling repo, at its default branch.
                let (owner, _) = id.split_once('/')?;
                let name = relative.strip_prefix("../")?;
                Self::parse(&format!("{owner}/{name}")).ok()
            }
            Self::Url(_) if relative.starts_with('/') => Some(Self::Url(format!("{relative}/"))),
            Self::Url(dir) => {
                // Resolve `..` and `.` against the folder, keeping its scheme and host.
                let (root, path) = match dir.find("://") {
                    Some(i) => {
                        let after = i + 3;
                        let host_end = dir[after..].find('/').map_or(dir.len(), |j| after + j);
                        (&dir[..host_end], &dir[host_end..])
                    }
                    None => ("", dir.as_str()),
                };
                let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
                for part in relative.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => match parts.last() {
                            Some(&"..") | None => {
                                if !root.is_empty() {
                                    return None;
                                }
                                parts.push("..")
                            }
                            Some(&".") => {
                                parts.pop();
                                parts.push("..")
                            }
                            Some(_) => {
                                parts.pop();
                            }
                        },
                        p => parts.push(p),
                    }
                }
                let lead = if path.starts_with('/') { "/" } else { "" };
                Some(Self::Url(format!("{root}{lead}{}/", parts.join("/"))))
            }
        }
    }

    /// The URL of `file` in this model's folder, or `None` for dropped files. The default is
    /// the masked-diffusion model here; resolve it with [`ModelSource::for_sampler`] first.
    pub fn file_url(&self, file: &str) -> Option<String> {
        match self {
            Self::Default => Self::Default.for_sampler(SamplerKind::Mdlm).file_url(file),
            Self::Url(dir) => Some(format!("{dir}{file}")),
            Self::Hub(id) => {
                let (repo, revision) = id.split_once('@').unwrap_or((id, "main"));
                let revision = super::state::encode_component(revision);
                Some(format!(
                    "https://huggingface.co/{repo}/resolve/{revision}/{file}"
                ))
            }
            Self::Files(_) => None,
        }
    }

    /// What the URL's `model=` parameter holds (dropped files cannot be shared: `None`).
    pub fn to_param(&self) -> Option<String> {
        match self {
            Self::Default => Some("default".into()),
            Self::Url(u) => Some(u.clone()),
            Self::Hub(id) => Some(id.clone()),
            Self::Files(_) => None,
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Url(u) => f.write_str(u),
            Self::Hub(id) => f.write_str(id),
            Self::Files(name) => write!(f, "{name} (dropped files)"),
        }
    }
}

/// The block size dllm's published block-diffusion A2D models (`…-bd3lm-…`) sample with: their
/// config.json has none (dllm keeps it in the sampler; `examples/a2d/bd3lm/chat.py`).
pub const DLLM_BD3LM_BLOCK_SIZE: usize = 32;

/// The attention the page runs a text model under, and a note for the reader when it is not
/// what config.json says: `asked` (the link's `attention`), else block-causal in blocks of
/// [`DLLM_BD3LM_BLOCK_SIZE`] for an A2D folder named `-bd3lm` whose config.json has no
/// `block_size` (the CLI asks for `--attention block-causal --block-length 32` there), else the
/// config's own. Only the transformers change attention; a DiT runs as it was trained.
pub fn page_attention(
    name: &str,
    config: &crate::bundle::TextConfig,
    asked: Option<crate::config::Attention>,
) -> Result<(crate::config::Attention, Option<String>), String> {
    use crate::bundle::TextConfig;
    use crate::config::Attention;
    use crate::model::transformer::Architecture;
    let own = config.attention();
    let TextConfig::Transformer(t) = config else {
        return match asked {
            Some(a) if a != own => Err(format!(
                "this DiT runs the {} attention it was trained with, not {} (the link's attention applies to LLaDA, Dream and A2D models)",
                own.name(),
                a.name()
            )),
            _ => Ok((own, None)),
        };
    };
    if let Some(Attention::BlockCausal { block_size }) = asked
        && block_size > t.max_position_embeddings
    {
        return Err(format!(
            "block_size = {block_size} is longer than the model's context ({} positions)",
            t.max_position_embeddings
        ));
    }
    match asked {
        Some(a) if a == own => Ok((own, None)),
        Some(a) => Ok((
            a,
            Some(format!(
                "runs with {} attention as the link asks (config.json: {})",
                describe_attention(a),
                describe_attention(own)
            )),
        )),
        None if t.block_size.is_none()
            && matches!(
                t.architecture,
                Architecture::A2dQwen3 | Architecture::A2dQwen2
            )
            && name.to_ascii_lowercase().contains("bd3lm") =>
        {
            let a = Attention::BlockCausal {
                block_size: DLLM_BD3LM_BLOCK_SIZE,
            };
            Ok((
                a,
                Some(format!(
                    "runs with {} attention: a -bd3lm model, whose config.json has no block_size (dllm samples these in blocks of {DLLM_BD3LM_BLOCK_SIZE}; attention=bidirectional in the link to change it)",
                    describe_attention(a)
                )),
            ))
        }
        None => Ok((own, None)),
    }
}

/// An attention in words, with its block size: "block-causal (32-token blocks)".
pub fn describe_attention(a: crate::config::Attention) -> String {
    match a {
        crate::config::Attention::BlockCausal { block_size } => {
            format!("block-causal ({block_size}-token blocks)")
        }
        a => a.name().to_owned(),
    }
}

/// Which of the dropped files is which, as indices into their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// `config.json`: the `.json` whose name says neither "tokenizer" nor "index".
    pub config: usize,
    /// The weights.
    pub weights: DroppedWeights,
    /// The `.json` whose name says "tokenizer" (GPT-2 checkpoints may come without one).
    pub tokenizer: Option<usize>,
    /// `tokenizer_config.json`: BOS, EOS and the chat template of a transformer's folder.
    pub tokenizer_config: Option<usize>,
    /// A `.jinja` chat template (`chat_template.jinja`, beside newer saves' tokenizer config).
    pub chat_template: Option<usize>,
}

/// The dropped weights: one `.safetensors` file, or a checkpoint's shards with their index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DroppedWeights {
    /// `model.safetensors`.
    File(usize),
    /// `model.safetensors.index.json` and every `.safetensors` dropped with it; which shards
    /// the index needs is known once it is read ([`dropped_shards`]).
    Sharded {
        /// The index.
        index: usize,
        /// The `.safetensors` files, in the order dropped.
        shards: Vec<usize>,
    },
}

/// The dropped shards (`shards`, indices into `names`) in the order of the index's `files`
/// ([`crate::bundle::ShardIndex::files`]): each it names must have been dropped, and each dropped
/// must be named.
pub fn dropped_shards(
    files: &[String],
    names: &[String],
    shards: &[usize],
) -> Result<Vec<usize>, String> {
    let ordered = files
        .iter()
        .map(|file| {
            shards
                .iter()
                .copied()
                .find(|&i| names[i] == *file)
                .ok_or_else(|| {
                    format!(
                        "{WEIGHTS_INDEX_FILE} names {file}, which was not dropped; drop every shard it names with it"
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match shards.iter().find(|i| !ordered.contains(i)) {
        Some(&extra) => Err(format!(
            "{} was dropped, but {WEIGHTS_INDEX_FILE} does not name it: is it from another checkpoint?",
            names[extra]
        )),
        None => Ok(ordered),
    }
}

/// A dropped llama.cpp GGUF file ([`crate::model::gguf_import`] turns it into a folder), as
/// indices into the dropped files' names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DroppedGguf {
    /// The `.gguf` file.
    pub file: usize,
    /// The model's own `tokenizer.json`, used instead of one rebuilt from the file's vocabulary.
    pub tokenizer: Option<usize>,
}

/// A GGUF drop: `None` when no `.gguf` was dropped; else the file, with at most a tokenizer
/// beside it.
pub fn classify_dropped_gguf(names: &[String]) -> Option<Result<DroppedGguf, String>> {
    let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let gguf: Vec<usize> = (0..names.len())
        .filter(|&i| lower[i].ends_with(".gguf"))
        .collect();
    if gguf.is_empty() {
        return None;
    }
    let expected = "drop one .gguf file, alone or with the model's tokenizer.json";
    let tokenizer: Vec<usize> = (0..names.len())
        .filter(|&i| lower[i].ends_with(".json") && lower[i].contains("tokenizer"))
        .filter(|&i| lower[i] != crate::chat::TOKENIZER_CONFIG_FILE)
        .collect();
    Some(match (gguf.as_slice(), tokenizer.as_slice()) {
        ([file], []) if names.len() == 1 => Ok(DroppedGguf {
            file: *file,
            tokenizer: None,
        }),
        ([file], [t]) if names.len() == 2 => Ok(DroppedGguf {
            file: *file,
            tokenizer: Some(*t),
        }),
        ([_], _) => Err(format!(
            "{} files were dropped with the GGUF file; {expected}",
            names.len() - 1
        )),
        _ => Err(format!(
            "{} GGUF files were dropped; {expected}",
            gguf.len()
        )),
    })
}

/// Tells the dropped files apart by name ([`Dropped`]); a file none of them is refused, as are
/// two of one kind.
pub fn classify_dropped(names: &[String]) -> Result<Dropped, String> {
    let find = |pred: &dyn Fn(&str) -> bool| -> Vec<usize> {
        names
            .iter()
            .enumerate()
            .filter(|(_, n)| pred(&n.to_ascii_lowercase()))
            .map(|(i, _)| i)
            .collect()
    };
    let special = |n: &str| n == crate::chat::TOKENIZER_CONFIG_FILE;
    let index = |n: &str| n.ends_with(".safetensors.index.json");
    let weights = find(&|n| n.ends_with(".safetensors"));
    let tokenizer = find(&|n| n.ends_with(".json") && n.contains("tokenizer") && !special(n));
    let config = find(&|n| n.ends_with(".json") && !n.contains("tokenizer") && !index(n));
    let expected = "drop config.json, model.safetensors (or model.safetensors.index.json and its shards) and tokenizer.json together (tokenizer_config.json and chat_template.jinja may come with them)";
    let one = |v: &[usize], what: &str| match v {
        [i] => Ok(*i),
        [] => Err(format!("no {what} among the dropped files; {expected}")),
        _ => Err(format!("several {what} files were dropped; {expected}")),
    };
    let optional = |v: &[usize], what: &str| match v {
        [] => Ok(None),
        [i] => Ok(Some(*i)),
        _ => Err(format!("several {what} files were dropped; {expected}")),
    };
    let weights = match optional(&find(&index), "shard index (.safetensors.index.json)")? {
        Some(index) => DroppedWeights::Sharded {
            index,
            shards: weights,
        },
        None => DroppedWeights::File(one(&weights, "weights (.safetensors)")?),
    };
    let weight_files = match &weights {
        DroppedWeights::File(_) => 1,
        DroppedWeights::Sharded { shards, .. } => 1 + shards.len(),
    };
    let dropped = Dropped {
        weights,
        config: one(&config, "config (.json)")?,
        tokenizer: optional(&tokenizer, "tokenizer")?,
        tokenizer_config: optional(&find(&special), "tokenizer_config.json")?,
        chat_template: optional(&find(&|n| n.ends_with(".jinja")), "chat template (.jinja)")?,
    };
    let known = 1
        + weight_files
        + [
            dropped.tokenizer,
            dropped.tokenizer_config,
            dropped.chat_template,
        ]
        .iter()
        .flatten()
        .count();
    if names.len() > known {
        return Err(format!(
            "{} files were dropped but only {known} are used; {expected}",
            names.len()
        ));
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trained_model_names_a_shipped_folder_for_its_sampler() {
        let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
        for model in TRAINED_MODELS {
            let source = ModelSource::parse(model.dir).unwrap();
            assert_eq!(source, ModelSource::Url(model.dir.into()));
            let dir = www.join(model.dir.trim_start_matches("./"));
            for file in [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE] {
                assert!(dir.join(file).is_file(), "{} has no {file}", dir.display());
            }
            let config = crate::config::ModelConfig::from_json(
                &std::fs::read(dir.join(CONFIG_FILE)).unwrap(),
            )
            .unwrap();
            let expected = config.own_sampler();
            assert_eq!(model.sampler, expected, "{}", model.label);
        }
    }

    #[test]
    fn the_default_gives_each_sampler_the_model_trained_for_it() {
        for sampler in SamplerKind::ALL {
            let served: Vec<_> = TRAINED_MODELS
                .iter()
                .filter(|m| m.serves.contains(&sampler))
                .collect();
            assert_eq!(
                served.len(),
                1,
                "{} needs exactly one default model",
                sampler.name()
            );
            let resolved = ModelSource::Default.for_sampler(sampler);
            assert_eq!(resolved, ModelSource::Url(served[0].dir.into()));
        }
        for model in TRAINED_MODELS {
            assert_eq!(
                model.serves[0], model.sampler,
                "{} serves its own sampler first",
                model.label
            );
        }
        assert_eq!(
            ModelSource::Default.for_sampler(SamplerKind::Llada),
            ModelSource::Default.for_sampler(SamplerKind::Mdlm),
        );
        assert_eq!(
            ModelSource::Default
                .for_sampler(SamplerKind::Ar)
                .file_url(CONFIG_FILE)
                .unwrap(),
            "./models/default/ar/config.json"
        );
        let hub = ModelSource::Hub("owner/name".into());
        assert_eq!(hub.for_sampler(SamplerKind::Ar), hub);
    }

    #[test]
    fn a_hub_id_may_name_its_revision() {
        let url = |id: &str| {
            ModelSource::parse(id)
                .unwrap()
                .file_url(CONFIG_FILE)
                .unwrap()
        };
        assert_eq!(
            url("dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1"),
            "https://huggingface.co/dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1/resolve/main/config.json"
        );
        assert_eq!(
            url("o/n@v1.0"),
            "https://huggingface.co/o/n/resolve/v1.0/config.json"
        );
        // A branch's slashes are one path segment in the hub's URL.
        assert_eq!(
            url("o/n@refs/pr/3"),
            "https://huggingface.co/o/n/resolve/refs%2Fpr%2F3/config.json"
        );
        let (state, errors) = super::super::PageState::from_query("model=o%2Fn%40refs%2Fpr%2F3");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(state.model, ModelSource::Hub("o/n@refs/pr/3".into()));
        assert_eq!(state.model.to_param().unwrap(), "o/n@refs/pr/3");
        for bad in [
            "o/n@", "o/n@../x", "o/n@/x", "o/n@a//b", "o/n@a b", "o/n@x@y",
        ] {
            assert!(ModelSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_digits_model_and_the_classifier_it_names_are_shipped() {
        let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
        let job = Job::Ddpm {
            settings: crate::sampler::image::ImageSettings::defaults(
                crate::sampler::image::ImageSampler::Ddim,
            ),
        };
        let source = ModelSource::Default.for_job(&job);
        assert_eq!(source, ModelSource::Url(DIGITS_MODEL_DIR.into()));
        let config = std::fs::read(www.join(DIGITS_MODEL_DIR).join(CONFIG_FILE)).unwrap();
        let config = crate::model::patch_dit::PatchDitConfig::from_json(&config).unwrap();
        let named = config
            .classifier
            .expect("the digits model names its classifier");
        let Some(ModelSource::Url(dir)) = source.beside(&named) else {
            panic!("{named} does not resolve beside {source}");
        };
        assert_eq!(dir, "./models/default/ddpm-classifier/");
        assert!(www.join(&dir).join(WEIGHTS_FILE).is_file(), "{dir}");
    }

    #[test]
    fn the_text_and_image_model_is_shipped_where_its_tab_looks() {
        let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
        let job = Job::Unified {
            task: crate::unified::UnifiedTask::Mmu {
                image: vec![0; crate::unified::PIXELS],
                settings: Default::default(),
            },
        };
        let source = ModelSource::Default.for_job(&job);
        assert_eq!(source, ModelSource::Url(UNIFIED_MODEL_DIR.into()));
        let config = std::fs::read(www.join(UNIFIED_MODEL_DIR).join(CONFIG_FILE)).unwrap();
        assert_eq!(
            crate::bundle::family_of(&config).unwrap(),
            crate::config::Family::Unified
        );
        // A reader's own folder stays theirs.
        let own = ModelSource::Url("https://h.example/m/".into());
        assert_eq!(own.for_job(&job), own);
    }

    #[test]
    fn folders_beside_a_source_resolve_like_relative_links() {
        let url = |s: &str| Some(ModelSource::Url(s.into()));
        let site = ModelSource::Url("https://h.example/a/b/".into());
        assert_eq!(site.beside("../c"), url("https://h.example/a/c/"));
        assert_eq!(site.beside("./c/"), url("https://h.example/a/b/c/"));
        assert_eq!(site.beside("/x"), url("/x/"));
        assert_eq!(site.beside("../../../x"), None, "it stays on the site");
        assert_eq!(
            ModelSource::Url("../m/".into()).beside("../../c"),
            url("../../c/")
        );
        assert_eq!(
            ModelSource::Hub("o/ddpm".into()).beside("../ddpm-classifier"),
            Some(ModelSource::Hub("o/ddpm-classifier".into()))
        );
        assert_eq!(ModelSource::Hub("o/ddpm".into()).beside("c"), None);
        assert_eq!(ModelSource::Files("m".into()).beside("../c"), None);
        assert_eq!(site.beside(" "), None);
    }

    #[test]
    fn dropped_files_are_told_apart_by_name() {
        let names: Vec<String> = ["tokenizer.json", "Model.SafeTensors", "config.json"]
            .map(String::from)
            .into();
        let three = Dropped {
            config: 2,
            weights: DroppedWeights::File(1),
            tokenizer: Some(0),
            tokenizer_config: None,
            chat_template: None,
        };
        assert_eq!(classify_dropped(&names).unwrap(), three);
        // A transformer's folder: its tokenizer config and template are told from the tokenizer.
        let names: Vec<String> = [
            "tokenizer.json",
            "Model.SafeTensors",
            "config.json",
            "tokenizer_config.json",
            "chat_template.jinja",
        ]
        .map(String::from)
        .into();
        let five = Dropped {
            tokenizer_config: Some(3),
            chat_template: Some(4),
            ..three.clone()
        };
        assert_eq!(classify_dropped(&names).unwrap(), five);
        let names: Vec<String> = ["a.safetensors", "config.json"].map(String::from).into();
        let two = classify_dropped(&names).unwrap();
        assert_eq!(
            (two.config, two.weights, two.tokenizer),
            (1, DroppedWeights::File(0), None)
        );
        let names: Vec<String> = ["a.safetensors", "b.safetensors", "config.json"]
            .map(String::from)
            .into();
        assert!(classify_dropped(&names).unwrap_err().contains("several"));
        // A sharded checkpoint: the index is not the config, and takes every .safetensors.
        let names: Vec<String> = [
            "model-00002-of-00002.safetensors",
            "config.json",
            "model.safetensors.index.json",
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
        ]
        .map(String::from)
        .into();
        let sharded = classify_dropped(&names).unwrap();
        assert_eq!(sharded.config, 1);
        assert_eq!(
            sharded.weights,
            DroppedWeights::Sharded {
                index: 2,
                shards: vec![0, 4]
            }
        );
        let files: Vec<String> = [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]
        .map(String::from)
        .into();
        assert_eq!(dropped_shards(&files, &names, &[0, 4]).unwrap(), [4, 0]);
        let missing = dropped_shards(&files, &names, &[0]).unwrap_err();
        assert!(
            missing.contains("names model-00001-of-00002.safetensors, which was not dropped"),
            "{missing}"
        );
        let extra = dropped_shards(&files[..1], &names, &[0, 4]).unwrap_err();
        assert!(
            extra.contains("model-00002-of-00002.safetensors was dropped, but"),
            "{extra}"
        );
        // A GGUF file comes alone or with the model's tokenizer.json.
        let list = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            classify_dropped_gguf(&list(&["config.json", "model.safetensors"])),
            None
        );
        assert_eq!(
            classify_dropped_gguf(&list(&["LLaDA-8B.Q4_0.GGUF"])),
            Some(Ok(DroppedGguf {
                file: 0,
                tokenizer: None
            }))
        );
        assert_eq!(
            classify_dropped_gguf(&list(&["tokenizer.json", "m.gguf"])),
            Some(Ok(DroppedGguf {
                file: 1,
                tokenizer: Some(0)
            }))
        );
        for bad in [
            &["a.gguf", "b.gguf"][..],
            &["m.gguf", "config.json"],
            &["m.gguf", "tokenizer.json", "tokenizer_config.json"],
        ] {
            let err = classify_dropped_gguf(&list(bad)).unwrap().unwrap_err();
            assert!(err.contains("drop one .gguf file"), "{bad:?}: {err}");
        }
        let names: Vec<String> = ["notes.txt"].map(String::from).into();
        assert!(classify_dropped(&names).unwrap_err().contains("no weights"));
        let names: Vec<String> = ["a.safetensors", "config.json", "notes.txt"]
            .map(String::from)
            .into();
        assert!(
            classify_dropped(&names)
                .unwrap_err()
                .contains("3 files were dropped but only 2 are used")
        );
    }

    #[test]
    fn sources_parse_and_resolve() {
        assert_eq!(ModelSource::parse(" ").unwrap(), ModelSource::Default);
        let hub = ModelSource::parse("kuleshov-group/bd3lm-owt-block_size4").unwrap();
        assert_eq!(
            hub.file_url("config.json").unwrap(),
            "https://huggingface.co/kuleshov-group/bd3lm-owt-block_size4/resolve/main/config.json"
        );
        let url = ModelSource::parse("https://example.org/m/model.safetensors").unwrap();
        assert_eq!(url, ModelSource::Url("https://example.org/m/".into()));
        assert_eq!(
            ModelSource::parse("./models/tiny")
                .unwrap()
                .file_url("tokenizer.json")
                .unwrap(),
            "./models/tiny/tokenizer.json"
        );
        assert_eq!(ModelSource::Files("x".into()).file_url("config.json"), None);
    }

    #[test]
    fn bad_sources_say_what_is_expected() {
        for bad in [
            "just words",
            "a/b/c d",
            "../",
            "owner/../x",
            "javascript:alert(1)",
        ] {
            let parsed = ModelSource::parse(bad);
            if bad == "../" {
                // A relative folder is allowed.
                assert!(parsed.is_ok());
                continue;
            }
            let err = parsed.unwrap_err();
            assert!(
                err.contains("repo id") || err.contains("spaces"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_published_bd3lm_folder_runs_block_causal_and_a_link_may_say_otherwise() {
        use crate::bundle::TextConfig;
        use crate::config::Attention;
        let preset = |name: &str| {
            let json = crate::model::presets::Preset::find(name).unwrap().config;
            let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
            // As dllm publishes it: no block size in config.json.
            v.as_object_mut().unwrap().remove("block_size");
            TextConfig::from_json(v.to_string().as_bytes()).unwrap()
        };
        let bd3lm = preset("a2d-qwen3-0.6b-bd3lm");
        let block = Attention::BlockCausal {
            block_size: DLLM_BD3LM_BLOCK_SIZE,
        };
        let (a, note) =
            page_attention("dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1", &bd3lm, None).unwrap();
        assert_eq!(a, block);
        assert!(note.unwrap().contains("no block_size"));
        // The MDLM sibling, and any name without bd3lm, keep their bidirectional attention.
        let (a, note) =
            page_attention("dllm-hub/Qwen3-0.6B-diffusion-mdlm-v0.1", &bd3lm, None).unwrap();
        assert_eq!((a, note), (Attention::Bidirectional, None));
        // The link wins, either way, and says so.
        let (a, note) = page_attention(
            "dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1",
            &bd3lm,
            Some(Attention::Bidirectional),
        )
        .unwrap();
        assert_eq!((a, note), (Attention::Bidirectional, None));
        let (a, note) = page_attention("https://x/m/", &bd3lm, Some(block)).unwrap();
        assert_eq!(a, block);
        assert!(note.unwrap().contains("as the link asks"));
        let too_long = Attention::BlockCausal {
            block_size: 1 << 20,
        };
        assert!(
            page_attention("m", &bd3lm, Some(too_long))
                .unwrap_err()
                .contains("context")
        );
        // A DiT keeps its own.
        let dit = TextConfig::from_json(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tiny/config.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let own = dit.attention();
        assert_eq!(page_attention("bd3lm", &dit, None).unwrap(), (own, None));
        assert!(
            page_attention("m", &dit, Some(block))
                .unwrap_err()
                .contains("DiT")
        );
    }
}
