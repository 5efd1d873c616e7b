"""The embedded AWS: moto's server with atomic DynamoDB writes, the template, and provisioning its resources."""
