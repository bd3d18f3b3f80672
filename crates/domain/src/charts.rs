//! Charts of an analysis: what to draw from its results, checked against the columns the
//! results have, and drawn on the server as SVG by the `plot` crate.
//!
//! Access follows the analysis: statements are scoped with `analysis_id IN (the analyses
//! the caller reaches with the role needed)`; viewers read and draw, editors and the owner
//! change, everyone else gets a plain [`Error::NotFound`].
use chrono::{DateTime, Utc};
use entity::{analyses, chart_embeds, charts};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::{self, Actor, Role, Through, analyses_reachable};
use crate::activity::{self, Entry};
use crate::db::begin_write;
use crate::error::{Error, Result};
use crate::pagination::{Page, PageRequest, page_from};
use crate::{Context, Id};

/// Most charts one analysis may have (each is drawn on every view of its report).
pub const MAX_CHARTS_PER_ANALYSIS: u64 = 50;
/// Most `y` columns one chart may name.
pub const MAX_Y_COLUMNS: usize = 10;

/// How a chart draws its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChartType {
    /// Bars per category (`x`), one per `y` column or `series` value.
    Bar,
    /// Lines over `x` (numbers, dates or categories).
    Line,
    /// Lines over `x`, filled to zero.
    Area,
    /// Points at (`x`, `y`).
    Scatter,
    /// Slices: labels from `x`, sizes from `y[0]`.
    Pie,
    /// The rows themselves.
    Table,
    /// One big number: `y[0]` of the first row.
    Number,
}

impl ChartType {
    /// Every type.
    pub const ALL: [ChartType; 7] = [
        ChartType::Bar,
        ChartType::Line,
        ChartType::Area,
        ChartType::Scatter,
        ChartType::Pie,
        ChartType::Table,
        ChartType::Number,
    ];

    /// The lower-case name the schema stores and the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ChartType::Bar => "bar",
            ChartType::Line => "line",
            ChartType::Area => "area",
            ChartType::Scatter => "scatter",
            ChartType::Pie => "pie",
            ChartType::Table => "table",
            ChartType::Number => "number",
        }
    }

    fn needs_x(self) -> bool {
        !matches!(self, ChartType::Table | ChartType::Number)
    }

    fn needs_y(self) -> bool {
        self != ChartType::Table
    }

    fn plot_kind(self) -> plot::Kind {
        match self {
            ChartType::Bar => plot::Kind::Bar,
            ChartType::Line => plot::Kind::Line,
            ChartType::Area => plot::Kind::Area,
            ChartType::Scatter => plot::Kind::Scatter,
            ChartType::Pie => plot::Kind::Pie,
            ChartType::Table => plot::Kind::Table,
            ChartType::Number => plot::Kind::Number,
        }
    }
}

impl std::str::FromStr for ChartType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ChartType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "chart_type must be one of bar, line, area, scatter, pie, table, number",
                )
            })
    }
}

/// What a chart draws: column names of the analysis's `results.columns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChartConfig {
    /// The category or horizontal-axis column (required except for `table` and `number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The value columns (at least one except for `table`; `pie` and `number` use the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub y: Vec<String>,
    /// A column whose distinct values become the series (then `y[0]` gives the values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Shown above the chart; the chart's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Stack bars or areas of several series.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stacked: bool,
}

impl ChartConfig {
    /// Every column the config names, in the order x, y..., series.
    pub fn columns(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in self.x.iter().chain(self.y.iter()).chain(self.series.iter()) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }
}

/// Whether a published embed needs a signed token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EmbedMode {
    /// Anyone with the link sees it.
    Public,
    /// Only with `?token=` signed by one of the owner's embed keys.
    Signed,
}

impl EmbedMode {
    /// The name the schema stores and the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedMode::Public => "public",
            EmbedMode::Signed => "signed",
        }
    }

    pub(crate) fn parse_stored(s: &str) -> Result<Self> {
        match s {
            "public" => Ok(EmbedMode::Public),
            "signed" => Ok(EmbedMode::Signed),
            other => Err(Error::Internal(format!(
                "unknown stored embed mode {other:?}"
            ))),
        }
    }
}

