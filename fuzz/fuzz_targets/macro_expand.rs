//! Macro expansion (`{{char}}`, `{{user}}`, `{{original}}`, `<BOT>`, `<USER>`, any ASCII case)
//! against a plain reference implementation: the same text whenever the reference's result fits
//! the growth cap, and never more than `MAX_MACRO_GROWTH_BYTES` longer than the input.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use persona::MacroContext;
use persona::limits::MAX_MACRO_GROWTH_BYTES;

#[derive(Arbitrary, Debug)]
struct Input {
    char_name: String,
    user_name: String,
    original: String,
    text: String,
    /// Repeats `text`, so that long expansions are reached from short inputs.
    repeat: u16,
}

fn reference(text: &str, table: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        for (pattern, replacement) in table {
            if rest.len() >= pattern.len() && rest.as_bytes()[..pattern.len()].eq_ignore_ascii_case(pattern.as_bytes()) {
                out.push_str(replacement);
                rest = &rest[pattern.len()..];
                continue 'outer;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fuzz_target!(|input: Input| {
    let text = input.text.repeat(usize::from(input.repeat % 2048).max(1));
    let macros = MacroContext::new(&input.char_name, &input.user_name).with_original(&input.original);
    let out = macros.apply(&text);
    assert!(out.len() <= text.len() + MAX_MACRO_GROWTH_BYTES, "{} > {} + cap", out.len(), text.len());
    let table = [
        ("{{char}}", input.char_name.as_str()),
        ("{{user}}", input.user_name.as_str()),
        ("{{original}}", input.original.as_str()),
        ("<bot>", input.char_name.as_str()),
        ("<user>", input.user_name.as_str()),
    ];
    let expected = reference(&text, &table);
    if expected.len() <= text.len() + MAX_MACRO_GROWTH_BYTES {
        assert_eq!(out, expected);
    } else {
        // Cut short: a prefix of the full expansion, then the rest as written.
        let common = out.bytes().zip(expected.bytes()).take_while(|(a, b)| a == b).count();
        assert!(text.ends_with(&out[common..]) || common == out.len(), "the unexpanded rest is the input's tail");
    }
});
