//! Incremental decoding for streamed generation.

use crate::Tokenizer;
use crate::error::Result;

/// Turns generated ids into text one id at a time. A token can end in the middle of a UTF-8
/// sequence (byte tokens, byte-level BPE pieces of an emoji), so incomplete bytes are held back
/// until the sequence completes; bytes that can never form valid UTF-8 become U+FFFD, as in
/// [`Tokenizer::decode`]. The concatenation of everything [`push`](Self::push) and
/// [`finish`](Self::finish) return equals `decode` of all the ids.
///
/// It holds no reference to the tokenizer, so it can live beside it in a long-lived session.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    skip_special: bool,
    started: bool,
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// `skip_special` as in [`Tokenizer::decode`].
    pub fn new(skip_special: bool) -> Self {
        Self { skip_special, started: false, pending: Vec::new() }
    }

    /// Adds one id; returns the text it completed (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        let first = !self.started;
        self.pending.extend_from_slice(tokenizer.piece(id, self.skip_special, first)?);
        self.started = true;
        Ok(self.take_complete())
    }

    /// Ends the stream: bytes still waiting for the rest of a UTF-8 sequence become U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Whether bytes are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Returns the longest decodable prefix of the pending bytes and keeps an incomplete tail.
    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(text) => {
                    out.push_str(text);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = consumed + e.valid_up_to();
                    // The prefix up to `valid_up_to` is valid UTF-8 by definition.
                    out.push_str(&String::from_utf8_lossy(&self.pending[consumed..valid]));
                    match e.error_len() {
                        // An invalid sequence: replaced now, as the whole-text decode would.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed = valid + bad;
                        }
                        // A sequence cut off at the end: wait for more bytes.
                        None => {
                            consumed = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }
}
