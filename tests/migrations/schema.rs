//! The migrated catalog, read back from the database itself, against a table of
//! expectations transcribed from `DATABASE_SCHEMA.md` (plus revisions 003, 004, 005, 006, 007 and 009). Checked on a
//! fresh database and on one adopted from the Python era: both must be the same schema.
use std::collections::BTreeSet;

use iops_tests::{Backend, TestDb, on_both};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uuid,
    Str(u32),
    Int,
    BigInt,
    Bool,
    Json,
    /// `TEXT` (PostgreSQL); on SQLite, where JSON is TEXT as well, it reads as `Json`.
    Text,
    Timestamp,
    Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerDefault {
    None,
    Text(&'static str),
    Bool(bool),
    Zero,
    Now,
}

use Kind::*;
use ServerDefault as D;

struct Table {
    name: &'static str,
    /// (column, type, nullable, server default)
    columns: &'static [(&'static str, Kind, bool, ServerDefault)],
    /// Column lists of UNIQUE constraints (the primary key excluded).
    unique: &'static [&'static str],
    /// (column, referenced table.column, ON DELETE rule)
    foreign_keys: &'static [(&'static str, &'static str, &'static str)],
    /// (index name, columns, unique)
    indexes: &'static [(&'static str, &'static str, bool)],
}

const TIMESTAMPS: [(&str, Kind, bool, ServerDefault); 2] = [
    ("created_at", Timestamp, false, D::Now),
    ("updated_at", Timestamp, false, D::Now),
];

