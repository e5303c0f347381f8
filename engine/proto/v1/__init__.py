"""Generated protobuf modules (scripts/gen-protos); never edit them by hand."""
