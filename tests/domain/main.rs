//! Domain rules against real databases, each test on SQLite and on PostgreSQL.
mod accounts;
mod analyses;
mod billing;
mod charts;
mod cluster;
mod collaboration;
mod connections;
mod datasets;
mod events;
mod reports;
mod storage;
mod support;
mod templates;
mod usage;