const SCHEMA: &[Table] = &[
    Table {
        name: "data_connections",
        columns: &[
            ("id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("name", Str(255), false, D::None),
            ("kind", Str(20), false, D::None),
            ("host", Str(255), false, D::None),
            ("port", Int, false, D::None),
            ("database_name", Str(255), false, D::None),
            ("username", Str(255), false, D::None),
            ("password_encrypted", Text, true, D::None),
            ("sslmode", Str(20), true, D::None),
            ("status", Str(10), false, D::Text("untested")),
            ("last_tested_at", Timestamp, true, D::None),
            ("last_error", Text, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[("idx_data_connections_user_id", "user_id", false)],
    },
    Table {
        name: "billing_events",
        columns: &[
            ("id", Str(255), false, D::None),
            ("event_type", Str(100), false, D::None),
            ("outcome", Str(10), false, D::None),
            ("user_id", Uuid, true, D::None),
            ("stripe_created", Timestamp, false, D::None),
            ("payload", Json, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "SET NULL")],
        indexes: &[
            ("idx_billing_events_created_at", "created_at", false),
            ("idx_billing_events_user_id", "user_id", false),
        ],
    },
    Table {
        name: "billing_accounts",
        columns: &[
            ("user_id", Uuid, false, D::None),
            ("subscription_status", Str(30), true, D::None),
            ("price_id", Str(255), true, D::None),
            ("current_period_end", Timestamp, true, D::None),
            ("last_event_at", Timestamp, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[],
    },
    Table {
        name: "user_limits",
        columns: &[
            ("user_id", Uuid, false, D::None),
            ("datasets", Int, true, D::None),
            ("ai_messages", Int, true, D::None),
            ("reports", Int, true, D::None),
            ("collaborators", Int, true, D::None),
            ("data_connections", Int, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[],
    },
    Table {
        name: "users",
        columns: &[
            ("id", Uuid, false, D::None),
            ("email", Str(255), false, D::None),
            ("password_hash", Str(255), false, D::None),
            ("full_name", Str(255), true, D::None),
            ("tier", Str(50), false, D::Text("free")),
            ("stripe_customer_id", Str(255), true, D::None),
            ("stripe_subscription_id", Str(255), true, D::None),
            ("is_admin", Bool, false, D::Bool(false)),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["email"],
        foreign_keys: &[],
        indexes: &[
            ("idx_users_email", "email", false),
            ("idx_users_tier", "tier", false),
            ("idx_users_stripe_customer_id", "stripe_customer_id", false),
        ],
    },
    Table {
        name: "usage_tracking",
        columns: &[
            ("id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("month_year", Str(7), false, D::None),
            ("datasets_count", Int, false, D::Zero),
            ("ai_messages_count", Int, false, D::Zero),
            ("reports_count", Int, false, D::Zero),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["user_id,month_year"],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[
            ("idx_usage_tracking_user_id", "user_id", false),
            ("idx_usage_tracking_user_month", "user_id,month_year", false),
            ("idx_usage_tracking_month_year", "month_year", false),
        ],
    },
    Table {
        name: "datasets",
        columns: &[
            ("id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("name", Str(255), false, D::None),
            ("file_path", Str(500), true, D::None),
            ("connection_id", Uuid, true, D::None),
            ("row_count", Int, true, D::None),
            ("column_count", Int, true, D::None),
            ("size_bytes", BigInt, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[
            ("idx_datasets_user_id", "user_id", false),
            ("idx_datasets_connection_id", "connection_id", false),
            ("idx_datasets_created_at", "created_at", false),
        ],
    },
    Table {
        name: "analyses",
        columns: &[
            ("id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("name", Str(255), false, D::None),
            ("dataset_id", Uuid, true, D::None),
            ("config", Json, true, D::None),
            ("results", Json, true, D::None),
            ("status", Str(50), false, D::Text("draft")),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[
            ("dataset_id", "datasets.id", "SET NULL"),
            ("user_id", "users.id", "CASCADE"),
        ],
        indexes: &[
            ("idx_analyses_user_id", "user_id", false),
            ("idx_analyses_dataset_id", "dataset_id", false),
            ("idx_analyses_status", "status", false),
            ("idx_analyses_created_at", "created_at", false),
        ],
    },
    Table {
        name: "reports",
        columns: &[
            ("id", Uuid, false, D::None),
            ("analysis_id", Uuid, false, D::None),
            ("short_code", Str(20), false, D::None),
            ("is_public", Bool, false, D::Bool(true)),
            ("password_hash", Str(255), true, D::None),
            ("expires_at", Timestamp, true, D::None),
            ("view_count", Int, false, D::Zero),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["short_code"],
        foreign_keys: &[("analysis_id", "analyses.id", "CASCADE")],
        indexes: &[
            ("idx_reports_short_code", "short_code", true),
            ("idx_reports_analysis_id", "analysis_id", false),
            ("idx_reports_expires_at", "expires_at", false),
        ],
    },
    Table {
        name: "access_tokens",
        columns: &[
            ("id", Uuid, false, D::None),
            ("token_hash", Str(64), false, D::None),
            ("user_id", Uuid, true, D::None),
            ("report_id", Uuid, true, D::None),
            ("expires_at", Timestamp, false, D::None),
            ("revoked_at", Timestamp, true, D::None),
            ("created_at", Timestamp, false, D::Now),
        ],
        unique: &["token_hash"],
        foreign_keys: &[
            ("report_id", "reports.id", "CASCADE"),
            ("user_id", "users.id", "CASCADE"),
        ],
        indexes: &[
            ("idx_access_tokens_user_id", "user_id", false),
            ("idx_access_tokens_report_id", "report_id", false),
            ("idx_access_tokens_expires_at", "expires_at", false),
        ],
    },
    Table {
        name: "attempt_limits",
        columns: &[
            ("scope", Str(16), false, D::None),
            ("subject", Str(255), false, D::None),
            ("client", Str(64), false, D::None),
            ("window_start", Timestamp, false, D::None),
            ("failures", Int, false, D::Zero),
        ],
        unique: &[],
        foreign_keys: &[],
        indexes: &[("idx_attempt_limits_window_start", "window_start", false)],
    },
    Table {
        name: "charts",
        columns: &[
            ("id", Uuid, false, D::None),
            ("analysis_id", Uuid, false, D::None),
            ("name", Str(255), false, D::None),
            ("chart_type", Str(20), false, D::None),
            ("config", Json, false, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("analysis_id", "analyses.id", "CASCADE")],
        indexes: &[("idx_charts_analysis_id", "analysis_id", false)],
    },
    Table {
        name: "embed_codes",
        columns: &[
            ("code", Str(20), false, D::None),
            ("created_at", Timestamp, false, D::Now),
        ],
        unique: &[],
        foreign_keys: &[],
        indexes: &[],
    },
    Table {
        name: "chart_embeds",
        columns: &[
            ("id", Uuid, false, D::None),
            ("chart_id", Uuid, false, D::None),
            ("code", Str(20), false, D::None),
            ("mode", Str(10), false, D::None),
            ("allowed_origins", Json, false, D::None),
            ("snapshot", Json, false, D::None),
            ("published_at", Timestamp, false, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["chart_id"],
        foreign_keys: &[("chart_id", "charts.id", "CASCADE")],
        indexes: &[("idx_chart_embeds_code", "code", true)],
    },
    Table {
        name: "embed_keys",
        columns: &[
            ("id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("kid", Str(32), false, D::None),
            ("secret_encrypted", Str(255), false, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["kid"],
        foreign_keys: &[("user_id", "users.id", "CASCADE")],
        indexes: &[("idx_embed_keys_user_id", "user_id", false)],
    },
    Table {
        name: "embed_analytics",
        columns: &[
            ("id", Uuid, false, D::None),
            ("chart_id", Uuid, false, D::None),
            ("day", Date, false, D::None),
            ("referrer_host", Str(255), false, D::Text("")),
            ("views", Int, false, D::Zero),
            ("unique_visitors", Int, false, D::Zero),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["chart_id,day,referrer_host"],
        foreign_keys: &[("chart_id", "charts.id", "CASCADE")],
        indexes: &[("idx_embed_analytics_chart_id_day", "chart_id,day", false)],
    },
    Table {
        name: "embed_visitors",
        columns: &[
            ("chart_id", Uuid, false, D::None),
            ("day", Date, false, D::None),
            ("referrer_host", Str(255), false, D::None),
            ("visitor_hash", Str(64), false, D::None),
        ],
        unique: &[],
        foreign_keys: &[("chart_id", "charts.id", "CASCADE")],
        indexes: &[("idx_embed_visitors_day", "day", false)],
    },
    Table {
        name: "embed_salts",
        columns: &[
            ("day", Date, false, D::None),
            ("salt", Str(64), false, D::None),
            ("created_at", Timestamp, false, D::Now),
        ],
        unique: &[],
        foreign_keys: &[],
        indexes: &[],
    },
    Table {
        name: "templates",
        columns: &[
            ("id", Uuid, false, D::None),
            ("author_id", Uuid, false, D::None),
            ("source_analysis_id", Uuid, true, D::None),
            ("name", Str(255), false, D::None),
            ("description", Text, true, D::None),
            ("config", Json, true, D::None),
            ("charts", Json, false, D::None),
            ("inputs", Json, false, D::None),
            ("price_cents", Int, false, D::None),
            ("currency", Str(3), false, D::Text("usd")),
            ("status", Str(10), false, D::Text("draft")),
            ("published_at", Timestamp, true, D::None),
            ("rating_count", Int, false, D::Zero),
            ("rating_sum", Int, false, D::Zero),
            ("purchase_count", Int, false, D::Zero),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[
            ("author_id", "users.id", "CASCADE"),
            ("source_analysis_id", "analyses.id", "SET NULL"),
        ],
        indexes: &[
            ("idx_templates_author_id", "author_id", false),
            (
                "idx_templates_source_analysis_id",
                "source_analysis_id",
                false,
            ),
            (
                "idx_templates_status_published_at",
                "status,published_at",
                false,
            ),
            (
                "idx_templates_status_purchase_count",
                "status,purchase_count",
                false,
            ),
        ],
    },
    Table {
        name: "template_purchases",
        columns: &[
            ("id", Uuid, false, D::None),
            ("template_id", Uuid, false, D::None),
            ("buyer_id", Uuid, false, D::None),
            ("price_cents", Int, false, D::None),
            ("currency", Str(3), false, D::None),
            ("stripe_session_id", Str(255), true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["template_id,buyer_id", "stripe_session_id"],
        foreign_keys: &[
            ("template_id", "templates.id", "CASCADE"),
            ("buyer_id", "users.id", "CASCADE"),
        ],
        indexes: &[("idx_template_purchases_buyer_id", "buyer_id", false)],
    },
    Table {
        name: "template_ratings",
        columns: &[
            ("id", Uuid, false, D::None),
            ("template_id", Uuid, false, D::None),
            ("user_id", Uuid, false, D::None),
            ("rating", Int, false, D::None),
            ("review", Text, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["template_id,user_id"],
        foreign_keys: &[
            ("template_id", "templates.id", "CASCADE"),
            ("user_id", "users.id", "CASCADE"),
        ],
        indexes: &[("idx_template_ratings_user_id", "user_id", false)],
    },
    Table {
        name: "collaborations",
        columns: &[
            ("id", Uuid, false, D::None),
            ("analysis_id", Uuid, false, D::None),
            ("owner_id", Uuid, false, D::None),
            ("email", Str(255), false, D::None),
            ("role", Str(10), false, D::None),
            ("status", Str(10), false, D::Text("pending")),
            ("token_hash", Str(64), false, D::None),
            ("invitee_id", Uuid, true, D::None),
            ("expires_at", Timestamp, false, D::None),
            ("responded_at", Timestamp, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &["token_hash"],
        foreign_keys: &[
            ("analysis_id", "analyses.id", "CASCADE"),
            ("owner_id", "users.id", "CASCADE"),
            ("invitee_id", "users.id", "CASCADE"),
        ],
        indexes: &[
            (
                "idx_collaborations_analysis_id_email",
                "analysis_id,email",
                true,
            ),
            ("idx_collaborations_owner_id_email", "owner_id,email", false),
            ("idx_collaborations_invitee_id", "invitee_id", false),
        ],
    },
    Table {
        name: "comments",
        columns: &[
            ("id", Uuid, false, D::None),
            ("chart_id", Uuid, false, D::None),
            ("parent_id", Uuid, true, D::None),
            ("author_id", Uuid, true, D::None),
            ("body", Text, false, D::None),
            ("resolved", Bool, false, D::Bool(false)),
            ("resolved_at", Timestamp, true, D::None),
            ("resolved_by", Uuid, true, D::None),
            ("deleted", Bool, false, D::Bool(false)),
            ("edited_at", Timestamp, true, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[
            ("chart_id", "charts.id", "CASCADE"),
            ("parent_id", "comments.id", "CASCADE"),
            ("author_id", "users.id", "SET NULL"),
            ("resolved_by", "users.id", "SET NULL"),
        ],
        indexes: &[
            (
                "idx_comments_chart_id_created_at",
                "chart_id,created_at",
                false,
            ),
            ("idx_comments_parent_id", "parent_id", false),
            ("idx_comments_author_id", "author_id", false),
        ],
    },
    Table {
        name: "activity_log",
        columns: &[
            ("id", Uuid, false, D::None),
            ("owner_id", Uuid, false, D::None),
            ("analysis_id", Uuid, true, D::None),
            ("actor_id", Uuid, true, D::None),
            ("actor_type", Str(20), false, D::Text("user")),
            ("verb", Str(64), false, D::None),
            ("object_type", Str(32), false, D::None),
            ("object_id", Uuid, false, D::None),
            ("metadata", Json, false, D::None),
            ("request_id", Str(128), true, D::None),
            ("created_at", Timestamp, false, D::Now),
        ],
        unique: &[],
        foreign_keys: &[
            ("owner_id", "users.id", "CASCADE"),
            ("actor_id", "users.id", "SET NULL"),
        ],
        indexes: &[
            (
                "idx_activity_log_owner_id_created_at",
                "owner_id,created_at",
                false,
            ),
            (
                "idx_activity_log_analysis_id_created_at",
                "analysis_id,created_at",
                false,
            ),
            (
                "idx_activity_log_object_type_object_id",
                "object_type,object_id",
                false,
            ),
        ],
    },
    // Revision 008. On PostgreSQL the table is partitioned by month of `occurred_at`, so
    // its primary key is (id, occurred_at); primary keys are not compared here.
    Table {
        name: "analytics_events",
        columns: &[
            ("id", Uuid, false, D::None),
            ("event", Str(100), false, D::None),
            ("user_id", Uuid, true, D::None),
            ("anonymous_id", Str(100), true, D::None),
            ("properties", Json, true, D::None),
            ("occurred_at", Timestamp, false, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("user_id", "users.id", "SET NULL")],
        indexes: &[
            (
                "idx_analytics_events_occurred_at_event",
                "occurred_at,event",
                false,
            ),
            ("idx_analytics_events_user_id", "user_id", false),
        ],
    },
    Table {
        name: "dataset_columns",
        columns: &[
            ("dataset_id", Uuid, false, D::None),
            ("columns", Json, false, D::None),
            TIMESTAMPS[0],
            TIMESTAMPS[1],
        ],
        unique: &[],
        foreign_keys: &[("dataset_id", "datasets.id", "CASCADE")],
        indexes: &[],
    },
];

/// What the catalog says about one column, normalized across the two backends.
type ColumnFacts = (String, Kind, bool, ServerDefault);

async fn rows(db: &DatabaseConnection, sql: &str, table: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [Value::from(table)],
    ))
    .await
    .unwrap_or_else(|e| panic!("catalog query on {table}: {e}"))
}

fn get<T: sea_orm::TryGetable>(row: &sea_orm::QueryResult, i: usize) -> T {
    row.try_get_by_index(i).expect("catalog value")
}

fn sqlite_kind(declared: &str) -> Kind {
    match declared {
        "VARCHAR(36)" => Uuid,
        "INTEGER" => Int,
        "BIGINT" => BigInt,
        "BOOLEAN" => Bool,
        "TEXT" => Json,
        "DATETIME" => Timestamp,
        "DATE" => Date,
        other => {
            let n = other
                .strip_prefix("VARCHAR(")
                .and_then(|s| s.strip_suffix(')'))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected SQLite type {other}"));
            Str(n)
        }
    }
}

fn sqlite_default(raw: Option<String>, kind: Kind) -> ServerDefault {
    match (raw.as_deref(), kind) {
        (None, _) => D::None,
        (Some("CURRENT_TIMESTAMP"), _) => D::Now,
        (Some("0"), Bool) => D::Bool(false),
        (Some("1"), Bool) => D::Bool(true),
        (Some("'0'" | "0"), Int) => D::Zero,
        (Some(text), _) => D::Text(Box::leak(
            text.trim_matches('\'').to_owned().into_boxed_str(),
        )),
    }
}

fn postgres_kind(data_type: &str, length: Option<i32>) -> Kind {
    match data_type {
        "uuid" => Uuid,
        "integer" => Int,
        "bigint" => BigInt,
        "boolean" => Bool,
        "json" => Json,
        "text" => Text,
        "timestamp without time zone" => Timestamp,
        "date" => Date,
        "character varying" => Str(length.expect("varchar length") as u32),
        other => panic!("unexpected PostgreSQL type {other}"),
    }
}

fn postgres_default(raw: Option<String>) -> ServerDefault {
    match raw.as_deref() {
        None => D::None,
        Some("now()") => D::Now,
        Some("false") => D::Bool(false),
        Some("true") => D::Bool(true),
        Some("0") => D::Zero,
        Some(text) => {
            let value = text.split("::").next().unwrap_or(text).trim_matches('\'');
            D::Text(Box::leak(value.to_owned().into_boxed_str()))
        }
    }
}

async fn columns(db: &DatabaseConnection, backend: Backend, table: &str) -> Vec<ColumnFacts> {
    match backend {
        Backend::Sqlite => rows(
            db,
            "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info($1) ORDER BY cid",
            table,
        )
        .await
        .iter()
        .map(|r| {
            let kind = sqlite_kind(&get::<String>(r, 1));
            (
                get(r, 0),
                kind,
                get::<i32>(r, 2) == 0,
                sqlite_default(get(r, 3), kind),
            )
        })
        .collect(),
        Backend::Postgres => rows(
            db,
            "SELECT column_name::text, data_type::text, character_maximum_length::int4, \
             is_nullable::text, column_default::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        .await
        .iter()
        .map(|r| {
            (
                get(r, 0),
                postgres_kind(&get::<String>(r, 1), get(r, 2)),
                get::<String>(r, 3) == "YES",
                postgres_default(get(r, 4)),
            )
        })
        .collect(),
    }
}

/// (name, comma-joined columns, unique) of every index, and the column lists of UNIQUE
/// constraints.
async fn indexes(
    db: &DatabaseConnection,
    backend: Backend,
    table: &str,
) -> (BTreeSet<(String, String, bool)>, BTreeSet<String>) {
    let mut named = BTreeSet::new();
    let mut unique = BTreeSet::new();
    match backend {
        Backend::Sqlite => {
            for r in rows(
                db,
                "SELECT name, \"unique\", origin FROM pragma_index_list($1)",
                table,
            )
            .await
            {
                let name: String = get(&r, 0);
                let cols: Vec<String> = rows(
                    db,
                    "SELECT name FROM pragma_index_info($1) ORDER BY seqno",
                    &name,
                )
                .await
                .iter()
                .map(|c| get(c, 0))
                .collect();
                match get::<String>(&r, 2).as_str() {
                    "c" => {
                        named.insert((name, cols.join(","), get::<i32>(&r, 1) == 1));
                    }
                    "u" => {
                        unique.insert(cols.join(","));
                    }
                    _ => {}
                }
            }
        }
        Backend::Postgres => {
            for r in rows(db, "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1", table).await {
                let name: String = get(&r, 0);
                if !name.starts_with("idx_") {
                    continue;
                }
                let def: String = get(&r, 1);
                // `... USING btree (a, b)`, maybe followed by a partial index's `WHERE (...)`.
                let after_using = &def[def.find(" USING ").unwrap()..];
                let open = after_using.find('(').unwrap();
                let close = open + after_using[open..].find(')').unwrap();
                let cols = after_using[open + 1..close].replace(' ', "");
                named.insert((name, cols, def.starts_with("CREATE UNIQUE")));
            }
            for r in rows(
                db,
                "SELECT string_agg(k.column_name::text, ',' ORDER BY k.ordinal_position) \
                 FROM information_schema.table_constraints t \
                 JOIN information_schema.key_column_usage k \
                   ON k.constraint_name = t.constraint_name AND k.constraint_schema = t.constraint_schema \
                 WHERE t.table_schema = current_schema() AND t.table_name = $1 AND t.constraint_type = 'UNIQUE' \
                 GROUP BY t.constraint_name",
                table,
            )
            .await
            {
                unique.insert(get(&r, 0));
            }
        }
    }
    (named, unique)
}

async fn foreign_keys(
    db: &DatabaseConnection,
    backend: Backend,
    table: &str,
) -> BTreeSet<(String, String, String)> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT \"from\", \"table\" || '.' || \"to\", on_delete FROM pragma_foreign_key_list($1)"
        }
        Backend::Postgres => {
            "SELECT k.column_name::text, (c.table_name || '.' || c.column_name)::text, r.delete_rule::text \
             FROM information_schema.referential_constraints r \
             JOIN information_schema.key_column_usage k \
               ON k.constraint_name = r.constraint_name AND k.constraint_schema = r.constraint_schema \
             JOIN information_schema.constraint_column_usage c \
               ON c.constraint_name = r.constraint_name AND c.constraint_schema = r.constraint_schema \
             WHERE k.table_schema = current_schema() AND k.table_name = $1"
        }
    };
    rows(db, sql, table)
        .await
        .iter()
        .map(|r| (get(r, 0), get(r, 1), get(r, 2)))
        .collect()
}

async fn assert_catalog_matches_document(db: &DatabaseConnection, backend: Backend) {
    for table in SCHEMA {
        let expected: Vec<ColumnFacts> = table
            .columns
            .iter()
            .map(|&(n, k, null, d)| {
                let k = if backend == Backend::Sqlite && k == Text {
                    Json
                } else {
                    k
                };
                (n.to_owned(), k, null, d)
            })
            .collect();
        assert_eq!(
            columns(db, backend, table.name).await,
            expected,
            "columns of {}",
            table.name
        );

        let (named, unique) = indexes(db, backend, table.name).await;
        let expected_named: BTreeSet<_> = table
            .indexes
            .iter()
            .map(|&(n, c, u)| (n.to_owned(), c.to_owned(), u))
            .collect();
        assert_eq!(named, expected_named, "indexes of {}", table.name);
        let expected_unique: BTreeSet<_> = table.unique.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            unique, expected_unique,
            "unique constraints of {}",
            table.name
        );

        let mut expected_fks: BTreeSet<_> = table
            .foreign_keys
            .iter()
            .map(|&(c, t, r)| (c.to_owned(), t.to_owned(), r.to_owned()))
            .collect();
        // Revision 008 adds this foreign key on PostgreSQL; SQLite cannot add one to an
        // existing table, and triggers do its work (checked in `revisions.rs`).
        if table.name == "datasets" && backend == Backend::Postgres {
            expected_fks.insert((
                "connection_id".to_owned(),
                "data_connections.id".to_owned(),
                "SET NULL".to_owned(),
            ));
        }
        assert_eq!(
            foreign_keys(db, backend, table.name).await,
            expected_fks,
            "foreign keys of {}",
            table.name
        );
    }
}

async fn fresh_database_matches_document(db: TestDb) {
    let conn = db.migrated().await;
    assert_catalog_matches_document(&conn, db.backend).await;
}
on_both!(
    fresh_database_matches_document,
    fresh_database_matches_document
);

async fn adopted_database_matches_document(db: TestDb) {
    let legacy = TestDb::legacy(db.backend).await;
    let conn = legacy.migrated().await;
    assert_catalog_matches_document(&conn, legacy.backend).await;
}
on_both!(
    adopted_database_matches_document,
    adopted_database_matches_document
);
