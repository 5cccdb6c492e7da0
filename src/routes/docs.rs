//! The OpenAPI document, generated from the route annotations, and the docs UI
//! (Swagger UI, vendored into the binary: no CDN).

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Required, ServerBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_swagger_ui::SwaggerUi;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Clientele",
        description = "Merchant Customer API: customers, a payment-method vault, provider links and point-of-sale credit. \
            Every error has the same body (ErrorBody); JSON bodies are camelCase; unknown fields are rejected.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
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

/// A custom parameter's value, as its declaration types it: a string, a number,
/// a boolean or a date (`YYYY-MM-DD`); `null` in a request removes it.
fn custom_value(nullable: bool) -> Schema {
    let mut kinds = vec![Type::String, Type::Number, Type::Boolean];
    if nullable {
        kinds.push(Type::Null);
    }
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(kinds))
        .description(Some(
            "A custom parameter the merchant declared (PUT /custom-parameters/{name}), typed by its declaration \
             (`date` values are `YYYY-MM-DD` strings); secret ones are write-only and come back obfuscated \
             (`****` + last 4).",
        ))
        .build()
        .into()
}

/// Marks a schema as taking additional properties: the merchant's custom
/// parameters. (Only on one object: on a part of an `allOf` it would refuse
/// the other parts' properties, so those are flattened first.)
fn allow_custom_parameters(schema: &mut Schema, nullable: bool) {
    if let Schema::Object(o) = schema {
        o.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(custom_value(nullable)))));
    }
}

/// Makes an `allOf` (a `#[serde(flatten)]`) one object with every property:
/// `additionalProperties` on one part of an `allOf` would refuse the other
/// part's properties, and generated clients read one object best.
fn flatten_all_of(components: &mut utoipa::openapi::Components, name: &str) {
    let Some(RefOr::T(Schema::AllOf(all))) = components.schemas.get(name) else { return };
    let mut merged = ObjectBuilder::new().build();
    for part in &all.items {
        let part = match part {
            RefOr::Ref(r) => components.schemas.get(r.ref_location.rsplit('/').next().unwrap_or_default()),
            own => Some(own),
        };
        if let Some(RefOr::T(Schema::Object(o))) = part {
            merged.properties.extend(o.properties.clone());
            merged.required.extend(o.required.iter().cloned());
        }
    }
    merged.description = all.description.clone();
    merged.example = all.example.clone();
    components.schemas.insert(name.to_owned(), RefOr::T(Schema::Object(merged)));
}

/// The operations of a path, by method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new().schema(Object::with_type(Type::String)).description(Some(description)).build()
}

/// What every route's replies carry, declared once here rather than on each
/// route: the correlation id on every reply, the scheme on a 401, when to come
/// back on a 429 or 503, the methods a path has on a 405; `Idempotency-Key` on
/// every POST the idempotency layer replays ([`crate::http::idempotency`]:
/// all but the streamed import).
fn declare_headers(path: &str, method: &str, op: &mut Operation) {
    for (code, reply) in op.responses.responses.iter_mut() {
        let RefOr::T(reply) = reply else { continue };
        reply.headers.insert(
            "X-Correlation-Id".into(),
            string_header("The request's `X-Correlation-Id`, or one generated for it; also in error bodies."),
        );
        let extra = match code.as_str() {
            "401" => Some(("WWW-Authenticate", "`Bearer realm=\"clientele\"`.")),
            "429" | "503" => Some(("Retry-After", "Seconds to wait before retrying.")),
            "405" => Some(("Allow", "The methods this path has.")),
            _ => None,
        };
        if let Some((name, description)) = extra {
            reply.headers.insert(name.into(), string_header(description));
        }
    }
    let idempotent = method == "post" && path.starts_with("/pay-api/") && !path.ends_with("/import");
    let params = op.parameters.get_or_insert_with(Vec::new);
    if idempotent && !params.iter().any(|p| p.name == "Idempotency-Key") {
        // Visible ASCII, spaces around it allowed (trimmed), as the layer reads it.
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(r"^ *[\x21-\x7E][\x20-\x7E]*$"));
        params.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Replays the first reply to this key for 24 h; the same key with another body is a 409.",
                ))
                .schema(Some(key))
                .build(),
        );
    }
    if params.is_empty() {
        op.parameters = None;
    }
}

/// OpenAPI links from the replies that create an object to the routes that take
/// its id, so tools (and readers) can follow them.
fn declare_links(paths: &mut utoipa::openapi::Paths) {
    const CUSTOMER: &str = "/pay-api/v1/customers";
    const METHODS: [&str; 2] = [
        "/pay-api/v1/customers/{customerId}/payment-methods/cards",
        "/pay-api/v1/customers/{customerId}/payment-methods/ach",
    ];
    const PROVIDERS: &str = "/pay-api/v1/customers/{customerId}/providers";
    let customer_ops = [
        "get_customer",
        "update_customer",
        "patch_customer",
        "delete_customer",
        "set_customer_status",
        "list_methods",
        "add_card",
        "add_ach",
        "link_provider",
        "list_providers",
        "open_account",
        "record_transaction",
    ];
    let method_ops = [
        "get_method",
        "update_method",
        "patch_method",
        "delete_method",
        "make_default",
        "set_method_status",
        "reveal_method",
    ];
    let mut link = |path: &str, ops: &[&str], params: &[(&str, &str)]| {
        let Some(op) = paths.paths.get_mut(path).and_then(|item| item.post.as_mut()) else { return };
        let Some(RefOr::T(reply)) = op.responses.responses.get_mut("200") else { return };
        for target in ops {
            let mut l = LinkBuilder::new().operation_id(*target);
            for (name, value) in params {
                l = l.parameter(*name, *value);
            }
            reply.links.insert((*target).to_owned(), RefOr::T(l.build()));
        }
    };
    link(CUSTOMER, &customer_ops, &[("customerId", "$response.body#/id")]);
    for path in METHODS {
        link(
            path,
            &method_ops,
            &[("customerId", "$request.path.customerId"), ("paymentMethodId", "$response.body#/id")],
        );
    }
    link(
        PROVIDERS,
        &["get_provider", "unlink_provider"],
        &[("customerId", "$request.path.customerId"), ("providerId", "$response.body#/id")],
    );
}

