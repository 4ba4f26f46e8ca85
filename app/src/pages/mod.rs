//! One page per file.

pub mod agreement;
pub mod annotate;
pub mod login;
pub mod project;
pub mod projects;
pub mod review;
pub mod setup;
pub mod users;
