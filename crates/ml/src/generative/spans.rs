//! Named-entity spans from a generative model: the model lists the item's entity mentions as
//! JSON, `[{"text":"…","label":"…"},…]`, by greedy decoding that a grammar constrains, and each
//! mention is then placed in the item's text.
//!
//! # The output language
//!
//! A JSON array in its compact form (no whitespace outside strings) of objects with a `text`,
//! which unescaped is a non-empty substring of the item's text, and a `label`, exactly one of
//! the label names; `[]` when there is no entity. Two further rules keep every answer placeable:
//!
//! - a text neither starts nor ends with whitespace;
//! - one text is listed at most as often as it occurs in the item, so a model repeating itself
//!   has to move on or close the array (no endless `Paris, Paris, …`).
//!
//! Inside strings the escapes are JSON's (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, and
//! `\uXXXX` with surrogate pairs); raw control characters are not allowed. With
//! [`ChatFormat::Plain`] the answer starts with a space (` [` after `Answer:`), as the scorer's
//! answers do.
//!
//! # Decoding
//!
//! At each step the candidates are taken in descending logit order (the best 64 sorted first,
//! the rest only when none of those fits) and the first whose text keeps the output a prefix of
//! the language is chosen. A token's text is what it adds to decoded output, worked out once per
//! model (`token_texts`): control tokens, byte-fallback tokens and tokens that are not whole UTF-8
//! on their own have none and are never chosen; EOS and the format's end-of-turn token are
//! allowed only once the array is complete. Generation stops at the closing `]`; at the token
//! limit (or if no token fits) the unfinished object is dropped and the array closed, and the
//! result says `truncated`.
//!
//! The text constraint is a suffix automaton of the item's text: a step per character, and it
//! knows how often each substring occurs (for the repetition rule).
//!
//! # Placing the mentions
//!
//! Each mention goes to its first occurrence in the text not taken by an earlier mention of the
//! same text, so "Paris … Paris" listed twice gets both. Offsets are in Unicode code points. A
//! mention that cannot be placed (only when the answer did not come from the grammar) is counted
//! as unmatched.

use std::collections::HashMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::model::{Decoding, GenerativeModel, Prefix};
use super::scorer::{ChatFormat, LabelSpec};
use super::tokenizer::GgufTokenizer;
use crate::MlError;

/// An example shown to the model: a text and its mentions, answered as the canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanDemonstration {
    pub text: String,
    /// `(mention, label index)` in the order the answer lists them; each mention must occur in
    /// the text.
    pub mentions: Vec<(String, usize)>,
}

/// What every item's prompt shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanPromptSpec {
    /// The project's annotation guidelines.
    pub guidelines: Option<String>,
    /// The entity types; a label's `name` is what the model writes.
    pub labels: Vec<LabelSpec>,
    /// Shown before every item, inside the prompt prefix computed once.
    pub demonstrations: Vec<SpanDemonstration>,
}

/// How [`extract_spans`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanOptions {
    /// The prompt layout; `None`: detected from the model's chat template.
    pub format: Option<ChatFormat>,
    /// Most tokens the answer may take (fewer when the model's context ends first).
    pub max_new_tokens: usize,
}

impl Default for SpanOptions {
    fn default() -> SpanOptions {
        SpanOptions {
            format: None,
            max_new_tokens: 256,
        }
    }
}

/// A mention placed in the item's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedSpan {
    /// First code point of the mention in the item's text.
    pub start: usize,
    /// One past its last code point.
    pub end: usize,
    /// Index into the labels.
    pub label: usize,
    /// The mention (the item's text from `start` to `end`).
    pub text: String,
}

/// One item's entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedSpans {
    /// The placed mentions, by position (start, then end); they may overlap.
    pub spans: Vec<MappedSpan>,
    /// Mentions that could not be placed (empty once trimmed, or not in the text, or listed
    /// more often than they occur).
    pub unmatched: usize,
    /// The answer did not close by itself (the token limit or the model's context was reached,
    /// or no token could continue it: the unfinished object was dropped), or the item's text
    /// was cut to fit the prompt into the model's context.
    pub truncated: bool,
    /// The answer as a complete JSON array (closed here when `truncated`).
    pub raw: String,
}

/// The instructions (system turn): the task, the labels with their descriptions, the
/// guidelines, and the answer's form.
pub fn span_instructions(guidelines: Option<&str>, labels: &[LabelSpec]) -> String {
    let mut s = String::from(
        "Find the mentions of named entities in the text and give each mention one of these \
         types:\n",
    );
    for label in labels {
        let name = label.name.trim();
        match label
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => s.push_str(&format!("- {name}: {d}\n")),
            None => s.push_str(&format!("- {name}\n")),
        }
    }
    if let Some(g) = guidelines.map(str::trim).filter(|g| !g.is_empty()) {
        s.push_str("\nGuidelines:\n");
        s.push_str(g);
        s.push('\n');
    }
    let example_label = labels.first().map_or("TYPE", |l| l.name.trim());
    let example = canonical_json([("words copied exactly from the text", example_label)]);
    s.push_str(&format!(
        "\nAnswer with a JSON array of the mentions in the order they appear, one object per \
         mention: {example}. Answer [] when the text mentions none."
    ));
    s
}

/// Places listed `(mention, label)` pairs in `text`: each trimmed mention at its first
/// occurrence not taken by an earlier mention of the same text. Returns the spans sorted by
/// position (offsets in code points) and how many mentions could not be placed.
pub fn place_mentions(text: &str, mentions: &[(String, usize)]) -> (Vec<MappedSpan>, usize) {
    let mut taken: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut spans = Vec::with_capacity(mentions.len());
    let mut unmatched = 0;
    for (mention, label) in mentions {
        let mention = mention.trim();
        if mention.is_empty() {
            unmatched += 1;
            continue;
        }
        let used = taken.entry(mention).or_default();
        let mut from = 0;
        let found = loop {
            let Some(i) = text[from..].find(mention) else {
                break None;
            };
            let start = from + i;
            if !used.contains(&start) {
                break Some(start);
            }
            // Overlapping occurrences count too ("aa" twice in "aaa").
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        };
        match found {
            Some(start) => {
                used.push(start);
                let first = text[..start].chars().count();
                spans.push(MappedSpan {
                    start: first,
                    end: first + mention.chars().count(),
                    label: *label,
                    text: mention.to_string(),
                });
            }
            None => unmatched += 1,
        }
    }
    spans.sort_by_key(|s| (s.start, s.end, s.label));
    (spans, unmatched)
}

/// The entity mentions of one text (see the module docs).
pub fn extract_spans(
    model: &GenerativeModel,
    spec: &SpanPromptSpec,
    text: &str,
    options: &SpanOptions,
) -> Result<ExtractedSpans, MlError> {
    let format = options
        .format
        .unwrap_or_else(|| ChatFormat::detect(model.chat_template()));
    let prompt = SpanPrompt::new(format, spec)?;
    let vocabulary = Vocabulary::new(model, format)?;
    extract_one(
        model,
        &prompt,
        &vocabulary,
        None,
        text,
        options.max_new_tokens,
    )
}

