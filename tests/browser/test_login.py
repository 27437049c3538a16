"""Signing in and out in a real browser; the sign-in page passes axe-core."""

from __future__ import annotations

from typing import Any

PHONE = (375, 812)


def test_sign_in_page_is_accessible_and_a_wrong_password_is_said(
    page_as: Any, axe_check: Any
) -> None:
    page = page_as(None, viewport=PHONE)
    page.goto("/home")
    assert "/login?next=/home" in page.url
    axe_check(page)
    page.get_by_label("Email").fill("ana@lumen.example")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("That email and password")


def test_a_person_signs_in_lands_home_and_signs_out(page_as: Any) -> None:
    page = page_as("admin")
    page.goto("/home")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Hello")
    page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/login")
    page.goto("/home")
    assert "/login?next=/home" in page.url
