//! Every output parsed with a real XML parser: well-formed, nothing active, the text a reader
//! needs present.

use plot::{Chart, ColumnType, Kind, Table, render};
use serde_json::{Value, json};

fn chart(kind: Kind, title: &str, x: Option<&str>, y: &[&str]) -> Chart {
    Chart {
        kind,
        title: title.to_owned(),
        x: x.map(str::to_owned),
        y: y.iter().map(|s| s.to_string()).collect(),
        series: None,
        stacked: false,
    }
}

fn sales() -> Table {
    Table::from_results(&json!({
        "columns": [
            {"name": "region", "type": "string"},
            {"name": "revenue", "type": "decimal"},
            {"name": "orders", "type": "integer"}
        ],
        "rows": [
            ["North", "1250000.50", 120],
            ["South", "980000", 95],
            ["East", "1500000", 143],
            ["West", "-20000", 12]
        ],
        "row_count": 4
    }))
    .unwrap()
}

fn daily() -> Table {
    Table::from_results(&json!({
        "columns": [
            {"name": "day", "type": "date"},
            {"name": "visits", "type": "integer"},
            {"name": "channel", "type": "string"}
        ],
        "rows": [
            ["2026-12-01", 120, "web"], ["2026-12-01", 80, "app"],
            ["2026-12-02", 150, "web"], ["2026-12-02", 90, "app"],
            ["2026-12-03", 130, "web"], ["2026-12-03", 110, "app"],
            ["2026-12-05", 170, "web"], ["2026-12-05", 95, "app"],
            ["2026-12-08", 160, "web"], ["2026-12-08", 120, "app"]
        ]
    }))
    .unwrap()
}

/// Parses `svg` and checks everything every output must satisfy; returns the decoded text.
fn check(svg: &str) -> String {
    assert!(
        svg.starts_with("<svg"),
        "starts with <svg: {}",
        &svg[..svg.len().min(80)]
    );
    let doc =
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}"));
    let root = doc.root_element();
    // The accessible name is the first child, and nothing but elements sits at the top level.
    let first = root
        .children()
        .find(|n| !n.is_text() || !n.text().unwrap_or("").trim().is_empty())
        .unwrap();
    assert!(first.has_tag_name("title"), "first child {:?}", first);
    for n in root.children().filter(|n| n.is_text()) {
        assert!(
            n.text().unwrap_or("").trim().is_empty(),
            "stray text {:?}",
            n.text()
        );
    }
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert_eq!(root.attribute("role"), Some("img"));
    assert!(root.attribute("aria-label").is_some());
    assert_eq!(root.attribute("viewBox"), Some("0 0 640 400"));
    assert_eq!(root.attribute("width"), Some("640"));
    assert_eq!(root.attribute("height"), Some("400"));
    let mut text = String::new();
    for node in doc.descendants() {
        if node.is_element() {
            let name = node.tag_name().name().to_ascii_lowercase();
            assert!(
                !matches!(
                    name.as_str(),
                    "script" | "foreignobject" | "a" | "use" | "image" | "style"
                ),
                "element {name}"
            );
            for a in node.attributes() {
                let n = a.name().to_ascii_lowercase();
                assert!(!n.starts_with("on"), "attribute {n}");
                assert!(!n.contains("href"), "attribute {n}");
                let v = a.value().to_ascii_lowercase();
                assert!(!v.contains("javascript:"), "attribute value {v}");
                assert!(!v.contains("url("), "attribute value {v}");
            }
        }
        if let Some(t) = node.text()
            && node.is_text()
        {
            text.push_str(t.trim());
            text.push('\n');
        }
    }
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("javascript:"));
    assert!(!svg.contains("@import"));
    text
}

/// The texts of the `<text>` elements (decoded, trimmed).
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect()
}

fn has_text(svg: &str, want: &str) -> bool {
    texts(svg).iter().any(|t| t == want)
}

fn all_kinds_of(table: &Table, title: &str, x: &str, y: &[&str]) -> Vec<(Kind, String)> {
    Kind::ALL
        .iter()
        .map(|&k| (k, render(&chart(k, title, Some(x), y), table)))
        .collect()
}

