//! Customer verification: five formats, codes, expiry, lockout, the outbox.

use serde_json::{Value, json};

use crate::both;
use crate::helpers::TestApp;

async fn account(app: &TestApp, risk: &str, with_contacts: bool) -> String {
    let mut c = json!({"firstName": "Veri", "lastName": "Fied", "billingAddress": {"state": "ON", "country": "CA"}});
    if with_contacts {
        c["email"] = json!("veri.fied@example.com");
        c["mobilePhoneNumber"] = json!("+14165552222");
    }
    let customer = app.create(c).await;
    let body = json!({"accountType": "consumer", "creditLimit": 500, "accountInterestRate": 0.2999, "riskRating": risk,
        "securityQuestions": [{"id": 4, "text": "Childhood friend?", "answer": "Jimmy Page"}]});
    app.post(&format!("/customers/{customer}/credit-accounts"), body).await.expect(200)["accountNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify(app: &TestApp, number: &str, body: Value) -> crate::helpers::Resp {
    app.post(&format!("/credit-accounts/{number}/verify"), body).await
}

/// The newest outbox message, opened with the test master key (what the SMS
/// gateway or mail server would receive).
async fn last_message(app: &TestApp) -> (String, String, String) {
    let cfg = app.test_db.config();
    let vault = clientele::crypto::Vault::new(
        clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap(),
    );
    app.db.load_keys(&vault).await.unwrap();
    let url = &app.test_db.url;
    let sqlite = url.starts_with("sqlite");
    let (id_sql, text_sql) =
        if sqlite { ("id", "CAST(channel AS BLOB)") } else { ("uuid_send(id)", "convert_to(channel, 'UTF8')") };
    let id = crate::helpers::blob(
        url,
        &format!("SELECT {id_sql} FROM notification_outbox ORDER BY created_at DESC, id DESC LIMIT 1"),
    )
    .await;
    let id = uuid::Uuid::from_slice(&id).unwrap();
    let channel = String::from_utf8(
        crate::helpers::blob(
            url,
            &format!("SELECT {text_sql} FROM notification_outbox WHERE id = {}", id_literal(url, id)),
        )
        .await,
    )
    .unwrap();
    let open = |field: &str, blob: Vec<u8>| {
        String::from_utf8(
            vault.open(&blob, &clientele::store::keys::secret_aad(app.merchant, id, field)).unwrap().to_vec(),
        )
        .unwrap()
    };
    let recipient = open(
        "outbox:recipient",
        crate::helpers::blob(
            url,
            &format!("SELECT recipient FROM notification_outbox WHERE id = {}", id_literal(url, id)),
        )
        .await,
    );
    let body = open(
        "outbox:body",
        crate::helpers::blob(url, &format!("SELECT body FROM notification_outbox WHERE id = {}", id_literal(url, id)))
            .await,
    );
    (channel, recipient, body)
}

fn id_literal(url: &str, id: uuid::Uuid) -> String {
    if url.starts_with("sqlite") { format!("X'{}'", id.simple()) } else { format!("'{id}'") }
}

fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned()
}

