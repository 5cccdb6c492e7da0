"""A customer's life through a Python client generated from /openapi.json by
openapi-python-client (scripts/contract.sh generates it as `clientele_client`).

What an integrator would do first: declare custom parameters, create a customer
carrying them, read it back, find it by search (custom values come back typed),
patch it, add a card, and delete it. Every reply must parse into the generated
models: a schema that says less or other than the server sends fails here.
"""

import datetime
import os
import sys
import uuid

from clientele_client import AuthenticatedClient
from clientele_client.api.custom_parameters import declare_parameter
from clientele_client.api.customers import create_customer, delete_customer, get_customer, patch_customer, search_customers
from clientele_client.api.payment_methods import add_card
from clientele_client.models import (
    AddressRequest,
    CardRequest,
    CustomerCreateRequest,
    CustomerDetail,
    CustomerPage,
    CustomerPatchRequest,
    CustomParameterType,
    DeclareRequest,
    ParameterView,
)
from clientele_client.models.address_request_country import AddressRequestCountry
from clientele_client.types import Response

client = AuthenticatedClient(
    base_url=os.environ["CLIENTELE_CONTRACT_URL"], token=os.environ["CLIENTELE_CONTRACT_KEY"], raise_on_unexpected_status=True
)


def ok(response: Response, model):
    assert response.status_code == 200, (response.status_code, response.content[:500])
    assert isinstance(response.parsed, model), type(response.parsed)
    return response.parsed


def main() -> None:
    # The merchant's own fields, one of each type.
    declared = {
        "clientTier": CustomParameterType.STRING,
        "clientVisits": CustomParameterType.NUMBER,
        "clientNewsletter": CustomParameterType.BOOLEAN,
        "clientSince": CustomParameterType.DATE,
    }
    for name, kind in declared.items():
        ok(declare_parameter.sync_detailed(name, client=client, body=DeclareRequest(type_=kind)), ParameterView)

    surname = "Client" + uuid.uuid4().hex[:8]
    body = CustomerCreateRequest(
        first_name="Ada",
        last_name=surname,
        email=f"{surname.lower()}@example.com",
        mobile_phone_number="+14165550199",
        billing_address=AddressRequest(
            line1="55 University Ave", city="Toronto", state="ON", postal_code="M5J 2H7", country=AddressRequestCountry.CA
        ),
    )
    body["clientTier"] = "gold"
    body["clientVisits"] = 12
    body["clientNewsletter"] = True
    body["clientSince"] = "2021-06-01"
    created = create_customer.sync_detailed(client=client, body=body, idempotency_key=str(uuid.uuid4()))
    assert created.status_code == 200, created.content
    customer_id = created.parsed.id

    got = ok(get_customer.sync_detailed(customer_id, client=client), CustomerDetail)
    assert got.last_name == surname and got.billing_address.postal_code == "M5J 2H7"
    assert got["clientTier"] == "gold" and got["clientVisits"] == 12 and got["clientNewsletter"] is True
    assert got["clientSince"] == "2021-06-01"
    etag = got.version

    # Search parses a page whose customers carry custom values of every type.
    page = ok(search_customers.sync_detailed(client=client, search=surname, page_size=10), CustomerPage)
    assert page.total == 1 and page.items[0].id == customer_id, page
    assert page.items[0]["clientVisits"] == 12 and page.items[0]["clientNewsletter"] is True
    by_name = ok(search_customers.sync_detailed(client=client, last_name=surname), CustomerPage)
    assert [c.id for c in by_name.items] == [customer_id]

    patch = CustomerPatchRequest(first_name="Augusta")
    patch["clientVisits"] = 13
    patched = ok(patch_customer.sync_detailed(customer_id, client=client, body=patch, if_match=f'"{etag}"'), CustomerDetail)
    assert patched.first_name == "Augusta" and patched.last_name == surname and patched["clientVisits"] == 13
    assert patched.version > etag

    year = datetime.date.today().year + 5
    card = add_card.sync_detailed(
        customer_id, client=client, body=CardRequest(pan="4242 4242 4242 4242", expiration_month=12, expiration_year=year)
    )
    assert card.status_code == 200, card.content
    with_card = ok(get_customer.sync_detailed(customer_id, client=client), CustomerDetail)
    assert [c.masked_pan for c in with_card.cards] == ["424242******4242"], with_card.cards
    assert with_card.cards[0].expiration_year == year and with_card.cards[0].is_default
    assert "4242424242424242" not in get_customer.sync_detailed(customer_id, client=client).content.decode()

    deleted = delete_customer.sync_detailed(customer_id, client=client)
    assert deleted.status_code == 200, deleted.content
    gone = get_customer.sync_detailed(customer_id, client=client)
    assert gone.status_code == 404 and gone.parsed.error_code == "not_found", gone.content
    print("[contract] generated client: declare, create, get, search, patch, add card, delete: ok", file=sys.stderr)


if __name__ == "__main__":
    main()
