//! The OpenAPI document, generated from the route annotations, and the docs UI
//! (Swagger UI, vendored into the binary: no CDN).

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, ServerBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_swagger_ui::SwaggerUi;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Clientele",
        description = "Merchant Customer API: customers, a payment-method vault, provider links and point-of-sale credit. \
            Every error has the same body (ErrorBody); JSON bodies are camelCase; unknown fields are rejected.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "customers", description = "Create, search, update and delete a merchant's customers."),
        (name = "payment methods", description = "The vault: cards and bank accounts, encrypted at rest, masked in every response."),
        (name = "custom parameters", description = "The merchant's own customer fields, sent and returned at the top level of customers."),
        (name = "providers", description = "Payment providers linked to customers; credentials obfuscated."),
        (name = "point of sale", description = "What a cashier's terminal needs: financing plans, credit accounts, instalment quotes, licence decoding."),
        (name = "events", description = "The change feed."),
        (name = "operations", description = "Health, readiness and metrics.")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer ck_...`. Scopes: customers:read, customers:write, payment_methods:write, payment_methods:reveal, credit:write."))
                    .build(),
            ),
        );
    }
}

/// Marks a schema (or the object part of an `allOf`) as taking additional
/// properties: the merchant's custom parameters, typed by their declaration.
fn allow_custom_parameters(schema: &mut Schema) {
    let extra = || {
        let described = ObjectBuilder::new().description(Some(
            "A custom parameter the merchant declared (PUT /custom-parameters/{name}), typed by its declaration; \
             secret ones are write-only and come back obfuscated (`****` + last 4).",
        ));
        Some(Box::new(AdditionalProperties::RefOr(RefOr::T(Schema::Object(described.build())))))
    };
    match schema {
        Schema::Object(o) => o.additional_properties = extra(),
        Schema::AllOf(all) => {
            for item in &mut all.items {
                if let RefOr::T(Schema::Object(o)) = item {
                    o.additional_properties = extra();
                }
            }
        }
        _ => {}
    }
}

/// Completes the document once every route has added its schemas: a merchant's
/// declared custom parameters travel at the top level of customers.
pub fn finish(api: &mut OpenApi) {
    let Some(components) = api.components.as_mut() else { return };
    for name in ["CustomerView", "CustomerUpdateRequest", "CustomerCreateRequest"] {
        if let Some(RefOr::T(schema)) = components.schemas.get_mut(name) {
            allow_custom_parameters(schema);
        }
    }
}

pub fn base() -> OpenApi {
    let mut api = ApiDoc::openapi();
    api.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    api
}

pub fn ui(doc: OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", doc)
}
