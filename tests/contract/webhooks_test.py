"""Webhook deliveries verified by the Standard Webhooks reference library
(`standardwebhooks` from PyPI), as a receiver would: a local receiver, an
endpoint registered for customer events, a customer created, the delivery
verified; then the secret rotated, and the next delivery verified with the new
secret and with the old one. The server runs with private networks allowed
(scripts/contract.sh), since the receiver listens on loopback."""

import http.server
import json
import queue
import threading

from standardwebhooks import Webhook

from fixtures import call

received = queue.Queue()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        received.put((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def next_delivery(of_type):
    while True:
        headers, body = received.get(timeout=15)
        if json.loads(body)["type"] == of_type:
            return headers, body


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    # The generated run before this one may have registered the merchant's 16.
    for existing in call("GET", "/webhook-endpoints")["items"]:
        call("DELETE", f"/webhook-endpoints/{existing['id']}")
    endpoint = call("POST", "/webhook-endpoints", {"url": hook_url, "enabledEvents": ["customer.created"]})
    secret = endpoint["secret"]

    customer = call("POST", "/customers", {"firstName": "Stan", "lastName": "Dard"})["id"]
    headers, body = next_delivery("customer.created")
    event = Webhook(secret).verify(body, headers)
    assert event["entityId"] == customer, event
    assert headers["webhook-id"] == event["id"], headers
    try:
        Webhook("whsec_" + "A" * 43 + "=").verify(body, headers)
        raise AssertionError("a wrong secret verified")
    except Exception as e:  # WebhookVerificationError
        assert "signature" in str(e).lower(), e

    new = call("POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")["secret"]
    call("POST", "/customers", {"firstName": "Rota", "lastName": "Tion"})
    headers, body = next_delivery("customer.created")
    Webhook(new).verify(body, headers)
    Webhook(secret).verify(body, headers)
    call("DELETE", f"/webhook-endpoints/{endpoint['id']}")
    print("[contract] webhook deliveries verified by standardwebhooks", flush=True)


if __name__ == "__main__":
    main()
