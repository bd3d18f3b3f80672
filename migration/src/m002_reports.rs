//! Revision 002 (Alembic `002`): reports, the public shareable views of an analysis.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE reports (
        id UUID NOT NULL,
        analysis_id UUID NOT NULL,
        short_code VARCHAR(20) NOT NULL,
        is_public BOOLEAN DEFAULT true NOT NULL,
        password_hash VARCHAR(255),
        expires_at TIMESTAMP WITHOUT TIME ZONE,
        view_count INTEGER DEFAULT '0' NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (short_code),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE
    )",
    "CREATE UNIQUE INDEX idx_reports_short_code ON reports (short_code)",
    "CREATE INDEX idx_reports_analysis_id ON reports (analysis_id)",
    "CREATE INDEX idx_reports_expires_at ON reports (expires_at)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE reports (
        id VARCHAR(36) NOT NULL,
        analysis_id VARCHAR(36) NOT NULL,
        short_code VARCHAR(20) NOT NULL,
        is_public BOOLEAN DEFAULT 1 NOT NULL,
        password_hash VARCHAR(255),
        expires_at DATETIME,
        view_count INTEGER DEFAULT '0' NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (short_code),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE
    )",
    "CREATE UNIQUE INDEX idx_reports_short_code ON reports (short_code)",
    "CREATE INDEX idx_reports_analysis_id ON reports (analysis_id)",
    "CREATE INDEX idx_reports_expires_at ON reports (expires_at)",
];

const DOWN: &[&str] = &["DROP TABLE reports"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_UP, SQLITE_UP)?).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, DOWN, DOWN)?).await
    }
}
