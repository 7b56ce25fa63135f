"""Prometheus metrics of the alerting service."""

from prometheus_client import Counter, Gauge, Histogram

ALERT_CHANGES = Counter("salespulse_alert_changes_total", "Alert changes produced to kpi.alerts.", ["state", "level"])
EVALUATION = Histogram("salespulse_alert_evaluation_seconds", "Time to evaluate every rule once.",
                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EVALUATION_ERRORS = Counter("salespulse_alert_evaluation_errors_total", "Rule groups that could not be evaluated.")
RULES = Gauge("salespulse_alert_rules", "Alert rules in force.")
ACTIVE = Gauge("salespulse_alerts_active", "Alerts raised and not resolved.", ["level"])
NOTIFICATIONS = Counter("salespulse_notifications_total", "Alert deliveries by receiver and outcome.",
                        ["receiver", "outcome"])
NOTIFY_BACKLOG = Gauge("salespulse_notification_backlog", "Alert changes not yet delivered, by receiver.",
                       ["receiver"])
