"""The portal in a real browser: Debian's Chromium driven by Playwright.

scripts/portal-test.sh starts a server on a throwaway database, creates a
merchant with an admin and a viewer, and a customer with a card; this signs in
as a person would and checks what they see. PORTAL_SCREENSHOTS=folder saves
the pages README shows."""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["PORTAL_URL"]
ADMIN, ADMIN_PASSWORD = os.environ["PORTAL_ADMIN"], os.environ["PORTAL_ADMIN_PASSWORD"]
CUSTOMER = os.environ["PORTAL_CUSTOMER_ID"]
PAN = os.environ["PORTAL_PAN"]
SHOTS = os.environ.get("PORTAL_SCREENSHOTS")


def sign_in(page, email, password):
    page.goto(f"{BASE}/portal/sign-in")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def no_full_number(page):
    html = page.content()
    digits = re.sub(r"\D", "", PAN)
    assert digits not in re.sub(r"[ -]", "", html), f"the full card number is in {page.url}"


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text))

        # Not signed in: the sign-in page; a wrong password is refused.
        page.goto(f"{BASE}/portal/customers")
        expect(page).to_have_url(re.compile(r"/portal/sign-in$"))
        sign_in(page, ADMIN, "wrong password")
        expect(page.locator(".error")).to_have_text("The email or the password is wrong.")

        sign_in(page, ADMIN, ADMIN_PASSWORD)
        expect(page).to_have_url(re.compile(r"/portal/customers$"))
        expect(page.locator("h1")).to_have_text("Customers")
        cookie = next(c for c in context.cookies() if c["name"] == "clientele_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

        expect(page.locator("tbody tr")).to_have_count(4)
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "portal-customers.png"))
        # Search, then open the customer.
        page.fill("input[name=search]", "Ada")
        page.click("form.search button")
        expect(page.locator("tbody tr")).to_have_count(1)
        expect(page.locator("p.count")).to_have_text("1 customer")
        page.click("text=Ada Lovelace")
        expect(page).to_have_url(f"{BASE}/portal/customers/{CUSTOMER}")
        expect(page.locator("h1")).to_have_text("Ada Lovelace")
        expect(page.locator("text=411111******1111")).to_be_visible()
        no_full_number(page)
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "portal-customer.png"), full_page=True)

        # An admin deactivates the card.
        card = page.locator("tbody tr", has_text="411111******1111")
        card.locator("button", has_text="Deactivate").click()
        expect(page).to_have_url(f"{BASE}/portal/customers/{CUSTOMER}")
        expect(page.locator("tbody tr", has_text="411111******1111").locator("td").nth(3)).to_have_text("inactive")

        # An admin links a payment provider; its key is shown masked, never whole.
        page.click("summary >> text=Link a provider")
        page.fill("form.link input[name=provider]", "moneris")
        page.fill("form.link input[name=providerConfigId]", "cfg-moneris-01")
        page.fill("form.link input[name=apiKey]", "sk_test_0123456789abcdef")
        page.click("form.link button")
        expect(page).to_have_url(f"{BASE}/portal/customers/{CUSTOMER}")
        row = page.locator("tbody tr", has_text="cfg-moneris-01")
        expect(row).to_contain_text("moneris")
        expect(row).to_contain_text("****cdef")
        assert "sk_test_0123456789abcdef" not in page.content()

        # An admin declares a custom parameter.
        page.click("header nav >> text=Custom parameters")
        page.fill("form.link input[name=name]", "loyaltyTier")
        page.select_option("form.link select[name=type]", "string")
        page.fill("form.link input[name=description]", "Gold, silver or bronze")
        page.click("form.link button")
        expect(page).to_have_url(f"{BASE}/portal/custom-parameters")
        expect(page.locator("tbody tr", has_text="loyaltyTier")).to_contain_text("declared")

        # An admin creates a customer with a form (the API's rules: a bad email is
        # refused and the form comes back filled in), then edits it.
        page.click("header nav >> text=Customers")
        page.click("text=New customer")
        page.fill("input[name=firstName]", "Katherine")
        page.fill("input[name=lastName]", "Johnson")
        page.fill("input[name=email]", "not an email")
        page.fill("input[name=loyaltyTier]", "gold")
        page.click("form.record button")
        expect(page.locator("ul.error")).to_contain_text("email")
        expect(page.locator("input[name=firstName]")).to_have_value("Katherine")
        page.fill("input[name=email]", "katherine@example.com")
        page.click("form.record button")
        expect(page.locator("h1")).to_have_text("Katherine Johnson")
        expect(page.locator("dl")).to_contain_text("gold")
        page.click("p.actions >> text=Edit")
        expect(page.locator("input[name=email]")).to_have_value("katherine@example.com")
        page.fill("input[name=lastName]", "Johnson-Goble")
        page.click("form.record button")
        expect(page.locator("h1")).to_have_text("Katherine Johnson-Goble")

        # It gets a credit account, which is then closed.
        page.click("summary >> text=Open a credit account")
        page.fill("input[name=creditLimit]", "2500")
        page.fill("input[name=accountInterestRate]", "0.1999")
        page.check("input[name=tosAgreement]")
        page.click("button >> text=Open a credit account")
        account = page.locator("tbody tr", has_text="consumer")
        expect(account).to_contain_text("open")
        expect(account).to_contain_text("clear")
        account.locator("button", has_text="Close").click()
        expect(page.locator("tbody tr", has_text="consumer").locator("td").nth(2)).to_have_text("closed")

        # An API key: its scopes chosen, shown once, then revoked.
        page.click("header nav >> text=API keys")
        page.uncheck("input[value='customers:write']")
        page.click("text=Create a key")
        expect(page.locator("code.secret")).to_have_text(re.compile(r"^ck_"))
        page.click("text=Done")
        row = page.locator("tbody tr", has_text="customers:read payment_methods:write")
        row.locator("button", has_text="Revoke").click()
        expect(page.locator("tbody tr", has_text="customers:read payment_methods:write").locator("td").nth(3)).not_to_be_empty()

        # The event feed: the newest first, in this admin's name.
        page.click("header nav >> text=Events")
        first = page.locator("tbody tr").first
        expect(first).to_contain_text("api_key.revoked")
        expect(first).to_contain_text(ADMIN)

        # No page carries the full card number.
        for path in ["/portal/customers", f"/portal/customers/{CUSTOMER}", f"/portal/customers/{CUSTOMER}/edit",
                     "/portal/events", "/portal/custom-parameters", "/portal/financing-plans", "/portal/api-keys",
                     "/portal/webhook-endpoints", "/portal/password"]:
            page.goto(BASE + path)
            expect(page.locator("h1")).not_to_have_text("Something is wrong")
            no_full_number(page)
        page.goto(f"{BASE}/portal/customers/{CUSTOMER}")

        # A form posted from elsewhere, without the session's token, is refused.
        forged = context.request.post(f"{BASE}/portal/sign-out", form={"csrf": "forged"})
        assert forged.status == 403, forged.status
        page.reload()
        expect(page.locator("h1")).to_have_text("Ada Lovelace")

        # Signing out ends the session.
        page.click('header button >> text="Sign out"')
        expect(page).to_have_url(re.compile(r"/portal/sign-in$"))
        page.goto(f"{BASE}/portal/customers/{CUSTOMER}")
        expect(page).to_have_url(re.compile(r"/portal/sign-in$"))

        # A viewer sees the same customer, with no button, and a change it posts is refused.
        sign_in(page, os.environ["PORTAL_VIEWER"], os.environ["PORTAL_VIEWER_PASSWORD"])
        page.goto(f"{BASE}/portal/customers/{CUSTOMER}")
        expect(page.locator("h1")).to_have_text("Ada Lovelace")
        expect(page.locator("main button")).to_have_count(0)
        no_full_number(page)
        token = page.locator("header input[name=csrf]").first.get_attribute("value")
        card_id = os.environ["PORTAL_CARD_ID"]
        refused = context.request.post(
            f"{BASE}/portal/customers/{CUSTOMER}/payment-methods/{card_id}", form={"csrf": token, "action": "activate"}
        )
        assert refused.status == 403, refused.status
        page.reload()
        expect(page.locator("tbody tr", has_text="411111******1111").locator("td").nth(3)).to_have_text("inactive")
        page.click('header button >> text="Sign out"')

        # Repeated failures for one account are throttled.
        for _ in range(6):
            sign_in(page, ADMIN, "guess")
        expect(page.locator(".error")).to_have_text("Too many attempts; wait a minute.")

        assert not [m for m in console if "Content Security Policy" in m], console
        browser.close()
    print("[portal] browser checks passed", file=sys.stderr)


if __name__ == "__main__":
    main()
