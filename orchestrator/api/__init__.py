"""The orchestrator's public APIs: gRPC (``grpc_api``); REST comes with issue 5. Handlers only
convert between wire types and the service layer (``orchestrator.core``) and map errors."""
