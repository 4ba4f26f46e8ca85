//! The demo project a fresh `concord serve --demo` starts with, so a first-time user has
//! something to annotate right away.

use concord_domain::{Label, ProjectSettings, ProjectSpec, TaskKind};
use concord_engine::{Engine, ImportFormat, ImportOptions, Principal};

const DEMO_ITEMS: &str = include_str!("../demo/reviews.txt");
pub const DEMO_NAME: &str = "Demo: review sentiment";

const GUIDELINES: &str = "\
# Review sentiment

Label each sentence by the **author's attitude towards the film**.

- **positive** — the author likes the film or recommends it.
- **negative** — the author dislikes it or warns others off.
- **neutral** — facts, or no clear attitude either way.

Mixed sentences: pick the attitude of the sentence's *conclusion*.
";

fn label(name: &str, description: &str) -> Label {
    Label {
        name: name.into(),
        description: Some(description.into()),
        colour: String::new(),
        hotkey: None,
    }
}

/// Creates the demo project unless any project exists. Returns whether it did.
pub fn seed(engine: &Engine) -> anyhow::Result<bool> {
    let local = Principal::local();
    if !engine.list_projects(&local)?.is_empty() {
        return Ok(false);
    }
    let spec = ProjectSpec {
        name: DEMO_NAME.into(),
        task: TaskKind::Classification,
        labels: vec![
            label("positive", "the author likes the film"),
            label("negative", "the author dislikes the film"),
            label("neutral", "facts, or no clear attitude"),
        ],
        guidelines: GUIDELINES.into(),
        settings: ProjectSettings::default(),
    };
    let id = engine.create_project(&local, spec)?;
    let options = ImportOptions {
        format: ImportFormat::Text,
        ..ImportOptions::default()
    };
    engine.import(&local, id, DEMO_ITEMS.as_bytes(), &options, &mut |_| {})?;
    // With a model at hand, the demo opens with zero-shot suggestions already computing.
    if engine.model_status().available {
        engine.enqueue_predict(&local, id)?;
    }
    Ok(true)
}
