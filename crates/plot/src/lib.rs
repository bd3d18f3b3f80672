//! Server-side SVG charts of an analysis's tabular results.
//!
//! [`Table::from_results`] reads an analysis's `results` JSON, and [`render`] draws a
//! [`Chart`] of it as one self-contained SVG document of [`WIDTH`] x [`HEIGHT`] pixels. Drawing
//! is done with `plotters` on its SVG backend; text is laid out with plotters' built-in size
//! estimate, so no system fonts are needed. Every text that reaches the SVG comes from users
//! and is cleaned (no characters XML forbids, long labels cut) and escaped exactly once; the
//! output never holds scripts, event handlers or external references.
#![warn(missing_docs)]

mod data;
mod draw;
mod text;

use std::fmt;
use std::str::FromStr;

/// The width of every chart, in pixels (the SVG also has a viewBox, so it scales).
pub const WIDTH: u32 = 640;
/// The height of every chart, in pixels.
pub const HEIGHT: u32 = 400;

/// What kind of chart to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Bars per category: grouped by y column or series, or stacked.
    Bar,
    /// Lines over a numeric, time or categorical x axis.
    Line,
    /// Lines filled down to zero (stacked on each other when `stacked`).
    Area,
    /// Points over a numeric (or time) x axis.
    Scatter,
    /// Slices of a whole, with a legend of percentages.
    Pie,
    /// The table itself, its first rows and columns.
    Table,
    /// One big number: y\[0\] of the first row.
    Number,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 7] = [
        Kind::Bar,
        Kind::Line,
        Kind::Area,
        Kind::Scatter,
        Kind::Pie,
        Kind::Table,
        Kind::Number,
    ];

    /// The kind's name as in JSON: `"bar"`, `"line"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Bar => "bar",
            Kind::Line => "line",
            Kind::Area => "area",
            Kind::Scatter => "scatter",
            Kind::Pie => "pie",
            Kind::Table => "table",
            Kind::Number => "number",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Kind`] from a name that is none of [`Kind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown chart kind {:?}", self.0)
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Parses a kind's name, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// The type of a result column, as the product's results declare it.
///
/// Deserializing is lenient: common SQL spellings are understood (`bigint`, `double`,
/// `timestamptz`, ...) and any other name reads as [`ColumnType::String`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ColumnType {
    /// Whole numbers (JSON numbers, or strings beyond ±2^53).
    Integer,
    /// Floating-point numbers.
    Float,
    /// Exact numbers, sent as JSON strings.
    Decimal,
    /// Text.
    String,
    /// `true` / `false`.
    Boolean,
    /// A day, `"2026-12-01"`.
    Date,
    /// An RFC 3339 UTC timestamp string.
    Timestamp,
    /// Only nulls (or nothing known).
    Null,
}

/// One column of a [`Table`]: its name and type.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Column {
    /// The column's name, as the analysis gave it.
    pub name: String,
    /// The column's type (declared, or inferred from the values).
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

/// An analysis's tabular results: columns and rows of JSON values.
///
/// Every row has exactly one value per column once read by [`Table::from_results`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, each one value per column.
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// What to draw of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The chart's kind.
    pub kind: Kind,
    /// The title, drawn at the top (and given as the SVG's accessible name).
    pub title: String,
    /// The x column: categories (bar, line, area), x values (scatter), slice labels (pie).
    /// Without it rows are numbered.
    pub x: Option<String>,
    /// The value columns: one series each, or with `series` only `y[0]`; the shown columns of
    /// a table; the number's column. Empty means: every numeric column (first one for number).
    pub y: Vec<String>,
    /// A column whose distinct values become the series (the table is pivoted on it).
    pub series: Option<String>,
    /// Stack the series (bar and area).
    pub stacked: bool,
}

/// Draws `chart` of `table` as an SVG document.
///
/// Always returns one complete, well-formed SVG document (640x400, with xmlns and a viewBox so it scales),
/// never panics, whatever the table holds. When there is nothing to draw (no rows, a named
/// column that is not in the table, no numeric value) the document holds the title and a
/// message saying so. The same input always gives the same bytes.
pub fn render(chart: &Chart, table: &Table) -> String {
    draw::render(chart, table)
}
