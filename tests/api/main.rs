//! The REST API end to end: the real server, in-process on 127.0.0.1:0, over a real
//! database, each test on SQLite and on PostgreSQL; plus the `iops` binary itself.
mod accounts;
mod admin;
mod analyses;
mod billing;
mod charts;
mod cli;
mod collaboration;
mod connections;
mod datasets;
mod deployment;
mod events;
mod ops;
mod public;
mod reports;
mod runs;
mod support;
mod templates;
