"""Outbound notifications: confirmations, reminders, reminder calls and owner messages.

plan.py writes the rows (inside the booking's transaction), delivery.py claims and sends
them, outbound.py talks to Twilio's REST API. See docs/architecture.md.
"""
