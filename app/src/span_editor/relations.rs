//! The relation half of the span editor (relations projects): directed, typed links between
//! two of the annotator's spans, made and edited by keyboard without a mode switch.
//!
//! With a span selected, `>` starts a relation from it (the head); Tab / Shift+Tab walk the
//! other spans nearest first (by distance in the text) and the arrows walk them in document
//! order; a relation type's key creates the relation, Escape cancels. With a span selected,
//! `\` selects its next relation, which a relation type's key relabels, `~` reverses and
//! Delete/Backspace delete. Relations name their ends by span id, so they follow a span whose
//! boundaries move, and go (undoably) with a span that is deleted.

use concord_domain::tokens::covered_tokens;
use concord_domain::{Relation, RelationLabel, SuggestedRelation, SuggestedSpan};

use super::{EditorSpan, Outcome, SpanEditor, SpanKind};
use super::{Key, KeyPress};

/// One relation in the editor. `from` and `to` are span ids; `label` indexes the relation
/// types; `id` stays the same while the relation is edited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EditorRelation {
    pub id: u32,
    pub from: u32,
    pub to: u32,
    pub label: u16,
    pub kind: SpanKind,
}

impl EditorRelation {
    fn is_own(&self) -> bool {
        self.kind == SpanKind::Own
    }

    fn touches(&self, span: u32) -> bool {
        self.from == span || self.to == span
    }
}

/// A relation being made: its head, and the other span chosen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    pub head: u32,
    pub tail: Option<u32>,
}

/// The relation part of the editor's state.
#[derive(Debug, Clone, Default)]
pub(super) struct RelationState {
    /// The project's relation types; empty outside relations projects (then none of the
    /// relation keys is the editor's).
    pub kinds: Vec<RelationLabel>,
    pub relations: Vec<EditorRelation>,
    pub next_id: u32,
    pub pending: Option<Pending>,
    pub selected: Option<u32>,
    /// How many own spans the editor was built with: the suggestion's span `k` got id
    /// `loaded_own + k` (see [`SpanEditor::new`]).
    pub loaded_own: u32,
}

/// One line of the relation list: head text → type → tail text.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationRow {
    pub id: u32,
    /// The head and tail span ids.
    pub from: u32,
    pub to: u32,
    pub head_text: String,
    pub head_label: String,
    pub label: String,
    pub label_index: u16,
    pub tail_text: String,
    pub tail_label: String,
    /// `None` for the annotator's own relation.
    pub confidence: Option<f32>,
    pub selected: bool,
    /// Whether the selected span is one of its ends.
    pub of_selected: bool,
}

impl RelationRow {
    /// `own` or `suggested`.
    pub fn kind(&self) -> &'static str {
        super::row_kind(self.confidence)
    }

    /// `“Anna” PER → works_for → “Acme” ORG` (and the confidence of a suggestion).
    pub fn describe(&self) -> String {
        let line = format!(
            "“{}” {} → {} → “{}” {}",
            self.head_text, self.head_label, self.label, self.tail_text, self.tail_label
        );
        match self.confidence {
            Some(c) => format!("{line} {c:.2}"),
            None => line,
        }
    }
}

/// What an arc drawn over the text stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArcKind {
    Own,
    Suggested,
    /// The relation being made (head to the chosen span, no type yet).
    Pending,
}

impl ArcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArcKind::Own => "own",
            ArcKind::Suggested => "suggested",
            ArcKind::Pending => "pending",
        }
    }
}

/// One arc: from the head span's first token to the tail span's first token.
#[derive(Debug, Clone, PartialEq)]
pub struct Arc {
    /// The relation's id (`None` for the pending relation).
    pub id: Option<u32>,
    pub head_token: usize,
    pub tail_token: usize,
    /// The type's name (empty while pending).
    pub label: String,
    pub label_index: Option<u16>,
    pub kind: ArcKind,
    pub selected: bool,
}

/// The distance in code points between two spans' texts (0 when they overlap).
fn distance(a: &EditorSpan, b: &EditorSpan) -> u32 {
    if b.start >= a.end {
        b.start - a.end
    } else {
        a.start.saturating_sub(b.end)
    }
}

impl SpanEditor {
    /// Makes this a relations project's editor: the relation types, the annotator's earlier
    /// relations (`own`, by index into the own spans the editor was built with) and the
    /// model's (`suggested`, by index into `suggested_spans`, the suggestion's spans the editor
    /// was built with). A suggested relation whose span the annotator already marked the same
    /// way is attached to the annotator's span; one whose span was left out goes too.
    pub fn with_relations(
        mut self,
        kinds: Vec<RelationLabel>,
        own: &[Relation],
        suggested_spans: &[SuggestedSpan],
        suggested: &[SuggestedRelation],
    ) -> SpanEditor {
        self.rel.kinds = kinds;
        let loaded_own = self.rel.loaded_own;
        for r in own {
            let (Some(from), Some(to)) = (
                self.find(r.from)
                    .filter(|s| r.from < loaded_own && s.is_own()),
                self.find(r.to).filter(|s| r.to < loaded_own && s.is_own()),
            ) else {
                continue;
            };
            let label = self.relation_index(&r.label);
            self.push_relation(from.id, to.id, label, SpanKind::Own);
        }
        for r in suggested {
            let end = |editor: &SpanEditor, k: u32| -> Option<u32> {
                let id = loaded_own.checked_add(k)?;
                if editor.find(id).is_some() {
                    return Some(id);
                }
                // Left out because an own span settled it: the identical own span stands in.
                let s = suggested_spans.get(k as usize)?;
                editor
                    .spans
                    .iter()
                    .find(|o| {
                        o.is_own()
                            && o.start == s.start
                            && o.end == s.end
                            && editor.label_name(o.label) == s.label
                    })
                    .map(|o| o.id)
            };
            let (Some(from), Some(to)) = (end(&self, r.from), end(&self, r.to)) else {
                continue;
            };
            if from == to {
                continue;
            }
            let label = self.relation_index(&r.label);
            let duplicate = self
                .rel
                .relations
                .iter()
                .any(|o| o.from == from && o.to == to && o.label == label);
            if !duplicate {
                self.push_relation(
                    from,
                    to,
                    label,
                    SpanKind::Suggested {
                        confidence: r.confidence,
                    },
                );
            }
        }
        self
    }

