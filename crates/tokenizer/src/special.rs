//! Cutting special tokens out of the input before tokenizing the text between them, as
//! llama.cpp's `tokenizer_st_partition`: for each special token, longest text first, every
//! occurrence in every remaining text fragment becomes that token.

use crate::vocab::{Vocab, attr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// C's `isspace` in the "C" locale, which llama.cpp uses to strip around special tokens.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Splits `text` into text fragments and special token ids. Control and unknown tokens are only
/// recognised when `parse_special` is true; user-defined tokens always are.
pub(crate) fn partition<'a>(vocab: &Vocab, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
    let mut fragments = if text.is_empty() { Vec::new() } else { vec![Fragment::Text(text)] };
    for &id in &vocab.specials {
        let attrs = vocab.attrs[id as usize];
        if !parse_special && attrs & (attr::CONTROL | attr::UNKNOWN) != 0 {
            continue;
        }
        let needle = vocab.texts[id as usize].as_str();
        let mut next = Vec::with_capacity(fragments.len());
        for fragment in fragments {
            let Fragment::Text(mut rest) = fragment else {
                next.push(fragment);
                continue;
            };
            while let Some(at) = rest.find(needle) {
                let mut left = &rest[..at];
                if attrs & attr::LSTRIP != 0 {
                    left = left.trim_end_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
                if !left.is_empty() {
                    next.push(Fragment::Text(left));
                }
                next.push(Fragment::Token(id));
                rest = &rest[at + needle.len()..];
                if attrs & attr::RSTRIP != 0 {
                    rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        fragments = next;
    }
    fragments
}
