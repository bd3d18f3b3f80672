//! A first program on the `domain` crate, as a third party would write it: open a database,
//! bring its schema up, register, publish reports until the free tier's monthly limit
//! refuses one, lift the limit as an operator, and view a report as the public does.
//!
//! Run it with `cargo run -p domain --example first_steps` (a SQLite file in a temporary
//! folder), or point it at PostgreSQL with `DATABASE_URL=postgres://...`.
use std::sync::Arc;

use domain::{
    Admin, Context, Database, Domain, Error, Hasher, LimitKind, NewAccount, NewAnalysis, NewReport,
    SystemClock, Tier,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}?mode=rwc",
            folder.path().join("iops.db").display()
        )
    });

    // 1. The database, and its schema (the `migration` crate owns the revisions).
    let database = Database::connect(&url, 4).await?;
    migration::schema::upgrade(database.connection(), None).await?;

    // 2. The services. No dataset store: this program uploads no files.
    let ctx = Context::new(database.clone(), Arc::new(SystemClock), Hasher::new(2));
    let domain = Domain::new(ctx);

    // 3. An account: free tier, three reports a month.
    let email = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());
    let user = domain
        .accounts
        .register(NewAccount {
            email: email.clone(),
            password: "correct horse battery".to_owned(),
            full_name: Some("Ada".to_owned()),
        })
        .await?;
    println!("registered {} on the {} tier", user.email, user.tier);

    let session = domain
        .accounts
        .login(&email, "correct horse battery", "example")
        .await?;
    let caller = domain.tokens.authenticate(&session.token.secret).await?;
    assert!(matches!(caller.admin(), Err(Error::Forbidden(_))));

    let analysis = domain
        .analyses
        .create(
            caller.id(),
            NewAnalysis {
                name: "Revenue by region".to_owned(),
                dataset_id: None,
                config: Some(serde_json::json!({"group_by": ["region"]})),
            },
        )
        .await?;

    // 4. Publish until the tier says no.
    let mut codes = Vec::new();
    loop {
        match domain
            .reports
            .create(caller.id(), analysis.id, NewReport::default())
            .await
        {
            Ok(report) => codes.push(report.short_code),
            Err(Error::LimitExceeded {
                limit: LimitKind::Reports,
                allowed,
                resets_at: Some(resets_at),
                ..
            }) => {
                println!("limit reached: {allowed} reports a month, until {resets_at}");
                break;
            }
            Err(other) => return Err(other.into()),
        }
    }
    assert_eq!(codes.len(), 3);

    // 5. The operator lifts it.
    let operator = Admin::local_operator();
    domain
        .accounts
        .admin_update(&operator, caller.id(), Some(Tier::Pro), None)
        .await?;
    let report = domain
        .reports
        .create(caller.id(), analysis.id, NewReport::default())
        .await?;
    println!("published /r/{} on the pro tier", report.short_code);

    // 6. What the public sees; each view counts once.
    let view = domain.reports.view(&report.short_code, None).await?;
    println!("viewed {:?} ({} view)", view.analysis.name, view.view_count);
    assert_eq!(view.view_count, 1);

    database.close().await;
    Ok(())
}
