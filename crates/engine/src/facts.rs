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

/// The sentence start and every point after a comma, semicolon, colon, " and " or " but ".
fn clause_starts(lower: &str) -> impl Iterator<Item = &str> {
    let mut starts = vec![0];
    for (i, _) in lower.match_indices([',', ';', ':']) {
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

// ---- the user's profile ----------------------------------------------------------------

/// A fact for the user's profile, found in something the user wrote: what it is about
/// (`subject`, e.g. "diet", "home city"), the fact itself (`value`, e.g. "vegetarian", "Rome")
/// and the sentence it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileStatement {
    pub subject: String,
    pub value: String,
    pub sentence: String,
}

/// Subjects with one value at a time: a new value replaces the old one (kept as history).
pub const SINGLE_VALUED_SUBJECTS: &[&str] = &["name", "age", "home city", "hometown", "job", "studies", "relationship"];

/// Diets that stand for the whole of one's eating ("vegetarian" replaces "vegan").
pub(crate) const DIET_LABELS: &[&str] = &["vegetarian", "vegan", "pescatarian", "pescetarian", "omnivore", "flexitarian"];

const PET_WORDS: &[&str] = &[
    "dog", "dogs", "cat", "cats", "puppy", "kitten", "hamster", "hamsters", "parrot", "rabbit", "rabbits", "fish", "goldfish",
    "horse", "horses", "bird", "birds", "snake", "turtle", "tortoise", "guinea pig", "ferret", "lizard", "budgie", "chickens",
];

const FAMILY_WORDS: &[&str] = &[
    "sister", "brother", "mother", "mom", "mum", "father", "dad", "wife", "husband", "partner", "son", "daughter", "boyfriend",
    "girlfriend", "grandmother", "grandma", "grandfather", "grandpa", "aunt", "uncle", "cousin", "fiance", "fiancee",
];

/// Words after "I'm a…" that make it something other than a job ("I'm a big fan of jazz").
const NOT_A_JOB: &[&str] = &[
    "bit", "little", "lot", "fan", "big", "huge", "bad", "good", "great", "terrible", "person", "fast", "slow", "night",
    "morning", "light", "heavy", "real", "total", "complete", "new", "vegetarian", "vegan", "pescatarian",
];

/// Whether a noun phrase's last word looks like an occupation: an agent noun ("teacher",
/// "sailor", "florist", "librarian", "accountant") or one of a few common jobs that are not.
fn sounds_like_a_job(phrase: &str) -> bool {
    const JOBS: &[&str] = &["nurse", "chef", "cook", "pilot", "vet", "mechanic", "surgeon", "student", "clerk", "guard", "nanny", "midwife", "barista", "medic", "paramedic", "judge", "priest", "architect", "therapist", "analyst", "detective"];
    const ENDINGS: &[&str] = &["er", "or", "ist", "ian", "ant", "man", "woman", "smith", "wright"];
    let last = phrase.split_whitespace().last().unwrap_or_default().to_lowercase();
    JOBS.contains(&last.as_str()) || (last.len() > 4 && ENDINGS.iter().any(|e| last.ends_with(e)))
}

/// `text` without `prefix` (ASCII, compared case-insensitively), if it starts with it.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// The first of `prefixes` that `text` starts with, and the rest after it.
fn after_any<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| strip_prefix_ci(text, p))
}

/// The object of a statement: up to the end of its clause ("Rome, and I love it" → "Rome"),
/// without closing punctuation; `None` if empty or too long to be one fact.
fn object(rest: &str) -> Option<String> {
    let mut end = rest.len();
    for stop in [",", ";", ".", "!", "?", " and ", " but ", " because ", " since ", " so ", " - ", " which ", " who "] {
        if let Some(at) = rest.find(stop) {
            end = end.min(at);
        }
    }
    let value = rest[..end].trim().trim_matches(|c: char| matches!(c, '"' | '\'' | ')' | '(')).trim();
    (!value.is_empty() && value.chars().count() <= 60 && value.split_whitespace().count() <= 8).then(|| value.to_string())
}

fn first_word(text: &str) -> &str {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | ';')).next().unwrap_or_default()
}

/// "34", "34 years old", "34 now": an age, if the clause says nothing else.
fn age(rest: &str) -> Option<String> {
    let number = first_word(rest);
    let years: u32 = number.parse().ok().filter(|n| (1..=120).contains(n))?;
    let after = rest[number.len()..].trim_start().to_lowercase();
    let plain = after.is_empty()
        || ["years", "yrs", "now", "today", "this", "and", ",", ".", "!", ";"].iter().any(|w| after.starts_with(w));
    plain.then(|| years.to_string())
}

