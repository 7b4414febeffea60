//! A byte-level BPE tokenizer (GPT-2's scheme) trained on the training split.
//!
//! Built with Hugging Face `tokenizers`: the ByteLevel pre-tokenizer (GPT-2's split regex, no
//! prefix space) maps every byte to a printable character, so any text encodes without an
//! unknown token; BPE merges are learned up to the vocabulary size; the ByteLevel decoder maps
//! back. There is no post-processor: the engine adds `<bos>` itself. The special tokens are added
//! first, so their ids are fixed: `<pad>` 0, `<bos>` 1, `<eos>` 2, `[MASK]` 3
//! ([`crate::text::MASK_MARKER`], which the samplers look up by name).
//!
//! The trainer breaks ties between equally frequent pairs by their ids and serialization orders
//! the vocabulary by id and the merges by rank, so the same documents give the same
//! `tokenizer.json`, byte for byte.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder, TokenizerImpl};
use tokenizers::{normalizers::NormalizerWrapper, processors::PostProcessorWrapper};

use super::CorpusError;
use crate::text::MASK_MARKER;

/// Padding, id 0.
pub const PAD_TOKEN: &str = "<pad>";
/// Beginning of sequence, id 1.
pub const BOS_TOKEN: &str = "<bos>";
/// End of sequence, id 2.
pub const EOS_TOKEN: &str = "<eos>";
/// The special tokens in id order; the mask ([`MASK_MARKER`]) is id 3.
pub const SPECIAL_TOKENS: [&str; 4] = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, MASK_MARKER];

/// GPT-2's pre-tokenization: no space added before the text, the split regex on.
const ADD_PREFIX_SPACE: bool = false;
/// Offsets are not used; GPT-2's default.
const TRIM_OFFSETS: bool = true;
/// Split words with GPT-2's regex before mapping bytes.
const USE_REGEX: bool = true;

type BpeTokenizer =
    TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, PostProcessorWrapper, ByteLevelDecoder>;

/// Trains the tokenizer on `documents`; returns its `tokenizer.json` (pretty-printed).
pub fn train(documents: &[String], vocab_size: usize) -> Result<String, CorpusError> {
    let failed = |e: tokenizers::Error| CorpusError::Tokenizer(e.to_string());
    let mut tokenizer: BpeTokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(
            ADD_PREFIX_SPACE,
            TRIM_OFFSETS,
            USE_REGEX,
        )))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevelDecoder::new(
            ADD_PREFIX_SPACE,
            TRIM_OFFSETS,
            USE_REGEX,
        )))
        .build()
        .map_err(failed)?;
    let mut trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .build();
    tokenizer
        .train(&mut trainer, documents.iter())
        .map_err(failed)?;
    let learned = tokenizer.get_vocab_size(true);
    if learned != vocab_size {
        return Err(CorpusError::Tokenizer(format!(
            "learned {learned} tokens, not {vocab_size}: the training text is too small for the vocabulary"
        )));
    }
    tokenizer.to_string(true).map_err(failed)
}

/// Loads a `tokenizer.json` written by [`train`].
pub fn load(json: &str) -> Result<Tokenizer, CorpusError> {
    json.parse()
        .map_err(|e: tokenizers::Error| CorpusError::Tokenizer(e.to_string()))
}

/// Tokens in the documents (no BOS or EOS).
pub fn count_tokens(tokenizer: &Tokenizer, documents: &[String]) -> Result<usize, CorpusError> {
    let encodings = tokenizer
        .encode_batch(documents.iter().map(String::as_str).collect(), false)
        .map_err(|e| CorpusError::Tokenizer(e.to_string()))?;
    Ok(encodings.iter().map(|e| e.get_ids().len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::text::TextCodec;

    /// Enough text for a few hundred merges.
    fn documents() -> Vec<String> {
        let words = [
            "the",
            "man",
            "woman",
            "said",
            "Elizabeth",
            "“Yes,”",
            "Darcy",
            "house",
            "Yahweh",
            "of",
            "and",
            "to",
            "£20,000",
            "naïve",
            "—",
            "walked",
            "into",
            "garden",
            "morning",
        ];
        (0..200)
            .map(|i| {
                (0..40)
                    .map(|j| words[(i * 7 + j * j * 3 + j) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    const SMALL_VOCAB: usize = 300;

    #[test]
    fn trains_a_deterministic_tokenizer_that_the_codec_reads() {
        let docs = documents();
        let json = train(&docs, SMALL_VOCAB).unwrap();
        assert_eq!(
            json,
            train(&docs, SMALL_VOCAB).unwrap(),
            "training is not deterministic"
        );

        let config: ModelConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": SMALL_VOCAB, "model_length": 64, "hidden_dim": 8, "cond_dim": 8,
            "n_blocks": 1, "n_heads": 1
        }))
        .unwrap();
        let codec = TextCodec::from_bytes(json.as_bytes(), &config).unwrap();
        assert_eq!(codec.vocab_size(), SMALL_VOCAB);
        assert_eq!(codec.mask_id(), 3);
        assert_eq!(codec.bos_id(), Some(1));
        assert_eq!(codec.eos_id(), Some(2));
        let sentence = "“Yes,” said Mr. Darcy — naïve, £20,000 & 42 unseen wörds.";
        let ids = codec.encode_prompt(sentence).unwrap();
        assert_eq!(ids[0], 1);
        assert_eq!(codec.decode(&ids), sentence);
        let masked = codec.encode_prompt("the [MASK] walked").unwrap();
        assert!(masked.contains(&3));
    }

    #[test]
    fn refuses_a_vocabulary_the_text_cannot_fill() {
        let error = train(&["ab ab".to_owned()], 1000).unwrap_err();
        assert!(error.to_string().contains("too small"), "{error}");
    }
}