#[test]
fn every_kind_is_well_formed_with_title_and_names() {
    let t = sales();
    for (k, svg) in all_kinds_of(&t, "Revenue by region", "region", &["revenue"]) {
        check(&svg);
        assert!(has_text(&svg, "Revenue by region"), "{k:?} title");
        assert!(!has_text(&svg, "No data to draw"), "{k:?} drew nothing");
        assert!(svg.contains("<title>Revenue by region</title>"), "{k:?}");
        match k {
            Kind::Number => assert!(has_text(&svg, "revenue") && has_text(&svg, "1,250,000.50")),
            Kind::Table => {
                // Only the y columns are shown.
                assert!(
                    has_text(&svg, "revenue") && has_text(&svg, "1,250,000.50"),
                    "{k:?}"
                );
                assert!(!has_text(&svg, "North"), "{k:?}");
            }
            Kind::Pie => {
                assert!(has_text(&svg, "region"), "{k:?}");
                // West (negative) is skipped, the others carry percentages.
                assert!(
                    texts(&svg).iter().any(|t| t.starts_with("North (")),
                    "{k:?}"
                );
                assert!(!texts(&svg).iter().any(|t| t.starts_with("West")), "{k:?}");
            }
            _ => {
                assert!(has_text(&svg, "region"), "{k:?} x name");
                assert!(has_text(&svg, "revenue"), "{k:?} y name");
                assert!(
                    has_text(&svg, "North") && has_text(&svg, "West"),
                    "{k:?} categories"
                );
            }
        }
    }
}

#[test]
fn several_y_columns_get_a_legend() {
    let svg = render(
        &chart(Kind::Bar, "Two", Some("region"), &["revenue", "orders"]),
        &sales(),
    );
    check(&svg);
    assert!(has_text(&svg, "revenue") && has_text(&svg, "orders"));
}

#[test]
fn series_pivot_and_stacking() {
    let t = daily();
    for kind in [Kind::Bar, Kind::Line, Kind::Area, Kind::Scatter] {
        for stacked in [false, true] {
            let mut c = chart(kind, "Visits", Some("day"), &["visits"]);
            c.series = Some("channel".into());
            c.stacked = stacked;
            let svg = render(&c, &t);
            check(&svg);
            assert!(
                has_text(&svg, "web") && has_text(&svg, "app"),
                "{kind:?} legend"
            );
            assert!(has_text(&svg, "channel"), "{kind:?} legend heading");
            assert!(!has_text(&svg, "No data to draw"), "{kind:?}");
        }
    }
}

#[test]
fn date_x_axis_shows_dates() {
    let t = daily();
    for kind in [Kind::Line, Kind::Area, Kind::Scatter] {
        let svg = render(&chart(kind, "Visits", Some("day"), &["visits"]), &t);
        check(&svg);
        let dates: Vec<String> = texts(&svg)
            .into_iter()
            .filter(|t| t.starts_with("Dec ") || t.starts_with("2026-12-"))
            .collect();
        assert!(dates.len() >= 2, "{kind:?}: {:?}", texts(&svg));
        // No raw epoch seconds as tick labels.
        assert!(
            !texts(&svg)
                .iter()
                .any(|t| t.contains("1,79") || t.contains("e9")),
            "{kind:?}"
        );
    }
    // Timestamps within a day show hours; RFC 3339 strings in a string column count as times.
    let t = Table::from_results(&json!({
        "columns": [{"name": "at", "type": "string"}, {"name": "n", "type": "integer"}],
        "rows": [["2026-12-01T10:00:00Z", 1], ["2026-12-01T14:30:00Z", 3], ["2026-12-01T18:00:00Z", 2]]
    }))
    .unwrap();
    let svg = render(&chart(Kind::Line, "Hourly", Some("at"), &["n"]), &t);
    check(&svg);
    assert!(
        texts(&svg)
            .iter()
            .any(|t| t.starts_with("Dec 01 ") && t.contains(':')),
        "{:?}",
        texts(&svg)
    );
}

