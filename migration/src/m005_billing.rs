//! Revision 005 (phase 4, billing, and the complete tier limits):
//!
//! - `billing_events`: every Stripe webhook event accepted, keyed by Stripe's own `evt_...`
//!   id and inserted in the same transaction as its effect, so a redelivered event finds its
//!   id and changes nothing. `outcome` says what it did (`applied`, `ignored`: a type or a
//!   customer this server does not act on, `stale`: older than the last subscription event
//!   applied to that user). `payload` (the event as Stripe sent it, which holds names and
//!   emails) is cleared after 30 days; the row stays, so a late redelivery is still a
//!   duplicate.
//! - `billing_accounts`: one row per user that Stripe told us about: the subscription's
//!   status, price and period end, and `last_event_at`, the `created` time of the last
//!   subscription event applied, against which out-of-order events are refused in the
//!   same statement that applies them.
//! - `user_limits`: an enterprise customer's own limits, one row per user; `NULL` is
//!   unlimited, and no row is unlimited too.
//!
//! Independent of revisions 004, 006, 007 and 009: it refers only to `users`.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE billing_events (
        id VARCHAR(255) NOT NULL,
        event_type VARCHAR(100) NOT NULL,
        outcome VARCHAR(10) NOT NULL,
        user_id UUID,
        stripe_created TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        payload JSON,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL,
        CHECK (outcome IN ('applied', 'ignored', 'stale'))
    )",
    "CREATE INDEX idx_billing_events_created_at ON billing_events (created_at)",
    "CREATE INDEX idx_billing_events_user_id ON billing_events (user_id)",
    "CREATE TABLE billing_accounts (
        user_id UUID NOT NULL,
        subscription_status VARCHAR(30),
        price_id VARCHAR(255),
        current_period_end TIMESTAMP WITHOUT TIME ZONE,
        last_event_at TIMESTAMP WITHOUT TIME ZONE,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (user_id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE TABLE user_limits (
        user_id UUID NOT NULL,
        datasets INTEGER,
        ai_messages INTEGER,
        reports INTEGER,
        collaborators INTEGER,
        data_connections INTEGER,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (user_id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (datasets >= 0 AND ai_messages >= 0 AND reports >= 0 AND collaborators >= 0 \
               AND data_connections >= 0)
    )",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE billing_events (
        id VARCHAR(255) NOT NULL,
        event_type VARCHAR(100) NOT NULL,
        outcome VARCHAR(10) NOT NULL,
        user_id VARCHAR(36),
        stripe_created DATETIME NOT NULL,
        payload TEXT,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL,
        CHECK (outcome IN ('applied', 'ignored', 'stale'))
    )",
    "CREATE INDEX idx_billing_events_created_at ON billing_events (created_at)",
    "CREATE INDEX idx_billing_events_user_id ON billing_events (user_id)",
    "CREATE TABLE billing_accounts (
        user_id VARCHAR(36) NOT NULL,
        subscription_status VARCHAR(30),
        price_id VARCHAR(255),
        current_period_end DATETIME,
        last_event_at DATETIME,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (user_id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE TABLE user_limits (
        user_id VARCHAR(36) NOT NULL,
        datasets INTEGER,
        ai_messages INTEGER,
        reports INTEGER,
        collaborators INTEGER,
        data_connections INTEGER,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (user_id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (datasets >= 0 AND ai_messages >= 0 AND reports >= 0 AND collaborators >= 0 \
               AND data_connections >= 0)
    )",
];

const DOWN: &[&str] = &[
    "DROP TABLE user_limits",
    "DROP TABLE billing_accounts",
    "DROP TABLE billing_events",
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