/// [`extract_spans`] for many texts, one after another, with the prompt's shared beginning
/// computed once. `progress(done, total)` is called before the work and after each text;
/// `Break` stops with [`MlError::Cancelled`].
pub fn extract_spans_batch(
    model: &GenerativeModel,
    spec: &SpanPromptSpec,
    texts: &[&str],
    options: &SpanOptions,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<Vec<ExtractedSpans>, MlError> {
    let total = texts.len();
    let format = options
        .format
        .unwrap_or_else(|| ChatFormat::detect(model.chat_template()));
    let prompt = SpanPrompt::new(format, spec)?;
    let mut check = |done: usize| match progress(done, total) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(MlError::Cancelled),
    };
    check(0)?;
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let vocabulary = Vocabulary::new(model, format)?;

    // The shared prefix: what two different texts' prompts have in common (a text whose
    // prompt does not begin with it, through a merge at the boundary, is run from the start).
    let mut prefix = None;
    if texts.len() > 1 && model.reuses_prefix() {
        let reserve = reserved_tokens(options.max_new_tokens);
        let (a, _) = prompt.encode(model, "x", reserve)?;
        let (b, _) = prompt.encode(model, "y", reserve)?;
        // At least one token of each prompt stays out of the prefix: its step gives the logits.
        let shared = common_prefix(&a, &b)
            .min(a.len().saturating_sub(1))
            .min(b.len().saturating_sub(1));
        if shared > 0 {
            prefix = Some(model.prefix(&a[..shared])?);
        }
    }

    let mut out = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        out.push(extract_one(
            model,
            &prompt,
            &vocabulary,
            prefix.as_mut(),
            text,
            options.max_new_tokens,
        )?);
        check(i + 1)?;
    }
    Ok(out)
}

/// Each id's text as a piece of generated output: what decoding it after other text adds.
/// `None` for control and unknown tokens, byte-fallback tokens (`<0xNN>`), tokens that are not
/// whole UTF-8 on their own and tokens that add nothing.
///
/// A token is decoded after an anchor (the tokens of `"a"`) and the anchor's own text taken off,
/// which keeps what a decoder does at the very start of a text (SentencePiece's stripped leading
/// space) out of the token's text.
pub(crate) fn token_texts(tokenizer: &GgufTokenizer) -> Result<Vec<Option<String>>, MlError> {
    let anchor = tokenizer.encode("a", false)?;
    let anchor_text = tokenizer.decode_skipping_special(&anchor)?;
    if anchor.is_empty() || anchor_text.is_empty() {
        return Err(MlError::Tokenizer(
            "the vocabulary cannot spell \"a\", which its tokens are decoded after".to_string(),
        ));
    }
    let mut ids = anchor.clone();
    ids.push(0);
    let last = anchor.len();
    let count = tokenizer.vocab_len();
    let mut texts = Vec::with_capacity(count);
    for id in 0..count as u32 {
        ids[last] = id;
        let text = tokenizer
            .decode_skipping_special(&ids)
            .ok()
            .and_then(|full| full.strip_prefix(anchor_text.as_str()).map(str::to_string))
            .filter(|t| !t.is_empty() && !t.contains(char::REPLACEMENT_CHARACTER))
            .filter(|_| {
                !tokenizer
                    .tokenizer
                    .id_to_token(id)
                    .is_some_and(|piece| is_byte_piece(&piece))
            });
        texts.push(text);
    }
    Ok(texts)
}

/// A SentencePiece byte-fallback piece, `<0xNN>`.
fn is_byte_piece(piece: &str) -> bool {
    piece.len() == 6
        && piece.starts_with("<0x")
        && piece.ends_with('>')
        && piece
            .get(3..5)
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Tokens the prompt leaves for the answer at least: an item's text is cut when fewer would be
/// left in the model's context.
const RESERVED_ANSWER_TOKENS: usize = 64;

fn reserved_tokens(max_new_tokens: usize) -> usize {
    max_new_tokens.clamp(1, RESERVED_ANSWER_TOKENS)
}

/// Length of the longest common prefix of two token sequences.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The user message that presents a text.
fn user_message(text: &str) -> String {
    format!("Text: {text}")
}

/// A mention as the answer writes it.
#[derive(Serialize, Deserialize)]
struct Mention<T> {
    text: T,
    label: T,
}

/// The canonical (compact) JSON answer listing `(text, label)` pairs.
fn canonical_json<'a>(mentions: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mentions: Vec<Mention<&str>> = mentions
        .into_iter()
        .map(|(text, label)| Mention { text, label })
        .collect();
    serde_json::to_string(&mentions).unwrap_or_else(|_| "[]".to_string())
}

/// A string as JSON string content: escaped, without the quotes.
fn json_content(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

/// The prompt pieces shared by every item of one call.
struct SpanPrompt {
    format: ChatFormat,
    system: String,
    demonstrations: Vec<(String, String)>,
    /// Label names as the prompt shows them (cleaned), index = label.
    names: Vec<String>,
}

impl SpanPrompt {
    fn new(format: ChatFormat, spec: &SpanPromptSpec) -> Result<SpanPrompt, MlError> {
        if spec.labels.is_empty() {
            return Err(MlError::Config("no entity labels to extract".to_string()));
        }
        let super::scorer::Cleaned {
            labels,
            names,
            guidelines,
        } = super::scorer::cleaned_for_prompt(format, &spec.labels, spec.guidelines.as_deref())?;
        let system = span_instructions(guidelines.as_deref(), &labels);
        let mut demonstrations = Vec::with_capacity(spec.demonstrations.len());
        for (k, demo) in spec.demonstrations.iter().enumerate() {
            let text = format.clean(&demo.text);
            let mut mentions: Vec<(String, &str)> = Vec::with_capacity(demo.mentions.len());
            for (mention, label) in &demo.mentions {
                let name = names.get(*label).ok_or_else(|| {
                    MlError::Config(format!(
                        "demonstration {k} has label {label}, but there are {} labels",
                        names.len()
                    ))
                })?;
                let mention = format.clean(mention);
                if mention.is_empty() || !text.contains(mention.as_str()) {
                    return Err(MlError::Config(format!(
                        "demonstration {k}: the mention {mention:?} is not in its text"
                    )));
                }
                mentions.push((mention, name.as_str()));
            }
            let answer = canonical_json(mentions.iter().map(|(m, n)| (m.as_str(), *n)));
            demonstrations.push((user_message(&text), format.answer(&answer)));
        }
        Ok(SpanPrompt {
            format,
            system,
            demonstrations,
            names,
        })
    }

    fn render(&self, text: &str) -> String {
        self.format
            .render(&self.system, &self.demonstrations, &user_message(text))
    }

    /// The prompt's tokens for `text`, and whether the text was cut so that `reserve` tokens of
    /// answer fit in the model's context.
    fn encode(
        &self,
        model: &GenerativeModel,
        text: &str,
        reserve: usize,
    ) -> Result<(Vec<u32>, bool), MlError> {
        let mut text = self.format.clean(text);
        let mut cut = false;
        let mut attempts = 0;
        loop {
            let ids = model.encode(&self.render(&text))?;
            // The answer's last token is chosen, never fed.
            let needed = ids.len() + reserve - 1;
            if needed <= model.max_tokens() {
                return Ok((ids, cut));
            }
            let chars = text.chars().count();
            if chars == 0 || attempts == 8 {
                return Err(MlError::Config(format!(
                    "the prompt and {reserve} tokens of answer need {needed} tokens, more than \
                     the model's {}, even with the item's text cut (shorten the guidelines or \
                     the demonstrations)",
                    model.max_tokens()
                )));
            }
            // A token is a few characters: cut about four per excess token, at least an eighth,
            // and try again.
            let excess = needed - model.max_tokens();
            let keep = chars.saturating_sub((excess * 4 + 16).max(chars / 8));
            text = text.chars().take(keep).collect();
            cut = true;
            attempts += 1;
        }
    }
}

/// One text's spans: its prompt, the constrained greedy answer, the mentions placed.
fn extract_one(
    model: &GenerativeModel,
    prompt: &SpanPrompt,
    vocabulary: &Vocabulary<'_>,
    prefix: Option<&mut Prefix>,
    text: &str,
    max_new_tokens: usize,
) -> Result<ExtractedSpans, MlError> {
    let (ids, cut) = prompt.encode(model, text, reserved_tokens(max_new_tokens))?;
    // The constraint is the item's own text (the prompt shows it cleaned, perhaps cut), so the
    // offsets are the item's.
    let grammar = Grammar::new(text, &prompt.names, prompt.format);
    let generated = if max_new_tokens == 0 {
        Generated {
            json: "[]".to_string(),
            truncated: true,
        }
    } else {
        let mut decoding = model.start(prefix, &ids)?;
        // `encode` left at least one position; the last token is never fed.
        let limit = max_new_tokens.min(model.max_tokens() + 1 - decoding.tokens());
        generate(&mut decoding, &grammar, vocabulary, limit)?
    };
    let listed: Vec<Mention<String>> = serde_json::from_str(&generated.json).map_err(|e| {
        MlError::Config(format!(
            "the constrained answer {:?} is not the expected JSON: {e}",
            generated.json
        ))
    })?;
    let mut unknown = 0;
    let mut mentions = Vec::with_capacity(listed.len());
    for m in listed {
        match prompt.names.iter().position(|n| *n == m.label) {
            Some(label) => mentions.push((m.text, label)),
            None => unknown += 1,
        }
    }
    let (spans, unmatched) = place_mentions(text, &mentions);
    Ok(ExtractedSpans {
        spans,
        unmatched: unmatched + unknown,
        truncated: generated.truncated || cut,
        raw: generated.json,
    })
}

/// The generation's view of the vocabulary: each id's text, and the ids that end a turn.
struct Vocabulary<'a> {
    texts: &'a [Option<String>],
    ends: Vec<u32>,
}

