"""The HTTP shell: parse, call a service, render. No business rule lives here."""
