//! Revision 009 (analyses that run, ANALYSES.md): a dataset's columns as the query engine
//! reads them.
//!
//! - `dataset_columns`: one row per dataset, its columns (`[{"name", "type"}]`) in file
//!   order, written when the upload is stored (or, for datasets uploaded before this
//!   revision, the first time they are shown). The five tables of the schema document keep
//!   their columns; the file itself is never touched.
//!
//! Independent of revisions 005, 006 and 008: it refers only to `datasets`.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &["CREATE TABLE dataset_columns (
        dataset_id UUID NOT NULL,
        columns JSON NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (dataset_id),
        FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
    )"];

const SQLITE_UP: &[&str] = &["CREATE TABLE dataset_columns (
        dataset_id VARCHAR(36) NOT NULL,
        columns TEXT NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (dataset_id),
        FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
    )"];

const DOWN: &[&str] = &["DROP TABLE dataset_columns"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_UP, SQLITE_UP)?).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, DOWN, DOWN)?).await
    }
}
