"""The moderation core: the CLIP towers, preprocessing, text-embedding cache, policies, heads, scoring."""
