"""The provider-events Lambda: delivery receipts from the provider-events queue -> notification status."""