both! {
    async fn security_question_and_lockout(app: TestApp) {
        let n = account(&app, "L", true).await;
        let r = verify(&app, &n, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "  jimmy   PAGE ", "requestId": "12345678901234567890"})).await;
        let code = r.expect(200)["verificationCode"].as_u64().unwrap();
        assert!((100_000..1_000_000).contains(&code));
        // The code confirms once.
        let path = format!("/credit-accounts/{n}/verify/confirm");
        assert_eq!(app.post(&path, json!({"code": code.to_string()})).await.expect(200), &json!({"verified": true}));
        app.post(&path, json!({"code": code})).await.expect_error(400, "verification_failed");
        for _ in 0..3 {
            verify(&app, &n, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Robert Plant"})).await.expect_error(400, "verification_failed");
        }
        // The fifth failure (one wrong code above, four wrong answers) locks.
        let r = verify(&app, &n, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "nope"})).await;
        r.expect_error(429, "verification_locked");
        assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 1700);
        let r = verify(&app, &n, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Jimmy Page"})).await;
        r.expect_error(429, "verification_locked");
        app.post(&path, json!({"code": "123456"})).await.expect_error(429, "verification_locked");
        verify(&app, &n, json!({"format": "sms"})).await.expect_error(429, "verification_locked");
        // The lock is in the database: any node sees it.
        let locked = crate::helpers::int_pairs(&app.test_db.url, &format!("SELECT COUNT(*), CAST(0 AS BIGINT) FROM credit_accounts WHERE account_number = '{n}' AND verify_locked_until IS NOT NULL")).await;
        assert_eq!(locked[0].0, 1);
        verify(&app, &n, json!({"format": "security_question", "securityQid": 4})).await.expect_error(400, "validation_failed");
    }

    async fn sms_and_email_go_through_the_outbox(app: TestApp) {
        let n = account(&app, "H", true).await;
        let r = verify(&app, &n, json!({"format": "sms", "requestId": "r-1"})).await;
        assert_eq!(r.expect(200), &json!({"verificationCode": "verification_sent_to_sms"}));
        let (channel, to, text) = last_message(&app).await;
        assert_eq!((channel.as_str(), to.as_str()), ("sms", "+14165552222"));
        let code = code_in(&text);
        let path = format!("/credit-accounts/{n}/verify/confirm");
        app.post(&path, json!({"code": "000000"})).await.expect_error(400, "verification_failed");
        app.post(&path, json!({"code": code})).await.expect(200);
        let r = verify(&app, &n, json!({"format": "email"})).await;
        assert_eq!(r.expect(200)["verificationCode"], "verification_sent_to_email");
        let (channel, to, text) = last_message(&app).await;
        assert_eq!((channel.as_str(), to.as_str()), ("email", "veri.fied@example.com"));
        // Codes expire.
        let url = &app.test_db.url;
        crate::helpers::int_pairs(url, "SELECT COUNT(*), CAST(0 AS BIGINT) FROM credit_verifications").await;
        expire_codes(url).await;
        app.post(&path, json!({"code": code_in(&text)})).await.expect_error(400, "verification_failed");
        // Nothing secret in events.
        let feed = app.get("/events?limit=500").await.body.to_string();
        assert!(!feed.contains(&code) && !feed.contains("5552222") && !feed.contains("veri.fied"));
        // Key rotation re-encrypts outbox messages too; they still open.
        let cfg = app.test_db.config();
        let vault = clientele::crypto::Vault::new(clientele::crypto::load_master_key(cfg.master_key.as_ref(), &cfg.data_dir).unwrap());
        let report = app.db.rotate_keys(&vault).await.unwrap();
        assert_eq!(report.reencrypted, 3, "the account's virtual card and the two messages");
        assert_eq!(last_message(&app).await.1, "veri.fied@example.com");
        let bare = account(&app, "L", false).await;
        verify(&app, &bare, json!({"format": "sms"})).await.expect_error(409, "no_contact_on_file");
        // Seed 004: the format defaults to sms.
        let other = account(&app, "H", true).await;
        let r = verify(&app, &other, json!({"requestId": "r-2"})).await;
        assert_eq!(r.expect(200), &json!({"verificationCode": "verification_sent_to_sms"}));
        let (channel, _, _) = last_message(&app).await;
        assert_eq!(channel, "sms");
    }

    async fn override_and_bypass_rules(app: TestApp) {
        let low = account(&app, "L", true).await;
        let high = account(&app, "H", true).await;
        verify(&app, &low, json!({"format": "merchant_override"})).await.expect_error(403, "merchant_override_not_allowed");
        let tenant = crate::helpers::tenant_of(app.merchant, &app.db).await;
        app.db.configure_merchant(tenant, None, Some(true)).await.unwrap();
        assert!(verify(&app, &low, json!({"format": "merchant_override"})).await.expect(200)["verificationCode"].is_u64());
        assert!(verify(&app, &low, json!({"format": "regular_purchase_bypass"})).await.expect(200)["verificationCode"].is_u64());
        verify(&app, &high, json!({"format": "regular_purchase_bypass"})).await.expect_error(409, "bypass_not_allowed");
        verify(&app, &low, json!({"format": "carrier_pigeon"})).await.expect_error(400, "validation_failed");
        verify(&app, &low, json!({"format": "sms", "vccNumber": "4111111111111111"})).await.expect_error(409, "vcc_mismatch");
        app.post(&format!("/credit-accounts/{low}/close"), json!({})).await.expect(200);
        verify(&app, &low, json!({"format": "merchant_override"})).await.expect_error(409, "account_closed");
        verify(&app, "99999999", json!({"format": "sms"})).await.expect_error(404, "not_found");
    }
}

async fn expire_codes(url: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("UPDATE credit_verifications SET expires_at = 0").execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("UPDATE credit_verifications SET expires_at = 0").execute(&mut c).await.unwrap();
    }
}

