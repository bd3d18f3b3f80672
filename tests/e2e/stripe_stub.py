#!/usr/bin/env python3
"""A stand-in for Stripe's API during the end-to-end run, so that the checkout operations
answer as they would with a real Stripe account: POST /v1/checkout/sessions answers a
Checkout Session object (Stripe's documented shape); anything else is Stripe's 404 error
object. Prints its port, then serves until killed.

    stripe_stub.py
"""
import json
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class Stripe(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if self.path != "/v1/checkout/sessions" or not self.headers.get("Authorization"):
            self.answer(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})
            return
        session = "cs_test_" + secrets.token_hex(12)
        self.answer(200, {
            "id": session,
            "object": "checkout.session",
            "mode": form.get("mode", [None])[0],
            "client_reference_id": form.get("client_reference_id", [None])[0],
            "status": "open",
            "payment_status": "unpaid",
            "url": "https://checkout.stripe.com/c/pay/" + session,
        })


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stripe)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
