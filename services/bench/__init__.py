"""`make bench`: SalesPulse measured on the real local Kafka and Redis (see the README's
Performance section). Not imported by the services."""
