"""The contract of the controller's REST API, below every other layer: the endpoints (paths,
methods, authentication, schemas; :mod:`api.endpoints`), the OpenAPI document built from them,
and the one typed client (:mod:`api.client`) that the CLI, the lab, the adapter service and
the benchmarks use. Standard library only: the adapter (``agents/``) sits below the controller
and must talk to it without importing it."""
