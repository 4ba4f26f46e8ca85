//! The span editor's state and what every key and pointer action does to it, with no UI: the
//! annotation page and the review page's gold editor drive it and paint what it reports, and
//! the tests here drive it directly.
//!
//! Offsets are Unicode code points of the item text, as everywhere in Concord. The cursor is a
//! token index in token mode and a code point index in character mode (for entities smaller
//! than a token). Spans are kept in document order (start, then longer first), which is also
//! the order Tab walks them and the page lists them.
//!
//! Speed is a design goal (a 5,000-word item with 500 spans answers a key within one frame):
//! each action reports the token ranges whose look may have changed ([`Repaint`]), so the page
//! repaints only those tokens, and whether the span list changed at all.

use std::ops::Range;

use concord_domain::tokens::{covered_tokens, OffsetMap, Token};
use concord_domain::{Span, SuggestedSpan};

mod relations;
pub use relations::{Arc, ArcKind, EditorRelation, RelationRow};

/// The message shown when a flat project refuses a span that would overlap another.
pub const OVERLAP_REFUSED: &str = "overlapping spans are not allowed in this project";

/// How many edits undo remembers.
const UNDO_DEPTH: usize = 1_000;

/// A label as the editor knows it: its name and its hotkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorLabel {
    pub name: String,
    pub hotkey: Option<String>,
}

/// Whose span it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpanKind {
    /// The annotator's own (what Enter submits).
    Own,
    /// A model's suggestion not yet accepted or rejected, with its confidence (0–1).
    Suggested { confidence: f32 },
}

impl SpanKind {
    /// A suggestion's confidence; `None` for the annotator's own.
    fn confidence(self) -> Option<f32> {
        match self {
            SpanKind::Own => None,
            SpanKind::Suggested { confidence } => Some(confidence),
        }
    }
}

/// One span in the editor. `label` indexes the editor's labels; `id` stays the same while the
/// span is edited, so the page can key its list by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EditorSpan {
    pub id: u32,
    pub start: u32,
    pub end: u32,
    pub label: u16,
    pub kind: SpanKind,
}

impl EditorSpan {
    fn is_own(&self) -> bool {
        self.kind == SpanKind::Own
    }

    fn overlaps(&self, start: u32, end: u32) -> bool {
        self.start < end && start < self.end
    }

    /// Document order: by start, the longer (outer) span first, then by label and id.
    fn order_key(&self) -> (u32, std::cmp::Reverse<u32>, u16, u32) {
        (self.start, std::cmp::Reverse(self.end), self.label, self.id)
    }
}

/// What the cursor moves over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Token,
    Character,
}

/// A key the editor may act on, from the browser's `KeyboardEvent.key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Left,
    Right,
    Home,
    End,
    Tab,
    Enter,
    Escape,
    Delete,
    Backspace,
    Char(char),
    /// Any other key (function keys, Space, modifiers alone): never the editor's.
    Other,
}

/// A key press with its modifiers (`ctrl` is Control or the Mac's Command key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPress {
    pub key: Key,
    pub shift: bool,
    pub ctrl: bool,
}

impl KeyPress {
    /// Reads `KeyboardEvent.key`: named keys by name, any other single character as itself.
    pub fn parse(key: &str, shift: bool, ctrl: bool) -> KeyPress {
        let key = match key {
            "ArrowLeft" => Key::Left,
            "ArrowRight" => Key::Right,
            "Home" => Key::Home,
            "End" => Key::End,
            "Tab" => Key::Tab,
            "Enter" => Key::Enter,
            "Escape" => Key::Escape,
            "Delete" => Key::Delete,
            "Backspace" => Key::Backspace,
            " " => Key::Other,
            other => {
                let mut chars = other.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Key::Char(c),
                    _ => Key::Other,
                }
            }
        };
        KeyPress { key, shift, ctrl }
    }
}

/// What the page must do after an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not the editor's key: the page may use it (or let the browser have it).
    Ignored,
    /// Handled: repaint these parts.
    Handled(Repaint),
    /// Enter: submit the annotator's spans.
    Submit,
    /// `?`: show or hide the guidelines.
    Guidelines,
}

/// The parts of the page an action may have changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaint {
    /// Token index ranges to repaint, sorted and disjoint.
    pub tokens: Vec<Range<usize>>,
    /// Whether the span list (its spans, or which one is selected) changed.
    pub list: bool,
}

/// One line of the span list.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub id: u32,
    pub start: u32,
    pub end: u32,
    pub label: String,
    pub label_index: u16,
    /// `None` for the annotator's own span.
    pub confidence: Option<f32>,
    pub selected: bool,
    /// The covered text.
    pub text: String,
}

impl SpanRow {
    /// `own` or `suggested`.
    pub fn kind(&self) -> &'static str {
        row_kind(self.confidence)
    }

    /// `PERSON “Empire State” 0.93` (the confidence only for a suggestion).
    pub fn describe(&self) -> String {
        match self.confidence {
            Some(c) => format!("{} “{}” {c:.2}", self.label, self.text),
            None => format!("{} “{}”", self.label, self.text),
        }
    }
}

#[derive(Debug, Clone)]
struct Snapshot {
    spans: Vec<EditorSpan>,
    selected: Option<u32>,
    relations: Vec<EditorRelation>,
    selected_relation: Option<u32>,
}

/// Which end of the selected span a key moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    Start,
    End,
}

/// The editor: text, tokens, spans, cursor, selection and history.
#[derive(Debug, Clone)]
pub struct SpanEditor {
    text: String,
    offsets: OffsetMap,
    /// Where each user-perceived character starts (and the text's end), in code points:
    /// character mode moves between these, never inside an emoji sequence or before a
    /// combining mark.
    characters: Vec<u32>,
    tokens: Vec<Token>,
    labels: Vec<EditorLabel>,
    overlapping: bool,
    threshold: u8,
    spans: Vec<EditorSpan>,
    next_id: u32,
    mode: Mode,
    /// A token index (token mode) or a code point index (character mode).
    cursor: u32,
    /// The other end of a text selection, in the cursor's unit.
    anchor: Option<u32>,
    selected: Option<u32>,
    /// The token a pointer press began on, while the button is down.
    pressed_on: Option<usize>,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
    message: Option<String>,
    /// Relations projects: relation types, relations, the relation being made and the
    /// selected one (`relations.rs`).
    rel: relations::RelationState,
}

impl SpanEditor {
    /// An editor over `text` and its `tokens`, starting from the annotator's `own` spans and a
    /// model's `suggested` ones (a suggestion equal to an own span, or in a flat project
    /// overlapping one, is left out: the annotator already decided there). Spans whose label
    /// is not among `labels` keep it (it is added, without a hotkey) rather than being lost.
    pub fn new(
        text: &str,
        tokens: Vec<Token>,
        mut labels: Vec<EditorLabel>,
        overlapping: bool,
        threshold: u8,
        own: &[Span],
        suggested: &[SuggestedSpan],
    ) -> SpanEditor {
        let mut label_index = |name: &str| -> u16 {
            index_or_add(
                &mut labels,
                |l| l.name == name,
                || EditorLabel {
                    name: name.to_string(),
                    hotkey: None,
                },
            )
        };
        let mut spans = Vec::with_capacity(own.len() + suggested.len());
        let mut next_id = 0u32;
        for s in own {
            spans.push(EditorSpan {
                id: next_id,
                start: s.start,
                end: s.end,
                label: label_index(&s.label),
                kind: SpanKind::Own,
            });
            next_id += 1;
        }
        for s in suggested {
            spans.push(EditorSpan {
                id: next_id,
                start: s.start,
                end: s.end,
                label: label_index(&s.label),
                kind: SpanKind::Suggested {
                    confidence: s.confidence,
                },
            });
            next_id += 1;
        }
        let mut editor = SpanEditor {
            offsets: OffsetMap::new(text),
            characters: concord_domain::tokens::grapheme_boundaries(text),
            text: text.to_string(),
            tokens,
            labels,
            overlapping,
            threshold,
            spans,
            next_id,
            mode: Mode::Token,
            cursor: 0,
            anchor: None,
            selected: None,
            pressed_on: None,
            undo: Vec::new(),
            redo: Vec::new(),
            message: None,
            rel: relations::RelationState {
                loaded_own: u32::try_from(own.len()).unwrap_or(u32::MAX),
                ..Default::default()
            },
        };
        let own_spans: Vec<EditorSpan> = editor
            .spans
            .iter()
            .copied()
            .filter(EditorSpan::is_own)
            .collect();
        for span in own_spans {
            editor.drop_superseded_suggestions(&span);
        }
        editor.sort();
        editor
    }

