//! `/api/v1/datasets`: streamed multipart upload, list, read, rename, delete.
//!
//! The upload never holds the file in memory: the `file` part's chunks go through a small
//! bounded channel into [`domain::datasets::Datasets::upload`], which writes them to a
//! staging file while this handler keeps reading the request. Backpressure is the channel's
//! capacity: a slow disk slows the reading of the socket, not the other way round.
use actix_web::{delete, get, patch, post};
use std::io;
use utoipa_actix_web::service_config::ServiceConfig;

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use domain::NewDataset;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::CurrentUser;
use crate::http::dto::{DatasetDto, PageDto, RowsDto};
use crate::http::extract::{Json, PageQuery, Pagination};
use crate::http::problem::{Problem, responses};

/// Room for the multipart framing and the small text parts around the file: a body whose
/// declared length exceeds the file limit by more than this cannot carry an acceptable file.
const MULTIPART_SLACK_BYTES: u64 = 64 * 1024;
/// Largest accepted text part (`name`): 255 characters of up to 4 bytes each, with room.
const TEXT_PART_LIMIT: usize = 4 * 1024;
/// Chunks in flight between the request reader and the staging writer.
const CHANNEL_CHUNKS: usize = 4;

/// Registers this module's operations: each handler carries its path and method (actix's
/// route macro) and its documentation (`utoipa::path`), so the route table and the
/// OpenAPI document are one list.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(upload)
        .service(list)
        .service(get)
        .service(preview)
        .service(rename)
        .service(delete);
}

/// The upload form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file: CSV, TSV, JSON (an array of objects) or NDJSON. The format comes from the
    /// file name's extension (`.csv`, `.tsv`, `.json`, `.ndjson`, `.jsonl`), else from the
    /// part's `Content-Type`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Display name; defaults to the file name (extension included). An empty value counts
    /// as absent.
    name: Option<String>,
}

/// `PATCH /api/v1/datasets/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameDataset {
    /// 1 to 255 characters (trimmed).
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
}

/// Upload a dataset
///
/// A `multipart/form-data` body with a `file` part and an optional `name` part (in any
/// order; no other parts). The file is streamed to storage, parsed once to learn its
/// shape, and counted once toward the month's `datasets`. On any error nothing is stored
/// and nothing is counted. NDJSON holds one JSON object per line; a line of nothing but
/// spaces, tabs or a carriage return is skipped (not a row), and a line of any other
/// whitespace (a form feed, a no-break space) is a bad line, as JSON itself has it.
#[utoipa::path(
    operation_id = "upload_dataset",
    tag = "datasets",
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = DatasetDto),
        (status = 400, description = "Not a multipart/form-data body, or a malformed one", body = Problem, content_type = "application/problem+json"),
        responses::Unauthenticated,
        (status = 402, description = "The month's `datasets` limit is reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than the server's upload limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` part, an unknown part, an unsupported file type, a file that does not parse, or a bad name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/datasets")]
async fn upload(
    user: CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    require_form_data(&req)?;
    if let Some(len) = declared_length(&req) {
        // The file is at least the body less its framing.
        state
            .domain
            .datasets
            .check_declared_size(len.saturating_sub(MULTIPART_SLACK_BYTES))?;
    }

    let mut parts = Multipart::new(req.headers(), payload);
    let mut name = None;
    let file = loop {
        let field = match parts.next().await {
            None => return Err(Problem::validation("the `file` part is missing")),
            Some(Err(e)) => return Err(multipart_problem(e)),
            Some(Ok(field)) => field,
        };
        match field.name() {
            Some("file") => break field,
            Some("name") if name.is_none() => name = Some(read_name(field).await?),
            Some("name") => return Err(Problem::validation("the `name` part is given twice")),
            other => return Err(unknown_part(other)),
        }
    };
    let name_given = name.is_some();
    let meta = NewDataset {
        name: name.flatten(),
        file_name: file_name_of(&file),
        content_type: file.content_type().map(|m| m.to_string()),
    };

    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let body = ReceiverStream::new(rx);
    // Both run in this task: the pump feeds the channel and then reads the rest of the
    // form; the domain drains the channel and decides on the whole upload once.
    let dataset = state
        .domain
        .datasets
        .upload_with_rest(user.actor(), meta, body, pump(file, parts, tx, name_given))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/datasets/{}", dataset.id)))
        .json(DatasetDto::from(dataset)))
}

/// List datasets
///
/// The caller's datasets, newest first.
#[utoipa::path(
    operation_id = "list_datasets",
    tag = "datasets",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of datasets", body = PageDto<DatasetDto>),
        responses::Unauthenticated,
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/datasets")]
async fn list(
    user: CurrentUser,
    state: web::Data<AppState>,
    page: Pagination,
) -> Result<web::Json<PageDto<DatasetDto>>, Problem> {
    let page = state.domain.datasets.list(user.id(), &page.0).await?;
    Ok(web::Json(PageDto::from_page(page)))
}

/// Get a dataset
#[utoipa::path(
    operation_id = "get_dataset",
    tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The dataset", body = DatasetDto),
        responses::Unauthenticated,
        (status = 404, description = "No such dataset of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/datasets/{id}")]
async fn get(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<DatasetDto>, Problem> {
    let dataset = state
        .domain
        .datasets
        .get(user.id(), domain::Id(*id))
        .await?;
    Ok(web::Json(dataset.into()))
}

/// `?limit=` of a preview.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Rows, 1 to 1,000 [default: 100].
    pub limit: Option<u32>,
}

