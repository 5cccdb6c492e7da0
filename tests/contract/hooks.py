"""schemathesis hooks: what the contract run knows that the document cannot say.

- The document is every merchant's; this run's merchant has declared the custom
  parameters in fixtures.py, so its customers take exactly those (typed) at the
  top level, and nothing else.
- The run's custom parameters stay as declared: generated declarations and
  retirements leave those names alone, and declare only optional ones (a
  required one would make every later customer without it a 400).
- This run's payment method (`CONTRACT_PAYMENT_METHOD_ID`) is a card, so its
  updates take a card's fields, not a bank account's.
- Imports and exports are NDJSON: a generated list of customers is sent one
  per line, and a streamed reply is read back as the list of its lines.
- Rules of today's date (a card's expiry neither past nor more than 50 years
  ahead, a date of birth from 1900 to today) and of registries (a language tag is a
  registered one, a phone number one libphonenumber knows, which no pattern
  says): positive cases are drawn from known-good tags and numbers, and those
  breaking the date rules are dropped. Nor can a schema see the stored
  customer: a patch that removes the phone number of one with SMS on is refused.
- A financing plan lists each term (months) once, an account's security
  questions each id once, and a credit-account lookup takes exactly one of its
  three keys: rules across items or parameters, which JSON Schema has no word
  for. Card numbers pass the Luhn check and routing numbers the ABA checksum:
  arithmetic, not patterns. Positive cases that break these are dropped.
- A webhook URL is one the WHATWG URL standard parses with an http(s) scheme,
  no credentials and no fragment, which no JSON Schema format says: positive
  cases are drawn from known-good URLs.
"""

import datetime
import json

import schemathesis
from schemathesis.generation.modes import GenerationMode

from fixtures import DECLARED

DATE = {"type": "string", "format": "date"}
# This run's numbers are counts: a decimal keeps 28 significant digits, which no
# JSON Schema keyword bounds.
TYPES = {
    "string": {"type": "string", "maxLength": 1000, "pattern": "^[^\\u0000\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069]*$"},
    "number": {"type": "integer", "minimum": -(10**12), "maximum": 10**12},
    "boolean": {"type": "boolean"},
    "date": DATE,
}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema["components"]["schemas"]
    for name in ["CustomerCreateRequest", "CustomerUpdateRequest", "CustomerPatchRequest"]:
        schema = schemas[name]
        for param, declaration in DECLARED.items():
            schema["properties"][param] = {**TYPES[declaration["type"]], "type": [TYPES[declaration["type"]]["type"], "null"]}
        schema["additionalProperties"] = False
        schema["properties"]["preferredLanguage"] = {"enum": ["en", "fr", "en-CA", "fr-CA", "es-MX", "zh-Hant-TW", None]}
        schema["properties"]["mobilePhoneNumber"] = {"enum": ["+14165550199", "+1 (416) 555-0123", "+442079460958", None]}
    urls = ["https://hooks.example.com/clientele", "http://127.0.0.1:9/hooks", "https://example.org:8443/a?b=c"]
    schemas["EndpointCreateRequest"]["properties"]["url"] = {"enum": urls}
    schemas["EndpointUpdateRequest"]["properties"]["url"] = {"enum": urls + [None]}
    for field in ["accountType", "accountHolderType", "routingNumber", "accountNumber", "taxId"]:
        del schemas["MethodUpdateRequest"]["properties"][field]


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx, response):
    """A streamed reply, read as the list of its lines, so that its schema (an
    array of the line's forms) checks every line."""
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]


def positive(case):
    return case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE


def listed_once(case, items, key):
    """Whether no two of the body's `items` share their `key` (positive cases only)."""
    if not positive(case) or not isinstance(case.body, dict):
        return True
    values = [item.get(key) for item in case.body.get(items) or [] if isinstance(item, dict)]
    return len(values) == len(set(values))


@schemathesis.hook("filter_case").apply_to(operation_id="put_plan")
def terms_once(context, case):
    return listed_once(case, "terms", "term")


