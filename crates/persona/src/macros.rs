//! Prompt-time macros. Cards keep `{{char}}`, `{{user}}`, `{{original}}`, `<BOT>` and `<USER>`
//! as written; they are replaced (ASCII case-insensitively, so `{{Char}}` and `<bot>` work too)
//! only when text goes into a prompt or a greeting is shown, because the user's name can change
//! between chats.

use crate::limits::MAX_MACRO_GROWTH_BYTES;

/// What the macros stand for.
#[derive(Clone, Copy, Debug)]
pub struct MacroContext<'a> {
    /// `{{char}}` / `<BOT>`: the character's display name (the V3 nickname when set).
    pub char_name: &'a str,
    /// `{{user}}` / `<USER>`: the user's display name.
    pub user_name: &'a str,
    /// `{{original}}`: the text a card's `system_prompt` or `post_history_instructions`
    /// replaces. Empty everywhere else.
    pub original: &'a str,
}

impl<'a> MacroContext<'a> {
    pub fn new(char_name: &'a str, user_name: &'a str) -> Self {
        Self { char_name, user_name, original: "" }
    }

    pub fn with_original(self, original: &'a str) -> Self {
        Self { original, ..self }
    }

    /// `text` with every macro replaced. Replacement text is not scanned again, so a name that
    /// itself contains `{{user}}` stays as it is. The result is at most
    /// [`MAX_MACRO_GROWTH_BYTES`] longer than `text`: macros past that point are left as written.
    pub fn apply(&self, text: &str) -> String {
        let limit = text.len().saturating_add(MAX_MACRO_GROWTH_BYTES);
        let table: [(&str, &str); 5] = [
            ("{{char}}", self.char_name),
            ("{{user}}", self.user_name),
            ("{{original}}", self.original),
            ("<bot>", self.char_name),
            ("<user>", self.user_name),
        ];
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut copied = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if (b == b'{' || b == b'<')
                && let Some((pattern, replacement)) = table.iter().find(|(p, _)| {
                    bytes.len() - i >= p.len() && bytes[i..i + p.len()].eq_ignore_ascii_case(p.as_bytes())
                })
            {
                // What is left of `text`, plus this replacement, must fit under the limit.
                if out.len() + (i - copied) + replacement.len() + (text.len() - i - pattern.len()) > limit {
                    break;
                }
                // Patterns are ASCII, so `i` and `i + len` are char boundaries.
                out.push_str(&text[copied..i]);
                out.push_str(replacement);
                i += pattern.len();
                copied = i;
                continue;
            }
            i += 1;
        }
        out.push_str(&text[copied..]);
        out
    }
}