/// A chart's live embed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embed {
    /// The code in `/e/{code}`.
    pub code: String,
    /// Public or signed.
    pub mode: EmbedMode,
    /// Origins allowed to frame it (empty: any).
    pub allowed_origins: Vec<String>,
    /// When the snapshot it shows was taken.
    pub published_at: DateTime<Utc>,
}

/// A chart of an analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Its id.
    pub id: Id,
    /// The analysis whose results it draws.
    pub analysis_id: Id,
    /// 1 to 255 characters.
    pub name: String,
    /// How it draws.
    pub chart_type: ChartType,
    /// What it draws.
    pub config: ChartConfig,
    /// Its live embed, if published.
    pub embed: Option<Embed>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What a caller gives to create a chart.
#[derive(Clone, Debug)]
pub struct NewChart {
    /// 1 to 255 characters, stored trimmed.
    pub name: String,
    /// How it draws.
    pub chart_type: ChartType,
    /// What it draws.
    pub config: ChartConfig,
}

/// A partial update: `None` leaves a field unchanged. The resulting type and config are
/// checked together.
#[derive(Clone, Debug, Default)]
pub struct ChartChange {
    /// New name.
    pub name: Option<String>,
    /// New type.
    pub chart_type: Option<ChartType>,
    /// New config (replaces the old one whole).
    pub config: Option<ChartConfig>,
}

/// Charts: create, read, change, delete, draw.
#[derive(Clone)]
pub struct Charts {
    ctx: Context,
}