impl<'a> Vocabulary<'a> {
    fn new(model: &'a GenerativeModel, format: ChatFormat) -> Result<Vocabulary<'a>, MlError> {
        let tokenizer = model.tokenizer();
        let mut ends: Vec<u32> = tokenizer.eos.into_iter().collect();
        let end_of_turn: &[&str] = match format {
            ChatFormat::ChatMl { .. } => &["<|im_end|>"],
            ChatFormat::Llama3 => &["<|eot_id|>"],
            ChatFormat::Gemma => &["<end_of_turn>"],
            ChatFormat::Phi3 { .. } => &["<|end|>"],
            ChatFormat::Plain => &[],
        };
        ends.extend(end_of_turn.iter().filter_map(|t| tokenizer.token_id(t)));
        Ok(Vocabulary {
            texts: model.token_texts()?,
            ends,
        })
    }

    /// The phase after token `id`, if the grammar allows it in `phase`.
    fn accepts(&self, grammar: &Grammar, phase: Phase, id: u32, used: &Used) -> Option<Phase> {
        if self.ends.contains(&id) {
            return (phase == Phase::Done).then_some(Phase::Done);
        }
        let text = self.texts.get(id as usize)?.as_deref()?;
        if text.is_empty() {
            return None;
        }
        grammar.walk(phase, text, used, |_, _, _| {})
    }
}

/// What the greedy decoding needs of a model: the next token's logits, and feeding the chosen
/// token.
trait Generator {
    fn logits(&self) -> &[f32];
    fn feed(&mut self, token: u32) -> Result<(), MlError>;
}

impl Generator for Decoding<'_> {
    fn logits(&self) -> &[f32] {
        self.next_logits()
    }

    fn feed(&mut self, token: u32) -> Result<(), MlError> {
        self.push(token)
    }
}

/// What [`generate`] wrote.
#[derive(Debug, PartialEq)]
struct Generated {
    /// A complete array (the compact JSON, leading space dropped).
    json: String,
    /// The array was closed here, not by the model.
    truncated: bool,
}

/// How many of the best candidates are sorted first: the chosen token is nearly always one.
const HEAD: usize = 64;

/// Greedy decoding under the grammar, at most `limit` tokens.
fn generate(
    lm: &mut impl Generator,
    grammar: &Grammar,
    vocabulary: &Vocabulary<'_>,
    limit: usize,
) -> Result<Generated, MlError> {
    let mut phase = grammar.start();
    let mut used = Used::new();
    let mut out = String::new();
    // Length of `out` where the last complete object (or the `[`) ended.
    let mut complete: Option<usize> = None;
    let mut order = Vec::new();
    let mut finished = false;
    let mut chosen = 0;
    while chosen < limit {
        let Some((token, next)) = choose(lm.logits(), &mut order, |id| {
            vocabulary.accepts(grammar, phase, id, &used)
        }) else {
            break;
        };
        chosen += 1;
        // An end token adds no text (and comes only after `]`).
        let text = vocabulary
            .texts
            .get(token as usize)
            .and_then(Option::as_deref)
            .filter(|_| !vocabulary.ends.contains(&token));
        if let Some(text) = text {
            let base = out.len();
            let mut closed = Vec::new();
            // Replayed to note where objects end and which texts were closed.
            let _ = grammar.walk(phase, text, &used, |offset, after, key| {
                if let Some(key) = key {
                    closed.push(key);
                }
                if after.is_complete_point() {
                    complete = Some(base + offset);
                }
            });
            for key in closed {
                *used.entry(key).or_insert(0) += 1;
            }
            out.push_str(text);
        }
        phase = next;
        if phase == Phase::Done {
            finished = true;
            break;
        }
        if chosen < limit {
            lm.feed(token)?;
        }
    }
    let json = if finished {
        out.trim_start().to_string()
    } else {
        match complete {
            Some(end) => format!("{}]", out[..end].trim_start()),
            None => "[]".to_string(),
        }
    };
    Ok(Generated {
        json,
        truncated: !finished,
    })
}

/// The best-scoring id that `accept` takes, and what it says of it: the ids in descending logit
/// order (NaN last, ties by id), the best [`HEAD`] sorted first and the rest only if needed.
fn choose<T>(
    logits: &[f32],
    order: &mut Vec<u32>,
    mut accept: impl FnMut(u32) -> Option<T>,
) -> Option<(u32, T)> {
    let key = |id: u32| {
        let l = logits[id as usize];
        if l.is_nan() {
            f32::NEG_INFINITY
        } else {
            l
        }
    };
    let better = |a: &u32, b: &u32| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
    order.clear();
    order.extend(0..logits.len() as u32);
    let head = HEAD.min(order.len());
    if order.len() > head {
        order.select_nth_unstable_by(head, better);
    }
    order[..head].sort_unstable_by(better);
    let mut first = |ids: &[u32]| ids.iter().find_map(|&id| accept(id).map(|t| (id, t)));
    if let Some(found) = first(&order[..head]) {
        return Some(found);
    }
    order[head..].sort_unstable_by(better);
    first(&order[head..])
}

/// The substrings of one text: a suffix automaton over its characters. A walk from the root
/// succeeds exactly for the substrings; the state reached knows how often they occur.
struct Substrings {
    /// Transitions of each state (few: a linear search).
    next: Vec<Vec<(char, u32)>>,
    /// Suffix links (`None` for the root).
    link: Vec<Option<u32>>,
    /// Length of each state's longest string.
    len: Vec<u32>,
    /// Occurrences of each state's strings.
    count: Vec<u32>,
}

const ROOT: u32 = 0;

impl Substrings {
    fn new(text: &str) -> Substrings {
        let mut s = Substrings {
            next: vec![Vec::new()],
            link: vec![None],
            len: vec![0],
            count: vec![0],
        };
        let mut last = ROOT;
        for c in text.chars() {
            let cur = s.add(s.len[last as usize] + 1, 1);
            let mut p = Some(last);
            let mut found = None;
            while let Some(q) = p {
                if let Some(t) = s.step(q, c) {
                    found = Some((q, t));
                    break;
                }
                s.next[q as usize].push((c, cur));
                p = s.link[q as usize];
            }
            let link = match found {
                None => ROOT,
                Some((p, q)) if s.len[p as usize] + 1 == s.len[q as usize] => q,
                Some((p, q)) => {
                    let clone = s.add(s.len[p as usize] + 1, 0);
                    s.next[clone as usize] = s.next[q as usize].clone();
                    s.link[clone as usize] = s.link[q as usize];
                    let mut r = Some(p);
                    while let Some(v) = r {
                        match s.next[v as usize].iter_mut().find(|(d, _)| *d == c) {
                            Some(edge) if edge.1 == q => edge.1 = clone,
                            _ => break,
                        }
                        r = s.link[v as usize];
                    }
                    s.link[q as usize] = Some(clone);
                    clone
                }
            };
            s.link[cur as usize] = Some(link);
            last = cur;
        }
        // A state's strings end wherever its suffix-link descendants' do.
        let mut order: Vec<u32> = (1..s.len.len() as u32).collect();
        order.sort_unstable_by_key(|&v| std::cmp::Reverse(s.len[v as usize]));
        for v in order {
            if let Some(l) = s.link[v as usize] {
                s.count[l as usize] += s.count[v as usize];
            }
        }
        s
    }

