"""A whole study from one config: build every model, fit it per design, evaluate, and ship bundles."""