impl Charts {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Adds a chart to `analysis_id` (the actor owns or edits it). The config must suit
    /// the type and, when the analysis has results, name only columns they have.
    pub async fn create(
        &self,
        actor: impl Into<Actor>,
        analysis_id: Id,
        new: NewChart,
    ) -> Result<Chart> {
        let actor = actor.into();
        let name = crate::text::validate_name(new.name, true)?;
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (analysis, _) =
            access::analysis_for(&txn, actor.user_id, analysis_id, Role::Editor).await?;
        validate(new.chart_type, &new.config, analysis.results.as_ref())?;
        let existing = charts::Entity::find()
            .filter(charts::Column::AnalysisId.eq(analysis_id))
            .count(&txn)
            .await?;
        if existing >= MAX_CHARTS_PER_ANALYSIS {
            return Err(Error::validation(format!(
                "an analysis has at most {MAX_CHARTS_PER_ANALYSIS} charts"
            )));
        }
        let model = charts::Model {
            id: Id::new_v4(),
            analysis_id,
            name,
            chart_type: new.chart_type.as_str().to_owned(),
            config: config_json(&new.config)?,
            created_at: now,
            updated_at: now,
        };
        charts::Entity::insert(charts::ActiveModel {
            id: Set(model.id),
            analysis_id: Set(model.analysis_id),
            name: Set(model.name.clone()),
            chart_type: Set(model.chart_type.clone()),
            config: Set(model.config.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(Error::parent_gone)?;
        log(&txn, &actor, now, analysis.user_id, &model, "chart.created").await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        chart_of(model, None)
    }

    /// The charts of `analysis_id` (which `user_id` owns or can see), newest first.
    pub async fn list(
        &self,
        user_id: Id,
        analysis_id: Id,
        page: &PageRequest,
    ) -> Result<Page<Chart>> {
        access::analysis_for(&self.ctx.db, user_id, analysis_id, Role::Viewer).await?;
        let mut query = charts::Entity::find().filter(charts::Column::AnalysisId.eq(analysis_id));
        if let Some(after) = &page.after {
            query = query.filter(after.older_than(charts::Column::CreatedAt, charts::Column::Id));
        }
        let rows = query
            .find_also_related(chart_embeds::Entity)
            .order_by_desc(charts::Column::CreatedAt)
            .order_by_desc(charts::Column::Id)
            .limit(page.limit + 1)
            .all(&self.ctx.db)
            .await?;
        let page = page_from(rows, page.limit, |(c, _)| (c.created_at, c.id));
        let items = page
            .items
            .into_iter()
            .map(|(chart, embed)| chart_of(chart, embed))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// The chart `id`, if `user_id` owns or can see its analysis.
    pub async fn get(&self, user_id: Id, id: Id) -> Result<Chart> {
        let (chart, embed) = self.find(&self.ctx.db, user_id, id, Role::Viewer).await?;
        chart_of(chart, embed)
    }

    /// Applies `change` (the owner or an editor). The type and config that result are
    /// checked against the analysis's current results, as on create.
    pub async fn update(
        &self,
        actor: impl Into<Actor>,
        id: Id,
        change: ChartChange,
    ) -> Result<Chart> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        let (chart, embed) = self.find(&txn, actor.user_id, id, Role::Editor).await?;
        let analysis = analysis_of(&txn, &chart).await?;
        let current = chart_of(chart.clone(), None)?;
        let chart_type = change.chart_type.unwrap_or(current.chart_type);
        let config = change.config.unwrap_or(current.config);
        validate(chart_type, &config, analysis.results.as_ref())?;
        let mut active = charts::ActiveModel {
            id: NotSet,
            analysis_id: NotSet,
            name: NotSet,
            chart_type: Set(chart_type.as_str().to_owned()),
            config: Set(config_json(&config)?),
            created_at: NotSet,
            updated_at: Set(now),
        };
        if let Some(name) = change.name {
            active.name = Set(crate::text::validate_name(name, true)?);
        }
        let updated = charts::Entity::update_many()
            .set(active)
            .filter(charts::Column::Id.eq(id))
            .filter(
                charts::Column::AnalysisId
                    .in_subquery(analyses_reachable(actor.user_id, Role::Editor)),
            )
            .exec_with_returning(&txn)
            .await?;
        let chart = updated.into_iter().next().ok_or(Error::NotFound)?;
        log(&txn, &actor, now, analysis.user_id, &chart, "chart.updated").await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        chart_of(chart, embed)
    }

    /// Deletes the chart (the owner or an editor); its embed, analytics and comments go
    /// with it (the schema's cascade). Its embed code stays retired.
    pub async fn delete(&self, actor: impl Into<Actor>, id: Id) -> Result<()> {
        let actor = actor.into();
        let now = self.ctx.clock.now_naive();
        let txn = begin_write(&self.ctx.db).await?;
        // Read, then delete, in one transaction: sea-orm's `DELETE ... RETURNING` skips the
        // id columns' text cast that PostgreSQL's `uuid` needs.
        let (chart, _) = self.find(&txn, actor.user_id, id, Role::Editor).await?;
        let deleted = charts::Entity::delete_many()
            .filter(charts::Column::Id.eq(id))
            .filter(
                charts::Column::AnalysisId
                    .in_subquery(analyses_reachable(actor.user_id, Role::Editor)),
            )
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound);
        }
        let owner_id = analysis_of(&txn, &chart).await?.user_id;
        log(&txn, &actor, now, owner_id, &chart, "chart.deleted").await?;
        txn.commit().await?;
        self.ctx.report_pages_changed();
        Ok(())
    }

    /// The chart drawn from its analysis's current results, as an SVG document.
    pub async fn image(&self, user_id: Id, id: Id) -> Result<String> {
        let (chart, table) = self.with_data(user_id, id, Role::Viewer).await?;
        Ok(draw(&chart.name, chart.chart_type, &chart.config, &table))
    }

    /// The chart `id`, reached by `user_id` with at least `role`, and the data its
    /// analysis's current results give it to draw: what the image draws and what an embed
    /// freezes.
    pub(crate) async fn with_data(
        &self,
        user_id: Id,
        id: Id,
        role: Role,
    ) -> Result<(Chart, plot::Table)> {
        let (chart, embed) = self.find(&self.ctx.db, user_id, id, role).await?;
        let results: Option<Option<Value>> = analyses::Entity::find_by_id(chart.analysis_id)
            .select_only()
            .column(analyses::Column::Results)
            .into_tuple()
            .one(&self.ctx.db)
            .await?;
        let results = results.ok_or(Error::NotFound)?;
        Ok((chart_of(chart, embed)?, data_of(results.as_ref())))
    }

    /// The chart `id` and its embed, if `user_id` reaches its analysis with at least
    /// `role` (the refusal otherwise: [`Error::Forbidden`] for a collaborator beyond their
    /// role, [`Error::NotFound`] for anyone else).
    pub(crate) async fn find<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: Id,
        id: Id,
        role: Role,
    ) -> Result<(charts::Model, Option<chart_embeds::Model>)> {
        let found = charts::Entity::find()
            .filter(charts::Column::Id.eq(id))
            .filter(charts::Column::AnalysisId.in_subquery(analyses_reachable(user_id, role)))
            .find_also_related(chart_embeds::Entity)
            .one(conn)
            .await?;
        match found {
            Some(found) => Ok(found),
            None => Err(access::refusal(conn, user_id, Through::Chart(id), role).await?),
        }
    }
}

