mod fixtures;
mod schema;
mod revisions;
