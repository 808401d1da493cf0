//! The echo set: role-play chats with the demo characters, scored by the echo rate — the share
//! of replies whose longest run of tokens copied from the chat so far (the greeting and the
//! character's earlier replies) is longer than `echo_tokens` — the habit of small models that
//! the DRY sampler is meant to break. Each condition is the engine's role-play sampling
//! defaults with some settings overridden (DRY off, greedy, ...).

use engine::ReplyOptions;
use serde::Deserialize;
use serde_json::{Value, json};

use memory::TextEmbedder;

use crate::{ChatRunner, Limits, Report, Result, bad};

#[derive(Deserialize)]
struct EchoSet {
    description: String,
    /// The demo characters (web/cards/characters.json), relative to the set's file.
    cards: String,
    /// A reply echoes when its longest copied run is longer than this many tokens.
    echo_tokens: usize,
    max_tokens: usize,
    /// One run per seed for sampled conditions; greedy ones run once.
    seeds: Vec<u64>,
    conditions: Vec<Condition>,
    chats: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct Condition {
    name: String,
    /// Sampling settings that differ from the engine's role-play defaults, with the package's
    /// option names (`temperature`, `dry_multiplier`, ...).
    #[serde(default)]
    overrides: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct ChatCase {
    id: String,
    /// `id` of an entry of the cards file.
    character: String,
    user_name: String,
    /// Which greeting opens the chat (0: the card's first message).
    #[serde(default)]
    greeting: usize,
    turns: Vec<String>,
}

/// One entry of web/cards/characters.json.
#[derive(Deserialize)]
struct DemoCard {
    id: String,
    /// "v2" or "v3".
    spec: String,
    data: Value,
}

impl DemoCard {
    /// The card as its JSON file would be, as web/cards/make-cards.mjs writes it.
    fn card_json(&self) -> Value {
        if self.spec == "v2" {
            json!({ "spec": "chara_card_v2", "spec_version": "2.0", "data": self.data })
        } else {
            crate::v3_card(&self.data)
        }
    }
}

/// The condition's reply options: the engine's defaults with the overrides applied.
fn reply_options(condition: &Condition, max_tokens: usize) -> Result<ReplyOptions> {
    let mut options = ReplyOptions { max_tokens, ..ReplyOptions::default() };
    let s = &mut options.sampling;
    for (key, value) in &condition.overrides {
        let number = value.as_f64().ok_or_else(|| bad(format!("condition {:?}: {key} must be a number", condition.name)))?;
        let count = || value.as_u64().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| bad(format!("condition {:?}: {key} must be a count", condition.name)));
        match key.as_str() {
            "temperature" => s.temperature = number as f32,
            "top_k" => s.top_k = count()?,
            "top_p" => s.top_p = number as f32,
            "min_p" => s.min_p = number as f32,
            "repeat_penalty" => s.repeat_penalty = number as f32,
            "presence_penalty" => s.presence_penalty = number as f32,
            "frequency_penalty" => s.frequency_penalty = number as f32,
            "dry_multiplier" => s.dry.multiplier = number as f32,
            "dry_base" => s.dry.base = number as f32,
            "dry_allowed_length" => s.dry.allowed_length = count()?,
            other => return Err(bad(format!("condition {:?}: unknown setting {other:?}", condition.name))),
        }
    }
    options.sampling.validate().map_err(|e| bad(format!("condition {:?}: {e}", condition.name)))?;
    Ok(options)
}

fn describe(options: &ReplyOptions) -> String {
    let s = &options.sampling;
    let mut out = format!("temperature {}, top-p {}, top-k {}, min-p {}, repeat penalty {}", s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty);
    if s.presence_penalty != 0.0 || s.frequency_penalty != 0.0 {
        out += &format!(", presence {}, frequency {}", s.presence_penalty, s.frequency_penalty);
    }
    if s.dry.is_enabled() {
        out += &format!(", DRY {} × {}^(len − {}) over {}", s.dry.multiplier, s.dry.base, s.dry.allowed_length, if s.dry.penalty_last_n < 0 { "the whole context".to_string() } else { format!("{} tokens", s.dry.penalty_last_n) });
    } else {
        out += ", DRY off";
    }
    out
}

/// Run an echo set: every condition over every chat (and seed), one table row per condition.
pub(crate) async fn run_set<E: TextEmbedder>(runner: &mut ChatRunner<'_, E>, value: &Value, read_file: &dyn Fn(&str) -> Result<String>, limits: Limits, transcript: &mut Vec<Value>) -> Result<Report> {
    let set: EchoSet = serde_json::from_value(value.clone()).map_err(|e| bad(format!("echo set: {e}")))?;
    let cards_text = read_file(&set.cards)?;
    let cards: Vec<DemoCard> = serde_json::from_str(&cards_text).map_err(|e| bad(format!("{}: {e}", set.cards)))?;
    let chats = limits.chats(&set.chats);
    let started = web_time::Instant::now();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for condition in &set.conditions {
        let options = reply_options(condition, set.max_tokens)?;
        let seeds: Vec<u64> = if options.sampling.temperature <= 0.0 { vec![0] } else { set.seeds.clone() };
        let mut tally = EchoTally::default();
        let mut empty = 0;
        for &seed in &seeds {
            let mut options = options.clone();
            options.sampling.seed = seed;
            for case in chats {
                let card = cards.iter().find(|c| c.id == case.character).ok_or_else(|| bad(format!("chat {}: no demo card {:?}", case.id, case.character)))?;
                runner.reset().await?;
                let character = runner.import_card(&serde_json::to_vec(&card.card_json()).map_err(bad)?).await?;
                let session = runner.start(&character, &case.user_name, case.greeting).await?;
                let greeting = session.messages.first().map(|m| m.raw.clone()).unwrap_or_default();
                let mut sources = vec![runner.tokens(&greeting)?];
                for (turn, text) in limits.turns(&case.turns).iter().enumerate() {
                    let Some(reply) = runner.send(&session.id, text, &options).await? else {
                        empty += 1;
                        continue;
                    };
                    let tokens = runner.tokens(&reply.raw)?;
                    let borrowed: Vec<&[u32]> = sources.iter().map(Vec::as_slice).collect();
                    let longest = longest_copied_run(&tokens, &borrowed);
                    let from_greeting = longest_copied_run(&tokens, &borrowed[..1]);
                    tally.add(set.echo_tokens, longest, from_greeting, tokens.len());
                    transcript.push(json!({
                        "condition": condition.name, "seed": seed, "chat": case.id, "turn": turn,
                        "user": text, "reply": reply.raw, "longest_copied_run": longest,
                        "from_greeting": from_greeting, "echo": longest > set.echo_tokens,
                    }));
                    sources.push(tokens);
                }
            }
        }
        runner.report_progress(&format!("{}: echo rate {:.2} over {} replies ({:.0} s so far)", condition.name, tally.rate(), tally.replies, started.elapsed().as_secs_f64()));
        rows.push(vec![
            condition.name.clone(),
            tally.replies.to_string(),
            format!("{:.2}", tally.rate()),
            format!("{:.2}", tally.greeting_rate()),
            format!("{:.1}", tally.mean_longest()),
            tally.longest_max.to_string(),
            format!("{:.0}", tally.mean_reply_tokens()),
        ]);
        notes.push(format!("- {}: {}{}", condition.name, describe(&options), if empty > 0 { format!("; {empty} empty replies left out") } else { String::new() }));
    }
    let turns: usize = chats.iter().map(|c| limits.turns(&c.turns).len()).sum();
    notes.insert(
        0,
        format!(
            "Echo: the reply's longest run of tokens copied from the greeting or an earlier reply is longer than {} tokens. \
             {} chats ({} user turns) with the demo characters, replies of at most {} tokens; sampled conditions run once per seed ({:?}).\n",
            set.echo_tokens,
            chats.len(),
            turns,
            set.max_tokens,
            set.seeds,
        ),
    );
    Ok(Report {
        set: String::new(),
        seconds: 0.0,
        description: set.description,
        columns: ["Condition", "Replies", "Echo rate", "From the greeting", "Mean longest run", "Longest", "Mean reply tokens"].map(String::from).to_vec(),
        rows,
        notes,
    })
}

/// Length of the longest run of consecutive tokens of `reply` that also occurs, consecutively,
/// in one of `sources`.
pub(crate) fn longest_copied_run(reply: &[u32], sources: &[&[u32]]) -> usize {
    sources.iter().map(|source| longest_common_run(reply, source)).max().unwrap_or(0)
}

/// Longest common substring by dynamic programming over one row: replies are a few hundred
/// tokens and sources a few thousand, so O(len · len) is cheap.
fn longest_common_run(a: &[u32], b: &[u32]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &x in a {
        // Right to left, so row[j] still holds the previous row's value when row[j + 1] is set.
        for j in (0..b.len()).rev() {
            row[j + 1] = if b[j] == x { row[j] + 1 } else { 0 };
            best = best.max(row[j + 1]);
        }
    }
    best
}

/// Echo statistics of one condition over many replies.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct EchoTally {
    pub replies: usize,
    /// Replies whose longest copied run exceeds the threshold.
    pub echoes: usize,
    /// ... counting the greeting alone as the source.
    pub greeting_echoes: usize,
    pub longest_sum: usize,
    pub longest_max: usize,
    pub reply_tokens: usize,
}

