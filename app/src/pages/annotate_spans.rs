//! The annotation page of a span project (named entities), and the span editor view the review
//! page shares. Everything an annotator does is a key (or a pointer drag that snaps to tokens);
//! what each key does lives in [`crate::span_editor`], and this file only paints it.
//!
//! Speed: the item's tokens are built once per item, as plain DOM nodes the editor view owns,
//! and each key repaints only the tokens the editor reports as changed (comparing with the
//! class each token has now), so a key costs the same on a tweet and on a 5,000-word document.
//! The span list is keyed by span, so a key that changes one span re-renders one line.

use concord_domain::{
    Label, Relation, RelationLabel, Span, RELATION_EDITOR_KEYS, SPAN_EDITOR_KEYS,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::item_queue::{now_ms, ItemQueue};
use crate::api::{get_span_settings, submit_spans};
use crate::components::{error_text, ErrorOrLogin, LabelBar};
use crate::span_editor::{
    Arc, EditorLabel, KeyPress, Outcome, RelationRow, Repaint, SpanEditor, SpanRow,
};
use crate::wire::{ItemView, ProjectView};

/// Items with at most this many tokens show each span's label after its last token. On longer
/// items labels are shown by colour (and named in the cursor line): a label written into the
/// text changes the text's layout, and laying out thousands of tokens again on every key would
/// cost more than a frame.
const TAGS_UP_TO: usize = 1_000;

/// Above this many token ranges to repaint, one pass over the range around them all is
/// cheaper than a pass over the spans per range.
#[cfg(feature = "hydrate")]
const MANY_RANGES: usize = 16;

/// Colours for labels that have none, by label position.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// The style sheet of one project's labels: each label's colour, and its name shown after the
/// last token of a span. Names are written as CSS escapes, so no label name can end the string
/// (or the `<style>` element) early.
pub fn label_styles(labels: &[EditorLabel], colours: &[String]) -> String {
    let mut css = String::new();
    for (i, label) in labels.iter().enumerate() {
        let colour = colours
            .get(i)
            .filter(|c| is_hex_colour(c))
            .map_or(PALETTE[i % PALETTE.len()], String::as_str);
        let name: String = label
            .name
            .chars()
            .map(|c| format!("\\{:06x}", u32::from(c)))
            .collect();
        css.push_str(&format!(
            ".spans .l{i}{{--lc:{colour}}}\n.span-editor.tags .tok.e.l{i}::after,.span-editor.tags .tok.se.l{i}:not(.own)::after{{content:\"{name}\"}}\n"
        ));
    }
    css
}

fn is_hex_colour(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|h| h.is_ascii_hexdigit())
}

/// The editor's labels from the project's.
pub fn editor_labels(labels: &[Label]) -> Vec<EditorLabel> {
    labels
        .iter()
        .map(|l| EditorLabel {
            name: l.name.clone(),
            hotkey: l.hotkey.clone(),
        })
        .collect()
}

/// The DOM nodes of the current item's tokens and the class each has now.
#[cfg(feature = "hydrate")]
#[derive(Default)]
struct DomTokens {
    elements: Vec<web_sys::Element>,
    painted: Vec<String>,
    /// The token to bring into view after the next frame (set while one is scheduled).
    scroll_to: Option<usize>,
    /// A list refresh is scheduled for after the next frame.
    list_pending: bool,
}

/// What a page holds of its span editor: the editor itself and the signals its view reads.
/// `Copy`, so every handler can own one.
#[derive(Clone, Copy)]
pub struct EditorHandle {
    editor: StoredValue<Option<SpanEditor>>,
    rows: RwSignal<Vec<SpanRow>>,
    message: RwSignal<Option<String>>,
    cursor_line: RwSignal<String>,
    /// The selected span's label, for the label buttons.
    selected_label: RwSignal<Vec<String>>,
    /// Bumped when another item is loaded: the view rebuilds the tokens.
    generation: RwSignal<u64>,
    /// Whether span labels are written after the spans (short items).
    tags: RwSignal<bool>,
    /// Relations projects: the relation list, the relation types (name, hotkey, whether the
    /// relation being made may take it) while one is being made, and the arcs to draw.
    relation_rows: RwSignal<Vec<RelationRow>>,
    #[allow(clippy::type_complexity)]
    relation_menu: RwSignal<Option<Vec<(String, Option<String>, bool)>>>,
    arcs: RwSignal<Vec<Arc>>,
    #[cfg(feature = "hydrate")]
    dom: StoredValue<DomTokens, LocalStorage>,
}

impl EditorHandle {
    pub fn new() -> EditorHandle {
        EditorHandle {
            editor: StoredValue::new(None),
            rows: RwSignal::new(Vec::new()),
            message: RwSignal::new(None),
            cursor_line: RwSignal::new(String::new()),
            selected_label: RwSignal::new(Vec::new()),
            generation: RwSignal::new(0),
            tags: RwSignal::new(true),
            relation_rows: RwSignal::new(Vec::new()),
            relation_menu: RwSignal::new(None),
            arcs: RwSignal::new(Vec::new()),
            #[cfg(feature = "hydrate")]
            dom: StoredValue::new_local(DomTokens::default()),
        }
    }