@schemathesis.hook("filter_case").apply_to(operation_id="open_account")
def questions_once(context, case):
    return listed_once(case, "securityQuestions", "id")


@schemathesis.hook("filter_case").apply_to(operation_id="lookup_account")
def one_key(context, case):
    if not positive(case):
        return True
    given = [k for k in ("vccNumber", "accountNumber", "customerId") if k in (case.query or {})]
    return len(given) == 1


def expired(card):
    if not isinstance(card, dict):
        return False
    month, year = card.get("expirationMonth"), card.get("expirationYear")
    # JSON Schema's integers include 7.0, which the server reads as 7.
    if not all(isinstance(x, (int, float)) and float(x).is_integer() for x in (month, year)):
        return False
    month, year = int(month), int(year)
    year = 2000 + year if 0 <= year <= 99 else year
    today = datetime.date.today()
    return (year, month) < (today.year, today.month) or year > today.year + 50


def born_later(customer):
    born = customer.get("dateOfBirth") if isinstance(customer, dict) else None
    return isinstance(born, str) and not "1900-01-01" <= born <= datetime.date.today().isoformat()


def cards_of(body):
    if isinstance(body, list):  # an import
        return [card for item in body for card in cards_of(item)]
    if not isinstance(body, dict):
        return []
    listed = body.get("paymentMethodsCards")
    return [body] + (listed if isinstance(listed, list) else [])


@schemathesis.hook("filter_case").apply_to(operation_id="add_card").apply_to(operation_id="create_customer").apply_to(
    operation_id="update_method"
).apply_to(operation_id="patch_method").apply_to(operation_id="import_customers").apply_to(
    operation_id="update_customer"
).apply_to(operation_id="patch_customer")
def dated_today(context, case):
    if not positive(case):
        return True
    customers = case.body if isinstance(case.body, list) else [case.body]
    return not any(expired(card) for card in cards_of(case.body)) and not any(born_later(c) for c in customers)


def digits(value):
    return [int(c) for c in value if c.isdigit()] if isinstance(value, str) else []


def luhn(value):
    d = digits(value)
    total = sum(x if i % 2 == 0 else (2 * x - 9 if x > 4 else 2 * x) for i, x in enumerate(reversed(d)))
    return total % 10 == 0


def aba(value):
    d = digits(value)
    return len(d) == 9 and (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def methods_of(body):
    if isinstance(body, list):
        return [m for item in body for m in methods_of(item)]
    if not isinstance(body, dict):
        return []
    found = [body]
    for key in ("paymentMethodsCards", "paymentMethodsAchAccounts"):
        if isinstance(body.get(key), list):
            found += [m for m in body[key] if isinstance(m, dict)]
    return found


@schemathesis.hook("filter_case").apply_to(operation_id="add_card").apply_to(operation_id="add_ach").apply_to(
    operation_id="create_customer"
).apply_to(operation_id="import_customers")
def checksums(context, case):
    if not positive(case):
        return True
    for m in methods_of(case.body):
        if isinstance(m.get("pan"), str) and not luhn(m["pan"]):
            return False
        if isinstance(m.get("routingNumber"), str) and not aba(m["routingNumber"]):
            return False
    return True


@schemathesis.hook("filter_case").apply_to(operation_id="patch_customer")
def keeps_a_number_for_sms(context, case):
    if not positive(case) or not isinstance(case.body, dict):
        return True
    return not ("mobilePhoneNumber" in case.body and case.body["mobilePhoneNumber"] is None and case.body.get("isMobileNumberSmsNotificationsEnabled") is not False)


@schemathesis.hook("filter_case").apply_to(operation_id="declare_parameter").apply_to(operation_id="retire_parameter")
def leaves_the_run_declarations(context, case):
    name = (case.path_parameters or {}).get("name")
    if isinstance(name, str) and name.lower() in {n.lower() for n in DECLARED}:
        return False
    return not (isinstance(case.body, dict) and case.body.get("required") is True)
