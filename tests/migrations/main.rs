mod fixtures;
mod revisions;
mod schema;