    /// The relation types (those of the project, then any an earlier answer used).
    pub fn relation_kinds(&self) -> &[RelationLabel] {
        &self.rel.kinds
    }

    /// Whether this is a relations project's editor.
    pub fn has_relations(&self) -> bool {
        !self.rel.kinds.is_empty()
    }

    /// Every relation, own and suggested.
    pub fn all_relations(&self) -> &[EditorRelation] {
        &self.rel.relations
    }

    /// Whether a relation is being made.
    pub fn relation_pending(&self) -> bool {
        self.rel.pending.is_some()
    }

    /// The annotator's relations, by index into [`SpanEditor::own_spans`] (what Enter submits
    /// with them).
    pub fn own_relations(&self) -> Vec<Relation> {
        let own: Vec<u32> = self
            .spans
            .iter()
            .filter(|s| s.is_own())
            .map(|s| s.id)
            .collect();
        let index = |id: u32| own.iter().position(|&o| o == id).map(|i| i as u32);
        let mut out: Vec<Relation> = self
            .rel
            .relations
            .iter()
            .filter(|r| r.is_own())
            .filter_map(|r| {
                Some(Relation::new(
                    index(r.from)?,
                    index(r.to)?,
                    self.relation_name(r.label),
                ))
            })
            .collect();
        out.sort_by(|a, b| (a.from, a.to, &a.label).cmp(&(b.from, b.to, &b.label)));
        out
    }

    /// The relation list: the selected span's relations first, then the others, each group in
    /// the document order of its heads, then tails.
    pub fn relation_rows(&self) -> Vec<RelationRow> {
        let position = |id: u32| self.position(id).unwrap_or(usize::MAX);
        let mut rows: Vec<(bool, usize, usize, RelationRow)> = self
            .rel
            .relations
            .iter()
            .filter_map(|r| {
                let (head, tail) = (self.find(r.from)?, self.find(r.to)?);
                let of_selected = self.selected.is_some_and(|s| r.touches(s));
                Some((
                    !of_selected,
                    position(r.from),
                    position(r.to),
                    RelationRow {
                        id: r.id,
                        from: r.from,
                        to: r.to,
                        head_text: self.slice(head.start, head.end).to_string(),
                        head_label: self.label_name(head.label).to_string(),
                        label: self.relation_name(r.label).to_string(),
                        label_index: r.label,
                        tail_text: self.slice(tail.start, tail.end).to_string(),
                        tail_label: self.label_name(tail.label).to_string(),
                        confidence: r.kind.confidence(),
                        selected: self.rel.selected == Some(r.id),
                        of_selected,
                    },
                ))
            })
            .collect();
        rows.sort_by_key(|r| (r.0, r.1, r.2, r.3.id));
        rows.into_iter().map(|(_, _, _, row)| row).collect()
    }

    /// The arcs to draw: only the selected span's relations (and the one being made), so a
    /// dense item stays readable.
    pub fn arcs(&self) -> Vec<Arc> {
        let first_token = |id: u32| {
            self.find(id)
                .and_then(|s| covered_tokens(&self.tokens, s.start, s.end))
                .map(|r| r.start)
        };
        let mut arcs = Vec::new();
        if let Some(p) = self.rel.pending {
            if let (Some(h), Some(t)) = (first_token(p.head), p.tail.and_then(first_token)) {
                arcs.push(Arc {
                    id: None,
                    head_token: h,
                    tail_token: t,
                    label: String::new(),
                    label_index: None,
                    kind: ArcKind::Pending,
                    selected: true,
                });
            }
        }
        let Some(selected) = self.selected else {
            return arcs;
        };
        for r in self.rel.relations.iter().filter(|r| r.touches(selected)) {
            if let (Some(h), Some(t)) = (first_token(r.from), first_token(r.to)) {
                arcs.push(Arc {
                    id: Some(r.id),
                    head_token: h,
                    tail_token: t,
                    label: self.relation_name(r.label).to_string(),
                    label_index: Some(r.label),
                    kind: if r.is_own() {
                        ArcKind::Own
                    } else {
                        ArcKind::Suggested
                    },
                    selected: self.rel.selected == Some(r.id),
                });
            }
        }
        arcs
    }

    /// The relation types a relation from the pending head to the chosen span may have (all of
    /// them when none is pending): the page greys out the others in its type menu.
    pub fn allowed_relation_kinds(&self) -> Vec<bool> {
        let ends = self.pending_ends();
        self.rel
            .kinds
            .iter()
            .map(|k| match ends {
                Some((h, t)) => {
                    k.allows_head(self.label_name(h.label))
                        && k.allows_tail(self.label_name(t.label))
                }
                None => true,
            })
            .collect()
    }

    /// Types the pending relation (or relabels the selected one) with the type called `name`:
    /// a click in the type menu.
    pub fn relation_named(&mut self, name: &str) -> Outcome {
        match self
            .rel
            .kinds
            .iter()
            .position(|k| k.name == name)
            .and_then(|i| u16::try_from(i).ok())
        {
            Some(kind) if self.rel.pending.is_some() => self.tracked(|e| e.create_relation(kind)),
            Some(kind) if self.rel.selected.is_some() => self.tracked(|e| e.relabel_relation(kind)),
            _ => Outcome::Ignored,
        }
    }

    /// Selects relation `id` (a click in the relation list): its head becomes the selected
    /// span, so its arcs are drawn.
    pub fn select_relation(&mut self, id: u32) -> Outcome {
        let Some(r) = self.find_relation(id) else {
            return Outcome::Ignored;
        };
        self.tracked(|e| {
            e.rel.pending = None;
            // The head, so that the relation's keys (reverse, relabel) start from one place.
            e.select_span(r.from);
            e.rel.selected = Some(id);
        })
    }