    /// Puts another item's editor in place (or none); the view rebuilds.
    pub fn load(&self, editor: Option<SpanEditor>) {
        self.rows
            .set(editor.as_ref().map(SpanEditor::rows).unwrap_or_default());
        self.relation_rows.set(
            editor
                .as_ref()
                .map(SpanEditor::relation_rows)
                .unwrap_or_default(),
        );
        self.relation_menu.set(None);
        self.arcs.set(Vec::new());
        self.message.set(None);
        self.cursor_line.set(
            editor
                .as_ref()
                .map(SpanEditor::describe_cursor)
                .unwrap_or_default(),
        );
        self.selected_label.set(Vec::new());
        self.tags.set(
            editor
                .as_ref()
                .is_some_and(|e| e.tokens().len() <= TAGS_UP_TO),
        );
        self.editor.set_value(editor);
        self.generation.update(|g| *g += 1);
    }

    /// The selected span's label (what the label buttons show as chosen).
    pub fn selected_label(&self) -> RwSignal<Vec<String>> {
        self.selected_label
    }

    /// Gives the editor the keyboard focus again (after a click on a label button).
    pub fn focus(&self) {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if let Some(el) = document()
                .query_selector("[data-testid=span-editor]")
                .ok()
                .flatten()
                .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = el.focus();
            }
        }
    }

    /// The annotator's own spans (what a submit sends).
    pub fn own_spans(&self) -> Vec<Span> {
        self.editor
            .with_value(|e| e.as_ref().map(SpanEditor::own_spans))
            .unwrap_or_default()
    }

    /// The annotator's own relations, by index into [`Self::own_spans`].
    pub fn own_relations(&self) -> Vec<Relation> {
        self.editor
            .with_value(|e| e.as_ref().map(SpanEditor::own_relations))
            .unwrap_or_default()
    }

    /// Runs an editor action and paints what it changed.
    pub fn act(&self, action: impl FnOnce(&mut SpanEditor) -> Outcome) -> Outcome {
        let outcome = self
            .editor
            .try_update_value(|e| e.as_mut().map(action))
            .flatten()
            .unwrap_or(Outcome::Ignored);
        if let Outcome::Handled(repaint) = &outcome {
            self.paint(repaint);
        }
        outcome
    }

    fn paint(&self, repaint: &Repaint) {
        self.editor.with_value(|e| {
            let Some(e) = e else {
                return;
            };
            #[cfg(feature = "hydrate")]
            self.dom.update_value(|dom| {
                // Each range costs a pass over the spans: many ranges (all suggestions
                // accepted at once) are painted as the one range around them, in one pass.
                let hull;
                let ranges = match (repaint.tokens.first(), repaint.tokens.last()) {
                    (Some(first), Some(last)) if repaint.tokens.len() > MANY_RANGES => {
                        hull = std::iter::once(first.start..last.end).collect::<Vec<_>>();
                        &hull[..]
                    }
                    _ => &repaint.tokens[..],
                };
                for range in ranges {
                    let fresh = e.token_classes(range.clone());
                    for (i, class) in (range.start..).zip(fresh) {
                        if let (Some(el), Some(old)) = (dom.elements.get(i), dom.painted.get_mut(i))
                        {
                            if *old != class {
                                el.set_class_name(&class);
                                *old = class;
                            }
                        }
                    }
                }
                if let Some(t) = e.cursor_token() {
                    let scheduled = dom.scroll_to.replace(t).is_some();
                    if !scheduled {
                        self.scroll_after_paint();
                    }
                }
            });
            if repaint.list {
                // The text is what the annotator watches: its frame goes out first, and the
                // list (up to hundreds of rows when all suggestions are accepted at once)
                // follows in the next one.
                #[cfg(feature = "hydrate")]
                {
                    let scheduled = self
                        .dom
                        .try_update_value(|dom| std::mem::replace(&mut dom.list_pending, true));
                    if scheduled == Some(false) {
                        self.refresh_list_after_paint();
                    }
                }
                #[cfg(not(feature = "hydrate"))]
                self.refresh_list(e);
            }
            let message = e.message().map(str::to_string);
            if self.message.with_untracked(|m| *m != message) {
                self.message.set(message);
            }
            self.cursor_line.set(e.describe_cursor());
        });
    }

    /// Shows the editor's spans in the list, and the selected span's label on the buttons.
    fn refresh_list(&self, e: &SpanEditor) {
        self.rows.set(e.rows());
        if e.has_relations() {
            self.relation_rows.set(e.relation_rows());
            let menu = e.relation_pending().then(|| {
                e.relation_kinds()
                    .iter()
                    .zip(e.allowed_relation_kinds())
                    .map(|(k, ok)| (k.name.clone(), k.hotkey.clone(), ok))
                    .collect()
            });
            if self.relation_menu.with_untracked(|m| *m != menu) {
                self.relation_menu.set(menu);
            }
            self.arcs.set(e.arcs());
            #[cfg(feature = "hydrate")]
            self.draw_arcs();
        }
        let label = e
            .selected()
            .and_then(|s| e.labels().get(usize::from(s.label)))
            .map(|l| vec![l.name.clone()])
            .unwrap_or_default();
        if self.selected_label.with_untracked(|l| *l != label) {
            self.selected_label.set(label);
        }
    }

    #[cfg(feature = "hydrate")]
    fn refresh_list_after_paint(self) {
        request_animation_frame(move || {
            set_timeout(
                move || {
                    self.dom.update_value(|dom| dom.list_pending = false);
                    self.editor.with_value(|e| {
                        if let Some(e) = e {
                            self.refresh_list(e);
                        }
                    });
                },
                std::time::Duration::ZERO,
            );
        });
    }

    /// Brings the cursor's token into view once the next frame is painted. Scrolling needs the
    /// layout: asked for during a key, it would lay the whole text out before the frame (on a
    /// 5,000-word item that alone is most of a frame); after the frame the layout is fresh.
    #[cfg(feature = "hydrate")]
    fn scroll_after_paint(self) {
        request_animation_frame(move || {
            set_timeout(
                move || {
                    self.dom.update_value(|dom| {
                        if let Some(el) = dom.scroll_to.take().and_then(|t| dom.elements.get(t)) {
                            let options = web_sys::ScrollIntoViewOptions::new();
                            options.set_block(web_sys::ScrollLogicalPosition::Nearest);
                            el.scroll_into_view_with_scroll_into_view_options(&options);
                        }
                    });
                },
                std::time::Duration::ZERO,
            );
        });
    }

    /// Draws the arcs of the selected span's relations over the text, from the positions the
    /// tokens have now (run after a frame, when the layout is fresh, and on resize).
    #[cfg(feature = "hydrate")]
    fn draw_arcs(&self) {
        use wasm_bindgen::JsCast;
        const SVG: &str = "http://www.w3.org/2000/svg";
        let Some(svg) = document()
            .query_selector("[data-testid=relation-arcs]")
            .ok()
            .flatten()
        else {
            return;
        };
        svg.set_inner_html("");
        let arcs = self.arcs.get_untracked();
        if arcs.is_empty() {
            return;
        }
        let Ok(defs) = document().create_element_ns(Some(SVG), "defs") else {
            return;
        };
        for kind in ["own", "suggested", "pending"] {
            if let (Ok(marker), Ok(tip)) = (
                document().create_element_ns(Some(SVG), "marker"),
                document().create_element_ns(Some(SVG), "path"),
            ) {
                for (k, v) in [
                    ("id", format!("arrow-{kind}").as_str()),
                    ("viewBox", "0 0 10 10"),
                    ("refX", "9"),
                    ("refY", "5"),
                    ("markerWidth", "7"),
                    ("markerHeight", "7"),
                    ("orient", "auto-start-reverse"),
                    ("class", kind),
                ] {
                    let _ = marker.set_attribute(k, v);
                }
                let _ = tip.set_attribute("d", "M 0 0 L 10 5 L 0 10 z");
                let _ = marker.append_child(&tip);
                let _ = defs.append_child(&marker);
            }
        }
        let _ = svg.append_child(&defs);
        self.dom.with_value(|dom| {
            let place = |t: usize| {
                dom.elements
                    .get(t)
                    .and_then(|el| el.dyn_ref::<web_sys::HtmlElement>())
                    .map(|el| {
                        (
                            f64::from(el.offset_left()) + f64::from(el.offset_width()) / 2.0,
                            f64::from(el.offset_top()),
                        )
                    })
            };
            for arc in &arcs {
                let (Some(from), Some(to)) = (place(arc.head_token), place(arc.tail_token)) else {
                    continue;
                };
                let geometry = arc_geometry(from, to);
                let kind = arc.kind.as_str();
                if let Ok(path) = document().create_element_ns(Some(SVG), "path") {
                    let class = if arc.selected {
                        format!("arc {kind} selected")
                    } else {
                        format!("arc {kind}")
                    };
                    let _ = path.set_attribute("d", &geometry.path);
                    let _ = path.set_attribute("class", &class);
                    let _ = path.set_attribute("marker-end", &format!("url(#arrow-{kind})"));
                    if let Some(l) = arc.label_index {
                        let _ = path.set_attribute("data-label-index", &l.to_string());
                    }
                    let _ = svg.append_child(&path);
                }
                if !arc.label.is_empty() {
                    if let Ok(text) = document().create_element_ns(Some(SVG), "text") {
                        let _ = text.set_attribute("x", &format!("{:.1}", geometry.label.0));
                        let _ = text.set_attribute("y", &format!("{:.1}", geometry.label.1));
                        let _ = text.set_attribute("class", &format!("arc-label {kind}"));
                        // As text: a relation type's name is never markup.
                        text.set_text_content(Some(&arc.label));
                        let _ = svg.append_child(&text);
                    }
                }
            }
        });
    }

    /// Builds the item's tokens inside `container` (once per item) and paints them all.
    #[cfg(feature = "hydrate")]
    fn build(&self, container: &web_sys::HtmlElement) {
        let Some(document) = container.owner_document() else {
            return;
        };
        let mut dom = DomTokens::default();
        self.editor.with_value(|e| {
            let Some(e) = e else {
                return;
            };
            let tokens = e.tokens();
            dom.painted = e.token_classes(0..tokens.len());
            dom.elements.reserve(tokens.len());
            let mut at = 0u32;
            for (i, (token, class)) in tokens.iter().zip(&dom.painted).enumerate() {
                // White space (and anything between tokens) is kept as it is, as text.
                if token.start > at {
                    let gap = document.create_text_node(e.slice(at, token.start));
                    let _ = container.append_child(&gap);
                }
                if let Ok(el) = document.create_element("span") {
                    el.set_class_name(class);
                    let _ = el.set_attribute("data-i", &i.to_string());
                    el.set_text_content(Some(e.slice(token.start, token.end)));
                    let _ = container.append_child(&el);
                    dom.elements.push(el);
                }
                at = token.end;
            }
            let rest = e.slice(at, e.text_len());
            if !rest.is_empty() {
                let _ = container.append_child(&document.create_text_node(rest));
            }
        });
        self.dom.set_value(dom);
    }
}

