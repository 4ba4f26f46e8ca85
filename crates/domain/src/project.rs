use serde::{Deserialize, Serialize};

use crate::DomainError;

const MAX_PROJECT_NAME: usize = 200;
const MAX_LABELS: usize = 200;
const MAX_LABEL_NAME: usize = 100;
const MAX_GUIDELINES: usize = 256 * 1024;
const MAX_OVERLAP: u32 = 50;
const MAX_GOLD_EVERY: u32 = 1000;

/// Keys the annotation page keeps for itself; a label may not use them as its hotkey.
pub const RESERVED_KEYS: &[&str] = &[" ", "?", "Enter", "Backspace", "Escape", "Tab"];

/// What annotators produce for each item. New kinds (spans, relations) are added as new
/// variants: stored projects keep decoding because the encoding names the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Exactly one label per item.
    Classification,
    /// Any subset of the labels per item (possibly none).
    Multilabel,
    /// Named entities: labelled character ranges of the item text (possibly none); the labels
    /// are the entity types.
    Spans,
    /// Spans as in [`TaskKind::Spans`] plus directed, typed relations between two spans of the
    /// same answer; the relation types are the project's `relation_labels`.
    Relations,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Multilabel => "multilabel",
            TaskKind::Spans => "spans",
            TaskKind::Relations => "relations",
        }
    }

    pub const ALL: [TaskKind; 4] = [
        TaskKind::Classification,
        TaskKind::Multilabel,
        TaskKind::Spans,
        TaskKind::Relations,
    ];

    /// Whether annotations are spans of the text (rather than labels of the whole item). True
    /// for relation projects too: their answers are spans first, and every span feature (the
    /// editor, patterns, the token classifier, span agreement) serves them unchanged.
    pub fn is_spans(self) -> bool {
        matches!(self, TaskKind::Spans | TaskKind::Relations)
    }

    /// Whether answers carry relations between their spans.
    pub fn has_relations(self) -> bool {
        matches!(self, TaskKind::Relations)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "classification" => Some(TaskKind::Classification),
            "multilabel" => Some(TaskKind::Multilabel),
            "spans" => Some(TaskKind::Spans),
            "relations" => Some(TaskKind::Relations),
            _ => None,
        }
    }
}

/// One label of a project's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `#rrggbb`; assigned from a palette when the creator gives none.
    #[serde(default)]
    pub colour: String,
    /// One character; assigned (1–9, 0, then letters) when the creator gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
}

impl Label {
    /// A label with only a name; colour and hotkey are filled in by [`ProjectSpec::normalize`].
    pub fn named(name: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            description: None,
            colour: String::new(),
            hotkey: None,
        }
    }
}

/// One relation type of a relations project: a directed link from a head span to a tail span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationLabel {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The entity types a head (`from`) span may have; empty: any.
    #[serde(default)]
    pub head: Vec<String>,
    /// The entity types a tail (`to`) span may have; empty: any.
    #[serde(default)]
    pub tail: Vec<String>,
    /// `#rrggbb`; assigned from a palette when the creator gives none.
    #[serde(default)]
    pub colour: String,
    /// One character, typed while a relation is being made or is selected (its own key space:
    /// entity hotkeys do not apply then); assigned when the creator gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
}

impl RelationLabel {
    /// A relation type with only a name, allowed between any entity types.
    pub fn named(name: impl Into<String>) -> RelationLabel {
        RelationLabel {
            name: name.into(),
            description: None,
            head: Vec::new(),
            tail: Vec::new(),
            colour: String::new(),
            hotkey: None,
        }
    }

    /// Whether a span of entity type `entity` may be this relation's head.
    pub fn allows_head(&self, entity: &str) -> bool {
        self.head.is_empty() || self.head.iter().any(|t| t == entity)
    }

    /// Whether a span of entity type `entity` may be this relation's tail.
    pub fn allows_tail(&self, entity: &str) -> bool {
        self.tail.is_empty() || self.tail.iter().any(|t| t == entity)
    }
}