    /// Replaces the own spans and relations with an answer's (the reviewer taking an
    /// annotator's answer), as one undoable edit; `relations` index `spans`.
    pub fn replace_own_answer(
        &mut self,
        spans: &[concord_domain::Span],
        relations: &[Relation],
        what: &str,
    ) -> Outcome {
        let what = what.to_string();
        let spans = spans.to_vec();
        let relations = relations.to_vec();
        self.tracked(move |e| {
            e.checkpoint();
            e.rel.pending = None;
            e.spans.retain(|s| !s.is_own());
            e.rel.relations.retain(|r| !r.is_own());
            let mut ids = Vec::with_capacity(spans.len());
            for s in &spans {
                let label = e.label_index(&s.label);
                let span = e.new_span(s.start, s.end, label);
                e.drop_superseded_suggestions(&span);
                e.spans.push(span);
                ids.push(span.id);
            }
            let mut taken = 0usize;
            for r in &relations {
                let (Some(&from), Some(&to)) = (ids.get(r.from as usize), ids.get(r.to as usize))
                else {
                    continue;
                };
                let label = e.relation_index(&r.label);
                e.push_relation(from, to, label, SpanKind::Own);
                taken += 1;
            }
            e.selected = None;
            e.sort();
            e.prune_relations();
            e.message = Some(if e.has_relations() {
                format!("took {what}: {} spans, {taken} relations", spans.len())
            } else {
                format!("took {what}: {} spans", spans.len())
            });
        })
    }

    /// Accepts every suggested relation at or above the threshold whose two ends are the
    /// annotator's spans and whose types allow them (a validated relation classifier's
    /// suggestions start accepted this way; one undo takes them back).
    pub fn accept_relations_above_threshold(&mut self) -> Outcome {
        let floor = f32::from(self.threshold) / 100.0;
        self.tracked(|e| {
            let candidates: Vec<EditorRelation> = e
                .rel
                .relations
                .iter()
                .filter(|r| r.kind.confidence().is_some_and(|c| c >= floor))
                .copied()
                .collect();
            let acceptable: Vec<u32> = candidates
                .iter()
                .filter(|r| {
                    let (Some(h), Some(t)) = (e.find(r.from), e.find(r.to)) else {
                        return false;
                    };
                    h.is_own()
                        && t.is_own()
                        && e.relation_problem(&h, &t, r.label, Some(r.id)).is_none()
                })
                .map(|r| r.id)
                .collect();
            if acceptable.is_empty() {
                return;
            }
            e.checkpoint();
            for r in &mut e.rel.relations {
                if acceptable.contains(&r.id) {
                    r.kind = SpanKind::Own;
                }
            }
            e.message = Some(format!(
                "accepted {} suggested relation{} at or above {}%",
                acceptable.len(),
                if acceptable.len() == 1 { "" } else { "s" },
                e.threshold
            ));
        })
    }

    // ----- keys -----

    /// The keys of a relations project's editor that come before the span keys: `None` when
    /// the span editor should act on the key as usual.
    pub(super) fn press_relation_key(&mut self, key: KeyPress) -> Option<Outcome> {
        if !self.has_relations() {
            return None;
        }
        if self.rel.pending.is_some() {
            return self.press_pending(key);
        }
        if key.ctrl {
            return None;
        }
        let selected_relation = self.rel.selected.is_some();
        Some(match key.key {
            Key::Char('>') => self.tracked(Self::start_relation),
            Key::Char('\\') => self.tracked(Self::next_relation),
            Key::Char('~') => self.tracked(Self::reverse_relation),
            Key::Delete | Key::Backspace if selected_relation => {
                self.tracked(Self::delete_relation)
            }
            Key::Escape if selected_relation => self.tracked(|e| e.rel.selected = None),
            Key::Char('+') if selected_relation => self.tracked(Self::accept_relation),
            Key::Char('-') if selected_relation => self.tracked(Self::reject_relation),
            Key::Char(c) if selected_relation => match self.relation_for_key(c) {
                Some(kind) => self.tracked(|e| e.relabel_relation(kind)),
                None => return None,
            },
            _ => return None,
        })
    }

    /// A key while a relation is being made: the other span, the type, or cancel. Undo and
    /// redo cancel it and act as usual; keys of no use now say what is expected.
    fn press_pending(&mut self, key: KeyPress) -> Option<Outcome> {
        if key.ctrl {
            self.rel.pending = None;
            return None;
        }
        Some(match key.key {
            Key::Tab => self.tracked(|e| e.choose_nearest(key.shift)),
            Key::Right => self.tracked(|e| e.choose_in_order(true)),
            Key::Left => self.tracked(|e| e.choose_in_order(false)),
            Key::Escape => self.tracked(|e| {
                e.rel.pending = None;
                e.message = Some("relation cancelled".into());
            }),
            Key::Char('?') => Outcome::Guidelines,
            Key::Char(c) => match self.relation_for_key(c) {
                Some(kind) => self.tracked(|e| e.create_relation(kind)),
                None => self.tracked(|e| e.message = Some(e.pending_hint())),
            },
            _ => self.tracked(|e| e.message = Some(e.pending_hint())),
        })
    }

    fn pending_hint(&self) -> String {
        let keys: Vec<String> = self
            .rel
            .kinds
            .iter()
            .filter_map(|k| Some(format!("{} {}", k.hotkey.as_deref()?, k.name)))
            .collect();
        format!(
            "making a relation: Tab or the arrows choose the other span, a type's key ({}) makes it, Escape cancels",
            keys.join(", ")
        )
    }

    /// `>`: a relation from the selected span to the nearest other span of the annotator's.
    fn start_relation(&mut self) {
        let Some(head) = self.selected() else {
            self.message = Some(
                "select a span first (Tab walks the spans), then > starts a relation from it"
                    .into(),
            );
            return;
        };
        if !head.is_own() {
            self.message =
                Some("accept the suggested span first (+): relations join your own spans".into());
            return;
        }
        let Some(tail) = self.candidates_nearest(&head).first().copied() else {
            self.message = Some("mark another span first: a relation joins two spans".into());
            return;
        };
        self.begin_relation(head.id, tail);
    }

    /// Starts a relation between two spans at once (a pointer drag from one to the other).
    pub(super) fn start_relation_between(&mut self, head: u32, tail: u32) {
        self.select_span(head);
        self.begin_relation(head, tail);
    }

    /// Makes the relation from `head` to `tail` the one being made; a type's key finishes it.
    /// It leaves the selected span and the cursor alone: `>` starts from the selected span
    /// wherever the cursor is, and only a drag selects the head first.
    fn begin_relation(&mut self, head: u32, tail: u32) {
        self.rel.selected = None;
        self.rel.pending = Some(Pending {
            head,
            tail: Some(tail),
        });
        self.message = Some(self.pending_hint());
    }

