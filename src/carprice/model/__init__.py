"""The model district: training (local or Dask), evaluation, the MLflow registry and gate 2."""
