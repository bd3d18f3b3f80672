//! The query engine of iOps: [`DataFusionEngine`] implements the domain's
//! [`domain::query::QueryEngine`] port with Apache DataFusion, reading dataset files where
//! the dataset store keeps them (a folder or an S3 bucket) through the store's own
//! `object_store` client.
//!
//! What it guarantees, whatever the query:
//! - only the tables it is given can be named; anything that is not a query, and every
//!   way to reach a file, a URL, a table function or the catalog, is refused before planning
//!   ([`guard`]);
//! - queries run on the engine's own threads, so a heavy query never holds up a web worker,
//!   and a query whose caller goes away is stopped;
//! - time, memory (spilling to disk first), rows and queries at once are bounded by
//!   [`EngineSettings`];
//! - the same plans run on an Apache Ballista cluster when the settings name a scheduler
//!   ([`cluster`]), whose processes read the same store.
pub mod cluster;
mod failure;
mod guard;
mod run;
mod schema;
mod structured;
mod values;

pub use cluster::ClusterAddress;
pub use run::{DataFusionEngine, EngineError, EngineSettings};
