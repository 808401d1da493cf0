//! The bytes each token stands for, as llama.cpp's `token_to_piece`, and the rule for joining
//! them shared by [`crate::Tokenizer::decode`] and [`crate::StreamDecoder`].

use crate::bpe::byte_level_decoder;
use crate::vocab::{ModelKind, Vocab, attr};

/// Each token's bytes when special tokens are rendered. Byte tokens and byte-level BPE pieces
/// can be parts of a UTF-8 sequence, hence bytes rather than strings.
pub(crate) fn token_pieces(vocab: &Vocab) -> Vec<Vec<u8>> {
    let byte_of_char = byte_level_decoder();
    vocab
        .texts
        .iter()
        .zip(&vocab.attrs)
        .map(|(text, &attrs)| {
            if attrs & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                text.as_bytes().to_vec()
            } else if attrs & attr::NORMAL != 0 {
                match vocab.kind {
                    ModelKind::Spm => text.replace('▁', " ").into_bytes(),
                    ModelKind::Bpe => byte_level_bytes(text, &byte_of_char),
                }
            } else if attrs & attr::BYTE != 0 {
                byte_token_value(text).map(|b| vec![b]).unwrap_or_default()
            } else {
                // Unused and undefined tokens print nothing.
                Vec::new()
            }
        })
        .collect()
}

/// Undoes GPT-2's byte-to-character mapping. A character outside the mapping is spelled the
/// way llama.cpp's `llama_decode_text` spells it.
fn byte_level_bytes(text: &str, byte_of_char: &std::collections::HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_of_char.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// The byte of a `<0xXX>` token.
fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// Whether the piece is hidden: control and unknown tokens when special tokens are skipped.
pub(crate) fn is_hidden(vocab: &Vocab, id: u32, skip_special: bool) -> bool {
    skip_special && vocab.attrs[id as usize] & (attr::UNKNOWN | attr::CONTROL) != 0
}

/// llama.cpp's detokenizer drops the space that SentencePiece put before the first word, unless
/// the sequence starts with a BOS token (whose removal, when skipping special tokens, keeps
/// the space too).
pub(crate) fn strip_leading_space(piece: &[u8], vocab: &Vocab, id: u32, skip_special: bool) -> bool {
    if !vocab.add_space_prefix {
        return false;
    }
    let first_is_removed_bos = skip_special && vocab.add_bos && Some(id) == vocab.bos;
    !first_is_removed_bos && !is_hidden(vocab, id, skip_special) && piece.first() == Some(&b' ')
}
