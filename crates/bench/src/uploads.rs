//! Dataset uploads (`POST /api/v1/datasets`, multipart, streamed) beside the parser alone
//! on the same file, and the server's peak memory meanwhile.
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream;
use reqwest::multipart::{Form, Part};
use serde::de::IgnoredAny;

use crate::Result;
use crate::server::{Server, cpu_time};

const CSV_HEADER: &[u8] = b"id,date,region,product,quantity,price,comment\n";
/// Size of the chunks a generated upload is produced in.
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Format::Csv => "text/csv",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    fn header(self) -> &'static [u8] {
        match self {
            Format::Csv => CSV_HEADER,
            Format::Ndjson => b"",
        }
    }

    /// Appends row `i`. Every row of a format has the same length (fixed-width fields),
    /// so a generated stream's exact length is known before it is produced.
    fn row(self, i: u64, out: &mut Vec<u8>) {
        let id = 1_000_000_000 + i;
        let month = 1 + i % 12;
        let day = 1 + i % 28;
        let region = ["NO", "SO", "EA", "WE"][(i % 4) as usize];
        let product = i % 100_000;
        let quantity = 1000 + i % 9000;
        let price = 10_000 + i.wrapping_mul(7919) % 90_000;
        let cents = i % 100;
        // Writing into a Vec cannot fail.
        let _ = match self {
            Format::Csv => writeln!(
                out,
                "{id},2026-{month:02}-{day:02},{region},P{product:05},{quantity},\
                 {price}.{cents:02},\"ok, shipped\""
            ),
            Format::Ndjson => writeln!(
                out,
                "{{\"id\":{id},\"date\":\"2026-{month:02}-{day:02}\",\"region\":\"{region}\",\
                 \"product\":\"P{product:05}\",\"quantity\":{quantity},\
                 \"price\":{price}.{cents:02},\"comment\":\"ok, shipped\"}}"
            ),
        };
    }

    fn row_len(self) -> u64 {
        let mut row = Vec::new();
        self.row(0, &mut row);
        row.len() as u64
    }

    /// Rows that fit in `bytes`, and the exact size of the file they make.
    fn rows_for(self, bytes: u64) -> (u64, u64) {
        let header = self.header().len() as u64;
        let rows = bytes.saturating_sub(header) / self.row_len();
        (rows, header + rows * self.row_len())
    }
}

/// A generated file on disk.
pub struct Generated {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes about `bytes` bytes of `format` rows to `path`.
pub fn generate(format: Format, bytes: u64, path: &Path) -> Result<Generated> {
    let (rows, size) = format.rows_for(bytes);
    let mut out = BufWriter::with_capacity(CHUNK_BYTES, std::fs::File::create(path)?);
    out.write_all(format.header())?;
    let mut row = Vec::with_capacity(256);
    for i in 0..rows {
        row.clear();
        format.row(i, &mut row);
        out.write_all(&row)?;
    }
    out.flush()?;
    Ok(Generated { rows, bytes: size })
}

/// Counts the rows of `path` with the parser alone (`csv`, or `serde_json` per line);
/// returns the rows and the time taken.
pub fn parse_only(format: Format, path: &Path) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let mut rows = 0u64;
    match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().from_path(path)?;
            let mut record = csv::ByteRecord::new();
            while reader.read_byte_record(&mut record)? {
                rows += 1;
            }
        }
        Format::Ndjson => {
            let mut reader = BufReader::with_capacity(CHUNK_BYTES, std::fs::File::open(path)?);
            let mut line = Vec::with_capacity(256);
            while reader.read_until(b'\n', &mut line)? > 0 {
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    serde_json::from_slice::<IgnoredAny>(&line)?;
                    rows += 1;
                }
                line.clear();
            }
        }
    }
    Ok((rows, started.elapsed()))
}

/// What one upload measured.
#[derive(Debug)]
pub struct Upload {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Peak RSS of the server during the upload (VmHWM, reset just before).
    pub peak_rss: u64,
    /// CPU time the server used from the request to its answer.
    pub server_cpu: Duration,
    /// CPU time the benchmark used meanwhile: the client's share of the same cores.
    pub client_cpu: Duration,
}

