//! Text ↔ token ids through a Hugging Face `tokenizer.json`, and the special tokens samplers need.
//!
//! The `tokenizers` crate is built with its wasm-compatible features on every target, so the CLI
//! and the browser tokenize identically. The mask token is found, in order: `mask_token_id` in
//! config.json; a `[MASK]`, `<mask>`, `<|mask|>` (Qwen) or `<|mdm_mask|>` (LLaDA) token in the tokenizer; or, for the GPT-2-based
//! MDLM/BD3-LM checkpoints whose embedding has one row more than GPT-2's vocabulary, the last row.

use thiserror::Error;
use tokenizers::{AddedToken, Tokenizer};

use crate::config::ModelConfig;

/// What `[MASK]` looks like in a prompt, whatever the tokenizer calls its mask.
pub const MASK_MARKER: &str = "[MASK]";

const MASK_NAMES: [&str; 4] = ["[MASK]", "<mask>", "<|mask|>", "<|mdm_mask|>"];
const BOS_NAMES: [&str; 4] = ["<bos>", "<s>", "<|endoftext|>", "[CLS]"];
const EOS_NAMES: [&str; 4] = ["<eos>", "</s>", "<|endoftext|>", "[SEP]"];

/// What can be wrong with a tokenizer.
#[derive(Debug, Error)]
pub enum TextError {
    /// Not a tokenizer.json.
    #[error("tokenizer.json could not be read: {0}")]
    Parse(String),
    /// No mask token anywhere.
    #[error(
        "no mask token: the tokenizer has no [MASK] or <mask> token and config.json has no mask_token_id; add one of them"
    )]
    NoMask,
    /// Tokenizer and embedding disagree.
    #[error(
        "the tokenizer has {tokenizer} tokens but the model's embedding has {model} rows (vocab_size), or the mask id is beyond them; they are not from the same model"
    )]
    VocabMismatch {
        /// Tokens in tokenizer.json.
        tokenizer: usize,
        /// `vocab_size`.
        model: usize,
    },
    /// Encoding failed.
    #[error("the prompt could not be tokenized: {0}")]
    Encode(String),
}

/// What a tokenizer must agree with: the embedding it indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedding {
    /// Rows of the embedding (`vocab_size`).
    pub rows: usize,
    /// Whether the rows may outnumber the tokens (Qwen pads 151,669 tokens to 151,936 rows);
    /// otherwise they match, or exceed them by the one mask row of the GPT-2-based checkpoints.
    pub padded: bool,
    /// The mask id config.json names, if any.
    pub mask_token_id: Option<u32>,
}

/// A tokenizer with the model's special tokens resolved.
#[derive(Clone)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    mask_id: u32,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    /// Special tokens left out of decoded text (every special token but the mask).
    hidden: std::collections::HashSet<u32>,
}

impl std::fmt::Debug for TextCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCodec")
            .field("vocab", &self.vocab_size())
            .field("mask_id", &self.mask_id)
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

/// Reads `tokenizer.json` without letting a malformed one panic.
///
/// The `tokenizers` crate (0.23) `expect`s where it should err: its decoder reader panics on a
/// JSON syntax error inside the file, its normalizer reader on a `Precompiled` normalizer it cannot
/// read (both found by the `model_folder` fuzz target). So the bytes are parsed as JSON first —
/// the crate then reads from a value, where no syntax error can occur — and every `Precompiled`
/// section is read here before the crate tries.
fn parse_tokenizer(bytes: &[u8]) -> Result<Tokenizer, TextError> {
    let parse = |e: &dyn std::fmt::Display| TextError::Parse(e.to_string());
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| parse(&e))?;
    check_precompiled(&value).map_err(|e| parse(&e))?;
    serde_json::from_value(value).map_err(|e| parse(&e))
}

/// Reads every object of `value` tagged `"type": "Precompiled"` as that normalizer.
fn check_precompiled(value: &serde_json::Value) -> Result<(), serde_json::Error> {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("Precompiled") {
                serde_json::from_value::<tokenizers::normalizers::Precompiled>(value.clone())?;
            }
            map.values().try_for_each(check_precompiled)
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(check_precompiled),
        _ => Ok(()),
    }
}

impl TextCodec {
    /// The number of tokens `tokenizer.json` defines (added tokens included): the vocabulary of a
    /// model trained on it.
    pub fn vocab_size_of(bytes: &[u8]) -> Result<usize, TextError> {
        let tokenizer = parse_tokenizer(bytes)?;
        Ok(tokenizer.get_vocab_size(true))
    }

    /// Reads `tokenizer.json` and checks it against a DiT's config.
    pub fn from_bytes(bytes: &[u8], config: &ModelConfig) -> Result<Self, TextError> {
        Self::for_embedding(
            bytes,
            Embedding {
                rows: config.vocab_size,
                padded: false,
                mask_token_id: config.mask_token_id,
            },
        )
    }

