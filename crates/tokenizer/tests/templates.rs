//! Chat template behaviour that needs no model: errors, the ChatML fallback, helper functions.

use confidant_tokenizer::{CHATML_TEMPLATE, ChatMessage, ChatTemplate, TokenizerError};
use gguf::{Array, Gguf, GgufWriter, Value};

fn conversation() -> Vec<ChatMessage> {
    vec![ChatMessage::new("system", "Be kind."), ChatMessage::new("user", "Hello")]
}

#[test]
fn raise_exception_gives_its_message() {
    let source =
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok";
    let template = ChatTemplate::new(source, "", "").unwrap();
    let err = template.render(&conversation(), true).unwrap_err();
    assert_eq!(err, TokenizerError::Template("System role not supported".into()));
    assert_eq!(template.render(&[ChatMessage::new("user", "hi")], true).unwrap(), "ok");
}

#[test]
fn syntax_errors_are_reported_when_compiling() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }", "", "").unwrap_err();
    assert!(matches!(err, TokenizerError::Template(_)), "{err}");
}

#[test]
fn missing_template_falls_back_to_chatml() {
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["<s>".into(), "</s>".into()])))
        .metadata("tokenizer.ggml.bos_token_id", Value::U32(0))
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(1));
    let template = ChatTemplate::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap();
    assert!(template.is_fallback());
    assert_eq!(template.source(), CHATML_TEMPLATE);
    assert_eq!(
        template.render(&conversation(), true).unwrap(),
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.render(&conversation(), false).unwrap(),
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
    );
}

/// A Gemma-family file without a template (Gemma 3 270M is one) gets Gemma's turn markers:
/// system text opens the next user turn, the assistant is "model", roles need not alternate.
#[test]
fn missing_gemma_template_falls_back_to_gemma_turns() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("gemma3".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["<pad>".into(), "<eos>".into(), "<bos>".into()])))
        .metadata("tokenizer.ggml.bos_token_id", Value::U32(2))
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(1));
    let template = ChatTemplate::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap();
    assert!(template.is_fallback());
    assert_eq!(template.fallback_family(), Some("gemma"));
    let chat = [
        ChatMessage::new("system", "Be kind."),
        ChatMessage::new("user", "Hello"),
        ChatMessage::new("assistant", "Hi!"),
        ChatMessage::new("system", "Stay brief."),
        ChatMessage::new("user", "Bye"),
    ];
    assert_eq!(
        template.render(&chat, true).unwrap(),
        "<bos><start_of_turn>user\nBe kind.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi!<end_of_turn>\n\
         <start_of_turn>user\nStay brief.\n\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    // A system message with no user turn after it still reaches the model.
    assert_eq!(
        template.render(&chat[..1], false).unwrap(),
        "<bos><start_of_turn>user\nBe kind.\n\n<end_of_turn>\n"
    );
    // Other architectures keep ChatML.
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("qwen2".into()))
        .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["<s>".into()])));
    assert_eq!(ChatTemplate::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap().fallback_family(), Some("chatml"));
}

#[test]
fn bos_and_eos_texts_come_from_the_file() {
    let mut w = GgufWriter::new();
    w.metadata(
        "tokenizer.chat_template",
        Value::String("{{ bos_token }}{% for m in messages %}[{{ m.content }}]{{ eos_token }}{% endfor %}".into()),
    )
    .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["<s>".into(), "</s>".into()])))
    .metadata("tokenizer.ggml.bos_token_id", Value::U32(0))
    .metadata("tokenizer.ggml.eos_token_id", Value::U32(1));
    let template = ChatTemplate::from_gguf(&Gguf::parse(&w.to_bytes()).unwrap()).unwrap();
    assert!(!template.is_fallback());
    assert_eq!(template.render(&conversation(), false).unwrap(), "<s>[Be kind.]</s>[Hello]</s>");
}

#[test]
fn strftime_now_formats_the_current_date() {
    let template = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %B %Y') }}", "", "").unwrap();
    let out = template.render(&[], false).unwrap();
    let (iso, long) = out.split_once('|').unwrap();
    assert_eq!(iso.len(), 10, "{iso}");
    assert!(iso.starts_with("20"), "{iso}");
    assert!(long.ends_with(&iso[..4]), "{long}");
}

