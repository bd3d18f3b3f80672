//! `cargo run -p migration -- up|down|status` (and `sea-orm-cli migrate ...`): the standard
//! sea-orm-migration command line, sharing its history with `iops migrate`.
use migration::{Migrator, adopt_alembic};
use sea_orm_migration::sea_orm::{ConnectOptions, Database, DbConn, DbErr};

async fn connect(options: ConnectOptions) -> Result<DbConn, DbErr> {
    let db = Database::connect(options).await?;
    // A database from the Python era first has its Alembic revision recorded here,
    // exactly as `iops migrate` does, so both tools agree on what is applied.
    adopt_alembic(&db).await?;
    Ok(db)
}

#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli_with_connection(Migrator, connect).await;
}
