"""The alerting service: evaluates alert rules on KPI values and notifies receivers."""