impl Default for EditorHandle {
    fn default() -> Self {
        EditorHandle::new()
    }
}

/// Where an arc goes: its SVG path and where its label sits. (Arcs are drawn only in the
/// browser, from the layout: the server never places one.)
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub struct ArcGeometry {
    pub path: String,
    pub label: (f64, f64),
}

/// An arc from the top of one token (`from`: its middle and top, in pixels) to the top of
/// another, rising above the higher of the two by more the farther apart they are (so nested
/// arcs of one span do not cover each other), capped so a long one stays near its line.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn arc_geometry(from: (f64, f64), to: (f64, f64)) -> ArcGeometry {
    let top = from.1.min(to.1);
    let rise = 10.0 + ((to.0 - from.0).abs() / 8.0).min(30.0);
    let peak = top - rise;
    ArcGeometry {
        path: format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            from.0, from.1, from.0, peak, to.0, peak, to.0, to.1
        ),
        label: ((from.0 + to.0) / 2.0, peak + rise * 0.25 - 2.0),
    }
}

/// The token index of a pointer event's target, when it is a token.
#[cfg(feature = "hydrate")]
fn token_index(ev: &web_sys::MouseEvent) -> Option<usize> {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|el| el.closest(".tok").ok().flatten())
        .and_then(|el| el.get_attribute("data-i"))
        .and_then(|i| i.parse().ok())
}