both! {
    async fn an_answer_hashed_before_the_pepper_still_verifies_and_is_replaced(app: TestApp) {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let number = account(&app, "L", false).await;
        let url = &app.test_db.url;
        let stored = crate::helpers::text(url, "SELECT answer_hash FROM credit_security_questions").await;
        assert!(stored.contains("keyid="), "{stored}");
        let salt = SaltString::encode_b64(b"an-old-salt-1234").unwrap();
        let old = argon2::Argon2::default().hash_password(b"jimmy page", &salt).unwrap().to_string();
        crate::helpers::exec(url, &format!("UPDATE credit_security_questions SET answer_hash = '{old}'")).await;
        let r = verify(&app, &number, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "JIMMY  page"})).await;
        assert!(r.expect(200)["verificationCode"].is_number(), "{}", r.body);
        let now = crate::helpers::text(url, "SELECT answer_hash FROM credit_security_questions").await;
        assert!(now.contains("keyid=") && now != old, "{now}");
        let again = verify(&app, &number, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "jimmy page"})).await;
        assert!(again.expect(200)["verificationCode"].is_number());
    }
}

/// Moves every code's sending time a minute back, as if the client had waited.
async fn age_codes(url: &str) {
    crate::helpers::exec(url, "UPDATE credit_verifications SET created_at = created_at - 61000").await;
}

both! {
    async fn codes_replace_each_other_and_sends_are_throttled(app: TestApp) {
        let n = account(&app, "L", true).await;
        let url = app.test_db.url.clone();
        verify(&app, &n, json!({"format": "sms"})).await.expect(200);
        let first = code_in(&last_message(&app).await.2);
        // A second SMS at once: refused, with when to retry; email is another channel.
        let r = verify(&app, &n, json!({"format": "sms"})).await;
        r.expect_error(429, "verification_throttled");
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "{wait}");
        // After the cooldown a new code goes out, and the first no longer works.
        age_codes(&url).await;
        verify(&app, &n, json!({"format": "sms"})).await.expect(200);
        let second = code_in(&last_message(&app).await.2);
        let confirm = format!("/credit-accounts/{n}/verify/confirm");
        if first != second {
            app.post(&confirm, json!({"code": first})).await.expect_error(400, "verification_failed");
        }
        app.post(&confirm, json!({"code": second})).await.expect(200);
    }

    async fn codes_sent_count_toward_the_lockout(app: TestApp) {
        let n = account(&app, "L", true).await;
        let url = app.test_db.url.clone();
        // Four codes sent without a success...
        for _ in 0..4 {
            verify(&app, &n, json!({"format": "sms"})).await.expect(200);
            age_codes(&url).await;
        }
        // ...and the fifth attempt locks, whatever it is.
        verify(&app, &n, json!({"format": "sms"})).await.expect_error(429, "verification_locked");
        let sent = crate::helpers::int_pairs(&url, "SELECT COUNT(*), CAST(0 AS BIGINT) FROM notification_outbox").await;
        assert_eq!(sent[0].0, 4, "the locked attempt sent nothing");
        verify(&app, &n, json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Jimmy Page"})).await.expect_error(429, "verification_locked");
        // A success in between starts the count over.
        let m = account(&app, "L", true).await;
        for _ in 0..3 {
            verify(&app, &m, json!({"format": "email"})).await.expect(200);
            age_codes(&url).await;
        }
        let code = code_in(&last_message(&app).await.2);
        app.post(&format!("/credit-accounts/{m}/verify/confirm"), json!({"code": code})).await.expect(200);
        for _ in 0..4 {
            verify(&app, &m, json!({"format": "email"})).await.expect(200);
            age_codes(&url).await;
        }
    }

    async fn a_merchant_sends_a_bounded_number_of_codes_a_minute(app: TestApp) {
        let mut app = app;
        app.stop().await;
        let mut cfg = app.test_db.config();
        cfg.limits.verification_sends_per_minute = 3;
        let app = app.start_again(cfg).await;
        let mut accounts = Vec::new();
        for _ in 0..4 {
            accounts.push(account(&app, "L", true).await);
        }
        for n in &accounts[..3] {
            verify(&app, n, json!({"format": "sms"})).await.expect(200);
        }
        let r = verify(&app, &accounts[3], json!({"format": "email"})).await;
        r.expect_error(429, "verification_rate_limited");
        assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() <= 60);
        // Codes the cashier is given are not sends.
        verify(&app, &accounts[3], json!({"format": "security_question", "securityQid": 4, "securityAnswer": "Jimmy Page"})).await.expect(200);
    }
}
