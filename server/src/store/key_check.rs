//! The key check: the fingerprint of the key the stored credentials are encrypted with
//! (see `auth::key_check`), and a look for one stored credential to try a key on.

use app::{
    entities::{Entity, Gateway, Tool, tool::HEADER_ENVELOPE},
    model::EntityKind,
};
use sqlx::{AssertSqlSafe, types::Json};

use super::{Store, now, with_pool};

/// Rows read per query while looking for a stored credential.
const PAGE: i64 = 200;

/// One encrypted value held by a stored entity, and where it is.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub kind: EntityKind,
    pub key: String,
    /// JSON Pointer below the entity, e.g. `/auth_value`.
    pub pointer: String,
    pub blob: String,
}

impl Store {
    /// The recorded key fingerprint, if any.
    pub async fn key_check(&self) -> sqlx::Result<Option<String>> {
        with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT fingerprint FROM key_check WHERE id = 1"
        )
        .fetch_optional(pool)
        .await)
    }

    /// Records `fingerprint` in place of `expected` (`None`: no check recorded yet) and
    /// answers the fingerprint recorded afterwards. A conditional write, so that of two
    /// processes claiming at once one wins and the other sees the winner's key.
    pub async fn claim_key_check(
        &self,
        fingerprint: &str,
        expected: Option<&str>,
    ) -> sqlx::Result<String> {
        with_pool!(self, |pool| {
            match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO key_check (id, fingerprint, recorded_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(fingerprint)
                    .bind(now())
                    .execute(pool)
                    .await?
                }
                Some(old) => {
                    sqlx::query(
                        "UPDATE key_check SET fingerprint = $1, recorded_at = $2 \
                     WHERE id = 1 AND fingerprint = $3",
                    )
                    .bind(fingerprint)
                    .bind(now())
                    .bind(old)
                    .execute(pool)
                    .await?
                }
            };
            sqlx::query_scalar("SELECT fingerprint FROM key_check WHERE id = 1")
                .fetch_one(pool)
                .await
        })
    }

    /// The first stored credential found (an `auth_value`, a query parameter or a
    /// sensitive header of a tool or gateway), or `None` when no entity carries one.
    pub async fn first_credential(&self) -> sqlx::Result<Option<StoredCredential>> {
        if let Some(found) = self.first_credential_of::<Tool>().await? {
            return Ok(Some(found));
        }
        self.first_credential_of::<Gateway>().await
    }

    /// Reads the rows that may carry a credential (a typed one has `auth_type`; the
    /// others name their field in the JSON), in key order, until one does.
    async fn first_credential_of<E: Entity>(&self) -> sqlx::Result<Option<StoredCredential>> {
        let sql = format!(
            "SELECT key, doc FROM {} WHERE key > $1 AND (auth_type IS NOT NULL \
             OR CAST(doc AS TEXT) LIKE $2 OR CAST(doc AS TEXT) LIKE $3) ORDER BY key LIMIT $4",
            E::KIND.plural()
        );
        let envelope = format!("%{HEADER_ENVELOPE}%");
        let mut after = String::new();
        loop {
            let rows: Vec<(String, Json<E>)> =
                with_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .bind(&after)
                    .bind("%auth_query_params%")
                    .bind(&envelope)
                    .bind(PAGE)
                    .fetch_all(pool)
                    .await)?;
            let full = rows.len() as i64 == PAGE;
            for (key, Json(mut entity)) in rows {
                if let Some((pointer, blob)) = entity.blobs_mut().into_iter().next() {
                    return Ok(Some(StoredCredential {
                        kind: E::KIND,
                        key,
                        pointer,
                        blob: blob.clone(),
                    }));
                }
                after = key;
            }
            if !full {
                return Ok(None);
            }
        }
    }
}
