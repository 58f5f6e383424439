//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! files of `migrations/` at compile time but cannot see new ones by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
