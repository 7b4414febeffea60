//! Chat with the instruction-tuned diffusion LMs: a conversation rendered through the model's own
//! `chat_template`, the sampler its authors chat with, and the reply cut where the model ends its
//! turn.
//!
//! The template is the Jinja source transformers keeps in `tokenizer_config.json`
//! (`chat_template`: one string, or a list of named ones, `"default"` first) or, in newer saves,
//! beside it as `chat_template.jinja`. It is rendered as transformers'
//! `PreTrainedTokenizerBase.apply_chat_template` renders it (`utils/chat_template_utils.py`,
//! `_compile_jinja_template`): blocks trimmed and left-stripped, loop controls on,
//! `raise_exception(message)` failing the render, the tokenizer's `bos_token` and `eos_token` in
//! scope, and Python's string methods (`.strip()`, `.startswith()`, `.split()`, …) through
//! minijinja's pycompat layer. The rendered text is tokenized as it is (its special tokens are the
//! tokenizer's added tokens; no BOS is prepended: a template that wants one writes it).
//!
//! The sampler presets are the dllm chat scripts' (`examples/{llada,a2d/mdlm,a2d/bd3lm,dream}/chat.py`
//! at ZHZisZZ/dllm @ ca17675): 128 tokens in 128 steps; LLaDA and the A2D models greedy with
//! low-confidence remasking in blocks of 32 (the block-causal A2D models in their own blocks,
//! with the KV cache); Dream at temperature 0.2, nucleus 0.95, entropy-ordered, one block.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Attention;
use crate::model::{Architecture, TransformerConfig};
use crate::sampler::{Bd3Order, Bd3Settings, Draw, LladaSettings, Remasking, Settings};
use crate::text::TextCodec;

/// The file beside `tokenizer_config.json` that newer transformers saves the template in.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// The tokenizer's own settings, chat template included.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// Tokens that end an assistant's turn in the chat formats of the supported models, besides the
/// tokenizer's own `eos_token`: ChatML's (Qwen, Dream, the A2D models), LLaMA 3's (LLaDA's
/// instruct template), and the end-of-text tokens LLaDA and Qwen pad replies with.
pub const END_OF_TURN_TOKENS: [&str; 4] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|endoftext|>",
    "<|end_of_text|>",
];

/// Tokens a chat reply holds by default (the dllm chat scripts' `max_new_tokens`).
pub const CHAT_GEN_LENGTH: usize = 128;
/// Denoising steps a reply takes by default (their `steps`: one token per step).
pub const CHAT_STEPS: usize = 128;
/// The semi-autoregressive block of LLaDA and the bidirectional A2D models (their `block_size`).
pub const CHAT_BLOCK_LENGTH: usize = 32;
/// Dream's chat temperature.
pub const DREAM_TEMPERATURE: f64 = 0.2;
/// Dream's chat nucleus.
pub const DREAM_TOP_P: f64 = 0.95;

/// What can go wrong preparing a chat prompt.
#[derive(Debug, Error)]
pub enum ChatError {
    /// `tokenizer_config.json` is not the JSON transformers writes.
    #[error("tokenizer_config.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// `chat_template` is a list of named templates without a `default`.
    #[error(
        "tokenizer_config.json has several chat templates ({}) and none named default",
        names.join(", ")
    )]
    NoDefault {
        /// Their names.
        names: Vec<String>,
    },
    /// The model was not tuned for chat, or its folder lacks the template.
    #[error(
        "this model has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); it was not tuned for chat: give it a plain prompt instead (`unmask generate`)"
    )]
    NoTemplate,
    /// The template does not parse or fails while rendering.
    #[error("the chat template cannot be rendered: {0}")]
    Render(String),
    /// The template itself refused the conversation (`raise_exception`).
    #[error("the chat template refuses this conversation: {0}")]
    Refused(String),
    /// A message holds the mask token, which the sampler would take for a blank to fill.
    #[error("the conversation holds the mask token ({token}); leave it out of the messages")]
    Mask {
        /// The mask, as the tokenizer spells it.
        token: String,
    },
    /// An empty message from the user or the system.
    #[error("message {index} is empty; say something")]
    Empty {
        /// Its position in the conversation, from 1.
        index: usize,
    },
}

