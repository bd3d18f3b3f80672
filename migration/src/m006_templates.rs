//! Revision 006 (phase 5): templates, their purchases and their ratings.
//!
//! - `templates`: a reusable copy of an analysis (its `config`, its charts, and the dataset
//!   columns they need as `inputs`), drafted by its author and then published to the
//!   gallery, free or at a price. The gallery's stats are kept on the row
//!   (`rating_count`, `rating_sum`, `purchase_count`), each changed only while the row is
//!   locked, so they stay exact under concurrent ratings and purchases.
//!   `source_analysis_id` outlives its analysis as `NULL`.
//! - `template_purchases`: one row per buyer and template (free at once, paid when Stripe's
//!   `checkout.session.completed` arrives); a Checkout Session records one purchase at most.
//! - `template_ratings`: one rating (1 to 5, with an optional review) per user and template.
//!
//! None of these tables refers to those of revisions 005 or 007, so the three can land in
//! any order.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE templates (
        id UUID NOT NULL,
        author_id UUID NOT NULL,
        source_analysis_id UUID,
        name VARCHAR(255) NOT NULL,
        description TEXT,
        config JSON,
        charts JSON NOT NULL,
        inputs JSON NOT NULL,
        price_cents INTEGER NOT NULL,
        currency VARCHAR(3) DEFAULT 'usd' NOT NULL,
        status VARCHAR(10) DEFAULT 'draft' NOT NULL,
        published_at TIMESTAMP WITHOUT TIME ZONE,
        rating_count INTEGER DEFAULT '0' NOT NULL,
        rating_sum INTEGER DEFAULT '0' NOT NULL,
        purchase_count INTEGER DEFAULT '0' NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(author_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(source_analysis_id) REFERENCES analyses (id) ON DELETE SET NULL,
        CHECK (price_cents >= 0),
        CHECK (status IN ('draft', 'published')),
        CHECK (rating_count >= 0 AND rating_sum >= 0 AND purchase_count >= 0)
    )",
    "CREATE INDEX idx_templates_author_id ON templates (author_id)",
    "CREATE INDEX idx_templates_source_analysis_id ON templates (source_analysis_id)",
    "CREATE INDEX idx_templates_status_published_at ON templates (status, published_at)",
    "CREATE INDEX idx_templates_status_purchase_count ON templates (status, purchase_count)",
    "CREATE TABLE template_purchases (
        id UUID NOT NULL,
        template_id UUID NOT NULL,
        buyer_id UUID NOT NULL,
        price_cents INTEGER NOT NULL,
        currency VARCHAR(3) NOT NULL,
        stripe_session_id VARCHAR(255),
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (template_id, buyer_id),
        UNIQUE (stripe_session_id),
        FOREIGN KEY(template_id) REFERENCES templates (id) ON DELETE CASCADE,
        FOREIGN KEY(buyer_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (price_cents >= 0)
    )",
    "CREATE INDEX idx_template_purchases_buyer_id ON template_purchases (buyer_id)",
    "CREATE TABLE template_ratings (
        id UUID NOT NULL,
        template_id UUID NOT NULL,
        user_id UUID NOT NULL,
        rating INTEGER NOT NULL,
        review TEXT,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (template_id, user_id),
        FOREIGN KEY(template_id) REFERENCES templates (id) ON DELETE CASCADE,
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (rating BETWEEN 1 AND 5)
    )",
    "CREATE INDEX idx_template_ratings_user_id ON template_ratings (user_id)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE templates (
        id VARCHAR(36) NOT NULL,
        author_id VARCHAR(36) NOT NULL,
        source_analysis_id VARCHAR(36),
        name VARCHAR(255) NOT NULL,
        description TEXT,
        config TEXT,
        charts TEXT NOT NULL,
        inputs TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        currency VARCHAR(3) DEFAULT 'usd' NOT NULL,
        status VARCHAR(10) DEFAULT 'draft' NOT NULL,
        published_at DATETIME,
        rating_count INTEGER DEFAULT '0' NOT NULL,
        rating_sum INTEGER DEFAULT '0' NOT NULL,
        purchase_count INTEGER DEFAULT '0' NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(author_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(source_analysis_id) REFERENCES analyses (id) ON DELETE SET NULL,
        CHECK (price_cents >= 0),
        CHECK (status IN ('draft', 'published')),
        CHECK (rating_count >= 0 AND rating_sum >= 0 AND purchase_count >= 0)
    )",
    "CREATE INDEX idx_templates_author_id ON templates (author_id)",
    "CREATE INDEX idx_templates_source_analysis_id ON templates (source_analysis_id)",
    "CREATE INDEX idx_templates_status_published_at ON templates (status, published_at)",
    "CREATE INDEX idx_templates_status_purchase_count ON templates (status, purchase_count)",
    "CREATE TABLE template_purchases (
        id VARCHAR(36) NOT NULL,
        template_id VARCHAR(36) NOT NULL,
        buyer_id VARCHAR(36) NOT NULL,
        price_cents INTEGER NOT NULL,
        currency VARCHAR(3) NOT NULL,
        stripe_session_id VARCHAR(255),
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (template_id, buyer_id),
        UNIQUE (stripe_session_id),
        FOREIGN KEY(template_id) REFERENCES templates (id) ON DELETE CASCADE,
        FOREIGN KEY(buyer_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (price_cents >= 0)
    )",
    "CREATE INDEX idx_template_purchases_buyer_id ON template_purchases (buyer_id)",
    "CREATE TABLE template_ratings (
        id VARCHAR(36) NOT NULL,
        template_id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        rating INTEGER NOT NULL,
        review TEXT,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (template_id, user_id),
        FOREIGN KEY(template_id) REFERENCES templates (id) ON DELETE CASCADE,
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (rating BETWEEN 1 AND 5)
    )",
    "CREATE INDEX idx_template_ratings_user_id ON template_ratings (user_id)",
];

const DOWN: &[&str] = &[
    "DROP TABLE template_ratings",
    "DROP TABLE template_purchases",
    "DROP TABLE templates",
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
