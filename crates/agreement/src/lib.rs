//! Inter-annotator agreement statistics for Concord.
//!
//! This crate answers "how much do our annotators agree, and is it more than chance?" for
//! labelled data: percent agreement (under each of its three common definitions), Cohen's κ
//! (unweighted, linear, quadratic), Scott's π, Fleiss' κ (also with a varying number of ratings
//! per item), Conger's κ, Krippendorff's α (nominal, ordinal, interval, ratio; missing values;
//! any number of raters), Gwet's AC1/AC2 and Brennan–Prediger; per-label (one-vs-rest)
//! agreement, the pairwise annotator matrix, the confusion matrix between two raters and seeded
//! bootstrap confidence intervals; and for spans, exact and overlap F1 and Krippendorff's
//! unitizing α_U, and for relations between spans, relation F1 per type (both spans and the
//! type must match). It is pure maths — no I/O, no async, no threads — so it builds for wasm32 and
//! gives the server, the command line and the browser the same numbers.
//!
//! Input is a ratings matrix with items as rows and raters as columns ([`RatingsView`], a flat
//! `&[u32]` with [`MISSING`] for absent ratings, or the owned [`Ratings`] built from indices,
//! numbers or string labels). One pass builds [`Tallies`] (coincidence and contingency counts),
//! from which every coefficient is `O(categories²)`. Undefined cases (a single category, no
//! pairable items, a single rater, zero expected disagreement) come back as
//! [`Coefficient::Undefined`] with an [`UndefinedReason`], never as NaN and never as a panic.
//! The published examples in `shared/agreement/published_cases.json` are reproduced to 1e-9
//! by the `published_cases` test.
//!
//! ```
//! use concord_agreement::{Coefficient, Metric, Ratings, Tallies, Weighting};
//!
//! // Three annotators, four items, one missing label.
//! let rows = vec![
//!     vec![Some("pos"), Some("pos"), Some("pos")],
//!     vec![Some("neg"), Some("neg"), None],
//!     vec![Some("neu"), Some("pos"), Some("neu")],
//!     vec![Some("neg"), Some("neg"), Some("neg")],
//! ];
//! let ratings = Ratings::from_labels(&rows).unwrap();
//! let tallies = Tallies::build(&ratings.view(), true);
//! let alpha = tallies.krippendorff_alpha(Metric::Nominal);
//! assert!(alpha.coefficient.value().unwrap() > 0.6);
//! let kappa = tallies.fleiss_kappa(Weighting::Identity);
//! assert_eq!(kappa.items_excluded, 0);
//!
//! // A single category: undefined, with the reason, never NaN.
//! let same = Ratings::from_labels(&[vec![Some("x"), Some("x")]]).unwrap();
//! let t = Tallies::build(&same.view(), false);
//! assert!(matches!(t.fleiss_kappa(Weighting::Identity).coefficient, Coefficient::Undefined(_)));
//! ```

#![warn(missing_docs)]

pub mod bootstrap;
pub mod coefficient;
pub mod error;
pub mod fleiss;
pub mod gwet;
pub mod krippendorff;
pub mod pairwise;
pub mod per_label;
pub mod percent;
pub mod ratings;
pub mod relations;
pub mod report;
pub mod rng;
pub mod spans;
pub mod tally;
pub mod unitizing;
pub mod weights;

pub use bootstrap::{bootstrap, BootstrapConfig, CoefficientKind, ConfidenceInterval, Interval};
pub use coefficient::{ChanceCorrected, Coefficient, UndefinedReason};
pub use error::InputError;
pub use fleiss::{conger_kappa, fleiss_kappa};
pub use gwet::{brennan_prediger, gwet_ac};
pub use krippendorff::{krippendorff_alpha, krippendorff_alpha_interval_values, AlphaEstimate};
pub use pairwise::{
    confusion_matrix, mean_pairwise, pairwise_matrix, ContingencyTable, MeanPairwise,
    PairCoefficient, PairwiseMatrix,
};
pub use per_label::{per_label, LabelAgreement};
pub use percent::{percent_agreement, PercentAgreement};
pub use ratings::{Ratings, RatingsView, MISSING};
pub use relations::{
    pairwise_relation_f1, relation_f1, LabelledRelation, RelationAgreement, RelationCounts,
    RelationEnd, RelationTypeF1,
};
pub use report::{agreement_report, AgreementReport, ReportOptions};
pub use spans::{
    pairwise_span_f1, precision_recall_f1, span_f1, LabelF1, Span, SpanAgreement, SpanMatch,
};
pub use tally::{Tallies, TallyBuilder};
pub use unitizing::{unitizing_alpha, CategoryAlphaU, Unit, UnitizingAlpha};
pub use weights::{Metric, Weighting};
