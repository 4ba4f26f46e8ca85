use concord_domain::{QueueOrder, Role};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{
    current_user, get_project, installed_models, list_members, model_overview, ActivateVersion,
    SetMember, StartModelJob, UpdateSettings,
};
use crate::charts::{fmt, SeriesChart};
use crate::components::{error_text, project_id_param, ErrorOrLogin, TopBar};
use crate::wire::{ProjectView, VersionRow};

#[component]
pub fn ProjectPage() -> impl IntoView {
    let id = project_id_param();
    let me = Resource::new(|| (), |_| current_user());
    let project = Resource::new(id, get_project);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (me.await, project.await) {
                    (Ok(Some(user)), Ok(p)) => view! { <TopBar user/><ProjectDetail project=p/> }.into_any(),
                    (Ok(None), _) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    (Err(e), _) | (_, Err(e)) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProjectDetail(project: ProjectView) -> impl IntoView {
    let query = use_query_map();
    let import_banner = move || {
        let q = query.read();
        if let Some(error) = q.get("import_error") {
            return Some(view! { <p class="error" role="alert" data-testid="import-result">"Import failed, nothing was stored: "{error}</p> }.into_any());
        }
        q.get("imported").map(|n| {
            let dups = q.get("duplicates").unwrap_or_else(|| "0".into());
            let skipped = q.get("skipped").unwrap_or_else(|| "0".into());
            // An import of another model's labels says what became of them, and how many had
            // no score (stored with confidence 0: no claim).
            let suggestions = q.get("model_version").map(|version| {
                let count = q.get("suggestions").unwrap_or_else(|| "0".into());
                let unscored = q.get("unscored").unwrap_or_else(|| "0".into());
                format!(" {count} model suggestions as version {version} ({unscored} without a score, stored with confidence 0: no claim).")
            }).unwrap_or_default();
            view! { <p class="ok" role="status" data-testid="import-result">{format!("Imported {n} items ({dups} duplicate texts, {skipped} skipped).{suggestions}")}</p> }.into_any()
        })
    };
    let is_admin = project.role == Role::Admin;
    let is_reviewer = project.role >= Role::Reviewer;
    let id = project.id;
    let percent = project.percent_done();
    view! {
        <main class="page">
            <h1 data-testid="project-name">{project.name.clone()}</h1>
            {import_banner}
            <section class="card">
                <p data-testid="project-progress">{format!("{} / {} items done · {} by you", project.done, project.total, project.mine)}</p>
                <progress max="100" value=percent></progress>
                <p class="muted" data-testid="project-workflow">{format!(
                    "{} · each item is labelled by {} annotator(s){} · your role: {}",
                    project.task.as_str(),
                    project.overlap,
                    if project.blind { ", blind" } else { "" },
                    project.role.as_str()
                )}</p>
                <a class="button primary" href=format!("/projects/{id}/annotate") data-testid="start-annotating">"Annotate"</a>
            </section>
            <section class="card">
                <h2>"Labels"</h2>
                <ul class="labels">
                    {project.labels.iter().map(|l| view! {
                        <li><span class="swatch" style=format!("background:{}", l.colour)></span>
                            <kbd>{l.hotkey.clone().unwrap_or_default()}</kbd>" "<strong>{l.name.clone()}</strong>
                            {l.description.clone().map(|d| view! { <span class="muted">" — "{d}</span> })}
                        </li>
                    }).collect_view()}
                </ul>
                {project.has_guidelines.then(|| view! { <h2>"Guidelines"</h2><div class="guidelines-body" inner_html=project.guidelines_html.clone()></div> })}
            </section>
            {is_admin.then(|| view! { <ImportForm id/> })}
            {is_reviewer.then(|| view! {
                <section class="card">
                    <h2>"Export"</h2>
                    <p>
                        {export_formats(project.task).iter().map(|(format, name)| view! {
                            <a class="button" href=format!("/projects/{id}/export?format={format}") download data-testid=format!("export-{format}")>{format!("Download {name}")}</a>" "
                        }).collect_view()}
                    </p>
                </section>
                <section class="card">
                    <h2>"Agreement and review"</h2>
                    <p>
                        <a class="button" href=format!("/projects/{id}/agreement") data-testid="agreement-link">"Agreement dashboard"</a>" "
                        <a class="button" href=format!("/projects/{id}/review") data-testid="review-link">"Review queue"</a>" "
                        <a class="button" href=format!("/projects/{id}/label-errors") data-testid="label-errors-link">"Likely label errors"</a>
                    </p>
                </section>
                <ModelCard id is_admin/>
                <crate::pages::learning_curve::LearningCurveCard id/>
                <Members id is_admin/>
            })}
            {is_admin.then(|| view! { <Settings project=project.clone()/> })}
            {(is_admin && project.task.is_spans()).then(|| view! { <crate::pages::span_settings::SpanSettings project=id/> })}
        </main>
    }
}

/// The export formats a project of `task` offers (the server's `ExportFormat::supports`), by the
/// name the export route reads and the name a person knows them by.
fn export_formats(task: concord_domain::TaskKind) -> &'static [(&'static str, &'static str)] {
    if task.is_spans() {
        &[
            ("jsonl", "JSONL"),
            ("conll", "CoNLL"),
            ("prodigy", "Prodigy JSONL"),
            ("label-studio", "Label Studio JSON"),
            ("doccano", "doccano JSONL"),
        ]
    } else {
        &[
            ("jsonl", "JSONL"),
            ("csv", "CSV"),
            ("label-studio", "Label Studio JSON"),
        ]
    }
}

/// A plain multipart form: the server streams the file into the import, so large files work
/// and the page needs no script for it.
#[component]
fn ImportForm(id: u64) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Import items"</h2>
            <form method="post" action=format!("/projects/{id}/import") enctype="multipart/form-data" class="stack">
                <label>"File (JSONL, CSV, plain text, CoNLL, Label Studio JSON or doccano JSONL)" <input type="file" name="file" required data-testid="import-file"/></label>
                <label>"Format"
                    <select name="format" data-testid="import-format">
                        <option value="auto">"From the file name"</option>
                        <option value="jsonl">"JSONL (Concord or Prodigy)"</option>
                        <option value="csv">"CSV"</option>
                        <option value="text">"Plain text"</option>
                        <option value="conll">"CoNLL (token and BIO tag per line)"</option>
                        <option value="label-studio">"Label Studio JSON"</option>
                        <option value="doccano">"doccano JSONL (entities and relations)"</option>
                    </select>
                </label>
                <label>"The file's labels are"
                    <select name="labels_as" data-testid="import-labels-as">
                        <option value="gold">"Gold"</option>
                        <option value="annotator">"The answers of an annotator (name below)"</option>
                        <option value="model">"Suggestions of an external model (version name below)"</option>
                    </select>
                </label>
                <label>"Annotator account or model version name" <input name="labels_name" data-testid="import-labels-name"/></label>
                <p class="muted">"Span offsets are Unicode code points of the text (Label Studio's UTF-16 offsets are converted)."</p>
                <label>"Text field / column" <input name="text_field" value="text"/></label>
                <label class="inline"><input type="checkbox" name="skip_duplicates" value="true"/>" Skip texts already in the project"</label>
                <button type="submit" data-testid="import-submit">"Import"</button>
            </form>
        </section>
    }
}