/// The analysis of a chart already reached (by [`Charts::find`], in the same transaction):
/// its row, without checking the role again.
async fn analysis_of<C: ConnectionTrait>(
    conn: &C,
    chart: &charts::Model,
) -> Result<analyses::Model> {
    analyses::Entity::find_by_id(chart.analysis_id)
        .one(conn)
        .await?
        .ok_or(Error::NotFound)
}

/// The chart's activity row, in the transaction of its change.
async fn log<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    now: chrono::NaiveDateTime,
    owner_id: Id,
    chart: &charts::Model,
    verb: &'static str,
) -> Result<()> {
    activity::record(
        conn,
        actor,
        now,
        Entry {
            owner_id,
            analysis_id: Some(chart.analysis_id),
            verb,
            object_type: "chart",
            object_id: chart.id,
            metadata: serde_json::json!({ "name": chart.name }),
        },
    )
    .await
}

/// Draws a chart: the one place that turns the domain's chart into the plot crate's.
pub(crate) fn draw(
    name: &str,
    chart_type: ChartType,
    config: &ChartConfig,
    table: &plot::Table,
) -> String {
    let chart = plot::Chart {
        kind: chart_type.plot_kind(),
        title: config.title.clone().unwrap_or_else(|| name.to_owned()),
        x: config.x.clone(),
        y: config.y.clone(),
        series: config.series.clone(),
        stacked: config.stacked,
    };
    plot::render(&chart, table)
}

/// The table a chart draws from `results` (an analysis's results or a snapshot); empty,
/// so that the drawing says "No data to draw", when they are absent or in another shape.
pub(crate) fn data_of(results: Option<&Value>) -> plot::Table {
    results
        .and_then(plot::Table::from_results)
        .unwrap_or_else(|| plot::Table {
            columns: Vec::new(),
            rows: Vec::new(),
        })
}

