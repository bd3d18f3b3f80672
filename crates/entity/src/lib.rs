//! sea-orm entities for the iOps schema: one module per table.
//!
//! # Ids
//! Every id is an [`Id`]: see its module for why it is text on SQLite and `uuid`, cast at
//! the boundary, on PostgreSQL.

mod id;
pub use id::Id;

pub mod access_tokens;
pub mod activity_log;
pub mod analyses;
pub mod analytics_events;
pub mod attempt_limits;
pub mod billing_accounts;
pub mod billing_events;
pub mod chart_embeds;
pub mod charts;
pub mod collaborations;
pub mod comments;
pub mod data_connections;
pub mod dataset_columns;
pub mod datasets;
pub mod embed_analytics;
pub mod embed_codes;
pub mod embed_keys;
pub mod embed_salts;
pub mod embed_visitors;
pub mod reports;
pub mod template_purchases;
pub mod template_ratings;
pub mod templates;
pub mod usage_tracking;
pub mod user_limits;
pub mod users;

pub mod uuid_column {
    //! The two casts an id column needs on PostgreSQL (and only there).
    use sea_orm::sea_query::{Alias, Expr, ExprTrait};

    /// Read side: `uuid` comes back as text, so [`sea_orm::Id`] decodes it.
    pub fn select_as(expr: Expr) -> Expr {
        expr.as_enum(Alias::new("text"))
    }

    /// Write and compare side: the text parameter becomes a `uuid`.
    pub fn save_as(val: Expr) -> Expr {
        val.as_enum(Alias::new("uuid"))
    }
}
