"""The data district: ingest, the data rules and outliers, sufficiency, the feedback join and
gate 1."""