impl EchoTally {
    /// Count one reply: its longest copied run from the whole chat and from the greeting.
    pub fn add(&mut self, threshold: usize, longest: usize, from_greeting: usize, reply_tokens: usize) {
        self.replies += 1;
        self.echoes += usize::from(longest > threshold);
        self.greeting_echoes += usize::from(from_greeting > threshold);
        self.longest_sum += longest;
        self.longest_max = self.longest_max.max(longest);
        self.reply_tokens += reply_tokens;
    }

    pub fn rate(&self) -> f64 {
        ratio(self.echoes, self.replies)
    }

    pub fn greeting_rate(&self) -> f64 {
        ratio(self.greeting_echoes, self.replies)
    }

    pub fn mean_longest(&self) -> f64 {
        ratio(self.longest_sum, self.replies)
    }

    pub fn mean_reply_tokens(&self) -> f64 {
        ratio(self.reply_tokens, self.replies)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_run_by_hand() {
        // "1 2 3 4" shares "2 3 4" with the first source and "1 2" with the second.
        let reply = [1, 2, 3, 4];
        assert_eq!(longest_copied_run(&reply, &[&[9, 2, 3, 4, 9], &[1, 2, 7]]), 3);
        assert_eq!(longest_copied_run(&reply, &[&[1, 2, 7]]), 2);
        assert_eq!(longest_copied_run(&reply, &[&[7, 8]]), 0);
        assert_eq!(longest_copied_run(&reply, &[]), 0);
        assert_eq!(longest_copied_run(&[], &[&[1, 2]]), 0);
        // A run must be consecutive in both: 1 _ 3 in the source is no run of 2.
        assert_eq!(longest_copied_run(&[1, 3], &[&[1, 2, 3]]), 1);
        // The whole reply copied, from the middle of a source.
        assert_eq!(longest_copied_run(&[5, 6, 7], &[&[4, 5, 6, 7, 8]]), 3);
        // Repeats inside the source do not inflate the count.
        assert_eq!(longest_copied_run(&[1, 1, 1], &[&[1, 1]]), 2);
    }

    #[test]
    fn longest_run_matches_brute_force() {
        // Small alphabets make many partial matches.
        let mut state = 12345u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) % 3
        };
        for _ in 0..200 {
            let a: Vec<u32> = (0..(next() * 4 + 1)).map(|_| next()).collect();
            let b: Vec<u32> = (0..(next() * 5 + 2)).map(|_| next()).collect();
            let mut brute = 0;
            for i in 0..a.len() {
                for j in 0..b.len() {
                    let run = a[i..].iter().zip(&b[j..]).take_while(|(x, y)| x == y).count();
                    brute = brute.max(run);
                }
            }
            assert_eq!(longest_common_run(&a, &b), brute, "{a:?} {b:?}");
        }
    }

    #[test]
    fn tally_counts_runs_over_the_threshold_only() {
        let mut t = EchoTally::default();
        t.add(8, 8, 0, 20); // exactly n: not an echo
        t.add(8, 9, 9, 30); // over n, from the greeting
        t.add(8, 12, 3, 40); // over n, from an earlier reply
        t.add(8, 1, 1, 10);
        assert_eq!((t.replies, t.echoes, t.greeting_echoes), (4, 2, 1));
        assert_eq!(t.rate(), 0.5);
        assert_eq!(t.greeting_rate(), 0.25);
        assert_eq!(t.mean_longest(), 7.5);
        assert_eq!(t.longest_max, 12);
        assert_eq!(t.mean_reply_tokens(), 25.0);
        assert_eq!(EchoTally::default().rate(), 0.0);
    }
}
