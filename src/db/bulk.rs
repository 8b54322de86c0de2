//! Multi-row INSERTs that work on both backends.
//!
//! sqlx's `QueryBuilder` on the `Any` driver writes `?` placeholders, which PostgreSQL
//! refuses; this writes `$1, $2, …` like every other query here. Used for seeding (demo data,
//! benchmarks), where one statement per row would dominate the time.

use anyhow::Context as _;
use sqlx::AnyPool;

/// One bound value of a row.
#[derive(Debug, Clone)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values.
pub fn values_clause(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `head VALUES (…), (…) tail` with every row bound; returns the first column of what
/// `tail` (e.g. `RETURNING id`) gives back, or nothing.
pub async fn insert(
    pool: &AnyPool,
    head: &str,
    rows: &[Vec<Value>],
    tail: &str,
) -> anyhow::Result<Vec<i64>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "{head} VALUES {} {tail}",
        values_clause(rows.len(), first.len())
    );
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
    for value in rows.iter().flatten() {
        query = match value {
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.clone()),
        };
    }
    if tail.trim().is_empty() {
        query
            .fetch_all(pool)
            .await
            .map(|_| Vec::new())
            .context("bulk insert failed")
    } else {
        query.fetch_all(pool).await.context("bulk insert failed")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(super::values_clause(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::values_clause(0, 3), "");
    }
}