/// The profile fact stated by one clause (lower-case-insensitive, ’ already made ').
fn clause_statement(clause: &str) -> Option<(String, String)> {
    let lower = clause.to_lowercase();
    if let Some(rest) = after_any(clause, &["my name is ", "my name's ", "call me ", "i'm called ", "i am called "]) {
        // A name: the capitalised words that follow ("Sam", "Ana Lucia").
        let name: Vec<&str> = rest.split_whitespace().take_while(|w| w.chars().next().is_some_and(char::is_uppercase)).take(3).collect();
        let name = name.join(" ").trim_end_matches(['.', ',', '!', ';']).to_string();
        return (!name.is_empty()).then_some((String::from("name"), name));
    }
    if let Some(rest) = after_any(clause, &["i'm ", "i am ", "i just turned ", "i turned ", "i'll be "]) {
        if let Some(years) = age(rest) {
            return Some((String::from("age"), years));
        }
    }
    if let Some(rest) = after_any(clause, &["i'm a ", "i'm an ", "i am a ", "i am an ", "i'm ", "i am ", "i've been ", "i have been ", "i became a ", "i became an ", "i turned "]) {
        let word = first_word(rest).to_lowercase();
        if DIET_LABELS.contains(&word.as_str()) {
            return Some((String::from("diet"), word));
        }
    }
    if let Some(rest) = after_any(clause, &["i don't eat ", "i do not eat ", "i no longer eat ", "i stopped eating ", "i never eat ", "i can't eat ", "i cannot eat "]) {
        return object(rest).map(|o| (String::from("diet"), format!("doesn't eat {o}")));
    }
    if let Some(rest) = after_any(clause, &["i eat ", "i started eating ", "i'm eating "]) {
        return object(rest).map(|o| (String::from("diet"), format!("eats {o}")));
    }
    if let Some(rest) = after_any(clause, &["i'm allergic to ", "i am allergic to "]) {
        return object(rest).map(|o| (String::from("allergies"), o));
    }
    if let Some(rest) = after_any(
        clause,
        &["i live in ", "i'm living in ", "i am living in ", "i moved to ", "i've moved to ", "i have moved to ", "i just moved to ", "i relocated to ", "i now live in ", "i live near "],
    ) {
        return object(rest).map(|o| (String::from("home city"), o));
    }
    if let Some(rest) = after_any(clause, &["i'm from ", "i am from ", "i grew up in ", "i was born in ", "i come from "]) {
        return object(rest).map(|o| (String::from("hometown"), o));
    }
    if let Some(rest) = after_any(clause, &["i work as a ", "i work as an ", "i work as ", "i'm working as a ", "i'm working as an ", "i got a job as a ", "i got a job as an "]) {
        return object(rest).map(|o| (String::from("job"), o));
    }
    if let Some(rest) = after_any(clause, &["i work at ", "i work for ", "i'm working at ", "i got a job at "]) {
        return object(rest).map(|o| (String::from("job"), format!("works at {o}")));
    }
    if lower.starts_with("i'm retired") || lower.starts_with("i am retired") || lower.starts_with("i retired") {
        return Some((String::from("job"), "retired".into()));
    }
    if lower.starts_with("i'm unemployed") || lower.starts_with("i am unemployed") || lower.starts_with("i lost my job") {
        return Some((String::from("job"), "unemployed".into()));
    }
    if let Some(rest) = after_any(clause, &["i'm a ", "i'm an ", "i am a ", "i am an "]) {
        let word = first_word(rest).to_lowercase();
        // A short noun phrase that names a job as people say it ("a teacher", "an ICU nurse"),
        // not a mood or a taste ("a mess", "a big fan of jazz").
        if !NOT_A_JOB.contains(&word.as_str()) && !rest.to_lowercase().contains(" of ") {
            return object(rest).filter(|o| o.split_whitespace().count() <= 3 && sounds_like_a_job(o)).map(|o| (String::from("job"), o));
        }
    }
    if let Some(rest) = after_any(clause, &["i study ", "i'm studying ", "i am studying "]) {
        return object(rest).map(|o| (String::from("studies"), o));
    }
    if lower.starts_with("i'm married") || lower.starts_with("i am married") || lower.starts_with("i got married") {
        return Some((String::from("relationship"), "married".into()));
    }
    if lower.starts_with("i'm single") || lower.starts_with("i am single") || lower.starts_with("i'm divorced") || lower.starts_with("i got divorced") {
        return Some((String::from("relationship"), if lower.contains("divorced") { "divorced" } else { "single" }.into()));
    }
    if let Some(rest) = after_any(clause, &["i have ", "i've got ", "i have got ", "i got ", "i adopted "]) {
        let words: Vec<String> = rest.to_lowercase().split(|c: char| !c.is_alphanumeric()).map(str::to_string).collect();
        if PET_WORDS.iter().any(|p| words.iter().take(4).any(|w| w == p)) {
            let rest = after_any(rest, &["a ", "an "]).unwrap_or(rest);
            return object(rest).map(|o| (String::from("pets"), o));
        }
    }
    if let Some(rest) = strip_prefix_ci(clause, "my ") {
        let lower_rest = rest.to_lowercase();
        if let Some(rest_fav) = after_any(rest, &["favourite ", "favorite "]) {
            // "my favourite colour is blue": one value per favourite.
            let (what, value) = rest_fav.split_once(" is ")?;
            let what = what.trim().to_lowercase();
            return (what.split_whitespace().count() <= 3).then_some(()).and(object(value)).map(|v| (format!("favourite {what}"), v));
        }
        let relation = FAMILY_WORDS.iter().find(|w| lower_rest.starts_with(&format!("{w} ")) || lower_rest.starts_with(&format!("{w}'s ")))?;
        let rest = &rest[relation.len()..];
        let name = after_any(rest.trim_start_matches("'s name"), &[" is called ", " is named ", " is ", "'s name is ", " named ", " called "])?;
        let name: Vec<&str> = name.split_whitespace().take_while(|w| w.chars().next().is_some_and(char::is_uppercase)).take(3).collect();
        let name = name.join(" ").trim_end_matches(['.', ',', '!', ';']).to_string();
        return (!name.is_empty()).then(|| (String::from("family"), format!("{relation} {name}")));
    }
    if let Some(rest) = after_any(clause, &["i don't like ", "i do not like ", "i hate ", "i can't stand ", "i dislike ", "i really don't like ", "i really hate ", "i no longer like "]) {
        return object(rest).map(|o| (String::from("dislikes"), o));
    }
    if let Some(rest) = after_any(clause, &["i love ", "i like ", "i adore ", "i enjoy ", "i really like ", "i really love ", "i now like ", "i now love "]) {
        // "I like it" / "I love you" are about the moment, not a taste.
        let o = object(rest)?;
        let lower = o.to_lowercase();
        let first = lower.split_whitespace().next().unwrap_or_default();
        let skip = ["it", "that", "this", "you", "your", "them", "him", "her", "to", "the idea", "here", "how", "what", "when"].contains(&first);
        return (!skip).then_some((String::from("likes"), o));
    }
    None
}

