//! Chat templates and the prompt boundary. Any template source renders or fails (within the
//! fuel and output caps: no hang, no runaway output); known templates get any messages, and
//! then the prompt's control tokens must not depend on the messages' contents (only the
//! template writes them), and for templates that write contents verbatim or trimmed, the ids
//! must spell the rendered text exactly.
#![no_main]

use std::sync::OnceLock;

use gguf::{Array, Gguf, GgufWriter, Value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokenizer::{CHATML_TEMPLATE, ChatMessage, ChatTemplate, Tokenizer};

const LLAMA2: &str = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n<</SYS>>\n\n{% elif m['role'] == 'user' %}[INST] {{ m['content'] | trim }} [/INST]{% else %} {{ m['content'].strip() }} {{ eos_token }}{% endif %}{% endfor %}";
/// Transforms contents: the placeholder fallback.
const REPLACE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | replace('o', '0') }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

#[derive(Arbitrary, Debug)]
struct Input {
    template: u8,
    source: String,
    messages: Vec<(u8, String)>,
    add_generation_prompt: bool,
}

/// A byte-level BPE vocabulary with ChatML's and Llama 2's control tokens and a user-defined
/// token: every text encodes, and decoding gives the text back.
fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut next = 256;
        let mut tokens: Vec<String> = (0..256u32)
            .map(|b| {
                let c = if printable(b) {
                    b
                } else {
                    next += 1;
                    next - 1
                };
                char::from_u32(c).map(String::from).unwrap_or_default()
            })
            .collect();
        let specials = ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<tool>"];
        tokens.extend(["Ġt", "he", "Ġthe", "ĊĊ"].map(String::from));
        tokens.extend(specials.map(String::from));
        let mut types = vec![1i32; tokens.len()];
        let n = types.len();
        types[n - 5..n - 1].fill(3);
        types[n - 1] = 4;
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", Value::String("llama".into()))
            .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
            .metadata("tokenizer.ggml.pre", Value::String("llama-bpe".into()))
            .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
            .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(types)))
            .metadata("tokenizer.ggml.merges", Value::Array(Array::String(["Ġ t", "h e", "Ġt he", "Ċ Ċ"].map(String::from).to_vec())))
            .metadata("tokenizer.ggml.bos_token_id", Value::U32(n as u32 - 3))
            .metadata("tokenizer.ggml.eos_token_id", Value::U32(n as u32 - 2))
            .metadata("tokenizer.ggml.add_bos_token", Value::Bool(false));
        Tokenizer::from_gguf(&Gguf::parse(&w.to_bytes()).expect("valid GGUF")).expect("a valid vocabulary")
    })
}

fuzz_target!(|input: Input| {
    let tok = tokenizer();
    let role = |r: u8| ["system", "user", "assistant", "tool"][usize::from(r % 4)];
    let messages: Vec<ChatMessage> =
        input.messages.iter().take(32).map(|(r, content)| ChatMessage::new(role(*r), content.as_str())).collect();
    let (source, exact) = match input.template % 4 {
        0 => (input.source.as_str(), None),
        1 => (CHATML_TEMPLATE, Some(true)),
        2 => (LLAMA2, Some(true)),
        _ => (REPLACE, Some(false)),
    };
    let Ok(template) = ChatTemplate::new(source, "<s>", "</s>") else { return };
    let rendered = template.render(&messages, input.add_generation_prompt);
    let ids = tok.encode_chat(&template, &messages, input.add_generation_prompt);
    let Some(exact) = exact else { return };
    let (Ok(rendered), Ok(ids)) = (rendered, ids) else { panic!("a known template renders any messages") };
    let controls = |ids: &[u32]| -> Vec<u32> { ids.iter().copied().filter(|&id| tok.is_control(id)).collect() };
    let plain: Vec<ChatMessage> = messages.iter().map(|m| ChatMessage::new(m.role.as_str(), "x")).collect();
    let plain_ids = tok.encode_chat(&template, &plain, input.add_generation_prompt).expect("plain messages encode");
    assert_eq!(controls(&ids), controls(&plain_ids), "control tokens came from a message");
    if exact {
        assert_eq!(tok.decode(&ids, false).expect("valid ids"), rendered);
    }
});
