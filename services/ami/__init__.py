"""The Asterisk AMI connector: python -m salespulse.ami."""
