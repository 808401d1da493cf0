//! The user's profile, shared by every character that opts in (One Chatbot Per Person; the
//! `human` block of Letta, LD-Agent's user traits: research.md §4): dated facts with a subject,
//! taken by rule from the user's own messages ([`crate::facts::profile_statements`]), never
//! from a character's replies, and seen, edited and deleted by the user.
//!
//! A subject that holds one value at a time ([`SINGLE_VALUED_SUBJECTS`], "favourite …") keeps
//! the newest: "I moved to Rome" supersedes "home city: Paris", which stays as history (shown
//! to the user, never in a prompt). Diets supersede each other ("vegan" after "vegetarian",
//! "eats meat" after "doesn't eat meat"), and so do a like and a dislike of the same thing. A
//! fact said again (the same subject and a value whose embedding is at least
//! [`DUPLICATE_SIMILARITY`] alike, or the same words) only refreshes the one stored.

use memory::index::dot;
use serde::{Deserialize, Serialize};

use crate::facts::DIET_LABELS;
pub use crate::facts::SINGLE_VALUED_SUBJECTS;

/// Cosine similarity of two facts' embeddings (of "subject: value") from which the second is
/// the first said again. With MiniLM, "diet: vegetarian" and "diet: a vegetarian" are ≈0.95,
/// "home city: Rome" and "home city: Paris" ≈0.8.
pub const DUPLICATE_SIMILARITY: f32 = 0.9;

/// What a vegetarian does not eat: eating it again ends the diet.
const MEATS: &[&str] = &["meat", "fish", "chicken", "pork", "beef"];

/// One fact of the user's profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFact {
    pub id: String,
    /// What it is about: "name", "age", "diet", "home city", "job", "pets", "favourite colour"…
    pub subject: String,
    /// The fact: "vegetarian", "34", "Rome".
    pub value: String,
    /// The user's words it was taken from; empty when the user entered the fact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub statement: String,
    /// When it was stated or entered (unix ms).
    pub created_at: u64,
    /// When it was last stated again or edited.
    pub updated_at: u64,
    /// Where it was stated: the character, session and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The fact that replaced this one: a superseded fact is history, never in a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<u64>,
    /// Embedding of [`Self::embedded_text`], for spotting the same fact said again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<f32>,
}

impl UserFact {
    /// A current fact stated or entered at `at` (unix ms), from nowhere in particular yet.
    pub fn new(subject: impl Into<String>, value: impl Into<String>, at: u64) -> Self {
        UserFact {
            id: memory::record::new_id(),
            subject: subject.into(),
            value: value.into(),
            statement: String::new(),
            created_at: at,
            updated_at: at,
            character_id: None,
            session_id: None,
            message_id: None,
            superseded_by: None,
            superseded_at: None,
            embedding: Vec::new(),
        }
    }

    /// Still true (not superseded).
    pub fn is_current(&self) -> bool {
        self.superseded_by.is_none()
    }

    /// What is embedded: "subject: value".
    pub fn embedded_text(&self) -> String {
        embedded_text(&self.subject, &self.value)
    }

    /// The fact without its embedding, as the API shows it.
    pub fn view(&self) -> UserFact {
        UserFact { embedding: Vec::new(), ..self.clone() }
    }
}

pub fn embedded_text(subject: &str, value: &str) -> String {
    format!("{}: {}", subject.trim(), value.trim())
}

fn single_valued(subject: &str) -> bool {
    SINGLE_VALUED_SUBJECTS.contains(&subject) || subject.starts_with("favourite ")
}

/// "eats meat" → ("eats", "meat"); "doesn't eat meat" → ("doesn't eat", "meat"); a label → None.
fn diet_object(value: &str) -> Option<(bool, &str)> {
    if let Some(o) = value.strip_prefix("doesn't eat ") {
        return Some((false, o));
    }
    value.strip_prefix("eats ").map(|o| (true, o))
}

/// Whether `new` makes `old` (same or related subject) no longer true.
fn replaces(old: &UserFact, new: &UserFact) -> bool {
    let (os, ns) = (old.subject.to_lowercase(), new.subject.to_lowercase());
    let (ov, nv) = (old.value.to_lowercase(), new.value.to_lowercase());
    if os == ns && single_valued(&ns) {
        return true;
    }
    if os == "diet" && ns == "diet" {
        let label = |v: &str| DIET_LABELS.contains(&v);
        return match (diet_object(&ov), diet_object(&nv)) {
            (None, None) => label(&ov) && label(&nv),
            (Some((_, a)), Some((_, b))) => a == b,
            // Eating meat again ends being vegetarian; becoming vegetarian ends "eats meat".
            (None, Some((true, o))) => label(&ov) && MEATS.contains(&o),
            (Some((true, o)), None) => label(&nv) && MEATS.contains(&o),
            _ => false,
        };
    }
    // A like and a dislike of the same thing.
    matches!((os.as_str(), ns.as_str()), ("likes", "dislikes") | ("dislikes", "likes")) && ov == nv
}

