"""Native webhooks of telephony and CRM systems, translated into canonical CloudEvents.

One module per provider reads its payload and checks its signature (pure code); `core`
merges what each event says with what is known of the call or deal and builds the
canonical event; `providers` ties them to settings. The API's POST /webhooks/{provider}
does the I/O (Redis for merged state and dedupe, Kafka for events and dead letters).
"""
