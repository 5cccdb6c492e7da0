//! Licence decoding through the API.

use reqwest::Method;
use serde_json::json;

use crate::both;

/// Seed 004's request body, verbatim.
const SEED_BODY: &str = r#"{
  "code": "@\n\u001e\rANSI\n604428040101 DL00310219DLDCAunavI\nDCBNONE\nDCDNONE\nDBA20200515\nDCSNUMBER1\nDACENSTREAM \nDAD\nDBD20140516\nDBB19740515\nDBCZ\nDAYBLU\nDAU163 cm\nDAG55 UNIVERSITY AVE\nDAITORONTO\nDAJON\nDAKM5J 2H7\nDAQD61014070660905\nDCFPEJK368N4\nDCGCAN\nDDEU\nDDFU\nDDGU\r"
}"#;

both! {
    async fn seed_004_sample_decodes(app: TestApp) {
        let body: serde_json::Value = serde_json::from_str(SEED_BODY).unwrap();
        let r = app.send(Method::POST, "/identity-documents/decode", Some(&app.key), Some(body.clone()), &[("Idempotency-Key", "scan-1")]).await;
        assert_eq!(r.expect(200), &json!({
            "firstName": "ENSTREAM", "middleName": null, "lastName": "NUMBER1", "dob": "1974-05-15",
            "address1": "55 UNIVERSITY AVE", "address2": null, "city": "TORONTO", "province": "ON", "postalCode": "M5J 2H7",
            "country": "CA", "sex": null, "govidType": "CADL", "govidIssuedBy": "ON", "govidNumber": "D61014070660905",
            "govidExpiry": "2020-05-15"
        }));
        // Personal data is not kept for replay: the same key decodes again.
        let again = app.send(Method::POST, "/identity-documents/decode", Some(&app.key), Some(body), &[("Idempotency-Key", "scan-1")]).await;
        again.expect(200);
        assert_eq!(again.header("idempotent-replayed"), None);
        assert_eq!(crate::helpers::int_pairs(&app.test_db.url, "SELECT COUNT(*), CAST(0 AS BIGINT) FROM idempotency_keys").await[0].0, 0);
    }

    async fn malformed_codes_say_what_is_wrong(app: TestApp) {
        for (code, part) in [("", "compliance indicator"), ("@\n\u{1e}\rANSI 636014110001DL00300100DLDAQ1\r", "version 11"),
            ("@\n\u{1e}\rANSI 636014080001ZT00300100ZTZTA1\r", "no DL"), ("@ANSI 636014080001DL0030", "4-digit length")] {
            let r = app.post("/identity-documents/decode", json!({"code": code})).await;
            let msg = r.expect_error(400, "validation_failed")["errors"]["code"][0].as_str().unwrap().to_owned();
            assert!(msg.contains(part), "{code:?}: {msg}");
        }
        app.post("/identity-documents/decode", json!({})).await.expect_error(400, "validation_failed");
        app.post("/identity-documents/decode", json!({"code": 5})).await.expect_error(400, "validation_failed");
        app.post("/identity-documents/decode", json!({"code": "@", "extra": 1})).await.expect_error(400, "unknown_field");
        let (_, no_read) = app.key_with(&[clientele::auth::Scope::CustomersWrite]).await;
        app.send(Method::POST, "/identity-documents/decode", Some(&no_read), Some(json!({"code": "@"})), &[]).await.expect_error(403, "insufficient_scope");
    }
}

both! {
    async fn scanner_variants_of_the_seed_sample_decode_alike(app: TestApp) {
        let body: serde_json::Value = serde_json::from_str(SEED_BODY).unwrap();
        let code = body["code"].as_str().unwrap();
        let want = app.post("/identity-documents/decode", body.clone()).await.expect(200).clone();
        // Keyboard-wedge scanners: LF typed as CR, or as CRLF; Ontario's trailing commas.
        let variants = [
            code.replace('\n', "\r"),
            code.replace('\n', "\r\n"),
            code.replace("DCSNUMBER1\n", "DCSNUMBER1,\n").replace("DAG55 UNIVERSITY AVE\n", "DAG55 UNIVERSITY AVE,\n"),
        ];
        for v in variants {
            let got = app.post("/identity-documents/decode", json!({"code": v})).await;
            assert_eq!(got.expect(200), &want, "{v:?}");
        }
    }
}
