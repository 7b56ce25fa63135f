"""Local real infrastructure: Apache Kafka (KRaft, from Maven Central jars) and redis-server.

Used by `make run` (python -m salespulse.devstack run) and by the integration-test fixtures.
"""

from salespulse.devstack.servers import LocalKafka, LocalRedis, ensure_kafka_jars, free_port

__all__ = ["LocalKafka", "LocalRedis", "ensure_kafka_jars", "free_port"]
