//! Revision 007 (phase 6): sharing an analysis with people, comments on its charts, and the
//! activity log.
//!
//! - `collaborations`: one invitation of an email to an analysis as viewer or editor, and
//!   what became of it (`pending` → `accepted` | `declined` | `revoked` | `expired`). The
//!   invitation token is stored as its SHA-256 only. At most one live (pending or accepted)
//!   invitation per analysis and email, enforced by a partial unique index. `owner_id` is the
//!   analysis owner's, so the standing collaborator count is one indexed lookup.
//! - `comments`: comments on a chart, one level of replies; a deleted comment keeps its row
//!   with the body cleared, so replies keep their place.
//! - `activity_log`: who did what, written in the same transaction as the change it records.
//!   Append-only: triggers refuse every `UPDATE` except clearing `actor_id` (what the foreign
//!   key's `ON DELETE SET NULL` does when an actor's account goes); rows leave only with the
//!   account whose feed they are in. `analysis_id` has no foreign key on purpose: an analysis's history
//!   (its deletion included) outlives it.
//!
//! Revisions 005 and 006 (billing, templates) are independent of this one: none of their
//! tables refers to these, so they can land before or after it in either order.
use sea_orm_migration::prelude::*;

use crate::{for_backend, run_all};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE collaborations (
        id UUID NOT NULL,
        analysis_id UUID NOT NULL,
        owner_id UUID NOT NULL,
        email VARCHAR(255) NOT NULL,
        role VARCHAR(10) NOT NULL,
        status VARCHAR(10) DEFAULT 'pending' NOT NULL,
        token_hash VARCHAR(64) NOT NULL,
        invitee_id UUID,
        expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        responded_at TIMESTAMP WITHOUT TIME ZONE,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (token_hash),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE,
        FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(invitee_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (role IN ('viewer', 'editor')),
        CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired'))
    )",
    "CREATE UNIQUE INDEX idx_collaborations_analysis_id_email ON collaborations (analysis_id, email) \
     WHERE status IN ('pending', 'accepted')",
    "CREATE INDEX idx_collaborations_owner_id_email ON collaborations (owner_id, email)",
    "CREATE INDEX idx_collaborations_invitee_id ON collaborations (invitee_id)",
    "CREATE TABLE comments (
        id UUID NOT NULL,
        chart_id UUID NOT NULL,
        parent_id UUID,
        author_id UUID,
        body TEXT NOT NULL,
        resolved BOOLEAN DEFAULT false NOT NULL,
        resolved_at TIMESTAMP WITHOUT TIME ZONE,
        resolved_by UUID,
        deleted BOOLEAN DEFAULT false NOT NULL,
        edited_at TIMESTAMP WITHOUT TIME ZONE,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE,
        FOREIGN KEY(parent_id) REFERENCES comments (id) ON DELETE CASCADE,
        FOREIGN KEY(author_id) REFERENCES users (id) ON DELETE SET NULL,
        FOREIGN KEY(resolved_by) REFERENCES users (id) ON DELETE SET NULL
    )",
    "CREATE INDEX idx_comments_chart_id_created_at ON comments (chart_id, created_at)",
    "CREATE INDEX idx_comments_parent_id ON comments (parent_id)",
    "CREATE INDEX idx_comments_author_id ON comments (author_id)",
    "CREATE TABLE activity_log (
        id UUID NOT NULL,
        owner_id UUID NOT NULL,
        analysis_id UUID,
        actor_id UUID,
        actor_type VARCHAR(20) DEFAULT 'user' NOT NULL,
        verb VARCHAR(64) NOT NULL,
        object_type VARCHAR(32) NOT NULL,
        object_id UUID NOT NULL,
        metadata JSON NOT NULL,
        request_id VARCHAR(128),
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT NOW() NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(actor_id) REFERENCES users (id) ON DELETE SET NULL,
        CHECK (actor_type IN ('user', 'operator', 'system'))
    )",
    "CREATE INDEX idx_activity_log_owner_id_created_at ON activity_log (owner_id, created_at)",
    "CREATE INDEX idx_activity_log_analysis_id_created_at ON activity_log (analysis_id, created_at)",
    "CREATE INDEX idx_activity_log_object_type_object_id ON activity_log (object_type, object_id)",
    "CREATE FUNCTION activity_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         RAISE EXCEPTION 'activity_log is append-only';
     END
     $$",
    // Every column but `actor_id` may never change; `actor_id` may only be cleared, which
    // is what `ON DELETE SET NULL` does when an actor's account is deleted.
    "CREATE TRIGGER activity_log_append_only BEFORE UPDATE OF id, owner_id, analysis_id, \
     actor_type, verb, object_type, object_id, metadata, request_id, created_at \
     ON activity_log FOR EACH ROW EXECUTE FUNCTION activity_log_append_only()",
    "CREATE TRIGGER activity_log_actor_cleared_only BEFORE UPDATE OF actor_id ON activity_log \
     FOR EACH ROW WHEN (NEW.actor_id IS NOT NULL) EXECUTE FUNCTION activity_log_append_only()",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE collaborations (
        id VARCHAR(36) NOT NULL,
        analysis_id VARCHAR(36) NOT NULL,
        owner_id VARCHAR(36) NOT NULL,
        email VARCHAR(255) NOT NULL,
        role VARCHAR(10) NOT NULL,
        status VARCHAR(10) DEFAULT 'pending' NOT NULL,
        token_hash VARCHAR(64) NOT NULL,
        invitee_id VARCHAR(36),
        expires_at DATETIME NOT NULL,
        responded_at DATETIME,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (token_hash),
        FOREIGN KEY(analysis_id) REFERENCES analyses (id) ON DELETE CASCADE,
        FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(invitee_id) REFERENCES users (id) ON DELETE CASCADE,
        CHECK (role IN ('viewer', 'editor')),
        CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired'))
    )",
    "CREATE UNIQUE INDEX idx_collaborations_analysis_id_email ON collaborations (analysis_id, email) \
     WHERE status IN ('pending', 'accepted')",
    "CREATE INDEX idx_collaborations_owner_id_email ON collaborations (owner_id, email)",
    "CREATE INDEX idx_collaborations_invitee_id ON collaborations (invitee_id)",
    "CREATE TABLE comments (
        id VARCHAR(36) NOT NULL,
        chart_id VARCHAR(36) NOT NULL,
        parent_id VARCHAR(36),
        author_id VARCHAR(36),
        body TEXT NOT NULL,
        resolved BOOLEAN DEFAULT 0 NOT NULL,
        resolved_at DATETIME,
        resolved_by VARCHAR(36),
        deleted BOOLEAN DEFAULT 0 NOT NULL,
        edited_at DATETIME,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(chart_id) REFERENCES charts (id) ON DELETE CASCADE,
        FOREIGN KEY(parent_id) REFERENCES comments (id) ON DELETE CASCADE,
        FOREIGN KEY(author_id) REFERENCES users (id) ON DELETE SET NULL,
        FOREIGN KEY(resolved_by) REFERENCES users (id) ON DELETE SET NULL
    )",
    "CREATE INDEX idx_comments_chart_id_created_at ON comments (chart_id, created_at)",
    "CREATE INDEX idx_comments_parent_id ON comments (parent_id)",
    "CREATE INDEX idx_comments_author_id ON comments (author_id)",
    "CREATE TABLE activity_log (
        id VARCHAR(36) NOT NULL,
        owner_id VARCHAR(36) NOT NULL,
        analysis_id VARCHAR(36),
        actor_id VARCHAR(36),
        actor_type VARCHAR(20) DEFAULT 'user' NOT NULL,
        verb VARCHAR(64) NOT NULL,
        object_type VARCHAR(32) NOT NULL,
        object_id VARCHAR(36) NOT NULL,
        metadata TEXT NOT NULL,
        request_id VARCHAR(128),
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE,
        FOREIGN KEY(actor_id) REFERENCES users (id) ON DELETE SET NULL,
        CHECK (actor_type IN ('user', 'operator', 'system'))
    )",
    "CREATE INDEX idx_activity_log_owner_id_created_at ON activity_log (owner_id, created_at)",
    "CREATE INDEX idx_activity_log_analysis_id_created_at ON activity_log (analysis_id, created_at)",
    "CREATE INDEX idx_activity_log_object_type_object_id ON activity_log (object_type, object_id)",
    // As on PostgreSQL: only clearing `actor_id` (the foreign key's SET NULL) is allowed.
    "CREATE TRIGGER activity_log_append_only BEFORE UPDATE OF id, owner_id, analysis_id, \
     actor_type, verb, object_type, object_id, metadata, request_id, created_at \
     ON activity_log BEGIN SELECT RAISE(ABORT, 'activity_log is append-only'); END",
    "CREATE TRIGGER activity_log_actor_cleared_only BEFORE UPDATE OF actor_id ON activity_log \
     WHEN NEW.actor_id IS NOT NULL \
     BEGIN SELECT RAISE(ABORT, 'activity_log is append-only'); END",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TABLE activity_log",
    "DROP FUNCTION activity_log_append_only()",
    "DROP TABLE comments",
    "DROP TABLE collaborations",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TABLE activity_log",
    "DROP TABLE comments",
    "DROP TABLE collaborations",
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
