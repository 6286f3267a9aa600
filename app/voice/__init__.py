"""Streamed phone calls: Deepgram speech in and out, and turn-taking on a live call.

This room knows audio, Deepgram and when a caller's turn ends; the Twilio WebSocket
(app/webhooks/twilio_media.py) feeds it, and engine turns run through the same webhook
step as the <Gather> path, so routing, the PIN policy and the transcript are shared.
"""
