//! The structured query form compiled to a DataFusion plan through the DataFrame API:
//! filters, then grouping and aggregates, then order and limit. Names are used as column
//! identifiers and values as literals, so no user text is ever parsed as SQL.
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, median, min, sum};
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{SessionContext, ident};
use datafusion::scalar::ScalarValue;
use domain::query::{
    AggregateOp, DATA_ALIAS, FailureReason, FilterOp, QueryFailure, StructuredQuery,
};
use serde_json::Value;

use crate::failure::{Scrub, failure_of};

fn invalid(message: impl Into<String>) -> QueryFailure {
    QueryFailure::new(FailureReason::Invalid, message)
}

/// The plan of `form` over the session's `data` table.
pub(crate) async fn compile(
    ctx: &SessionContext,
    form: &StructuredQuery,
) -> Result<DataFrame, QueryFailure> {
    form.check().map_err(invalid)?;
    let df_err = |e| failure_of(e, &Scrub::default());
    let mut frame = ctx.table(DATA_ALIAS).await.map_err(df_err)?;
    let known: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let column = |name: &str| -> Result<Expr, QueryFailure> {
        if known.iter().any(|k| k == name) {
            Ok(ident(name))
        } else {
            Err(invalid(format!("no column '{name}' in the dataset")))
        }
    };
    for filter in &form.filters {
        let target = column(&filter.column)?;
        let condition = match filter.op {
            FilterOp::IsNull => target.is_null(),
            FilterOp::NotNull => target.is_not_null(),
            FilterOp::In | FilterOp::NotIn => {
                let list = filter
                    .value
                    .as_array()
                    .map(|items| items.iter().map(literal).collect::<Result<Vec<_>, _>>())
                    .transpose()?
                    .unwrap_or_default();
                target.in_list(list, filter.op == FilterOp::NotIn)
            }
            FilterOp::Contains => {
                let text = filter
                    .value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| filter.value.to_string());
                datafusion::functions::expr_fn::strpos(target, lit(text)).gt(lit(0))
            }
            op => {
                let value = literal(&filter.value)?;
                match op {
                    FilterOp::Eq => target.eq(value),
                    FilterOp::NotEq => target.not_eq(value),
                    FilterOp::Lt => target.lt(value),
                    FilterOp::LtEq => target.lt_eq(value),
                    FilterOp::Gt => target.gt(value),
                    _ => target.gt_eq(value),
                }
            }
        };
        frame = frame.filter(condition).map_err(df_err)?;
    }
    if !form.group_by.is_empty() || !form.aggregates.is_empty() {
        let groups = form
            .group_by
            .iter()
            .map(|name| column(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut aggregates = Vec::with_capacity(form.aggregates.len());
        for aggregate in &form.aggregates {
            let argument = match &aggregate.column {
                Some(name) => column(name)?,
                None => lit(1_i64),
            };
            let expr = match aggregate.op {
                AggregateOp::Count => count(argument),
                AggregateOp::CountDistinct => count_distinct(argument),
                AggregateOp::Sum => sum(argument),
                AggregateOp::Avg => avg(argument),
                AggregateOp::Min => min(argument),
                AggregateOp::Max => max(argument),
                AggregateOp::Median => median(argument),
            };
            aggregates.push(expr.alias(aggregate.name()));
        }
        frame = frame.aggregate(groups, aggregates).map_err(df_err)?;
    }
    if !form.order_by.is_empty() {
        let keys = form
            .order_by
            .iter()
            .map(|key| ident(&key.column).sort(!key.desc, false))
            .collect::<Vec<_>>();
        frame = frame.sort(keys).map_err(df_err)?;
    }
    if let Some(limit) = form.limit {
        frame = frame.limit(0, Some(limit as usize)).map_err(df_err)?;
    }
    Ok(frame)
}

/// A JSON scalar as a literal; DataFusion coerces it to the column's type where it can
/// (a `"2026-01-01"` compared with a date column is a date).
fn literal(value: &Value) -> Result<Expr, QueryFailure> {
    let scalar = match value {
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int64(Some(i)),
            (None, Some(f)) => ScalarValue::Float64(Some(f)),
            _ => {
                return Err(invalid(format!(
                    "{n} is not a number the engine can compare"
                )));
            }
        },
        Value::Null => ScalarValue::Null,
        other => {
            return Err(invalid(format!(
                "{other} cannot be compared: use a string, a number or a boolean"
            )));
        }
    };
    Ok(lit(scalar))
}
