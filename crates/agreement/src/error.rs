//! Errors for malformed input. Undefined coefficients are not errors: see
//! [`crate::UndefinedReason`].

/// The input could not be interpreted as ratings, spans or units.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A row of the ratings matrix has a different length from the first row.
    #[error("row {row} has {found} ratings but the first row has {expected}")]
    RaggedRows {
        /// Zero-based row (item) index.
        row: usize,
        /// Length of the first row.
        expected: usize,
        /// Length of this row.
        found: usize,
    },
    /// The flat ratings slice is not a whole number of rows.
    #[error("{len} values do not divide into rows of {raters} raters")]
    LengthNotMultipleOfRaters {
        /// Length of the flat slice.
        len: usize,
        /// Declared number of raters.
        raters: usize,
    },
    /// Zero raters were declared for a non-empty ratings slice.
    #[error("a ratings matrix with values needs at least one rater column")]
    NoRaterColumns,
    /// A category index is not below the declared number of categories.
    #[error("item {item}, rater {rater}: category {value} is not below the {categories} declared categories")]
    CategoryOutOfRange {
        /// Zero-based item index.
        item: usize,
        /// Zero-based rater index.
        rater: usize,
        /// The offending value.
        value: u32,
        /// Declared number of categories.
        categories: usize,
    },
    /// More categories than the compact `u32` form can hold.
    #[error("{0} categories are more than the compact form can hold")]
    TooManyCategories(usize),
    /// A numeric rating is NaN or infinite.
    #[error("item {item}, rater {rater}: the value is not a finite number")]
    NonFiniteValue {
        /// Zero-based item index.
        item: usize,
        /// Zero-based rater index.
        rater: usize,
    },
    /// A label is not among the declared categories.
    #[error("item {item}, rater {rater}: label {label:?} is not a declared category")]
    UnknownLabel {
        /// Zero-based item index.
        item: usize,
        /// Zero-based rater index.
        rater: usize,
        /// The label.
        label: String,
    },
    /// Numeric categories must be listed in ascending order (the order of the scale).
    #[error("the categories must be listed in ascending order: {after} comes after {before}")]
    CategoriesNotAscending {
        /// The earlier value.
        before: f64,
        /// The value listed after it.
        after: f64,
    },
    /// A declared category occurs twice.
    #[error("category {0:?} is declared twice")]
    DuplicateCategory(String),
    /// The category scores do not match the categories.
    #[error("{found} scores were given for {categories} categories")]
    ScoresLength {
        /// Number of categories.
        categories: usize,
        /// Number of scores given.
        found: usize,
    },
    /// A category score is NaN or infinite.
    #[error("the score of category {0} is not a finite number")]
    NonFiniteScore(usize),
    /// A contingency table is not square.
    #[error("a contingency table of {len} cells is not square")]
    NotSquare {
        /// Number of cells given.
        len: usize,
    },
    /// A rater index is outside the declared raters.
    #[error("rater {rater} is not below the {raters} declared raters")]
    RaterOutOfRange {
        /// The rater index.
        rater: usize,
        /// Declared number of raters.
        raters: usize,
    },
    /// A span or unit is empty or ends before it starts.
    #[error("a unit or span at {start} has length zero or ends before it starts")]
    EmptyUnit {
        /// Its start.
        start: u64,
    },
    /// A unit lies (partly) outside the continuum.
    #[error("the unit {offset}+{length} lies outside the continuum")]
    UnitOutsideContinuum {
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
    },
    /// Two units of the same rater and category overlap.
    #[error("rater {rater} has overlapping units of category {category:?} at {offset}")]
    OverlappingUnits {
        /// The rater.
        rater: usize,
        /// The category.
        category: String,
        /// Offset of the later unit.
        offset: u64,
    },
    /// The continuum has length zero.
    #[error("the continuum has length zero")]
    EmptyContinuum,
    /// A bootstrap setting is out of range.
    #[error("invalid bootstrap setting: {0}")]
    InvalidBootstrap(&'static str),
}