/// Monthly dates under two series (a legend takes part of the width): the date labels
/// the axis shows stand apart, never run into each other.
#[test]
fn date_labels_beside_a_legend_do_not_overlap() {
    let rows: Vec<Value> = (1..=6)
        .flat_map(|m| {
            let day = format!("2026-{m:02}-01");
            [
                json!([day.clone(), 1000 + m, "north"]),
                json!([day, 900 + m, "south"]),
            ]
        })
        .collect();
    let t = Table::from_results(&json!({
        "columns": [
            {"name": "month", "type": "date"},
            {"name": "revenue", "type": "integer"},
            {"name": "region", "type": "string"}
        ],
        "rows": rows
    }))
    .unwrap();
    let mut line = chart(Kind::Line, "Trend", Some("month"), &["revenue"]);
    line.series = Some("region".to_owned());
    let svg = render(&line, &t);
    check(&svg);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let mut labels: Vec<(f64, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| {
            let text = n.text()?.trim().to_owned();
            let x = n.attribute("x")?.parse().ok()?;
            text.starts_with("2026-").then_some((x, text))
        })
        .collect();
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(labels.len() >= 2, "{labels:?}");
    for pair in labels.windows(2) {
        // 12 px text: at least 6 px a character, and a gap.
        let room = pair[0].1.chars().count() as f64 * 6.0 + 8.0;
        assert!(pair[1].0 - pair[0].0 >= room, "{labels:?}");
    }
}

#[test]
fn hostile_text_is_escaped_once_and_inert() {
    let long = "x".repeat(10_000);
    let names = [
        "</text><script>alert(1)</script>",
        "\" onload=\"x",
        "a&b",
        "]]>",
        "\u{0}\u{1}bad\u{7}",
        long.as_str(),
        "javascript:alert(1)",
    ];
    let columns: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "type": if i == 0 { "string" } else { "integer" }}))
        .collect();
    let rows: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut r = vec![json!(n)];
            r.extend((1..names.len()).map(|j| json!((i * j) as i64 + 1)));
            Value::Array(r)
        })
        .collect();
    let t = Table::from_results(&json!({"columns": columns, "rows": rows})).unwrap();
    for title in names {
        for &kind in &Kind::ALL {
            for y in [vec![names[2]], names[1..].to_vec()] {
                let mut c = chart(kind, title, Some(names[0]), &y);
                c.series = (kind == Kind::Line).then(|| names[0].to_owned());
                let svg = render(&c, &t);
                let text = check(&svg);
                assert!(!svg.contains("<script"), "{kind:?}");
                assert!(!svg.contains(&long), "long text is cut");
                assert!(svg.len() < 200_000);
                if kind != Kind::Number {
                    // `a&b` shows as a&b to the reader: escaped exactly once in the file.
                    assert!(text.contains("a&b"), "{kind:?}: {text}");
                    assert!(
                        svg.contains("a&amp;b") && !svg.contains("&amp;amp;"),
                        "{kind:?}"
                    );
                }
            }
        }
    }
    // The hostile title itself, decoded, is what the reader sees.
    let c = chart(
        Kind::Bar,
        "</text><script>alert(1)</script>",
        Some(names[0]),
        &[names[2]],
    );
    let svg = render(&c, &t);
    check(&svg);
    assert!(has_text(&svg, "</text><script>alert(1)</script>"));
    let c = chart(Kind::Table, "\u{0}\u{1}bad\u{7}", None, &[]);
    let svg = render(&c, &t);
    check(&svg);
    assert!(has_text(&svg, "bad"));
}

#[test]
fn output_is_deterministic() {
    for t in [sales(), daily()] {
        for &kind in &Kind::ALL {
            let mut c = chart(
                kind,
                "Same",
                t.columns.first().map(|c| c.name.as_str()),
                &[],
            );
            c.series =
                (t.columns.len() == 3 && t.columns[2].name == "channel").then(|| "channel".into());
            assert_eq!(render(&c, &t), render(&c, &t.clone()), "{kind:?}");
        }
    }
}

