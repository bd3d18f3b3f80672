//! Revision 004 (phase 3): charts of an analysis, their embeds, the owners' embed keys, and
//! privacy-respecting embed analytics.
//!
//! - `charts`: what to draw from an analysis's results (type and config).
//! - `chart_embeds`: at most one live embed per chart, with the frozen snapshot it shows.
//!   Stopping an embed deletes its row; rotating changes its code.
//! - `embed_codes`: every embed code ever issued, never deleted and with no foreign key, so
//!   that a stopped, rotated or deleted code is never handed out again.
//! - `embed_keys`: per-user HS256 keys for signed embeds; the secret is stored encrypted
//!   (AES-256-GCM), because verifying a signature needs it back.
//! - `embed_analytics`: views and unique visitors per chart, UTC day and referrer host.
//! - `embed_visitors` and `embed_salts`: the day's salted visitor hashes (to count a visitor
//!   once) and the daily random salts; both are deleted after 48 hours, after which no
//!   visitor can be linked to anything.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE charts (
        id UUID NOT NULL,
        analysis_id UUID NOT NULL,
        name VARCHAR(255) NOT NULL,
        chart_type VARCHAR(20) NOT NULL,
        config JSON NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE,
        CHECK (chart_type IN ('bar', 'line', 'area', 'scatter', 'pie', 'table', 'number'))
    )",
    "CREATE INDEX idx_charts_analysis_id ON charts (analysis_id)",
    "CREATE TABLE embed_codes (
        code VARCHAR(20) NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (code)
    )",
    "CREATE TABLE chart_embeds (
        id UUID NOT NULL,
        chart_id UUID NOT NULL,
        code VARCHAR(20) NOT NULL,
        mode VARCHAR(10) NOT NULL,
        allowed_origins JSON NOT NULL,
        snapshot JSON NOT NULL,
        published_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (chart_id),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE,
        CHECK (mode IN ('public', 'signed'))
    )",
    "CREATE UNIQUE INDEX idx_chart_embeds_code ON chart_embeds (code)",
    "CREATE TABLE embed_keys (
        id UUID NOT NULL,
        user_id UUID NOT NULL,
        kid VARCHAR(32) NOT NULL,
        secret_encrypted VARCHAR(255) NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (kid),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_keys_user_id ON embed_keys (user_id)",
    "CREATE TABLE embed_analytics (
        id UUID NOT NULL,
        chart_id UUID NOT NULL,
        day DATE NOT NULL,
        referrer_host VARCHAR(255) DEFAULT '' NOT NULL,
        views INTEGER DEFAULT '0' NOT NULL,
        unique_visitors INTEGER DEFAULT '0' NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (chart_id, day, referrer_host),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_analytics_chart_id_day ON embed_analytics (chart_id, day)",
    "CREATE TABLE embed_visitors (
        chart_id UUID NOT NULL,
        day DATE NOT NULL,
        referrer_host VARCHAR(255) NOT NULL,
        visitor_hash VARCHAR(64) NOT NULL,
        PRIMARY KEY (chart_id, day, referrer_host, visitor_hash),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_visitors_day ON embed_visitors (day)",
    "CREATE TABLE embed_salts (
        day DATE NOT NULL,
        salt VARCHAR(64) NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (day)
    )",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE charts (
        id VARCHAR(36) NOT NULL,
        analysis_id VARCHAR(36) NOT NULL,
        name VARCHAR(255) NOT NULL,
        chart_type VARCHAR(20) NOT NULL,
        config TEXT NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE,
        CHECK (chart_type IN ('bar', 'line', 'area', 'scatter', 'pie', 'table', 'number'))
    )",
    "CREATE INDEX idx_charts_analysis_id ON charts (analysis_id)",
    "CREATE TABLE embed_codes (
        code VARCHAR(20) NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (code)
    )",
    "CREATE TABLE chart_embeds (
        id VARCHAR(36) NOT NULL,
        chart_id VARCHAR(36) NOT NULL,
        code VARCHAR(20) NOT NULL,
        mode VARCHAR(10) NOT NULL,
        allowed_origins TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        published_at DATETIME NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (chart_id),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE,
        CHECK (mode IN ('public', 'signed'))
    )",
    "CREATE UNIQUE INDEX idx_chart_embeds_code ON chart_embeds (code)",
    "CREATE TABLE embed_keys (
        id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        kid VARCHAR(32) NOT NULL,
        secret_encrypted VARCHAR(255) NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (kid),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_keys_user_id ON embed_keys (user_id)",
    "CREATE TABLE embed_analytics (
        id VARCHAR(36) NOT NULL,
        chart_id VARCHAR(36) NOT NULL,
        day DATE NOT NULL,
        referrer_host VARCHAR(255) DEFAULT '' NOT NULL,
        views INTEGER DEFAULT '0' NOT NULL,
        unique_visitors INTEGER DEFAULT '0' NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (chart_id, day, referrer_host),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_analytics_chart_id_day ON embed_analytics (chart_id, day)",
    "CREATE TABLE embed_visitors (
        chart_id VARCHAR(36) NOT NULL,
        day DATE NOT NULL,
        referrer_host VARCHAR(255) NOT NULL,
        visitor_hash VARCHAR(64) NOT NULL,
        PRIMARY KEY (chart_id, day, referrer_host, visitor_hash),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_embed_visitors_day ON embed_visitors (day)",
    "CREATE TABLE embed_salts (
        day DATE NOT NULL,
        salt VARCHAR(64) NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (day)
    )",
];

const DOWN: &[&str] = &[
    "DROP TABLE embed_salts",
    "DROP TABLE embed_visitors",
    "DROP TABLE embed_analytics",
    "DROP TABLE embed_keys",
    "DROP TABLE chart_embeds",
    "DROP TABLE embed_codes",
    "DROP TABLE charts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, POSTGRES_UP, SQLITE_UP)?).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, for_backend(manager, DOWN, DOWN)?).await
    }
}
