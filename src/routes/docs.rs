//! The OpenAPI document, generated from the route annotations, and the docs UI
//! (Swagger UI, vendored into the binary: no CDN).

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
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
    // A string value: at most 1000 characters, no NUL or bidirectional formatting
    // (`domain::custom::typed_value`); both keywords bind strings only.
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(kinds))
        .max_length(Some(1000))
        .pattern(Some(crate::domain::text::no_nul_or_bidi_pattern()))
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
        // A customer or a payment method comes back with its version as `ETag`
        // (`customers::with_etag`), from a write as from a read.
        let versioned = reply.content.values().any(|media| {
            matches!(&media.schema, Some(RefOr::Ref(r))
                if r.ref_location.ends_with("/CustomerDetail") || r.ref_location.ends_with("/MethodView"))
        });
        if code == "200" && versioned {
            reply.headers.insert("ETag".into(), string_header("The version, for If-Match."));
        }
    }
    let idempotent = method == "post" && path.starts_with("/pay-api/") && !path.ends_with("/import");
    let params = op.parameters.get_or_insert_with(Vec::new);
    // A version as `IfMatch` reads it: digits, quoted or not, weak or not.
    for if_match in params.iter_mut().filter(|p| p.name == "If-Match") {
        if let Some(RefOr::T(Schema::Object(o))) = if_match.schema.as_mut() {
            o.pattern = Some(r#"^ *(W/)?"?[0-9]{1,18}"? *$"#.into());
        }
    }
    if idempotent && !params.iter().any(|p| p.name == "Idempotency-Key") {
        // Visible ASCII with inner spaces, as the layer reads it (it would trim
        // spaces around it, which HTTP clients do not send); empty is no key.
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(255))
            .pattern(Some(r"^([\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?)?$"));
        params.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Replays the first reply to this key for 24 h; the same key with another body is a 409. \
                     Empty is the same as leaving it out.",
                ))
                .schema(Some(key))
                .build(),
        );
    }
    if params.is_empty() {
        op.parameters = None;
    }
}

fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> Schema {
    let values = values.into_iter().map(serde_json::Value::from);
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build().into()
}

/// `enabledEvents` (`domain::webhook::EventSelection`): `["*"]`, or event types each once.
fn event_selection(nullable: bool) -> Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder};
    let wildcard = ArrayBuilder::new().items(RefOr::T(string_enum(["*"]))).min_items(Some(1)).max_items(Some(1));
    let types = ArrayBuilder::new()
        .items(RefOr::T(string_enum(crate::domain::event::EventType::ALL.iter().map(|t| t.as_str()))))
        .min_items(Some(1))
        .max_items(Some(crate::domain::event::EventType::ALL.len()))
        .unique_items(true);
    let mut any = AnyOfBuilder::new().item(wildcard).item(types);
    if nullable {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    any.description(Some("Event types, each once, or `[\"*\"]` for every type.")).build().into()
}

/// Query parameters whose rules live in code shared by several routes: the
/// parser's language list, the event types, and the instants a range takes.
fn constrain_query(path: &str, op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        if param.parameter_in != ParameterIn::Query {
            continue;
        }
        let schema = match param.name.as_str() {
            "lang" => string_enum(crate::domain::credit::LANGUAGES),
            "type" if path.ends_with("/events") => {
                string_enum(crate::domain::event::EventType::ALL.iter().map(|t| t.as_str()))
            }
            // `parse_instant`: an RFC 3339 instant, or a date (its start, or its end for `dateTo`).
            "dateFrom" | "dateTo" => utoipa::openapi::schema::AnyOfBuilder::new()
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
                )
                .build()
                .into(),
            // Any other text: `QueryReader` refuses control characters in every value.
            _ => {
                if let Some(RefOr::T(Schema::Object(o))) = param.schema.as_mut()
                    && o.schema_type == SchemaType::Type(Type::String)
                    && o.pattern.is_none()
                    && o.format.is_none()
                    && o.enum_values.is_none()
                {
                    o.pattern = Some(crate::domain::text::no_control_pattern());
                }
                continue;
            }
        };
        param.schema = Some(RefOr::T(schema));
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
    link(
        "/pay-api/v1/webhook-endpoints",
        &["get_endpoint", "update_endpoint", "delete_endpoint", "rotate_secret", "test_endpoint", "list_deliveries"],
        &[("endpointId", "$response.body#/id")],
    );
    link(
        "/pay-api/v1/webhook-endpoints/{endpointId}/test",
        &["get_delivery", "retry_delivery"],
        &[("endpointId", "$request.path.endpointId"), ("deliveryId", "$response.body#/id")],
    );
}