/// The span editor: the item's text as tokens, the span list, a status line. `page_keys` sees
/// every key first and answers `true` when the page used it (skip, take an answer);
/// `on_submit` gets whether Shift was held with Enter.
#[component]
pub fn SpanEditorView(
    handle: EditorHandle,
    labels: Vec<Label>,
    page_keys: Callback<web_sys::KeyboardEvent, bool>,
    on_submit: Callback<bool>,
    on_guidelines: Callback<()>,
) -> impl IntoView {
    let names = editor_labels(&labels);
    let colours: Vec<String> = labels.iter().map(|l| l.colour.clone()).collect();
    let root = NodeRef::<leptos::html::Div>::new();
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if page_keys.run(ev.clone()) {
            ev.prevent_default();
            return;
        }
        // AltGr (reported as Ctrl+Alt on Windows) is how many layouts type `[`, `{` and `}`:
        // those keys are the characters, not shortcuts.
        let alt_graph = ev.get_modifier_state("AltGraph");
        if ev.alt_key() && !alt_graph {
            return;
        }
        let ctrl = (ev.ctrl_key() || ev.meta_key()) && !alt_graph;
        let press = KeyPress::parse(&ev.key(), ev.shift_key(), ctrl);
        match handle.act(|e| e.press(press)) {
            Outcome::Ignored => {}
            Outcome::Handled(_) => ev.prevent_default(),
            Outcome::Submit => {
                ev.prevent_default();
                on_submit.run(ev.shift_key());
            }
            Outcome::Guidelines => {
                ev.prevent_default();
                on_guidelines.run(());
            }
        }
    };
    #[cfg(feature = "hydrate")]
    {
        // Keys pressed while nothing has the focus (after a click beside the editor) reach the
        // editor too; keys inside it arrive through its own handler.
        let handle_body = window_event_listener(leptos::ev::keydown, move |ev| {
            let on_body = ev
                .target()
                .and_then(|t| {
                    use wasm_bindgen::JsCast;
                    t.dyn_into::<web_sys::HtmlElement>().ok()
                })
                .is_some_and(|el| el.tag_name() == "BODY");
            if on_body {
                on_key(ev);
            }
        });
        on_cleanup(move || handle_body.remove());
        // A button released outside the editor ends a pointer selection.
        let handle_up = window_event_listener(leptos::ev::mouseup, move |_| {
            handle.act(|e| e.pointer_up(None));
        });
        on_cleanup(move || handle_up.remove());
        // Arcs are placed from the layout: a new width moves the tokens under them.
        let handle_resize = window_event_listener(leptos::ev::resize, move |_| handle.draw_arcs());
        on_cleanup(move || handle_resize.remove());
    }
    let focus_editor = move || {
        #[cfg(feature = "hydrate")]
        if let Some(el) = root.get_untracked() {
            let _ = el.focus();
        }
    };
    let css = label_styles(&names, &colours);
    view! {
        <style>{css}</style>
        <div class="span-editor" class:tags=move || handle.tags.get() data-testid="span-editor" tabindex="0" node_ref=root
            aria-label="Item text: arrows move, Shift+arrows select, a label key labels"
            on:keydown=on_key
            on:mousedown=move |_ev: web_sys::MouseEvent| {
                #[cfg(feature = "hydrate")]
                if let Some(t) = token_index(&_ev) {
                    // No native text selection: the editor's own selection snaps to tokens.
                    _ev.prevent_default();
                    focus_editor();
                    handle.act(|e| e.pointer_down(t));
                }
            }
            on:mouseover=move |_ev: web_sys::MouseEvent| {
                #[cfg(feature = "hydrate")]
                if _ev.buttons() & 1 == 1 {
                    if let Some(t) = token_index(&_ev) {
                        handle.act(|e| e.pointer_over(t));
                    }
                }
            }
            on:mouseup=move |_ev: web_sys::MouseEvent| {
                #[cfg(feature = "hydrate")]
                {
                    let t = token_index(&_ev);
                    handle.act(|e| e.pointer_up(t));
                }
            }>
            {move || {
                handle.generation.track();
                let text = NodeRef::<leptos::html::Div>::new();
                #[cfg(feature = "hydrate")]
                text.on_load(move |el| {
                    handle.build(&el);
                    focus_editor();
                });
                view! {
                    <div class="span-canvas">
                        <div class="span-text" node_ref=text></div>
                        <svg class="relation-arcs" data-testid="relation-arcs" aria-hidden="true"></svg>
                    </div>
                }
            }}
        </div>
        <p class="span-cursor muted" data-testid="span-cursor">{move || handle.cursor_line.get()}</p>
        <p class="span-status" data-testid="span-status" role="status" aria-live="polite">
            {move || handle.message.get().unwrap_or_default()}
        </p>
        <ol class="span-list" data-testid="spans">
            <For
                each=move || handle.rows.get()
                key=|r| (r.id, r.start, r.end, r.label_index, r.selected, r.confidence.map(f32::to_bits))
                children=move |r: SpanRow| {
                    let id = r.id;
                    let title = match r.confidence {
                        Some(0.0) => "suggested by an unvalidated rule (confidence 0): + accepts, - rejects".to_string(),
                        Some(_) => "suggested by the model: + accepts, - rejects".to_string(),
                        None => "your span".to_string(),
                    };
                    view! {
                        <li data-start=r.start.to_string() data-end=r.end.to_string() data-label=r.label.clone()
                            data-kind=r.kind() data-selected=r.selected.then_some("true")
                            class=format!("span-row {} l{}", r.kind(), r.label_index) class:selected=r.selected
                            title=title
                            on:click=move |_| { handle.act(|e| e.select(id)); focus_editor(); }>
                            {r.describe()}
                        </li>
                    }
                }
            />
        </ol>
        <RelationPanel handle root/>
    }
}