/// Preview a dataset
///
/// Its first rows and its columns, read by the query engine as analyses read it.
#[utoipa::path(
    operation_id = "preview_dataset",
    tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id"), PreviewQuery),
    responses(
        (status = 200, description = "The first rows", body = RowsDto),
        responses::Unauthenticated,
        (status = 404, description = "No such dataset of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or `limit` (`/validation`), or a file the engine cannot read (`/query-failed`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/datasets/{id}/preview")]
async fn preview(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<PreviewQuery>,
) -> Result<web::Json<RowsDto>, Problem> {
    let limit = query.limit.unwrap_or(domain::query::DEFAULT_PREVIEW_ROWS);
    let rows = state
        .domain
        .datasets
        .preview(user.id(), domain::Id(*id), limit)
        .await?;
    Ok(web::Json(rows.into()))
}

/// Rename a dataset
#[utoipa::path(
    operation_id = "rename_dataset",
    tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id")),
    request_body = RenameDataset,
    responses(
        (status = 200, description = "The renamed dataset", body = DatasetDto),
        responses::NotJson,
        responses::Unauthenticated,
        (status = 404, description = "No such dataset of the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, bad name, or an unknown field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/api/v1/datasets/{id}")]
async fn rename(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<RenameDataset>,
) -> Result<web::Json<DatasetDto>, Problem> {
    let body = body.into_inner();
    let dataset = state
        .domain
        .datasets
        .rename(user.actor(), domain::Id(*id), body.name)
        .await?;
    Ok(web::Json(dataset.into()))
}

/// Delete a dataset
///
/// Removes the dataset and its stored file; its analyses stay, with `dataset_id: null`.
/// The month's count is not given back.
#[utoipa::path(
    operation_id = "delete_dataset",
    tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Deleted, file included"),
        responses::Unauthenticated,
        (status = 404, description = "No such dataset of the caller", body = Problem, content_type = "application/problem+json"),
        responses::BadId,
    ),
    security(("bearer" = []))
)]
#[delete("/api/v1/datasets/{id}")]
async fn delete(
    user: CurrentUser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    state
        .domain
        .datasets
        .delete(user.actor(), domain::Id(*id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `400` unless the request says `multipart/form-data` (with a boundary).
fn require_form_data(req: &HttpRequest) -> Result<(), Problem> {
    match req.mime_type() {
        Ok(Some(ct)) if ct.essence_str() == "multipart/form-data" => Ok(()),
        _ => Err(Problem::bad_request(
            "uploads take a multipart/form-data body (Content-Type: multipart/form-data; boundary=...)",
        )),
    }
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn multipart_problem(err: MultipartError) -> Problem {
    Problem::bad_request(format!("malformed multipart body: {err}"))
}

fn unknown_part(name: Option<&str>) -> Problem {
    Problem::validation(unknown_part_text(name))
}

fn unknown_part_text(name: Option<&str>) -> String {
    match name {
        Some(name) => format!(
            "unknown part `{name}`: an upload takes a `file` part and an optional `name` part"
        ),
        None => "a part has no name".to_owned(),
    }
}

/// A broken multipart body after the file started: the request is malformed (`400`).
fn multipart_error(err: MultipartError) -> domain::Error {
    domain::Error::BadRequest(format!("malformed multipart body: {err}"))
}

/// The file name the client gave, without any directory (old browsers send a full path).
fn file_name_of(field: &Field) -> String {
    let raw = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .unwrap_or_default();
    raw.rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Reads a `name` part: `Some(name)`, or `None` for an empty value (an HTML form's blank
/// field means "use the file name").
async fn read_name(mut field: Field) -> Result<Option<String>, domain::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        if bytes.len() + chunk.len() > TEXT_PART_LIMIT {
            return Err(domain::Error::validation(format!(
                "name must be at most {} characters",
                domain::MAX_NAME_CHARS
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let name = String::from_utf8(bytes)
        .map_err(|_| domain::Error::validation("name must be UTF-8 text"))?;
    Ok((!name.trim().is_empty()).then_some(name))
}

/// Forwards the file part into `tx`, then reads the rest of the body: a `name` part may
/// follow the file. Resolves to that late name, if any, or to the reason the form is
/// refused (the domain then stores nothing).
///
/// A refusal while the file streams is also sent down the channel as a read error, so the
/// receiver stops. When the domain stops reading first (its own refusal), sending fails
/// and the pump just stops: the domain's error is the answer.
async fn pump(
    mut file: Field,
    mut parts: Multipart,
    tx: mpsc::Sender<io::Result<Bytes>>,
    name_given: bool,
) -> domain::UploadPart {
    while let Some(chunk) = file.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let refused = multipart_error(e);
                let _ = tx.send(Err(io::Error::other(refused.to_string()))).await;
                return Err(refused);
            }
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(None);
        }
    }
    drop(file);
    // The end of the file for the receiver.
    drop(tx);

    let mut late_name = None;
    let mut name_seen = name_given;
    while let Some(field) = parts.next().await {
        let field = field.map_err(multipart_error)?;
        match field.name() {
            Some("name") if !name_seen => {
                name_seen = true;
                late_name = read_name(field).await?;
            }
            Some("name") => {
                return Err(domain::Error::validation("the `name` part is given twice"));
            }
            Some("file") => {
                return Err(domain::Error::validation(
                    "an upload takes exactly one `file` part",
                ));
            }
            other => return Err(domain::Error::validation(unknown_part_text(other))),
        }
    }
    Ok(late_name)
}