    // ----- reading -----

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn labels(&self) -> &[EditorLabel] {
        &self.labels
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Every span, own and suggested, in document order.
    pub fn all_spans(&self) -> &[EditorSpan] {
        &self.spans
    }

    /// The selected span, if any.
    pub fn selected(&self) -> Option<EditorSpan> {
        self.selected.and_then(|id| self.find(id))
    }

    /// The annotator's own spans, the answer Enter submits (document order).
    pub fn own_spans(&self) -> Vec<Span> {
        self.spans
            .iter()
            .filter(|s| s.is_own())
            .map(|s| Span::new(s.start, s.end, self.label_name(s.label)))
            .collect()
    }

    /// How many suggestions are still open.
    pub fn open_suggestions(&self) -> usize {
        self.spans.iter().filter(|s| !s.is_own()).count()
    }

    /// The text between two code point offsets (empty when out of range).
    pub fn slice(&self, start: u32, end: u32) -> &str {
        self.offsets.slice(&self.text, start, end).unwrap_or("")
    }

    /// The token the cursor is on (in character mode, the token holding the cursor's
    /// character, or the next one after whitespace).
    pub fn cursor_token(&self) -> Option<usize> {
        if self.tokens.is_empty() {
            return None;
        }
        Some(match self.mode {
            Mode::Token => self.cursor as usize,
            Mode::Character => self.token_at_cp(self.cursor),
        })
    }

    /// The code point range the text selection covers (`None` without one).
    pub fn selection(&self) -> Option<(u32, u32)> {
        self.anchor.and_then(|a| self.unit_range(a, self.cursor))
    }

    /// One line saying where the cursor is: the mode, and the cursor's or selection's text.
    pub fn describe_cursor(&self) -> String {
        let mode = match self.mode {
            Mode::Token => "token mode",
            Mode::Character => "character mode",
        };
        let Some((start, end)) = self.target_range() else {
            return format!("{mode} · no text");
        };
        let what = if self.anchor.is_some() {
            "selection"
        } else {
            "cursor"
        };
        let mut line = format!(
            "{mode} · {what} “{}” ({start}–{end})",
            self.slice(start, end)
        );
        // The spans around the cursor by name: on a long item the page shows labels by colour
        // only (see `SpanEditorView`), so this line is where a label is read.
        let (lo, hi) = self
            .cursor_token()
            .map_or((start, end), |t| (self.tokens[t].start, self.tokens[t].end));
        let around: Vec<String> = self
            .spans
            .iter()
            .filter(|s| s.overlaps(lo, hi))
            .map(|s| {
                let suggested = if s.is_own() { "" } else { "suggested " };
                format!(
                    "{suggested}{} “{}”",
                    self.label_name(s.label),
                    self.slice(s.start, s.end)
                )
            })
            .collect();
        if !around.is_empty() {
            line.push_str(" · in ");
            line.push_str(&around.join(", "));
        }
        line
    }

    /// The span list, in document order.
    pub fn rows(&self) -> Vec<SpanRow> {
        self.spans
            .iter()
            .map(|s| SpanRow {
                id: s.id,
                start: s.start,
                end: s.end,
                label: self.label_name(s.label).to_string(),
                label_index: s.label,
                confidence: s.kind.confidence(),
                selected: self.selected == Some(s.id),
                text: self.slice(s.start, s.end).to_string(),
            })
            .collect()
    }

    /// The class attribute of each token in `range`: `tok`, then `cursor`, `sel` (in the text
    /// selection), `own` / `sug` (covered by an own span / an open suggestion), `lN` (the label
    /// index of the innermost covering span, own first), `b` / `e` (an own span begins / ends
    /// here), `sb` / `se` (likewise for a suggestion), `nest` (inside two or more own spans),
    /// `part` (a span boundary falls inside the token: a character-mode span), `pick` (the
    /// selected span covers it), `tail` (the span a relation being made would go to) and `rel`
    /// (the other end of the selected relation).
    pub fn token_classes(&self, range: Range<usize>) -> Vec<String> {
        let range = range.start.min(self.tokens.len())..range.end.min(self.tokens.len());
        let n = range.len();
        #[derive(Default, Clone, Copy)]
        struct Cover {
            own: u8,
            own_label: Option<(u32, u16)>,
            sug_label: Option<(u32, u16)>,
            sug: bool,
            b: bool,
            e: bool,
            sb: bool,
            se: bool,
            part: bool,
            pick: bool,
        }
        let mut cover = vec![Cover::default(); n];
        if n > 0 {
            let (lo, hi) = (
                self.tokens[range.start].start,
                self.tokens[range.end - 1].end,
            );
            for span in &self.spans {
                if !span.overlaps(lo, hi) {
                    continue;
                }
                let Some(covered) = covered_tokens(&self.tokens, span.start, span.end) else {
                    continue;
                };
                let first = covered.start;
                let last = covered.end - 1;
                let len = span.end - span.start;
                let picked = self.selected == Some(span.id);
                for t in covered.start.max(range.start)..covered.end.min(range.end) {
                    let c = &mut cover[t - range.start];
                    let token = self.tokens[t];
                    if (t == first && span.start > token.start)
                        || (t == last && span.end < token.end)
                    {
                        c.part = true;
                    }
                    c.pick |= picked;
                    if span.is_own() {
                        c.own = c.own.saturating_add(1);
                        c.b |= t == first;
                        c.e |= t == last;
                        if c.own_label.is_none_or(|(l, _)| len < l) {
                            c.own_label = Some((len, span.label));
                        }
                    } else {
                        c.sug = true;
                        c.sb |= t == first;
                        c.se |= t == last;
                        if c.sug_label.is_none_or(|(l, _)| len < l) {
                            c.sug_label = Some((len, span.label));
                        }
                    }
                }
            }
        }
        let cursor = self.cursor_token();
        let selection = self
            .selection()
            .and_then(|(s, e)| covered_tokens(&self.tokens, s, e));
        let (tail, other) = self.relation_marks();
        let marked = |id: Option<u32>| {
            id.and_then(|id| self.find(id))
                .and_then(|s| covered_tokens(&self.tokens, s.start, s.end))
        };
        let (tail, other) = (marked(tail), marked(other));
        cover
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let t = range.start + k;
                let mut class = String::from("tok");
                let mut add = |on: bool, name: &str| {
                    if on {
                        class.push(' ');
                        class.push_str(name);
                    }
                };
                add(cursor == Some(t), "cursor");
                add(selection.as_ref().is_some_and(|s| s.contains(&t)), "sel");
                add(c.own > 0, "own");
                add(c.sug, "sug");
                add(c.b, "b");
                add(c.e, "e");
                add(c.sb, "sb");
                add(c.se, "se");
                add(c.own > 1, "nest");
                add(c.part, "part");
                add(c.pick, "pick");
                add(tail.as_ref().is_some_and(|r| r.contains(&t)), "tail");
                add(other.as_ref().is_some_and(|r| r.contains(&t)), "rel");
                if let Some((_, label)) = c.own_label.or(c.sug_label) {
                    class.push_str(&format!(" l{label}"));
                }
                class
            })
            .collect()
    }

    // ----- acting -----

    /// Acts on a key press.
    pub fn press(&mut self, key: KeyPress) -> Outcome {
        if let Some(outcome) = self.press_relation_key(key) {
            return outcome;
        }
        if key.ctrl {
            // By the letter, whatever Caps Lock says: Shift decides between undo and redo.
            return match key.key {
                Key::Char(c) if c.eq_ignore_ascii_case(&'z') && !key.shift => {
                    self.tracked(Self::undo)
                }
                Key::Char(c) if c.eq_ignore_ascii_case(&'z') || c.eq_ignore_ascii_case(&'y') => {
                    self.tracked(Self::redo)
                }
                _ => Outcome::Ignored,
            };
        }
        match key.key {
            Key::Left => self.tracked(|e| e.step(-1, key.shift)),
            Key::Right => self.tracked(|e| e.step(1, key.shift)),
            Key::Home => self.tracked(|e| e.jump(false, key.shift)),
            Key::End => self.tracked(|e| e.jump(true, key.shift)),
            Key::Tab => self.tracked(|e| e.walk(key.shift)),
            Key::Enter => Outcome::Submit,
            Key::Escape => self.tracked(Self::clear),
            Key::Delete | Key::Backspace => self.tracked(Self::delete_selected),
            Key::Char('?') => Outcome::Guidelines,
            Key::Char('[') => self.tracked(|e| e.nudge(Boundary::Start, -1)),
            Key::Char(']') => self.tracked(|e| e.nudge(Boundary::Start, 1)),
            Key::Char('{') => self.tracked(|e| e.nudge(Boundary::End, -1)),
            Key::Char('}') => self.tracked(|e| e.nudge(Boundary::End, 1)),
            Key::Char('`') => self.tracked(Self::toggle_mode),
            Key::Char('+') => self.tracked(Self::accept_selected),
            Key::Char('-') => self.tracked(Self::reject_selected),
            Key::Char('=') => self.tracked(Self::accept_all),
            Key::Char(c) => match self.label_for_key(c) {
                Some(label) => self.tracked(|e| e.apply_label(label)),
                None => Outcome::Ignored,
            },
            Key::Other => Outcome::Ignored,
        }
    }

    /// Labels the selection (or relabels the selected span) with the label called `name`: a
    /// click on a label button.
    pub fn label_named(&mut self, name: &str) -> Outcome {
        match self
            .labels
            .iter()
            .position(|l| l.name == name)
            .and_then(|i| u16::try_from(i).ok())
        {
            Some(label) => self.tracked(|e| e.apply_label(label)),
            None => Outcome::Ignored,
        }
    }

    /// The length of the text in code points.
    pub fn text_len(&self) -> u32 {
        self.offsets.len()
    }

    /// A pointer press on token `t`: the cursor goes there and a selection starts.
    pub fn pointer_down(&mut self, t: usize) -> Outcome {
        if t >= self.tokens.len() {
            return Outcome::Ignored;
        }
        self.tracked(|e| {
            e.selected = None;
            e.pressed_on = Some(t);
            e.select_tokens(t, t);
        })
    }

    /// The pointer, button down, moved over token `t`: the selection stretches to it.
    pub fn pointer_over(&mut self, t: usize) -> Outcome {
        match self.pressed_on {
            Some(from) if t < self.tokens.len() => self.tracked(|e| e.select_tokens(from, t)),
            _ => Outcome::Ignored,
        }
    }

    /// The pointer button came up on token `t` (or outside any token). A click (down and up
    /// on one token) inside spans selects the innermost of them, own spans first.
    pub fn pointer_up(&mut self, t: Option<usize>) -> Outcome {
        let Some(from) = self.pressed_on.take() else {
            return Outcome::Ignored;
        };
        if t != Some(from) {
            // In a relations project, a drag from one of the annotator's spans to another
            // starts a relation between them (the type key or the type menu finishes it).
            if let (true, Some(to)) = (self.has_relations(), t) {
                let (head, tail) = (self.own_span_at(from), self.own_span_at(to));
                if let (Some(head), Some(tail)) = (head, tail) {
                    if head != tail {
                        return self.tracked(|e| {
                            e.anchor = None;
                            e.start_relation_between(head, tail);
                        });
                    }
                }
            }
            return Outcome::Handled(Repaint::default());
        }
        let token = self.tokens[from];
        let innermost = self
            .spans
            .iter()
            .filter(|s| s.overlaps(token.start, token.end))
            .min_by_key(|s| (!s.is_own(), s.end - s.start))
            .map(|s| s.id);
        match innermost {
            Some(id) => self.tracked(|e| e.select_span(id)),
            None => Outcome::Handled(Repaint::default()),
        }
    }

    /// Selects span `id` (a click in the span list).
    pub fn select(&mut self, id: u32) -> Outcome {
        if self.find(id).is_none() {
            return Outcome::Ignored;
        }
        self.tracked(|e| e.select_span(id))
    }

    /// Replaces the own spans with `spans` as one undoable edit (the reviewer taking an
    /// annotator's answer); open suggestions stay unless they conflict.
    pub fn replace_own(&mut self, spans: &[Span], what: &str) -> Outcome {
        self.replace_own_answer(spans, &[], what)
    }

    /// Runs an action and works out what it changed on the page.
    fn tracked(&mut self, action: impl FnOnce(&mut Self)) -> Outcome {
        let before_spans = self.spans.clone();
        let before_selected = self.selected;
        let before_relations = (
            self.rel.relations.clone(),
            self.rel.pending,
            self.rel.selected,
        );
        let mut ranges = self.footprint();
        self.message = None;
        action(self);
        // Another span selected lets go of the selected relation (unless the action chose
        // one), so Delete never removes a relation the page no longer points at.
        if self.selected != before_selected && self.rel.selected == before_relations.2 {
            self.rel.selected = None;
        }
        self.prune_relations();
        ranges.extend(self.footprint());
        let spans_changed = before_spans != self.spans;
        if spans_changed {
            ranges.extend(self.changed_ranges(before_spans));
        }
        // The relation list and the arcs are repainted with the span list.
        let relations_changed = before_relations.0 != self.rel.relations
            || before_relations.1 != self.rel.pending
            || before_relations.2 != self.rel.selected;
        Outcome::Handled(Repaint {
            tokens: merge(ranges),
            list: spans_changed || before_selected != self.selected || relations_changed,
        })
    }

    /// The tokens the cursor, the text selection and the selected span occupy.
    fn footprint(&self) -> Vec<Range<usize>> {
        let mut out = Vec::with_capacity(3);
        if let Some(t) = self.cursor_token() {
            out.push(t..t + 1);
        }
        if let Some(r) = self
            .selection()
            .and_then(|(s, e)| covered_tokens(&self.tokens, s, e))
        {
            out.push(r);
        }
        if let Some(r) = self
            .selected()
            .and_then(|s| covered_tokens(&self.tokens, s.start, s.end))
        {
            out.push(r);
        }
        let (tail, other) = self.relation_marks();
        for id in [tail, other].into_iter().flatten() {
            if let Some(r) = self
                .find(id)
                .and_then(|s| covered_tokens(&self.tokens, s.start, s.end))
            {
                out.push(r);
            }
        }
        out
    }

    /// The token ranges of spans that were added, removed or changed since `before`.
    fn changed_ranges(&self, mut before: Vec<EditorSpan>) -> Vec<Range<usize>> {
        let mut after = self.spans.clone();
        before.sort_by_key(|s| s.id);
        after.sort_by_key(|s| s.id);
        let mut changed = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < before.len() || j < after.len() {
            match (before.get(i), after.get(j)) {
                (Some(b), Some(a)) if b.id == a.id => {
                    if b != a {
                        changed.push(*b);
                        changed.push(*a);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(b), Some(a)) if b.id < a.id => {
                    changed.push(*b);
                    i += 1;
                }
                (Some(_), Some(a)) | (None, Some(a)) => {
                    changed.push(*a);
                    j += 1;
                }
                (Some(b), None) => {
                    changed.push(*b);
                    i += 1;
                }
                (None, None) => break,
            }
        }
        changed
            .iter()
            .filter_map(|s| covered_tokens(&self.tokens, s.start, s.end))
            .collect()
    }

    /// Remembers the state before an edit, for undo.
    fn checkpoint(&mut self) {
        self.remember(Snapshot {
            spans: self.spans.clone(),
            selected: self.selected,
            relations: self.rel.relations.clone(),
            selected_relation: self.rel.selected,
        });
    }

    fn remember(&mut self, before: Snapshot) {
        self.undo.push(before);
        if self.undo.len() > UNDO_DEPTH {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    fn undo(&mut self) {
        match self.undo.pop() {
            Some(snapshot) => {
                let now = self.restore(snapshot);
                self.redo.push(now);
                self.message = Some("undone".into());
            }
            None => self.message = Some("nothing to undo".into()),
        }
    }

    fn redo(&mut self) {
        match self.redo.pop() {
            Some(snapshot) => {
                let now = self.restore(snapshot);
                self.undo.push(now);
                self.message = Some("redone".into());
            }
            None => self.message = Some("nothing to redo".into()),
        }
    }

    /// Puts a snapshot in force and returns the state it replaced; the cursor goes to the
    /// selected span, so the change is in view.
    fn restore(&mut self, snapshot: Snapshot) -> Snapshot {
        let now = Snapshot {
            spans: std::mem::replace(&mut self.spans, snapshot.spans),
            selected: self.selected,
            relations: std::mem::replace(&mut self.rel.relations, snapshot.relations),
            selected_relation: self.rel.selected,
        };
        self.selected = snapshot.selected.filter(|id| self.find(*id).is_some());
        self.rel.selected = snapshot.selected_relation;
        self.rel.pending = None;
        self.anchor = None;
        if let Some(span) = self.selected() {
            self.cursor = self.unit_at(span.start);
        }
        now
    }

    fn step(&mut self, delta: i64, extend: bool) {
        let Some(last) = self.last_unit() else {
            return;
        };
        let to = match self.mode {
            Mode::Token => (i64::from(self.cursor) + delta).clamp(0, i64::from(last)) as u32,
            Mode::Character => {
                // Step over whole characters (grapheme clusters), not code points.
                let here = self.characters.partition_point(|&c| c < self.cursor) as i64;
                let clusters = self.characters.len() as i64 - 1;
                let to = (here + delta).clamp(0, (clusters - 1).max(0));
                self.characters[to as usize]
            }
        };
        self.move_cursor(to, extend);
    }

    fn jump(&mut self, to_end: bool, extend: bool) {
        let Some(last) = self.last_unit() else {
            return;
        };
        self.move_cursor(if to_end { last } else { 0 }, extend);
    }

    fn move_cursor(&mut self, to: u32, extend: bool) {
        if extend {
            self.anchor = self.anchor.or(Some(self.cursor));
        } else {
            self.anchor = None;
        }
        self.selected = None;
        self.cursor = to;
    }

    /// The last cursor position: the last token, or the last character.
    fn last_unit(&self) -> Option<u32> {
        match self.mode {
            Mode::Token => (self.tokens.len() as u32).checked_sub(1),
            Mode::Character => self.previous_character(self.offsets.len()),
        }
    }

    /// The start of the character after the one at `cp` (the text's end after the last).
    fn next_character(&self, cp: u32) -> u32 {
        let i = self.characters.partition_point(|&c| c <= cp);
        self.characters
            .get(i)
            .copied()
            .unwrap_or_else(|| self.offsets.len())
    }

    /// The start of the character before code point `cp` (`None` at the text's start).
    fn previous_character(&self, cp: u32) -> Option<u32> {
        let i = self.characters.partition_point(|&c| c < cp);
        i.checked_sub(1).map(|i| self.characters[i])
    }

    fn clear(&mut self) {
        self.anchor = None;
        self.selected = None;
    }

    /// Tab: the next span in document order (Shift: the previous), from the selected span or
    /// else from the cursor; wraps around.
    fn walk(&mut self, backwards: bool) {
        if self.spans.is_empty() {
            self.message = Some("no spans yet: select text and press a label key".into());
            return;
        }
        let n = self.spans.len();
        let at = match self.selected.and_then(|id| self.position(id)) {
            Some(i) if backwards => (i + n - 1) % n,
            Some(i) => (i + 1) % n,
            None => {
                let here = self.target_range().map_or(0, |(s, _)| s);
                if backwards {
                    self.spans
                        .iter()
                        .rposition(|s| s.start < here)
                        .unwrap_or(n - 1)
                } else {
                    self.spans.iter().position(|s| s.start >= here).unwrap_or(0)
                }
            }
        };
        let id = self.spans[at].id;
        self.select_span(id);
    }

    fn select_span(&mut self, id: u32) {
        if let Some(span) = self.find(id) {
            self.selected = Some(id);
            self.anchor = None;
            self.cursor = self.unit_at(span.start);
        }
    }

    /// A label key: relabels the selected span, or labels the text selection (or the cursor's
    /// token or character) as a new own span, which becomes the selected span.
    fn apply_label(&mut self, label: u16) {
        if let Some(span) = self.selected() {
            if span.is_own() && span.label == label {
                return;
            }
            if let Some(problem) = self.relabel_problem(span.id, label) {
                self.message = Some(format!(
                    "“{}” keeps its type: {problem}",
                    self.slice(span.start, span.end)
                ));
                return;
            }
            let changed = EditorSpan {
                label,
                kind: SpanKind::Own,
                ..span
            };
            if self.refuse(&changed, Some(span.id)) {
                return;
            }
            self.checkpoint();
            self.put(changed);
            return;
        }
        let Some((start, end)) = self.target_range() else {
            return;
        };
        let span = self.new_span(start, end, label);
        if self.refuse(&span, None) {
            return;
        }
        self.checkpoint();
        self.put(span);
        self.anchor = None;
        self.selected = Some(span.id);
        self.cursor = self.unit_at(span.start);
    }

    /// `[` `]` `{` `}`: moves a boundary of the selected span by one token (one character in
    /// character mode). Moving a suggestion's boundary makes it the annotator's own.
    fn nudge(&mut self, boundary: Boundary, direction: i32) {
        let Some(span) = self.selected() else {
            self.message = Some("select a span first (Tab walks the spans)".into());
            return;
        };
        let moved = match self.mode {
            Mode::Token => self.nudge_by_token(span, boundary, direction),
            Mode::Character => self.nudge_by_character(span, boundary, direction),
        };
        let Some((start, end)) = moved else {
            self.message = Some(
                match boundary {
                    Boundary::Start if direction < 0 => {
                        "the span already starts at the text's start"
                    }
                    Boundary::End if direction > 0 => "the span already ends at the text's end",
                    _ => "a span keeps at least one token (one character in character mode)",
                }
                .into(),
            );
            return;
        };
        let changed = EditorSpan {
            start,
            end,
            kind: SpanKind::Own,
            ..span
        };
        if self.refuse(&changed, Some(span.id)) {
            return;
        }
        self.checkpoint();
        self.put(changed);
        self.cursor = match boundary {
            Boundary::Start => self.unit_at(start),
            Boundary::End => self.unit_at(end - 1),
        };
    }

    fn nudge_by_token(
        &self,
        span: EditorSpan,
        boundary: Boundary,
        direction: i32,
    ) -> Option<(u32, u32)> {
        let tokens = &self.tokens;
        let (start, end) = (span.start, span.end);
        match (boundary, direction < 0) {
            (Boundary::Start, true) => {
                let i = tokens.partition_point(|t| t.start < start);
                let to = tokens.get(i.checked_sub(1)?)?.start;
                Some((to, end))
            }
            (Boundary::Start, false) => {
                let i = tokens.partition_point(|t| t.start <= start);
                let to = tokens.get(i)?.start;
                (to < end).then_some((to, end))
            }
            (Boundary::End, true) => {
                let i = tokens.partition_point(|t| t.end < end);
                let to = tokens.get(i.checked_sub(1)?)?.end;
                (to > start).then_some((start, to))
            }
            (Boundary::End, false) => {
                let i = tokens.partition_point(|t| t.end <= end);
                Some((start, tokens.get(i)?.end))
            }
        }
    }

    fn nudge_by_character(
        &self,
        span: EditorSpan,
        boundary: Boundary,
        direction: i32,
    ) -> Option<(u32, u32)> {
        let (start, end) = (span.start, span.end);
        // One user-perceived character at a time (see `characters`).
        match (boundary, direction < 0) {
            (Boundary::Start, true) => Some((self.previous_character(start)?, end)),
            (Boundary::Start, false) => {
                let to = self.next_character(start);
                (to < end).then_some((to, end))
            }
            (Boundary::End, true) => {
                let to = self.previous_character(end)?;
                (to > start).then_some((start, to))
            }
            (Boundary::End, false) => {
                (end < self.offsets.len()).then(|| (start, self.next_character(end)))
            }
        }
    }

    fn delete_selected(&mut self) {
        let Some(span) = self.selected() else {
            self.message = Some("select a span first (Tab walks the spans)".into());
            return;
        };
        self.checkpoint();
        let relations = self.relations_of(span.id);
        self.spans.retain(|s| s.id != span.id);
        self.selected = None;
        let mut message: String = if span.is_own() {
            "span deleted".into()
        } else {
            "suggestion rejected".into()
        };
        if relations > 0 {
            // Pruned with the span (see `prune_relations`); Ctrl+Z brings both back.
            message.push_str(&format!(
                " with its {relations} relation{} (Ctrl+Z brings {} back)",
                if relations == 1 { "" } else { "s" },
                if relations == 1 { "it" } else { "them" }
            ));
        }
        self.message = Some(message);
    }

    fn accept_selected(&mut self) {
        match self.selected() {
            Some(span) if !span.is_own() => {
                let accepted = EditorSpan {
                    kind: SpanKind::Own,
                    ..span
                };
                if self.refuse(&accepted, Some(span.id)) {
                    return;
                }
                self.checkpoint();
                self.put(accepted);
                self.message = Some("suggestion accepted".into());
            }
            Some(_) => self.message = Some("this span is already yours".into()),
            None => {
                self.message = Some("select a suggested span first (Tab walks the spans)".into())
            }
        }
    }

    fn reject_selected(&mut self) {
        match self.selected() {
            Some(span) if !span.is_own() => self.delete_selected(),
            Some(_) => {
                self.message = Some("this span is yours: Delete removes it".into());
            }
            None => {
                self.message = Some("select a suggested span first (Tab walks the spans)".into())
            }
        }
    }

    /// `=`: accepts every open suggestion at or above the threshold, the most confident first.
    /// In a flat project a suggestion overlapping a more confident one that was accepted is
    /// set aside (as accepting it by hand would); in an overlapping project only an identical
    /// one is. One undoable edit, in O(n log n): a 500-span item answers within a frame.
    fn accept_all(&mut self) {
        let floor = f32::from(self.threshold) / 100.0;
        let mut candidates: Vec<EditorSpan> = self
            .spans
            .iter()
            .filter(|s| s.kind.confidence().is_some_and(|c| c >= floor))
            .copied()
            .collect();
        // Most confident first; equal confidences in document order.
        candidates.sort_by(|a, b| {
            confidence(b)
                .total_cmp(&confidence(a))
                .then_with(|| a.order_key().cmp(&b.order_key()))
        });
        let mut own = OwnIndex::new(self.overlapping, self.spans.iter().filter(|s| s.is_own()));
        let mut accepted = std::collections::HashSet::new();
        let mut set_aside = 0usize;
        for c in candidates {
            if own.conflicts(&c) {
                set_aside += 1;
                continue;
            }
            own.insert(&c);
            accepted.insert(c.id);
        }
        if accepted.is_empty() {
            self.message = Some(format!(
                "no open suggestion at or above {}% could be accepted",
                self.threshold
            ));
            return;
        }
        self.checkpoint();
        for span in &mut self.spans {
            if accepted.contains(&span.id) {
                span.kind = SpanKind::Own;
            }
        }
        // Open suggestions the accepted spans settle (those below the threshold included).
        self.spans.retain(|s| s.is_own() || !own.conflicts(s));
        if self.selected.is_some_and(|id| self.find(id).is_none()) {
            self.selected = None;
        }
        self.sort();
        let mut message = format!(
            "accepted {} suggestion{} at or above {}%",
            accepted.len(),
            if accepted.len() == 1 { "" } else { "s" },
            self.threshold
        );
        if set_aside > 0 {
            message.push_str(&format!(
                " ({set_aside} set aside: they overlap more confident ones)"
            ));
        }
        self.message = Some(message);
    }

    fn toggle_mode(&mut self) {
        if self.tokens.is_empty() {
            return;
        }
        match self.mode {
            Mode::Token => {
                let c = self.cursor as usize;
                let (anchor, cursor) = match self.anchor.map(|a| a as usize) {
                    None => (None, self.tokens[c].start),
                    Some(a) if a > c => (
                        self.previous_character(self.tokens[a].end),
                        self.tokens[c].start,
                    ),
                    Some(a) => (
                        Some(self.tokens[a].start),
                        self.previous_character(self.tokens[c].end)
                            .unwrap_or(self.tokens[c].start),
                    ),
                };
                self.anchor = anchor;
                self.cursor = cursor;
                self.mode = Mode::Character;
                self.message = Some(
                    "character mode: the cursor and span boundaries move by one character".into(),
                );
            }
            Mode::Character => {
                self.cursor = self.token_at_cp(self.cursor) as u32;
                self.anchor = self.anchor.map(|a| self.token_at_cp(a) as u32);
                self.mode = Mode::Token;
                self.message =
                    Some("token mode: the cursor and span boundaries move by one token".into());
            }
        }
    }

    // ----- helpers -----

    fn label_for_key(&self, key: char) -> Option<u16> {
        hotkey_index(self.labels.iter().map(|l| l.hotkey.as_deref()), key)
    }

    fn label_index(&mut self, name: &str) -> u16 {
        index_or_add(
            &mut self.labels,
            |l| l.name == name,
            || EditorLabel {
                name: name.to_string(),
                hotkey: None,
            },
        )
    }

    fn label_name(&self, label: u16) -> &str {
        self.labels
            .get(usize::from(label))
            .map_or("", |l| l.name.as_str())
    }

    fn new_span(&mut self, start: u32, end: u32, label: u16) -> EditorSpan {
        let id = self.next_id;
        self.next_id += 1;
        EditorSpan {
            id,
            start,
            end,
            label,
            kind: SpanKind::Own,
        }
    }

    /// The innermost own span over token `t`.
    fn own_span_at(&self, t: usize) -> Option<u32> {
        let token = self.tokens.get(t)?;
        self.spans
            .iter()
            .filter(|s| s.is_own() && s.overlaps(token.start, token.end))
            .min_by_key(|s| s.end - s.start)
            .map(|s| s.id)
    }

    fn find(&self, id: u32) -> Option<EditorSpan> {
        self.spans.iter().find(|s| s.id == id).copied()
    }

    fn position(&self, id: u32) -> Option<usize> {
        self.spans.iter().position(|s| s.id == id)
    }

    /// The own span that keeps `span` (replacing span `except`) out: one it would overlap in a
    /// flat project, or an identical one.
    fn conflict(&self, span: &EditorSpan, except: Option<u32>) -> Option<EditorSpan> {
        self.spans
            .iter()
            .filter(|s| s.is_own() && Some(s.id) != except)
            .find(|s| {
                (s.start == span.start && s.end == span.end && s.label == span.label)
                    || (!self.overlapping && s.overlaps(span.start, span.end))
            })
            .copied()
    }

    /// Whether `span` is refused (and the message saying why is set).
    fn refuse(&mut self, span: &EditorSpan, except: Option<u32>) -> bool {
        let Some(other) = self.conflict(span, except) else {
            return false;
        };
        let same = other.start == span.start && other.end == span.end && other.label == span.label;
        self.message = Some(if same {
            format!(
                "that span is already there: {} “{}”",
                self.label_name(other.label),
                self.slice(other.start, other.end)
            )
        } else {
            format!(
                "{OVERLAP_REFUSED}: it would overlap {} “{}”",
                self.label_name(other.label),
                self.slice(other.start, other.end)
            )
        });
        true
    }

    /// Puts an own span in (replacing the span with its id) and drops the suggestions it
    /// settles.
    fn put(&mut self, span: EditorSpan) {
        match self.position(span.id) {
            Some(i) => self.spans[i] = span,
            None => self.spans.push(span),
        }
        self.drop_superseded_suggestions(&span);
        self.sort();
    }

    /// Open suggestions an own span settles: the identical one, and in a flat project every
    /// one overlapping it (it could no longer be accepted).
    fn drop_superseded_suggestions(&mut self, own: &EditorSpan) {
        let flat = !self.overlapping;
        self.spans.retain(|s| {
            s.is_own()
                || s.id == own.id
                || !(if flat {
                    s.overlaps(own.start, own.end)
                } else {
                    s.start == own.start && s.end == own.end && s.label == own.label
                })
        });
        if self.selected.is_some_and(|id| self.find(id).is_none()) {
            self.selected = None;
        }
    }

    fn sort(&mut self) {
        self.spans.sort_by_key(EditorSpan::order_key);
    }

    /// The range a label key would label: the selection, else the cursor's token or character.
    fn target_range(&self) -> Option<(u32, u32)> {
        if self.tokens.is_empty() && self.mode == Mode::Token {
            return None;
        }
        self.unit_range(self.anchor.unwrap_or(self.cursor), self.cursor)
    }

    /// The code point range from unit `a` to unit `b` (either order), both included.
    fn unit_range(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        let (lo, hi) = (a.min(b), a.max(b));
        match self.mode {
            Mode::Token => Some((
                self.tokens.get(lo as usize)?.start,
                self.tokens.get(hi as usize)?.end,
            )),
            Mode::Character => (hi < self.offsets.len()).then(|| (lo, self.next_character(hi))),
        }
    }

    /// The cursor unit at code point `cp`.
    fn unit_at(&self, cp: u32) -> u32 {
        match self.mode {
            Mode::Token => self.token_at_cp(cp) as u32,
            // The character holding `cp` (a span from elsewhere may start inside one).
            Mode::Character => {
                let i = self.characters.partition_point(|&c| c <= cp);
                self.characters[i.saturating_sub(1)]
            }
        }
    }

    /// The token holding code point `cp`, or the first after it, or the last token.
    fn token_at_cp(&self, cp: u32) -> usize {
        let i = self.tokens.partition_point(|t| t.end <= cp);
        i.min(self.tokens.len().saturating_sub(1))
    }

    /// Selects tokens `a` to `b` (a pointer selection): whole tokens in either mode.
    fn select_tokens(&mut self, a: usize, b: usize) {
        self.selected = None;
        match self.mode {
            Mode::Token => {
                self.anchor = Some(a as u32);
                self.cursor = b as u32;
            }
            Mode::Character => {
                let (ta, tb) = (self.tokens[a], self.tokens[b]);
                if a <= b {
                    self.anchor = Some(ta.start);
                    self.cursor = self.previous_character(tb.end).unwrap_or(tb.start);
                } else {
                    self.anchor = self.previous_character(ta.end);
                    self.cursor = tb.start;
                }
            }
        }
    }
}

/// The own spans, for conflict checks in bulk: in a flat project by start (they do not
/// overlap, so the one starting last before a span's end is the only one that can overlap
/// it); in an overlapping project as a set (only an identical span conflicts).
enum OwnIndex {
    Flat(std::collections::BTreeMap<u32, u32>),
    Overlapping(std::collections::HashSet<(u32, u32, u16)>),
}

impl OwnIndex {
    fn new<'a>(overlapping: bool, own: impl Iterator<Item = &'a EditorSpan>) -> OwnIndex {
        let mut index = if overlapping {
            OwnIndex::Overlapping(Default::default())
        } else {
            OwnIndex::Flat(Default::default())
        };
        for span in own {
            index.insert(span);
        }
        index
    }

    fn conflicts(&self, span: &EditorSpan) -> bool {
        match self {
            OwnIndex::Flat(by_start) => by_start
                .range(..span.end)
                .next_back()
                .is_some_and(|(_, &end)| end > span.start),
            OwnIndex::Overlapping(set) => set.contains(&(span.start, span.end, span.label)),
        }
    }

    fn insert(&mut self, span: &EditorSpan) {
        match self {
            OwnIndex::Flat(by_start) => {
                by_start.insert(span.start, span.end);
            }
            OwnIndex::Overlapping(set) => {
                set.insert((span.start, span.end, span.label));
            }
        }
    }
}

/// `own` or `suggested`: what a list row (span or relation) is, by its confidence.
fn row_kind(confidence: Option<f32>) -> &'static str {
    if confidence.is_some() {
        "suggested"
    } else {
        "own"
    }
}

