//! The iOps REST API (actix-web) over [`domain`], and the `iops` command line.
//!
//! The HTTP layer is thin: it turns requests into domain calls and [`domain::Error`] into
//! RFC 9457 problems in one place ([`http::problem`]); no rule lives only here.
pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
