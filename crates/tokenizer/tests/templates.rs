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
