//! Server tags (`instance_tags`): a set of strings per instance.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use novum_db::DbError;

/// The tags of `uuid`, sorted.
pub async fn of_instance(conn: &mut AnyConnection, uuid: &str) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query("SELECT tag FROM instance_tags WHERE instance_uuid = $1 ORDER BY tag")
        .bind(uuid)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get("tag"))
        .collect::<Result<_, _>>()?)
}

/// The tags (sorted) of each of the instances `uuids` that has some, by
/// instance uuid: one read for a page of a server list.
pub async fn of_instances(
    conn: &mut AnyConnection,
    uuids: &[String],
) -> Result<HashMap<String, Vec<String>>, DbError> {
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    if uuids.is_empty() {
        return Ok(tags);
    }
    let mut clauses = novum_db::Clauses::default();
    let list = clauses.text_list(uuids);
    clauses.push(format!("instance_uuid IN ({list})"));
    let sql = format!(
        "SELECT instance_uuid, tag FROM instance_tags WHERE {} ORDER BY instance_uuid, tag",
        clauses.sql()
    );
    let rows = clauses
        .bind_all_rows(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        tags.entry(row.try_get("instance_uuid")?)
            .or_default()
            .push(row.try_get("tag")?);
    }
    Ok(tags)
}

/// Makes `tags` the tags of `uuid`.
pub async fn replace(conn: &mut AnyConnection, uuid: &str, tags: &[String]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM instance_tags WHERE instance_uuid = $1")
        .bind(uuid)
        .execute(&mut *conn)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO instance_tags (instance_uuid, tag) VALUES ($1, $2)")
            .bind(uuid)
            .bind(tag)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