/// Profile facts stated in `text`, written by the user about themselves: "I'm vegetarian",
/// "I'm 34", "I don't eat meat", "I moved to Rome", "my sister is called Ana", "my favourite
/// colour is green". Questions, and clauses in the third person, give none.
pub fn profile_statements(text: &str) -> Vec<ProfileStatement> {
    let mut out: Vec<ProfileStatement> = Vec::new();
    for sentence in split_sentences(text) {
        if sentence.ends_with('?') || sentence.chars().count() > 300 {
            continue;
        }
        let normalised = sentence.replace('’', "'");
        let lower = normalised.to_lowercase();
        if lower.len() != normalised.len() {
            // Case folding changed a byte length: clause offsets would not line up.
            continue;
        }
        let offsets: Vec<usize> = clause_starts(&lower).map(|c| lower.len() - c.len()).collect();
        for at in offsets {
            let clause = normalised[at..].trim_start();
            // "If I were vegetarian…", "I'm not vegetarian": the clause start decides.
            if let Some((subject, value)) = clause_statement(clause) {
                if !out.iter().any(|s| s.subject == subject && s.value.eq_ignore_ascii_case(&value)) {
                    out.push(ProfileStatement { subject, value, sentence: sentence.clone() });
                }
            }
        }
    }
    out
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
    fn profile_rules_catch_plain_statements() {
        let found = |text: &str| profile_statements(text).into_iter().map(|s| (s.subject, s.value)).collect::<Vec<_>>();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(found("I'm vegetarian."), vec![pair("diet", "vegetarian")]);
        assert_eq!(found("I'm 34"), vec![pair("age", "34")]);
        assert_eq!(found("Well, I am 34 years old and I don't eat meat."), vec![pair("age", "34"), pair("diet", "doesn't eat meat")]);
        assert_eq!(found("I moved to Rome last spring, and I love it."), vec![pair("home city", "Rome last spring")]);
        assert_eq!(found("I live in Paris."), vec![pair("home city", "Paris")]);
        assert_eq!(found("My name is Ana Lucia."), vec![pair("name", "Ana Lucia")]);
        assert_eq!(found("I work as a nurse in Leeds"), vec![pair("job", "nurse in Leeds")]);
        assert_eq!(found("I'm a teacher."), vec![pair("job", "teacher")]);
        assert_eq!(found("I have two cats named Pip and Tom."), vec![pair("pets", "two cats named Pip")]);
        assert_eq!(found("My sister is called Ana."), vec![pair("family", "sister Ana")]);
        assert_eq!(found("My favourite colour is green."), vec![pair("favourite colour", "green")]);
        assert_eq!(found("I'm allergic to cats."), vec![pair("allergies", "cats")]);
        assert_eq!(found("I can't stand jazz."), vec![pair("dislikes", "jazz")]);
    }

    #[test]
    fn profile_rules_leave_out_questions_and_moods() {
        for text in [
            "Are you vegetarian?", "I'm 5 minutes away.", "I'm a big fan of jazz.", "I'm not vegetarian.", "I love you.", "She is 34.",
            "I like it.", "I like it here.", "I love your garden.", "I'm a mess.", "I'm an idiot.", "I love how you said that.",
        ] {
            assert!(profile_statements(text).is_empty(), "{text}: {:?}", profile_statements(text));
        }
    }

    #[test]
    fn clause_in_the_middle_counts() {
        assert_eq!(fact_sentences("Well, I live near the old harbour"), vec!["Well, I live near the old harbour"]);
    }
}
