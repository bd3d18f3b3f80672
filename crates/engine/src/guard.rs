//! Read-only, for real: a SQL text is parsed, and refused before any planning unless it is
//! exactly one query (`SELECT`, `WITH`, `VALUES`) whose every table is one of the session's
//! registered tables or one of its own common table expressions.
//!
//! The session adds its own walls (no table functions, no table factories, no catalog
//! views, no URL tables, DDL/DML/statements disallowed at planning), so each way out is
//! closed twice; this check is the one that tells the user what was refused.
use std::ops::ControlFlow;

use datafusion::common::TableReference;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use domain::query::{FailureReason, QueryFailure};

use crate::failure::{Scrub, failure_of};

/// Planning options that refuse everything but queries, whatever slipped through.
pub(crate) fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn refused(message: impl Into<String>) -> QueryFailure {
    QueryFailure::new(FailureReason::Refused, message)
}

/// The one query statement of `sql`, checked.
pub(crate) fn checked_statement(
    ctx: &SessionContext,
    sql: &str,
) -> Result<DfStatement, QueryFailure> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| failure_of(e, &Scrub::default()))?;
    if statements.len() != 1 {
        return Err(refused("exactly one query is allowed"));
    }
    let statement = statements.pop_front().ok_or_else(|| refused("no query"))?;
    let DfStatement::Statement(inner) = &statement else {
        return Err(refused(
            "only queries (SELECT, WITH, VALUES) are allowed; COPY, CREATE EXTERNAL TABLE, \
             EXPLAIN and RESET are not",
        ));
    };
    let Statement::Query(query) = inner.as_ref() else {
        return Err(refused(
            "only queries (SELECT, WITH, VALUES) are allowed; this statement changes or \
             reads something else",
        ));
    };
    if let ControlFlow::Break(failure) = query.visit(&mut NoFunctionsInFrom) {
        return Err(failure);
    }
    let state = ctx.state();
    let references = state
        .resolve_table_references(&statement)
        .map_err(|e| failure_of(e, &Scrub::default()))?;
    for reference in references {
        let TableReference::Bare { table } = &reference else {
            return Err(refused(format!(
                "'{reference}' is not one of this query's tables; only the analysis's \
                 datasets can be read"
            )));
        };
        if ctx.table_exist(reference.clone()).unwrap_or(false) {
            continue;
        }
        if table.contains(['/', '.', ':', '\\']) {
            return Err(refused(format!(
                "'{table}' looks like a path or a URL; only the analysis's datasets can be read"
            )));
        }
        return Err(QueryFailure::new(
            FailureReason::Invalid,
            format!(
                "no table '{table}': name the analysis's dataset 'data' or an alias of config.query.tables"
            ),
        ));
    }
    Ok(statement)
}

/// Refuses table functions (`FROM generate_series(...)`, `FROM read_csv('...')`, ...).
struct NoFunctionsInFrom;

impl Visitor for NoFunctionsInFrom {
    type Break = QueryFailure;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<QueryFailure> {
        let function = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name.to_string()),
            TableFactor::TableFunction { .. } | TableFactor::Function { .. } => {
                Some("a table function".to_owned())
            }
            _ => None,
        };
        match function {
            Some(name) => ControlFlow::Break(refused(format!(
                "table functions ({name}) are not allowed; only the analysis's datasets can be read"
            ))),
            None => ControlFlow::Continue(()),
        }
    }
}
