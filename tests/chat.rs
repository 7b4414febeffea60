//! Chat: the conversation through the model's own template, the authors' chat samplers, replies
//! cut at the end of the turn, and `unmask chat` end to end on the dllm fixtures.

mod common;

use std::path::PathBuf;

use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, TextConfig};
use unmask::chat::{
    ChatTemplate, Conversation, Message, Role, chat_settings, end_of_turn_ids, reply_text,
};
use unmask::sampler::{Bd3Order, Remasking, Settings};

use common::{DLLM_FOLDERS as FOLDERS, unmask};

fn dir(name: &str) -> PathBuf {
    common::dllm_dir(name)
}

fn template(name: &str) -> ChatTemplate {
    let bytes = std::fs::read(dir(name).join("tokenizer_config.json")).unwrap();
    ChatTemplate::from_tokenizer_config(&bytes, None, None).unwrap()
}

fn open(name: &str) -> Bundle {
    Bundle::from_dir(&dir(name), &backend::init(BackendKind::Cpu).unwrap()).unwrap()
}

#[test]
fn the_fixtures_templates_render_chatml_and_tokenize_without_a_bos() {
    let mut conversation = Conversation::new(Some("be kind"));
    conversation.push(Role::User, "the cat sat");
    let want = "<|im_start|>system\nbe kind<|im_end|>\n<|im_start|>user\nthe cat sat<|im_end|>\n<|im_start|>assistant\n";
    for name in FOLDERS {
        let t = template(name);
        assert_eq!(
            t.render(conversation.messages(), true).unwrap(),
            want,
            "{name}"
        );
        let bundle = open(name);
        let (text, ids) = conversation.prompt(&t, &bundle.codec).unwrap();
        assert_eq!(text, want, "{name}");
        // tokenizer_config.json says `bos_token: null`: nothing before <|im_start|> (45), though
        // the tokenizer's <|endoftext|> (44) would pass for a BOS by its name.
        assert_eq!(ids[0], 45, "{name}: {ids:?}");
        assert_eq!(bundle.codec.bos_id(), None, "{name}");
        // Its eos_token, <|im_end|>, is where block diffusion stops.
        assert_eq!(bundle.codec.eos_id(), Some(46), "{name}");
        assert_eq!(ids.iter().filter(|&&t| t == 46).count(), 2, "{name}");
    }
}

