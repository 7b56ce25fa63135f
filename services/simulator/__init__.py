"""SalesPulse simulator."""
