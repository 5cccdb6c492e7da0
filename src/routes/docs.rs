//! The OpenAPI document, generated from the route annotations, and the docs UI
//! (Swagger UI, vendored into the binary: no CDN).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, ServerBuilder};
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

pub fn base() -> OpenApi {
    let mut api = ApiDoc::openapi();
    api.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    api
}

pub fn ui(doc: OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", doc)
}