/// A template in the style of Qwen3's (written for this test): a namespace updated in a reversed
/// loop, slicing, `is string`, Python's string methods, `tojson`, `is defined` and whitespace
/// control, rendered as transformers renders it.
const QWEN3_STYLE: &str = r#"{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if message.role == "user" and message.content is string and not message.content.startswith('<tool_response>') %}
        {%- set ns.last_query_index = index %}
        {%- break %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- if '</think>' in content %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>assistant\n<think>\n</think>\n\n' + content.strip() }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + content.strip() }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"#;

#[test]
fn a_qwen3_style_template_renders_as_transformers_would() {
    let config = serde_json::json!({"chat_template": QWEN3_STYLE, "eos_token": "<|im_end|>"});
    let t = ChatTemplate::from_tokenizer_config(config.to_string().as_bytes(), None, None).unwrap();
    let messages = [
        Message::new(Role::System, "sys"),
        Message::new(Role::User, "hi"),
        Message::new(Role::Assistant, "<think>\nhmm\n</think>\n\n  hello  "),
        Message::new(Role::User, "and?"),
    ];
    let got = t.render(&messages, true).unwrap();
    let want = "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nand?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(got, want);
}

#[test]
fn a_reply_ends_at_the_first_end_of_turn_token() {
    let bundle = open("a2d-qwen3");
    let codec = &bundle.codec;
    let stops = end_of_turn_ids(codec);
    // <|endoftext|> 44 and <|im_end|> 46 end a turn; <|im_start|> 45 does not.
    assert_eq!(stops, vec![44, 46]);
    let id = |w: &str| codec.token_id(w).unwrap();
    let generated = [id("the"), id("cat"), id("sat"), 46, id("dog"), 44];
    assert_eq!(reply_text(codec, &generated, &stops), "the cat sat");
    assert_eq!(reply_text(codec, &generated[..2], &stops), "the cat");
    assert_eq!(reply_text(codec, &[44, id("dog")], &stops), "");
}

#[test]
fn each_architecture_chats_with_its_authors_sampler() {
    let settings = |name: &str| match open(name).config {
        TextConfig::Transformer(c) => chat_settings(&c, c.attention()),
        TextConfig::Dit(_) => panic!("{name} read as a DiT"),
    };
    for name in ["llada", "a2d-qwen3", "a2d-qwen2"] {
        let Settings::Llada(s) = settings(name) else {
            panic!("{name}: not LLaDA's sampler")
        };
        assert_eq!(
            (
                s.gen_length,
                s.steps,
                s.block_length,
                s.remasking,
                s.draw.temperature
            ),
            (128, 128, Some(32), Remasking::LowConfidence, 0.0),
            "{name}"
        );
    }
    let Settings::Llada(dream) = settings("dream") else {
        panic!("dream: not LLaDA's sampler")
    };
    assert_eq!(
        (
            dream.block_length,
            dream.remasking,
            dream.draw.temperature,
            dream.draw.top_p
        ),
        (None, Remasking::Entropy, 0.2, Some(0.95))
    );
    let Settings::Bd3(bd3) = settings("a2d-qwen3-bd3lm") else {
        panic!("a2d-qwen3-bd3lm: not BD3-LM's sampler")
    };
    assert!(bd3.use_cache && bd3.stop_at_eos && bd3.block_length.is_none());
    assert!(matches!(
        bd3.order,
        Bd3Order::Ranked {
            steps: 128,
            remasking: Remasking::LowConfidence,
            threshold: None
        }
    ));
}

#[test]
fn unmask_chat_carries_the_conversation_across_turns() {
    for name in FOLDERS {
        let model = dir(name);
        let out = unmask(&[
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--system",
            "be kind",
            "--message",
            "the cat sat",
            "--message",
            "where is the dog ?",
            "--gen-length",
            "8",
            "--show-prompt",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        let replies: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(replies.len(), 2, "{name}: {replies:?}");
        // The second turn's prompt holds the first exchange, the model's reply included.
        let second = err.rsplit("<|im_start|>system").next().unwrap_or_default();
        assert!(
            second.contains("the cat sat<|im_end|>")
                && second.contains(&format!("<|im_start|>assistant\n{}<|im_end|>", replies[0]))
                && second.contains("where is the dog ?<|im_end|>"),
            "{name}: {err}"
        );
    }
}

#[test]
fn unmask_chat_refuses_models_without_a_chat_format() {
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    let out = unmask(&["chat", "--model", tiny.to_str().unwrap(), "--message", "hi"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no chat template"), "{err}");
    // The mask token typed into a message would be taken for a blank to fill.
    let model = dir("a2d-qwen3");
    let out = unmask(&[
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--message",
        "the <|mask|> sat",
        "--gen-length",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mask token (<|mask|>)"), "{err}");
}

#[test]
fn a_bd3lm_folder_without_a_block_size_chats_block_causal_with_the_block_given() {
    // dllm's published -bd3lm folders keep the block in the sampler, as this fixture does.
    let model = dir("a2d-qwen3");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--message",
            "the cat sat",
            "--gen-length",
            "8",
            "--attention",
            "block-causal",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        unmask(&args)
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --block-length"));
    let out = run(&["--block-length", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // The same prompt through BD3-LM's sampler in the model's own attention is what ran.
    let config = match open("a2d-qwen3").config {
        TextConfig::Transformer(c) => c,
        TextConfig::Dit(_) => panic!("read as a DiT"),
    };
    let block = unmask::config::Attention::BlockCausal { block_size: 4 };
    assert!(matches!(chat_settings(&config, block), Settings::Bd3(_)));
}