    fn add(&mut self, len: u32, count: u32) -> u32 {
        self.next.push(Vec::new());
        self.link.push(None);
        self.len.push(len);
        self.count.push(count);
        (self.len.len() - 1) as u32
    }

    fn step(&self, state: u32, c: char) -> Option<u32> {
        self.next[state as usize]
            .iter()
            .find(|(d, _)| *d == c)
            .map(|&(_, t)| t)
    }

    fn occurrences(&self, state: u32) -> u32 {
        self.count[state as usize]
    }
}

/// A listed text: its automaton state and its length in characters (which together name one
/// substring).
type Key = (u32, u32);

/// How many times each text has been listed.
type Used = HashMap<Key, u32>;

/// The fixed pieces of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lit {
    Open,
    /// After `Answer:` in plain prompts.
    OpenPlain,
    Object,
    /// After a text's closing quote.
    Label,
    /// After a label's closing quote.
    Close,
}

impl Lit {
    fn text(self) -> &'static str {
        match self {
            Lit::Open => "[",
            Lit::OpenPlain => " [",
            Lit::Object => "{\"text\":\"",
            Lit::Label => ",\"label\":\"",
            Lit::Close => "}",
        }
    }

    fn then(self) -> Phase {
        match self {
            Lit::Open | Lit::OpenPlain => Phase::First,
            Lit::Object => Phase::Text(TextState {
                node: ROOT,
                chars: 0,
                trailing_space: false,
                esc: Esc::None,
            }),
            Lit::Label => Phase::Label { label: 0, len: 0 },
            Lit::Close => Phase::Next,
        }
    }
}

/// Where a string escape stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\` (`high`: a high surrogate waiting for its low half, so only `u` may follow).
    Backslash {
        high: Option<u32>,
    },
    /// Inside `\uXXXX`: `digits` read so far, their `value`.
    Hex {
        high: Option<u32>,
        digits: u32,
        value: u32,
    },
    /// After a high surrogate's escape: its low half's `\` must follow.
    Low {
        high: u32,
    },
}

/// Inside a mention's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TextState {
    /// The automaton state of the unescaped text so far.
    node: u32,
    /// Its length in characters.
    chars: u32,
    /// Whether its last character is whitespace (it cannot end there).
    trailing_space: bool,
    esc: Esc,
}

/// The grammar's state between characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Matching `lit` from byte `pos`.
    Lit {
        lit: Lit,
        pos: u32,
    },
    /// After `[`: an object or `]`.
    First,
    Text(TextState),
    /// Inside a label: the first `len` bytes of `labels[label]` (the first label with them).
    Label {
        label: u32,
        len: u32,
    },
    /// After an object: `,` or `]`.
    Next,
    /// After `]`.
    Done,
}

impl Phase {
    /// Whether the output so far, closed by `]`, is a complete answer with every object in it.
    fn is_complete_point(self) -> bool {
        matches!(self, Phase::First | Phase::Next)
    }
}

/// The output language for one item (see the module docs).
struct Grammar {
    substrings: Substrings,
    /// The label names as JSON string content, index = label.
    labels: Vec<String>,
    open: Lit,
}

impl Grammar {
    fn new(text: &str, names: &[String], format: ChatFormat) -> Grammar {
        Grammar {
            substrings: Substrings::new(text),
            labels: names.iter().map(String::as_str).map(json_content).collect(),
            open: if format == ChatFormat::Plain {
                Lit::OpenPlain
            } else {
                Lit::Open
            },
        }
    }

    fn start(&self) -> Phase {
        Phase::Lit {
            lit: self.open,
            pos: 0,
        }
    }

    /// The phase after `text`, if every character is allowed; `visit(end, phase, closed)` sees
    /// each character's end offset, the phase after it and the text it closed, if any.
    fn walk(
        &self,
        mut phase: Phase,
        text: &str,
        used: &Used,
        mut visit: impl FnMut(usize, Phase, Option<Key>),
    ) -> Option<Phase> {
        let mut closed: Vec<Key> = Vec::new();
        for (i, c) in text.char_indices() {
            let (next, key) = self.step(phase, c, used, &closed)?;
            if let Some(key) = key {
                closed.push(key);
            }
            visit(i + c.len_utf8(), next, key);
            phase = next;
        }
        Some(phase)
    }

    /// One character: the next phase, and the text it closes (a text's closing quote).
    /// `closed`: texts closed earlier in the same token, not yet in `used`.
    fn step(
        &self,
        phase: Phase,
        c: char,
        used: &Used,
        closed: &[Key],
    ) -> Option<(Phase, Option<Key>)> {
        let next = match phase {
            Phase::Lit { lit, pos } => {
                let bytes = lit.text().as_bytes();
                if c != char::from(bytes[pos as usize]) {
                    return None;
                }
                if pos as usize + 1 == bytes.len() {
                    lit.then()
                } else {
                    Phase::Lit { lit, pos: pos + 1 }
                }
            }
            Phase::First if c == ']' => Phase::Done,
            Phase::First => {
                let object = Phase::Lit {
                    lit: Lit::Object,
                    pos: 0,
                };
                return self.step(object, c, used, closed);
            }
            Phase::Text(t) => return self.text_step(t, c, used, closed),
            Phase::Label { label, len } => self.label_step(label, len, c)?,
            Phase::Next => match c {
                ',' => Phase::Lit {
                    lit: Lit::Object,
                    pos: 0,
                },
                ']' => Phase::Done,
                _ => return None,
            },
            Phase::Done => return None,
        };
        Some((next, None))
    }

