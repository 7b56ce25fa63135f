"""SalesPulse api."""
