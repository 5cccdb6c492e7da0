//! The merchant portal's users and sessions (migration 17). Users are people of
//! one merchant; a session is stored as the SHA-256 of its cookie's token, so
//! any node serves it and a copy of the database opens none.

use uuid::Uuid;

use super::query::record;
use super::{Actor, Db, StoreError, Tenant, on_conn};

record! {
    #[derive(Debug, Clone)]
    pub struct UserRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub email: String,
        pub role: String,
        pub password_hash: String,
        pub status: String,
        pub created_at: i64,
    }
}

const USER_COLUMNS: &str = UserRecord::COLUMNS;

record! {
    /// A live session with its user.
    #[derive(Debug, Clone)]
    pub struct SessionRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub user_id: Uuid,
        pub email: String,
        pub role: String,
        pub created_at: i64,
        pub last_seen_at: i64,
    }
}

impl Db {
    /// Adds a user; `Conflict` when the email is taken (by any merchant: it is
    /// what signing in is by).
    pub async fn create_portal_user(
        &self,
        tenant: Tenant,
        id: Uuid,
        email: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let (email, role, hash) = (email.to_owned(), role.to_owned(), password_hash.to_owned());
        self.write(Actor::system(tenant), move |mut tx| async move {
            let (merchant, now) = (tx.merchant(), tx.now);
            let taken: Option<(Uuid,)> =
                tx.fetch_optional("SELECT id FROM portal_users WHERE email = $1", &[&email]).await?;
            if taken.is_some() {
                return Err(StoreError::Conflict { code: "email_taken", message: "A user with this email exists." });
            }
            tx.exec(
                "INSERT INTO portal_users (merchant_id, id, email, role, password_hash, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $6)",
                &[&merchant, &id, &email, &role, &hash, &now],
            )
            .await?;
            tx.commit().await
        })
        .await
    }

    pub async fn portal_users(&self, merchant: Uuid) -> Result<Vec<UserRecord>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM portal_users WHERE merchant_id = $1 ORDER BY email");
        on_conn!(self.reader(), p => sqlx::query_as::<_, UserRecord>(&sql).bind(merchant).fetch_all(p).await)
    }

    pub async fn portal_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM portal_users WHERE email = $1");
        on_conn!(self.reader(), p => sqlx::query_as::<_, UserRecord>(&sql).bind(email).fetch_optional(p).await)
    }

    /// Disables a user and ends every session of theirs; `false` when no user has this id.
    pub async fn disable_portal_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let owner: Option<(Uuid,)> = on_conn!(self.reader(), p => sqlx::query_as(
            "SELECT merchant_id FROM portal_users WHERE id = $1").bind(id).fetch_optional(p).await)?;
        let Some((merchant,)) = owner else { return Ok(false) };
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let now = tx.now;
            tx.exec(
                "UPDATE portal_users SET status = 'disabled', updated_at = $3 WHERE merchant_id = $1 AND id = $2",
                &[&merchant, &id, &now],
            )
            .await?;
            tx.exec("DELETE FROM portal_sessions WHERE merchant_id = $1 AND user_id = $2", &[&merchant, &id]).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub async fn create_portal_session(&self, user: &UserRecord, token_hash: &[u8]) -> Result<(), StoreError> {
        let (merchant, user_id, hash) = (user.merchant_id, user.id, token_hash.to_vec());
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let now = tx.now;
            tx.exec(
                "INSERT INTO portal_sessions (merchant_id, id, token_hash, user_id, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
                &[&merchant, &Uuid::now_v7(), &hash, &user_id, &now],
            )
            .await?;
            tx.commit().await
        })
        .await
    }

    /// The session whose token hashes to `token_hash`, with its active user.
    pub async fn portal_session(&self, token_hash: &[u8]) -> Result<Option<SessionRecord>, sqlx::Error> {
        let sql = "SELECT s.merchant_id, s.id, s.user_id, u.email, u.role, s.created_at, s.last_seen_at \
                   FROM portal_sessions s JOIN portal_users u ON u.merchant_id = s.merchant_id AND u.id = s.user_id \
                   WHERE s.token_hash = $1 AND u.status = 'active'";
        on_conn!(self.reader(), p => sqlx::query_as::<_, SessionRecord>(sql).bind(token_hash).fetch_optional(p).await)
    }

    /// Records that the session was used now (its idle expiry counts from here).
    pub async fn touch_portal_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let (merchant, id) = (s.merchant_id, s.id);
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let now = tx.now;
            tx.exec(
                "UPDATE portal_sessions SET last_seen_at = $3 WHERE merchant_id = $1 AND id = $2",
                &[&merchant, &id, &now],
            )
            .await?;
            tx.commit().await
        })
        .await
    }

    /// Ends one session, or with `everywhere` every session of its user.
    pub async fn end_portal_session(&self, s: &SessionRecord, everywhere: bool) -> Result<(), StoreError> {
        let (merchant, id, user) = (s.merchant_id, s.id, s.user_id);
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            if everywhere {
                tx.exec("DELETE FROM portal_sessions WHERE merchant_id = $1 AND user_id = $2", &[&merchant, &user])
                    .await?;
            } else {
                tx.exec("DELETE FROM portal_sessions WHERE merchant_id = $1 AND id = $2", &[&merchant, &id]).await?;
            }
            tx.commit().await
        })
        .await
    }

    /// The user's password hash, for checking their current password.
    pub async fn portal_password_hash(&self, merchant: Uuid, user: Uuid) -> Result<Option<String>, sqlx::Error> {
        let sql = "SELECT password_hash FROM portal_users WHERE merchant_id = $1 AND id = $2 AND status = 'active'";
        let row: Option<(String,)> =
            on_conn!(self.reader(), p => sqlx::query_as(sql).bind(merchant).bind(user).fetch_optional(p).await)?;
        Ok(row.map(|(h,)| h))
    }

    /// Replaces the session's user's password and ends their other sessions.
    pub async fn set_portal_password(&self, s: &SessionRecord, password_hash: &str) -> Result<(), StoreError> {
        let (merchant, id, user, hash) = (s.merchant_id, s.id, s.user_id, password_hash.to_owned());
        self.write(Actor::system(Tenant::trusted(merchant)), move |mut tx| async move {
            let now = tx.now;
            tx.exec(
                "UPDATE portal_users SET password_hash = $3, updated_at = $4 WHERE merchant_id = $1 AND id = $2",
                &[&merchant, &user, &hash, &now],
            )
            .await?;
            tx.exec(
                "DELETE FROM portal_sessions WHERE merchant_id = $1 AND user_id = $2 AND id <> $3",
                &[&merchant, &user, &id],
            )
            .await?;
            tx.commit().await
        })
        .await
    }
}
