"""The orchestrator's public APIs: gRPC (``grpc_api``) and REST with Server-Sent Events
(``rest``). Handlers only convert between wire types and the service layer
(``orchestrator.services.Services``) and map errors through one table (``errors``)."""
