//! A scripted stand-in for the model (no weights): the engine's chat logic runs whole chats
//! against it.

use std::cell::RefCell;
use std::collections::HashMap;

use engine::ChatModel;
use llm::{ChatMessage, GenerateOptions, GenerationStats, PrefillProgress, Step};

/// A model that writes what the script says: a numbered summary when asked to summarize,
/// otherwise the next scripted reply, one word per token. A token is a word of the rendered
/// ChatML text (ids given as words are first seen), so budgets behave as with a real tokenizer
/// of that granularity and the prompt it was given can be read back.
pub struct ScriptedModel {
    pub words: RefCell<(HashMap<String, u32>, Vec<String>)>,
    pub context: usize,
    pub replies: Vec<String>,
    pub next_reply: usize,
    pub summaries_written: usize,
    /// Every prompt it was given, rendered.
    pub prompts: Vec<String>,
    /// Pieces left of the text being written.
    pub pending: Vec<String>,
    pub running: bool,
    pub stats: GenerationStats,
    /// As a real generator: the tokens whose keys and values the cache holds, and the prompt
    /// under way (a new prompt reuses the longest common prefix).
    pub cached: Vec<u32>,
    pub prompt: Vec<u32>,
}

impl ScriptedModel {
    pub fn new(context: usize, replies: Vec<String>) -> Self {
        Self {
            words: RefCell::default(),
            context,
            replies,
            next_reply: 0,
            summaries_written: 0,
            prompts: Vec::new(),
            pending: Vec::new(),
            running: false,
            stats: GenerationStats::default(),
            cached: Vec::new(),
            prompt: Vec::new(),
        }
    }

    fn tokens(&self, text: &str) -> Vec<u32> {
        let mut words = self.words.borrow_mut();
        let (ids, list) = &mut *words;
        text.split_whitespace()
            .map(|w| {
                *ids.entry(w.to_string()).or_insert_with(|| {
                    list.push(w.to_string());
                    list.len() as u32 - 1
                })
            })
            .collect()
    }

    fn text(&self, tokens: &[u32]) -> String {
        let words = self.words.borrow();
        tokens.iter().map(|&t| words.1[t as usize].as_str()).collect::<Vec<_>>().join(" ")
    }
}

impl ChatModel for ScriptedModel {
    fn context_length(&self) -> usize {
        self.context
    }

    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }

    fn encode_text(&self, text: &str) -> llm::Result<Vec<u32>> {
        Ok(self.tokens(text))
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> llm::Result<String> {
        let mut out = String::new();
        for m in messages {
            out.push_str(&format!("<|im_start|>{} {} <|im_end|>\n", m.role, m.content));
        }
        out.push_str("<|im_start|>assistant ");
        Ok(out)
    }

    fn encode_chat(&self, messages: &[ChatMessage]) -> llm::Result<Vec<u32>> {
        Ok(self.tokens(&self.render_chat(messages)?))
    }

    fn begin(&mut self, prompt: Vec<u32>, options: GenerateOptions) -> llm::Result<()> {
        assert!(prompt.len() < self.context, "prompt of {} tokens in a context of {}", prompt.len(), self.context);
        let rendered = self.text(&prompt);
        let text = if rendered.contains("Summarize what happened") {
            self.summaries_written += 1;
            format!("Summary {}: Sam and Mira kept talking about the garden.", self.summaries_written)
        } else if rendered.contains("how things between you have changed") {
            // The character's note on a summary.
            "I trust Sam more now. He listens.".to_string()
        } else if options.max_tokens <= 1 {
            // The engine reading a prefix back into the cache: no reply wanted.
            String::new()
        } else {
            let reply = self.replies.get(self.next_reply).cloned().unwrap_or_else(|| "Mm.".into());
            self.next_reply += 1;
            reply
        };
        self.prompts.push(rendered);
        self.pending = text.split_inclusive(' ').map(str::to_string).take(options.max_tokens).collect();
        self.pending.reverse();
        self.running = true;
        let reuse = self.cached.iter().zip(&prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
        self.cached.truncate(reuse);
        self.stats = GenerationStats { prompt_tokens: prompt.len(), prefilled_tokens: prompt.len() - reuse, ..Default::default() };
        self.prompt = prompt;
        Ok(())
    }

    fn prefill_progress(&self) -> Option<PrefillProgress> {
        None
    }

    async fn prefill(&mut self, chunk: usize) -> llm::Result<Option<PrefillProgress>> {
        let at = self.cached.len();
        if !self.running || at >= self.prompt.len() || self.prompt.len() - at <= chunk {
            return Ok(None);
        }
        self.cached.extend_from_slice(&self.prompt[at..at + chunk]);
        Ok(Some(PrefillProgress { done: self.cached.len(), total: self.prompt.len() }))
    }

    async fn step(&mut self) -> llm::Result<Option<Step>> {
        if !self.running {
            return Ok(None);
        }
        if self.cached.len() < self.prompt.len() {
            self.cached = self.prompt.clone();
        }
        match self.pending.pop() {
            Some(text) => {
                self.stats.completion_tokens += 1;
                Ok(Some(Step { token: text.len() as u32, text }))
            }
            None => {
                self.running = false;
                self.stats.finish_reason = Some(llm::FinishReason::Stop);
                Ok(None)
            }
        }
    }

    fn abort(&mut self) {
        self.running = false;
        self.pending.clear();
    }

    fn stats(&self) -> &GenerationStats {
        &self.stats
    }
}

