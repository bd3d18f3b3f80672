//! The browser face of public reports: small self-contained HTML pages (no scripts, no
//! external assets) for every outcome of `/r/{short_code}`, with the same status codes as
//! the JSON answers.
//!
//! Pages are `maud` templates: the markup is checked when the crate compiles and every
//! spliced value is escaped unless wrapped in `PreEscaped`, so a report's name or results
//! (text its owner chose) cannot open a tag; only the constant style sheet is spliced raw.
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Nothing may load from anywhere, inline styles excepted; forms post only back here; the
/// page cannot be framed (clickjacking of the password form).
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

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

/// A page in the house style, with the security headers every public page carries. The
/// page differs by `Accept`, `Cookie` (an unlocked report) and `Authorization`, and may
/// show a private report: hence `Vary` and `no-store`.
fn page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · iOps" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
                footer { "Shared with iOps" }
            }
        }
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept, Cookie, Authorization"))
        .body(html.into_string())
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
form{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin-top:1rem}\
input[type=password]{flex:1;min-width:12rem;padding:.5rem;border:1px solid #b8bfca;\
border-radius:6px;font-size:1rem}\
button{padding:.5rem 1rem;border:0;border-radius:6px;background:#2457c5;color:#fff;\
font-size:1rem;cursor:pointer}\
footer{text-align:center;color:#8a93a3;font-size:.8rem;margin-bottom:2rem}\
figure.chart{margin:0 0 1rem}figure.chart svg{width:100%;height:auto;display:block}\
div.table{overflow-x:auto;margin:0 0 .5rem}table{border-collapse:collapse;min-width:50%;font-size:.9rem}\
th,td{padding:.3rem .6rem;border-bottom:1px solid #e3e6eb;text-align:left;white-space:nowrap}\
th{background:#f6f7f9;vertical-align:bottom}th span.type{font-weight:normal;color:#8a93a3;font-size:.75rem}\
.num{text-align:right;font-variant-numeric:tabular-nums}";

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Pretty JSON of a config or results value, or a note that there is none (stored JSON
/// `null` included: the owner sees no difference).
fn json_block(value: Option<&serde_json::value::RawValue>) -> Markup {
    let value = value.and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok());
    match value.as_ref() {
        None | Some(serde_json::Value::Null) => html! { p.muted { "None." } },
        Some(v) => {
            let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
            html! { pre { (text) } }
        }
    }
}

/// Rows of results shown on a report page; the rest are counted in a note (the JSON view
/// has them all).
const SHOWN_ROWS: usize = 200;

/// Results as people read them: a table of columns (with their types) and rows when they
/// have ANALYSES.md's `{columns, rows}` shape, the reason when the last run failed, and
/// the JSON itself otherwise.
fn results_block(value: Option<&serde_json::value::RawValue>) -> Markup {
    use serde_json::Value;
    let parsed = value.and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
    let Some(results) = parsed.as_ref() else {
        return json_block(value);
    };
    if let Some(message) = results.pointer("/error/message").and_then(Value::as_str) {
        return html! { p.muted { "The last run failed: " (message) } };
    }
    let (Some(columns), Some(rows)) = (
        results.get("columns").and_then(Value::as_array),
        results.get("rows").and_then(Value::as_array),
    ) else {
        return json_block(value);
    };
    let header: Vec<(String, String)> = columns
        .iter()
        .map(|c| match c {
            Value::String(name) => (name.clone(), String::new()),
            other => (
                other
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                other
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
        })
        .collect();
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let numeric = |t: &str| matches!(t, "integer" | "float" | "decimal");
    let truncated = results.get("truncated").and_then(Value::as_bool) == Some(true);
    html! {
        div.table {
            table {
                thead { tr { @for (name, kind) in &header {
                    th.num[numeric(kind)] { (name) @if !kind.is_empty() { br; span.type { (kind) } } }
                } } }
                tbody { @for row in rows.iter().take(SHOWN_ROWS) {
                    tr { @for (i, value) in row.as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
                        td.num[header.get(i).is_some_and(|(_, k)| numeric(k))] { (cell(value)) }
                    } }
                } }
            }
        }
        p.muted {
            (count(i32::try_from(rows.len()).ok(), "row"))
            @if rows.len() > SHOWN_ROWS { ", the first " (SHOWN_ROWS) " shown (the JSON view has them all)" }
            @if truncated { "; the query gave more, cut at the row limit" }
            @if let Some(at) = results.get("ran_at").and_then(Value::as_str) { " · ran " (at) }
        }
    }
}

/// "1 row", "3 rows", or "unknown rows" for a dataset not yet counted.
fn count(n: Option<i32>, what: &str) -> String {
    match n {
        Some(1) => format!("1 {what}"),
        Some(n) => format!("{n} {what}s"),
        None => format!("unknown {what}s"),
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
    /// Each chart's name and SVG drawing, in the order shown.
    pub charts: Vec<(&'a str, String)>,
}

pub fn report(view: &ReportPage<'_>) -> HttpResponse {
    let body = html! {
        h1 { (view.analysis_name) }
        p.muted {
            "Report " (view.short_code) " · status " (view.analysis_status)
            " · updated " (timestamp(view.analysis_updated_at))
        }
        dl {
            dt { "Views" } dd { (view.view_count) }
            dt { "Published" } dd { (timestamp(view.created_at)) }
            @if let Some(at) = view.expires_at {
                dt { "Expires" } dd { (timestamp(at)) }
            }
            dt { "Dataset" }
            @match view.dataset {
                Some((name, rows, columns)) => {
                    dd { (name) " (" (count(rows, "row")) ", " (count(columns, "column")) ")" }
                }
                None => dd.muted { "none" },
            }
        }
        @if !view.charts.is_empty() {
            h2 { "Charts" }
            @for (name, svg) in &view.charts {
                // The drawing is the plot crate's SVG, which escapes every text it holds
                // and has no scripts (tested with hostile names); it is spliced as markup.
                figure.chart aria-label=(name) { (PreEscaped(svg)) }
            }
        }
        h2 { "Results" }
        (results_block(view.results))
        h2 { "Configuration" }
        (json_block(view.config))
    };
    page(StatusCode::OK, view.analysis_name, body)
}

/// The password form, posting to the unlock endpoint: `401`, or `422` when the post
/// carried no password.
pub fn password_form(short_code: &str, notice: FormNotice) -> HttpResponse {
    let (status, notice) = match notice {
        FormNotice::None => (StatusCode::UNAUTHORIZED, None),
        FormNotice::WrongPassword => (
            StatusCode::UNAUTHORIZED,
            Some("That password is not right. Try again."),
        ),
        FormNotice::Missing => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Enter the password."),
        ),
    };
    let body = html! {
        h1 { "This report is password-protected" }
        p { "Enter the password you were given to open it." }
        @if let Some(notice) = notice {
            p.error role="alert" { (notice) }
        }
        form method="post" action=(format!("/r/{short_code}/unlock")) {
            label for="password" class="muted" { "Password" }
            input type="password" id="password" name="password" required
                autocomplete="current-password" autofocus;
            button type="submit" { "Open report" }
        }
    };
    page(status, "Password required", body)
}

pub fn not_found() -> HttpResponse {
    let body = html! {
        h1 { "Nothing here" }
        p {
            "There is nothing shared at this address. The link may be mistyped, or what it \
             pointed to is no longer shared."
        }
    };
    page(StatusCode::NOT_FOUND, "Not found", body)
}

pub fn gone(what: &str) -> HttpResponse {
    let mut heading = what.to_owned();
    if let Some(first) = heading.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let body = html! {
        h1 { (heading) }
        p { "Its owner shared it for a limited time, and that time is over." }
    };
    page(StatusCode::GONE, "Expired", body)
}

/// The page an invitation link opens: what is offered, to whom, and how to answer (the
/// answer is an authenticated API call by the invited account).
pub fn invitation(preview: &domain::InvitationPreview, token: &str) -> HttpResponse {
    let accept = format!("/api/v1/invitations/{token}/accept");
    let decline = format!("/api/v1/invitations/{token}/decline");
    let body = html! {
        h1 { "You are invited to \u{201c}" (preview.analysis_name) "\u{201d}" }
        p {
            (preview.inviter) " shares this analysis with " strong { (preview.email) }
            " as " strong { (preview.role.as_str()) } "."
        }
        dl {
            dt { "Expires" } dd { (timestamp(preview.expires_at)) }
        }
        h2 { "Answer it" }
        p {
            "Logged in as " (preview.email) ", send " code { "POST " (accept) }
            " with your access token to accept, or " code { "POST " (decline) } " to decline:"
        }
        pre { "curl -X POST -H 'Authorization: Bearer <your token>' <this server>" (accept) }
    };
    page(StatusCode::OK, "Invitation", body)
}

/// 429 with `Retry-After`; the page rounds the wait up to whole minutes.
pub fn rate_limited(retry_after_secs: u64) -> HttpResponse {
    let minutes = retry_after_secs.div_ceil(60).max(1);
    let body = html! {
        h1 { "Too many attempts" }
        p {
            "Too many wrong passwords were tried for this report. Try again in about "
            (minutes) " minute" @if minutes != 1 { "s" } "."
        }
    };
    let mut res = page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", body);
    res.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(retry_after_secs),
    );
    res
}

/// Any other failure (bad request, database down, internal): the status, and nothing of
/// the cause, which could leak internals to whoever holds the link.
pub fn error(status: StatusCode) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        p { "The report cannot be shown right now. Please try again later." }
    };
    page(status, title, body)
}

/// An SVG document drawn by the server: nothing in it may load or run, and it is never
/// sniffed as anything else.
pub fn svg(svg: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .insert_header((header::CONTENT_SECURITY_POLICY, EMBED_CSP_BASE))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(svg)
}

/// What an embed may do: nothing but show itself with inline styles.
const EMBED_CSP_BASE: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// Adds `frame-ancestors` to the response's policy: the listed origins, or any (`*`)
/// when none is listed. Origins were validated as `scheme://host[:port]` when published,
/// so none can smuggle another directive.
pub fn frame_ancestors(res: &mut HttpResponse, origins: &[String]) {
    let ancestors = if origins.is_empty() {
        "*".to_owned()
    } else {
        origins.join(" ")
    };
    let policy = format!("{EMBED_CSP_BASE}; frame-ancestors {ancestors}");
    if let Ok(value) = header::HeaderValue::from_str(&policy) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The page of `/e/{code}`: the chart alone, filling the frame, no scripts.
pub fn embed(name: &str, svg: &str, origins: &[String]) -> HttpResponse {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (name) " · iOps" }
                style { (PreEscaped(EMBED_STYLE)) }
            }
            // The plot crate's SVG (escaped text, no scripts), spliced as markup.
            body { (PreEscaped(svg)) }
        }
    };
    let mut res = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html.into_string());
    frame_ancestors(&mut res, origins);
    res
}

