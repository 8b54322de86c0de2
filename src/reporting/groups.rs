//! The error groups `/admin/errors` lists and resolves: the service its routes call (the
//! storage is `db::error_groups`; recording and claiming occurrences is the worker's).

use crate::db::Db;
use crate::db::error_groups::{self, ErrorGroup};
use crate::domain::PageRequest;

/// A page of groups, newest first, and how many there are in all.
pub async fn list(db: &Db, page: PageRequest) -> anyhow::Result<(Vec<ErrorGroup>, i64)> {
    let groups = error_groups::list_groups(db, page.per_page, page.offset()).await?;
    let total = error_groups::count_groups(db).await?;
    Ok((groups, total))
}

/// Marks a group resolved (its next occurrence is e-mailed as a new error) and answers it as
/// it now is; `None` when there is no such group.
pub async fn resolve(db: &Db, id: i64) -> anyhow::Result<Option<ErrorGroup>> {
    if !error_groups::resolve(db, id).await? {
        return Ok(None);
    }
    error_groups::find_by_id(db, id).await
}