/// The index of the entry (label or relation type) whose hotkey is `key`, ignoring case.
fn hotkey_index<'a>(mut hotkeys: impl Iterator<Item = Option<&'a str>>, key: char) -> Option<u16> {
    let key = key.to_lowercase().to_string();
    hotkeys
        .position(|h| h.map(str::to_lowercase).as_deref() == Some(key.as_str()))
        .and_then(|i| u16::try_from(i).ok())
}

/// The index of the entry (label or relation type) `is_named` picks, after adding `add()` at
/// the end when there is none: a name an earlier answer used is kept, not lost. An index past
/// `u16::MAX` saturates (the editor indexes labels and relation types by `u16`).
fn index_or_add<T>(
    entries: &mut Vec<T>,
    is_named: impl Fn(&T) -> bool,
    add: impl FnOnce() -> T,
) -> u16 {
    let at = match entries.iter().position(is_named) {
        Some(i) => i,
        None => {
            entries.push(add());
            entries.len() - 1
        }
    };
    u16::try_from(at).unwrap_or(u16::MAX)
}

fn confidence(s: &EditorSpan) -> f32 {
    match s.kind {
        SpanKind::Own => 1.0,
        SpanKind::Suggested { confidence } => confidence,
    }
}

/// Sorts ranges and joins those that overlap or touch.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Where annotators differ, for the review page: for each answer, which of its spans not every
/// answer has (same start, end and label).
pub fn disagreements(answers: &[&[Span]]) -> Vec<Vec<bool>> {
    answers
        .iter()
        .map(|answer| {
            answer
                .iter()
                .map(|span| !answers.iter().all(|other| other.contains(span)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_domain::tokens::tokenize;

    const TEXT: &str = "I saw the Empire State Building in New York yesterday .";

    fn labels() -> Vec<EditorLabel> {
        [("PER", "p"), ("LOC", "l"), ("ORG", "o")]
            .iter()
            .map(|(n, k)| EditorLabel {
                name: n.to_string(),
                hotkey: Some(k.to_string()),
            })
            .collect()
    }

    fn editor_with(
        text: &str,
        overlapping: bool,
        own: &[Span],
        suggested: &[SuggestedSpan],
    ) -> SpanEditor {
        SpanEditor::new(
            text,
            tokenize(text),
            labels(),
            overlapping,
            80,
            own,
            suggested,
        )
    }

    fn editor() -> SpanEditor {
        editor_with(TEXT, false, &[], &[])
    }

    fn key(e: &mut SpanEditor, k: &str) -> Outcome {
        e.press(KeyPress::parse(k, false, false))
    }

    fn shift(e: &mut SpanEditor, k: &str) -> Outcome {
        e.press(KeyPress::parse(k, true, false))
    }

    fn ctrl(e: &mut SpanEditor, k: &str, shift: bool) -> Outcome {
        e.press(KeyPress::parse(k, shift, true))
    }

    fn keys(e: &mut SpanEditor, ks: &[&str]) {
        for k in ks {
            key(e, k);
        }
    }

    /// The own spans as `(text, label)`.
    fn own(e: &SpanEditor) -> Vec<(String, String)> {
        e.own_spans()
            .iter()
            .map(|s| (e.slice(s.start, s.end).to_string(), s.label.clone()))
            .collect()
    }

    fn pair(text: &str, label: &str) -> (String, String) {
        (text.to_string(), label.to_string())
    }

    fn suggestion(text: &str, needle: &str, label: &str, confidence: f32) -> SuggestedSpan {
        let map = OffsetMap::new(text);
        let byte = text.find(needle).expect("needle in text");
        let start = map.from_byte(byte).unwrap();
        let end = map.from_byte(byte + needle.len()).unwrap();
        SuggestedSpan {
            start,
            end,
            label: label.into(),
            confidence,
        }
    }

    #[test]
    fn the_cursor_line_names_the_spans_around_the_cursor() {
        let sug = [suggestion(TEXT, "Empire State", "LOC", 0.5)];
        let mut e = editor_with(TEXT, true, &[], &sug);
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        key(&mut e, "o");
        assert_eq!(
            e.describe_cursor(),
            "token mode · cursor “Empire” (10–16) · in suggested LOC “Empire State”, ORG “Empire”"
        );
        key(&mut e, "`");
        key(&mut e, "ArrowRight");
        assert!(e
            .describe_cursor()
            .starts_with("character mode · cursor “m” (11–12)"));
    }

    #[test]
    fn keys_parse_named_keys_and_single_characters() {
        assert_eq!(KeyPress::parse("ArrowLeft", true, false).key, Key::Left);
        assert_eq!(KeyPress::parse("{", true, false).key, Key::Char('{'));
        assert_eq!(KeyPress::parse(" ", false, false).key, Key::Other);
        assert_eq!(KeyPress::parse("F5", false, false).key, Key::Other);
        assert_eq!(KeyPress::parse("é", false, false).key, Key::Char('é'));
    }

    #[test]
    fn arrows_move_the_cursor_and_shift_extends_a_selection_that_a_label_key_labels() {
        let mut e = editor();
        assert_eq!(e.cursor_token(), Some(0));
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        assert_eq!(e.cursor_token(), Some(3), "on Empire");
        shift(&mut e, "ArrowRight");
        shift(&mut e, "ArrowRight");
        assert_eq!(
            e.selection().map(|(s, t)| e.slice(s, t)),
            Some("Empire State Building")
        );
        let classes = e.token_classes(2..7);
        assert!(
            !classes[0].contains("sel") && classes[1].contains("sel") && classes[3].contains("sel")
        );
        assert!(
            classes[3].contains("cursor"),
            "the cursor is on Building: {classes:?}"
        );
        key(&mut e, "o");
        assert_eq!(own(&e), [pair("Empire State Building", "ORG")]);
        assert_eq!(e.selection(), None, "labelling ends the selection");
        assert_eq!(
            e.selected().map(|s| s.label),
            Some(2),
            "the new span is selected"
        );
        // Home and End go to the first and last token; the cursor never leaves the text.
        key(&mut e, "End");
        assert_eq!(e.cursor_token(), Some(e.tokens().len() - 1));
        key(&mut e, "ArrowRight");
        assert_eq!(e.cursor_token(), Some(e.tokens().len() - 1));
        key(&mut e, "Home");
        key(&mut e, "ArrowLeft");
        assert_eq!(e.cursor_token(), Some(0));
        // A label key without a selection labels the cursor's token.
        key(&mut e, "p");
        assert_eq!(own(&e)[0], pair("I", "PER"));
        // Keys that are no label are left to the page.
        assert_eq!(key(&mut e, "x"), Outcome::Ignored);
        assert_eq!(key(&mut e, "Enter"), Outcome::Submit);
        assert_eq!(key(&mut e, "?"), Outcome::Guidelines);
        assert_eq!(ctrl(&mut e, "r", false), Outcome::Ignored);
    }

    #[test]
    fn a_selected_span_is_relabelled_moved_at_both_ends_and_deleted() {
        let mut e = editor();
        keys(
            &mut e,
            &["ArrowRight", "ArrowRight", "ArrowRight", "ArrowRight"],
        );
        key(&mut e, "l");
        assert_eq!(own(&e), [pair("State", "LOC")]);
        key(&mut e, "[");
        assert_eq!(own(&e), [pair("Empire State", "LOC")]);
        key(&mut e, "}");
        assert_eq!(own(&e), [pair("Empire State Building", "LOC")]);
        assert_eq!(
            e.cursor_token(),
            Some(5),
            "the cursor follows the moved end"
        );
        key(&mut e, "]");
        assert_eq!(own(&e), [pair("State Building", "LOC")]);
        key(&mut e, "{");
        assert_eq!(own(&e), [pair("State", "LOC")]);
        // A span keeps at least one token.
        key(&mut e, "{");
        key(&mut e, "]");
        assert_eq!(own(&e), [pair("State", "LOC")]);
        assert!(e.message().unwrap().contains("at least one token"));
        key(&mut e, "o");
        assert_eq!(own(&e), [pair("State", "ORG")]);
        key(&mut e, "Delete");
        assert!(own(&e).is_empty());
        assert_eq!(e.selected(), None);
        // Without a selected span the boundary keys explain themselves.
        key(&mut e, "[");
        assert!(e.message().unwrap().contains("select a span first"));
        // Backspace deletes too.
        key(&mut e, "p");
        key(&mut e, "Backspace");
        assert!(own(&e).is_empty());
    }

    #[test]
    fn boundaries_stop_at_the_ends_of_the_text() {
        let mut e = editor();
        key(&mut e, "p");
        key(&mut e, "[");
        assert!(e.message().unwrap().contains("text's start"));
        key(&mut e, "End");
        key(&mut e, "l");
        key(&mut e, "}");
        assert!(e.message().unwrap().contains("text's end"));
        assert_eq!(own(&e), [pair("I", "PER"), pair(".", "LOC")]);
    }

    #[test]
    fn tab_walks_own_and_suggested_spans_in_document_order_and_wraps() {
        let sug = [suggestion(TEXT, "New York", "LOC", 0.9)];
        let mut e = editor_with(TEXT, false, &[Span::new(0, 1, "PER")], &sug);
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        shift(&mut e, "ArrowRight");
        key(&mut e, "o");
        key(&mut e, "Escape");
        assert_eq!(e.selected(), None);
        // From the cursor (on Empire), Tab goes to the first span starting there or later.
        key(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("Empire State".into())
        );
        key(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| s.kind),
            Some(SpanKind::Suggested { confidence: 0.9 })
        );
        key(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("I".into()),
            "wraps"
        );
        shift(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("New York".into())
        );
        let rows = e.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].describe(), "LOC “New York” 0.90");
        assert_eq!(rows[2].kind(), "suggested");
        assert!(rows[2].selected && !rows[0].selected);
        assert_eq!(rows[1].describe(), "ORG “Empire State”");
    }

    #[test]
    fn flat_projects_refuse_overlaps_and_overlapping_projects_nest() {
        let mut e = editor();
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        shift(&mut e, "ArrowRight");
        shift(&mut e, "ArrowRight");
        key(&mut e, "o");
        key(&mut e, "Escape");
        key(&mut e, "ArrowRight");
        key(&mut e, "l");
        assert!(
            e.message().unwrap().starts_with(OVERLAP_REFUSED),
            "{:?}",
            e.message()
        );
        assert_eq!(own(&e).len(), 1);
        // Moving a boundary into another span is refused too.
        keys(
            &mut e,
            &["End", "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowLeft"],
        );
        key(&mut e, "l");
        assert_eq!(own(&e)[1], pair("in", "LOC"));
        key(&mut e, "[");
        assert!(e.message().unwrap().starts_with(OVERLAP_REFUSED));
        assert_eq!(own(&e)[1], pair("in", "LOC"));

        let mut e = editor_with(TEXT, true, &[], &[]);
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        shift(&mut e, "ArrowRight");
        shift(&mut e, "ArrowRight");
        key(&mut e, "o");
        key(&mut e, "Escape");
        key(&mut e, "l");
        assert_eq!(
            own(&e),
            [pair("Empire State Building", "ORG"), pair("Empire", "LOC")]
        );
        let classes = e.token_classes(3..4);
        assert!(classes[0].contains("nest"), "{classes:?}");
        assert!(
            classes[0].ends_with(" l1"),
            "the innermost label colours the token: {classes:?}"
        );
        // The very same span twice is refused even here.
        key(&mut e, "Escape");
        key(&mut e, "l");
        assert!(e.message().unwrap().contains("already there"));
    }

    #[test]
    fn undo_and_redo_walk_the_edits_back_and_forth() {
        let mut e = editor();
        key(&mut e, "p");
        key(&mut e, "}");
        key(&mut e, "l");
        assert_eq!(own(&e), [pair("I saw", "LOC")]);
        ctrl(&mut e, "z", false);
        assert_eq!(own(&e), [pair("I saw", "PER")]);
        ctrl(&mut e, "z", false);
        ctrl(&mut e, "z", false);
        assert!(own(&e).is_empty());
        ctrl(&mut e, "z", false);
        assert_eq!(e.message(), Some("nothing to undo"));
        ctrl(&mut e, "Z", true);
        assert_eq!(own(&e), [pair("I", "PER")]);
        // Caps Lock on: Ctrl+Z still undoes.
        ctrl(&mut e, "Z", false);
        assert!(own(&e).is_empty());
        ctrl(&mut e, "Z", true);
        ctrl(&mut e, "y", false);
        assert_eq!(own(&e), [pair("I saw", "PER")]);
        // A new edit forgets what could be redone.
        key(&mut e, "o");
        ctrl(&mut e, "y", false);
        assert_eq!(e.message(), Some("nothing to redo"));
        assert_eq!(own(&e), [pair("I saw", "ORG")]);
        // Moving the cursor is not an edit.
        key(&mut e, "ArrowRight");
        ctrl(&mut e, "z", false);
        assert_eq!(own(&e), [pair("I saw", "PER")]);
    }

    #[test]
    fn suggestions_are_accepted_rejected_or_accepted_all_above_the_threshold() {
        let sug = [
            suggestion(TEXT, "Empire State Building", "ORG", 0.93),
            suggestion(TEXT, "New York", "LOC", 0.8),
            suggestion(TEXT, "yesterday", "PER", 0.41),
            suggestion(TEXT, "Empire", "LOC", 0.85),
        ];
        let mut e = editor_with(TEXT, false, &[], &sug);
        assert_eq!(e.open_suggestions(), 4);
        key(&mut e, "+");
        assert!(e.message().unwrap().contains("select a suggested span"));
        key(&mut e, "=");
        // Most confident first: the building, then New York (0.8 is at the threshold); Empire
        // (0.85) overlaps the accepted building and stays open; yesterday is below.
        assert_eq!(
            own(&e),
            [
                pair("Empire State Building", "ORG"),
                pair("New York", "LOC")
            ]
        );
        assert_eq!(
            e.message(),
            Some("accepted 2 suggestions at or above 80% (1 set aside: they overlap more confident ones)")
        );
        // The accepted building settled the overlapping Empire suggestion away.
        assert_eq!(e.open_suggestions(), 1);
        ctrl(&mut e, "z", false);
        assert!(own(&e).is_empty());
        assert_eq!(e.open_suggestions(), 4);
        // One by one: select, accept; select, reject.
        key(&mut e, "Tab");
        key(&mut e, "+");
        assert_eq!(own(&e), [pair("Empire State Building", "ORG")]);
        key(&mut e, "+");
        assert_eq!(e.message(), Some("this span is already yours"));
        key(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("New York".into())
        );
        key(&mut e, "-");
        assert_eq!(e.message(), Some("suggestion rejected"));
        key(&mut e, "Tab");
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("yesterday".into())
        );
        // A label key on a suggestion accepts it with that label.
        key(&mut e, "l");
        assert_eq!(
            own(&e),
            [
                pair("Empire State Building", "ORG"),
                pair("yesterday", "LOC")
            ]
        );
        assert_eq!(e.open_suggestions(), 0);
    }

    #[test]
    fn accepting_all_in_an_overlapping_project_keeps_nested_suggestions() {
        let sug = [
            suggestion(TEXT, "Empire State Building", "ORG", 0.93),
            suggestion(TEXT, "Empire State", "LOC", 0.85),
            suggestion(TEXT, "Empire", "LOC", 0.2),
        ];
        let mut e = editor_with(TEXT, true, &[Span::new(10, 31, "ORG")], &sug);
        assert_eq!(
            e.open_suggestions(),
            2,
            "the identical suggestion is settled at once"
        );
        key(&mut e, "=");
        assert_eq!(
            own(&e),
            [
                pair("Empire State Building", "ORG"),
                pair("Empire State", "LOC")
            ]
        );
        assert_eq!(e.open_suggestions(), 1, "below the threshold, still open");
        key(&mut e, "=");
        assert_eq!(
            e.message(),
            Some("no open suggestion at or above 80% could be accepted")
        );
    }

    #[test]
    fn moving_a_suggestions_boundary_makes_it_an_own_span() {
        let sug = [suggestion(TEXT, "Empire State", "ORG", 0.5)];
        let mut e = editor_with(TEXT, false, &[], &sug);
        key(&mut e, "Tab");
        key(&mut e, "}");
        assert_eq!(own(&e), [pair("Empire State Building", "ORG")]);
        assert_eq!(e.open_suggestions(), 0);
    }

    #[test]
    fn an_own_span_settles_the_suggestions_it_overlaps_in_a_flat_project() {
        let sug = [suggestion(TEXT, "New York", "LOC", 0.9)];
        let own_span = suggestion(TEXT, "New", "LOC", 1.0);
        let e = editor_with(
            TEXT,
            false,
            &[Span::new(own_span.start, own_span.end, "LOC")],
            &sug,
        );
        assert_eq!(
            e.open_suggestions(),
            0,
            "revisiting: the annotator already decided there"
        );
        let e = editor_with(
            TEXT,
            true,
            &[Span::new(own_span.start, own_span.end, "LOC")],
            &sug,
        );
        assert_eq!(
            e.open_suggestions(),
            1,
            "overlapping projects keep a different suggestion"
        );
    }

    #[test]
    fn character_mode_moves_by_characters_for_entities_inside_a_token() {
        // The emoji and the combining accent are one token each but several code points.
        let text = "👨‍👩‍👧 love #NewYorkCity";
        let mut e = editor_with(text, false, &[], &[]);
        keys(&mut e, &["End"]);
        key(&mut e, "`");
        assert_eq!(e.mode(), Mode::Character);
        assert!(e.message().unwrap().starts_with("character mode"));
        // The cursor is on `#`; select "NewYork" (7 characters) one character at a time.
        key(&mut e, "ArrowRight");
        for _ in 0..6 {
            shift(&mut e, "ArrowRight");
        }
        key(&mut e, "l");
        assert_eq!(own(&e), [pair("NewYork", "LOC")]);
        let s = e.own_spans()[0].clone();
        // The family emoji is 5 code points, then a space: "love" starts at 6, "#" at 11.
        assert_eq!((s.start, s.end), (12, 19));
        assert!(e.token_classes(2..3)[0].contains("part"));
        key(&mut e, "}");
        key(&mut e, "[");
        assert_eq!(own(&e), [pair("#NewYorkC", "LOC")]);
        // Back in token mode the boundaries snap to whole tokens again.
        key(&mut e, "`");
        assert_eq!(e.mode(), Mode::Token);
        key(&mut e, "}");
        assert_eq!(own(&e), [pair("#NewYorkCity", "LOC")]);
        key(&mut e, "]");
        assert!(e.message().unwrap().contains("at least one token"));
        key(&mut e, "[");
        assert_eq!(own(&e), [pair("love #NewYorkCity", "LOC")]);
    }

    #[test]
    fn character_mode_never_splits_an_emoji_or_a_letter_from_its_accent() {
        // "Cafe" + combining acute, then a family emoji (5 code points) inside one word.
        let text = "Cafe\u{301} x👨‍👩‍👧y";
        let mut e = editor_with(text, false, &[], &[]);
        key(&mut e, "`");
        // Select "Café": four characters, the last one two code points.
        for _ in 0..3 {
            shift(&mut e, "ArrowRight");
        }
        key(&mut e, "l");
        let s = e.own_spans()[0].clone();
        assert_eq!((s.start, s.end), (0, 5), "the accent stays with its letter");
        // The end moves back over the whole accented letter, and forward again.
        key(&mut e, "{");
        assert_eq!(own(&e), [pair("Caf", "LOC")]);
        key(&mut e, "}");
        assert_eq!(own(&e), [pair("Cafe\u{301}", "LOC")]);
        // On the second word the cursor steps over the emoji as one character.
        key(&mut e, "Escape");
        keys(&mut e, &["ArrowRight", "ArrowRight", "ArrowRight"]);
        key(&mut e, "l");
        assert!(own(&e).contains(&pair("👨‍👩‍👧", "LOC")), "{:?}", own(&e));
    }

    #[test]
    fn pointer_drag_selects_whole_tokens_and_a_click_selects_the_span_under_it() {
        let mut e = editor();
        e.pointer_down(3);
        e.pointer_over(5);
        e.pointer_up(Some(5));
        assert_eq!(
            e.selection().map(|(s, t)| e.slice(s, t)),
            Some("Empire State Building")
        );
        key(&mut e, "o");
        // A drag backwards also snaps to tokens, in character mode too.
        key(&mut e, "`");
        e.pointer_down(8);
        e.pointer_over(7);
        e.pointer_up(Some(7));
        assert_eq!(e.selection().map(|(s, t)| e.slice(s, t)), Some("New York"));
        key(&mut e, "Escape");
        // A click inside a span selects it.
        e.pointer_down(4);
        e.pointer_up(Some(4));
        assert_eq!(
            e.selected().map(|s| e.slice(s.start, s.end).to_string()),
            Some("Empire State Building".into())
        );
        // Moving the pointer without a press selects nothing.
        assert_eq!(e.pointer_over(2), Outcome::Ignored);
    }

    #[test]
    fn repaints_cover_exactly_the_tokens_whose_look_changed() {
        let mut e = editor();
        let Outcome::Handled(r) = key(&mut e, "ArrowRight") else {
            panic!("handled")
        };
        assert_eq!(r.tokens, vec![(0..2)], "old and new cursor");
        assert!(!r.list);
        for _ in 0..5 {
            key(&mut e, "ArrowRight");
        }
        shift(&mut e, "ArrowRight");
        let Outcome::Handled(r) = key(&mut e, "l") else {
            panic!("handled")
        };
        assert_eq!(r.tokens, vec![(6..8)]);
        assert!(r.list);
        let Outcome::Handled(r) = key(&mut e, "}") else {
            panic!("handled")
        };
        assert_eq!(r.tokens, vec![(6..9)]);
        // Whatever the repaint says, painting only those tokens gives the same page as
        // painting everything.
        let mut painted = e.token_classes(0..e.tokens().len());
        for k in [
            "Home", "l", "Tab", "{", "Delete", "End", "p", "Tab", "Tab", "]",
        ] {
            let Outcome::Handled(r) = key(&mut e, k) else {
                panic!("{k} handled")
            };
            for range in r.tokens {
                let fresh = e.token_classes(range.clone());
                painted.splice(range, fresh);
            }
            assert_eq!(painted, e.token_classes(0..e.tokens().len()), "after {k}");
        }
        for k in [("z", false), ("z", false), ("Z", true)] {
            let Outcome::Handled(r) = ctrl(&mut e, k.0, k.1) else {
                panic!("undo handled")
            };
            for range in r.tokens {
                let fresh = e.token_classes(range.clone());
                painted.splice(range, fresh);
            }
            assert_eq!(painted, e.token_classes(0..e.tokens().len()));
        }
    }

    #[test]
    fn a_text_without_tokens_has_nothing_to_label() {
        let mut e = editor_with("   ", false, &[], &[]);
        assert_eq!(e.cursor_token(), None);
        key(&mut e, "ArrowRight");
        key(&mut e, "p");
        assert!(own(&e).is_empty());
        assert_eq!(key(&mut e, "Enter"), Outcome::Submit);
    }

    #[test]
    fn taking_an_answer_replaces_the_own_spans_in_one_undoable_step() {
        let mut e = editor_with(TEXT, false, &[Span::new(0, 1, "PER")], &[]);
        let taken = [Span::new(10, 31, "ORG"), Span::new(35, 43, "LOC")];
        e.replace_own(&taken, "b's spans");
        assert_eq!(
            own(&e),
            [
                pair("Empire State Building", "ORG"),
                pair("New York", "LOC")
            ]
        );
        ctrl(&mut e, "z", false);
        assert_eq!(own(&e), [pair("I", "PER")]);
    }

    #[test]
    fn unknown_labels_of_earlier_answers_are_kept() {
        let e = editor_with(TEXT, false, &[Span::new(0, 1, "MISC")], &[]);
        assert_eq!(own(&e), [pair("I", "MISC")]);
        assert_eq!(e.labels().len(), 4);
    }

    #[test]
    fn disagreements_mark_spans_not_every_annotator_has() {
        let a = [Span::new(0, 5, "PER"), Span::new(7, 9, "LOC")];
        let b = [Span::new(0, 5, "PER")];
        let c = [Span::new(0, 5, "PER"), Span::new(7, 9, "ORG")];
        assert_eq!(
            disagreements(&[&a, &b, &c]),
            [vec![false, true], vec![false], vec![false, true]]
        );
    }

    #[test]
    fn a_long_item_answers_a_key_by_repainting_a_few_tokens() {
        // 5,000 words and 500 spans: an action's repaint stays small, whatever the item's size.
        let text: String = (0..5_000).map(|i| format!("w{i} ")).collect();
        let tokens = tokenize(&text);
        let own: Vec<Span> = (0..500)
            .map(|i| Span::new(tokens[i * 10].start, tokens[i * 10 + 1].end, "PER"))
            .collect();
        let mut e = SpanEditor::new(&text, tokens, labels(), false, 80, &own, &[]);
        for k in ["Tab", "}", "l", "ArrowRight", "Tab", "Delete"] {
            let Outcome::Handled(r) = key(&mut e, k) else {
                panic!("{k} handled")
            };
            let painted: usize = r.tokens.iter().map(|r| r.len()).sum();
            assert!(painted <= 6, "{k} repaints {painted} tokens");
        }
    }
}
