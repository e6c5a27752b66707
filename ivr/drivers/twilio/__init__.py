"""The Twilio driver: voice webhooks running the same call flow, recordings fetched from Twilio, SMS."""
