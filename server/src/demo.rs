//! The demo project a fresh `concord serve --demo` starts with: a team project of real tweets
//! that four annotators have partly labelled already, so that a first-time user finds figures
//! on the agreement dashboard, items in the review queue and, with a model at hand, model
//! versions compared with the annotators, and still has items left to label.
//!
//! The answers are simulated from real multi-rater data (`demo/README.md`): annotator k answers
//! a tweet with the k-th human rating of that tweet, so every disagreement is one between
//! people.

use anyhow::Context;
use concord_domain::{Label, ProjectId, ProjectSettings, ProjectSpec, Role, TaskKind};
use concord_engine::{Engine, ImportFormat, ImportOptions, Principal};
use serde::Deserialize;

/// 300 tweets of the VADER sentiment ratings, each with every rater's score (−4..+4).
const SAMPLE: &str = include_str!("../demo/vader_tweets_sample.jsonl");
pub const DEMO_NAME: &str = "Demo: tweet sentiment";
/// The simulated annotators; annotator k answers with each tweet's k-th rating.
pub const DEMO_ANNOTATORS: [&str; 4] = ["demo-amara", "demo-bruno", "demo-chen", "demo-dana"];
/// Answers each item should get.
pub const DEMO_OVERLAP: u32 = 3;
/// Items answered by three annotators (finished: agreed, or waiting for review).
const FINISHED_ITEMS: usize = 210;
/// Items after those answered by two (in progress); the rest are not answered yet.
const STARTED_ITEMS: usize = 40;
/// Every this-many-th item carries the mean rating's label as imported gold, so annotators'
/// accuracy has something to be measured against and gold questions can be asked.
const GOLD_EVERY: usize = 10;

const GUIDELINES: &str = "\
# Tweet sentiment

Label each tweet by the **attitude its author expresses**.

- **positive** — pleased, grateful, enthusiastic, approving.
- **negative** — angry, sad, disappointed, disapproving.
- **neutral** — facts, questions, or no clear attitude either way.

Sarcasm counts as what the author means, not what the words say.

## About this demo

The 300 tweets and their ratings come from the VADER sentiment study (Hutto & Gilbert, ICWSM
2014; MIT License, shipped with vaderSentiment 3.3.2), where 20 or more people scored each
tweet from −4 to +4. The four `demo-…` annotators are **simulated** from those scores: annotator
k answers a tweet with its k-th rating, read as *positive* (≥ 1), *negative* (≤ −1) or
*neutral*. The raters were anonymous and differ from tweet to tweet, so an annotator here is not
one real person, but every disagreement you see is a real one between people. Every tenth tweet
carries the label of its mean rating as gold.
";

/// One line of the embedded sample.
#[derive(Debug, Deserialize)]
pub struct SampleTweet {
    pub id: String,
    pub text: String,
    pub ratings: Vec<i64>,
    pub label3: String,
}

/// The embedded sample, in file order.
pub fn sample() -> anyhow::Result<Vec<SampleTweet>> {
    SAMPLE
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("demo sample line {}: not a rated tweet", n + 1))
        })
        .collect()
}

/// A rating read as a label: the scale's middle (−0.5..0.5 in the mean, so 0 for one rating)
/// is neutral.
pub fn label_of_rating(score: i64) -> &'static str {
    match score {
        s if s >= 1 => "positive",
        s if s <= -1 => "negative",
        _ => "neutral",
    }
}

/// Which annotators (indices into [`DEMO_ANNOTATORS`]) answered the item at `position`: the
/// first items by three of the four in turn, the next by two, the rest by nobody yet.
pub fn answered_by(position: usize) -> Vec<usize> {
    let n = DEMO_ANNOTATORS.len();
    if position < FINISHED_ITEMS {
        (0..n).filter(|&k| k != position % n).collect()
    } else if position < FINISHED_ITEMS + STARTED_ITEMS {
        vec![position % n, (position + 1) % n]
    } else {
        Vec::new()
    }
}

/// Whether the item at `position` carries imported gold.
pub fn has_gold(position: usize) -> bool {
    position % GOLD_EVERY == GOLD_EVERY - 1
}

/// The import file: one JSON line per tweet with its simulated answers and, for some, gold.
fn import_lines(tweets: &[SampleTweet]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (position, tweet) in tweets.iter().enumerate() {
        let mut annotations = Vec::new();
        for k in answered_by(position) {
            let score = tweet.ratings.get(k).with_context(|| {
                format!("demo tweet {} has fewer than {} ratings", tweet.id, k + 1)
            })?;
            annotations.push(serde_json::json!({
                "annotator": DEMO_ANNOTATORS[k],
                "labels": [label_of_rating(*score)],
            }));
        }
        let mut line = serde_json::json!({
            "id": format!("vader-{}", tweet.id),
            "text": tweet.text,
            "annotations": annotations,
        });
        if has_gold(position) {
            line["gold"] = serde_json::json!(tweet.label3);
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

fn label(name: &str, description: &str, hotkey: char) -> Label {
    Label {
        name: name.into(),
        description: Some(description.into()),
        colour: String::new(),
        hotkey: Some(hotkey.to_string()),
    }
}

/// What [`seed`] created.
#[derive(Debug)]
pub struct DemoProject {
    pub project: ProjectId,
    /// The annotator accounts created now, and the password they share (random, shown once so
    /// that one can sign in as an annotator); accounts that already existed keep theirs.
    pub new_accounts: Vec<String>,
    pub password: String,
}

/// Creates the demo project, its annotator accounts and their answers unless any project
/// exists. Returns what it created.
pub fn seed(engine: &Engine) -> anyhow::Result<Option<DemoProject>> {
    let local = Principal::local();
    if !engine.list_projects(&local)?.is_empty() {
        return Ok(None);
    }
    let tweets = sample()?;
    let password = {
        let mut bytes = [0u8; 9];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        hex::encode(bytes)
    };
    let mut new_accounts = Vec::new();
    for name in DEMO_ANNOTATORS {
        // A database with accounts but no project may already hold one of these names (from
        // an earlier demo): it is reused, keeping its password.
        match engine.principal_by_name(name) {
            Ok(_) => {}
            Err(e) if e.kind() == concord_domain::ErrorKind::NotFound => {
                engine.create_user_locally(name, &password, false)?;
                new_accounts.push(name.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let spec = ProjectSpec {
        name: DEMO_NAME.into(),
        task: TaskKind::Classification,
        labels: vec![
            label("positive", "the author is pleased or approving", '1'),
            label("negative", "the author is upset or disapproving", '2'),
            label("neutral", "facts, questions, or no clear attitude", '3'),
        ],
        guidelines: GUIDELINES.into(),
        settings: ProjectSettings {
            overlap: DEMO_OVERLAP,
            blind: true,
            auto_accept_unanimous: true,
            ..ProjectSettings::default()
        },
        relation_labels: Vec::new(),
    };
    let project = engine.create_project(&local, spec)?;
    for name in DEMO_ANNOTATORS {
        engine.set_member(&local, project, name, Some(Role::Annotator))?;
    }
    let options = ImportOptions {
        format: ImportFormat::Jsonl,
        ..ImportOptions::default()
    };
    let lines = import_lines(&tweets)?;
    engine.import(&local, project, lines.as_bytes(), &options, &mut |_| {})?;
    // With a model at hand, the demo opens with zero-shot suggestions already computing, and
    // that version then appears on the dashboard as a rater beside the annotators.
    if engine.model_status().available {
        engine.enqueue_predict(&local, project)?;
    }
    Ok(Some(DemoProject {
        project,
        new_accounts,
        password,
    }))
}
