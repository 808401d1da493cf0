//! What the engine needs from a language model, as a small trait: the real [`llm::Generator`]
//! implements it, and engine tests run whole chats against a scripted fake with no weights.

use llm::{ChatMessage, GenerateOptions, GenerationStats, Generator, PrefillProgress, Result, Step};

/// A model that renders a chat, reads a prompt and writes a reply one token at a time.
#[allow(async_fn_in_trait)] // the engine is single-threaded (a Web Worker): no Send bound wanted
pub trait ChatModel {
    /// Largest prompt + reply, in tokens.
    fn context_length(&self) -> usize;
    /// Tokens of `text` as plain text (for budgets).
    fn count_tokens(&self, text: &str) -> usize;
    /// Tokens of plain text (no special tokens), e.g. the start of a reply written for the model.
    fn encode_text(&self, text: &str) -> Result<Vec<u32>>;
    /// The conversation as the model's chat template renders it, ready for the reply.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
    /// Tokens of [`Self::render_chat`]'s text, control tokens only from the template.
    fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>>;
    /// Start generating after `prompt`.
    fn begin(&mut self, prompt: Vec<u32>, options: GenerateOptions) -> Result<()>;
    /// Where reading the prompt stands; `None` once the first token is out.
    fn prefill_progress(&self) -> Option<PrefillProgress>;
    /// Read the next `chunk` prompt tokens when more than that is left.
    async fn prefill(&mut self, chunk: usize) -> Result<Option<PrefillProgress>>;
    /// The next token; `None` when the generation has finished.
    async fn step(&mut self) -> Result<Option<Step>>;
    /// Stop the generation under way.
    fn abort(&mut self);
    /// Counts and timings of the generation under way, or of the last one.
    fn stats(&self) -> &GenerationStats;
}

impl ChatModel for Generator {
    fn context_length(&self) -> usize {
        Generator::context_length(self)
    }

    fn count_tokens(&self, text: &str) -> usize {
        // A text the tokenizer refuses is still counted, roughly, rather than failing the turn.
        self.tokenizer().encode(text, false, false).map(|t| t.len()).unwrap_or(text.len().div_ceil(3))
    }

    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer().encode(text, false, false)?)
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        Ok(self.template().render(messages, true)?)
    }

    fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Generator::encode_chat(self, messages)
    }

    fn begin(&mut self, prompt: Vec<u32>, options: GenerateOptions) -> Result<()> {
        Generator::begin(self, prompt, options)
    }

    fn prefill_progress(&self) -> Option<PrefillProgress> {
        Generator::prefill_progress(self)
    }

    async fn prefill(&mut self, chunk: usize) -> Result<Option<PrefillProgress>> {
        Generator::prefill(self, chunk).await
    }

    async fn step(&mut self) -> Result<Option<Step>> {
        Generator::step(self).await
    }

    fn abort(&mut self) {
        Generator::abort(self)
    }

    fn stats(&self) -> &GenerationStats {
        Generator::stats(self)
    }
}