/// What storing `new` does to the profile `facts`.
#[derive(Clone, Debug, PartialEq)]
pub enum Merge {
    /// The fact is there already (index into `facts`): refresh it.
    Duplicate(usize),
    /// A new fact; the current facts at these indices become history.
    Add { supersedes: Vec<usize> },
}

/// Decide how `new` (with its embedding) joins `facts`.
pub fn merge(facts: &[UserFact], new: &UserFact) -> Merge {
    let subject = new.subject.to_lowercase();
    let same = facts.iter().position(|f| {
        f.is_current()
            && f.subject.to_lowercase() == subject
            && (f.value.trim().eq_ignore_ascii_case(new.value.trim())
                || (!f.embedding.is_empty() && f.embedding.len() == new.embedding.len() && dot(&f.embedding, &new.embedding) >= DUPLICATE_SIMILARITY))
    });
    if let Some(i) = same {
        return Merge::Duplicate(i);
    }
    Merge::Add { supersedes: facts.iter().enumerate().filter(|(_, f)| f.is_current() && replaces(f, new)).map(|(i, _)| i).collect() }
}

/// Which subjects come first in a prompt: who the user is, then how to treat them, then tastes.
fn subject_rank(subject: &str) -> usize {
    const ORDER: &[&str] =
        &["name", "age", "home city", "job", "diet", "allergies", "family", "pets", "relationship", "hometown", "studies"];
    ORDER.iter().position(|s| *s == subject).unwrap_or(if subject.starts_with("favourite ") { ORDER.len() } else { ORDER.len() + 1 })
}

/// The current facts in prompt order: by subject rank, newest first within a subject.
pub fn prompt_order(facts: &[UserFact]) -> Vec<&UserFact> {
    let mut current: Vec<&UserFact> = facts.iter().filter(|f| f.is_current()).collect();
    current.sort_by(|a, b| subject_rank(&a.subject).cmp(&subject_rank(&b.subject)).then(b.updated_at.cmp(&a.updated_at)).then(a.id.cmp(&b.id)));
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(id: &str, subject: &str, value: &str) -> UserFact {
        UserFact { id: id.into(), ..UserFact::new(subject, value, 0) }
    }

    #[test]
    fn a_new_home_city_replaces_the_old_and_likes_add_up() {
        let facts = vec![fact("a", "home city", "Paris"), fact("b", "likes", "jazz"), fact("c", "diet", "vegetarian")];
        assert_eq!(merge(&facts, &fact("n", "home city", "Rome")), Merge::Add { supersedes: vec![0] });
        assert_eq!(merge(&facts, &fact("n", "home city", "paris")), Merge::Duplicate(0));
        assert_eq!(merge(&facts, &fact("n", "likes", "tea")), Merge::Add { supersedes: vec![] });
        assert_eq!(merge(&facts, &fact("n", "dislikes", "jazz")), Merge::Add { supersedes: vec![1] });
        assert_eq!(merge(&facts, &fact("n", "diet", "vegan")), Merge::Add { supersedes: vec![2] });
        assert_eq!(merge(&facts, &fact("n", "diet", "eats meat")), Merge::Add { supersedes: vec![2] });
        assert_eq!(merge(&facts, &fact("n", "diet", "doesn't eat eggs")), Merge::Add { supersedes: vec![] });
    }

    #[test]
    fn history_is_never_replaced_again() {
        let mut old = fact("a", "home city", "Paris");
        old.superseded_by = Some("b".into());
        let facts = vec![old, fact("b", "home city", "Rome")];
        assert_eq!(merge(&facts, &fact("n", "home city", "Oslo")), Merge::Add { supersedes: vec![1] });
        assert_eq!(prompt_order(&facts).iter().map(|f| f.value.as_str()).collect::<Vec<_>>(), vec!["Rome"]);
    }

    #[test]
    fn similar_embeddings_are_the_same_fact() {
        let mut stored = fact("a", "pets", "a dog named Rex");
        stored.embedding = vec![0.6, 0.8];
        let mut again = fact("n", "pets", "dog called Rex");
        again.embedding = vec![0.6, 0.8];
        assert_eq!(merge(&[stored.clone()], &again), Merge::Duplicate(0));
        again.embedding = vec![1.0, 0.0];
        assert_eq!(merge(&[stored], &again), Merge::Add { supersedes: vec![] });
    }
}
