//! Revision 001 (Alembic `001`): users, usage_tracking, datasets, analyses.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE users (
        id UUID NOT NULL,
        email VARCHAR(255) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        full_name VARCHAR(255),
        tier VARCHAR(50) DEFAULT 'free' NOT NULL,
        stripe_customer_id VARCHAR(255),
        stripe_subscription_id VARCHAR(255),
        is_admin BOOLEAN DEFAULT false NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (email)
    )",
    "CREATE INDEX idx_users_email ON users (email)",
    "CREATE INDEX idx_users_tier ON users (tier)",
    "CREATE INDEX idx_users_stripe_customer_id ON users (stripe_customer_id)",
    "CREATE TABLE usage_tracking (
        id UUID NOT NULL,
        user_id UUID NOT NULL,
        month_year VARCHAR(7) NOT NULL,
        datasets_count INTEGER DEFAULT '0' NOT NULL,
        ai_messages_count INTEGER DEFAULT '0' NOT NULL,
        reports_count INTEGER DEFAULT '0' NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (user_id, month_year),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_usage_tracking_user_id ON usage_tracking (user_id)",
    "CREATE INDEX idx_usage_tracking_user_month ON usage_tracking (user_id, month_year)",
    "CREATE INDEX idx_usage_tracking_month_year ON usage_tracking (month_year)",
    "CREATE TABLE datasets (
        id UUID NOT NULL,
        user_id UUID NOT NULL,
        name VARCHAR(255) NOT NULL,
        file_path VARCHAR(500),
        connection_id UUID,
        row_count INTEGER,
        column_count INTEGER,
        size_bytes BIGINT,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_datasets_user_id ON datasets (user_id)",
    "CREATE INDEX idx_datasets_connection_id ON datasets (connection_id)",
    "CREATE INDEX idx_datasets_created_at ON datasets (created_at)",
    "CREATE TABLE analyses (
        id UUID NOT NULL,
        user_id UUID NOT NULL,
        name VARCHAR(255) NOT NULL,
        dataset_id UUID,
        config JSON,
        results JSON,
        status VARCHAR(50) DEFAULT 'draft' NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE SET NULL
    )",
    "CREATE INDEX idx_analyses_user_id ON analyses (user_id)",
    "CREATE INDEX idx_analyses_dataset_id ON analyses (dataset_id)",
    "CREATE INDEX idx_analyses_status ON analyses (status)",
    "CREATE INDEX idx_analyses_created_at ON analyses (created_at)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE users (
        id VARCHAR(36) NOT NULL,
        email VARCHAR(255) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        full_name VARCHAR(255),
        tier VARCHAR(50) DEFAULT 'free' NOT NULL,
        stripe_customer_id VARCHAR(255),
        stripe_subscription_id VARCHAR(255),
        is_admin BOOLEAN DEFAULT 0 NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (email)
    )",
    "CREATE INDEX idx_users_email ON users (email)",
    "CREATE INDEX idx_users_tier ON users (tier)",
    "CREATE INDEX idx_users_stripe_customer_id ON users (stripe_customer_id)",
    "CREATE TABLE usage_tracking (
        id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        month_year VARCHAR(7) NOT NULL,
        datasets_count INTEGER DEFAULT '0' NOT NULL,
        ai_messages_count INTEGER DEFAULT '0' NOT NULL,
        reports_count INTEGER DEFAULT '0' NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (user_id, month_year),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_usage_tracking_user_id ON usage_tracking (user_id)",
    "CREATE INDEX idx_usage_tracking_user_month ON usage_tracking (user_id, month_year)",
    "CREATE INDEX idx_usage_tracking_month_year ON usage_tracking (month_year)",
    "CREATE TABLE datasets (
        id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        name VARCHAR(255) NOT NULL,
        file_path VARCHAR(500),
        connection_id VARCHAR(36),
        row_count INTEGER,
        column_count INTEGER,
        size_bytes BIGINT,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
    )",
    "CREATE INDEX idx_datasets_user_id ON datasets (user_id)",
    "CREATE INDEX idx_datasets_connection_id ON datasets (connection_id)",
    "CREATE INDEX idx_datasets_created_at ON datasets (created_at)",
    "CREATE TABLE analyses (
        id VARCHAR(36) NOT NULL,
        user_id VARCHAR(36) NOT NULL,
        name VARCHAR(255) NOT NULL,
        dataset_id VARCHAR(36),
        config TEXT,
        results TEXT,
        status VARCHAR(50) DEFAULT 'draft' NOT NULL,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE SET NULL
    )",
    "CREATE INDEX idx_analyses_user_id ON analyses (user_id)",
    "CREATE INDEX idx_analyses_dataset_id ON analyses (dataset_id)",
    "CREATE INDEX idx_analyses_status ON analyses (status)",
    "CREATE INDEX idx_analyses_created_at ON analyses (created_at)",
];

/// Children first, so that no foreign key is left pointing at a dropped table.
const DOWN: &[&str] = &[
    "DROP TABLE analyses",
    "DROP TABLE datasets",
    "DROP TABLE usage_tracking",
    "DROP TABLE users",
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
