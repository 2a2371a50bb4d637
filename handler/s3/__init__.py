"""S3 auto-moderation: event views, the per-object flow, tags, verified quarantine, fault classes."""