    /// The annotator's spans other than `head`, nearest first (ties: the earlier one).
    fn candidates_nearest(&self, head: &EditorSpan) -> Vec<u32> {
        let mut c: Vec<(u32, usize, u32)> = self
            .spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_own() && s.id != head.id)
            .map(|(i, s)| (distance(head, s), i, s.id))
            .collect();
        c.sort_unstable();
        c.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Tab (Shift+Tab): the next farther (nearer) span; wraps around.
    fn choose_nearest(&mut self, backwards: bool) {
        let Some(p) = self.rel.pending else {
            return;
        };
        let Some(head) = self.find(p.head) else {
            return;
        };
        let order = self.candidates_nearest(&head);
        if order.is_empty() {
            return;
        }
        let n = order.len();
        let at = match p.tail.and_then(|t| order.iter().position(|&o| o == t)) {
            Some(i) if backwards => (i + n - 1) % n,
            Some(i) => (i + 1) % n,
            None => 0,
        };
        self.rel.pending = Some(Pending {
            tail: Some(order[at]),
            ..p
        });
        self.describe_pending();
    }

    /// → (←): the next (previous) span in the text, the head skipped.
    fn choose_in_order(&mut self, forwards: bool) {
        let Some(p) = self.rel.pending else {
            return;
        };
        let order: Vec<u32> = self
            .spans
            .iter()
            .filter(|s| s.is_own() && s.id != p.head)
            .map(|s| s.id)
            .collect();
        let here = p.tail.and_then(|t| order.iter().position(|&o| o == t));
        let next = match (here, forwards) {
            (Some(i), true) => order.get(i + 1),
            (Some(i), false) => i.checked_sub(1).and_then(|i| order.get(i)),
            (None, _) => order.first(),
        };
        match next {
            Some(&tail) => {
                self.rel.pending = Some(Pending {
                    tail: Some(tail),
                    ..p
                });
                self.describe_pending();
            }
            None => {
                self.message = Some(if forwards {
                    "no span further right".into()
                } else {
                    "no span further left".into()
                })
            }
        }
    }

    fn describe_pending(&mut self) {
        let Some((h, t)) = self.pending_ends() else {
            return;
        };
        self.message = Some(format!(
            "relation from “{}” to “{}”: a type's key makes it, Escape cancels",
            self.slice(h.start, h.end),
            self.slice(t.start, t.end)
        ));
    }

    /// A relation type's key while a relation is being made: creates it, unless the type does
    /// not allow its ends or it is already there (then it says why and waits).
    fn create_relation(&mut self, kind: u16) {
        let Some((head, tail)) = self.pending_ends() else {
            self.rel.pending = None;
            return;
        };
        if let Some(problem) = self.relation_problem(&head, &tail, kind, None) {
            self.message = Some(problem);
            return;
        }
        self.checkpoint();
        self.rel.pending = None;
        let id = self.push_relation(head.id, tail.id, kind, SpanKind::Own);
        self.rel.selected = Some(id);
        self.message = Some(format!(
            "{}: “{}” → “{}”",
            self.relation_name(kind),
            self.slice(head.start, head.end),
            self.slice(tail.start, tail.end)
        ));
    }

    /// `\`: the selected span's next relation (in the list's order); wraps around.
    fn next_relation(&mut self) {
        let Some(span) = self.selected else {
            self.message = Some(
                "select a span first (Tab walks the spans), then \\ walks its relations".into(),
            );
            return;
        };
        let mine: Vec<u32> = self
            .relation_rows()
            .into_iter()
            .filter(|r| r.from == span || r.to == span)
            .map(|r| r.id)
            .collect();
        if mine.is_empty() {
            self.message = Some("this span has no relations yet: > starts one".into());
            return;
        }
        let at = match self
            .rel
            .selected
            .and_then(|s| mine.iter().position(|&m| m == s))
        {
            Some(i) => (i + 1) % mine.len(),
            None => 0,
        };
        self.rel.selected = Some(mine[at]);
        if let Some(row) = self.relation_rows().into_iter().find(|r| r.id == mine[at]) {
            self.message = Some(row.describe());
        }
    }

    /// A relation type's key with a relation selected: its type (a suggestion becomes the
    /// annotator's).
    fn relabel_relation(&mut self, kind: u16) {
        let Some(r) = self.selected_relation() else {
            return;
        };
        if r.label == kind && r.is_own() {
            return;
        }
        if self.change_relation(r, kind, false).is_some() {
            self.message = Some(format!("relation now {}", self.relation_name(kind)));
        }
    }

    /// `~`: swaps the selected relation's head and tail, if its type allows them that way.
    fn reverse_relation(&mut self) {
        let Some(r) = self.selected_relation() else {
            self.message =
                Some("select a relation first (\\ walks the selected span's relations)".into());
            return;
        };
        if let Some((head, tail)) = self.change_relation(r, r.label, true) {
            self.message = Some(format!(
                "reversed: “{}” → {} → “{}”",
                self.slice(head.start, head.end),
                self.relation_name(r.label),
                self.slice(tail.start, tail.end)
            ));
        }
    }

    fn delete_relation(&mut self) {
        let Some(r) = self.selected_relation() else {
            return;
        };
        self.checkpoint();
        self.rel.relations.retain(|o| o.id != r.id);
        self.rel.selected = None;
        self.message = Some(if r.is_own() {
            "relation deleted".into()
        } else {
            "suggested relation rejected".into()
        });
    }

    /// `+` with a suggested relation selected: it becomes the annotator's, with its two spans.
    fn accept_relation(&mut self) {
        let Some(r) = self.selected_relation() else {
            return;
        };
        if r.is_own() {
            self.message = Some("this relation is already yours".into());
            return;
        }
        if self.change_relation(r, r.label, false).is_some() {
            self.message = Some("suggested relation accepted".into());
        }
    }

    fn reject_relation(&mut self) {
        match self.selected_relation() {
            Some(r) if !r.is_own() => self.delete_relation(),
            Some(_) => self.message = Some("this relation is yours: Delete removes it".into()),
            None => {}
        }
    }

    // ----- helpers -----

    /// What relabelling, reversing and accepting a relation share: makes relation `r` the
    /// annotator's, with type `label` and its head and tail swapped when `reversed`, and its
    /// suggested spans with it, as one undoable edit. Returns the changed relation's head and
    /// tail; `None` when a span cannot become the annotator's or the type does not allow the
    /// ends, and then nothing changes and the message says why.
    fn change_relation(
        &mut self,
        r: EditorRelation,
        label: u16,
        reversed: bool,
    ) -> Option<(EditorSpan, EditorSpan)> {
        let (from, to) = self.own_ends(&r)?;
        let (head, tail) = if reversed { (to, from) } else { (from, to) };
        if let Some(problem) = self.relation_problem(&head, &tail, label, Some(r.id)) {
            self.message = Some(problem);
            return None;
        }
        self.checkpoint();
        self.accept_ends(&from, &to);
        self.put_relation(EditorRelation {
            from: head.id,
            to: tail.id,
            label,
            kind: SpanKind::Own,
            ..r
        });
        Some((head, tail))
    }