    /// Reads `tokenizer.json` and checks it against the embedding it indexes.
    pub fn for_embedding(bytes: &[u8], embedding: Embedding) -> Result<Self, TextError> {
        let mut tokenizer = parse_tokenizer(bytes)?;
        let size = tokenizer.get_vocab_size(true);
        let named = MASK_NAMES.iter().find_map(|n| tokenizer.token_to_id(n));
        let implied = (named.is_none() && !embedding.padded && size + 1 == embedding.rows)
            .then_some(size as u32);
        let mask_id = embedding
            .mask_token_id
            .or(named)
            .or(implied)
            .ok_or(TextError::NoMask)?;
        if implied == Some(mask_id) {
            // GPT-2-based checkpoints: the mask is the embedding's extra last row. Name it, so that
            // decoding shows it like any other token.
            tokenizer
                .add_special_tokens([AddedToken::from(MASK_MARKER, true)])
                .map_err(|e| TextError::Parse(e.to_string()))?;
        }
        let size = tokenizer.get_vocab_size(true);
        let fits = if embedding.padded {
            size <= embedding.rows
        } else {
            size == embedding.rows
        };
        if !fits || mask_id as usize >= embedding.rows {
            return Err(TextError::VocabMismatch {
                tokenizer: size,
                model: embedding.rows,
            });
        }
        let find = |names: &[&str]| names.iter().find_map(|n| tokenizer.token_to_id(n));
        let hidden = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(id, t)| t.special && *id != mask_id)
            .map(|(id, _)| id)
            .collect();
        Ok(Self {
            bos_id: find(&BOS_NAMES),
            eos_id: find(&EOS_NAMES),
            mask_id,
            hidden,
            tokenizer,
        })
    }

    /// Takes BOS and EOS from `tokenizer_config.json` where it names them, so that prompts start,
    /// and runs stop, as transformers' tokenizer has them. A `null` BOS means none (Qwen's
    /// tokenizers have no BOS, though their `<|endoftext|>` looks like one); a `null` EOS, or a
    /// name the tokenizer does not have, keeps the one found by name.
    pub fn with_special_tokens(mut self, special: &crate::chat::SpecialTokens) -> Self {
        let named = |token: &Option<Option<String>>| {
            token
                .as_ref()
                .and_then(Option::as_deref)
                .and_then(|name| self.tokenizer.token_to_id(name))
        };
        let (bos, eos) = (named(&special.bos_token), named(&special.eos_token));
        if special.bos_token == Some(None) {
            self.bos_id = None;
        }
        self.bos_id = bos.or(self.bos_id);
        self.eos_id = eos.or(self.eos_id);
        self
    }

    /// How the tokenizer spells token `id` (special tokens included), if it has it.
    pub fn token_name(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The id of the token spelled `token` (added tokens included), if there is one.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The mask token id.
    pub fn mask_id(&self) -> u32 {
        self.mask_id
    }

    /// Beginning of sequence, prepended to prompts, if the tokenizer has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// End of sequence, if the tokenizer has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Tokens in the tokenizer (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Encodes plain text as it is: no BOS, and `[MASK]` is text like any other (training data).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes a prompt: BOS (when the tokenizer has one), then the text, with every literal
    /// `[MASK]` becoming the mask id, to be filled in place.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let mut ids: Vec<u32> = self.bos_id.into_iter().collect();
        ids.extend(self.encode_with_masks(text)?);
        Ok(ids)
    }

    /// Encodes text with every literal `[MASK]` as the mask id and no BOS: a prompt for a model
    /// trained on windows of plain text (Diffusion-LM). A space just before a `[MASK]` is left to
    /// the token that fills it, as byte-level BPE spells a word with its leading space
    /// (`"It was [MASK] day"` is `It`, ` was`, mask, ` day`, not a lone ` ` before the mask).
    pub fn encode_with_masks(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let pieces: Vec<&str> = text.split(MASK_MARKER).collect();
        let mut ids = Vec::new();
        for (i, &piece) in pieces.iter().enumerate() {
            if i > 0 {
                ids.push(self.mask_id);
            }
            let before_mask = i + 1 < pieces.len();
            let piece = match piece.strip_suffix(' ') {
                Some(trimmed) if before_mask => trimmed,
                _ => piece,
            };
            if !piece.is_empty() {
                ids.extend(self.encode(piece)?);
            }
        }
        Ok(ids)
    }

    /// Decodes ids to text, special tokens (BOS, EOS, padding) skipped and masks kept as tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        let shown: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| !self.hidden.contains(id))
            .collect();
        self.tokenizer.decode(&shown, false).unwrap_or_default()
    }

    /// The text of one token, for a canvas cell (`[MASK]` for the mask).
    pub fn token_text(&self, id: u32) -> String {
        if id == self.mask_id {
            return MASK_MARKER.to_owned();
        }
        self.tokenizer
            .decode(&[id], false)
            .unwrap_or_else(|_| format!("<{id}>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = include_str!("../tests/fixtures/tiny/tokenizer.json");

    #[test]
    fn tokenizer_files_that_panic_the_tokenizers_crate_are_errors_here() {
        assert!(parse_tokenizer(TINY.as_bytes()).is_ok());
        // A syntax error inside the decoder: the crate's decoder reader `expect`s on it.
        let broken = TINY.replace("\"decoder\": null", "\"decoder\": {\"type\": nul}");
        assert!(matches!(
            parse_tokenizer(broken.as_bytes()),
            Err(TextError::Parse(_))
        ));
        // A Precompiled normalizer it cannot read: its normalizer reader `expect`s on that.
        let mut value: serde_json::Value = serde_json::from_str(TINY).unwrap();
        value["normalizer"] = serde_json::json!({"type": "Precompiled", "precompiled_charsmap": 5});
        let bad = value.to_string();
        assert!(matches!(
            parse_tokenizer(bad.as_bytes()),
            Err(TextError::Parse(_))
        ));
        // Nested in a sequence too.
        value["normalizer"] = serde_json::json!({"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": "not base64"}]});
        let bad = value.to_string();
        assert!(matches!(
            parse_tokenizer(bad.as_bytes()),
            Err(TextError::Parse(_))
        ));
    }
}