/// A relations project's relation list (beside the text: head text → type → tail text) and,
/// while a relation is being made, the type menu.
#[component]
fn RelationPanel(handle: EditorHandle, root: NodeRef<leptos::html::Div>) -> impl IntoView {
    let focus_editor = move || {
        #[cfg(feature = "hydrate")]
        if let Some(el) = root.get_untracked() {
            let _ = el.focus();
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = root;
    };
    let has_relations = move || {
        handle
            .editor
            .with_value(|e| e.as_ref().is_some_and(SpanEditor::has_relations))
    };
    move || {
        handle.generation.track();
        has_relations().then(|| view! {
            {move || handle.relation_menu.get().map(|kinds| view! {
                <div class="relation-menu" data-testid="relation-menu" role="group" aria-label="Relation types">
                    <span class="muted">"Relation type: "</span>
                    {kinds.into_iter().map(|(name, key, ok)| {
                        let label = match &key { Some(k) => format!("{k} {name}"), None => name.clone() };
                        view! {
                            <button type="button" class="relation-type" data-relation-type=name.clone() disabled=!ok
                                title=if ok { "make the relation of this type" } else { "this type does not allow these two spans" }
                                on:mousedown=|ev: web_sys::MouseEvent| ev.prevent_default()
                                on:click=move |_| { handle.act(|e| e.relation_named(&name)); focus_editor(); }>
                                {label}
                            </button>
                        }
                    }).collect_view()}
                    <span class="muted">" · Escape cancels"</span>
                </div>
            })}
            <h3 class="relation-heading">"Relations"</h3>
            <ol class="relation-list" data-testid="relations">
                <For
                    each=move || handle.relation_rows.get()
                    key=|r| (r.id, r.from, r.to, r.label_index, r.selected, r.of_selected, r.confidence.map(f32::to_bits), r.head_text.clone(), r.tail_text.clone(), r.head_label.clone(), r.tail_label.clone())
                    children=move |r: RelationRow| {
                        let id = r.id;
                        let title = match r.confidence {
                            Some(_) => "suggested by the model: + accepts, - rejects (select it with \\ from one of its spans)",
                            None => "your relation: a type's key relabels it, ~ reverses, Delete deletes",
                        };
                        view! {
                            <li data-head=r.head_text.clone() data-tail=r.tail_text.clone() data-label=r.label.clone()
                                data-kind=r.kind() data-selected=r.selected.then_some("true")
                                class=format!("relation-row {}", r.kind()) class:selected=r.selected class:of-selected=r.of_selected
                                title=title
                                on:click=move |_| { handle.act(|e| e.select_relation(id)); focus_editor(); }>
                                {r.describe()}
                            </li>
                        }
                    }
                />
            </ol>
        })
    }
}

/// The relation keys of a relations project, for the key list and the `?` panel.
#[component]
pub fn RelationKeys(kinds: Vec<RelationLabel>) -> impl IntoView {
    let mut keys: Vec<(String, String)> = RELATION_EDITOR_KEYS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    keys.extend(
        [
            (
                "Tab Shift+Tab",
                "while making a relation: the next farther / nearer span",
            ),
            (
                "← →",
                "while making a relation: the previous / next span in the text",
            ),
            (
                "Escape",
                "cancel the relation being made (or let go of the selected relation)",
            ),
            ("Delete Backspace", "delete the selected relation"),
            ("+ -", "accept / reject the selected suggested relation"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    keys.extend(kinds.iter().filter_map(|k| {
        let key = k.hotkey.clone()?;
        let ends = |types: &[String]| {
            if types.is_empty() {
                "any".to_string()
            } else {
                types.join("/")
            }
        };
        Some((
            key,
            format!(
                "relation type {} ({} → {}): makes or relabels a relation",
                k.name,
                ends(&k.head),
                ends(&k.tail)
            ),
        ))
    }));
    view! {
        <dl class="span-keys relation-keys muted" data-testid="relation-keys">
            {keys.into_iter().map(|(k, v)| view! {
                <div><dt>{k.split(' ').map(|k| view! { <kbd>{k.to_string()}</kbd>" " }).collect_view()}</dt><dd>{v}</dd></div>
            }).collect_view()}
        </dl>
    }
}

/// The keys of the span editor, as the page lists them.
#[component]
pub fn SpanKeys(#[prop(optional)] extra: Vec<(String, String)>) -> impl IntoView {
    let mut keys: Vec<(String, String)> = [
        (
            "← →",
            "move the cursor one token (one character in character mode)",
        ),
        ("Shift+← Shift+→", "extend the selection"),
        ("Home End", "first / last token"),
        (
            "Tab Shift+Tab",
            "next / previous span (yours and suggested)",
        ),
        (
            "a\u{a0}label's\u{a0}key",
            "label the selection, or relabel the selected span",
        ),
        (
            "Delete Backspace",
            "delete the selected span (reject a suggestion)",
        ),
        ("Ctrl+Z", "undo"),
        ("Ctrl+Shift+Z Ctrl+Y", "redo"),
        ("Escape", "clear the selection"),
        ("?", "guidelines"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    keys.extend(
        SPAN_EDITOR_KEYS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    keys.extend(extra);
    view! {
        <dl class="span-keys muted" data-testid="span-keys">
            {keys.into_iter().map(|(k, v)| view! {
                <div><dt>{k.split(' ').map(|k| view! { <kbd>{k.to_string()}</kbd>" " }).collect_view()}</dt><dd>{v}</dd></div>
            }).collect_view()}
        </dl>
    }
}

/// The annotation page of a span project.
#[component]
pub fn SpanAnnotatePage(project: ProjectView) -> impl IntoView {
    let pid = project.id;
    let settings = Resource::new(move || pid, get_span_settings);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let project = project.clone();
                Suspend::new(async move {
                    match settings.await {
                        Ok(s) => view! { <SpanAnnotator project overlapping=s.overlapping_spans threshold=s.accept_threshold/> }.into_any(),
                        Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn SpanAnnotator(project: ProjectView, overlapping: bool, threshold: u8) -> impl IntoView {
    let pid = project.id;
    let labels = StoredValue::new(project.labels.clone());
    let relation_kinds = StoredValue::new(project.relation_labels.clone());
    let handle = EditorHandle::new();
    let current = RwSignal::new(None::<ItemView>);
    let prefetched = RwSignal::new(None::<ItemView>);
    let history = RwSignal::new(Vec::<String>::new());
    let recent = RwSignal::new(Vec::<String>::new());
    let finished = RwSignal::new(false);
    let loading = RwSignal::new(true);
    let pending = RwSignal::new(0u32);
    let error = RwSignal::new(None::<String>);
    let progress = RwSignal::new((project.mine, project.done, project.total));
    let show_guidelines = RwSignal::new(false);
    let shown_at = RwSignal::new(0f64);
    // Answers given on this page: going back shows them even while their submit is on its way.
    let answers = StoredValue::new(std::collections::HashMap::<
        String,
        (Vec<Span>, Vec<Relation>),
    >::new());
    // Submits leave in order, one at a time, so a corrected answer never overtakes the answer
    // it corrects.
    let outbox = StoredValue::new(std::collections::VecDeque::<(
        String,
        Vec<Span>,
        Vec<Relation>,
        u64,
    )>::new());
    let draining = StoredValue::new(false);
    let drain = move || {
        if draining.get_value() {
            return;
        }
        draining.set_value(true);
        spawn_local(async move {
            while let Some((id, spans, relations, spent)) =
                outbox.try_update_value(|q| q.pop_front()).flatten()
            {
                match submit_spans(pid, id.clone(), spans, relations, spent).await {
                    Ok(saved) => progress.set((saved.mine, saved.done, saved.total)),
                    Err(e) => {
                        error.set(Some(format!("Item {id} was not saved: {}", error_text(&e))))
                    }
                }
                pending.update(|n| *n -= 1);
            }
            draining.set_value(false);
        });
    };

    let show = move |item: Option<ItemView>| {
        let editor = item.as_ref().map(|i| {
            let suggested = i
                .suggestion
                .as_ref()
                .map(|s| s.spans.clone())
                .unwrap_or_default();
            let mut editor = SpanEditor::new(
                &i.text,
                i.tokens.clone(),
                labels.with_value(|l| editor_labels(l)),
                overlapping,
                threshold,
                i.mine_spans.as_deref().unwrap_or_default(),
                &suggested,
            );
            if !relation_kinds.with_value(Vec::is_empty) {
                let suggested_relations = i
                    .suggestion
                    .as_ref()
                    .map(|s| s.relations.clone())
                    .unwrap_or_default();
                editor = editor.with_relations(
                    relation_kinds.get_value(),
                    i.mine_relations.as_deref().unwrap_or_default(),
                    &suggested,
                    &suggested_relations,
                );
            }
            // A validated version's spans at or above the threshold start accepted (as if `=`
            // had been pressed, so one undo takes them back); an unvalidated version's stay
            // open hints until a key takes them. An earlier answer is never touched.
            let preselect = i.suggestion.as_ref().is_some_and(|s| s.preselect);
            let floor = f32::from(threshold) / 100.0;
            if preselect
                && i.mine_spans.is_none()
                && suggested.iter().any(|s| s.confidence >= floor)
            {
                editor.press(KeyPress::parse("=", false, false));
            }
            // A validated relation classifier's relations likewise (those whose spans are the
            // annotator's by now), in one more undoable step.
            let relations_preselect = i.suggestion.as_ref().is_some_and(|s| s.relations_preselect);
            if relations_preselect && i.mine_spans.is_none() {
                editor.accept_relations_above_threshold();
            }
            editor
        });
        finished.set(item.is_none());
        current.set(item);
        handle.load(editor);
        shown_at.set(now_ms());
        loading.set(false);
    };
    let queue = ItemQueue {
        pid,
        current,
        prefetched,
        recent,
        loading,
        error,
        pending,
        history,
    };
    let advance = move || queue.advance(show);
    let remember = move |id: String| queue.remember(id);
    let submit = move || {
        let Some(item) = current.get_untracked() else {
            return;
        };
        let spans = handle.own_spans();
        let relations = handle.own_relations();
        error.set(None);
        let spent = (now_ms() - shown_at.get_untracked()).max(0.0) as u64;
        pending.update(|n| *n += 1);
        history.update(|h| h.push(item.id.clone()));
        remember(item.id.clone());
        answers.update_value(|a| {
            a.insert(item.id.clone(), (spans.clone(), relations.clone()));
        });
        outbox.update_value(|q| q.push_back((item.id, spans, relations, spent)));
        drain();
        advance();
    };
    let skip = move || queue.skip(show);
    let back = move || {
        queue.back(show, move |item| {
            if let Some((spans, relations)) = answers.with_value(|a| a.get(&item.id).cloned()) {
                item.mine_spans = Some(spans);
                item.mine_relations = Some(relations);
            }
        })
    };
    let bring_back_skipped = move |_| queue.bring_back_skipped(show);
    Effect::new(move |_| advance());

    // The page's keys besides the editor's: Space skips; Escape also closes the guidelines.
    let page_keys = Callback::new(move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        " " if !ev.ctrl_key() && !ev.alt_key() && !ev.meta_key() => {
            skip();
            true
        }
        "Escape" => {
            show_guidelines.set(false);
            false
        }
        _ => false,
    });
    let on_submit = Callback::new(move |_shift: bool| submit());
    let on_guidelines = Callback::new(move |_| show_guidelines.update(|g| *g = !*g));
    let pick = Callback::new(move |name: String| {
        handle.act(|e| e.label_named(&name));
        handle.focus();
    });

    let guidelines_html = project.guidelines_html.clone();
    let project_labels = project.labels.clone();
    view! {
        <main class="annotate spans">
            <header class="annotate-bar">
                <a href=format!("/projects/{pid}")>"← "{project.name.clone()}</a>
                <span data-testid="progress">{move || { let (mine, done, total) = progress.get(); format!("{mine} by you · {done} / {total} done") }}</span>
                <span data-testid="save-status" class:saving=move || { pending.get() > 0 }>
                    {move || if pending.get() > 0 { "Saving…" } else { "All changes saved" }}
                </span>
            </header>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <section class="item-card">
                {move || {
                    if loading.get() {
                        return view! { <p class="loading">"Loading…"</p> }.into_any();
                    }
                    if finished.get() {
                        return view! {
                            <div class="finished" data-testid="queue-empty">
                                <p>"Nothing left for you in this project."</p>
                                <button on:click=bring_back_skipped>"Bring back items I skipped"</button>
                            </div>
                        }.into_any();
                    }
                    let item = current.get();
                    let revisiting = item.as_ref().is_some_and(|i| i.mine_spans.is_some());
                    let suggestion = item.as_ref().and_then(|i| i.suggestion.clone()).filter(|s| !s.spans.is_empty()).map(|s| {
                        let how = if s.preselect {
                            format!("those at or above {threshold}% start accepted (Ctrl+Z takes them back)")
                        } else {
                            format!("hints, none accepted: = accepts all at or above {threshold}%")
                        };
                        view! {
                            <p class="suggestion" class:hint=!s.preselect data-testid="suggestion"
                                data-version=s.version.to_string() data-preselect=s.preselect.to_string()>
                                {format!("Model v{} suggests {} span{} (dashed): Tab to one, + accepts, - rejects; {how}.",
                                    s.version, s.spans.len(), if s.spans.len() == 1 { "" } else { "s" })}
                                <br/><span class="muted" data-testid="suggestion-evidence">{s.evidence}</span>
                                <br/><span class="muted" data-testid="suggestion-validation">{s.validation}</span>
                                {(!s.relations.is_empty()).then(|| {
                                    let how = if s.relations_preselect {
                                        format!("those at or above {threshold}% start accepted")
                                    } else {
                                        "hints (dashed): select one with \\ from one of its spans, + accepts".to_string()
                                    };
                                    view! {
                                        <br/><span data-testid="suggestion-relations" data-preselect=s.relations_preselect.to_string()>
                                            {format!("and {} relation{}, confidence shown in the list; {how}.", s.relations.len(), if s.relations.len() == 1 { "" } else { "s" })}
                                        </span>
                                        <br/><span class="muted" data-testid="suggestion-relations-validation">{s.relations_validation.clone()}</span>
                                    }
                                })}
                            </p>
                        }
                    });
                    let reason = item.as_ref().and_then(|i| i.reason.clone()).map(|r| view! {
                        <p class="muted" data-testid="why">"Why this item: "{r}</p>
                    });
                    let item_id = item.map(|i| i.id);
                    view! {
                        {revisiting.then(|| view! { <p class="muted">"You already answered this item; change your spans and press Enter."</p> })}
                        {suggestion}
                        {reason}
                        <div class="item-text spans" data-testid="item-text" data-item-id=item_id>
                            <SpanEditorView handle labels=project_labels.clone() page_keys on_submit on_guidelines/>
                        </div>
                    }.into_any()
                }}
            </section>
            <LabelBar labels=labels.get_value() selected=handle.selected_label pick aria_label="Entity types"/>
            <section class="actions">
                <button on:click=move |_| back() disabled=move || history.with(Vec::is_empty)>"← Previous"</button>
                <button on:click=move |_| skip()>"Skip"</button>
                <button class="primary" on:click=move |_| submit() data-testid="submit">"Submit"</button>
            </section>
            <SpanKeys extra=vec![("Enter".into(), "submit (no spans: \"no entities\")".into()), ("Space".into(), "skip".into())]/>
            {(!relation_kinds.with_value(Vec::is_empty)).then(|| view! { <RelationKeys kinds=relation_kinds.get_value()/> })}
            <aside class="guidelines-panel" class:open=move || show_guidelines.get() data-testid="guidelines" aria-hidden=move || (!show_guidelines.get()).to_string()>
                <h2>"Guidelines"</h2>
                <div inner_html=guidelines_html></div>
                {(!relation_kinds.with_value(Vec::is_empty)).then(|| view! { <h3>"Relation keys"</h3><RelationKeys kinds=relation_kinds.get_value()/> })}
                <p class="muted"><kbd>"?"</kbd>" or "<kbd>"Esc"</kbd>" to close"</p>
            </aside>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_rise_above_the_higher_end_more_the_farther_apart_they_are() {
        let near = arc_geometry((10.0, 40.0), (50.0, 40.0));
        assert_eq!(near.path, "M 10.0 40.0 C 10.0 25.0, 50.0 25.0, 50.0 40.0");
        assert_eq!(near.label, (30.0, 26.75));
        // Ends on two lines: the arc clears the upper one; a long arc's rise is capped.
        let far = arc_geometry((500.0, 80.0), (20.0, 40.0));
        assert_eq!(far.path, "M 500.0 80.0 C 500.0 0.0, 20.0 0.0, 20.0 40.0");
    }

    #[test]
    fn label_styles_escape_names_and_fall_back_to_the_palette() {
        let labels = vec![
            EditorLabel {
                name: "A\"</style>".into(),
                hotkey: None,
            },
            EditorLabel {
                name: "B".into(),
                hotkey: None,
            },
        ];
        let css = label_styles(&labels, &["#00ff00".to_string(), "red;}body{".to_string()]);
        assert!(!css.contains("</style>") && !css.contains("\"</"), "{css}");
        assert!(css.contains(".spans .l0{--lc:#00ff00}"));
        assert!(
            css.contains(&format!(".l1{{--lc:{}}}", PALETTE[1])),
            "a bad colour is not used: {css}"
        );
        assert!(
            css.contains("\\000041\\000022"),
            "A and the quote as escapes: {css}"
        );
    }
}