#[test]
fn big_numbers_have_readable_ticks() {
    let t = Table::from_results(&json!({
        "columns": ["k", "v"],
        "rows": [["a", 1000000000.0000001], ["b", 2500000000.5], ["c", "9007199254740993"], ["d", 3e9]]
    }))
    .unwrap();
    for kind in [Kind::Bar, Kind::Line, Kind::Area] {
        let svg = render(&chart(kind, "Big", Some("k"), &["v"]), &t);
        check(&svg);
        let ts = texts(&svg);
        for s in &ts {
            assert!(
                s.len() <= 12 || s == "Big" || !s.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{s}"
            );
            assert!(!s.contains("0000000"), "{kind:?} tick {s}");
        }
        // Short forms such as 2B / 4,000T appear, not 12-digit floats.
        assert!(
            ts.iter()
                .any(|s| s.ends_with('B') || s.ends_with('T') || s.ends_with('P')),
            "{kind:?}: {ts:?}"
        );
    }
    // >2^53 integer strings keep their exact digits in a number chart.
    let svg = render(
        &chart(Kind::Number, "Exact", None, &["v"]),
        &Table::from_results(&json!({
            "columns": [{"name": "v", "type": "integer"}], "rows": [["9007199254740993"]]
        }))
        .unwrap(),
    );
    check(&svg);
    assert!(has_text(&svg, "9,007,199,254,740,993"));
}

#[test]
fn plain_string_columns_draw_like_typed_columns() {
    let typed = sales();
    let plain = Table::from_results(&json!({
        "columns": ["region", "revenue", "orders"],
        "rows": typed.rows,
    }))
    .unwrap();
    assert_eq!(plain.columns[0].kind, ColumnType::String);
    assert_eq!(plain.columns[1].kind, ColumnType::Decimal);
    assert_eq!(plain.columns[2].kind, ColumnType::Integer);
    for &kind in &Kind::ALL {
        let c = chart(kind, "Same", Some("region"), &["revenue", "orders"]);
        assert_eq!(render(&c, &typed), render(&c, &plain), "{kind:?}");
    }
    let d = daily();
    let plain =
        Table::from_results(&json!({"columns": ["day", "visits", "channel"], "rows": d.rows}))
            .unwrap();
    assert_eq!(plain.columns[0].kind, ColumnType::Date);
    for kind in [Kind::Line, Kind::Area, Kind::Scatter, Kind::Bar] {
        let c = chart(kind, "Same", Some("day"), &["visits"]);
        assert_eq!(render(&c, &d), render(&c, &plain), "{kind:?}");
    }
}

#[test]
fn nothing_to_draw_still_gives_a_titled_svg() {
    let no_rows = Table::from_results(&json!({"columns": ["a", "b"], "rows": []})).unwrap();
    let no_cols = Table::from_results(&json!({"columns": []})).unwrap();
    let text_only =
        Table::from_results(&json!({"columns": ["a", "b"], "rows": [["x", "abc"], ["y", null]]}))
            .unwrap();
    for &kind in &Kind::ALL {
        for (t, x, y) in [
            (&no_rows, Some("a"), vec!["b"]),
            (&no_cols, None, vec![]),
            (&sales(), Some("region"), vec!["missing"]),
            (&sales(), Some("missing"), vec!["revenue"]),
            (&text_only, Some("a"), vec!["b"]),
        ] {
            let svg = render(&chart(kind, "Empty", x, &y), t);
            check(&svg);
            assert!(has_text(&svg, "Empty"), "{kind:?}");
            if kind == Kind::Table && y.is_empty() {
                continue;
            }
            if kind == Kind::Table && t == &text_only {
                continue; // a table of text is something to draw
            }
            if kind == Kind::Number && t == &text_only {
                assert!(has_text(&svg, "abc"));
                continue;
            }
            if matches!(kind, Kind::Table | Kind::Number) && x == Some("missing") {
                continue; // neither needs x
            }
            assert!(
                has_text(&svg, "No data to draw"),
                "{kind:?} {x:?} {y:?}: {:?}",
                texts(&svg)
            );
        }
        {
            let svg = render(
                &chart(kind, "Empty", Some("region"), &["missing"]),
                &sales(),
            );
            assert!(
                texts(&svg).iter().any(|t| t.contains("\"missing\"")),
                "{kind:?}"
            );
        }
    }
}