/// A token named in `tokenizer_config.json`: a string, or an `AddedToken` object.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum TokenName {
    Plain(String),
    Added { content: String },
}

impl TokenName {
    fn into_string(self) -> String {
        match self {
            TokenName::Plain(s) | TokenName::Added { content: s } => s,
        }
    }
}

/// One named template of a list-valued `chat_template`.
#[derive(Clone, Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// `chat_template` as transformers writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

/// `tokenizer_config.json`'s special tokens.
#[derive(Clone, Debug, Default, Deserialize)]
struct SpecialTokensJson {
    /// `Some(None)`: the key is there and `null`.
    #[serde(default, deserialize_with = "crate::config::nullable")]
    bos_token: Option<Option<TokenName>>,
    #[serde(default, deserialize_with = "crate::config::nullable")]
    eos_token: Option<Option<TokenName>>,
}

/// `tokenizer_config.json`'s template, read only for chat: a malformed one does not stop a
/// folder from loading.
#[derive(Clone, Debug, Default, Deserialize)]
struct TemplateJson {
    #[serde(default)]
    chat_template: Option<TemplateField>,
}

/// BOS and EOS as `tokenizer_config.json` names them: `None` where it is silent (the tokenizer's
/// token names decide), `Some(None)` where it says there is none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `bos_token`.
    pub bos_token: Option<Option<String>>,
    /// `eos_token`.
    pub eos_token: Option<Option<String>>,
}

impl SpecialTokens {
    /// Reads them from `tokenizer_config.json`.
    pub fn from_tokenizer_config(bytes: &[u8]) -> Result<Self, ChatError> {
        let j: SpecialTokensJson = serde_json::from_slice(bytes)?;
        let name = |t: Option<Option<TokenName>>| t.map(|t| t.map(TokenName::into_string));
        Ok(Self {
            bos_token: name(j.bos_token),
            eos_token: name(j.eos_token),
        })
    }
}

/// Who says a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions before the conversation.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
}

