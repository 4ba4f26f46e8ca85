//! Shared helpers for Concord's integration tests: start the real server on port 0.
