//! Cutting special tokens out of the input before tokenizing the text between them, as
//! llama.cpp's `tokenizer_st_partition`: for each special token, longest text first, every
//! occurrence in every remaining text fragment becomes that token.

use std::ops::Range;

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
    partition_where(vocab, text, |attrs, _| parse_special || attrs & (attr::CONTROL | attr::UNKNOWN) == 0)
        .into_iter()
        .map(|(fragment, _)| fragment)
        .collect()
}

/// [`partition`] with the choice of which occurrences become tokens left to `accept`, given
/// the token's attributes and the byte range of the occurrence in `text`. Each fragment comes
/// with its byte range in `text` (for a token, the range of its text, whitespace stripped
/// around it excluded).
pub(crate) fn partition_where<'a>(
    vocab: &Vocab,
    text: &'a str,
    accept: impl Fn(u32, Range<usize>) -> bool,
) -> Vec<(Fragment<'a>, Range<usize>)> {
    let offset = |s: &str| s.as_ptr() as usize - text.as_ptr() as usize;
    let mut fragments = if text.is_empty() { Vec::new() } else { vec![(Fragment::Text(text), 0..text.len())] };
    for &id in &vocab.specials {
        let attrs = vocab.attrs[id as usize];
        let needle = vocab.texts[id as usize].as_str();
        let mut next = Vec::with_capacity(fragments.len());
        for (fragment, range) in fragments {
            let Fragment::Text(mut rest) = fragment else {
                next.push((fragment, range));
                continue;
            };
            // Where the search resumes in `rest` after an occurrence that was not accepted.
            let mut from = 0;
            while let Some(found) = rest[from..].find(needle) {
                let at = from + found;
                let start = offset(rest) + at;
                if !accept(attrs, start..start + needle.len()) {
                    // Past the occurrence's first character, so overlapping ones are still seen.
                    from = at + rest[at..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                let mut left = &rest[..at];
                if attrs & attr::LSTRIP != 0 {
                    left = left.trim_end_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
                if !left.is_empty() {
                    next.push((Fragment::Text(left), offset(left)..offset(left) + left.len()));
                }
                next.push((Fragment::Token(id), start..start + needle.len()));
                rest = &rest[at + needle.len()..];
                from = 0;
                if attrs & attr::RSTRIP != 0 {
                    rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
            }
            if !rest.is_empty() {
                next.push((Fragment::Text(rest), offset(rest)..offset(rest) + rest.len()));
            }
        }
        fragments = next;
    }
    fragments
}