/// The chart fills the frame whatever its size: the SVG's `viewBox` keeps its proportions
/// (blank margins instead of a cut-off axis or scroll bars).
const EMBED_STYLE: &str = "html,body{height:100%;margin:0;padding:0;background:#fff;\
overflow:hidden}svg{width:100%;height:100%;display:block}";

/// An embed that cannot be shown (`401`, `404`, ...): a one-line page that any site may
/// frame, so the embedding page shows why instead of a browser error.
pub fn embed_error(status: StatusCode) -> HttpResponse {
    let message = match status {
        StatusCode::NOT_FOUND => "This chart is not available.",
        StatusCode::UNAUTHORIZED => "This chart needs a valid link.",
        _ => "This chart cannot be shown right now.",
    };
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (message) }
                style { (PreEscaped(EMBED_STYLE)) }
            }
            body { p style="font-family:system-ui,sans-serif;color:#5b6474;padding:1rem" { (message) } }
        }
    };
    let mut res = HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html.into_string());
    frame_ancestors(&mut res, &[]);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;
    use actix_web::test::TestRequest;

    fn text(res: HttpResponse) -> String {
        let bytes = res.into_body().try_into_bytes().expect("an in-memory body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    const HOSTILE: &str = r#"<script>alert("x&'y")</script>"#;
    const ESCAPED: &str = "&lt;script&gt;alert(&quot;x&amp;'y&quot;)&lt;/script&gt;";

    #[test]
    fn report_pages_escape_every_value() {
        let results = serde_json::value::RawValue::from_string(
            serde_json::json!({ "note": "</pre><img src=x onerror=alert(2)>" }).to_string(),
        )
        .unwrap();
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let res = report(&ReportPage {
            short_code: "abcDEF123",
            view_count: 3,
            expires_at: Some(at),
            created_at: at,
            analysis_name: HOSTILE,
            analysis_status: "completed",
            analysis_updated_at: at,
            config: None,
            results: Some(&results),
            dataset: Some((HOSTILE, Some(1), None)),
            charts: Vec::new(),
        });
        assert_eq!(res.status(), StatusCode::OK);
        let page = text(res);
        println!("{page}");
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains(&format!("<title>{ESCAPED} · iOps</title>")),
            "{page}"
        );
        assert!(page.contains(&format!("<h1>{ESCAPED}</h1>")), "{page}");
        assert!(
            page.contains(&format!("<dd>{ESCAPED} (1 row, unknown columns)</dd>")),
            "{page}"
        );
        assert!(
            page.contains("&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt;"),
            "{page}"
        );
        assert!(page.contains("<dt>Expires</dt><dd>2026-01-02T03:04:05Z</dd>"));
        assert!(page.contains("<h2>Configuration</h2><p class=\"muted\">None.</p>"));
    }

    #[test]
    fn password_pages_escape_the_code_in_the_form_action() {
        let res = password_form(r#"x"><script>"#, FormNotice::WrongPassword);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let page = text(res);
        println!("{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains(r#"action="/r/x&quot;&gt;&lt;script&gt;/unlock""#),
            "{page}"
        );
        assert!(page.contains("That password is not right. Try again."));
        let missing = password_form("abc", FormNotice::Missing);
        assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn every_page_carries_the_security_headers() {
        for res in [
            not_found(),
            gone("this report has expired"),
            rate_limited(61),
            error(StatusCode::SERVICE_UNAVAILABLE),
            password_form("abc", FormNotice::None),
        ] {
            let get = |name| res.headers().get(name).expect("header").to_str().unwrap();
            assert_eq!(get(header::CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(get(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(get(header::REFERRER_POLICY), "no-referrer");
            assert_eq!(get(header::CACHE_CONTROL), "no-store");
            assert_eq!(get(header::VARY), "Accept, Cookie, Authorization");
        }
        let limited = rate_limited(61);
        assert_eq!(limited.headers().get(header::RETRY_AFTER).unwrap(), "61");
        assert!(text(limited).contains("Try again in about 2 minutes."));
        assert!(text(rate_limited(1)).contains("Try again in about 1 minute."));
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
