"""A human's decision on a `review` verdict: re-check the object, act as the S3 flow acts, record it."""
