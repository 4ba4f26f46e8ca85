//! `concord serve --demo`: a team project whose figures are there on the first run.

use concord::demo::{self, DEMO_ANNOTATORS, DEMO_NAME};
use concord_engine::agreement_stats::Ratings;
use concord_engine::{Engine, Principal};

/// The answers the demo promises, read from the embedded sample by the rule its guidelines
/// state (annotator k gives the k-th rating: ≥ 1 positive, ≤ −1 negative, else neutral),
/// one row per tweet, one column per annotator.
fn promised_answers() -> Vec<Vec<Option<&'static str>>> {
    demo::sample()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(position, tweet)| {
            let by = demo::answered_by(position);
            (0..DEMO_ANNOTATORS.len())
                .map(|k| {
                    by.contains(&k).then(|| match tweet.ratings[k] {
                        s if s >= 1 => "positive",
                        s if s <= -1 => "negative",
                        _ => "neutral",
                    })
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_demo_is_a_team_project_with_figures_on_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let seeded = demo::seed(&engine)
        .unwrap()
        .expect("a fresh database gets the demo");
    assert_eq!(seeded.new_accounts, DEMO_ANNOTATORS);
    assert!(seeded.password.len() >= 16, "a random password");
    // The annotator accounts do not end the one-time setup: nobody administers the server yet.
    assert!(engine.needs_setup().unwrap());
    // Seeding again changes nothing.
    assert!(demo::seed(&engine).unwrap().is_none());

    let local = Principal::local();
    let project = engine.find_project(DEMO_NAME).unwrap();
    assert_eq!(project, seeded.project);
    let summary = engine.project_summary(&local, project).unwrap();
    assert_eq!(summary.total, 300);
    assert_eq!(summary.spec.settings.overlap, demo::DEMO_OVERLAP);

    // The members are the four annotators, by name (the local operator who created the
    // project has no account and is not listed with an empty name).
    let mut members: Vec<(String, String)> = engine
        .members(&local, project)
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.role.as_str().to_string()))
        .collect();
    members.sort();
    let expected: Vec<(String, String)> = DEMO_ANNOTATORS
        .iter()
        .map(|n| (n.to_string(), "annotator".to_string()))
        .collect();
    assert_eq!(members, expected);

    // Agreement: the project's figures are those of the simulated answers.
    let promised = promised_answers();
    let answered: Vec<Vec<Option<&str>>> = promised
        .iter()
        .filter(|row| row.iter().any(Option::is_some))
        .cloned()
        .collect();
    let ratings =
        Ratings::from_labels_with_categories(&answered, &["positive", "negative", "neutral"])
            .unwrap();
    let want = concord_engine::agreement_stats::krippendorff_alpha(
        &ratings.view(),
        concord_engine::agreement_stats::Metric::Nominal,
    );
    let figures = engine.agreement(&local, project).unwrap();
    let mut annotators = figures.annotators.clone();
    annotators.sort();
    assert_eq!(annotators, DEMO_ANNOTATORS);
    assert_eq!(figures.unannotated_items, 50);
    assert_eq!(figures.report.items_pairable, 250);
    let got = figures.report.alpha_nominal.coefficient.value().unwrap();
    let want = want.coefficient.value().unwrap();
    assert!((got - want).abs() < 1e-12, "α {got} vs {want}");
    // Real disagreement, not a toy: well above chance, well below perfect.
    assert!((0.2..0.8).contains(&got), "α {got}");
    for stats in &figures.annotator_stats {
        assert!(stats.kappa_with_others.value().is_some(), "{}", stats.name);
        assert!(
            stats.gold_answered > 0,
            "{} answered gold items",
            stats.name
        );
    }

    // Review: every finished item without gold whose three answers differ waits for a
    // reviewer; unanimous ones are accepted.
    let (mut disagreements, mut accepted, mut in_progress) = (0, 0, 0);
    for (position, row) in promised.iter().enumerate() {
        if demo::has_gold(position) {
            continue;
        }
        let given: Vec<&str> = row.iter().flatten().copied().collect();
        match given.len() {
            3 if given.iter().all(|g| *g == given[0]) => accepted += 1,
            3 => disagreements += 1,
            1 | 2 => in_progress += 1,
            _ => {}
        }
    }
    let review = engine.review_summary(&local, project).unwrap();
    assert_eq!(review.disagreements, disagreements);
    assert_eq!(review.needs_review, disagreements);
    assert_eq!(review.accepted, accepted);
    assert_eq!(review.in_progress, in_progress);
    assert_eq!(review.gold_imported, 30);
    assert!(disagreements >= 40, "{disagreements} items to review");

    // An annotator can sign in with the password shown once, and still has items to label.
    let (annotator, _) = engine.login(DEMO_ANNOTATORS[0], &seeded.password).unwrap();
    assert!(engine
        .next_item(&annotator, project, &[])
        .unwrap()
        .is_some());
}