    /// The relation's two spans, when a suggested one among them could become the
    /// annotator's (else the message says why not).
    fn own_ends(&mut self, r: &EditorRelation) -> Option<(EditorSpan, EditorSpan)> {
        let (head, tail) = (self.find(r.from)?, self.find(r.to)?);
        for end in [head, tail] {
            if !end.is_own() {
                let accepted = EditorSpan {
                    kind: SpanKind::Own,
                    ..end
                };
                if self.refuse(&accepted, Some(end.id)) {
                    return None;
                }
            }
        }
        Some((head, tail))
    }

    /// Makes the relation's suggested spans the annotator's (after [`Self::own_ends`]).
    fn accept_ends(&mut self, head: &EditorSpan, tail: &EditorSpan) {
        for end in [head, tail] {
            if !end.is_own() {
                self.put(EditorSpan {
                    kind: SpanKind::Own,
                    ..*end
                });
            }
        }
    }

    /// Why a relation of type `kind` from `head` to `tail` may not be made (`None`: it may).
    /// `except` is the relation being changed.
    pub(super) fn relation_problem(
        &self,
        head: &EditorSpan,
        tail: &EditorSpan,
        kind: u16,
        except: Option<u32>,
    ) -> Option<String> {
        let k = self.rel.kinds.get(usize::from(kind))?;
        let (head_type, tail_type) = (self.label_name(head.label), self.label_name(tail.label));
        if head.id == tail.id {
            return Some("a relation joins two different spans".into());
        }
        let allowed = |types: &[String]| types.join(" or ");
        if !k.allows_head(head_type) {
            return Some(format!(
                "{} needs a head of type {}: “{}” is {head_type}",
                k.name,
                allowed(&k.head),
                self.slice(head.start, head.end)
            ));
        }
        if !k.allows_tail(tail_type) {
            return Some(format!(
                "{} needs a tail of type {}: “{}” is {tail_type}",
                k.name,
                allowed(&k.tail),
                self.slice(tail.start, tail.end)
            ));
        }
        let repeated = self.rel.relations.iter().any(|r| {
            Some(r.id) != except
                && r.is_own()
                && r.from == head.id
                && r.to == tail.id
                && r.label == kind
        });
        repeated.then(|| {
            format!(
                "that relation is already there: “{}” → {} → “{}”",
                self.slice(head.start, head.end),
                k.name,
                self.slice(tail.start, tail.end)
            )
        })
    }

    /// Why span `span` may not take entity type `label`: one of its own relations' types
    /// does not allow it at that end (`None`: it may).
    pub(super) fn relabel_problem(&self, span: u32, label: u16) -> Option<String> {
        let name = self.label_name(label);
        self.rel
            .relations
            .iter()
            .filter(|r| r.is_own() && r.touches(span))
            .find_map(|r| {
                let k = self.rel.kinds.get(usize::from(r.label))?;
                let (end, ok) = if r.from == span {
                    ("head", k.allows_head(name))
                } else {
                    ("tail", k.allows_tail(name))
                };
                (!ok).then(|| {
                    format!(
                        "its {} relation needs a {end} of another type than {name}: change or delete that relation first (\\ selects it)",
                        k.name
                    )
                })
            })
    }

    /// Drops relations whose spans are gone (a deleted span takes its relations with it), and
    /// the pending or selected relation when they no longer hold.
    pub(super) fn prune_relations(&mut self) {
        if self.rel.kinds.is_empty() {
            return;
        }
        let alive: std::collections::HashSet<u32> = self.spans.iter().map(|s| s.id).collect();
        let own: std::collections::HashSet<u32> = self
            .spans
            .iter()
            .filter(|s| s.is_own())
            .map(|s| s.id)
            .collect();
        self.rel.relations.retain(|r| {
            if r.is_own() {
                own.contains(&r.from) && own.contains(&r.to)
            } else {
                alive.contains(&r.from) && alive.contains(&r.to)
            }
        });
        if let Some(p) = self.rel.pending {
            let holds = Some(p.head) == self.selected
                && own.contains(&p.head)
                && p.tail.is_none_or(|t| own.contains(&t));
            if !holds {
                self.rel.pending = None;
            }
        }
        let selected_relation = self.selected_relation();
        if !selected_relation.is_some_and(|r| self.selected.is_some_and(|s| r.touches(s))) {
            self.rel.selected = None;
        }
    }

    /// How many relations touch span `id`.
    pub(super) fn relations_of(&self, id: u32) -> usize {
        self.rel.relations.iter().filter(|r| r.touches(id)).count()
    }

    /// The span ids whose look shows relation state: the pending relation's chosen span and
    /// the selected relation's other end.
    pub(super) fn relation_marks(&self) -> (Option<u32>, Option<u32>) {
        let tail = self.rel.pending.and_then(|p| p.tail);
        let other = self.selected_relation().and_then(|r| match self.selected {
            Some(s) if r.from == s => Some(r.to),
            Some(_) => Some(r.from),
            None => None,
        });
        (tail, other)
    }

    fn relation_for_key(&self, key: char) -> Option<u16> {
        super::hotkey_index(self.rel.kinds.iter().map(|k| k.hotkey.as_deref()), key)
    }

    fn relation_index(&mut self, name: &str) -> u16 {
        super::index_or_add(
            &mut self.rel.kinds,
            |k| k.name == name,
            || RelationLabel::named(name),
        )
    }

    fn relation_name(&self, kind: u16) -> &str {
        self.rel
            .kinds
            .get(usize::from(kind))
            .map_or("", |k| k.name.as_str())
    }

    fn push_relation(&mut self, from: u32, to: u32, label: u16, kind: SpanKind) -> u32 {
        let id = self.rel.next_id;
        self.rel.next_id += 1;
        self.rel.relations.push(EditorRelation {
            id,
            from,
            to,
            label,
            kind,
        });
        id
    }