#[component]
fn Members(id: u64, is_admin: bool) -> impl IntoView {
    let action = ServerAction::<SetMember>::new();
    let members = Resource::new(move || action.version().get(), move |_| list_members(id));
    view! {
        <section class="card">
            <h2>"Members"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading members…"</p> }>
                {move || Suspend::new(async move {
                    match members.await {
                        Ok(list) => view! {
                            <table class="members" data-testid="members">
                                <thead><tr><th>"Name"</th><th>"Role"</th><th>"Items done"</th>{is_admin.then(|| view! { <th>"Change role"</th> })}</tr></thead>
                                <tbody>
                                    {list.into_iter().map(|m| {
                                        let role = m.role;
                                        let name = m.name.clone();
                                        let change = is_admin.then(|| view! {
                                            <td>
                                                <ActionForm action=action attr:class="row">
                                                    <input type="hidden" name="project" value=id.to_string()/>
                                                    <input type="hidden" name="user" value=name.clone()/>
                                                    <select name="role" aria-label=format!("Role of {name}")>
                                                        {[Role::Annotator, Role::Reviewer, Role::Admin].into_iter().map(|r| view! {
                                                            <option value=r.as_str() selected=r == role>{r.as_str()}</option>
                                                        }).collect_view()}
                                                        <option value="remove">"remove from project"</option>
                                                    </select>
                                                    <button type="submit">"Apply"</button>
                                                </ActionForm>
                                            </td>
                                        });
                                        view! { <tr data-member=m.name.clone()><td>{m.name.clone()}</td><td>{m.role.as_str()}</td><td>{m.done}</td>{change}</tr> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
            {is_admin.then(|| view! {
                <ActionForm action=action attr:class="row">
                    <input type="hidden" name="project" value=id.to_string()/>
                    <input name="user" placeholder="add an account by name" required data-testid="member-name"/>
                    <select name="role" data-testid="member-role">
                        <option value="annotator">"annotator"</option>
                        <option value="reviewer">"reviewer"</option>
                        <option value="admin">"admin"</option>
                        <option value="remove">"remove from project"</option>
                    </select>
                    <button type="submit" data-testid="member-submit">"Apply"</button>
                </ActionForm>
                {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
            })}
        </section>
    }
}

/// Workflow settings (project admins). The overlap can change only before the first answer.
#[component]
fn Settings(project: ProjectView) -> impl IntoView {
    let action = ServerAction::<UpdateSettings>::new();
    let saved = move || action.value().get().map(|r| r.is_ok()).unwrap_or(false);
    // Client-side only: the list fills in after hydration; until then the select shows the
    // project's model alone.
    let installed = LocalResource::new(installed_models);
    let model = project.model.clone();
    view! {
        <section class="card">
            <h2>"Workflow settings"</h2>
            <ActionForm action=action attr:class="stack" attr:data-testid="settings-form">
                <input type="hidden" name="project" value=project.id.to_string()/>
                <label>"Annotators per item (overlap)"
                    <input type="number" name="overlap" min="1" max="50" value=project.overlap.to_string() data-testid="settings-overlap"/>
                </label>
                <label class="inline"><input type="checkbox" name="blind" value="on" checked=project.blind data-testid="settings-blind"/>
                    " Blind: annotators never see other annotators' answers or model suggestions"</label>
                <label class="inline"><input type="checkbox" name="auto_accept" value="on" checked=project.auto_accept_unanimous data-testid="settings-auto-accept"/>
                    " Accept items all annotators agree on without review (overlap 2 or more)"</label>
                <label>"One gold question about every N items (0: none)"
                    <input type="number" name="gold_every" min="0" max="1000" value=project.gold_every.to_string()/>
                </label>
                <label>"Queue order (active learning)"
                    <select name="queue_order" data-testid="settings-queue-order">
                        {QueueOrder::ALL.into_iter().map(|o| view! {
                            <option value=o.as_str() selected=project.queue_order == o>{o.describe()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label class="inline"><input type="checkbox" name="diversity" value="on" checked=project.diversity data-testid="settings-diversity"/>
                    " Diversity: spread each batch over clusters of similar items"</label>
                <label>"Encoder (a folder in the server's models folder)"
                    <select name="model" data-testid="settings-model">
                        {move || {
                            let current = model.clone();
                            let mut names = installed.get().and_then(Result::ok).unwrap_or_default();
                            if !names.contains(&current) {
                                names.insert(0, current.clone());
                            }
                            names.into_iter().map(|n| {
                                let selected = n == current;
                                let label = n.clone();
                                view! { <option value=n selected=selected>{label}</option> }
                            }).collect_view()
                        }}
                    </select>
                </label>
                <fieldset data-testid="settings-auto-train">
                    <legend>"The model trains itself"</legend>
                    <label class="inline"><input type="checkbox" name="auto_train" value="on" checked=project.auto_train.enabled data-testid="settings-auto-train-enabled"/>
                        " Retrain on its own as labels come in; a new version replaces the active one only if it is not worse on held-out labels"</label>
                    <label>"Retrain the head after every N new confirmed labels"
                        <input type="number" name="auto_train_every" min=concord_domain::AUTO_TRAIN_EVERY.start().to_string() max=concord_domain::AUTO_TRAIN_EVERY.end().to_string() value=project.auto_train.every.to_string() data-testid="settings-auto-train-every"/>
                    </label>
                    <label>"Tune the encoder few-shot (SetFit-style, seconds) when the confirmed labels reach (comma-separated; empty: never)"
                        <input type="text" name="few_shot_at" value=crate::wire::format_milestones(&project.auto_train.few_shot_at) inputmode="numeric" data-testid="settings-few-shot-at"/>
                    </label>
                    <label>"Fine-tune the encoder when the confirmed labels reach (comma-separated; empty: never)"
                        <input type="text" name="fine_tune_at" value=crate::wire::format_milestones(&project.auto_train.fine_tune_at) inputmode="numeric" data-testid="settings-fine-tune-at"/>
                    </label>
                </fieldset>
                <button type="submit" data-testid="settings-submit">"Save settings"</button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
            {move || saved().then(|| view! { <p class="ok" role="status">"Settings saved."</p> })}
        </section>
    }
}

/// A version's live record as the versions table shows it: "0.82 (41 / 50)", or a dash
/// before any answer to its suggestions.
fn live_acceptance(accepted: u64, answers: u64) -> String {
    if answers == 0 {
        "—".to_string()
    } else {
        format!(
            "{:.2} ({accepted} / {answers})",
            accepted as f64 / answers as f64
        )
    }
}

/// The project's model: whether it is available, the versions with their held-out metrics
/// (a table and a chart), background jobs with progress, and the buttons that start them.
#[component]
fn ModelCard(id: u64, is_admin: bool) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let start = ServerAction::<StartModelJob>::new();
    let activate = ServerAction::<ActivateVersion>::new();
    let overview = Resource::new(
        move || (tick.get(), start.version().get(), activate.version().get()),
        move |_| model_overview(id),
    );
    // While a job is queued or running, look again every second.
    Effect::new(move |_| {
        let busy = overview.get().and_then(Result::ok).is_some_and(|o| {
            o.jobs
                .iter()
                .any(|j| j.state == "queued" || j.state == "running")
        });
        #[cfg(feature = "hydrate")]
        if busy {
            set_timeout(
                move || tick.update(|t| *t += 1),
                std::time::Duration::from_millis(800),
            );
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = busy;
    });
    let job_error = move || {
        start
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| activate.value().get().and_then(Result::err))
            .map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })
    };
    view! {
        <section class="card" data-testid="model-card">
            <h2>"Model"</h2>
            {job_error}
            <Transition fallback=|| view! { <p class="loading">"Loading the model…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                        Ok(o) => {
                            let status = if o.available {
                                format!("Encoder: {}", o.model)
                            } else {
                                format!("Model features are off: {}", o.reason.clone().unwrap_or_default())
                            };
                            let chart: Vec<_> = o.versions.iter().filter(|v| v.accuracy.is_some())
                                .map(|v| (format!("v{}", v.version), v.accuracy, v.macro_f1)).collect();
                            view! {
                                <p class="muted" data-testid="model-status">{status}</p>
                                {o.available.then(|| view! {
                                    <div class="row">
                                        // Training activates the new version, so it is for
                                        // admins, as pre-annotating and activating are.
                                        {is_admin.then(|| view! {
                                            <ActionForm action=start>
                                                <input type="hidden" name="project" value=id.to_string()/>
                                                <input type="hidden" name="kind" value="predict"/>
                                                <button type="submit" data-testid="pre-annotate">"Pre-annotate all items"</button>
                                            </ActionForm>
                                            <ActionForm action=start>
                                                <input type="hidden" name="project" value=id.to_string()/>
                                                <input type="hidden" name="kind" value="train"/>
                                                <button type="submit" data-testid="train" title="A classifier on the frozen encoder: seconds">"Train a new version on the confirmed labels"</button>
                                            </ActionForm>
                                            <ActionForm action=start>
                                                <input type="hidden" name="project" value=id.to_string()/>
                                                <input type="hidden" name="kind" value="fine_tune"/>
                                                <button type="submit" data-testid="fine-tune" title="Trains the encoder too and re-embeds every item: minutes">"Fine-tune the encoder"</button>
                                            </ActionForm>
                                            <ActionForm action=start>
                                                <input type="hidden" name="project" value=id.to_string()/>
                                                <input type="hidden" name="kind" value="setfit"/>
                                                <button type="submit" data-testid="few-shot" title="Few labels (up to a few hundred): tunes the encoder on pairs of labelled texts, SetFit-style, then trains the head; re-embeds every item">"Few-shot tune (SetFit)"</button>
                                            </ActionForm>
                                        })}
                                    </div>
                                }.into_any())}
                                {(is_admin && !o.generators.is_empty()).then(|| {
                                    let generators = o.generators.clone();
                                    view! {
                                        <ActionForm action=start>
                                            <input type="hidden" name="project" value=id.to_string()/>
                                            <input type="hidden" name="kind" value="generate"/>
                                            <div class="row">
                                                <select name="generator" data-testid="generator" aria-label="Generator">
                                                    {generators.into_iter().map(|g| view! { <option value=g.clone()>{g.clone()}</option> }).collect_view()}
                                                </select>
                                                <button type="submit" data-testid="generate" title="A generative model labels every item by the likelihood of each label's words, with 8 demonstrations from the confirmed labels; its version is measured on the held-out labels like any other and pre-selected only when it beats the majority label">"Pre-annotate with a generative model"</button>
                                            </div>
                                        </ActionForm>
                                    }
                                })}
                                {(!o.jobs.is_empty()).then(|| view! {
                                    <table class="data" data-testid="model-jobs">
                                        <thead><tr><th>"Job"</th><th>"State"</th><th class="num">"Progress"</th><th class="num" title="Items per second (training steps while fine-tuning)">"Per second"</th><th class="num">"ETA"</th></tr></thead>
                                        <tbody>
                                            {o.jobs.iter().map(|j| view! {
                                                <tr data-job=j.id.to_string() data-state=j.state.clone()>
                                                    <td>{format!("#{} {}", j.id, j.kind)}</td>
                                                    <td>{j.state.clone()}{j.error.clone().map(|e| format!(": {e}"))}</td>
                                                    <td class="num">{format!("{} / {}", j.done, j.total)}</td>
                                                    <td class="num">{j.rate.map(|r| format!("{r:.1}")).unwrap_or_default()}</td>
                                                    <td class="num">{j.eta_seconds.map(|s| format!("{s:.0} s")).unwrap_or_default()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any())}
                                {(!o.versions.is_empty()).then(|| view! {
                                    <table class="data" data-testid="model-versions">
                                        <thead><tr><th>"Version"</th><th>"Trainer"</th><th class="num">"Labels"</th><th class="num">"Held out"</th><th class="num">"Accuracy"</th><th class="num">"Macro-F1"</th><th class="num">"Calibration error"</th><th class="num" title="Answers that took its suggestion unchanged, of all answers given against it. Pre-selected suggestions anchor answers, so pre-selection rests only on held-out labels and first answers to unselected hints">"Live acceptance"</th><th title="Suggestions are pre-selected only when the lower end of a 95% interval of the version's accuracy on labels it was not trained on is above the baseline">"Pre-selected"</th><th>"Trained on its own"</th><th></th></tr></thead>
                                        <tbody>
                                            {o.versions.iter().rev().map(|v| {
                                                let version = v.version;
                                                let switch = (is_admin && !v.active).then(|| view! {
                                                    <ActionForm action=activate>
                                                        <input type="hidden" name="project" value=id.to_string()/>
                                                        <input type="hidden" name="version" value=version.to_string()/>
                                                        <button type="submit" data-testid=format!("activate-{version}")>"Activate"</button>
                                                    </ActionForm>
                                                });
                                                view! {
                                                    <tr data-version=version.to_string() data-active=v.active.to_string()>
                                                        <td>{format!("v{version}")}{v.active.then_some(" (active)")}</td>
                                                        <td>{v.trainer.replace('_', "-")}</td>
                                                        <td class="num">{v.train_size}</td>
                                                        <td class="num">{v.held_out}</td>
                                                        <td class="num" data-testid="version-accuracy">{fmt(v.accuracy)}</td>
                                                        <td class="num">{fmt(v.macro_f1)}</td>
                                                        <td class="num">{fmt(v.calibration_error)}</td>
                                                        <td class="num" data-testid="version-acceptance">{live_acceptance(v.live_accepted, v.live_answers)}</td>
                                                        <td data-testid="version-validated" data-validated=v.validated.to_string()>
                                                            {if v.validated { "yes" } else { "no" }}
                                                            <br/><small class="muted">{v.evidence.clone()}</small>
                                                        </td>
                                                        <td data-testid="version-auto">
                                                            {v.auto.clone()}
                                                            {v.comparison.clone().map(|c| view! { <br/><small class="muted" data-testid="version-comparison">{c}</small> })}
                                                        </td>
                                                        <td>{switch}</td>
                                                    </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any())}
                                {label_comparison(&o.versions)}
                                {crate::pages::span_metrics::span_metrics_tables(&o.versions)}
                                {(chart.len() > 1).then(|| view! {
                                    <SeriesChart days=chart title="Held-out accuracy (dots) and macro-F1 (line) per version"/>
                                }.into_any())}
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

/// Held-out F1 per label, one column per evaluated version (newest first): where a new
/// version gained or lost.
fn label_comparison(versions: &[VersionRow]) -> Option<impl IntoView> {
    let evaluated: Vec<&VersionRow> = versions
        .iter()
        .rev()
        .filter(|v| !v.label_f1.is_empty())
        .collect();
    let labels: Vec<String> = evaluated
        .first()?
        .label_f1
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    let f1 = |v: &VersionRow, label: &str| {
        v.label_f1
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, f)| format!("{f:.3}"))
            .unwrap_or_default()
    };
    Some(view! {
        <details class="compare" data-testid="label-comparison">
            <summary>"Compare versions by label (held-out F1)"</summary>
            <table class="data">
                <thead>
                    <tr>
                        <th>"Label"</th>
                        {evaluated.iter().map(|v| view! { <th class="num">{format!("v{}", v.version)}</th> }).collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {labels.iter().map(|label| view! {
                        <tr data-label=label.clone()>
                            <td>{label.clone()}</td>
                            {evaluated.iter().map(|v| view! { <td class="num">{f1(v, label)}</td> }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </details>
    })
}