/// The type's needs, the text rules, and (when results exist in the documented shape) that
/// every named column is one of theirs.
fn validate(chart_type: ChartType, config: &ChartConfig, results: Option<&Value>) -> Result<()> {
    for (field, value) in config
        .x
        .iter()
        .map(|x| ("x", x))
        .chain(config.y.iter().map(|y| ("y", y)))
        .chain(config.series.iter().map(|s| ("series", s)))
        .chain(config.title.iter().map(|t| ("title", t)))
    {
        if field != "title" && value.trim().is_empty() {
            return Err(Error::validation(format!(
                "config.{field} must name a column"
            )));
        }
        if value.chars().count() > crate::MAX_NAME_CHARS {
            return Err(Error::validation(format!(
                "config.{field} must be at most {} characters",
                crate::MAX_NAME_CHARS
            )));
        }
        if value.contains('\0') {
            return Err(Error::validation(format!(
                "config.{field} must not contain NUL characters"
            )));
        }
    }
    if config.y.len() > MAX_Y_COLUMNS {
        return Err(Error::validation(format!(
            "config.y names at most {MAX_Y_COLUMNS} columns"
        )));
    }
    if chart_type.needs_x() && config.x.is_none() {
        return Err(Error::validation(format!(
            "a {} chart needs config.x",
            chart_type.as_str()
        )));
    }
    if chart_type.needs_y() && config.y.is_empty() {
        return Err(Error::validation(format!(
            "a {} chart needs config.y with at least one column",
            chart_type.as_str()
        )));
    }
    let Some(table) = results.and_then(plot::Table::from_results) else {
        return Ok(());
    };
    let known: Vec<&str> = table.column_names().collect();
    for name in config.columns() {
        if !known.contains(&name) {
            return Err(Error::validation(format!(
                "config names the column {name:?}, which the analysis's results do not have (they have: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn config_json(config: &ChartConfig) -> Result<Value> {
    serde_json::to_value(config).map_err(|e| Error::Internal(format!("chart config: {e}")))
}

pub(crate) fn chart_of(chart: charts::Model, embed: Option<chart_embeds::Model>) -> Result<Chart> {
    let chart_type = chart.chart_type.parse().map_err(|_| {
        Error::Internal(format!("unknown stored chart type {:?}", chart.chart_type))
    })?;
    let config = serde_json::from_value(chart.config)
        .map_err(|e| Error::Internal(format!("stored chart config does not parse: {e}")))?;
    let embed = embed.map(embed_of).transpose()?;
    Ok(Chart {
        id: chart.id,
        analysis_id: chart.analysis_id,
        name: chart.name,
        chart_type,
        config,
        embed,
        created_at: chart.created_at.and_utc(),
        updated_at: chart.updated_at.and_utc(),
    })
}

pub(crate) fn embed_of(embed: chart_embeds::Model) -> Result<Embed> {
    Ok(Embed {
        code: embed.code,
        mode: EmbedMode::parse_stored(&embed.mode)?,
        allowed_origins: serde_json::from_value(embed.allowed_origins)
            .map_err(|e| Error::Internal(format!("stored origins do not parse: {e}")))?,
        published_at: embed.published_at.and_utc(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(x: Option<&str>, y: &[&str]) -> ChartConfig {
        ChartConfig {
            x: x.map(str::to_owned),
            y: y.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn each_type_asks_for_what_it_draws() {
        use ChartType::*;
        for t in [Bar, Line, Area, Scatter, Pie] {
            assert!(
                validate(t, &config(None, &["v"]), None).is_err(),
                "{t:?} without x"
            );
            assert!(
                validate(t, &config(Some("k"), &[]), None).is_err(),
                "{t:?} without y"
            );
            assert!(validate(t, &config(Some("k"), &["v"]), None).is_ok());
        }
        assert!(validate(Table, &config(None, &[]), None).is_ok());
        assert!(validate(Number, &config(None, &[]), None).is_err());
        assert!(validate(Number, &config(None, &["v"]), None).is_ok());
    }

    #[test]
    fn unknown_columns_are_named_when_results_exist() {
        let results = json!({"columns": [{"name": "region", "type": "string"}, {"name": "sales", "type": "float"}], "rows": []});
        let ok = config(Some("region"), &["sales"]);
        assert!(validate(ChartType::Bar, &ok, Some(&results)).is_ok());
        let bad = config(Some("region"), &["profit"]);
        let err = validate(ChartType::Bar, &bad, Some(&results))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"profit\""), "{err}");
        // Results in another shape (written by a client) cannot be checked: accepted.
        assert!(validate(ChartType::Bar, &bad, Some(&json!({"total": 3}))).is_ok());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let parsed: std::result::Result<ChartConfig, _> =
            serde_json::from_value(json!({"x": "a", "y": ["b"], "colour": "red"}));
        assert!(parsed.is_err());
    }
}