/// Per-project workflow settings. Every field has a default so that settings added later
/// decode from projects stored before them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// How many distinct annotators should label each item.
    #[serde(default = "one")]
    pub overlap: u32,
    /// Annotators never see other annotators' answers or the model's suggestions, so that
    /// agreement measures independent judgements. Projects created with overlap ≥ 2 start
    /// blind; single-annotator projects start with suggestions shown.
    #[serde(default)]
    pub blind: bool,
    /// With overlap ≥ 2, an item whose annotators all gave the same answer is accepted as its
    /// gold label without review; off, every finished item goes to the review queue.
    #[serde(default = "yes")]
    pub auto_accept_unanimous: bool,
    /// An annotator gets about one gold question per this many items (0: never).
    #[serde(default = "ten")]
    pub gold_every: u32,
    /// How the annotation queue orders the unfinished items after each prediction.
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// Spread each batch over clusters of similar items (k-means on the embeddings), so that
    /// the queue does not open with near-duplicates.
    #[serde(default = "yes")]
    pub diversity: bool,
    /// The encoder: a folder in the server's models folder (none: all-MiniLM-L6-v2).
    #[serde(default)]
    pub model: Option<String>,
    /// Span projects: spans may overlap or nest. Off (the default), an annotation's spans are
    /// flat: no two share a character.
    #[serde(default)]
    pub overlapping_spans: bool,
    /// Span projects: "accept all suggestions" takes the suggested spans whose confidence is at
    /// least this many percent.
    #[serde(default = "eighty")]
    pub accept_threshold: u8,
    /// Span projects: term lists and regular expressions that pre-annotate items before any
    /// model is trained (shown as suggestions of a "patterns" version).
    #[serde(default)]
    pub patterns: Vec<SpanPattern>,
    /// The loop that trains itself: retrain after every few confirmed labels, fine-tune the
    /// encoder at milestones; a new version replaces the active one only when it is not worse.
    #[serde(default)]
    pub auto_train: AutoTrainSettings,
}

/// When the job worker trains a project's model on its own (see [`ProjectSettings::auto_train`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTrainSettings {
    /// On by default: a project improves its suggestions as its labels grow.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Retrain the head after this many new confirmed labels (seconds of work).
    #[serde(default = "twenty")]
    pub every: u32,
    /// Fine-tune the encoder (minutes of work) when the confirmed labels first reach each of
    /// these counts, ascending.
    #[serde(default = "default_milestones")]
    pub fine_tune_at: Vec<u32>,
    /// Tune the encoder few-shot (SetFit-style, tens of seconds) when the confirmed labels first
    /// reach each of these counts, ascending: below the first fine-tuning milestone this beat
    /// the head on frozen embeddings (`crates/ml/examples/few_shot.rs`). A fine-tuning at or
    /// past a count serves it too. Single-label classification projects only.
    #[serde(default = "default_few_shot_milestones")]
    pub few_shot_at: Vec<u32>,
}

/// The fewest new labels between two automatic retrainings, and the most.
pub const AUTO_TRAIN_EVERY: std::ops::RangeInclusive<u32> = 5..=100_000;
/// The most fine-tuning milestones a project may list.
pub const MAX_FINE_TUNE_MILESTONES: usize = 10;

fn twenty() -> u32 {
    20
}

fn default_milestones() -> Vec<u32> {
    vec![100, 300, 1000]
}

fn default_few_shot_milestones() -> Vec<u32> {
    vec![50]
}

/// Whether `milestones` are label counts above 0, strictly ascending, at most
/// [`MAX_FINE_TUNE_MILESTONES`] of them.
fn milestones_are_valid(milestones: &[u32]) -> bool {
    milestones.len() <= MAX_FINE_TUNE_MILESTONES
        && !milestones.contains(&0)
        && milestones.windows(2).all(|w| w[0] < w[1])
}

