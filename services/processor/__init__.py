"""SalesPulse processor."""
