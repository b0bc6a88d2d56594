"""Pure analytics core: numpy and the standard library only (never Kafka or Faust)."""
