"""The customer's own record: profile and events (orders, deliveries, refunds, membership, tickets), kept by the
admin API and read by the assistant for a verified customer only."""
