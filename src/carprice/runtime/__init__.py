"""Everything the service needs: the listing contract, features, bundle, predictor and scorers,
the store, ratings and the deploy pointer. Imports no other district of carprice."""