    fn put_relation(&mut self, r: EditorRelation) {
        if let Some(at) = self.rel.relations.iter().position(|o| o.id == r.id) {
            self.rel.relations[at] = r;
        }
        // A suggestion equal to the changed relation is settled by it.
        self.rel.relations.retain(|o| {
            o.id == r.id || o.is_own() || !(o.from == r.from && o.to == r.to && o.label == r.label)
        });
    }

    fn find_relation(&self, id: u32) -> Option<EditorRelation> {
        self.rel.relations.iter().find(|r| r.id == id).copied()
    }

    fn selected_relation(&self) -> Option<EditorRelation> {
        self.rel.selected.and_then(|id| self.find_relation(id))
    }

    /// The pending relation's head and chosen span, while both are there.
    fn pending_ends(&self) -> Option<(EditorSpan, EditorSpan)> {
        self.rel
            .pending
            .and_then(|p| Some((self.find(p.head)?, self.find(p.tail?)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EditorLabel, KeyPress, Outcome, SpanEditor};
    use super::*;
    use concord_domain::tokens::tokenize;
    use concord_domain::Span;

    // Tokens: Anna0 Smith1 works2 for3 Acme4 Corp5 in6 Berlin7 .8
    const TEXT: &str = "Anna Smith works for Acme Corp in Berlin .";

    fn kinds() -> Vec<RelationLabel> {
        let kind = |name: &str, head: &[&str], tail: &[&str], key: &str| RelationLabel {
            head: head.iter().map(|t| t.to_string()).collect(),
            tail: tail.iter().map(|t| t.to_string()).collect(),
            hotkey: Some(key.into()),
            ..RelationLabel::named(name)
        };
        vec![
            kind("works_for", &["PER"], &["ORG"], "w"),
            kind("located_in", &["ORG"], &["LOC"], "i"),
            kind("knows", &[], &[], "k"),
        ]
    }

    fn editor_with(
        own: &[Span],
        own_relations: &[Relation],
        suggested: &[SuggestedSpan],
        suggested_relations: &[SuggestedRelation],
    ) -> SpanEditor {
        let labels = [("PER", "p"), ("ORG", "o"), ("LOC", "l")]
            .iter()
            .map(|(n, k)| EditorLabel {
                name: n.to_string(),
                hotkey: Some(k.to_string()),
            })
            .collect();
        SpanEditor::new(TEXT, tokenize(TEXT), labels, false, 80, own, suggested).with_relations(
            kinds(),
            own_relations,
            suggested,
            suggested_relations,
        )
    }

    fn key(e: &mut SpanEditor, k: &str) -> Outcome {
        e.press(KeyPress::parse(k, false, false))
    }

    fn shift(e: &mut SpanEditor, k: &str) -> Outcome {
        e.press(KeyPress::parse(k, true, false))
    }

    /// Marks tokens `from..=to` with the label key `label`, by keyboard.
    fn mark(e: &mut SpanEditor, from: usize, to: usize, label: &str) {
        key(e, "Escape");
        key(e, "Home");
        for _ in 0..from {
            key(e, "ArrowRight");
        }
        for _ in from..to {
            shift(e, "ArrowRight");
        }
        key(e, label);
    }

    /// Anna Smith (PER), Acme Corp (ORG), Berlin (LOC), none selected.
    fn three_spans() -> SpanEditor {
        let mut e = editor_with(&[], &[], &[], &[]);
        mark(&mut e, 0, 1, "p");
        mark(&mut e, 4, 5, "o");
        mark(&mut e, 7, 7, "l");
        key(&mut e, "Escape");
        e
    }

    /// Selects the span starting at token `t` by Tab from the text's start.
    fn select_at(e: &mut SpanEditor, t: usize) {
        key(e, "Escape");
        key(e, "Escape");
        key(e, "Home");
        let start = e.tokens()[t].start;
        for _ in 0..e.all_spans().len() {
            key(e, "Tab");
            if e.selected().is_some_and(|s| s.start == start) {
                return;
            }
        }
        panic!("no span at token {t}");
    }

    /// Makes a relation by keyboard: from the span at token `t` to the span nearest it, of the
    /// type whose key is `type_key`.
    fn relate_nearest(e: &mut SpanEditor, t: usize, type_key: &str) {
        select_at(e, t);
        key(e, ">");
        key(e, type_key);
    }

    /// The own relations as `(head text, type, tail text)`.
    fn relations(e: &SpanEditor) -> Vec<(String, String, String)> {
        let spans = e.own_spans();
        e.own_relations()
            .iter()
            .map(|r| {
                let text = |i: u32| {
                    let s = &spans[i as usize];
                    e.slice(s.start, s.end).to_string()
                };
                (text(r.from), r.label.clone(), text(r.to))
            })
            .collect()
    }

    fn triple(head: &str, label: &str, tail: &str) -> (String, String, String) {
        (head.into(), label.into(), tail.into())
    }

    fn message(e: &SpanEditor) -> String {
        e.message().unwrap_or_default().to_string()
    }

    #[test]
    fn a_relation_is_made_by_keyboard_nearest_span_first() {
        let mut e = three_spans();
        select_at(&mut e, 0);
        key(&mut e, ">");
        assert!(e.relation_pending());
        // Acme Corp (11 code points away) before Berlin (24).
        let arcs = e.arcs();
        assert_eq!(arcs.len(), 1);
        assert_eq!(
            (arcs[0].head_token, arcs[0].tail_token, arcs[0].kind),
            (0, 4, ArcKind::Pending)
        );
        key(&mut e, "Tab");
        assert_eq!(e.arcs()[0].tail_token, 7, "Tab: the next nearest");
        shift(&mut e, "Tab");
        assert_eq!(e.arcs()[0].tail_token, 4, "Shift+Tab: back");
        key(&mut e, "ArrowRight");
        assert_eq!(e.arcs()[0].tail_token, 7, "→: the next span in the text");
        key(&mut e, "ArrowRight");
        assert_eq!(message(&e), "no span further right");
        key(&mut e, "ArrowLeft");
        assert!(
            e.token_classes(4..5)[0].split(' ').any(|c| c == "tail"),
            "the chosen span is marked"
        );
        // An entity key means nothing now: it says what is expected and labels nothing.
        key(&mut e, "l");
        assert!(message(&e).contains("w works_for"), "{}", message(&e));
        assert_eq!(e.own_spans().len(), 3);
        key(&mut e, "w");
        assert!(!e.relation_pending());
        assert_eq!(
            relations(&e),
            [triple("Anna Smith", "works_for", "Acme Corp")]
        );
        assert_eq!(e.own_relations(), [Relation::new(0, 1, "works_for")]);
        // From Acme Corp: Berlin is nearest.
        relate_nearest(&mut e, 4, "i");
        assert_eq!(
            e.own_relations(),
            [
                Relation::new(0, 1, "works_for"),
                Relation::new(1, 2, "located_in")
            ]
        );
        // The same relation twice is refused.
        relate_nearest(&mut e, 4, "i");
        assert!(message(&e).starts_with("that relation is already there"));
        key(&mut e, "Escape");
        assert!(!e.relation_pending());
        assert_eq!(message(&e), "relation cancelled");
        assert_eq!(e.own_relations().len(), 2);
    }

    #[test]
    fn a_type_that_does_not_allow_the_ends_is_refused_with_a_message() {
        let mut e = three_spans();
        select_at(&mut e, 0);
        key(&mut e, ">");
        key(&mut e, "Tab"); // Berlin
        key(&mut e, "i");
        assert_eq!(
            message(&e),
            "located_in needs a head of type ORG: “Anna Smith” is PER"
        );
        assert!(e.relation_pending(), "still waiting for a type");
        assert_eq!(e.allowed_relation_kinds(), [false, false, true]);
        key(&mut e, "w");
        assert_eq!(
            message(&e),
            "works_for needs a tail of type ORG: “Berlin” is LOC"
        );
        key(&mut e, "k");
        assert_eq!(relations(&e), [triple("Anna Smith", "knows", "Berlin")]);
        // Without a selected span, or from a span with no other span, nothing starts.
        key(&mut e, "Escape");
        key(&mut e, "Escape");
        key(&mut e, ">");
        assert!(!e.relation_pending());
        assert!(message(&e).starts_with("select a span first"));
        let mut lonely = editor_with(&[], &[], &[], &[]);
        mark(&mut lonely, 0, 0, "p");
        key(&mut lonely, ">");
        assert!(!lonely.relation_pending());
        assert!(message(&lonely).starts_with("mark another span first"));
    }

    #[test]
    fn the_selected_spans_relations_are_walked_relabelled_reversed_and_deleted() {
        let mut e = three_spans();
        relate_nearest(&mut e, 0, "w");
        relate_nearest(&mut e, 4, "i");
        select_at(&mut e, 4);
        assert_eq!(e.arcs().len(), 2, "both of Acme Corp's relations are drawn");
        select_at(&mut e, 7);
        assert_eq!(e.arcs().len(), 1, "only Berlin's");
        key(&mut e, "Escape");
        assert!(e.arcs().is_empty(), "no span selected, no arcs");

        select_at(&mut e, 4);
        key(&mut e, "\\");
        let selected = |e: &SpanEditor| {
            e.relation_rows()
                .into_iter()
                .find(|r| r.selected)
                .map(|r| r.label)
        };
        assert_eq!(selected(&e).as_deref(), Some("works_for"));
        key(&mut e, "\\");
        assert_eq!(selected(&e).as_deref(), Some("located_in"));
        key(&mut e, "\\");
        assert_eq!(selected(&e).as_deref(), Some("works_for"), "wraps around");
        assert!(
            e.token_classes(0..1)[0].split(' ').any(|c| c == "rel"),
            "the other end is marked"
        );
        // A relation type's key relabels it (entity keys would relabel the span).
        key(&mut e, "k");
        assert_eq!(
            relations(&e),
            [
                triple("Anna Smith", "knows", "Acme Corp"),
                triple("Acme Corp", "located_in", "Berlin")
            ]
        );
        key(&mut e, "~");
        assert_eq!(relations(&e)[0], triple("Acme Corp", "knows", "Anna Smith"));
        // Back to works_for, reversed: an ORG head is refused.
        key(&mut e, "w");
        assert_eq!(
            message(&e),
            "works_for needs a head of type PER: “Acme Corp” is ORG"
        );
        key(&mut e, "~");
        key(&mut e, "w");
        assert_eq!(
            relations(&e)[0],
            triple("Anna Smith", "works_for", "Acme Corp")
        );
        // Reversing works_for would make an ORG its head.
        key(&mut e, "~");
        assert!(message(&e).starts_with("works_for needs a head of type PER"));
        key(&mut e, "Delete");
        assert_eq!(message(&e), "relation deleted");
        assert_eq!(relations(&e), [triple("Acme Corp", "located_in", "Berlin")]);
        assert_eq!(
            e.own_spans().len(),
            3,
            "Delete took the relation, not the span"
        );
        // Escape lets go of the relation first, then of the span.
        key(&mut e, "\\");
        key(&mut e, "Escape");
        assert!(e.relation_rows().iter().all(|r| !r.selected));
        assert!(e.selected().is_some());
    }

    #[test]
    fn deleting_a_span_deletes_its_relations_and_undo_brings_both_back() {
        let mut e = three_spans();
        relate_nearest(&mut e, 0, "w");
        relate_nearest(&mut e, 4, "i");
        let before = relations(&e);
        select_at(&mut e, 4);
        key(&mut e, "Delete");
        assert_eq!(e.own_spans().len(), 2);
        assert!(e.own_relations().is_empty());
        assert_eq!(
            message(&e),
            "span deleted with its 2 relations (Ctrl+Z brings them back)"
        );
        e.press(KeyPress::parse("z", false, true));
        assert_eq!(e.own_spans().len(), 3);
        assert_eq!(relations(&e), before);
        e.press(KeyPress::parse("Z", true, true));
        assert!(e.own_relations().is_empty(), "redo deletes them again");
        e.press(KeyPress::parse("z", false, true));
        // Undo takes a relation back like any edit.
        relate_nearest(&mut e, 7, "k");
        assert_eq!(e.own_relations().len(), 3);
        e.press(KeyPress::parse("z", false, true));
        assert_eq!(relations(&e), before);
    }

    #[test]
    fn selecting_another_span_lets_go_of_the_selected_relation() {
        let mut e = three_spans();
        relate_nearest(&mut e, 0, "w");
        assert!(e.relation_rows()[0].selected, "a new relation is selected");
        // Tab to Acme Corp (the relation's other end): Delete now deletes the span.
        key(&mut e, "Tab");
        assert!(e.relation_rows().iter().all(|r| !r.selected));
        key(&mut e, "Delete");
        assert_eq!(e.own_spans().len(), 2);
        assert!(e.own_relations().is_empty());
        // A click on a relation in the list selects it and its head.
        e.press(KeyPress::parse("z", false, true));
        let id = e.relation_rows()[0].id;
        e.select_relation(id);
        assert_eq!(e.selected().map(|s| s.start), Some(0));
        assert!(e.relation_rows()[0].selected);
    }

    #[test]
    fn a_span_keeps_a_type_its_relations_need() {
        let mut e = three_spans();
        relate_nearest(&mut e, 0, "w");
        select_at(&mut e, 0);
        key(&mut e, "o");
        assert_eq!(e.own_spans()[0].label, "PER");
        assert!(
            message(&e).starts_with("“Anna Smith” keeps its type: its works_for relation"),
            "{}",
            message(&e)
        );
        // Moving its boundary keeps the relation on it.
        key(&mut e, "{");
        assert_eq!(relations(&e), [triple("Anna", "works_for", "Acme Corp")]);
    }

    #[test]
    fn a_drag_from_span_to_span_starts_a_relation_the_type_menu_finishes() {
        let mut e = three_spans();
        e.pointer_down(1);
        e.pointer_over(4);
        e.pointer_up(Some(5));
        assert!(e.relation_pending());
        assert_eq!(e.selection(), None, "no text selection is left");
        assert_eq!(e.allowed_relation_kinds(), [true, false, true]);
        e.relation_named("works_for");
        assert_eq!(
            relations(&e),
            [triple("Anna Smith", "works_for", "Acme Corp")]
        );
        // A drag from a span to plain text is a text selection as before.
        e.pointer_down(0);
        e.pointer_up(Some(2));
        assert!(!e.relation_pending());
        assert!(e.selection().is_some());
    }

    #[test]
    fn suggested_relations_are_hints_until_accepted_with_their_spans() {
        let suggested = [
            SuggestedSpan {
                start: 0,
                end: 10,
                label: "PER".into(),
                confidence: 0.9,
            },
            SuggestedSpan {
                start: 21,
                end: 30,
                label: "ORG".into(),
                confidence: 0.6,
            },
        ];
        let relation = SuggestedRelation {
            from: 0,
            to: 1,
            label: "works_for".into(),
            confidence: 0.85,
        };
        let mut e = editor_with(&[], &[], &suggested, std::slice::from_ref(&relation));
        let rows = e.relation_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind(), "suggested");
        assert_eq!(
            rows[0].describe(),
            "“Anna Smith” PER → works_for → “Acme Corp” ORG 0.85"
        );
        assert!(e.own_relations().is_empty(), "a hint is not submitted");
        key(&mut e, "Home");
        key(&mut e, "Tab");
        assert_eq!(e.arcs()[0].kind, ArcKind::Suggested);
        key(&mut e, "\\");
        key(&mut e, "+");
        assert_eq!(message(&e), "suggested relation accepted");
        assert_eq!(e.own_spans().len(), 2, "its spans became the annotator's");
        assert_eq!(e.own_relations(), [Relation::new(0, 1, "works_for")]);
        e.press(KeyPress::parse("z", false, true));
        assert!(e.own_spans().is_empty() && e.own_relations().is_empty());

        // Rejecting a suggested span rejects its relations.
        key(&mut e, "Home");
        key(&mut e, "Tab");
        key(&mut e, "-");
        assert!(e.relation_rows().is_empty());

        // Pre-accepting: only relations at or above the threshold whose ends are the
        // annotator's; a suggestion's span the annotator already has stands in for it.
        let own = [Span::new(0, 10, "PER"), Span::new(21, 30, "ORG")];
        let mut e = editor_with(&own, &[], &suggested, std::slice::from_ref(&relation));
        assert_eq!(e.relation_rows().len(), 1, "attached to the own spans");
        e.accept_relations_above_threshold();
        assert_eq!(e.own_relations(), [Relation::new(0, 1, "works_for")]);
        let low = SuggestedRelation {
            confidence: 0.5,
            ..relation
        };
        let mut e = editor_with(&own, &[], &suggested, &[low]);
        e.accept_relations_above_threshold();
        assert!(e.own_relations().is_empty());
    }

    #[test]
    fn earlier_relations_load_and_taking_an_answer_replaces_them() {
        let own = [
            Span::new(0, 10, "PER"),
            Span::new(21, 30, "ORG"),
            Span::new(34, 40, "LOC"),
        ];
        let mut e = editor_with(&own, &[Relation::new(1, 2, "located_in")], &[], &[]);
        assert_eq!(relations(&e), [triple("Acme Corp", "located_in", "Berlin")]);
        e.replace_own_answer(&own[..2], &[Relation::new(0, 1, "works_for")], "b's answer");
        assert_eq!(message(&e), "took b's answer: 2 spans, 1 relations");
        assert_eq!(
            relations(&e),
            [triple("Anna Smith", "works_for", "Acme Corp")]
        );
        e.press(KeyPress::parse("z", false, true));
        assert_eq!(relations(&e), [triple("Acme Corp", "located_in", "Berlin")]);
        // An unknown type of an earlier answer is kept (allowed between any spans).
        let e = editor_with(&own, &[Relation::new(0, 2, "born_in")], &[], &[]);
        assert_eq!(relations(&e), [triple("Anna Smith", "born_in", "Berlin")]);
    }

    #[test]
    fn relation_keys_are_not_the_editors_outside_relations_projects() {
        let labels = vec![EditorLabel {
            name: "PER".into(),
            hotkey: Some("p".into()),
        }];
        let mut e = SpanEditor::new(TEXT, tokenize(TEXT), labels, false, 80, &[], &[]);
        key(&mut e, "p");
        for k in [">", "\\", "~"] {
            assert_eq!(key(&mut e, k), Outcome::Ignored, "{k}");
        }
        assert!(e.relation_rows().is_empty() && e.arcs().is_empty());
    }

    #[test]
    fn repaints_cover_the_tokens_relation_keys_change() {
        let mut e = three_spans();
        let mut painted = e.token_classes(0..e.tokens().len());
        for k in [
            "Home",
            "Tab",
            ">",
            "Tab",
            "ArrowLeft",
            "w",
            "Tab",
            ">",
            "i",
            "\\",
            "\\",
            "~",
            "Escape",
            "Tab",
            "Delete",
            "Tab",
            ">",
            "Escape",
            "Escape",
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
    }
}