    fn text_step(
        &self,
        t: TextState,
        c: char,
        used: &Used,
        closed: &[Key],
    ) -> Option<(Phase, Option<Key>)> {
        let escaping = |esc: Esc| Some((Phase::Text(TextState { esc, ..t }), None));
        match t.esc {
            Esc::None => match c {
                '"' => {
                    if t.chars == 0 || t.trailing_space {
                        return None;
                    }
                    let key = (t.node, t.chars);
                    let listed = used.get(&key).copied().unwrap_or(0) as usize
                        + closed.iter().filter(|k| **k == key).count();
                    let label = Phase::Lit {
                        lit: Lit::Label,
                        pos: 0,
                    };
                    (listed < self.substrings.occurrences(t.node) as usize)
                        .then_some((label, Some(key)))
                }
                '\\' => escaping(Esc::Backslash { high: None }),
                c if u32::from(c) < 0x20 => None,
                c => self.text_char(t, c),
            },
            Esc::Backslash { high: None } => {
                let unescaped = match c {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => {
                        return escaping(Esc::Hex {
                            high: None,
                            digits: 0,
                            value: 0,
                        })
                    }
                    _ => return None,
                };
                self.text_char(t, unescaped)
            }
            Esc::Backslash { high: Some(high) } if c == 'u' => escaping(Esc::Hex {
                high: Some(high),
                digits: 0,
                value: 0,
            }),
            Esc::Backslash { high: Some(_) } => None,
            Esc::Hex {
                high,
                digits,
                value,
            } => {
                let value = value * 16 + c.to_digit(16)?;
                if digits < 3 {
                    return escaping(Esc::Hex {
                        high,
                        digits: digits + 1,
                        value,
                    });
                }
                match high {
                    None if (0xD800..0xDC00).contains(&value) => escaping(Esc::Low { high: value }),
                    // A lone low surrogate is no character.
                    None => self.text_char(t, char::from_u32(value)?),
                    Some(high) if (0xDC00..0xE000).contains(&value) => {
                        let c =
                            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00))?;
                        self.text_char(t, c)
                    }
                    Some(_) => None,
                }
            }
            Esc::Low { high } if c == '\\' => escaping(Esc::Backslash { high: Some(high) }),
            Esc::Low { .. } => None,
        }
    }

    /// An unescaped character of a text: the text must stay a substring, and not start with
    /// whitespace.
    fn text_char(&self, t: TextState, c: char) -> Option<(Phase, Option<Key>)> {
        if t.chars == 0 && c.is_whitespace() {
            return None;
        }
        let node = self.substrings.step(t.node, c)?;
        let t = TextState {
            node,
            chars: t.chars + 1,
            trailing_space: c.is_whitespace(),
            esc: Esc::None,
        };
        Some((Phase::Text(t), None))
    }

    fn label_step(&self, label: u32, len: u32, c: char) -> Option<Phase> {
        let prefix = &self.labels[label as usize].as_bytes()[..len as usize];
        // An escaped name never ends in a lone `\`, so a quote after a whole name closes it.
        if c == '"' && self.labels.iter().any(|n| n.as_bytes() == prefix) {
            return Some(Phase::Lit {
                lit: Lit::Close,
                pos: 0,
            });
        }
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        let next = self.labels.iter().position(|n| {
            let n = n.as_bytes();
            n.starts_with(prefix) && n[prefix.len()..].starts_with(bytes)
        })?;
        Some(Phase::Label {
            label: next as u32,
            len: len + bytes.len() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generative::tokenizer::{token_type, GgufVocab};

    fn names(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|l| l.to_string()).collect()
    }

    fn grammar(text: &str, labels: &[&str]) -> Grammar {
        Grammar::new(text, &names(labels), ChatFormat::ChatMl { think: false })
    }

    /// `s` fed character by character, closed texts counted as the decoding counts them.
    fn run(g: &Grammar, s: &str) -> Option<Phase> {
        let mut phase = g.start();
        let mut used = Used::new();
        for c in s.chars() {
            let (next, key) = g.step(phase, c, &used, &[])?;
            if let Some(key) = key {
                *used.entry(key).or_insert(0) += 1;
            }
            phase = next;
        }
        Some(phase)
    }

    fn is_prefix(g: &Grammar, s: &str) -> bool {
        run(g, s).is_some()
    }

    fn is_complete(g: &Grammar, s: &str) -> bool {
        run(g, s) == Some(Phase::Done)
    }

    fn walk_text(s: &Substrings, sub: &str) -> Option<u32> {
        sub.chars().try_fold(ROOT, |node, c| s.step(node, c))
    }

    #[test]
    fn the_suffix_automaton_knows_every_substring_and_its_count() {
        for text in ["abcbc", "Paris, Paris", "Müller é 😀 aaa", "aaaa", ""] {
            let s = Substrings::new(text);
            let chars: Vec<char> = text.chars().collect();
            for i in 0..chars.len() {
                for j in i + 1..=chars.len() {
                    let sub: String = chars[i..j].iter().collect();
                    let node =
                        walk_text(&s, &sub).unwrap_or_else(|| panic!("{sub:?} is in {text:?}"));
                    let n = j - i;
                    let occurrences = (0..=chars.len() - n)
                        .filter(|&k| chars[k..k + n] == chars[i..j])
                        .count();
                    assert_eq!(
                        s.occurrences(node) as usize,
                        occurrences,
                        "{sub:?} in {text:?}"
                    );
                }
            }
            for other in ["x", "cb c", "ba", "Parisx", "ü m", "aaaaa", "😀a"] {
                assert_eq!(
                    walk_text(&s, other).is_some(),
                    text.contains(other),
                    "{other:?} in {text:?}"
                );
            }
        }
    }

    #[test]
    fn the_grammar_takes_the_canonical_answer_and_each_of_its_prefixes() {
        let g = grammar("Angela Merkel visited Paris.", &["PERSON", "LOCATION"]);
        assert!(is_complete(&g, "[]"));
        let answer =
            r#"[{"text":"Angela Merkel","label":"PERSON"},{"text":"Paris","label":"LOCATION"}]"#;
        assert!(is_complete(&g, answer));
        for (i, _) in answer.char_indices() {
            let prefix = &answer[..i];
            assert!(is_prefix(&g, prefix), "{prefix}");
            assert_ne!(run(&g, prefix), Some(Phase::Done), "{prefix}");
        }
        assert!(run(&g, "[").is_some_and(Phase::is_complete_point));
        assert!(
            run(&g, r#"[{"text":"Paris","label":"PERSON"}"#).is_some_and(Phase::is_complete_point)
        );
        assert!(!run(&g, r#"[{"text":"Paris","label":"PERSON"},"#)
            .is_some_and(Phase::is_complete_point));
    }

    #[test]
    fn the_grammar_refuses_whitespace_unknown_texts_and_labels() {
        let g = grammar("Angela Merkel visited Paris.", &["PERSON", "LOCATION"]);
        for bad in [
            " []",
            "[ ]",
            "[]]",
            "[] ",
            "{",
            r#"[{"text": "Paris""#,
            r#"[{"label":"PERSON""#,
            r#"[{"text":"Berlin"#,
            r#"[{"text":"""#,
            r#"[{"text":" Paris"#,
            r#"[{"text":"visited ""#,
            r#"[{"text":"Paris","label":"ORG"#,
            r#"[{"text":"Paris","label":"PERSONS"#,
            r#"[{"text":"Paris","label":"PERSO"}"#,
            r#"[{"text":"Paris","label":"PERSON"},]"#,
            r#"[{"text":"Paris","label":"PERSON"}{"#,
            r#"[{"text":"Paris","label":"PERSON","x":1}"#,
        ] {
            assert!(!is_prefix(&g, bad), "{bad}");
        }
        // Whitespace inside a text is fine, at its end only until it closes.
        assert!(is_prefix(&g, r#"[{"text":"visited "#));
        assert!(is_prefix(&g, r#"[{"text":"visited Paris""#));
    }

    #[test]
    fn escapes_are_json_and_constrain_the_unescaped_text() {
        let text = "She said \"hi\" \\ then\nleft: é😀 / end";
        let g = grammar(text, &["Q"]);
        for (content, unescaped) in [
            (r#"\"hi\""#, "\"hi\""),
            (r#"\\ then\nleft"#, "\\ then\nleft"),
            (r#"\u00e9"#, "é"),
            (r#"\u00E9\ud83d\ude00"#, "é😀"),
            (r#"\/ end"#, "/ end"),
        ] {
            let answer = format!(r#"[{{"text":"{content}","label":"Q"}}]"#);
            assert!(is_complete(&g, &answer), "{answer}");
            let parsed: Vec<Mention<String>> = serde_json::from_str(&answer).unwrap();
            assert_eq!(parsed[0].text, unescaped);
            assert!(text.contains(&parsed[0].text));
        }
        for bad in [
            "[{\"text\":\"then\nleft",
            r#"[{"text":""hi"#,
            r#"[{"text":"\x"#,
            r#"[{"text":"\ude00"#,
            r#"[{"text":"\ud83d\u00e9"#,
            r#"[{"text":"\ud83d""#,
            r#"[{"text":"\ud83dx"#,
            r#"[{"text":"\u00g"#,
            r#"[{"text":"\n"#,
            r#"[{"text":"\t"#,
        ] {
            assert!(!is_prefix(&g, bad), "{bad}");
        }
        // A quote after a backslash is part of the text; an unfinished `\u` escape cannot close.
        assert!(matches!(run(&g, r#"[{"text":"hi\""#), Some(Phase::Text(_))));
        assert!(!is_prefix(&g, r#"[{"text":"é\u00""#));
    }

    #[test]
    fn labels_may_be_prefixes_of_each_other() {
        for labels in [&["LOCATION", "LOC"], &["LOC", "LOCATION"]] {
            let g = grammar("in Paris", labels);
            let with = |label: &str| format!(r#"[{{"text":"Paris","label":"{label}"}}]"#);
            assert!(is_complete(&g, &with("LOC")), "{labels:?}");
            assert!(is_complete(&g, &with("LOCATION")), "{labels:?}");
            assert!(!is_prefix(&g, &with("LOCA")), "{labels:?}");
            assert!(!is_prefix(&g, &with("L")), "{labels:?}");
            assert!(!is_prefix(&g, &with("LOCX")), "{labels:?}");
            assert!(is_prefix(&g, r#"[{"text":"Paris","label":"LOCA"#));
        }
        // Escaped names are matched as written in JSON.
        let g = grammar("x", &["A\"B", "A"]);
        assert!(is_complete(&g, r#"[{"text":"x","label":"A\"B"}]"#));
        assert!(is_complete(&g, r#"[{"text":"x","label":"A"}]"#));
        // `A\"` continues into `A\"B`; the label `A"` alone is not one of them.
        assert!(is_prefix(&g, r#"[{"text":"x","label":"A\""#));
        assert!(!is_complete(&g, r#"[{"text":"x","label":"A\""}]"#));
    }

    #[test]
    fn a_text_is_listed_at_most_as_often_as_it_occurs() {
        let g = grammar("Paris or Paris", &["LOC"]);
        let one = r#"{"text":"Paris","label":"LOC"}"#;
        assert!(is_complete(&g, &format!("[{one},{one}]")));
        assert!(!is_prefix(&g, &format!(r#"[{one},{one},{{"text":"Paris""#)));
        assert!(is_complete(
            &g,
            &format!(r#"[{one},{one},{{"text":"Paris or Paris","label":"LOC"}}]"#)
        ));
        // Within one token too.
        let used = Used::new();
        let two = format!("[{one},{one},");
        assert!(g.walk(g.start(), &two, &used, |_, _, _| {}).is_some());
        let three = format!(r#"[{one},{one},{{"text":"Paris""#);
        assert!(g.walk(g.start(), &three, &used, |_, _, _| {}).is_none());
    }

    #[test]
    fn plain_prompts_answer_after_a_space() {
        let g = Grammar::new("Paris", &names(&["LOC"]), ChatFormat::Plain);
        assert!(is_complete(&g, " []"));
        assert!(is_complete(&g, r#" [{"text":"Paris","label":"LOC"}]"#));
        assert!(!is_prefix(&g, "["));
        assert!(!is_prefix(&g, "  ["));
    }

    /// A small vocabulary whose ids the decoding tests name.
    fn toy_texts() -> Vec<Option<String>> {
        [
            Some("["),                        // 0
            Some("]"),                        // 1
            Some("{\"text\":\""),             // 2
            Some("Paris"),                    // 3
            Some(" Paris"),                   // 4
            Some("\",\"label\":\""),          // 5
            Some("LOC"),                      // 6
            Some("ATION"),                    // 7
            Some("\"}"),                      // 8
            Some(","),                        // 9
            None,                             // 10: EOS
            Some("\n"),                       // 11
            Some("London"),                   // 12
            Some("Par"),                      // 13
            Some("is"),                       // 14
            Some("\"},{\"text\":\""),         // 15
            Some("\"}]"),                     // 16
            Some(" ["),                       // 17
            Some("\"},{\"text\":\"Paris\","), // 18
        ]
        .into_iter()
        .map(|t| t.map(str::to_string))
        .collect()
    }

    const EOS: u32 = 10;

    #[test]
    fn tokens_are_valid_when_all_their_characters_are() {
        let texts = toy_texts();
        let vocabulary = Vocabulary {
            texts: &texts,
            ends: vec![EOS],
        };
        let g = grammar("I love Paris.", &["LOC", "LOCATION"]);
        let used = Used::new();
        let at_start = |id| vocabulary.accepts(&g, g.start(), id, &used);
        assert_eq!(at_start(0), Some(Phase::First));
        for id in [1, 3, 9, 11, 17, EOS, 99] {
            assert_eq!(at_start(id), None, "{id}");
        }
        let text = run(&g, r#"[{"text":""#).unwrap();
        let valid: Vec<u32> = (0..texts.len() as u32)
            .filter(|&id| vocabulary.accepts(&g, text, id, &used).is_some())
            .collect();
        // "Paris", "Par", "is" (not " Paris", "London", nor a closing quote on an empty text).
        assert_eq!(valid, vec![3, 13, 14]);
        let label = run(&g, r#"[{"text":"Paris","label":"LOC"#).unwrap();
        let after = |id| vocabulary.accepts(&g, label, id, &used);
        assert!(after(7).is_some() && after(8).is_some() && after(16).is_some());
        assert_eq!(after(16), Some(Phase::Done));
        assert_eq!(after(15).map(Phase::is_complete_point), Some(false));
        assert_eq!(after(EOS), None);
        // EOS only once the array is complete.
        assert_eq!(
            vocabulary.accepts(&g, Phase::Done, EOS, &used),
            Some(Phase::Done)
        );
        assert_eq!(vocabulary.accepts(&g, Phase::Done, 1, &used), None);
    }

    #[test]
    fn candidates_are_tried_best_first_the_head_before_the_rest() {
        let mut order = Vec::new();
        let logits = [0.0, 3.0, f32::NAN, 3.0, 1.0];
        assert_eq!(choose(&logits, &mut order, Some), Some((1, 1)));
        let mut tried = Vec::new();
        let found = choose(&logits, &mut order, |id| {
            tried.push(id);
            (id == 2).then_some(())
        });
        assert_eq!(found, Some((2, ())));
        assert_eq!(tried, vec![1, 3, 4, 0, 2]);

        // 200 ids: the head is the 64 best, the rest is sorted only when needed.
        let logits: Vec<f32> = (0..200).map(|i| ((i * 37) % 200) as f32).collect();
        let mut tried = Vec::new();
        let found = choose(&logits, &mut order, |id| {
            tried.push(id);
            (logits[id as usize] < 100.0).then_some(())
        });
        let best_below_100 = (0..200u32).find(|&i| logits[i as usize] == 99.0).unwrap();
        assert_eq!(found, Some((best_below_100, ())));
        assert_eq!(tried.len(), 101);
        assert!(tried
            .windows(2)
            .all(|w| logits[w[0] as usize] > logits[w[1] as usize]));
        assert_eq!(choose(&[], &mut order, Some), None);
    }

    /// A toy model with scripted preferences: at step `k` the ids of `script[k]` get the logits
    /// 10, 9, 8, … in that order, every other id 0 (ties go to the lower id).
    struct Scripted {
        script: Vec<Vec<u32>>,
        vocab: usize,
        fed: Vec<u32>,
        logits: Vec<f32>,
    }

    impl Scripted {
        fn new(vocab: usize, script: Vec<Vec<u32>>) -> Scripted {
            let mut s = Scripted {
                script,
                vocab,
                fed: Vec::new(),
                logits: Vec::new(),
            };
            s.refresh();
            s
        }

        fn refresh(&mut self) {
            self.logits = vec![0.0; self.vocab];
            if let Some(preferences) = self.script.get(self.fed.len()) {
                for (rank, &id) in preferences.iter().enumerate() {
                    self.logits[id as usize] = 10.0 - rank as f32;
                }
            }
        }
    }

    impl Generator for Scripted {
        fn logits(&self) -> &[f32] {
            &self.logits
        }

        fn feed(&mut self, token: u32) -> Result<(), MlError> {
            self.fed.push(token);
            self.refresh();
            Ok(())
        }
    }

    #[test]
    fn greedy_decoding_takes_the_best_token_the_grammar_allows() {
        let texts = toy_texts();
        let vocabulary = Vocabulary {
            texts: &texts,
            ends: vec![EOS],
        };
        let g = grammar("I love Paris.", &["LOC", "LOCATION"]);
        let script = vec![
            vec![11, 0],       // "\n" is not allowed before "["
            vec![2],           // {"text":"
            vec![12, 4, 13],   // "London" is not in the text, " Paris" starts with a space
            vec![14],          // "is"
            vec![5],           // ","label":"
            vec![6],           // "LOC"
            vec![7],           // "ATION"
            vec![EOS, 18, 16], // EOS before the end, a second "Paris" that is not there
            vec![1],
        ];
        let mut lm = Scripted::new(texts.len(), script);
        let out = generate(&mut lm, &g, &vocabulary, 100).unwrap();
        assert_eq!(
            out,
            Generated {
                json: r#"[{"text":"Paris","label":"LOCATION"}]"#.to_string(),
                truncated: false,
            }
        );
        // The closing token is chosen, never fed.
        assert_eq!(lm.fed, vec![0, 2, 13, 14, 5, 6, 7]);
    }

    #[test]
    fn a_token_limit_drops_the_unfinished_object_and_closes_the_array() {
        let texts = toy_texts();
        let vocabulary = Vocabulary {
            texts: &texts,
            ends: vec![EOS],
        };
        let g = grammar("Paris, Paris, Paris", &["LOC"]);
        // [ {"text":" Paris ","label":" LOC "},{"text":" Paris …
        let script: Vec<Vec<u32>> = [0, 2, 3, 5, 6, 15, 3, 5, 6, 15, 3]
            .iter()
            .map(|&id| vec![id])
            .collect();
        let one = r#"{"text":"Paris","label":"LOC"}"#;
        for (limit, json) in [
            (0, "[]".to_string()),
            (1, "[]".to_string()),
            (5, "[]".to_string()),
            (6, format!("[{one}]")),
            (9, format!("[{one}]")),
            (10, format!("[{one},{one}]")),
        ] {
            let mut lm = Scripted::new(texts.len(), script.clone());
            let out = generate(&mut lm, &g, &vocabulary, limit).unwrap();
            assert_eq!(out.json, json, "limit {limit}");
            assert!(out.truncated);
            assert_eq!(lm.fed.len(), limit.saturating_sub(1), "limit {limit}");
        }
        // No token can continue: closed the same way.
        let only_open = vec![Some("[".to_string()), Some("x".to_string())];
        let vocabulary = Vocabulary {
            texts: &only_open,
            ends: Vec::new(),
        };
        let mut lm = Scripted::new(2, Vec::new());
        let out = generate(&mut lm, &g, &vocabulary, 50).unwrap();
        assert_eq!(
            out,
            Generated {
                json: "[]".to_string(),
                truncated: true
            }
        );
        assert_eq!(lm.fed, vec![0]);
    }

    /// A toy model whose logits are a hash of everything fed (as model.rs's `Toy`).
    struct Hashed {
        seed: u64,
        vocab: usize,
        fed: Vec<u32>,
        logits: Vec<f32>,
    }

    impl Hashed {
        fn new(seed: u64, vocab: usize) -> Hashed {
            let mut h = Hashed {
                seed,
                vocab,
                fed: Vec::new(),
                logits: Vec::new(),
            };
            h.refresh();
            h
        }

        fn refresh(&mut self) {
            let mut h: u64 = 1469598103934665603 ^ self.seed.wrapping_mul(0x9E3779B97F4A7C15);
            for &t in &self.fed {
                h = (h ^ u64::from(t)).wrapping_mul(1099511628211);
            }
            self.logits = (0..self.vocab as u64)
                .map(|v| {
                    let x = (h ^ v.wrapping_mul(0x9E3779B97F4A7C15)).wrapping_mul(1099511628211);
                    ((x >> 40) % 1000) as f32 / 100.0
                })
                .collect();
        }
    }

    impl Generator for Hashed {
        fn logits(&self) -> &[f32] {
            &self.logits
        }

        fn feed(&mut self, token: u32) -> Result<(), MlError> {
            self.fed.push(token);
            self.refresh();
            Ok(())
        }
    }

    #[test]
    fn any_model_output_is_valid_json_whose_mentions_can_be_placed() {
        let text = "Zoë met \"Jo\" in Köln\nand Köln again 😀";
        let labels = names(&["PER", "PERSON", "LOC"]);
        // The pieces of the toy vocabulary, `|`-separated.
        let fragments = concat!(
            r#"[|]|{|}|,|"|:|text|label|{"text":"|","label":"|"}|"},|PER|SON|LOC|PERSON|\|\"|"#,
            r#"n|u|00|eb|d83d|de00|\n|Zo|ë| met|Jo| in|Köln|K|ö|ln| |and| again|😀|"#,
            "\n|x|\\u00f6|\\ud83d|\\ude00",
        )
        .split('|');
        let mut texts: Vec<Option<String>> = fragments.map(|f| Some(f.to_string())).collect();
        texts.push(None);
        let vocabulary = Vocabulary {
            texts: &texts,
            ends: vec![texts.len() as u32 - 1],
        };
        let g = Grammar::new(text, &labels, ChatFormat::ChatMl { think: false });
        let chars: Vec<char> = text.chars().collect();
        let (mut spans, mut finished) = (0, 0);
        for seed in 0..200 {
            let mut lm = Hashed::new(seed, texts.len());
            let out = generate(&mut lm, &g, &vocabulary, 60).unwrap();
            let listed: Vec<Mention<String>> = serde_json::from_str(&out.json)
                .unwrap_or_else(|e| panic!("seed {seed}: {:?}: {e}", out.json));
            let mut mentions = Vec::new();
            for m in &listed {
                assert!(text.contains(m.text.as_str()), "seed {seed}: {:?}", m.text);
                let label = labels.iter().position(|l| *l == m.label).unwrap();
                mentions.push((m.text.clone(), label));
            }
            let (placed, unmatched) = place_mentions(text, &mentions);
            assert_eq!(unmatched, 0, "seed {seed}: {}", out.json);
            assert_eq!(placed.len(), listed.len());
            for s in &placed {
                let at: String = chars[s.start..s.end].iter().collect();
                assert_eq!(at, s.text, "seed {seed}");
            }
            spans += placed.len();
            finished += usize::from(!out.truncated);
        }
        assert!(spans > 20, "{spans} spans in all");
        assert!(finished > 20, "{finished} answers closed by the model");
    }

    #[test]
    fn mentions_are_placed_at_unused_occurrences_in_code_points() {
        let text = "Paris, then Paris again";
        let listed = |ms: &[(&str, usize)]| -> Vec<(String, usize)> {
            ms.iter().map(|(m, l)| (m.to_string(), *l)).collect()
        };
        let (spans, unmatched) =
            place_mentions(text, &listed(&[("Paris", 0), ("Paris", 1), ("Paris", 0)]));
        assert_eq!(unmatched, 1);
        assert_eq!(
            spans
                .iter()
                .map(|s| (s.start, s.end, s.label))
                .collect::<Vec<_>>(),
            vec![(0, 5, 0), (12, 17, 1)]
        );

        let text = "Zoë met Jürgen in Köln, Köln!";
        let (spans, unmatched) = place_mentions(
            text,
            &listed(&[
                (" Köln ", 2),
                ("Köln", 2),
                ("Jürgen", 1),
                ("  ", 0),
                ("Berlin", 2),
                ("Zoë", 1),
            ]),
        );
        assert_eq!(unmatched, 2);
        let chars: Vec<char> = text.chars().collect();
        let found: Vec<(usize, usize, &str)> = spans
            .iter()
            .map(|s| (s.start, s.end, s.text.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (0, 3, "Zoë"),
                (8, 14, "Jürgen"),
                (18, 22, "Köln"),
                (24, 28, "Köln")
            ]
        );
        for s in &spans {
            assert_eq!(chars[s.start..s.end].iter().collect::<String>(), s.text);
        }

        // Overlapping occurrences are distinct occurrences.
        let (spans, unmatched) = place_mentions("aaa", &listed(&[("aa", 0), ("aa", 0)]));
        assert_eq!(unmatched, 0);
        assert_eq!((spans[0].start, spans[1].start), (0, 1));
    }

    #[test]
    fn prompts_list_the_labels_and_answer_demonstrations_in_canonical_json() {
        let spec = SpanPromptSpec {
            guidelines: Some("Only proper names.".to_string()),
            labels: vec![
                LabelSpec {
                    name: "PERSON".to_string(),
                    description: Some("a person".to_string()),
                },
                LabelSpec::new("LOCATION"),
            ],
            demonstrations: vec![SpanDemonstration {
                text: "Obama spoke in \"Ohio\".".to_string(),
                mentions: vec![("Obama".to_string(), 0), ("\"Ohio\"".to_string(), 1)],
            }],
        };
        let system = span_instructions(Some("Only proper names."), &spec.labels);
        assert!(
            system.contains("- PERSON: a person\n- LOCATION\n"),
            "{system}"
        );
        assert!(system.contains("Guidelines:\nOnly proper names.\n"));
        assert!(
            system.contains(r#"[{"text":"words copied exactly from the text","label":"PERSON"}]"#)
        );

        let chat = SpanPrompt::new(ChatFormat::ChatMl { think: false }, &spec).unwrap();
        let p = chat.render("Merkel in Berlin");
        assert!(p.contains(
            "<|im_start|>user\nText: Obama spoke in \"Ohio\".<|im_end|>\n<|im_start|>assistant\n\
             [{\"text\":\"Obama\",\"label\":\"PERSON\"},{\"text\":\"\\\"Ohio\\\"\",\"label\":\"LOCATION\"}]<|im_end|>\n"
        ), "{p}");
        assert!(p.ends_with(
            "<|im_start|>user\nText: Merkel in Berlin<|im_end|>\n<|im_start|>assistant\n"
        ));
        // The demonstration's answer is in the language the grammar decodes.
        let g = Grammar::new("Obama spoke in \"Ohio\".", &chat.names, chat.format);
        assert!(is_complete(&g, &chat.demonstrations[0].1));

        let plain = SpanPrompt::new(ChatFormat::Plain, &spec).unwrap();
        assert!(plain.demonstrations[0].1.starts_with(" [{"));
        assert!(plain.render("x").ends_with("Text: x\nAnswer:"));
        let g = Grammar::new("Obama spoke in \"Ohio\".", &plain.names, plain.format);
        assert!(is_complete(&g, &plain.demonstrations[0].1));
    }

    #[test]
    fn bad_span_specs_are_refused() {
        let format = ChatFormat::Plain;
        assert!(matches!(
            SpanPrompt::new(format, &SpanPromptSpec::default()),
            Err(MlError::Config(_))
        ));
        let labels = vec![LabelSpec::new("LOC")];
        let with_demo = |mention: &str, label: usize| SpanPromptSpec {
            labels: labels.clone(),
            demonstrations: vec![SpanDemonstration {
                text: "in Paris".to_string(),
                mentions: vec![(mention.to_string(), label)],
            }],
            ..SpanPromptSpec::default()
        };
        assert!(SpanPrompt::new(format, &with_demo("Paris", 0)).is_ok());
        for spec in [
            with_demo("Paris", 1),
            with_demo("Berlin", 0),
            with_demo(" ", 0),
            SpanPromptSpec {
                labels: vec![LabelSpec::new(" ")],
                ..SpanPromptSpec::default()
            },
        ] {
            assert!(
                matches!(SpanPrompt::new(format, &spec), Err(MlError::Config(_))),
                "{spec:?}"
            );
        }
    }

    /// GPT-2's byte-to-character table (as in the tokenizer's tests).
    fn byte_chars() -> Vec<char> {
        let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut chars: Vec<u32> = printable.clone();
        let mut extra = 0;
        for b in 0..256u32 {
            if !printable.contains(&b) {
                printable.push(b);
                chars.push(256 + extra);
                extra += 1;
            }
        }
        let mut table = vec!['\0'; 256];
        for (b, c) in printable.iter().zip(chars) {
            table[*b as usize] = char::from_u32(c).unwrap();
        }
        table
    }

    #[test]
    fn byte_level_token_texts() {
        let table = byte_chars();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<|im_end|>".into()];
        let mut token_types = vec![token_type::CONTROL, token_type::CONTROL];
        for c in &table {
            tokens.push(c.to_string());
            token_types.push(token_type::NORMAL);
        }
        let merges = ["Ġ i", "Ġi s", "Ã ©"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
            token_types.push(token_type::NORMAL);
        }
        let vocab = GgufVocab {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens,
            token_types,
            merges: merges.iter().map(|m| m.to_string()).collect(),
            eos: Some(0),
            add_bos: Some(false),
            ..GgufVocab::default()
        };
        let t = GgufTokenizer::from_vocab(&vocab).unwrap();
        let texts = token_texts(&t).unwrap();
        assert_eq!(texts.len(), t.vocab_len());
        let text = |token: &str| texts[t.token_id(token).unwrap() as usize].as_deref();
        assert_eq!(text("Ġis"), Some(" is"));
        assert_eq!(text("a"), Some("a"));
        assert_eq!(text(&table[usize::from(b'\n')].to_string()), Some("\n"));
        assert_eq!(text("Ã©"), Some("é"));
        // Half of "é" is not text on its own; control tokens have none.
        assert_eq!(text("Ã"), None);
        assert_eq!(text("<|im_end|>"), None);
        assert_eq!(text("<|endoftext|>"), None);
    }

    #[test]
    fn sentencepiece_token_texts() {
        let space = "\u{2581}";
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<bos>".into(), "<eos>".into()];
        let mut token_types = vec![
            token_type::UNKNOWN,
            token_type::CONTROL,
            token_type::CONTROL,
        ];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            token_types.push(token_type::BYTE);
            scores.push(0.0);
        }
        for (piece, score) in [
            (" ", -1.0),
            ("a", -2.0),
            ("h", -3.0),
            ("i", -4.0),
            (" h", -5.0),
            (" hi", -6.0),
        ] {
            tokens.push(piece.replace(' ', space));
            token_types.push(token_type::NORMAL);
            scores.push(score);
        }
        tokens.push("<start_of_turn>".into());
        token_types.push(token_type::CONTROL);
        scores.push(-1000.0);
        tokens.push("\n".into());
        token_types.push(token_type::USER_DEFINED);
        scores.push(-1000.0);
        let vocab = GgufVocab {
            model: "llama".into(),
            pre: Some("default".into()),
            tokens,
            token_types,
            scores,
            bos: Some(1),
            eos: Some(2),
            unknown: Some(0),
            add_space_prefix: Some(true),
            ..GgufVocab::default()
        };
        let t = GgufTokenizer::from_vocab(&vocab).unwrap();
        let texts = token_texts(&t).unwrap();
        let text = |token: &str| texts[t.token_id(token).unwrap() as usize].as_deref();
        // Mid-text, the leading space a decoder strips at the start of a text stays.
        assert_eq!(text(&format!("{space}hi")), Some(" hi"));
        assert_eq!(text(space), Some(" "));
        assert_eq!(text("a"), Some("a"));
        assert_eq!(text("\n"), Some("\n"));
        for none in [
            "<0x41>",
            "<0xC3>",
            "<start_of_turn>",
            "<unk>",
            "<bos>",
            "<eos>",
        ] {
            assert_eq!(text(none), None, "{none}");
        }
    }
}