/// Completes the document once every route has added its schemas.
pub fn finish(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        let operations_route = !path.starts_with("/pay-api/");
        for (method, op) in operations(item) {
            declare_headers(path, method, op);
            constrain_query(path, op);
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
    // An event's type is one of the store's (`domain::event`).
    if let Some(RefOr::T(Schema::Object(event))) = components.schemas.get_mut("EventView") {
        let types = string_enum(crate::domain::event::EventType::ALL.iter().map(|t| t.as_str()));
        event.properties.insert("type".into(), RefOr::T(types));
    }
    // An endpoint's events: every type once, or the wildcard alone.
    for name in ["EndpointCreateRequest", "EndpointUpdateRequest", "EndpointView", "EndpointCreated"] {
        if let Some(RefOr::T(Schema::Object(endpoint))) = components.schemas.get_mut(name) {
            // In an update, `null` (like absence) leaves the events as they are.
            let nullable = name == "EndpointUpdateRequest";
            endpoint.properties.insert("enabledEvents".into(), RefOr::T(event_selection(nullable)));
        }
    }
    // An update changes something.
    if let Some(RefOr::T(Schema::Object(update))) = components.schemas.get_mut("EndpointUpdateRequest") {
        update.min_properties = Some(1);
    }
    // A customer's id is the path's: sent back as read, never changed.
    if let Some(RefOr::T(Schema::Object(update))) = components.schemas.get_mut("CustomerUpdateRequest")
        && let Some(RefOr::T(Schema::Object(id))) = update.properties.get_mut("id")
    {
        id.read_only = Some(true);
    }
    // A verification answers where the code went, the code, or nothing.
    if let Some(RefOr::T(Schema::Object(reply))) = components.schemas.get_mut("VerifyReply")
        && let Some(RefOr::T(Schema::Object(code))) = reply.properties.get_mut("verificationCode")
    {
        code.schema_type = SchemaType::Array(vec![Type::String, Type::Integer, Type::Null]);
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
        list.unique_items = true;
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
    let schemas = &mut value["components"]["schemas"];
    // Linking a provider on create takes both its names (`domain::provider`): any
    // of the link's fields, sent non-null, needs both, non-null. (`if`/`then`
    // rather than `dependentRequired`, which a present `null` would satisfy.)
    let link_fields = ["apiKey", "paymentProvider", "provider", "providerConfigId"];
    let needs_both: Vec<serde_json::Value> = link_fields
        .iter()
        .map(|field| {
            serde_json::json!({
                "if": {"required": [field], "properties": {*field: {"not": {"type": "null"}}}},
                "then": {
                    "required": ["provider", "providerConfigId"],
                    "properties": {"provider": {"type": "string"}, "providerConfigId": {"type": "string"}}
                }
            })
        })
        .collect();
    schemas["CustomerCreateRequest"]["allOf"] = needs_both.into();
    // A security question's check takes its id and a non-blank answer (`parse_verify`).
    schemas["VerifyBody"]["allOf"] = serde_json::json!([{
        "if": {"required": ["format"], "properties": {"format": {"const": "security_question"}}},
        "then": {
            "required": ["securityQid", "securityAnswer"],
            "properties": {
                "securityQid": {"type": "integer"},
                "securityAnswer": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"}
            }
        }
    }]);
    // A postal code's form depends on the address's country (`domain::address`):
    // US ZIP or ZIP+4, a Canadian code, elsewhere up to 12 letters, digits,
    // spaces or dashes; spaces and dashes inside are ignored.
    let postal = |country: &str, pattern: &str| {
        serde_json::json!({
            "if": {"required": ["country"], "properties": {"country": {"const": country}}},
            "then": {"properties": {"postalCode": {"type": ["string", "null"], "pattern": pattern}}}
        })
    };
    schemas["AddressRequest"]["allOf"] = serde_json::json!([
        postal("US", r"^\s*[ -]*([0-9][ -]*){5}(([0-9][ -]*){4})?\s*$"),
        postal("CA", r"^\s*[ -]*[A-Za-z][ -]*[0-9][ -]*[A-Za-z][ -]*[0-9][ -]*[A-Za-z][ -]*[0-9][ -]*\s*$"),
        {
            "if": {"not": {"required": ["country"], "properties": {"country": {"enum": ["US", "CA"]}}}},
            "then": {"properties": {"postalCode": {"type": ["string", "null"], "pattern": r"^\s*((?=[ -]*[A-Za-z0-9])[A-Za-z0-9 -]{1,12})?\s*$"}}}
        }
    ]);
    // A transaction is paid with a payment method or a credit account, not both.
    schemas["TransactionRequest"]["not"] = serde_json::json!({
        "required": ["paymentMethodId", "creditAccountNumber"],
        "properties": {"paymentMethodId": {"type": "string"}, "creditAccountNumber": {"type": "string"}}
    });
    // A customer named on create takes a UUIDv7 (`create_customer`).
    schemas["CustomerCreateRequest"]["properties"]["id"]["pattern"] =
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$".into();
    // A credential the API showed masked (`****` + last 4) is not one, and has no
    // control characters (`domain::provider::credential`).
    let masked = serde_json::json!({"pattern": r"^\*{4}(.{4})?$"});
    for (name, field) in
        [("CustomerCreateRequest", "apiKey"), ("LinkRequest", "apiKey"), ("PaymentProviderRequest", "key")]
    {
        schemas[name]["properties"][field]["not"] = masked.clone();
    }
    for (name, field) in [("CustomerCreateRequest", "apiKey"), ("PaymentProviderRequest", "key")] {
        schemas[name]["properties"][field]["pattern"] = crate::domain::text::no_control_pattern().into();
    }
    // A card's year has 2 digits (20YY) or 4 (`domain::card::Expiry`).
    for name in ["CardRequest", "MethodUpdateRequest"] {
        schemas[name]["properties"]["expirationYear"]["anyOf"] =
            serde_json::json!([{"maximum": 99}, {"minimum": 1000}]);
    }
    // A card's expiry changes as a pair (`parse_update`).
    schemas["MethodUpdateRequest"]["dependentRequired"] =
        serde_json::json!({"expirationMonth": ["expirationYear"], "expirationYear": ["expirationMonth"]});
    // SMS notifications need a number to send to (`domain::customer`).
    let sms = serde_json::json!({
        "if": {"required": ["isMobileNumberSmsNotificationsEnabled"], "properties": {"isMobileNumberSmsNotificationsEnabled": {"const": true}}},
        "then": {"required": ["mobilePhoneNumber"], "properties": {"mobilePhoneNumber": {"type": "string"}}}
    });
    for name in ["CustomerCreateRequest", "CustomerUpdateRequest"] {
        match schemas[name]["allOf"].as_array_mut() {
            Some(all) => all.push(sms.clone()),
            None => schemas[name]["allOf"] = serde_json::json!([sms.clone()]),
        }
    }
    // A merge patch sends only what changes: the update's fields, none required.
    let mut patch = schemas["CustomerUpdateRequest"].clone();
    if let Some(o) = patch.as_object_mut() {
        o.remove("required");
        o.insert(
            "description".into(),
            "A JSON Merge Patch of a customer: the fields to change; `null` removes an optional one.".into(),
        );
    }
    schemas["CustomerPatchRequest"] = patch;
    let patch_ref = serde_json::json!({"$ref": "#/components/schemas/CustomerPatchRequest"});
    if let Some(content) =
        value["paths"]["/pay-api/v1/customers/{customerId}"]["patch"]["requestBody"]["content"].as_object_mut()
    {
        for media in content.values_mut() {
            media["schema"] = patch_ref.clone();
        }
    }
    // An import is NDJSON: one customer create body per line, and one result per
    // line back (`routes::bulk`).
    let import = &mut value["paths"]["/pay-api/v1/customers/import"]["post"];
    import["requestBody"]["content"]["application/x-ndjson"]["schema"] = serde_json::json!({
        "type": "array",
        "items": {"$ref": "#/components/schemas/CustomerCreateRequest"},
        "description": "Sent as NDJSON: each item on its own line, no enclosing array."
    });
    let count = serde_json::json!({"type": "integer", "minimum": 0});
    // The line that ends a stream which failed midway (`routes::bulk`).
    let error_line = serde_json::json!(
        {"type": "object", "required": ["error"], "additionalProperties": false, "properties": {"error": {"type": "string"}}}
    );
    import["responses"]["200"]["content"]["application/x-ndjson"]["schema"] = serde_json::json!({
        "type": "array",
        "description": "Sent as NDJSON: a result per line, in the lines' order, then the summary.",
        "items": {"anyOf": [
            {"type": "object", "required": ["line", "id", "result"], "additionalProperties": false, "properties": {
                "line": {"type": "integer", "minimum": 1},
                "id": {"type": "string", "format": "uuid"},
                "result": {"enum": ["created", "updated"]}
            }},
            {"type": "object", "required": ["line", "errors"], "additionalProperties": false, "properties": {
                "line": {"type": "integer", "minimum": 1},
                "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
            }},
            {"type": "object", "required": ["summary"], "additionalProperties": false, "properties": {"summary": {
                "type": "object", "required": ["lines", "created", "updated", "failed"], "additionalProperties": false,
                "properties": {"lines": count, "created": count, "updated": count, "failed": count}
            }}},
            error_line.clone()
        ]}
    });
    // An export is NDJSON: the customers as search shows them, or a last
    // `{"error"}` line when it could not finish (`routes::bulk`).
    value["paths"]["/pay-api/v1/customers/export"]["get"]["responses"]["200"]["content"]["application/x-ndjson"]["schema"] = serde_json::json!({
        "type": "array",
        "description": "Sent as NDJSON: one customer per line; a stream that fails midway ends with an `{\"error\"}` line.",
        "items": {"anyOf": [
            {"$ref": "#/components/schemas/CustomerView"},
            error_line
        ]}
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