#[test]
fn python_methods_and_filters_work() {
    let source = "{% if messages[1].content.lower().startswith('hel') %}yes{% endif %} {{ '  x '.strip() }} {{ messages | length }} \
                  {{ ' y ' | trim }} {{ messages[0] | tojson }}";
    let out = ChatTemplate::new(source, "", "").unwrap().render(&conversation(), false).unwrap();
    assert_eq!(out, r#"yes x 2 y {"role": "system", "content": "Be kind."}"#);
}

#[test]
fn endless_loops_run_out_of_fuel() {
    let started = std::time::Instant::now();
    let source = "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    assert!(matches!(template.render(&conversation(), true), Err(TokenizerError::TemplateTooExpensive(_))));
    // Recursion through a macro is stopped as well.
    let source = "{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    assert!(template.render(&conversation(), true).is_err());
    assert!(started.elapsed().as_secs() < 10, "stopped after {:?}", started.elapsed());
}

#[test]
fn rendered_output_is_capped() {
    let source = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    match template.render(&conversation(), true) {
        Err(TokenizerError::TemplateOutputTooLong(limit)) => {
            assert!(limit >= confidant_tokenizer::limits::MAX_RENDERED_OVERHEAD_BYTES)
        }
        other => panic!("{other:?}"),
    }
    // Long messages are not the template's fault: the cap grows with them.
    let long = "y".repeat(3 * confidant_tokenizer::limits::MAX_RENDERED_OVERHEAD_BYTES);
    let chatml = ChatTemplate::new(confidant_tokenizer::CHATML_TEMPLATE, "", "").unwrap();
    let rendered = chatml.render(&[ChatMessage::new("user", long.as_str())], true).unwrap();
    assert!(rendered.len() > long.len());
}

#[test]
fn oversized_template_sources_are_refused() {
    let source = format!("{{# {} #}}", "x".repeat(confidant_tokenizer::limits::MAX_TEMPLATE_BYTES));
    assert!(matches!(ChatTemplate::new(source, "", ""), Err(TokenizerError::TooLarge { .. })));
}

/// A template in the style of the larger real ones (Llama 3.1's): a namespace, loops over the
/// messages with conditions, filters and string methods.
const BUSY_TEMPLATE: &str = r#"{{ bos_token }}{% set ns = namespace(system='', count=0) %}{% for m in messages %}{% if m['role'] == 'system' %}{% set ns.system = ns.system + (m['content'] | trim) + '\n' %}{% endif %}{% endfor %}<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

{{ ns.system | trim }}<|eot_id|>{% for m in messages %}{% if m['role'] != 'system' %}{% set ns.count = ns.count + 1 %}{% if m['content'] is string and m['content'].startswith('/') %}{% set content = m['content'][1:] %}{% else %}{% set content = m['content'] %}{% endif %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>

{{ content | trim }}<|eot_id|>{% endif %}{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"#;

#[test]
fn long_real_chats_fit_the_fuel() {
    let template = ChatTemplate::new(BUSY_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    let messages: Vec<ChatMessage> = (0..20_000)
        .map(|i| ChatMessage::new(["system", "user", "assistant"][i % 3], format!("message {i} with some words")))
        .collect();
    let rendered = template.render(&messages, true).unwrap();
    assert!(rendered.contains("message 19999 with some words"));
}

/// The family templates this engine gives models without one (ChatML, Gemma's turn markers)
/// render through minijinja exactly as jinja2 renders them the way transformers does
/// (fixtures/make_template_fixture.py: the reference conversations and a role-play's shape).
#[test]
fn family_templates_match_jinja2() {
    let path = format!("{}/tests/fixtures/family_templates.json", env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let shipped = [("chatml", confidant_tokenizer::CHATML_TEMPLATE), ("gemma", confidant_tokenizer::GEMMA_TEMPLATE)];
    let templates = fixture["templates"].as_array().unwrap();
    assert_eq!(templates.len(), shipped.len());
    for ((family, source), t) in shipped.into_iter().zip(templates) {
        assert_eq!(t["family"], family);
        assert_eq!(t["source"].as_str(), Some(source), "{family}: the fixture was made from another template: run make_template_fixture.py");
        let template = ChatTemplate::new(source, t["bos_token"].as_str().unwrap(), t["eos_token"].as_str().unwrap()).unwrap();
        for case in t["cases"].as_array().unwrap() {
            let messages: Vec<ChatMessage> = case["messages"].as_array().unwrap().iter().map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
            let rendered = template.render(&messages, case["add_generation_prompt"].as_bool().unwrap()).unwrap();
            assert_eq!(rendered, case["expected"].as_str().unwrap(), "{family} {}", case["name"]);
        }
    }
}
