mod cli;
mod fixtures;
mod revisions;
mod schema;
