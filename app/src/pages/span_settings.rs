//! The span settings of a span project (project admins): whether spans may overlap, the
//! threshold of "accept all suggestions", and the pre-annotation patterns of each entity type.

use leptos::prelude::*;

use crate::api::{get_span_settings, UpdateSpanSettings};
use crate::components::error_text;
use crate::wire::{LabelPatternsView, SpanSettingsView};

/// A form of its own beside the workflow settings: saving one keeps the other's values.
#[component]
pub fn SpanSettings(project: u64) -> impl IntoView {
    let action = ServerAction::<UpdateSpanSettings>::new();
    // Read once: refetching after a refused save would replace what the admin typed.
    let current = Resource::new(|| (), move |_| get_span_settings(project));
    let saved = move || action.value().get().map(|r| r.is_ok()).unwrap_or(false);
    view! {
        <section class="card" data-testid="span-settings">
            <h2>"Entity spans"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading the span settings…"</p> }>
                {move || Suspend::new(async move {
                    match current.await {
                        Ok(settings) => view! { <SpanSettingsForm project action settings/> }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert" data-testid="span-settings-error">{error_text(&e)}</p> })}
            {move || saved().then(|| view! { <p class="ok" role="status" data-testid="span-settings-saved">"Span settings saved."</p> })}
        </section>
    }
}

#[component]
fn SpanSettingsForm(
    project: u64,
    action: ServerAction<UpdateSpanSettings>,
    settings: SpanSettingsView,
) -> impl IntoView {
    view! {
        <ActionForm action=action attr:class="stack" attr:data-testid="span-settings-form">
            <input type="hidden" name="project" value=project.to_string()/>
            <label class="inline"><input type="checkbox" name="overlapping_spans" value="on" checked=settings.overlapping_spans data-testid="span-overlapping"/>
                " Spans may overlap or nest (off: flat spans, no two share a character)"</label>
            <label>"Accept all suggestions at or above this confidence (percent)"
                <input type="number" name="accept_threshold" min="0" max="100" required value=settings.accept_threshold.to_string() data-testid="span-threshold"/>
            </label>
            <h3>"Patterns"</h3>
            <p class="hint">"Pre-annotation before any model: where a term or a regular expression matches whole tokens, the entity type is suggested. One pattern per line."</p>
            {settings.labels.into_iter().enumerate().map(|(index, row)| view! { <LabelPatterns index row/> }).collect_view()}
            <button type="submit" data-testid="span-settings-submit">"Save span settings"</button>
        </ActionForm>
    }
}

/// One entity type's patterns. The fields are named `patterns[i][field]`: the server function
/// reads the rows as a list.
#[component]
fn LabelPatterns(index: usize, row: LabelPatternsView) -> impl IntoView {
    let field = move |name: &str| format!("patterns[{index}][{name}]");
    view! {
        <fieldset class="stack" data-testid="label-patterns" data-label=row.label.clone()>
            <legend><span class="swatch" style=format!("background:{}", row.colour)></span>{row.label.clone()}</legend>
            <input type="hidden" name=field("label") value=row.label.clone()/>
            <label>"Terms, one per line"
                <textarea name=field("terms") rows="3" data-testid="pattern-terms">{row.terms}</textarea>
            </label>
            <label>"Regular expressions, one per line"
                <textarea name=field("regexes") rows="2" data-testid="pattern-regexes">{row.regexes}</textarea>
            </label>
            <label class="inline"><input type="checkbox" name=field("case_insensitive") value="on" checked=row.case_insensitive data-testid="pattern-case-insensitive"/>
                " Ignore case"</label>
            {row.mixed_case.then(|| view! {
                <p class="hint">"Some of these patterns ignore case and others do not; saving applies this box to all of them."</p>
            })}
        </fieldset>
    }
}
