//! SentencePiece BPE (`tokenizer.ggml.model = "llama"`), as llama.cpp's `llm_tokenizer_spm`:
//! start from single characters, repeatedly merge the adjacent pair whose concatenation is the
//! highest-scoring token (leftmost on ties), and spell whatever is not a token as `<0xXX>` bytes.
//!
//! Written out rather than built from `tokenizers`' BPE: ranking merges by the merged token's
//! score is exactly what llama.cpp does, with no merge list to derive and get subtly wrong.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Result, TokenizerError};
use crate::limits::MAX_TOKEN_BYTES;
use crate::vocab::Vocab;

/// A run of the input: one character at first, growing as merges absorb right neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols into the token `len` bytes long.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// The heap's top is the highest score, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

/// Appends the ids of `text`, which has already had its spaces replaced by "▁".
pub(crate) fn tokenize(vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<()> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (start, c) in text.char_indices() {
        let index = symbols.len();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: index.checked_sub(1),
            next: (start + c.len_utf8() < text.len()).then_some(index + 1),
        });
    }

    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: Option<usize>, right: Option<usize>| {
        let (Some(left), Some(right)) = (left, right) else { return };
        let (l, r) = (symbols[left], symbols[right]);
        // No token is longer than MAX_TOKEN_BYTES, which keeps each look-up short.
        if l.len + r.len > MAX_TOKEN_BYTES {
            return;
        }
        let merged = &text[l.start..l.start + l.len + r.len];
        if let Some(&id) = vocab.ids.get(merged) {
            queue.push(Bigram { left, right, score: vocab.scores[id as usize], len: merged.len() });
        }
    };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, Some(i - 1), Some(i));
    }

    while let Some(bigram) = queue.pop() {
        let (l, r) = (symbols[bigram.left], symbols[bigram.right]);
        // Skip pairs made stale by an earlier merge of either side.
        if l.len == 0 || r.len == 0 || l.len + r.len != bigram.len {
            continue;
        }
        symbols[bigram.left].len += r.len;
        symbols[bigram.left].next = r.next;
        symbols[bigram.right].len = 0;
        if let Some(next) = r.next {
            symbols[next].prev = Some(bigram.left);
        }
        try_add(&mut queue, &symbols, l.prev, Some(bigram.left));
        try_add(&mut queue, &symbols, Some(bigram.left), r.next);
    }

    // Every merged symbol is a token; a single character that is not falls back to its bytes.
    let mut at = if symbols.is_empty() { None } else { Some(0) };
    while let Some(i) = at {
        let s = symbols[i];
        let piece = &text[s.start..s.start + s.len];
        match vocab.ids.get(piece) {
            Some(&id) => out.push(id),
            None => {
                for byte in piece.bytes() {
                    out.push(byte_token(vocab, byte)?);
                }
            }
        }
        at = s.next;
    }
    Ok(())
}

/// The token for one byte: `<0xXX>`, else the byte itself as a one-character token.
fn byte_token(vocab: &Vocab, byte: u8) -> Result<u32> {
    if let Some(&id) = vocab.ids.get(&format!("<0x{byte:02X}>")) {
        return Ok(id);
    }
    let ascii = if byte.is_ascii() { Some(char::from(byte).to_string()) } else { None };
    ascii.and_then(|s| vocab.ids.get(&s).copied()).ok_or(TokenizerError::NoByteToken(byte))
}
