"""Every query on the prediction log and the feedback, the same on SQLite and PostgreSQL.

Outside `carprice.runtime` nothing touches the engine or a table: the monitor, the A/B
experiment, the client review and the training join call these functions, which return plain
rows, tuples and dicts (no pandas here; the callers build their frames).

- `base`: the building blocks written once: a listing field read from the logged inputs, the
  date window, what counts as a sale and the latest sale per prediction, the exact median.
- `monitor`: usage, the window read, asking prices, drift histograms, realised error, shadow.
- `clients`: feedback volume per client and the sales the client review judges.
- `feedback`: the training join and the A/B experiment's keyed estimates.
"""
