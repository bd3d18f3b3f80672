//! Revision 008 (phase 7): data connections and product events.
//!
//! - `data_connections`: an external PostgreSQL or MySQL database a user imports from. The
//!   password is stored only encrypted (AES-256-GCM, the row id as associated data, the
//!   key id as prefix: `domain::Keyring`); `password_encrypted` is NULL when there is none.
//! - `datasets.connection_id` (a column since revision 001, "future") now refers to
//!   `data_connections` with ON DELETE SET NULL. PostgreSQL adds the foreign key; SQLite
//!   cannot add one to an existing table without rebuilding it (which would rewrite the
//!   schema document's table), so two triggers do the same work: one clears the column
//!   when a connection is deleted, two refuse a new value that names no connection.
//!   Values written before this revision (the Python era wrote ids of connections that
//!   never had a table) are kept as they are: the PostgreSQL key is added `NOT VALID`,
//!   which checks every new or changed value but not the old rows, and the SQLite
//!   triggers fire only on inserts and on changes of the column.
//! - `analytics_events`: product events. On PostgreSQL the table is partitioned by month
//!   of `occurred_at` (the primary key is therefore `(id, occurred_at)`); the monthly
//!   partitions are created ahead of time by the server, and a default partition catches
//!   anything outside them so that no event is ever refused for want of a partition.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE data_connections (
        id UUID NOT NULL,
        user_id UUID NOT NULL,
        name VARCHAR(255) NOT NULL,
        kind VARCHAR(20) NOT NULL,
        host VARCHAR(255) NOT NULL,
        port INTEGER NOT NULL,
        database_name VARCHAR(255) NOT NULL,
        username VARCHAR(255) NOT NULL,
        password_encrypted TEXT,
        sslmode VARCHAR(20),
        status VARCHAR(10) DEFAULT 'untested' NOT NULL,
        last_tested_at TIMESTAMP WITHOUT TIME ZONE,
        last_error TEXT,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (kind IN ('postgresql', 'mysql')),
        CHECK (port BETWEEN 1 AND 65535),
        CHECK (status IN ('untested', 'ok', 'failed'))
    )",
    "CREATE INDEX idx_data_connections_user_id ON data_connections (user_id)",
    "ALTER TABLE datasets ADD CONSTRAINT datasets_connection_id_fkey \
     FOREIGN KEY (connection_id) REFERENCES data_connections (id) ON DELETE SET NULL \
     NOT VALID",
    "CREATE TABLE analytics_events (
        id UUID NOT NULL,
        event VARCHAR(100) NOT NULL,
        user_id UUID,
        anonymous_id VARCHAR(100),
        properties JSON,
        occurred_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id, occurred_at),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL
    ) PARTITION BY RANGE (occurred_at)",
    "CREATE TABLE analytics_events_default PARTITION OF analytics_events DEFAULT",
    "CREATE INDEX idx_analytics_events_occurred_at_event ON analytics_events (occurred_at, event)",
    "CREATE INDEX idx_analytics_events_user_id ON analytics_events (user_id)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE data_connections (
        id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        name VARCHAR(255) NOT NULL,
        kind VARCHAR(20) NOT NULL,
        host VARCHAR(255) NOT NULL,
        port INTEGER NOT NULL,
        database_name VARCHAR(255) NOT NULL,
        username VARCHAR(255) NOT NULL,
        password_encrypted TEXT,
        sslmode VARCHAR(20),
        status VARCHAR(10) DEFAULT 'untested' NOT NULL,
        last_tested_at DATETIME,
        last_error TEXT,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (kind IN ('postgresql', 'mysql')),
        CHECK (port BETWEEN 1 AND 65535),
        CHECK (status IN ('untested', 'ok', 'failed'))
    )",
    "CREATE INDEX idx_data_connections_user_id ON data_connections (user_id)",
    "CREATE TRIGGER datasets_connection_id_set_null AFTER DELETE ON data_connections
     BEGIN
         UPDATE datasets SET connection_id = NULL WHERE connection_id = OLD.id;
     END",
    "CREATE TRIGGER datasets_connection_id_insert BEFORE INSERT ON datasets
     WHEN NEW.connection_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM data_connections WHERE id = NEW.connection_id)
     BEGIN
         SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed');
     END",
    "CREATE TRIGGER datasets_connection_id_update BEFORE UPDATE OF connection_id ON datasets
     WHEN NEW.connection_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM data_connections WHERE id = NEW.connection_id)
     BEGIN
         SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed');
     END",
    "CREATE TABLE analytics_events (
        id VARCHAR(36) NOT NULL,
        event VARCHAR(100) NOT NULL,
        user_id VARCHAR(36),
        anonymous_id VARCHAR(100),
        properties TEXT,
        occurred_at DATETIME NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL
    )",
    "CREATE INDEX idx_analytics_events_occurred_at_event ON analytics_events (occurred_at, event)",
    "CREATE INDEX idx_analytics_events_user_id ON analytics_events (user_id)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TABLE analytics_events",
    "ALTER TABLE datasets DROP CONSTRAINT datasets_connection_id_fkey",
    "DROP TABLE data_connections",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TABLE analytics_events",
    "DROP TRIGGER datasets_connection_id_update",
    "DROP TRIGGER datasets_connection_id_insert",
    "DROP TRIGGER datasets_connection_id_set_null",
    "DROP TABLE data_connections",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_UP, SQLITE_UP)?).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_DOWN, SQLITE_DOWN)?).await
    }
}
