"""What operators see: CloudWatch metrics (embedded metric format), verdict events, request ids."""
