"""The market simulator: calibrated weekly listings and sales, scenarios, replay and
the demo loop."""