#[test]
fn bad_values_are_skipped() {
    let t = Table::from_results(&json!({
        "columns": [{"name": "x", "type": "float"}, {"name": "y", "type": "float"}],
        "rows": [[1, 2], [2, "NaN"], [3, "abc"], [4, "inf"], ["x", 5], [5, "3.5"], [6, null], [7, true], [8]]
    }))
    .unwrap();
    for &kind in &Kind::ALL {
        let svg = render(&chart(kind, "Skips", Some("x"), &["y"]), &t);
        check(&svg);
        assert!(!has_text(&svg, "No data to draw"), "{kind:?}");
        assert!(!svg.contains("NaN") || kind == Kind::Table, "{kind:?}");
    }
    // Scatter: exactly the two good points are drawn.
    let svg = render(&chart(Kind::Scatter, "Skips", Some("x"), &["y"]), &t);
    assert_eq!(svg.matches("<circle").count(), 2);
}

#[test]
fn from_results_shapes() {
    assert!(Table::from_results(&json!([1, 2])).is_none());
    assert!(Table::from_results(&json!({"rows": []})).is_none());
    assert!(Table::from_results(&json!({"columns": "a"})).is_none());
    assert!(Table::from_results(&json!({"columns": ["a"], "rows": [1, 2]})).is_none());
    assert!(Table::from_results(&json!({"columns": [1]})).is_none());
    let t = Table::from_results(&json!({
        "columns": [{"name": "a", "type": "weird"}, "b"],
        "rows": [[1], [1, 2, 3]]
    }))
    .unwrap();
    assert_eq!(t.columns[0].kind, ColumnType::String);
    assert_eq!(
        t.rows,
        vec![vec![json!(1), Value::Null], vec![json!(1), json!(2)]]
    );
    assert_eq!(t.column_names().collect::<Vec<_>>(), ["a", "b"]);
    let p = t.project(&["b", "a", "b", "zzz"]);
    assert_eq!(p.column_names().collect::<Vec<_>>(), ["b", "a"]);
    assert_eq!(p.rows[1], vec![json!(2), json!(1)]);
    let ct: ColumnType = serde_json::from_value(json!("TIMESTAMPTZ")).unwrap();
    assert_eq!(ct, ColumnType::Timestamp);
    assert_eq!(
        serde_json::to_value(ColumnType::Decimal).unwrap(),
        json!("decimal")
    );
}

#[test]
fn kind_names() {
    for k in Kind::ALL {
        assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
    }
    assert_eq!(" PIE ".parse::<Kind>().unwrap(), Kind::Pie);
    assert!("donut".parse::<Kind>().is_err());
}

#[test]
fn many_categories_and_slices_are_capped() {
    let rows: Vec<Value> = (0..80)
        .map(|i| json!([format!("category {i}"), i + 1]))
        .collect();
    let t = Table::from_results(&json!({"columns": ["c", "v"], "rows": rows})).unwrap();
    let svg = render(&chart(Kind::Bar, "Many", Some("c"), &["v"]), &t);
    check(&svg);
    assert!(
        texts(&svg)
            .iter()
            .any(|t| t.contains("showing first 50 of 80"))
    );
    assert_eq!(
        svg.matches("<rect").count() - 1,
        50,
        "one bar per shown category (plus background)"
    );
    let svg = render(&chart(Kind::Pie, "Many", Some("c"), &["v"]), &t);
    check(&svg);
    assert!(texts(&svg).iter().any(|t| t.starts_with("Other (71)")));
    let svg = render(&chart(Kind::Table, "Many", None, &[]), &t);
    assert!(has_text(&svg, "… 65 more rows"));
}