impl Default for AutoTrainSettings {
    fn default() -> Self {
        AutoTrainSettings {
            enabled: true,
            every: twenty(),
            fine_tune_at: default_milestones(),
            few_shot_at: default_few_shot_milestones(),
        }
    }
}

/// One pre-annotation rule of a span project: where `pattern` matches on token boundaries,
/// suggest a span of `label`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpanPattern {
    pub label: String,
    pub kind: PatternKind,
    pub pattern: String,
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// A literal phrase (its words matched as whole tokens).
    Term,
    /// A regular expression (Rust `regex` syntax); a match counts only if it starts and ends
    /// on token boundaries.
    Regex,
}

impl PatternKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Term => "term",
            PatternKind::Regex => "regex",
        }
    }

    pub fn parse(s: &str) -> Option<PatternKind> {
        match s {
            "term" => Some(PatternKind::Term),
            "regex" => Some(PatternKind::Regex),
            _ => None,
        }
    }
}

/// The most patterns a project may have, and the longest pattern.
pub const MAX_PATTERNS: usize = 10_000;
pub const MAX_PATTERN_LEN: usize = 1_000;
/// The most regular expressions among them, and the most bytes of all patterns together (the
/// patterns live in the project record, read on every request).
pub const MAX_REGEX_PATTERNS: usize = 200;
pub const MAX_PATTERN_BYTES: usize = 256 * 1024;

/// Keys the span editor uses besides the arrows, Home/End, Tab, Enter, Escape, Backspace,
/// Delete and `?` (and Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y for undo and redo): a span project's label
/// may not use them as its hotkey. Each with what it does, for the page's key list.
pub const SPAN_EDITOR_KEYS: &[(&str, &str)] = &[
    ("[", "move the selected span's start one token left"),
    ("]", "move the selected span's start one token right"),
    ("{", "move the selected span's end one token left"),
    ("}", "move the selected span's end one token right"),
    ("`", "switch between token and character mode"),
    ("+", "accept the selected suggestion"),
    ("-", "reject the selected suggestion"),
    (
        "=",
        "accept every suggestion at or above the project's threshold",
    ),
];

/// Keys the relation editor of a relations project adds to [`SPAN_EDITOR_KEYS`]: no label of a
/// relations project (entity type or relation type) may use them as its hotkey. Tab and the
/// arrows choose the other end while a relation is being made; Delete/Backspace delete the
/// selected relation; a relation type's hotkey types the pending or selected relation.
pub const RELATION_EDITOR_KEYS: &[(&str, &str)] = &[
    (">", "start a relation from the selected span"),
    ("\\", "select the next relation of the selected span"),
    ("~", "reverse the selected relation"),
];

/// The order in which annotators get unfinished items. The uncertainty orders rank items by the
/// active model's suggestion; every order but `Import` places the first 200 and then falls back
/// to import order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// Margin once a trained version exists; before that, representative items.
    #[default]
    Auto,
    /// The lowest top probability first.
    LeastConfidence,
    /// The smallest gap between the two most likely labels first.
    Margin,
    /// The highest entropy of the label distribution first.
    Entropy,
    /// A random sample (with diversity: the most central item of each cluster).
    Random,
    /// Import order, no active learning.
    Import,
}

