"""Delivery of notifications: email over SMTP and signed webhooks over HTTP.

Each function here sends one thing and reports what happened; it keeps no state. The
outbox (which stores what to send and when to try again) calls them:

* :func:`baton.notify.email.send_email` returns on success and raises
  :class:`~baton.notify.email.DeliveryError` whose ``permanent`` flag says whether
  trying again can help.
* :func:`baton.notify.webhooks.post_webhook` never raises for a failed delivery; it
  returns an :class:`~baton.notify.webhooks.AttemptResult` whose ``retryable`` flag says
  the same, and :func:`~baton.notify.webhooks.next_attempt_delay` says when.
"""
