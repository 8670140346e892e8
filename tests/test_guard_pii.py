"""Personal data and secrets: a corpus of values each detector must find, and near misses it must
leave alone (order and tracking numbers, timestamps, prices, ids, hashes)."""

from __future__ import annotations

import pytest

from tether.guard.pii import REDACTED, CallerData, find_pii, others, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
FOUND = [
    # e-mail
    ("email", "write to maria.gomez@mail-example.org today", "maria.gomez@mail-example.org"),
    ("email", "cc: ops+returns@acme-mail.co.uk", "ops+returns@acme-mail.co.uk"),
    ("email", "escribe a josé.garcía@correo.es", "josé.garcía@correo.es"),
    # phones: formatted anywhere, bare only after a phone keyword
    ("phone", "call (415) 555-0199 after five", "(415) 555-0199"),
    ("phone", "courier: +1 212 555 0147.", "+1 212 555 0147"),
    ("phone", "London office +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "Paris +33 1 23 45 67 89", "+33 1 23 45 67 89"),
    ("phone", "mobile +55 11 98765-4321", "+55 11 98765-4321"),
    ("phone", "whatsapp +442079460958", "+442079460958"),
    ("phone", "Phone: 4155550199", "4155550199"),
    # payment cards (Luhn)
    ("payment card", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("payment card", "Amex 3782 822463 10005", "3782 822463 10005"),
    ("payment card", "charged 5555555555554444 twice", "5555555555554444"),
    ("payment card", "credit card number 4222222222222", "4222222222222"),
    # IBAN (stdnum)
    ("IBAN", "IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "to GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "NL91ABNA0417164300", "NL91ABNA0417164300"),
    # national ids
    ("national id", "SSN 078-05-1120 on file", "078-05-1120"),  # a known public sample stdnum rejects
    ("national id", "Social Security Number 912-45-6789", "912-45-6789"),  # area never issued
    ("national id", "ssn: 219099999", "219099999"),
    ("national id", "verified 536-90-4399 yesterday", "536-90-4399"),  # valid SSN, no keyword
    ("national id", "NI number AB 12 34 56 C", "AB 12 34 56 C"),
    ("national id", "NINO AB123456C", "AB123456C"),
    ("national id", "DNI 12345678Z", "12345678Z"),
    ("national id", "spouse X1234567L", "X1234567L"),
    ("national id", "PESEL 44051401359", "44051401359"),
    ("national id", "BSN 111222333", "111222333"),
    ("national id", "codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    ("national id", "numéro de sécurité sociale 2 84 03 75 123 456 40", "2 84 03 75 123 456 40"),
    ("national id", "CPF 390.533.447-05", "390.533.447-05"),
    ("national id", "social insurance number 130 692 544", "130 692 544"),
    ("national id", "Steuer-ID 36574261809", "36574261809"),
    ("national id", "passport number 123456789", "123456789"),
    ("national id", "national id: 44051401359", "44051401359"),
    # secrets
    ("secret", "key sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c.", "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"),
    (
        "secret",
        "OPENAI_API_KEY=sk-proj-Zr4Tq8Wn2Lx6Vb9Km3Pc7Hd1Jf5Gs0Ya",
        "sk-proj-Zr4Tq8Wn2Lx6Vb9Km3Pc7Hd1Jf5Gs0Ya",
    ),
    ("secret", "stripe sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9", "sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9"),
    ("secret", "restricted rk_live_51HxYzAbCdEfGhIjKlMnOp", "rk_live_51HxYzAbCdEfGhIjKlMnOp"),
    ("secret", "pk_test_TYooMQauvdEDq54NiTphI7jx", "pk_test_TYooMQauvdEDq54NiTphI7jx"),
    ("secret", "ghp_R8x2Lq9Vn4Tz7Kc1Wm5Yb3Hd6Jf0Ps2Ga8Ue", "ghp_R8x2Lq9Vn4Tz7Kc1Wm5Yb3Hd6Jf0Ps2Ga8Ue"),
    (
        "secret",
        "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
    ),
    ("secret", "xoxb-2741-93017-Qw8Er7Ty6Ui5Op4As3Df2Gh", "xoxb-2741-93017-Qw8Er7Ty6Ui5Op4As3Df2Gh"),
    ("secret", "AKIAQ3EGTV5NXH7RZP2K", "AKIAQ3EGTV5NXH7RZP2K"),
    ("secret", "session ASIAQ3EGTV5NXH7RZP2K", "ASIAQ3EGTV5NXH7RZP2K"),
    ("secret", "AIzaSyD4x9Lm2Qp7Rt5Vw8Yz1Bc3Ef6Gh0Jk2Ln", "AIzaSyD4x9Lm2Qp7Rt5Vw8Yz1Bc3Ef6Gh0Jk2Ln"),
    ("secret", "glpat-9xK2mQ7vT4bW1nL8pR3z", "glpat-9xK2mQ7vT4bW1nL8pR3z"),
    (
        "secret",
        "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
        "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
    ),
    ("secret", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
    (
        "secret",
        "Authorization: " + JWT,
        JWT,
    ),
    (
        "secret",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ),
    ("secret", "postgres://reporting:Hx7!pQ2zL9@db.internal.example/orders", "reporting:Hx7!pQ2zL9"),
    ("secret", "Temporary admin password: Kestrel-4417-Mauve.", "Kestrel-4417-Mauve"),
    ("secret", "the api key is 9f8e7d6c5b4a3928", "9f8e7d6c5b4a3928"),
    ("secret", 'client_secret="Zx9Qw8Er7Ty6Ui5O"', "Zx9Qw8Er7Ty6Ui5O"),
]

NEAR_MISSES = [
    "Order 10234 shipped on 2026-11-28 14:03 via UPS, tracking 1Z999AA10123456784.",
    "USPS tracking 9400 1000 0000 0000 0000 00, FedEx 7749 1234 5678.",
    "| 10234 | 2026-11-01 14:00 | Espresso Machine | 1 | $249.00 | delivered |",
    "Invoice INV-2026-00123, issued 01/12/2026, due 31/12/2026, total 1,249.50 EUR.",
    "Line 3: SKU-4000123 EAN 4006381333931 x2 @ 12.50 = 25.00",
    "2026-12-01T04:12:33.123Z INFO worker-3 pid=48213 run=run_8f3a0001 took 12.4 ms from 10.0.3.17",
    '{"id": 1029384756, "customer_id": 5567123, "created_at": "2026-11-30T12:00:00Z", "amount_cents": 24900}',
    "order 4155550199 and reference 123456789",  # bare numbers without a keyword
    "ticket 000-12-3456 is closed",  # SSN-shaped but impossible, no keyword
    "version 1.24.3 released 2026.11.30 at 23:59:59, uptime 99.95%",
    "request 123e4567-e89b-12d3-a456-426614174000 failed",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it",
    "sha256 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1c",
    "Please reset your password at the help centre; passwords must be 12 characters.",
    "Our secret santa budget is 25 dollars and the token ring is 30 years old.",
    "The key features: 24/7 support, 30-day returns, free shipping over $50.",
    "Call us any time; our phone lines are open 9-17.",
    "Delivered to ZIP 94105-1234, parcel weight 2.35 kg, 3 boxes.",
    "the customer_support_escalation_policy applies to orders over 500",
    "Visa ending in 1111, expiring 12/29.",
    "card 4111 1111 1111 1112",  # fails Luhn
]


@pytest.mark.parametrize(("kind", "text", "value"), FOUND)
def test_each_detector_finds_its_values(kind: str, text: str, value: str) -> None:
    found = [(f.kind, f.value) for f in find_pii(text)]
    assert (kind, value) in found, found


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_personal_data(text: str) -> None:
    assert find_pii(text) == []


def test_spans_point_at_the_values() -> None:
    text = "A: maria@mail-example.org, B: (415) 555-0199, C: sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9"
    for finding in find_pii(text):
        assert text[finding.start : finding.end] == finding.value


def test_redaction_replaces_every_value_and_keeps_the_rest() -> None:
    text = "Owner maria@mail-example.org, SSN 078-05-1120, key sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c."
    redacted = redact(text, find_pii(text))
    assert "maria@" not in redacted and "078-05" not in redacted and "sk-live" not in redacted
    assert redacted.startswith("Owner " + REDACTED.format(kind="email"))
    assert REDACTED.format(kind="national id") in redacted and REDACTED.format(kind="secret") in redacted


def test_the_callers_own_values_and_allowed_values_are_not_others() -> None:
    caller = CallerData(
        ["my ssn is 219-09-9999 and my key is sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9"], ["help@acme.example"]
    )
    text = (
        "SSN 219099999, key sk_live_51Nf3kQ2eZvKYlo2C8xT4mWp9, write to help@acme.example; "
        "the other account's PESEL 44051401359."
    )
    assert [(f.kind, f.value) for f in others(text, caller)] == [("national id", "44051401359")]


def test_numbers_inside_large_digit_heavy_text_are_still_found() -> None:
    rows = "\n".join(
        f"| {10234 + i} | 2026-11-{1 + i % 28:02d} 14:{i % 60:02d} | $249.00 |" for i in range(300)
    )
    text = rows + "\nContact: (415) 555-0199\n" + rows
    assert [(f.kind, f.value) for f in find_pii(text)] == [("phone", "(415) 555-0199")]
