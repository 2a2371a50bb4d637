"""The decision record: one DynamoDB item per judged object version, owned by the function (the source of
truth for idempotency, the review queue and history; object tags are only a convenience copy)."""