#[test]
fn palette_contrast() {
    // Every series colour used in a chart with ten series has ≥ 3:1 contrast on white.
    let cols: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let mut columns = vec![json!("k")];
    columns.extend(cols.iter().map(|c| json!(c)));
    let t =
        Table::from_results(&json!({"columns": columns, "rows": [["a", 1,2,3,4,5,6,7,8,9,10]]}))
            .unwrap();
    let svg = render(&chart(Kind::Bar, "Palette", Some("k"), &[]), &t);
    check(&svg);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for n in doc.descendants().filter(|n| n.has_tag_name("rect")) {
        let fill = n.attribute("fill").unwrap_or("none");
        if fill == "#FFFFFF" || fill == "none" || n.attribute("opacity") == Some("0") {
            continue;
        }
        seen.insert(fill.to_owned());
    }
    assert!(seen.len() >= 10, "{seen:?}");
    for c in seen {
        let rgb: Vec<f64> = (0..3)
            .map(|i| u8::from_str_radix(&c[1 + 2 * i..3 + 2 * i], 16).unwrap() as f64 / 255.0)
            .map(|v| {
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            })
            .collect();
        let l = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
        assert!(1.05 / (l + 0.05) >= 3.0, "{c}");
    }
}

/// Writes one SVG of each kind to $PLOT_LOOK_DIR, to look at (`rsvg-convert`).
#[test]
fn write_samples_when_asked() {
    let Ok(dir) = std::env::var("PLOT_LOOK_DIR") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let s = sales();
    let d = daily();
    let mut samples: Vec<(&str, Chart, &Table)> = Vec::new();
    for &k in &Kind::ALL {
        samples.push((
            k.as_str(),
            chart(k, "Revenue by region, 2026", Some("region"), &["revenue"]),
            &s,
        ));
    }
    let mut c = chart(
        Kind::Line,
        "Daily visits by channel",
        Some("day"),
        &["visits"],
    );
    c.series = Some("channel".into());
    samples.push(("line-dates", c.clone(), &d));
    c.kind = Kind::Area;
    c.stacked = true;
    samples.push(("area-stacked", c.clone(), &d));
    c.kind = Kind::Bar;
    samples.push(("bar-stacked", c.clone(), &d));
    c.stacked = false;
    samples.push(("bar-grouped", c.clone(), &d));
    samples.push((
        "bar-two-y",
        chart(
            Kind::Bar,
            "Revenue and orders",
            Some("region"),
            &["revenue", "orders"],
        ),
        &s,
    ));
    samples.push((
        "scatter-dates",
        chart(Kind::Scatter, "Visits", Some("day"), &["visits"]),
        &d,
    ));
    let empty = Table::from_results(&json!({"columns": ["a"], "rows": []})).unwrap();
    samples.push((
        "empty",
        chart(Kind::Bar, "Nothing here", Some("a"), &["a"]),
        &empty,
    ));
    let rows: Vec<Value> = (0..80)
        .map(|i| json!([format!("category number {i}"), (i * 37 % 23) as f64 * 1.5e6]))
        .collect();
    let many = Table::from_results(&json!({"columns": ["c", "v"], "rows": rows})).unwrap();
    samples.push((
        "bar-many",
        chart(Kind::Bar, "Many categories", Some("c"), &["v"]),
        &many,
    ));
    samples.push((
        "pie-many",
        chart(Kind::Pie, "Many slices", Some("c"), &["v"]),
        &many,
    ));
    samples.push((
        "table-many",
        chart(Kind::Table, "Many rows", None, &[]),
        &many,
    ));
    let hostile = Table::from_results(&json!({
        "columns": ["</text><script>alert(1)</script>", "a&b"],
        "rows": [["\" onload=\"x", 5], ["]]>", 7]]
    }))
    .unwrap();
    samples.push((
        "hostile",
        chart(
            Kind::Bar,
            "a&b </text><script>",
            Some("</text><script>alert(1)</script>"),
            &["a&b"],
        ),
        &hostile,
    ));
    let hours = Table::from_results(&json!({
        "columns": ["at", "n"],
        "rows": [["2026-12-01T10:00:00Z", 1], ["2026-12-01T14:30:00Z", 3], ["2026-12-01T18:00:00Z", 2]]
    })).unwrap();
    samples.push((
        "line-hours",
        chart(Kind::Line, "Hourly", Some("at"), &["n"]),
        &hours,
    ));
    for (name, c, t) in samples {
        std::fs::write(format!("{dir}/{name}.svg"), render(&c, t)).unwrap();
    }
}