/// Completes the document once every route has added its schemas.
pub fn finish(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        let operations_route = !path.starts_with("/pay-api/");
        for (method, op) in operations(item) {
            declare_headers(path, method, op);
            if operations_route {
                // Said outright: these need no key.
                op.security = Some(Vec::new());
            }
        }
    }
    declare_links(&mut api.paths);
    let Some(components) = api.components.as_mut() else { return };
    flatten_all_of(components, "CustomerCreateRequest");
    flatten_all_of(components, "CustomerDetail");
    // A merchant's declared custom parameters travel at the top level of customers.
    for (name, nullable) in [
        ("CustomerView", false),
        ("CustomerDetail", false),
        ("CustomerUpdateRequest", true),
        ("CustomerCreateRequest", true),
    ] {
        if let Some(RefOr::T(schema)) = components.schemas.get_mut(name) {
            allow_custom_parameters(schema, nullable);
        }
    }
    // Every other request object refuses fields it does not know (`Obj::finish`).
    for (name, schema) in components.schemas.iter_mut() {
        let request = name.ends_with("Request") || name.ends_with("Body");
        if let RefOr::T(Schema::Object(o)) = schema
            && request
            && !o.properties.is_empty()
            && o.additional_properties.is_none()
        {
            o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
    // The country list is the parser's own (`domain::address`).
    if let Some(RefOr::T(Schema::Object(address))) = components.schemas.get_mut("AddressRequest")
        && let Some(RefOr::T(Schema::Object(country))) = address.properties.get_mut("country")
    {
        let mut codes: Vec<String> = celes::Country::get_countries().iter().map(|c| c.alpha2.to_owned()).collect();
        codes.sort();
        codes.dedup();
        country.enum_values = Some(codes.into_iter().map(serde_json::Value::from).collect());
    }
    // So is the currency list (`domain::currency`).
    let currencies = || {
        let codes = crate::domain::currency::active_currencies().iter().map(|c| serde_json::Value::from(*c));
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)).build()
    };
    if let Some(RefOr::T(Schema::Object(tx))) = components.schemas.get_mut("TransactionRequest") {
        tx.properties.insert("currency".into(), RefOr::T(Schema::Object(currencies())));
    }
    if let Some(RefOr::T(Schema::Object(link))) = components.schemas.get_mut("PaymentProviderRequest")
        && let Some(RefOr::T(Schema::Array(list))) = link.properties.get_mut("availableCurrencies")
    {
        list.items = utoipa::openapi::schema::ArrayItems::RefOrSchema(Box::new(RefOr::T(Schema::Object(currencies()))));
    }
    // A security question's text by language takes the languages the parser knows.
    let by_language = crate::domain::credit::LANGUAGES.iter().fold(ObjectBuilder::new(), |o, tag| {
        o.property(*tag, ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200)))
    });
    let text = utoipa::openapi::schema::OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200)))
        .item(by_language.additional_properties(Some(AdditionalProperties::FreeForm(false))).min_properties(Some(1)))
        .description(Some("The question, or the same question by language tag (en, fr, en-CA, fr-CA)."));
    components.schemas.insert("QuestionTextRequest".into(), RefOr::T(Schema::OneOf(text.build())));
}

pub fn base() -> OpenApi {
    let mut api = ApiDoc::openapi();
    api.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    api
}

/// The document as served: [`finish`]'s, plus what utoipa's types cannot
/// hold, written into the JSON in one walk.
pub fn document(doc: &OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    adjust(&mut value);
    // Linking a provider on create takes both its names (`domain::provider`).
    let link = serde_json::json!(["providerConfigId", "provider"]);
    value["components"]["schemas"]["CustomerCreateRequest"]["dependentRequired"] = serde_json::json!({
        "apiKey": link, "paymentProvider": link, "provider": link, "providerConfigId": link,
    });
    value
}

/// At every level of the document:
/// - utoipa writes a link's `operationId` in snake case, which no OpenAPI tool
///   reads: renamed;
/// - every bounded free-text string (one with a `maxLength` and no stricter
///   rule) refuses what `domain::text` refuses: control and bidirectional
///   formatting characters, and, when required, text of spaces alone (utoipa's
///   attributes take no computed pattern).
fn adjust(v: &mut serde_json::Value) {
    use crate::domain::text::{optional_text_pattern, required_text_pattern};
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut() {
                    if let Some(link) = link.as_object_mut()
                        && let Some(id) = link.remove("operation_id")
                    {
                        link.insert("operationId".into(), id);
                    }
                }
            }
            let is_string = map
                .get("type")
                .is_some_and(|t| t == "string" || t.as_array().is_some_and(|a| a.contains(&"string".into())));
            let free = ["pattern", "format", "enum"].iter().all(|k| !map.contains_key(*k));
            if is_string && free && map.contains_key("maxLength") {
                let required = map.get("minLength").and_then(serde_json::Value::as_u64).is_some_and(|n| n >= 1);
                let pattern = if required { required_text_pattern() } else { optional_text_pattern() };
                map.insert("pattern".into(), pattern.into());
            }
            map.values_mut().for_each(adjust);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(adjust),
        _ => {}
    }
}

pub fn ui(doc: &OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document(doc))
}
