//! The browser face of public reports: small self-contained HTML pages (no scripts, no
//! external assets) for every outcome of `/r/{short_code}`, with the same status codes as
//! the JSON answers. Every value that reaches a page goes through [`escape`].
use std::fmt::Write as _;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};

/// Nothing may load from anywhere, inline styles excepted; forms post only back here; the
/// page cannot be framed (clickjacking of the password form).
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

/// Whether the caller prefers HTML to JSON, by its `Accept` header: a browser lists
/// `text/html` first-class; an API client sends `application/json`, `*/*` or nothing,
/// and on a tie JSON (the API's own format) wins.
pub fn wants_html(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "application/problem+json" => json = json.max(q),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// What the password form says above its field.
pub enum FormNotice {
    /// First visit: `401`.
    None,
    /// The password was wrong: `401`.
    WrongPassword,
    /// The form came without a password: `422`.
    Missing,
}

/// A page in the house style, with the security headers every public page carries.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{title} · iOps</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n\
         <footer>Shared with iOps</footer>\n</body>\n</html>\n",
        title = escape(title),
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept, Cookie, Authorization"))
        .body(html)
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
margin:0;background:#f6f7f9;color:#1d2330;line-height:1.5}\
main{max-width:860px;margin:2rem auto;padding:1.5rem 2rem;background:#fff;\
border:1px solid #dde1e7;border-radius:8px}\
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}\
dt{color:#5b6474}dd{margin:0}\
pre{background:#f1f3f6;padding:.75rem;border-radius:6px;overflow:auto;font-size:.85rem;\
white-space:pre-wrap;word-break:break-word}\
.muted{color:#5b6474}.error{color:#b3261e;font-weight:600}\
form{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}\
input[type=password]{flex:1;min-width:12rem;padding:.5rem;border:1px solid #b8bfca;\
border-radius:6px;font-size:1rem}\
button{padding:.5rem 1rem;border:0;border-radius:6px;background:#2457c5;color:#fff;\
font-size:1rem;cursor:pointer}\
footer{text-align:center;color:#8a93a3;font-size:.8rem;margin-bottom:2rem}";

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Pretty JSON of a config or results value, or a dash for none.
fn json_block(value: Option<&serde_json::value::RawValue>) -> String {
    let value = value.and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok());
    match value.as_ref() {
        None | Some(serde_json::Value::Null) => "<p class=\"muted\">None.</p>\n".to_owned(),
        Some(v) => {
            let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
            format!("<pre>{}</pre>\n", escape(&text))
        }
    }
}

/// What the report page shows; the route builds it from the domain's public view.
pub struct ReportPage<'a> {
    pub short_code: &'a str,
    pub view_count: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub analysis_name: &'a str,
    pub analysis_status: &'a str,
    pub analysis_updated_at: DateTime<Utc>,
    pub config: Option<&'a serde_json::value::RawValue>,
    pub results: Option<&'a serde_json::value::RawValue>,
    /// Name, rows and columns of the dataset, if the analysis still has one.
    pub dataset: Option<(&'a str, Option<i32>, Option<i32>)>,
}

pub fn report(view: &ReportPage<'_>) -> HttpResponse {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1>\n<p class=\"muted\">Report {} · status {} · updated {}</p>\n<dl>\n\
         <dt>Views</dt><dd>{}</dd>\n<dt>Published</dt><dd>{}</dd>\n",
        escape(view.analysis_name),
        escape(view.short_code),
        escape(view.analysis_status),
        timestamp(view.analysis_updated_at),
        view.view_count,
        timestamp(view.created_at),
    );
    if let Some(at) = view.expires_at {
        let _ = writeln!(body, "<dt>Expires</dt><dd>{}</dd>", timestamp(at));
    }
    match view.dataset {
        Some((name, rows, columns)) => {
            let count = |n: Option<i32>, what: &str| match n {
                Some(1) => format!("1 {what}"),
                Some(n) => format!("{n} {what}s"),
                None => format!("unknown {what}s"),
            };
            let _ = writeln!(
                body,
                "<dt>Dataset</dt><dd>{} ({}, {})</dd>",
                escape(name),
                count(rows, "row"),
                count(columns, "column"),
            );
        }
        None => body.push_str("<dt>Dataset</dt><dd class=\"muted\">none</dd>\n"),
    }
    body.push_str("</dl>\n<h2>Results</h2>\n");
    body.push_str(&json_block(view.results));
    body.push_str("<h2>Configuration</h2>\n");
    body.push_str(&json_block(view.config));
    page(StatusCode::OK, view.analysis_name, &body)
}

/// The password form, posting to the unlock endpoint: `401`, or `422` when the post
/// carried no password.
pub fn password_form(short_code: &str, notice: FormNotice) -> HttpResponse {
    let (status, notice) = match notice {
        FormNotice::None => (StatusCode::UNAUTHORIZED, ""),
        FormNotice::WrongPassword => (
            StatusCode::UNAUTHORIZED,
            "<p class=\"error\" role=\"alert\">That password is not right. Try again.</p>\n",
        ),
        FormNotice::Missing => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "<p class=\"error\" role=\"alert\">Enter the password.</p>\n",
        ),
    };
    let body = format!(
        "<h1>This report is password-protected</h1>\n\
         <p>Enter the password you were given to open it.</p>\n{notice}\
         <form method=\"post\" action=\"/r/{code}/unlock\">\n\
         <label for=\"password\" class=\"muted\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" required \
         autocomplete=\"current-password\" autofocus>\n\
         <button type=\"submit\">Open report</button>\n</form>\n",
        code = escape(short_code),
    );
    page(status, "Password required", &body)
}

pub fn not_found() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "Report not found",
        "<h1>Report not found</h1>\n<p>There is no report at this address. The link may be \
         mistyped, or the report is no longer shared.</p>\n",
    )
}

pub fn gone() -> HttpResponse {
    page(
        StatusCode::GONE,
        "Report expired",
        "<h1>This report has expired</h1>\n<p>Its owner shared it for a limited time, and \
         that time is over.</p>\n",
    )
}

/// 429 with `Retry-After`.
pub fn rate_limited(retry_after_secs: u64) -> HttpResponse {
    let minutes = retry_after_secs.div_ceil(60).max(1);
    let body = format!(
        "<h1>Too many attempts</h1>\n<p>Too many wrong passwords were tried for this report. \
         Try again in about {minutes} minute{s}.</p>\n",
        s = if minutes == 1 { "" } else { "s" },
    );
    let mut res = page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", &body);
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

/// Any other failure (bad request, database down, internal): the status, and nothing of
/// the cause.
pub fn error(status: StatusCode) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<h1>{}</h1>\n<p>The report cannot be shown right now. Please try again later.</p>\n",
        escape(title)
    );
    page(status, title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#x27;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let with = |accept: &str| {
            wants_html(
                &TestRequest::default()
                    .insert_header((header::ACCEPT, accept))
                    .to_http_request(),
            )
        };
        assert!(with(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(with("text/html"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!with("application/json, text/html"));
        assert!(!with("text/html;q=0"));
        assert!(with("application/json;q=0.5, text/html"));
        assert!(!wants_html(&TestRequest::default().to_http_request()));
    }
}