/// Uploads the file at `path`, streamed from disk.
pub async fn upload_file(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    format: Format,
    path: &Path,
    expected: &Generated,
) -> Result<Upload> {
    let file = tokio::fs::File::open(path).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        CHUNK_BYTES,
    ));
    send(http, server, token, format, body, expected).await
}

/// Uploads `bytes` bytes of generated CSV, produced chunk by chunk while it is sent: the
/// benchmark never holds the file either.
pub async fn upload_generated(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    bytes: u64,
) -> Result<Upload> {
    let format = Format::Csv;
    let (rows, size) = format.rows_for(bytes);
    let chunks = stream::unfold((0u64, true), move |(next, first)| async move {
        if next >= rows && !first {
            return None;
        }
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 256);
        if first {
            chunk.extend_from_slice(format.header());
        }
        let mut i = next;
        while i < rows && chunk.len() < CHUNK_BYTES {
            format.row(i, &mut chunk);
            i += 1;
        }
        Some((Ok::<_, std::io::Error>(chunk), (i, false)))
    });
    let expected = Generated { rows, bytes: size };
    send(
        http,
        server,
        token,
        format,
        reqwest::Body::wrap_stream(chunks),
        &expected,
    )
    .await
}

async fn send(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    format: Format,
    body: reqwest::Body,
    expected: &Generated,
) -> Result<Upload> {
    let part = Part::stream_with_length(body, expected.bytes)
        .file_name(format!("bench.{}", format.extension()))
        .mime_str(format.mime())?;
    let form = Form::new().part("file", part);
    server.reset_peak_rss()?;
    let cpu_before = (server.cpu_time()?, cpu_time("self")?);
    let started = Instant::now();
    let response = http
        .post(server.url("/api/v1/datasets"))
        .bearer_auth(token)
        .multipart(form)
        .timeout(Duration::from_secs(1800))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    let elapsed = started.elapsed();
    let cpu_after = (server.cpu_time()?, cpu_time("self")?);
    let peak_rss = server.peak_rss_bytes()?;
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("upload answered {status}: {}", truncate(&text)).into());
    }
    let dataset: serde_json::Value = serde_json::from_str(&text)?;
    let row_count = dataset.get("row_count").and_then(|v| v.as_u64());
    if row_count != Some(expected.rows) {
        return Err(format!(
            "upload stored row_count {row_count:?}, expected {}",
            expected.rows
        )
        .into());
    }
    // Keep the temporary disk small: the stored copy is not needed any more.
    if let Some(id) = dataset.get("id").and_then(|v| v.as_str()) {
        let _ = http
            .delete(server.url(&format!("/api/v1/datasets/{id}")))
            .bearer_auth(token)
            .send()
            .await;
    }
    Ok(Upload {
        bytes: expected.bytes,
        elapsed,
        peak_rss,
        server_cpu: cpu_after.0.saturating_sub(cpu_before.0),
        client_cpu: cpu_after.1.saturating_sub(cpu_before.1),
    })
}

pub fn truncate(text: &str) -> String {
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_have_fixed_width_and_parse() {
        for format in [Format::Csv, Format::Ndjson] {
            let len = format.row_len();
            for i in [0, 1, 11, 27, 99_999, 123_456_789] {
                let mut row = Vec::new();
                format.row(i, &mut row);
                assert_eq!(row.len() as u64, len, "{format:?} row {i}");
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for format in [Format::Csv, Format::Ndjson] {
            let path = dir.path().join(format!("t.{}", format.extension()));
            let generated = generate(format, 10_000, &path).expect("generate");
            let on_disk = std::fs::metadata(&path).expect("metadata").len();
            assert_eq!(on_disk, generated.bytes);
            let (rows, _) = parse_only(format, &path).expect("parse");
            assert_eq!(rows, generated.rows);
        }
    }
}