impl QueueOrder {
    pub const ALL: [QueueOrder; 6] = [
        QueueOrder::Auto,
        QueueOrder::LeastConfidence,
        QueueOrder::Margin,
        QueueOrder::Entropy,
        QueueOrder::Random,
        QueueOrder::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueOrder::Auto => "auto",
            QueueOrder::LeastConfidence => "least_confidence",
            QueueOrder::Margin => "margin",
            QueueOrder::Entropy => "entropy",
            QueueOrder::Random => "random",
            QueueOrder::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<QueueOrder> {
        QueueOrder::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// What the settings form shows.
    pub fn describe(self) -> &'static str {
        match self {
            QueueOrder::Auto => "automatic: margin once trained, representative items before",
            QueueOrder::LeastConfidence => "least confidence first",
            QueueOrder::Margin => "smallest margin first",
            QueueOrder::Entropy => "highest entropy first",
            QueueOrder::Random => "random",
            QueueOrder::Import => "import order (no active learning)",
        }
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn ten() -> u32 {
    10
}

fn eighty() -> u8 {
    80
}

impl Default for ProjectSettings {
    fn default() -> Self {
        ProjectSettings {
            overlap: 1,
            blind: false,
            auto_accept_unanimous: true,
            gold_every: 10,
            queue_order: QueueOrder::Auto,
            diversity: true,
            model: None,
            overlapping_spans: false,
            accept_threshold: 80,
            patterns: Vec::new(),
            auto_train: AutoTrainSettings::default(),
        }
    }
}

/// Everything that defines a project, as a creator sends it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSpec {
    pub name: String,
    pub task: TaskKind,
    pub labels: Vec<Label>,
    /// Markdown. Rendered with raw HTML stripped.
    #[serde(default)]
    pub guidelines: String,
    #[serde(default)]
    pub settings: ProjectSettings,
    /// Relations projects: the relation types (at least one); empty for every other task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relation_labels: Vec<RelationLabel>,
}

/// A member's role inside one project. Ordered: a higher role can do what a lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Annotator,
    Reviewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "annotator" => Some(Role::Annotator),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const AUTO_HOTKEYS: &str = "1234567890qwertyuiopasdfghjklzxcvbnm";

impl ProjectSpec {
    /// Checks the spec and fills in what the creator may leave out (colours, hotkeys), so that
    /// what is stored is always complete. Names are trimmed.
    pub fn normalize(mut self) -> Result<Self, DomainError> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() {
            return Err(DomainError::EmptyProjectName);
        }
        if self.name.chars().count() > MAX_PROJECT_NAME {
            return Err(DomainError::ProjectNameTooLong {
                max: MAX_PROJECT_NAME,
            });
        }
        if self.labels.is_empty() {
            return Err(DomainError::NoLabels);
        }
        if self.labels.len() > MAX_LABELS {
            return Err(DomainError::TooManyLabels { max: MAX_LABELS });
        }
        if self.guidelines.len() > MAX_GUIDELINES {
            return Err(DomainError::GuidelinesTooLong {
                max: MAX_GUIDELINES,
            });
        }
        if self.settings.overlap == 0 || self.settings.overlap > MAX_OVERLAP {
            return Err(DomainError::BadOverlap { max: MAX_OVERLAP });
        }
        let auto = &self.settings.auto_train;
        if !AUTO_TRAIN_EVERY.contains(&auto.every) {
            return Err(DomainError::BadAutoTrainEvery {
                min: *AUTO_TRAIN_EVERY.start(),
                max: *AUTO_TRAIN_EVERY.end(),
            });
        }
        if !milestones_are_valid(&auto.fine_tune_at) || !milestones_are_valid(&auto.few_shot_at) {
            return Err(DomainError::BadFineTuneMilestones {
                max: MAX_FINE_TUNE_MILESTONES,
            });
        }
        if self.settings.gold_every == 1 || self.settings.gold_every > MAX_GOLD_EVERY {
            return Err(DomainError::BadGoldEvery {
                max: MAX_GOLD_EVERY,
            });
        }
        if let Some(model) = &mut self.settings.model {
            *model = model.trim().to_string();
            let plain = !model.is_empty()
                && model.len() <= 100
                && !model.starts_with('.')
                && !model.contains(['/', '\\'])
                && !model.chars().any(char::is_control);
            if !plain {
                return Err(DomainError::BadModelName);
            }
        }
        if self.settings.accept_threshold > 100 {
            return Err(DomainError::BadAcceptThreshold);
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (index, label) in self.labels.iter_mut().enumerate() {
            label.name = label.name.trim().to_string();
            if label.name.is_empty() {
                return Err(DomainError::EmptyLabelName { index: index + 1 });
            }
            check_label_name(&label.name)?;
            // CoNLL tags are `B-<type>` in a whitespace-separated column.
            if self.task.is_spans() && label.name.chars().any(char::is_whitespace) {
                return Err(DomainError::EntityTypeWhitespace {
                    name: label.name.clone(),
                });
            }
            if !names.insert(label.name.clone()) {
                return Err(DomainError::DuplicateLabel {
                    name: label.name.clone(),
                });
            }
            label.description = normalize_description(label.description.take());
            if let Some(key) = label.hotkey.take().filter(|k| !k.is_empty()) {
                label.hotkey = Some(check_hotkey(self.task, key, &label.name, &mut keys)?);
            }
            normalize_colour(&mut label.colour, index, &label.name)?;
        }
        fill_free_hotkeys(self.labels.iter_mut().map(|l| &mut l.hotkey), &keys);
        if self.settings.patterns.len() > MAX_PATTERNS {
            return Err(DomainError::TooManyPatterns { max: MAX_PATTERNS });
        }
        // Each regular expression is compiled (up to 1 MiB) at every save and predict job.
        let regexes = self
            .settings
            .patterns
            .iter()
            .filter(|p| p.kind == PatternKind::Regex)
            .count();
        if regexes > MAX_REGEX_PATTERNS {
            return Err(DomainError::TooManyRegexPatterns {
                max: MAX_REGEX_PATTERNS,
            });
        }
        let bytes: usize = self.settings.patterns.iter().map(|p| p.pattern.len()).sum();
        if bytes > MAX_PATTERN_BYTES {
            return Err(DomainError::PatternsTooLong {
                max: MAX_PATTERN_BYTES,
            });
        }
        self.normalize_relation_labels(&names)?;
        for pattern in &mut self.settings.patterns {
            pattern.label = pattern.label.trim().to_string();
            if !names.contains(&pattern.label) {
                return Err(DomainError::UnknownLabel {
                    label: pattern.label.clone(),
                });
            }
            if pattern.pattern.trim().is_empty() || pattern.pattern.len() > MAX_PATTERN_LEN {
                return Err(DomainError::BadPattern {
                    label: pattern.label.clone(),
                    max: MAX_PATTERN_LEN,
                });
            }
        }
        Ok(self)
    }

    pub fn label(&self, name: &str) -> Option<&Label> {
        self.labels.iter().find(|l| l.name == name)
    }

    pub fn relation_label(&self, name: &str) -> Option<&RelationLabel> {
        self.relation_labels.iter().find(|l| l.name == name)
    }

    /// Checks the relation types against the task and the entity types (`entity_names`), and
    /// fills in colours and hotkeys. Relation hotkeys are their own key space (they apply only
    /// while a relation is pending or selected), so they may repeat an entity type's key.
    fn normalize_relation_labels(
        &mut self,
        entity_names: &std::collections::HashSet<String>,
    ) -> Result<(), DomainError> {
        if !self.task.has_relations() {
            if !self.relation_labels.is_empty() {
                return Err(DomainError::RelationLabelsNeedRelationsTask {
                    task: self.task.as_str(),
                });
            }
            return Ok(());
        }
        if self.relation_labels.is_empty() {
            return Err(DomainError::NoRelationLabels);
        }
        if self.relation_labels.len() > MAX_LABELS {
            return Err(DomainError::TooManyRelationLabels { max: MAX_LABELS });
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (index, label) in self.relation_labels.iter_mut().enumerate() {
            label.name = label.name.trim().to_string();
            if label.name.is_empty() {
                return Err(DomainError::EmptyRelationLabelName { index: index + 1 });
            }
            check_label_name(&label.name)?;
            if !names.insert(label.name.clone()) {
                return Err(DomainError::DuplicateRelationLabel {
                    name: label.name.clone(),
                });
            }
            label.description = normalize_description(label.description.take());
            for ends in [&mut label.head, &mut label.tail] {
                for entity in ends.iter_mut() {
                    *entity = entity.trim().to_string();
                    if !entity_names.contains(entity.as_str()) {
                        return Err(DomainError::UnknownRelationEndType {
                            relation: label.name.clone(),
                            entity: entity.clone(),
                        });
                    }
                }
                let mut seen = std::collections::HashSet::new();
                ends.retain(|e| seen.insert(e.clone()));
            }
            if let Some(key) = label.hotkey.take().filter(|k| !k.is_empty()) {
                label.hotkey = Some(check_hotkey(self.task, key, &label.name, &mut keys)?);
            }
            // Offset from the entity colours, so an arc is not mistaken for a span.
            normalize_colour(&mut label.colour, index + 5, &label.name)?;
        }
        fill_free_hotkeys(
            self.relation_labels.iter_mut().map(|l| &mut l.hotkey),
            &keys,
        );
        Ok(())
    }
}

/// What the span or relation editor does with `key`, when a label of a `task` project may not
/// use it as its hotkey.
fn editor_key(task: TaskKind, key: &str) -> Option<&'static str> {
    let in_list =
        |list: &[(&str, &'static str)]| list.iter().find(|(k, _)| *k == key).map(|(_, a)| *a);
    match task {
        TaskKind::Classification | TaskKind::Multilabel => None,
        TaskKind::Spans => in_list(SPAN_EDITOR_KEYS),
        TaskKind::Relations => in_list(SPAN_EDITOR_KEYS).or_else(|| in_list(RELATION_EDITOR_KEYS)),
    }
}

/// Checks a trimmed label name against the rules entity types and relation types share; the
/// empty and duplicate checks stay with the callers because their errors name the kind of label.
fn check_label_name(name: &str) -> Result<(), DomainError> {
    if name.chars().count() > MAX_LABEL_NAME {
        return Err(DomainError::LabelNameTooLong {
            name: name.to_string(),
            max: MAX_LABEL_NAME,
        });
    }
    if name.contains('|') {
        return Err(DomainError::LabelNameChar {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A label description trimmed, or none when nothing is left of it.
fn normalize_description(description: Option<String>) -> Option<String> {
    description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
}

/// Checks the non-empty hotkey `key` chosen for the label `label` of a `task` project, and
/// returns it lowercased after recording it in `taken`, the keys of this kind of label so far.
fn check_hotkey(
    task: TaskKind,
    key: String,
    label: &str,
    taken: &mut std::collections::HashSet<String>,
) -> Result<String, DomainError> {
    if RESERVED_KEYS.contains(&key.as_str()) {
        return Err(DomainError::ReservedHotkey {
            key,
            label: label.to_string(),
        });
    }
    if let Some(action) = editor_key(task, &key) {
        return Err(DomainError::SpanEditorHotkey {
            key,
            label: label.to_string(),
            action,
        });
    }
    let mut chars = key.chars();
    let single = matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_whitespace());
    if !single {
        return Err(DomainError::BadHotkey {
            key,
            label: label.to_string(),
        });
    }
    let key = key.to_lowercase();
    if !taken.insert(key.clone()) {
        return Err(DomainError::DuplicateHotkey { key });
    }
    Ok(key)
}

/// Fills an empty label colour with the palette colour at `palette_index` (wrapping), or checks
/// a given one; `label` is the label's name, for the error.
fn normalize_colour(
    colour: &mut String,
    palette_index: usize,
    label: &str,
) -> Result<(), DomainError> {
    if colour.is_empty() {
        *colour = PALETTE[palette_index % PALETTE.len()].to_string();
    } else if !is_hex_colour(colour.as_str()) {
        return Err(DomainError::BadColour {
            colour: colour.clone(),
            label: label.to_string(),
        });
    }
    Ok(())
}

/// Gives each label without a hotkey the next automatic key that is not in `taken`.
fn fill_free_hotkeys<'a>(
    hotkeys: impl Iterator<Item = &'a mut Option<String>>,
    taken: &std::collections::HashSet<String>,
) {
    let mut free = AUTO_HOTKEYS
        .chars()
        .map(String::from)
        .filter(|k| !taken.contains(k));
    for hotkey in hotkeys {
        if hotkey.is_none() {
            *hotkey = free.next();
        }
    }
}

fn is_hex_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(labels: &[(&str, Option<&str>)]) -> ProjectSpec {
        ProjectSpec {
            name: " Spam ".into(),
            task: TaskKind::Classification,
            labels: labels
                .iter()
                .map(|(n, k)| Label {
                    name: n.to_string(),
                    description: None,
                    colour: String::new(),
                    hotkey: k.map(String::from),
                })
                .collect(),
            guidelines: String::new(),
            settings: ProjectSettings::default(),
            relation_labels: Vec::new(),
        }
    }

    #[test]
    fn fills_hotkeys_and_colours_around_given_ones() {
        let s = spec(&[("spam", Some("1")), ("ham", None), ("other", Some("X"))])
            .normalize()
            .unwrap();
        assert_eq!(s.name, "Spam");
        let keys: Vec<_> = s.labels.iter().map(|l| l.hotkey.clone().unwrap()).collect();
        assert_eq!(keys, ["1", "2", "x"]);
        assert!(s.labels.iter().all(|l| is_hex_colour(&l.colour)));
    }

    #[test]
    fn rejects_bad_schemas() {
        let check = |labels: &[(&str, Option<&str>)], want: DomainError| {
            assert_eq!(spec(labels).normalize().unwrap_err(), want);
        };
        check(&[], DomainError::NoLabels);
        check(
            &[("a", None), ("a", None)],
            DomainError::DuplicateLabel { name: "a".into() },
        );
        check(
            &[("a", Some("1")), ("b", Some("1"))],
            DomainError::DuplicateHotkey { key: "1".into() },
        );
        check(
            &[("a", Some("?"))],
            DomainError::ReservedHotkey {
                key: "?".into(),
                label: "a".into(),
            },
        );
        check(
            &[("a", Some("ab"))],
            DomainError::BadHotkey {
                key: "ab".into(),
                label: "a".into(),
            },
        );
        check(&[(" ", None)], DomainError::EmptyLabelName { index: 1 });
    }

    #[test]
    fn span_projects_refuse_what_their_formats_and_editor_cannot_carry() {
        let span_spec = |labels: &[(&str, Option<&str>)]| ProjectSpec {
            task: TaskKind::Spans,
            ..spec(labels)
        };
        assert_eq!(
            span_spec(&[("geo loc", None)]).normalize().unwrap_err(),
            DomainError::EntityTypeWhitespace {
                name: "geo loc".into()
            }
        );
        // A classification label may hold a space; an entity type may not.
        assert!(spec(&[("geo loc", None)]).normalize().is_ok());
        assert_eq!(
            span_spec(&[("person", Some("["))]).normalize().unwrap_err(),
            DomainError::SpanEditorHotkey {
                key: "[".into(),
                label: "person".into(),
                action: "move the selected span's start one token left",
            }
        );
        let regex = |pattern: &str| SpanPattern {
            label: "person".into(),
            kind: PatternKind::Regex,
            pattern: pattern.into(),
            case_insensitive: false,
        };
        let mut many = span_spec(&[("person", None)]);
        many.settings.patterns = (0..=MAX_REGEX_PATTERNS)
            .map(|i| regex(&format!("a{i}")))
            .collect();
        assert_eq!(
            many.normalize().unwrap_err(),
            DomainError::TooManyRegexPatterns {
                max: MAX_REGEX_PATTERNS
            }
        );
        let mut unknown = span_spec(&[("person", None)]);
        unknown.settings.patterns = vec![SpanPattern {
            label: "org".into(),
            ..regex("x")
        }];
        assert!(matches!(
            unknown.normalize().unwrap_err(),
            DomainError::UnknownLabel { .. }
        ));
    }
}