/// One message of a conversation, as templates read it (`message['role']`,
/// `message['content']`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A model's chat template with the tokens it may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template of a model folder: `chat_template.jinja` when given (newer saves), else
    /// `chat_template` in `tokenizer_config.json` (a list's `"default"` entry, as transformers
    /// picks it). `bos_token` and `eos_token` come from `tokenizer_config.json`, else from the
    /// tokenizer (`codec`).
    pub fn from_tokenizer_config(
        tokenizer_config: &[u8],
        jinja: Option<&str>,
        codec: Option<&TextCodec>,
    ) -> Result<Self, ChatError> {
        let source = match jinja {
            Some(file) => file.to_owned(),
            None => match serde_json::from_slice::<TemplateJson>(tokenizer_config)?.chat_template {
                Some(TemplateField::One(s)) => s,
                Some(TemplateField::Named(list)) => {
                    let names: Vec<String> = list.iter().map(|t| t.name.clone()).collect();
                    list.into_iter()
                        .find(|t| t.name == "default")
                        .ok_or(ChatError::NoDefault { names })?
                        .template
                }
                None => return Err(ChatError::NoTemplate),
            },
        };
        let special = SpecialTokens::from_tokenizer_config(tokenizer_config)?;
        let name = |named: Option<Option<String>>, id: Option<u32>| match named {
            Some(name) => name.unwrap_or_default(),
            None => codec
                .zip(id)
                .and_then(|(c, id)| c.token_name(id))
                .unwrap_or_default(),
        };
        Ok(Self {
            source,
            bos_token: name(special.bos_token, codec.and_then(TextCodec::bos_id)),
            eos_token: name(special.eos_token, codec.and_then(TextCodec::eos_id)),
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `messages` as the model reads them, with the assistant's opening after them when
    /// `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        // An assistant may have said nothing (a reply that ended at once); a person may not.
        let silent = |m: &Message| m.role != Role::Assistant && m.content.trim().is_empty();
        if let Some(i) = messages.iter().position(silent) {
            return Err(ChatError::Empty { index: i + 1 });
        }
        let mut env = minijinja::Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatError::Render(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| ChatError::Render(e.to_string()))?;
        let context = minijinja::context! {
            messages => minijinja::value::Serde(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template.render(context).map_err(|e| match raised(&e) {
            Some(message) => ChatError::Refused(message),
            None => ChatError::Render(e.to_string()),
        })
    }
}

/// The prefix of a `raise_exception` error's detail, so that it is told from other failures.
const RAISED: &str = "raise_exception: ";

/// transformers' `raise_exception(message)`: the template refuses the conversation.
fn raise_exception(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

/// The message of a `raise_exception` call somewhere in `e`'s chain.
fn raised(e: &minijinja::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(detail) = err
            .downcast_ref::<minijinja::Error>()
            .and_then(|m| m.detail())
            .and_then(|d| d.strip_prefix(RAISED))
        {
            return Some(detail.to_owned());
        }
        current = err.source();
    }
    None
}

/// The ids that end an assistant's turn: the tokenizer's EOS and every [`END_OF_TURN_TOKENS`]
/// it has.
pub fn end_of_turn_ids(codec: &TextCodec) -> Vec<u32> {
    let mut ids: Vec<u32> = codec
        .eos_id()
        .into_iter()
        .chain(END_OF_TURN_TOKENS.iter().filter_map(|t| codec.token_id(t)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The reply in `generated` (the tokens after the prompt): everything before the first token
/// that ends the turn, decoded.
pub fn reply_text(codec: &TextCodec, generated: &[u32], end_of_turn: &[u32]) -> String {
    let end = generated
        .iter()
        .position(|t| end_of_turn.contains(t))
        .unwrap_or(generated.len());
    codec.decode(&generated[..end]).trim().to_owned()
}

/// A conversation in progress: the system prompt and the turns so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    messages: Vec<Message>,
}

impl From<Vec<Message>> for Conversation {
    /// A conversation that has gone on so far (e.g. the page's, from its link).
    fn from(messages: Vec<Message>) -> Self {
        Self { messages }
    }
}

impl Conversation {
    /// A new conversation, opened by `system` when given.
    pub fn new(system: Option<&str>) -> Self {
        Self {
            messages: system
                .map(|s| Message::new(Role::System, s))
                .into_iter()
                .collect(),
        }
    }

    /// The messages so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Adds a message.
    pub fn push(&mut self, role: Role, content: impl Into<String>) {
        self.messages.push(Message::new(role, content));
    }

    /// The prompt for the assistant's next reply: the conversation through `template` with the
    /// assistant's opening, as text and tokenized as it is.
    pub fn prompt(
        &self,
        template: &ChatTemplate,
        codec: &TextCodec,
    ) -> Result<(String, Vec<u32>), ChatError> {
        let text = template.render(&self.messages, true)?;
        let ids = codec
            .encode(&text)
            .map_err(|e| ChatError::Render(e.to_string()))?;
        if ids.contains(&codec.mask_id()) {
            return Err(ChatError::Mask {
                token: codec.decode(&[codec.mask_id()]),
            });
        }
        Ok((text, ids))
    }
}

/// The sampler the model's authors chat with (see the module's docs), for `config`'s
/// architecture run under `attention` (its own, or block-causal for a published `-bd3lm` folder
/// whose config.json has no block size).
pub fn chat_settings(config: &TransformerConfig, attention: Attention) -> Settings {
    let greedy = Draw::at(0.0);
    let block_causal = matches!(attention, Attention::BlockCausal { .. });
    match (config.architecture, block_causal) {
        (Architecture::Dream, _) => Settings::Llada(LladaSettings {
            gen_length: CHAT_GEN_LENGTH,
            steps: CHAT_STEPS,
            block_length: None,
            remasking: Remasking::Entropy,
            cfg_scale: 0.0,
            threshold: None,
            draw: Draw {
                top_p: Some(DREAM_TOP_P),
                ..Draw::at(DREAM_TEMPERATURE)
            },
        }),
        (_, true) => Settings::Bd3(Bd3Settings {
            gen_length: CHAT_GEN_LENGTH,
            block_length: None,
            order: Bd3Order::Ranked {
                steps: CHAT_STEPS,
                remasking: Remasking::LowConfidence,
                threshold: None,
            },
            use_cache: true,
            stop_at_eos: true,
            draw: greedy,
        }),
        (_, false) => Settings::Llada(LladaSettings {
            gen_length: CHAT_GEN_LENGTH,
            steps: CHAT_STEPS,
            block_length: Some(CHAT_BLOCK_LENGTH),
            remasking: Remasking::LowConfidence,
            cfg_scale: 0.0,
            threshold: None,
            draw: greedy,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        let config = serde_json::json!({
            "chat_template": source, "bos_token": "<s>", "eos_token": {"content": "</s>"}
        });
        ChatTemplate::from_tokenizer_config(config.to_string().as_bytes(), None, None).unwrap()
    }

    #[test]
    fn blocks_are_trimmed_and_stripped_as_transformers_does() {
        let t = template(
            "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}{{ eos_token }}",
        );
        let messages = [
            Message::new(Role::User, "a"),
            Message::new(Role::Assistant, "b"),
            Message::new(Role::User, "c"),
        ];
        assert_eq!(t.render(&messages, false).unwrap(), "[a]\n[c]\n</s>");
    }

    #[test]
    fn python_string_methods_and_loop_controls_work() {
        let t = template(
            "{% for m in messages %}{% if m.content.startswith('skip') %}{% continue %}{% endif %}{{ m.content.strip().upper() }}|{% endfor %}",
        );
        let messages = [
            Message::new(Role::User, "  hi "),
            Message::new(Role::User, "skip me"),
            Message::new(Role::User, "yo"),
        ];
        assert_eq!(t.render(&messages, false).unwrap(), "HI|YO|");
    }

    #[test]
    fn raise_exception_refuses_with_the_templates_words() {
        let t = template(
            "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}",
        );
        let err = t
            .render(&[Message::new(Role::Assistant, "hi")], false)
            .unwrap_err();
        assert!(
            matches!(&err, ChatError::Refused(m) if m == "Conversations must start with the user"),
            "{err}"
        );
    }

    #[test]
    fn broken_templates_and_empty_messages_are_errors() {
        let err = template("{% for m in messages %}")
            .render(&[Message::new(Role::User, "hi")], false)
            .unwrap_err();
        assert!(matches!(err, ChatError::Render(_)), "{err}");
        let err = template("{{ messages }}")
            .render(&[Message::new(Role::User, "  ")], false)
            .unwrap_err();
        assert!(matches!(err, ChatError::Empty { index: 1 }), "{err}");
        let none = ChatTemplate::from_tokenizer_config(b"{\"eos_token\": null}", None, None);
        assert!(matches!(none, Err(ChatError::NoTemplate)));
    }

    #[test]
    fn a_named_list_takes_its_default_and_the_jinja_file_wins() {
        let config = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "tools"},
            {"name": "default", "template": "plain"},
        ]})
        .to_string();
        let t = ChatTemplate::from_tokenizer_config(config.as_bytes(), None, None).unwrap();
        assert_eq!(t.source(), "plain");
        let t = ChatTemplate::from_tokenizer_config(config.as_bytes(), Some("file"), None).unwrap();
        assert_eq!(t.source(), "file");
        // Without a default, transformers refuses to guess.
        let config = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "tools"},
            {"name": "rag", "template": "docs"},
        ]})
        .to_string();
        let err = ChatTemplate::from_tokenizer_config(config.as_bytes(), None, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("(tool_use, rag) and none named default"),
            "{err}"
        );
    }

    #[test]
    fn special_tokens_tell_null_from_absent() {
        let s = SpecialTokens::from_tokenizer_config(
            br#"{"bos_token": null, "eos_token": {"content": "<|im_end|>", "special": true}}"#,
        )
        .unwrap();
        assert_eq!(s.bos_token, Some(None));
        assert_eq!(s.eos_token, Some(Some("<|im_end|>".into())));
        let s = SpecialTokens::from_tokenizer_config(b"{}").unwrap();
        assert_eq!(s, SpecialTokens::default());
    }
}
