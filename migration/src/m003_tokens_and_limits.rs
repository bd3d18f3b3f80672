//! Revision 003 (new in the Rust version): access tokens and failed-attempt windows.
//!
//! Both live in the database, not in process memory, so that several `iops serve`
//! processes on one database accept the same tokens, revoke them at once, and count
//! failed logins and report unlocks together.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE access_tokens (
        id UUID NOT NULL,
        token_hash VARCHAR(64) NOT NULL,
        user_id UUID,
        report_id UUID,
        expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        revoked_at TIMESTAMP WITHOUT TIME ZONE,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (token_hash),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(report_id) REFERENCES reports (id) ON DELETE CASCADE,
        CHECK ((user_id IS NULL) <> (report_id IS NULL))
    )",
    "CREATE INDEX idx_access_tokens_user_id ON access_tokens (user_id)",
    "CREATE INDEX idx_access_tokens_report_id ON access_tokens (report_id)",
    "CREATE INDEX idx_access_tokens_expires_at ON access_tokens (expires_at)",
    "CREATE TABLE attempt_limits (
        scope VARCHAR(16) NOT NULL,
        subject VARCHAR(255) NOT NULL,
        client VARCHAR(64) NOT NULL,
        window_start TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        failures INTEGER DEFAULT '0' NOT NULL,
        PRIMARY KEY (scope, subject, client)
    )",
    "CREATE INDEX idx_attempt_limits_window_start ON attempt_limits (window_start)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE access_tokens (
        id VARCHAR(36) NOT NULL,
        token_hash VARCHAR(64) NOT NULL,
        user_id VARCHAR(36),
        report_id VARCHAR(36),
        expires_at DATETIME NOT NULL,
        revoked_at DATETIME,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (token_hash),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(report_id) REFERENCES reports (id) ON DELETE CASCADE,
        CHECK ((user_id IS NULL) <> (report_id IS NULL))
    )",
    "CREATE INDEX idx_access_tokens_user_id ON access_tokens (user_id)",
    "CREATE INDEX idx_access_tokens_report_id ON access_tokens (report_id)",
    "CREATE INDEX idx_access_tokens_expires_at ON access_tokens (expires_at)",
    "CREATE TABLE attempt_limits (
        scope VARCHAR(16) NOT NULL,
        subject VARCHAR(255) NOT NULL,
        client VARCHAR(64) NOT NULL,
        window_start DATETIME NOT NULL,
        failures INTEGER DEFAULT '0' NOT NULL,
        PRIMARY KEY (scope, subject, client)
    )",
    "CREATE INDEX idx_attempt_limits_window_start ON attempt_limits (window_start)",
];

const DOWN: &[&str] = &["DROP TABLE attempt_limits", "DROP TABLE access_tokens"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_UP, SQLITE_UP)?).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, DOWN, DOWN)?).await
    }
}
