//! why: `sqlx::migrate!` embeds the migration files at compile time; without this, adding a
//! new .sql file would not trigger a rebuild and the binary would silently lack it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
