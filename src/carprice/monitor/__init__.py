"""Monitoring: usage, input drift, realised error on sold prices and the retrain verdict."""
