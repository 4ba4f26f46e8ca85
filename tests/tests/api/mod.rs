//! The REST API and browser routes against the real router on port 0, one module per area.
//! They are modules of one test binary rather than files of their own: each binary would link
//! the whole server again.

mod agreement;
mod annotation;
mod auth;
mod import_export;
mod projects;
mod relations;
mod review;
mod security;
