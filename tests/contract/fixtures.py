"""Test data for the contract checks: what schemathesis cannot invent.

Declares the custom parameters the generated customers may carry, and creates one
of each object the routes behind an id need (a customer with a card, a provider
link, a credit account, a financing plan). Prints their ids as `NAME=value`
lines, which scripts/contract.sh hands to schemathesis.toml.
"""

import json
import os
import urllib.error
import urllib.request

URL = os.environ["CLIENTELE_CONTRACT_URL"] + "/pay-api/v1"
KEY = os.environ["CLIENTELE_CONTRACT_KEY"]

# The custom parameters of every generated customer (hooks.py uses the same names).
DECLARED = {
    "loyaltyTier": {"type": "string", "description": "Loyalty tier"},
    "visits": {"type": "number"},
    "newsletter": {"type": "boolean"},
    "memberSince": {"type": "date"},
    "loyaltyCard": {"type": "string", "secret": True},
}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {KEY}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}") from None


def main():
    for name, declaration in DECLARED.items():
        call("PUT", f"/custom-parameters/{name}", declaration)
    customer = call(
        "POST",
        "/customers",
        {
            "firstName": "Jane",
            "lastName": "Doe",
            "email": "jane.doe@example.com",
            "dateOfBirth": "1990-04-12",
            "billingAddress": {"line1": "55 University Ave", "city": "Toronto", "postalCode": "M5J 2H7", "country": "CA"},
            "loyaltyTier": "gold",
        },
    )["id"]
    card = call(
        "POST",
        f"/customers/{customer}/payment-methods/cards",
        {"pan": "4111 1111 1111 1111", "expirationMonth": 12, "expirationYear": 2035},
    )["id"]
    provider = call(
        "POST",
        f"/customers/{customer}/providers",
        {"providerConfigId": "cfg-moneris-01", "provider": "moneris", "apiKey": "sk_test_0123456789abcdef"},
    )["id"]
    account = call(
        "POST",
        f"/customers/{customer}/credit-accounts",
        {
            "accountType": "consumer",
            "creditLimit": 5000,
            "accountInterestRate": 0.2999,
            "riskRating": "L",
            "preferredLanguage": "en-CA",
            "tosAgreement": True,
            "securityQuestions": [{"id": 1, "text": "What was the name of your first pet?", "answer": "Rex"}],
        },
    )["accountNumber"]
    call(
        "PUT",
        "/financing-plans/12",
        {"planName": "EMP - Regular Interest", "offerCategory": "equal_billing", "apr": 0.0999, "terms": [{"term": 12}]},
    )
    endpoint = call(
        "POST",
        "/webhook-endpoints",
        {"url": "http://127.0.0.1:9/hooks", "enabledEvents": ["webhook_endpoint.deleted"]},
    )["id"]
    delivery = call("POST", f"/webhook-endpoints/{endpoint}/test")["id"]
    print(f"CONTRACT_CUSTOMER_ID={customer}")
    print(f"CONTRACT_PAYMENT_METHOD_ID={card}")
    print(f"CONTRACT_PROVIDER_ID={provider}")
    print(f"CONTRACT_ACCOUNT_NUMBER={account}")
    print("CONTRACT_PLAN_ID=12")
    print(f"CONTRACT_ENDPOINT_ID={endpoint}")
    print(f"CONTRACT_DELIVERY_ID={delivery}")


if __name__ == "__main__":
    main()
