//! Facts taken from chat messages into editable memory records.
//!
//! The extraction is by rule, not by the model: a 135M model asked to "list facts about the
//! user" mostly invents or repeats (research.md §7), while people state facts about themselves
//! in a few recognisable first-person shapes ("my sister is called Ana", "I work as a nurse",
//! "I'm allergic to cats"). Each such sentence becomes one record, kept in the speaker's own
//! words with their name, and dated by the record's `created_at`. Questions are skipped. The
//! user can edit or forget every record in the memory panel.

/// First-person openings that usually state something lasting about the speaker. Matched at
/// a word boundary, case-insensitively, after the sentence is normalised (’ → ').
const STATEMENT_STARTS: &[&str] = &[
    "my ",
    "i am a ",
    "i am an ",
    "i'm a ",
    "i'm an ",
    "i am from ",
    "i'm from ",
    "i am allergic",
    "i'm allergic",
    "i am afraid",
    "i'm afraid of",
    "i am married",
    "i'm married",
    "i work",
    "i live",
    "i lived",
    "i was born",
    "i grew up",
    "i have a ",
    "i have an ",
    "i have two",
    "i have three",
    "i've got a",
    "i own ",
    "i love ",
    "i like ",
    "i hate ",
    "i don't like ",
    "i can't stand ",
    "i study",
    "i moved",
    "i play ",
    "i collect ",
    "i never ",
    "i always ",
    "call me ",
];

/// Sentences of `text` that state a fact about the one who wrote it.
pub fn fact_sentences(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for sentence in split_sentences(text) {
        if sentence.ends_with('?') || sentence.chars().count() < 8 || sentence.chars().count() > 300 {
            continue;
        }
        let lower = sentence.to_lowercase().replace('’', "'");
        // "…, and my sister is called Ana" counts too: look at every clause start.
        let states_fact = clause_starts(&lower).any(|clause| STATEMENT_STARTS.iter().any(|s| clause.starts_with(s)));
        // "my" alone is too loose for questions put as statements ("my god"): want a verb.
        let has_verb = [" is ", " are ", " was ", " 's ", "'s ", " am ", " have ", " work", " live", " love", " like", " hate", " called", " named"]
            .iter()
            .any(|v| lower.contains(v))
            || !lower.starts_with("my ");
        if states_fact && has_verb && !out.contains(&sentence) {
            out.push(sentence);
        }
    }
    out
}

fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '!' | '?' | '\n') {
            let s = current.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
            current.clear();
        }
    }
    let s = current.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

/// The sentence start and every point after a comma, semicolon or " and ".
fn clause_starts(lower: &str) -> impl Iterator<Item = &str> {
    let mut starts = vec![0];
    for (i, _) in lower.match_indices([',', ';']) {
        starts.push(i + 1);
    }
    for (i, _) in lower.match_indices(" and ") {
        starts.push(i + 5);
    }
    for (i, _) in lower.match_indices(" but ") {
        starts.push(i + 5);
    }
    starts.into_iter().map(move |i| lower[i..].trim_start())
}

/// The record text for a fact: the speaker's words with their name, so a later question in
/// other words ("what is my sister called?") finds it and the model knows who said it.
pub fn fact_text(speaker: &str, sentence: &str) -> String {
    format!("{speaker} said: \"{sentence}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_person_statements_and_skips_questions() {
        let text = "Hi! My sister is called Ana. Do you like tea? I work as a nurse in Leeds, and I'm allergic to cats.";
        let facts = fact_sentences(text);
        assert_eq!(facts, vec!["My sister is called Ana.", "I work as a nurse in Leeds, and I'm allergic to cats."]);
    }

    #[test]
    fn small_talk_gives_nothing() {
        assert!(fact_sentences("Hello there. How are you today? That sounds lovely.").is_empty());
        assert!(fact_sentences("My god.").is_empty());
        assert!(fact_sentences("").is_empty());
    }

    #[test]
    fn clause_in_the_middle_counts() {
        assert_eq!(fact_sentences("Well, I live near the old harbour"), vec!["Well, I live near the old harbour"]);
    }
}
